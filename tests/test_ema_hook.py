"""EMAHook against MMEngine's EMAHook: the same scenario through MMEngine's Runner and through Trainer + HookBridge.

The toy scenario (tests/toy.py) is 12 samples in batches of 3 (4 iterations per
epoch) with a Linear(2, 1) and SGD; checkpoints are compared file by file.
"""

from __future__ import annotations

import logging
import uuid
from typing import Any, Optional

import lightning.pytorch as pl
import pytest
import torch
from mmengine.hooks import Hook as MMHook
from torch import nn
from toy import BATCH, VAL_BATCH, ToyDataset, ToyModule, _mm_classes, loaders, make_trainer

from lightning_hooks import AveragingConfigError, EMAHook, HookBridge
from lightning_hooks import Hook as LHHook

EMA = dict(type="EMAHook", momentum=0.1)
BARE = dict(type="EMAHook")


@pytest.fixture
def lenient_torch_load(monkeypatch):
    """MMEngine's own checkpoints hold Python objects; torch>=2.6 needs weights_only=False to read them."""
    original = torch.load

    def load(*args: Any, **kwargs: Any) -> Any:
        kwargs.setdefault("weights_only", False)
        return original(*args, **kwargs)

    monkeypatch.setattr(torch, "load", load)


def load(path: Any) -> dict:
    return torch.load(str(path), map_location="cpu", weights_only=False)


def run_mm(
    work_dir: Any,
    hooks: list,
    mode: str = "train",
    max_epochs: int = 2,
    load_from: Optional[str] = None,
    resume: bool = False,
    checkpoint: Optional[dict] = None,
) -> Any:
    """MMEngine's Runner on the toy scenario (with resume/load_from, which tests/toy.py does not pass)."""
    from mmengine.runner import Runner

    model_cls, metric_cls = _mm_classes()

    def loader(batch: int) -> dict:
        return dict(
            dataset=ToyDataset(),
            batch_size=batch,
            sampler=dict(type="DefaultSampler", shuffle=False),
            collate_fn=dict(type="default_collate"),
        )

    kwargs: dict[str, Any] = dict(
        model=model_cls(),
        work_dir=str(work_dir),
        experiment_name=f"mm_{uuid.uuid4().hex[:8]}",
        custom_hooks=hooks,
        default_hooks=dict(checkpoint=checkpoint or dict(type="CheckpointHook", interval=1)),
        log_level="WARNING",
        load_from=load_from,
        resume=resume,
    )
    if mode == "train":
        kwargs.update(
            train_dataloader=loader(BATCH),
            train_cfg=dict(by_epoch=True, max_epochs=max_epochs, val_interval=1),
            optim_wrapper=dict(optimizer=dict(type="SGD", lr=0.1)),
            val_dataloader=loader(VAL_BATCH),
            val_cfg=dict(),
            val_evaluator=dict(type=metric_cls),
        )
    else:
        kwargs.update(test_dataloader=loader(VAL_BATCH), test_cfg=dict(), test_evaluator=dict(type=metric_cls))
    runner = Runner(**kwargs)
    runner.train() if mode == "train" else runner.test()
    return runner


def run_lh(
    work_dir: Any,
    hooks: list,
    mode: str = "fit",
    max_epochs: int = 2,
    ckpt_path: Optional[str] = None,
    checkpoint: Optional[dict] = None,
    model: Optional[pl.LightningModule] = None,
) -> tuple[HookBridge, pl.LightningModule]:
    bridge = HookBridge(
        default_hooks=dict(checkpoint=checkpoint or dict(type="CheckpointHook", interval=1)),
        custom_hooks=hooks,
        print_hooks_table=False,
    )
    trainer = make_trainer(work_dir, bridge, max_epochs=max_epochs, num_sanity_val_steps=0)
    train, val = loaders()
    model = model or ToyModule()
    if mode == "fit":
        trainer.fit(model, train, val, ckpt_path=ckpt_path)
    else:
        trainer.test(model, val, ckpt_path=ckpt_path)
    return bridge, model


def assert_same_tensors(mine: dict, ref: dict, what: str) -> None:
    assert sorted(mine) == sorted(ref), f"{what}: keys {sorted(mine)} vs MMEngine {sorted(ref)}"
    for key, value in ref.items():
        torch.testing.assert_close(
            mine[key].float(), value.float(), rtol=1e-5, atol=1e-6, msg=f"{what}[{key}] differs from MMEngine's"
        )


