"""A module with two optimizers (manual optimization, a GAN's shape) against MMEngine's ``OptimWrapperDict``."""

from __future__ import annotations

import uuid
from typing import Any

import lightning.pytorch as pl
import torch
from ckpt_helpers import files_in
from mmengine.hooks import Hook as MMHook
from torch import nn
from toy import _mm_classes, loaders, make_trainer, mm_loader_cfgs

from lightning_hooks import Hook, HookBridge


def _networks() -> tuple[nn.Module, nn.Module]:
    torch.manual_seed(0)
    return nn.Linear(2, 2), nn.Linear(2, 1)


def _losses(gen: nn.Module, disc: nn.Module, x: torch.Tensor, y: torch.Tensor) -> tuple[Any, Any]:
    d_loss = ((disc(x).squeeze(-1) - y) ** 2).mean() + (disc(gen(x).detach()) ** 2).mean()
    return d_loss, lambda: ((disc(gen(x)) - 1) ** 2).mean()


def _optimizers(gen: nn.Module, disc: nn.Module) -> list[torch.optim.Optimizer]:
    return [torch.optim.SGD(gen.parameters(), lr=0.1, momentum=0.9), torch.optim.Adam(disc.parameters(), lr=0.01)]


class GAN(pl.LightningModule):
    """Each batch steps the discriminator, then the generator: two optimizer steps."""

    def __init__(self) -> None:
        super().__init__()
        self.automatic_optimization = False
        self.gen, self.disc = _networks()

    def training_step(self, batch: dict, batch_idx: int) -> dict:
        gen_opt, disc_opt = self.optimizers()
        d_loss, g_loss_of = _losses(self.gen, self.disc, batch["inputs"], batch["label"])
        disc_opt.zero_grad()
        self.manual_backward(d_loss)
        disc_opt.step()
        g_loss = g_loss_of()
        gen_opt.zero_grad()
        self.manual_backward(g_loss)
        gen_opt.step()
        return {"loss_g": g_loss.detach(), "loss_d": d_loss.detach()}

    def validation_step(self, batch: dict, batch_idx: int) -> None:
        self.log("acc", ((self.disc(batch["inputs"]).squeeze(-1) > 0.5).float() == batch["label"]).float().mean())

    def configure_optimizers(self) -> list[torch.optim.Optimizer]:
        return _optimizers(self.gen, self.disc)


def _run_mmengine(work: Any, hooks: list, train_cfg: dict, default_hooks: dict) -> None:
    from mmengine.model import BaseModel
    from mmengine.optim import OptimWrapper
    from mmengine.runner import Runner

    class MMGAN(BaseModel):
        def __init__(self) -> None:
            super().__init__()
            self.gen, self.disc = _networks()

        def forward(self, inputs: torch.Tensor, label: torch.Tensor, mode: str = "tensor") -> Any:
            return [((self.disc(inputs).squeeze(-1) > 0.5).float() == label).float()]

        def train_step(self, data: Any, optim_wrapper: Any) -> dict:
            data = self.data_preprocessor(data, True)
            d_loss, g_loss_of = _losses(self.gen, self.disc, data["inputs"], data["label"])
            optim_wrapper["1"].update_params(d_loss)
            g_loss = g_loss_of()
            optim_wrapper["0"].update_params(g_loss)
            return {"loss_g": g_loss.detach(), "loss_d": d_loss.detach()}

    model = MMGAN()
    gen_opt, disc_opt = _optimizers(model.gen, model.disc)
    train, val = mm_loader_cfgs(infinite=not train_cfg.get("by_epoch", True))
    Runner(
        model=model,
        work_dir=str(work),
        experiment_name=f"mm_{uuid.uuid4().hex[:8]}",
        custom_hooks=hooks,
        default_hooks=default_hooks,
        log_level="WARNING",
        train_dataloader=train,
        train_cfg=train_cfg,
        optim_wrapper={"0": OptimWrapper(gen_opt), "1": OptimWrapper(disc_opt)},
        val_dataloader=val,
        val_cfg=dict(),
        val_evaluator=dict(type=_mm_classes()[1]),
    ).train()


def _recorder(base: type, log: list) -> Any:
    """Records the counters, the last-iteration test and what ``runner.optim_wrapper`` shows, per iteration."""

    class Record(base):  # type: ignore[valid-type, misc]
        def before_train_iter(self, runner, batch_idx, data_batch=None):
            wrapper = runner.optim_wrapper
            groups = wrapper.param_groups
            log.append(
                (
                    "before",
                    runner.iter,
                    runner.max_iters,
                    wrapper.get_lr(),
                    wrapper.get_momentum(),
                    {name: [g["lr"] for g in groups[name]] for name in sorted(groups)},
                    len(wrapper),
                    sorted(wrapper.keys()),
                    {name: one.get_lr() for name, one in wrapper.items()},
                    type(wrapper["1"].optimizer).__name__,
                    sorted(wrapper.state_dict()),
                )
            )

        def after_train_iter(self, runner, batch_idx, data_batch=None, outputs=None):
            log.append(("after", runner.iter, runner.max_iters, self.is_last_train_iter(runner)))

        def after_val_epoch(self, runner, metrics=None):
            log.append(("val", runner.iter))

    return Record()


def test_two_optimizers_count_batches_and_show_mmengines_optim_wrapper_dict(tmp_path):
    """max_steps counts both optimizers' steps, so 8 steps are 4 batches: runner.max_iters is 4, the 4th
    batch is the last (save_last writes iter_4.pth, validation follows), and runner.optim_wrapper is
    MMEngine's OptimWrapperDict: its learning rates, momenta, parameter groups and wrappers by name."""
    checkpoint = dict(type="CheckpointHook", by_epoch=False, interval=3, save_last=True)
    mm_log: list = []
    _run_mmengine(
        tmp_path / "mm",
        [_recorder(MMHook, mm_log)],
        dict(by_epoch=False, max_iters=4, val_interval=10),
        dict(checkpoint=checkpoint, logger=None),
    )
    lh_log: list = []
    bridge = HookBridge(custom_hooks=[_recorder(Hook, lh_log)], default_hooks=dict(checkpoint=checkpoint, logger=None))
    trainer = make_trainer(
        tmp_path / "lh", bridge, max_steps=8, max_epochs=-1, val_check_interval=10, check_val_every_n_epoch=None
    )
    trainer.fit(GAN(), *loaders())
    assert trainer.global_step == 8
    assert ("after", 3, 4, True) in mm_log and ("val", 4) in mm_log
    assert lh_log == mm_log
    assert {"iter_3.pth", "iter_4.pth"} <= set(files_in(tmp_path / "lh"))


def test_several_optimizers_have_no_single_optimizer_and_the_error_says_how_to_reach_each(tmp_path):
    """MMEngine's OptimWrapperDict has no ``optimizer``: reading it is not the first one, silently."""
    seen: dict = {}

    class Read(Hook):
        def before_train(self, runner):
            try:
                seen["optimizer"] = runner.optim_wrapper.optimizer
            except AttributeError as exc:
                seen["error"] = str(exc)
            seen["missing"] = "2" in runner.optim_wrapper

    make_trainer(tmp_path, HookBridge(custom_hooks=[Read()]), max_epochs=1).fit(GAN(), *loaders())
    assert "holds 2 optimizers" in seen["error"] and "runner.optim_wrapper['0'].optimizer" in seen["error"]
    assert seen["missing"] is False
