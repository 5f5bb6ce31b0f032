"""MMEngine's ``optim_wrapper`` section: the optimizer, its per-parameter settings, and the wrapper's options.

:func:`build_optimizer` gives the same parameter groups (order, ``lr``, ``weight_decay``
and the extra keys) as MMEngine's ``DefaultOptimWrapperConstructor``:

* without ``paramwise_cfg`` the optimizer gets ``model.parameters()`` in one group;
* with it, every parameter gets its own group, visited module by module
  (``named_children`` recursively, ``named_parameters(recurse=False)``), parameters with
  ``requires_grad=False`` are left out, and the first matching rule sets the group:
  the longest matching ``custom_keys`` entry (``lr_mult``, ``decay_mult`` and its other keys
  are copied into the group); otherwise ``bias_lr_mult`` for biases outside norm layers,
  and for weight decay the first of ``norm_decay_mult`` (BatchNorm, InstanceNorm, GroupNorm,
  LayerNorm), ``bias_decay_mult``, ``dwconv_decay_mult`` (depth-wise ``Conv2d``) and
  ``flat_decay_mult`` (1-d parameters) that applies.

The wrapper's own options have Trainer equivalents (:class:`WrapperSettings`):
``clip_grad`` → gradient clipping, ``accumulative_counts`` → ``accumulate_grad_batches``,
``type='AmpOptimWrapper'`` (``dtype``) → ``precision``. Every other key is an error naming it.
"""

from __future__ import annotations

import importlib
import importlib.util
import inspect
import logging
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, Optional

import torch
from torch import nn
from torch.nn.modules.batchnorm import _BatchNorm
from torch.nn.modules.instancenorm import _InstanceNorm

from ..config_reader import without_delete_keys
from ..errors import OptimConfigError, OptimKeyError
from ..registry import Registry, mmengine_class_name, to_plain

__all__ = ["OPTIMIZERS", "WrapperSettings", "build_optimizer", "parse_optim_wrapper", "wrapper_settings"]

#: Optimizer classes by name, as MMEngine's registry names them: every ``torch.optim`` optimizer
#: (with the base class ``Optimizer``; torch's ``Adafactor`` as ``TorchAdafactor``, since MMEngine
#: gives ``Adafactor`` to transformers'), and whatever users register. The optimizers MMEngine
#: registers from other installed packages are found on first use (see ``_PACKAGE_OPTIMIZERS``).
OPTIMIZERS = Registry("optimizer")
for _name, _cls in inspect.getmembers(torch.optim, inspect.isclass):
    if issubclass(_cls, torch.optim.Optimizer):
        OPTIMIZERS.register_module(name="TorchAdafactor" if _name == "Adafactor" else _name, module=_cls)

#: Optimizers MMEngine registers when their package is installed: name -> (package, module).
#: bitsandbytes' (``AdamW8bit``, ``PagedLion8bit``, ...; ``bnb_<name>`` where torch has the name)
#: are looked up in ``bitsandbytes.optim`` by name.
_PACKAGE_OPTIMIZERS = {
    "DAdaptAdaGrad": ("dadaptation", "dadaptation"),
    "DAdaptAdam": ("dadaptation", "dadaptation"),
    "DAdaptSGD": ("dadaptation", "dadaptation"),
    "Lion": ("lion-pytorch", "lion_pytorch"),
    "Adafactor": ("transformers", "transformers"),
}

_logger = logging.getLogger("lightning_hooks")

WRAPPER_TYPES = ("OptimWrapper", "AmpOptimWrapper")
WRAPPER_KEYS = {"type", "optimizer", "paramwise_cfg", "constructor", "clip_grad", "accumulative_counts"}
AMP_KEYS = {"dtype", "loss_scale"}
PARAMWISE_KEYS = (
    "custom_keys",
    "bias_lr_mult",
    "bias_decay_mult",
    "norm_decay_mult",
    "dwconv_decay_mult",
    "flat_decay_mult",
    "bypass_duplicate",
    "dcn_offset_lr_mult",
)
_NORMS = (_BatchNorm, _InstanceNorm, nn.GroupNorm, nn.LayerNorm)
_DCN_TYPES = ("DeformConv2d", "ModulatedDeformConv2d")
_AMP_PRECISION = {None: "16-mixed", "float16": "16-mixed", "bfloat16": "bf16-mixed"}