def assert_same_checkpoint(mine_path: Any, ref_path: Any) -> None:
    mine, ref = load(mine_path), load(ref_path)
    assert_same_tensors(mine["state_dict"], ref["state_dict"], f"{mine_path.name} state_dict")
    assert_same_tensors(mine["ema_state_dict"], ref["ema_state_dict"], f"{mine_path.name} ema_state_dict")


def ema_hook(bridge: HookBridge) -> EMAHook:
    return next(h for h in bridge.hooks if isinstance(h, EMAHook))


class _LogCapture(logging.Handler):
    def __init__(self) -> None:
        super().__init__(logging.WARNING)
        self.messages: list[str] = []

    def emit(self, record: logging.LogRecord) -> None:
        self.messages.append(record.getMessage())


@pytest.fixture
def package_warnings():
    handler = _LogCapture()
    logger = logging.getLogger("lightning_hooks")
    logger.addHandler(handler)
    yield handler.messages
    logger.removeHandler(handler)


# ---------------------------------------------------------------------------------------------- training
@pytest.mark.parametrize(
    "cfg",
    [
        dict(momentum=0.1),
        dict(momentum=0.1, begin_epoch=2),
        dict(ema_type="MomentumAnnealingEMA", momentum=0.1, gamma=4, interval=3, update_buffers=True),
        dict(ema_type="StochasticWeightAverage", interval=2),
    ],
    ids=["ema", "begin_epoch2", "annealing_interval3", "swa"],
)
def test_checkpoints_match_mmengine(tmp_path, cfg):
    """Every epoch checkpoint: state_dict = average, ema_state_dict = raw weights + steps, as MMEngine writes them."""
    hook_cfg = {**BARE, **cfg}
    run_mm(tmp_path / "mm", [dict(hook_cfg)])
    run_lh(tmp_path / "lh", [dict(hook_cfg)])
    for epoch in (1, 2):
        name = f"epoch_{epoch}.pth"
        assert_same_checkpoint(tmp_path / "lh" / name, tmp_path / "mm" / name)
    last = load(tmp_path / "lh" / "epoch_2.pth")
    # 2 epochs x 4 iterations; before begin_epoch the weights are copied without counting.
    assert int(last["ema_state_dict"]["steps"]) == (4 if cfg.get("begin_epoch") == 2 else 8)
    raw, avg = last["ema_state_dict"]["module.linear.weight"], last["state_dict"]["linear.weight"]
    first = load(tmp_path / "lh" / "epoch_1.pth")
    if cfg.get("begin_epoch") == 2:  # before begin_epoch the average copies the weights
        torch.testing.assert_close(
            first["state_dict"]["linear.weight"], first["ema_state_dict"]["module.linear.weight"]
        )
    assert not torch.allclose(raw, avg)


def make_recorder(base: type, log: list) -> Any:
    """A VERY_LOW hook (after EMAHook and CheckpointHook) recording the weight the model holds at each evaluation point."""

    def record(stage: str) -> Any:
        def method(self: Any, runner: Any, **kwargs: Any) -> None:
            model = (
                runner.model.module
                if hasattr(runner.model, "module") and not isinstance(runner.model, pl.LightningModule)
                else runner.model
            )
            log.append((stage, runner.epoch, model.linear.weight.detach().clone()))

        return method

    stages = ("before_val_epoch", "after_val_epoch", "before_test_epoch", "after_test_epoch")
    attrs: dict[str, Any] = {s: record(s) for s in stages}
    attrs["priority"] = "VERY_LOW"
    return type("Recorder", (base,), attrs)()


