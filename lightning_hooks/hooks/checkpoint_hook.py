"""CheckpointHook: MMEngine's periodic checkpoints, written through ``trainer.save_checkpoint``."""

from __future__ import annotations

import os.path as osp
from typing import Any, Optional

from ..registry import HOOKS
from .hook import DATA_BATCH, Hook

__all__ = ["CheckpointHook"]


@HOOKS.register_module()
class CheckpointHook(Hook):
    """Save ``epoch_{k}.pth`` / ``iter_{k}.pth`` every ``interval`` epochs or iterations.

    Args:
        interval: epochs (``by_epoch``) or iterations between saves; -1 never
            saves except the last one when ``save_last``.
        by_epoch: save in ``after_train_epoch`` (True) or ``after_train_iter``.
        save_optimizer: keep the optimizer state in the file.
        save_param_scheduler: keep the LR scheduler state in the file.
        out_dir: root for the files; ``<out_dir>/<basename of work_dir>`` when set.
        save_last: always save at the last epoch or iteration.
        filename_tmpl: file name with one ``{}``; defaults to ``epoch_{}.pth`` or ``iter_{}.pth``.
        save_begin: first epoch or iteration to save (then every ``interval``).
    """

    priority = "VERY_LOW"

    def __init__(
        self,
        interval: int = -1,
        by_epoch: bool = True,
        save_optimizer: bool = True,
        save_param_scheduler: bool = True,
        out_dir: Optional[str] = None,
        save_last: bool = True,
        filename_tmpl: Optional[str] = None,
        save_begin: int = 0,
        **kwargs: Any,
    ) -> None:
        if save_begin < 0:
            raise ValueError(f"save_begin should not be less than 0, but got {save_begin}")
        self.interval = interval
        self.by_epoch = by_epoch
        self.save_optimizer = save_optimizer
        self.save_param_scheduler = save_param_scheduler
        self.out_dir: str = out_dir  # type: ignore[assignment]  # resolved in before_train
        self.save_last = save_last
        self.filename_tmpl = filename_tmpl or ("epoch_{}.pth" if by_epoch else "iter_{}.pth")
        self.save_begin = save_begin
        self.args = kwargs
        self.last_ckpt: Optional[str] = None

    def before_train(self, runner: Any) -> None:
        if self.out_dir is None:
            self.out_dir = runner.work_dir
        else:
            self.out_dir = osp.join(self.out_dir, osp.basename(runner.work_dir.rstrip("/")))
        runner.logger.info(f"Checkpoints will be saved to {self.out_dir}.")

    def after_train_epoch(self, runner: Any) -> None:
        if not self.by_epoch:
            return
        if self.every_n_epochs(runner, self.interval, self.save_begin) or (
            self.save_last and self.is_last_train_epoch(runner)
        ):
            runner.logger.info(f"Saving checkpoint at {runner.epoch + 1} epochs")
            self._save_checkpoint_with_step(runner, runner.epoch + 1, {"epoch": runner.epoch + 1, "iter": runner.iter})

    def after_train_iter(
        self, runner: Any, batch_idx: int, data_batch: DATA_BATCH = None, outputs: Optional[dict] = None
    ) -> None:
        if self.by_epoch:
            return
        if self.every_n_train_iters(runner, self.interval, self.save_begin) or (
            self.save_last and self.is_last_train_iter(runner)
        ):
            runner.logger.info(f"Saving checkpoint at {runner.iter + 1} iterations")
            self._save_checkpoint_with_step(runner, runner.iter + 1, {"epoch": runner.epoch, "iter": runner.iter + 1})

    def _save_checkpoint_with_step(self, runner: Any, step: int, meta: dict[str, Any]) -> None:
        filename = self.filename_tmpl.format(step)
        self.last_ckpt = osp.join(self.out_dir, filename)
        runner.message_hub.update_info("last_ckpt", self.last_ckpt)
        runner.save_checkpoint(
            self.out_dir,
            filename,
            meta=meta,
            save_optimizer=self.save_optimizer,
            save_param_scheduler=self.save_param_scheduler,
        )
        if runner.rank == 0:
            with open(osp.join(runner.work_dir, "last_checkpoint"), "w") as f:
                f.write(self.last_ckpt)