@dataclass(frozen=True)
class WrapperSettings:
    """What the ``optim_wrapper`` asks of the training loop, in Lightning Trainer terms.

    Attributes:
        gradient_clip_val: ``clip_grad.max_norm`` or ``clip_grad.clip_value``, or None.
        gradient_clip_algorithm: ``'norm'`` or ``'value'`` (None without clipping).
        accumulate_grad_batches: ``accumulative_counts``.
        precision: ``'32-true'``, or ``'16-mixed'``/``'bf16-mixed'`` for ``AmpOptimWrapper``.
    """

    gradient_clip_val: Optional[float] = None
    gradient_clip_algorithm: Optional[str] = None
    accumulate_grad_batches: int = 1
    precision: str = "32-true"

    def trainer_kwargs(self) -> dict[str, Any]:
        """The Trainer arguments that reproduce these settings (defaults left out)."""
        kwargs: dict[str, Any] = {}
        if self.gradient_clip_val is not None:
            kwargs["gradient_clip_val"] = self.gradient_clip_val
            kwargs["gradient_clip_algorithm"] = self.gradient_clip_algorithm
        if self.accumulate_grad_batches != 1:
            kwargs["accumulate_grad_batches"] = self.accumulate_grad_batches
        if self.precision != "32-true":
            kwargs["precision"] = self.precision
        return kwargs


def _clip_settings(clip_grad: Any) -> tuple[Optional[float], Optional[str]]:
    if clip_grad is None:
        return None, None
    if not isinstance(clip_grad, Mapping) or not clip_grad:
        raise ValueError(f"optim_wrapper.clip_grad must be a non-empty dict, got {clip_grad!r}")
    clip = dict(clip_grad)
    kind = clip.pop("type", "norm")
    if kind == "norm":
        if "max_norm" not in clip:
            raise ValueError(f"optim_wrapper.clip_grad (type 'norm') needs max_norm, got {clip_grad!r}")
        value = clip.pop("max_norm")
        norm_type = float(clip.pop("norm_type", 2.0))
        if norm_type != 2.0:
            raise ValueError(
                f"optim_wrapper.clip_grad.norm_type={norm_type}: Lightning's gradient clipping uses the 2-norm only"
            )
    elif kind == "value":
        if "clip_value" not in clip:
            raise ValueError(f"optim_wrapper.clip_grad (type 'value') needs clip_value, got {clip_grad!r}")
        value = clip.pop("clip_value")
    else:
        raise ValueError(f"optim_wrapper.clip_grad.type must be 'norm' or 'value', got {kind!r}")
    if clip:
        raise ValueError(
            f"optim_wrapper.clip_grad: {sorted(clip)} have no equivalent in Lightning's gradient clipping "
            "(it takes only the threshold)"
        )
    name = "max_norm" if kind == "norm" else "clip_value"
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not value > 0:
        # Lightning skips clipping for a threshold <= 0, where torch would zero or flip the gradients
        raise ValueError(f"optim_wrapper.clip_grad.{name} must be a number > 0, got {value!r}")
    return float(value), kind


def _as_dict(cfg: Any) -> dict[str, Any]:
    """``optim_wrapper`` as a plain dict, without the merge syntax and the registry scope.

    ``_scope_`` (which ``mmengine.Config`` adds to a typed dict of an ``mmdet::`` base) only picks
    the registry MMEngine builds from; names are looked up here without scopes, so it is dropped.
    """
    if not isinstance(cfg, Mapping):  # mmengine's ConfigDict and OmegaConf's DictConfig are Mappings
        raise TypeError(f"optim_wrapper must be a dict, got {type(cfg).__name__}")
    plain: dict[str, Any] = without_delete_keys(to_plain(dict(cfg.items())))  # merge syntax left over, ignored
    plain.pop("_scope_", None)
    return plain


def _type_name(value: Any) -> Any:
    """The name a wrapper or constructor ``type`` gives: a dotted or scoped name's last part, or the
    name of one of MMEngine's own classes; any other value is returned as it is (and refused)."""
    if isinstance(value, str):
        return value.rsplit(".", 1)[-1]
    return mmengine_class_name(value) or value