def test_swap_around_validation_and_best_checkpoint(tmp_path):
    """Validation sees the average; the swap back precedes CheckpointHook's best save (same files as MMEngine)."""
    ckpt = dict(type="CheckpointHook", interval=1, save_best="acc", rule="greater")
    mm_log: list = []
    lh_log: list = []
    run_mm(tmp_path / "mm", [dict(EMA), make_recorder(MMHook, mm_log)], checkpoint=ckpt)
    bridge, model = run_lh(tmp_path / "lh", [dict(EMA), make_recorder(LHHook, lh_log)], checkpoint=ckpt)
    assert (
        [(s, e) for s, e, _ in lh_log]
        == [(s, e) for s, e, _ in mm_log]
        == [
            ("before_val_epoch", 1),
            ("after_val_epoch", 1),
            ("before_val_epoch", 2),
            ("after_val_epoch", 2),
        ]
    )
    for (stage, epoch, mine), (_, _, ref) in zip(lh_log, mm_log, strict=True):
        torch.testing.assert_close(mine, ref, rtol=1e-5, atol=1e-6, msg=f"{stage} of epoch {epoch}")
    mm_best = sorted(p.name for p in (tmp_path / "mm").glob("best_*.pth"))
    lh_best = sorted(p.name for p in (tmp_path / "lh").glob("best_*.pth"))
    assert lh_best == mm_best and lh_best
    for name in lh_best:
        assert_same_checkpoint(tmp_path / "lh" / name, tmp_path / "mm" / name)
        epoch_file = load(tmp_path / "lh" / f"epoch_{name.rsplit('_', 1)[1]}")
        best = load(tmp_path / "lh" / name)
        # Saved after the swap back: the best file holds the same (average, raw) pair as the epoch file.
        torch.testing.assert_close(best["state_dict"]["linear.weight"], epoch_file["state_dict"]["linear.weight"])
        torch.testing.assert_close(
            best["ema_state_dict"]["module.linear.weight"], epoch_file["ema_state_dict"]["module.linear.weight"]
        )
    # Validation ran on the average, and the model was back on its raw weights right after.
    last = load(tmp_path / "lh" / "epoch_2.pth")
    torch.testing.assert_close(lh_log[2][2], last["state_dict"]["linear.weight"])
    torch.testing.assert_close(lh_log[3][2], last["ema_state_dict"]["module.linear.weight"])
    # After fit the model keeps its trained weights; the export gives the average.
    torch.testing.assert_close(model.linear.weight.detach(), last["ema_state_dict"]["module.linear.weight"])
    hook = ema_hook(bridge)
    torch.testing.assert_close(hook.averaged_state_dict()["linear.weight"], last["state_dict"]["linear.weight"])
    out = hook.save_averaged(tmp_path / "export" / "ema.pth")
    exported = torch.load(out, weights_only=True)
    assert exported["meta"]["ema_steps"] == 8
    torch.testing.assert_close(exported["state_dict"]["linear.bias"], last["state_dict"]["linear.bias"])
    hook.save_averaged("memory://ema/avg.pth")
    import fsspec

    with fsspec.open("memory://ema/avg.pth", "rb") as f:
        assert torch.load(f, weights_only=True)["meta"]["ema_steps"] == 8


def _swapping_subclass(base: type) -> Any:
    """mmpretrain's EMAHook pattern: its own evaluation swaps through MMEngine's ``_swap_ema_parameters``."""

    class SwapsItself(base):  # type: ignore[misc, valid-type]
        def before_val_epoch(self, runner: Any) -> None:
            self._swap_ema_parameters()

        def after_val_epoch(self, runner: Any, metrics: Any = None) -> None:
            self._swap_ema_parameters()

    return SwapsItself(momentum=0.1)


def test_a_subclass_swapping_with_mmengines_method_validates_on_the_average(tmp_path):
    from mmengine.hooks import EMAHook as MMEMAHook

    mm_log: list = []
    lh_log: list = []
    run_mm(tmp_path / "mm", [_swapping_subclass(MMEMAHook), make_recorder(MMHook, mm_log)])
    run_lh(tmp_path / "lh", [_swapping_subclass(EMAHook), make_recorder(LHHook, lh_log)])
    assert [(s, e) for s, e, _ in lh_log] == [(s, e) for s, e, _ in mm_log] and len(lh_log) == 4
    for (stage, epoch, mine), (_, _, ref) in zip(lh_log, mm_log, strict=True):
        torch.testing.assert_close(mine, ref, rtol=1e-5, atol=1e-6, msg=f"{stage} of epoch {epoch}")
    assert not torch.equal(lh_log[0][2], lh_log[1][2])  # validation saw other weights than training


