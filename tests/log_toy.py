"""Helpers for the logging and scheduler tests: run the toy scenario through MMEngine and through
Lightning + HookBridge, capturing the log lines each prints (only the message part)."""

from __future__ import annotations

import logging
import re
import uuid
from typing import Any, Optional

from toy import BATCH, VAL_BATCH, ToyDataset, ToyModule, _mm_classes, loaders, make_trainer

from lightning_hooks import HookBridge

LINE_START = ("Epoch(", "Iter(", "Exp name")
_TIMING = re.compile(r"\b(eta|time|data_time): \S+")


class LineCatcher(logging.Handler):
    """Keeps every message logged through the logger it is attached to."""

    def __init__(self) -> None:
        super().__init__(logging.DEBUG)
        self.messages: list[str] = []

    def emit(self, record: logging.LogRecord) -> None:
        self.messages.append(record.getMessage())

    def lines(self) -> list[str]:
        """The LoggerHook lines, with timings and the experiment name masked."""
        kept = []
        for message in self.messages:
            if not message.startswith(LINE_START):
                continue
            if message.startswith("Exp name"):
                message = "Exp name: <name>"
            kept.append(_TIMING.sub(lambda m: f"{m.group(1)}: <t>", message))
        return kept


def mm_capture_hook(catcher: LineCatcher) -> Any:
    """An MMEngine hook that attaches ``catcher`` to the Runner's logger before anything is logged."""
    from mmengine.hooks import Hook as MMHook

    class Capture(MMHook):
        priority = "HIGHEST"

        def before_run(self, runner: Any) -> None:
            runner.logger.addHandler(catcher)
            runner.logger.setLevel(logging.INFO)

    return Capture()


def run_mm(
    work_dir: Any,
    *,
    mode: str = "train",
    train_cfg: Optional[dict] = None,
    default_hooks: Optional[dict] = None,
    custom_hooks: Optional[list] = None,
    log_processor: Optional[dict] = None,
    optim_wrapper: Optional[dict] = None,
    param_scheduler: Any = None,
    visualizer: Optional[dict] = None,
    infinite: bool = False,
    metric: Any = None,
) -> tuple[Any, LineCatcher]:
    """MMEngine's Runner on the toy scenario (same data and model as tests/toy.py)."""
    from mmengine.runner import Runner

    model_cls, metric_cls = _mm_classes()
    catcher = LineCatcher()
    sampler = dict(type="InfiniteSampler" if infinite else "DefaultSampler", shuffle=False)
    loader = dict(dataset=ToyDataset(), batch_size=BATCH, sampler=sampler, collate_fn=dict(type="default_collate"))
    eval_loader = dict(
        dataset=ToyDataset(),
        batch_size=VAL_BATCH,
        sampler=dict(type="DefaultSampler", shuffle=False),
        collate_fn=dict(type="default_collate"),
    )
    evaluator = dict(type=metric or metric_cls)
    kwargs: dict[str, Any] = dict(
        model=model_cls(),
        work_dir=str(work_dir),
        experiment_name=f"mm_{uuid.uuid4().hex[:8]}",
        custom_hooks=[mm_capture_hook(catcher), *(custom_hooks or [])],
        default_hooks=default_hooks,
        log_processor=log_processor,
        log_level="WARNING",
        visualizer=visualizer,
    )
    if mode == "train":
        kwargs.update(
            train_dataloader=loader,
            train_cfg=train_cfg or dict(by_epoch=True, max_epochs=2, val_interval=1),
            optim_wrapper=optim_wrapper or dict(optimizer=dict(type="SGD", lr=0.1)),
            val_dataloader=eval_loader,
            val_cfg=dict(),
            val_evaluator=evaluator,
            param_scheduler=param_scheduler,
        )
    elif mode == "val":
        kwargs.update(val_dataloader=eval_loader, val_cfg=dict(), val_evaluator=evaluator)
    else:
        kwargs.update(test_dataloader=eval_loader, test_cfg=dict(), test_evaluator=evaluator)
    runner = Runner(**kwargs)
    getattr(runner, mode)()
    return runner, catcher


def run_lh(
    work_dir: Any,
    *,
    mode: str = "fit",
    trainer_kwargs: Optional[dict] = None,
    bridge_kwargs: Optional[dict] = None,
    module: Any = None,
) -> tuple[Any, Any, LineCatcher]:
    """Lightning + HookBridge on the toy scenario; returns (trainer, bridge, catcher)."""
    catcher = LineCatcher()
    logger = logging.getLogger("lightning_hooks")
    logger.addHandler(catcher)
    try:
        bridge = HookBridge(**(bridge_kwargs or {}))
        trainer = make_trainer(work_dir, bridge, **(trainer_kwargs or {}))
        train, val = loaders()
        model = module if module is not None else ToyModule()
        if mode == "fit":
            trainer.fit(model, train, val)
        elif mode == "validate":
            trainer.validate(model, val)
        else:
            trainer.test(model, val)
    finally:
        logger.removeHandler(catcher)
    return trainer, bridge, catcher