def wrapper_settings(cfg: Mapping[str, Any]) -> WrapperSettings:
    """The Trainer side of an ``optim_wrapper`` (clipping, accumulation, precision) only.

    Used where the optimizer itself is built elsewhere (any ``constructor``); raises a ValueError
    naming a wrapper type, ``dtype``, ``loss_scale``, ``accumulative_counts`` or ``clip_grad`` that
    Lightning cannot honour.
    """
    cfg = _as_dict(cfg)
    wrapper_type = _type_name(cfg.get("type", "OptimWrapper"))
    if wrapper_type not in WRAPPER_TYPES:
        raise ValueError(
            f"optim_wrapper.type={cfg.get('type')!r} is not supported; supported: {list(WRAPPER_TYPES)} "
            "(by name, or MMEngine's classes of these names)"
        )
    precision = "32-true"
    if wrapper_type == "AmpOptimWrapper":
        dtype = cfg.get("dtype")
        if dtype not in _AMP_PRECISION:
            raise ValueError(f"optim_wrapper.dtype={dtype!r} is not supported; use 'float16' or 'bfloat16'")
        if cfg.get("loss_scale", "dynamic") != "dynamic":
            raise ValueError(
                f"optim_wrapper.loss_scale={cfg['loss_scale']!r}: Lightning's mixed precision uses a dynamic "
                "loss scale; remove loss_scale or pass a MixedPrecision plugin with your own GradScaler"
            )
        precision = _AMP_PRECISION[dtype]
    accumulate = cfg.get("accumulative_counts", 1)
    if not isinstance(accumulate, int) or isinstance(accumulate, bool) or accumulate < 1:
        raise ValueError(f"optim_wrapper.accumulative_counts must be an int >= 1, got {accumulate!r}")
    clip_val, clip_algorithm = _clip_settings(cfg.get("clip_grad"))
    return WrapperSettings(clip_val, clip_algorithm, accumulate, precision)


def parse_optim_wrapper(cfg: Mapping[str, Any]) -> tuple[dict[str, Any], dict[str, Any], WrapperSettings]:
    """Split an ``optim_wrapper`` config into (optimizer config, paramwise_cfg, :class:`WrapperSettings`).

    Raises a ValueError naming any key, wrapper type or constructor that cannot be honoured.
    """
    cfg = _as_dict(cfg)
    if "optimizer" not in cfg:
        keys = sorted(cfg)
        raise OptimConfigError(
            f'`optim_wrapper_cfg` must contain "optimizer" config; got keys {keys}. Several optimizers (one '
            "wrapper per key) need manual optimization in Lightning and are not supported by mmengine_optimizers"
        )
    settings = wrapper_settings(cfg)
    wrapper_type = _type_name(cfg.get("type", "OptimWrapper"))
    allowed = WRAPPER_KEYS | (AMP_KEYS if wrapper_type == "AmpOptimWrapper" else set())
    unknown = sorted(set(cfg) - allowed)
    if unknown:
        raise ValueError(f"optim_wrapper: unsupported keys {unknown} for {wrapper_type}; supported: {sorted(allowed)}")
    constructor = cfg.get("constructor", "DefaultOptimWrapperConstructor")
    if _type_name(constructor) != "DefaultOptimWrapperConstructor":
        raise OptimKeyError(
            f"optim_wrapper.constructor={constructor!r} is not supported; only MMEngine's "
            "DefaultOptimWrapperConstructor rules are built in (build the optimizer yourself for others)"
        )
    paramwise = _paramwise_dict(cfg.get("paramwise_cfg"))  # checked first, as MMEngine's constructor does
    optimizer_cfg = cfg["optimizer"]
    if not isinstance(optimizer_cfg, Mapping) or "type" not in optimizer_cfg:
        raise ValueError(f"optim_wrapper.optimizer must be a dict with a 'type', got {optimizer_cfg!r}")
    return dict(optimizer_cfg), paramwise, settings


def _paramwise_dict(paramwise: Any) -> dict[str, Any]:
    """``paramwise_cfg`` as a dict (None: no rules); anything else is MMEngine's TypeError."""
    if paramwise is None:
        return {}
    if not isinstance(paramwise, Mapping):
        raise TypeError(f"paramwise_cfg should be None or a dict, but got {type(paramwise).__name__}: {paramwise!r}")
    return dict(paramwise)