# ---------------------------------------------------------------------------------------------- resume and load
@pytest.mark.slow
def test_resume_from_ema_checkpoint_matches_mmengine(tmp_path, lenient_torch_load):
    run_mm(tmp_path / "mm", [dict(EMA)])
    run_lh(tmp_path / "lh", [dict(EMA)])
    run_mm(tmp_path / "mm_resumed", [dict(EMA)], load_from=str(tmp_path / "mm" / "epoch_1.pth"), resume=True)
    bridge, _model = run_lh(tmp_path / "lh_resumed", [dict(EMA)], ckpt_path=str(tmp_path / "lh" / "epoch_1.pth"))
    assert_same_checkpoint(tmp_path / "lh_resumed" / "epoch_2.pth", tmp_path / "mm_resumed" / "epoch_2.pth")
    # Resuming gives what the uninterrupted run gave: training weights and average both restored, steps == 8.
    assert_same_checkpoint(tmp_path / "lh_resumed" / "epoch_2.pth", tmp_path / "lh" / "epoch_2.pth")
    assert ema_hook(bridge).ema_model.steps == 8


@pytest.mark.slow
def test_resume_from_plain_checkpoint_warns_and_starts_from_its_weights(tmp_path, lenient_torch_load, package_warnings):
    run_mm(tmp_path / "mm", [])
    run_lh(tmp_path / "lh", [])
    assert "ema_state_dict" not in load(tmp_path / "lh" / "epoch_1.pth")
    run_mm(tmp_path / "mm_resumed", [dict(EMA)], load_from=str(tmp_path / "mm" / "epoch_1.pth"), resume=True)
    _bridge, _ = run_lh(tmp_path / "lh_resumed", [dict(EMA)], ckpt_path=str(tmp_path / "lh" / "epoch_1.pth"))
    assert any("There is no `ema_state_dict` in checkpoint" in m for m in package_warnings)
    assert_same_checkpoint(tmp_path / "lh_resumed" / "epoch_2.pth", tmp_path / "mm_resumed" / "epoch_2.pth")
    assert int(load(tmp_path / "lh_resumed" / "epoch_2.pth")["ema_state_dict"]["steps"]) == 4


def test_test_with_ema_checkpoint_uses_its_state_dict_like_mmengine(tmp_path, lenient_torch_load):
    """Loading (not resuming): model and average both get state_dict, i.e. the averaged weights."""
    run_lh(tmp_path / "lh", [dict(EMA)])
    run_mm(tmp_path / "mm", [dict(EMA)])
    mm_log: list = []
    lh_log: list = []
    run_mm(
        tmp_path / "mm_test",
        [dict(EMA), make_recorder(MMHook, mm_log)],
        mode="test",
        load_from=str(tmp_path / "mm" / "epoch_2.pth"),
    )
    bridge, _model = run_lh(
        tmp_path / "lh_test",
        [dict(EMA), make_recorder(LHHook, lh_log)],
        mode="test",
        ckpt_path=str(tmp_path / "lh" / "epoch_2.pth"),
    )
    saved = load(tmp_path / "lh" / "epoch_2.pth")
    assert [s for s, _, _ in lh_log] == [s for s, _, _ in mm_log] == ["before_test_epoch", "after_test_epoch"]
    for (_, _, mine), (_, _, ref) in zip(lh_log, mm_log, strict=True):
        torch.testing.assert_close(mine, ref, rtol=1e-5, atol=1e-6)
        torch.testing.assert_close(mine, saved["state_dict"]["linear.weight"])
    assert ema_hook(bridge).ema_model.steps == 0


class WideToy(ToyModule):
    """The toy model plus an extra layer, to make a checkpoint with a key the toy model lacks."""

    def __init__(self) -> None:
        super().__init__()
        self.extra = nn.Linear(2, 2)


@pytest.mark.parametrize("strict_load", [False, True])
def test_strict_load_both_ways(tmp_path, strict_load, package_warnings):
    run_lh(tmp_path / "wide", [], model=WideToy(), max_epochs=1)
    model = ToyModule()
    model.strict_loading = False  # Lightning's own load into the model must tolerate the extra layer
    hook = dict(EMA, strict_load=strict_load)
    ckpt = str(tmp_path / "wide" / "epoch_1.pth")
    if strict_load:
        with pytest.raises(RuntimeError, match=r"unexpected key in source state_dict: extra\.weight"):
            run_lh(tmp_path / "test", [hook], mode="test", ckpt_path=ckpt, model=model)
        return
    bridge, _ = run_lh(tmp_path / "test", [hook], mode="test", ckpt_path=ckpt, model=model)
    assert any("unexpected key in source state_dict: extra.weight" in m for m in package_warnings)
    saved = load(ckpt)["state_dict"]
    torch.testing.assert_close(ema_hook(bridge).ema_model.module.linear.weight, saved["linear.weight"])


