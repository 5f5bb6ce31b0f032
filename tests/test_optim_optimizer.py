"""build_optimizer gives MMEngine's DefaultOptimWrapperConstructor parameter groups, and optim_wrapper checks."""

from __future__ import annotations

import copy

import pytest
import torch
from torch import nn

from lightning_hooks.optim import build_optimizer, parse_optim_wrapper

pytest.importorskip("mmengine")
pytestmark = pytest.mark.filterwarnings("ignore::UserWarning")


class Block(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.conv = nn.Conv2d(4, 4, 3, bias=True)
        self.dwconv = nn.Conv2d(4, 4, 3, groups=4)
        self.bn = nn.BatchNorm2d(4)
        self.gn = nn.GroupNorm(2, 4)
        self.ln = nn.LayerNorm(4)
        self.inorm = nn.InstanceNorm2d(4, affine=True)


class Model(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        torch.manual_seed(0)
        self.backbone = nn.Sequential(Block(), Block())
        self.neck = nn.Linear(4, 4)
        self.head = nn.Linear(4, 2)
        self.cls_token = nn.Parameter(torch.zeros(4))
        self.pos_embed = nn.Parameter(torch.zeros(1, 4))
        self.frozen = nn.Linear(2, 2)
        self.frozen.requires_grad_(False)
        self.shared = self.neck  # the same parameters reached twice


def describe(model: nn.Module, optimizer: torch.optim.Optimizer) -> list[tuple]:
    names = {id(p): n for n, p in model.named_parameters(remove_duplicate=False)}
    rows = []
    for group in optimizer.param_groups:
        settings = tuple(sorted((k, v) for k, v in group.items() if k not in ("params",) and not isinstance(v, tuple)))
        rows.append((tuple(names[id(p)] for p in group["params"]), settings))
    return rows


def mm_optimizer(model: nn.Module, optim_wrapper: dict) -> torch.optim.Optimizer:
    from mmengine.optim import build_optim_wrapper

    return build_optim_wrapper(model, copy.deepcopy(optim_wrapper)).optimizer


SGD = dict(type="SGD", lr=0.01, momentum=0.9, weight_decay=1e-4)
ADAMW = dict(type="AdamW", lr=1e-3, weight_decay=0.05)

PARAMWISE = [
    None,
    dict(norm_decay_mult=0.0),
    dict(bias_lr_mult=2.0, bias_decay_mult=0.0),
    dict(norm_decay_mult=0.0, bias_decay_mult=0.0, flat_decay_mult=0.0),
    dict(dwconv_decay_mult=0.1, norm_decay_mult=0.5),
    dict(norm_decay_mult=0, bias_decay_mult=0, bypass_duplicate=True),
    dict(
        custom_keys={
            "backbone": dict(lr_mult=0.1, decay_mult=1.0),
            "backbone.0": dict(lr_mult=0.5),
            ".cls_token": dict(decay_mult=0.0),
            "head": dict(lr_mult=10.0, decay_mult=0.0),
        },
        bias_lr_mult=2.0,
        norm_decay_mult=0.0,
    ),
    dict(custom_keys={"pos_embed": dict(decay_mult=0.0), "cls_token": dict(decay_mult=0.0)}, flat_decay_mult=0.0),
    dict(_delete_=True, norm_decay_mult=0.0),  # left by a config merge over a base without paramwise_cfg
]


@pytest.mark.parametrize("optimizer", [SGD, ADAMW], ids=["sgd", "adamw"])
@pytest.mark.parametrize("paramwise", PARAMWISE)
def test_groups_match_mmengine(optimizer, paramwise):
    wrapper = dict(optimizer=optimizer)
    if paramwise is not None:
        wrapper["paramwise_cfg"] = paramwise
    model = Model()
    theirs = describe(model, mm_optimizer(model, wrapper))
    opt_cfg, paramwise_cfg, _ = parse_optim_wrapper(copy.deepcopy(wrapper))
    ours = describe(model, build_optimizer(model, opt_cfg, paramwise_cfg))
    assert ours == theirs
    assert len(ours) > 1 or paramwise is None


def test_custom_keys_longest_first_and_copied_into_the_group():
    model = Model()
    opt_cfg, paramwise, _ = parse_optim_wrapper(dict(optimizer=SGD, paramwise_cfg=PARAMWISE[6]))
    groups = build_optimizer(model, opt_cfg, paramwise).param_groups
    by_param = {id(g["params"][0]): g for g in groups}
    conv = by_param[id(model.backbone[0].conv.weight)]  # 'backbone.0' is longer than 'backbone'
    assert conv["lr"] == pytest.approx(0.005) and conv["lr_mult"] == 0.5
    assert by_param[id(model.backbone[1].conv.weight)]["lr"] == pytest.approx(0.001)
    assert by_param[id(model.cls_token)]["weight_decay"] == 0.0  # root parameters are named '.cls_token'
    assert id(model.frozen.weight) not in by_param


def test_a_custom_key_that_matches_no_parameter_is_named(messages):
    """MMEngine says nothing; a misspelt key would leave its parameters on the default rules."""
    model = Model()
    paramwise = dict(custom_keys={"backbone": dict(lr_mult=0.1), "backbon.0": dict(lr_mult=0.5)})
    opt_cfg, paramwise_cfg, _ = parse_optim_wrapper(dict(optimizer=SGD, paramwise_cfg=paramwise))
    build_optimizer(model, opt_cfg, paramwise_cfg)
    said = [m for m in messages.warnings() if "custom_keys" in m]
    assert len(said) == 1 and "['backbon.0'] match no parameter name" in said[0]


@pytest.mark.parametrize(
    ("wrapper", "match"),
    [
        (
            dict(optimizer=dict(type="SGD", lr=0.1), paramwise_cfg=dict(norm_decay_mult=0)),
            "needs the optimizer's weight_decay",
        ),
        (dict(optimizer=dict(type="SGD", lr=0.1), type="ApexOptimWrapper"), "ApexOptimWrapper' is not supported"),
        (dict(optimizer=dict(type="SGD", lr=0.1), clip_grad=dict(max_norm=1, norm_type=1)), "norm_type=1.0"),
        (
            dict(optimizer=dict(type="SGD", lr=0.1), clip_grad=dict(max_norm=1, error_if_nonfinite=True)),
            "error_if_nonfinite",
        ),
        (dict(optimizer=dict(type="SGD", lr=0.1), type="AmpOptimWrapper", loss_scale=512.0), "loss_scale=512.0"),
        (dict(optimizer=dict(type="SGD", lr=0.1), accumulative_counts=0), "accumulative_counts must be an int >= 1"),
        (
            dict(generator=dict(optimizer=dict(type="Adam", lr=0.1))),
            r'must contain "optimizer" config; got keys \[.generator.\]',
        ),
    ],
)
def test_bad_optim_wrapper_names_the_value(wrapper, match):
    with pytest.raises(ValueError, match=match):
        opt_cfg, paramwise, _ = parse_optim_wrapper(wrapper)
        build_optimizer(Model(), opt_cfg, paramwise)


def test_wrapper_settings_as_trainer_kwargs():
    _, _, settings = parse_optim_wrapper(
        dict(
            type="AmpOptimWrapper",
            dtype="bfloat16",
            optimizer=SGD,
            clip_grad=dict(type="value", clip_value=0.5),
            accumulative_counts=4,
        )
    )
    assert settings.trainer_kwargs() == dict(
        gradient_clip_val=0.5, gradient_clip_algorithm="value", accumulate_grad_batches=4, precision="bf16-mixed"
    )
    assert parse_optim_wrapper(dict(optimizer=SGD))[2].trainer_kwargs() == {}


# ------------------------------------------------------------------------------------ optimizer names
def test_optimizer_names_are_mmengines():
    """torch's optimizers under MMEngine's names: its ``Adafactor`` is ``TorchAdafactor`` ('Adafactor' is transformers')."""
    import inspect

    import mmengine.optim  # noqa: F401  (fills MMEngine's registry)
    from mmengine.registry import OPTIMIZERS as MMENGINE_OPTIMIZERS

    from lightning_hooks.optim import OPTIMIZERS

    theirs = {
        name: cls
        for name, cls in MMENGINE_OPTIMIZERS.module_dict.items()
        if inspect.isclass(cls) and cls.__module__.startswith("torch.optim")
    }
    ours = {name: cls for name, cls in OPTIMIZERS.module_dict.items() if cls.__module__.startswith("torch.optim")}
    assert ours == theirs
    assert "TorchAdafactor" in ours and "Adafactor" not in ours


@pytest.mark.parametrize("name", ["Adafactor", "mmengine.Adafactor"])
def test_a_package_optimizer_without_its_package_names_the_package(name):
    # MMEngine's 'Adafactor' is transformers' (not installed here); torch's has other arguments
    with pytest.raises(
        KeyError, match=r"'Adafactor' is the Adafactor of transformers .*not installed.*'TorchAdafactor'"
    ):
        build_optimizer(nn.Linear(2, 2), dict(type=name, lr=1e-3))


@pytest.fixture
def stand_in_packages(tmp_path, monkeypatch):
    """A directory on ``sys.path`` for stand-in third-party packages, and a registry restored afterwards.

    Nothing imported from it outlives the test (``sys.modules`` and ``OPTIMIZERS`` are put back).
    """
    import sys

    from lightning_hooks.optim import OPTIMIZERS

    monkeypatch.syspath_prepend(str(tmp_path))
    monkeypatch.setattr(OPTIMIZERS, "_module_dict", dict(OPTIMIZERS._module_dict))
    before = set(sys.modules)
    yield tmp_path
    for name in set(sys.modules) - before:
        if name.split(".")[0] in ("lion_pytorch", "bitsandbytes"):
            del sys.modules[name]


def test_a_package_optimizer_is_found_on_first_use(stand_in_packages):
    """Like MMEngine's registry when lion-pytorch is installed: ``type='Lion'`` is ``lion_pytorch.Lion``."""
    from lightning_hooks.optim import OPTIMIZERS

    (stand_in_packages / "lion_pytorch.py").write_text("import torch\n\n\nclass Lion(torch.optim.SGD):\n    pass\n")
    optimizer = build_optimizer(nn.Linear(2, 2), dict(type="Lion", lr=0.1))
    assert type(optimizer).__module__ == "lion_pytorch" and type(optimizer).__name__ == "Lion"
    assert OPTIMIZERS.get("Lion") is type(optimizer)  # registered once found
    with pytest.raises(KeyError, match=r"'Lino' is not registered .*Did you mean 'Lion'"):
        build_optimizer(nn.Linear(2, 2), dict(type="Lino", lr=0.1))


def test_bitsandbytes_optimizers_are_found_under_mmengines_names(stand_in_packages):
    """bitsandbytes' classes by name, ``bnb_<name>`` where torch has the name, and its ``Lion`` without lion-pytorch."""
    package = stand_in_packages / "bitsandbytes"
    package.mkdir()
    (package / "__init__.py").write_text("")
    (package / "optim.py").write_text(
        "import torch\n\n\nclass AdamW8bit(torch.optim.AdamW):\n    pass\n\n\n"
        "class Adam(torch.optim.Adam):\n    pass\n\n\nclass Lion(torch.optim.SGD):\n    pass\n"
    )

    def built(name: str) -> type:
        return type(build_optimizer(nn.Linear(2, 2), dict(type=name, lr=0.1)))

    assert (built("AdamW8bit").__module__, built("AdamW8bit").__name__) == ("bitsandbytes.optim", "AdamW8bit")
    assert built("bnb_Adam").__module__ == "bitsandbytes.optim" and built("Adam") is torch.optim.Adam
    assert built("Lion").__module__ == "bitsandbytes.optim"  # lion-pytorch is not installed here
    with pytest.raises(KeyError, match=r"'bnb_Lion' is not registered"):  # torch has no Lion: no bnb_ name
        built("bnb_Lion")