# ------------------------------------------------------------------------------------ paramwise rules
class _ParamwiseRules:
    """MMEngine's ``DefaultOptimWrapperConstructor.add_params`` rules for one optimizer config."""

    def __init__(self, paramwise: Mapping[str, Any], base_lr: Optional[float], base_wd: Optional[float]) -> None:
        unknown = sorted(set(paramwise) - set(PARAMWISE_KEYS))
        if unknown:
            raise ValueError(f"paramwise_cfg: unknown keys {unknown}; supported: {list(PARAMWISE_KEYS)}")
        custom_keys = paramwise.get("custom_keys", {})
        if not isinstance(custom_keys, Mapping):
            raise TypeError(f"paramwise_cfg.custom_keys must be a dict, got {type(custom_keys).__name__}")
        if base_wd is None:
            for key, options in custom_keys.items():
                if "decay_mult" in options:
                    raise ValueError(
                        f"paramwise_cfg.custom_keys[{key!r}] sets decay_mult but the optimizer has no weight_decay"
                    )
            for key in ("bias_decay_mult", "norm_decay_mult", "dwconv_decay_mult"):
                if key in paramwise:
                    raise ValueError(f"paramwise_cfg.{key} needs the optimizer's weight_decay, which is not set")
        self.custom_keys = dict(custom_keys)
        # longest key first; equal lengths in alphabetical order (MMEngine's order)
        self.sorted_keys = sorted(sorted(self.custom_keys), key=len, reverse=True)
        self.base_lr = base_lr
        self.base_wd = base_wd
        self.bias_lr_mult = paramwise.get("bias_lr_mult")
        self.bias_decay_mult = paramwise.get("bias_decay_mult")
        self.norm_decay_mult = paramwise.get("norm_decay_mult")
        self.dwconv_decay_mult = paramwise.get("dwconv_decay_mult")
        self.flat_decay_mult = paramwise.get("flat_decay_mult")
        self.dcn_offset_lr_mult = paramwise.get("dcn_offset_lr_mult")
        self.bypass_duplicate = bool(paramwise.get("bypass_duplicate", False))
        #: The custom keys that matched a parameter name (the others are named once all are grouped).
        self.matched_keys: set[str] = set()

    def add_params(self, groups: list[dict[str, Any]], module: nn.Module, prefix: str = "", is_dcn: Any = None) -> None:
        """Append one group per parameter of ``module`` and its children (depth first)."""
        is_norm = isinstance(module, _NORMS)
        is_dwconv = isinstance(module, nn.Conv2d) and module.in_channels == module.groups
        for name, param in module.named_parameters(recurse=False):
            full_name = f"{prefix}.{name}"
            if self.bypass_duplicate and any(param is p for g in groups for p in g["params"]):
                _logger.warning(f"{prefix} is duplicate. It is skipped since bypass_duplicate=True")
                continue
            if not param.requires_grad:
                _logger.warning(f"{full_name} is skipped since its requires_grad=False")
                continue
            group: dict[str, Any] = {"params": [param]}
            if not self._apply_custom_key(group, full_name):
                self._apply_default_rules(group, module, name, param, prefix, is_norm, is_dwconv, is_dcn)
            groups.append(group)
        child_is_dcn = type(module).__name__ in _DCN_TYPES
        for child_name, child in module.named_children():
            child_prefix = f"{prefix}.{child_name}" if prefix else child_name
            self.add_params(groups, child, prefix=child_prefix, is_dcn=child_is_dcn)

    def _apply_custom_key(self, group: dict[str, Any], full_name: str) -> bool:
        for key in self.sorted_keys:
            if key in full_name:
                self.matched_keys.add(key)
                options = self.custom_keys[key]
                group["lr"] = self.base_lr * options.get("lr_mult", 1.0)  # type: ignore[operator]
                if self.base_wd is not None:
                    group["weight_decay"] = self.base_wd * options.get("decay_mult", 1.0)
                group.update(options)
                return True
        return False

    def _apply_default_rules(
        self,
        group: dict[str, Any],
        module: nn.Module,
        name: str,
        param: torch.Tensor,
        prefix: str,
        is_norm: bool,
        is_dwconv: bool,
        is_dcn: Any,
    ) -> None:
        if name == "bias" and not (is_norm or is_dcn) and self.bias_lr_mult is not None:
            group["lr"] = self.base_lr * self.bias_lr_mult  # type: ignore[operator]
        if (
            prefix.find("conv_offset") != -1
            and is_dcn
            and self.dcn_offset_lr_mult is not None
            and isinstance(module, nn.Conv2d)
        ):
            group["lr"] = self.base_lr * self.dcn_offset_lr_mult  # type: ignore[operator]
        if self.base_wd is None:
            return
        if is_norm and self.norm_decay_mult is not None:
            group["weight_decay"] = self.base_wd * self.norm_decay_mult
        elif name == "bias" and not is_dcn and self.bias_decay_mult is not None:
            group["weight_decay"] = self.base_wd * self.bias_decay_mult
        elif is_dwconv and self.dwconv_decay_mult is not None:
            group["weight_decay"] = self.base_wd * self.dwconv_decay_mult
        elif param.ndim == 1 and not is_dcn and self.flat_decay_mult is not None:
            group["weight_decay"] = self.base_wd * self.flat_decay_mult


def _optimizer_class(type_name: Any) -> Any:
    if isinstance(type_name, str):
        cls = OPTIMIZERS.get(type_name) or _package_optimizer(type_name)
        if cls is None:
            raise OPTIMIZERS._unknown_type_error(type_name)
        return cls
    if isinstance(type_name, type) and issubclass(type_name, torch.optim.Optimizer):
        return type_name
    raise TypeError(f"optimizer type must be a registered name or an Optimizer class, got {type_name!r}")