# ---------------------------------------------------------------------------------------------- buffers, config
class BNToy(ToyModule):
    def __init__(self) -> None:
        super().__init__()
        self.bn = nn.BatchNorm1d(2)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.linear(self.bn(x)).squeeze(-1)


def test_batchnorm_counter_keeps_counting_in_the_average(tmp_path):
    from lightning_hooks import ExponentialMovingAverage

    hook = EMAHook(ema_type=ExponentialMovingAverage, momentum=0.1, update_buffers=True)  # a class works as well
    bridge, model = run_lh(tmp_path, [hook], model=BNToy())
    saved = load(tmp_path / "epoch_2.pth")
    assert int(model.bn.num_batches_tracked) == 8
    assert int(saved["state_dict"]["bn.num_batches_tracked"]) == 8  # the average's (MMEngine: frozen at 1)
    assert int(saved["ema_state_dict"]["module.bn.num_batches_tracked"]) == 8
    assert not torch.allclose(saved["state_dict"]["bn.running_mean"], saved["ema_state_dict"]["module.bn.running_mean"])
    assert int(ema_hook(bridge).averaged_state_dict()["bn.num_batches_tracked"]) == 8


def test_begin_iter_in_iteration_based_training_matches_mmengine(tmp_path):
    """MMEngine's test: begin_iter=5 → iter_4.pth has state_dict == ema_state_dict, iter_5.pth an average."""
    from mmengine.runner import Runner

    ckpt = dict(type="CheckpointHook", interval=1, by_epoch=False)
    hook_cfg = dict(EMA, begin_iter=5)
    model_cls, _metric_cls = _mm_classes()
    Runner(
        model=model_cls(),
        work_dir=str(tmp_path / "mm"),
        experiment_name=f"mm_{uuid.uuid4().hex[:8]}",
        custom_hooks=[dict(hook_cfg)],
        default_hooks=dict(checkpoint=ckpt),
        log_level="WARNING",
        train_dataloader=dict(
            dataset=ToyDataset(),
            batch_size=BATCH,
            sampler=dict(type="InfiniteSampler", shuffle=False),
            collate_fn=dict(type="default_collate"),
        ),
        train_cfg=dict(by_epoch=False, max_iters=7, val_interval=100),
        optim_wrapper=dict(optimizer=dict(type="SGD", lr=0.1)),
    ).train()
    bridge = HookBridge(default_hooks=dict(checkpoint=ckpt), custom_hooks=[dict(hook_cfg)], print_hooks_table=False)
    train, _ = loaders()
    trainer = make_trainer(tmp_path / "lh", bridge, max_steps=7, max_epochs=-1, limit_val_batches=0)
    trainer.fit(ToyModule(), train)
    for it in range(1, 8):
        assert_same_checkpoint(tmp_path / "lh" / f"iter_{it}.pth", tmp_path / "mm" / f"iter_{it}.pth")
    # Before begin_iter the average copies; the first started update copies too (steps 0), then it averages.
    four, five, six = (load(tmp_path / "lh" / f"iter_{it}.pth") for it in (4, 5, 6))
    for ckpt, steps in ((four, 0), (five, 1)):
        torch.testing.assert_close(ckpt["state_dict"]["linear.weight"], ckpt["ema_state_dict"]["module.linear.weight"])
        assert int(ckpt["ema_state_dict"]["steps"]) == steps
    assert not torch.allclose(six["state_dict"]["linear.weight"], six["ema_state_dict"]["module.linear.weight"])


def test_bad_configuration_names_the_value(tmp_path):
    with pytest.raises(AssertionError, match="should not be both set"):
        EMAHook(begin_iter=1, begin_epoch=1)
    with pytest.raises(ValueError, match="begin_iter: -1"):
        EMAHook(begin_iter=-1)
    with pytest.raises(
        AveragingConfigError, match=r"'ExponentialMovingAvg' is not a registered.*ExponentialMovingAverage"
    ):
        EMAHook(ema_type="ExponentialMovingAvg")
    with pytest.raises(AveragingConfigError, match="subclass of"):
        EMAHook(ema_type=nn.Linear)
    with pytest.raises(AveragingConfigError, match=r"device='gpu' is not a device"):
        EMAHook(device="gpu")
    with pytest.raises(AveragingConfigError, match=r"device must be a str, a torch.device or None, got 5.5"):
        EMAHook(device=5.5)
    with pytest.raises(AveragingConfigError, match=r"update_buffers must be True or False"):
        EMAHook(update_buffers="False")
    with pytest.raises(
        AveragingConfigError, match=r"self\.begin_epoch should be smaller than or equal to runner\.max_epochs: 2"
    ):
        run_lh(tmp_path, [dict(EMA, begin_epoch=3)])


def test_fsdp1_modules_are_refused_naming_what_to_use(tmp_path):
    """FSDP1's flat parameters cannot be matched to the model's: refused before any training, naming FSDP2."""
    import torch.distributed as dist
    from torch.distributed.fsdp import FullyShardedDataParallel

    store = dist.HashStore()
    dist.init_process_group("gloo", store=store, rank=0, world_size=1)
    try:
        model = ToyModule()
        model.linear = FullyShardedDataParallel(model.linear, device_id=torch.device("cpu"))
        with pytest.raises(RuntimeError, match=r"does not support FSDP1.*ModelParallelStrategy.*fully_shard"):
            run_lh(tmp_path, [dict(EMA)], model=model)
    finally:
        dist.destroy_process_group()


# ---------------------------------------------------------------------------------------------- Lightning's own pieces
def test_lightning_model_checkpoint_saves_after_the_swap_back(tmp_path):
    """Lightning's ModelCheckpoint saves in on_validation_end, after the bridge swapped back: same layout, same weights."""
    from lightning.pytorch.callbacks import ModelCheckpoint

    bridge = HookBridge(custom_hooks=[dict(EMA)], print_hooks_table=False)
    best = ModelCheckpoint(dirpath=str(tmp_path / "pl"), monitor="acc", mode="max", save_top_k=1, filename="best")
    trainer = make_trainer(
        tmp_path, bridge, max_epochs=2, num_sanity_val_steps=0, enable_checkpointing=True, callbacks=[bridge, best]
    )
    train, val = loaders()
    trainer.fit(ToyModule(), train, val)
    saved = load(best.best_model_path)
    epoch = saved["epoch"] + 1
    ours = load(tmp_path / f"epoch_{epoch}.pth")  # CheckpointHook's file of the same epoch (same weights)
    assert_same_tensors(saved["state_dict"], ours["state_dict"], "ModelCheckpoint state_dict")
    assert_same_tensors(saved["ema_state_dict"], ours["ema_state_dict"], "ModelCheckpoint ema_state_dict")


class SanityProbe(ToyModule):
    """Records the weight used by every validation step, and whether it was Lightning's sanity check."""

    def __init__(self) -> None:
        super().__init__()
        self.seen: list[tuple[bool, torch.Tensor]] = []

    def validation_step(self, batch: dict, batch_idx: int) -> None:
        self.seen.append((self.trainer.sanity_checking, self.linear.weight.detach().clone()))
        super().validation_step(batch, batch_idx)


def test_sanity_check_runs_on_raw_weights_and_leaves_the_average_alone(tmp_path):
    # save_best: epoch_1.pth is re-saved after its validation (a first best), so the resume does not
    # repeat that validation and Lightning runs its sanity check.
    best = dict(type="CheckpointHook", interval=1, save_best="acc")
    run_lh(tmp_path / "first", [dict(EMA)], max_epochs=1, checkpoint=best)
    ckpt = load(tmp_path / "first" / "epoch_1.pth")
    bridge = HookBridge(custom_hooks=[dict(EMA)], print_hooks_table=False, default_hooks=dict(checkpoint=None))
    trainer = make_trainer(tmp_path / "resumed", bridge, max_epochs=2, num_sanity_val_steps=1)
    model = SanityProbe()
    train, val = loaders()
    trainer.fit(model, train, val, ckpt_path=str(tmp_path / "first" / "epoch_1.pth"))
    sanity = [w for checking, w in model.seen if checking]
    real = [w for checking, w in model.seen if not checking]
    assert len(sanity) == 1 and len(real) == 2
    raw, avg = ckpt["ema_state_dict"]["module.linear.weight"], ckpt["state_dict"]["linear.weight"]
    assert not torch.allclose(raw, avg)
    torch.testing.assert_close(sanity[0], raw)  # no swap during the sanity check
    assert ema_hook(bridge).ema_model.steps == 8  # 4 restored + 4 of epoch 2; the sanity check added none