def _package_optimizer(name: str) -> Any:
    """An optimizer MMEngine takes from another installed package, registered here on first use.

    None when ``name`` is none of them; an :class:`OptimKeyError` naming the package when it
    is one of them but its package is not installed (MMEngine would say only "not registered").
    """
    name = name.rsplit(".", 1)[-1]  # a scope (``mmengine.Lion``) names the registry, not the class
    if name in _PACKAGE_OPTIMIZERS:
        return _listed_package_optimizer(name)
    return _bitsandbytes_optimizer(name)


def _listed_package_optimizer(name: str) -> Any:
    package, module_name = _PACKAGE_OPTIMIZERS[name]
    try:
        module = importlib.import_module(module_name)
    except ImportError as exc:
        fallback = _bitsandbytes_optimizer(name)  # MMEngine's 'Lion' is bitsandbytes' without lion-pytorch
        if fallback is not None:
            return fallback
        torch_one = " (torch's own Adafactor is 'TorchAdafactor')" if name == "Adafactor" else ""
        raise OptimKeyError(
            f"optimizer type {name!r} is the {name} of {package} in MMEngine's registry, and {package} is not "
            f"installed ({exc}); install it, or register the class you mean in lightning_hooks.optim.OPTIMIZERS"
            f"{torch_one}"
        ) from exc
    return _register_optimizer(name, getattr(module, name, None))


def _bitsandbytes_optimizer(name: str) -> Any:
    """bitsandbytes' optimizer ``name`` (``bnb_<name>`` where torch has the name, as MMEngine names them)."""
    try:
        module = importlib.import_module("bitsandbytes.optim")
    except ImportError:
        return None
    attribute = name.removeprefix("bnb_")
    if attribute != name and not _taken_before_bitsandbytes(attribute):
        return None  # MMEngine adds bnb_ only to names registered before bitsandbytes'
    return _register_optimizer(name, getattr(module, attribute, None))


def _taken_before_bitsandbytes(name: str) -> bool:
    """Whether MMEngine registers ``name`` before bitsandbytes' optimizers (torch's, or an installed listed package's)."""
    if isinstance(getattr(torch.optim, name, None), type):
        return True
    listed = _PACKAGE_OPTIMIZERS.get(name)
    return listed is not None and importlib.util.find_spec(listed[1]) is not None


def _register_optimizer(name: str, cls: Any) -> Any:
    if not (isinstance(cls, type) and issubclass(cls, torch.optim.Optimizer)):
        return None
    OPTIMIZERS.register_module(name=name, module=cls)
    return cls


def build_optimizer(
    model: nn.Module, optimizer_cfg: Mapping[str, Any], paramwise_cfg: Optional[Mapping[str, Any]] = None
) -> torch.optim.Optimizer:
    """Build the optimizer of an ``optim_wrapper.optimizer`` config over ``model``, with ``paramwise_cfg`` rules.

    Args:
        model: the module whose parameters are optimized (a wrapper's ``.module`` is used, as in MMEngine).
        optimizer_cfg: ``dict(type='SGD', lr=0.01, ...)``; ``type`` is a :data:`OPTIMIZERS` name or class
            (a ``_scope_`` key, MMEngine's registry scope, is ignored).
        paramwise_cfg: per-parameter rules (see the module docstring); None or empty for one group.
    """
    inner = getattr(model, "module", None)
    if isinstance(inner, nn.Module):
        model = inner
    args = to_plain(dict(optimizer_cfg.items()))
    args.pop("_scope_", None)  # the registry scope: names are looked up without one
    cls = _optimizer_class(args.pop("type"))
    first_arg = next(iter(inspect.signature(cls).parameters))
    params: Any
    paramwise_cfg = _paramwise_dict(paramwise_cfg)
    if not paramwise_cfg:
        params = model.parameters()
    else:
        rules = _ParamwiseRules(paramwise_cfg, args.get("lr"), args.get("weight_decay"))
        params = []
        rules.add_params(params, model)
        unmatched = sorted(set(rules.custom_keys) - rules.matched_keys)
        if unmatched:  # MMEngine says nothing: a misspelt key leaves its parameters on the default rules
            _logger.warning(
                f"paramwise_cfg.custom_keys {unmatched} match no parameter name of {type(model).__name__} "
                "(or only ones a longer key took first): their settings apply to nothing"
            )
    try:
        return cls(**{first_arg: params}, **args)  # type: ignore[no-any-return]
    except TypeError as exc:
        raise TypeError(f"optim_wrapper.optimizer {cls.__name__}: {exc}") from exc