def test_no_host_reads_in_any_training_iteration(tmp_path):
    """Across a real fit, EMAHook's per-iteration work never reads a tensor back to the host."""
    from test_averaging import _CountSyncs

    counts: list[int] = []

    class CountedEMAHook(EMAHook):
        def after_train_iter(self, runner, batch_idx, data_batch=None, outputs=None):
            with _CountSyncs() as counter:
                super().after_train_iter(runner, batch_idx, data_batch, outputs)
            counts.append(counter.count)

    hooks = [
        CountedEMAHook(ema_type="MomentumAnnealingEMA", momentum=0.1, gamma=4, interval=2, update_buffers=True),
        CountedEMAHook(momentum=0.1, begin_iter=3),  # also the copies made before begin_iter
    ]
    for i, hook in enumerate(hooks):  # one EMAHook per bridge: a second one is refused
        run_lh(tmp_path / str(i), [hook], model=BNToy())
    assert len(counts) == 16 and counts == [0] * 16


def test_resuming_an_ema_checkpoint_without_ema_hook_is_said(tmp_path):
    """The checkpoint's state_dict is the average: without EMAHook, training would go on from it, silently in MMEngine."""
    import warnings

    train, val = loaders()
    no_ckpt_defaults = dict(logger=None)
    first = HookBridge(work_dir=str(tmp_path), default_hooks=no_ckpt_defaults, custom_hooks=[EMAHook(momentum=0.5)])
    make_trainer(tmp_path, first, max_epochs=1).fit(ToyModule(), train, val)

    def resume(custom_hooks: list, max_epochs: int) -> list[str]:
        bridge = HookBridge(
            work_dir=str(tmp_path), default_hooks=no_ckpt_defaults, custom_hooks=custom_hooks, resume=True
        )
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            make_trainer(tmp_path, bridge, max_epochs=max_epochs).fit(ToyModule(), train, val)
        return [str(w.message) for w in caught if "saved with EMAHook" in str(w.message)]

    said = resume([], 2)
    assert len(said) == 1 and "Add EMAHook to custom_hooks" in said[0]
    assert resume([EMAHook(momentum=0.5)], 3) == []
    tested = HookBridge(work_dir=str(tmp_path), default_hooks=no_ckpt_defaults)
    with warnings.catch_warnings(record=True) as caught:  # evaluating the average is what a test run wants
        warnings.simplefilter("always")
        make_trainer(tmp_path, tested).test(ToyModule(), val, ckpt_path=str(tmp_path / "epoch_1.pth"))
    assert not [w for w in caught if "saved with EMAHook" in str(w.message)]


class _Versioned(nn.Module):
    """Version 2 swapped the roles of ``a`` and ``b``; a file without the version is converted."""

    _version = 2

    def __init__(self) -> None:
        super().__init__()
        self.a = nn.Parameter(torch.zeros(2))
        self.b = nn.Parameter(torch.ones(2))

    def _load_from_state_dict(self, state_dict, prefix, local_metadata, *args, **kwargs):
        if (local_metadata.get("version") or 1) < 2:
            state_dict[prefix + "a"], state_dict[prefix + "b"] = state_dict[prefix + "b"], state_dict[prefix + "a"]
        super()._load_from_state_dict(state_dict, prefix, local_metadata, *args, **kwargs)


def test_ema_loads_keep_the_module_versions_of_the_checkpoint():
    """MMEngine's load_state_dict keeps ``_metadata``: a current file must not be converted as an old one."""
    from lightning_hooks.hooks.ema_hook import _load_weights

    source, target = nn.Sequential(_Versioned()), nn.Sequential(_Versioned())
    with torch.no_grad():
        source[0].a.fill_(3.0)
        source[0].b.fill_(4.0)
    _load_weights(target, source.state_dict(), True, "the averaged model", logging.getLogger("test"))
    assert torch.equal(target[0].a, source[0].a) and torch.equal(target[0].b, source[0].b)
