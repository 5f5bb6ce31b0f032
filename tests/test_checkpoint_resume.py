"""Resume: a run interrupted after epoch k and resumed ends exactly like an uninterrupted run.

Weights, optimizer state, best score, kept files and the mount points after the
resume point are compared bit for bit on CPU (fixed seed, no shuffling).
"""

from __future__ import annotations

import os
import re
import warnings

import pytest
import torch
from ckpt_helpers import NO_DEFAULTS, ScoredModule, files_in, run_lightning, run_mmengine_ckpt, runtime_info
from toy import loaders, make_trace_hook, make_trainer

from lightning_hooks import Hook, HookBridge

SCORES = {"acc": [0.4, 0.3, 0.5, 0.1, 0.6, 0.2]}
CFG = dict(type="CheckpointHook", interval=1, save_best="acc", max_keep_ckpts=2, keep_resumed=False)


def traced_fit(work_dir, max_epochs, ckpt_path=None, resume=False, cfg=CFG, optimizer="sgd"):
    log: list = []
    defaults = {**NO_DEFAULTS, "checkpoint": dict(cfg)}
    if optimizer.endswith("+steplr"):
        defaults.pop("param_scheduler")  # MMEngine's ParamSchedulerHook steps it in after_train_epoch
    bridge = HookBridge(
        default_hooks=defaults,
        custom_hooks=[make_trace_hook(Hook, log)],
        work_dir=str(work_dir),
        resume=resume,
        print_hooks_table=False,
        log_level="WARNING",
    )
    trainer = make_trainer(work_dir, bridge, max_epochs=max_epochs, num_sanity_val_steps=0)
    train, val = loaders()
    module = ScoredModule(SCORES, optimizer=optimizer)
    trainer.fit(module, train, val, ckpt_path=ckpt_path)
    return log, trainer, module


def final_state(work_dir, name):
    return torch.load(os.path.join(work_dir, name), map_location="cpu", weights_only=False)


def assert_same_tensors(a, b):
    if isinstance(a, torch.Tensor):
        assert torch.equal(a, b)
    elif isinstance(a, dict):
        assert a.keys() == b.keys()
        for key in a:
            assert_same_tensors(a[key], b[key])
    elif isinstance(a, (list, tuple)):
        assert len(a) == len(b)
        for x, y in zip(a, b, strict=True):
            assert_same_tensors(x, y)
    else:
        assert a == b


@pytest.mark.parametrize(
    ("stop_after", "how", "optimizer"),
    [
        (2, "auto", "adamw"),
        (3, "ckpt_path", "adamw"),
        (1, "ckpt_path_best_resave", "adamw"),
        (2, "auto", "adamw+steplr"),
    ],
)
def test_interrupted_run_ends_like_uninterrupted(tmp_path, stop_after, how, optimizer):
    """k=2: checkpoint written in the epoch's last batch; k=3: re-saved after validation (new best)."""
    full_log, _, full_module = traced_fit(tmp_path / "full", 5, optimizer=optimizer)
    part = tmp_path / "part"
    traced_fit(part, stop_after, optimizer=optimizer)
    pending = torch.load(part / f"epoch_{stop_after}.pth", weights_only=True)["lightning_hooks"]["validation_pending"]
    ckpt_path = None if how == "auto" else str(part / f"epoch_{stop_after}.pth")
    resumed_log, trainer, module = traced_fit(part, 5, ckpt_path=ckpt_path, resume=how == "auto", optimizer=optimizer)

    full, resumed = final_state(tmp_path / "full", "epoch_5.pth"), final_state(part, "epoch_5.pth")
    assert_same_tensors(full["state_dict"], resumed["state_dict"])
    assert_same_tensors(full["optimizer_states"], resumed["optimizer_states"])
    assert full["lr_schedulers"] == resumed["lr_schedulers"]
    assert_same_tensors(full_module.state_dict(), module.state_dict())
    assert full["message_hub"]["runtime_info"]["best_score"] == resumed["message_hub"]["runtime_info"]["best_score"]
    assert runtime_info(str(part / "epoch_5.pth"))["keep_ckpt_ids"] == [4, 5]
    assert (
        files_in(tmp_path / "full")
        == files_in(part)
        == [
            "best_acc_epoch_5.pth",
            "epoch_4.pth",
            "epoch_5.pth",
            "last_checkpoint",
        ]
    )
    # After the resume point the mount points and counters are those of the uninterrupted run.
    # A checkpoint written before its epoch's validation resumes with that validation.
    first = "before_val" if pending else "before_train_epoch"
    resume_point = next(i for i, e in enumerate(full_log) if e[0] == first and e[1] == stop_after)
    tail = [e for e in resumed_log if e[0] not in ("before_run", "after_load_checkpoint", "before_train")]
    assert tail == full_log[resume_point:]
    assert trainer.global_step == 20


class _RecordFiles(Hook):
    """Records the checkpoint files present when each epoch's regular save is about to start."""

    priority = "HIGHEST"

    def __init__(self, seen: list) -> None:
        self.seen = seen

    def after_train_epoch(self, runner) -> None:
        self.seen.append((runner.epoch + 1, files_in(runner.work_dir)))


def test_resumed_from_checkpoint_is_rotated_once_a_newer_one_is_durable(tmp_path):
    """keep_resumed=True (default): epoch_2.pth stays until epoch_3.pth is durable, then goes as usual.

    Before, the resumed-from file was never rotated, so every interruption left one more file.
    """
    cfg = dict(type="CheckpointHook", interval=1, max_keep_ckpts=1)
    run_lightning(tmp_path, cfg, SCORES, max_epochs=2)
    seen: list = []
    bridge = HookBridge(
        default_hooks={**NO_DEFAULTS, "checkpoint": cfg},
        custom_hooks=[_RecordFiles(seen)],
        work_dir=str(tmp_path),
        print_hooks_table=False,
        log_level="WARNING",
    )
    trainer = make_trainer(tmp_path, bridge, max_epochs=4, num_sanity_val_steps=0)
    train, val = loaders()
    trainer.fit(ScoredModule(SCORES), train, val, ckpt_path=str(tmp_path / "epoch_2.pth"))
    assert seen[0] == (3, ["epoch_2.pth", "last_checkpoint"])  # kept while nothing newer is durable
    assert seen[1] == (4, ["epoch_3.pth", "last_checkpoint"])  # rotated once epoch_3.pth was
    assert files_in(tmp_path) == ["epoch_4.pth", "last_checkpoint"]
    assert runtime_info(str(tmp_path / "epoch_4.pth"))["keep_ckpt_ids"] == [4]


def test_auto_resume_without_last_checkpoint_starts_fresh(tmp_path, capsys):
    trainer, bridge, _ = run_lightning(
        tmp_path, dict(type="CheckpointHook", interval=2), SCORES, max_epochs=2, resume=True, log_level="INFO"
    )
    assert "Did not find last_checkpoint to be resumed" in capsys.readouterr().out
    assert trainer.ckpt_path is None
    assert bridge.state.epoch == 2 and bridge.state.iter == 8
    assert files_in(tmp_path) == ["epoch_2.pth", "last_checkpoint"]


def test_resume_from_an_iteration_checkpoint_continues_the_counters(tmp_path):
    cfg = dict(type="CheckpointHook", interval=3, by_epoch=False)
    run_lightning(tmp_path, cfg, SCORES, max_iters=6, val_interval=2)
    _, bridge, _ = run_lightning(tmp_path, cfg, SCORES, max_iters=9, val_interval=2, resume=True)
    assert bridge.state.iter == 9
    assert files_in(tmp_path) == ["iter_3.pth", "iter_6.pth", "iter_9.pth", "last_checkpoint"]
    meta = torch.load(tmp_path / "iter_9.pth", weights_only=False)["meta"]
    assert (meta["epoch"], meta["iter"]) == (0, 9)


def test_resume_argument_on_the_hook_auto_resumes(tmp_path):
    cfg = dict(type="CheckpointHook", interval=1, resume=True)
    run_lightning(tmp_path, cfg, SCORES, max_epochs=2)
    trainer, bridge, _ = run_lightning(tmp_path, cfg, SCORES, max_epochs=3)
    assert trainer.ckpt_path == str(tmp_path / "epoch_2.pth")
    assert bridge.state.epoch == 3 and bridge.state.iter == 12 and trainer.global_step == 12


@pytest.mark.parametrize(
    ("dropped", "missing"),
    [
        (dict(save_optimizer=False), "no optimizer state"),
        (dict(save_param_scheduler=False), "no learning-rate scheduler state"),
        (dict(save_optimizer=False, save_param_scheduler=False), "no optimizer and no learning-rate scheduler"),
    ],
)
def test_resume_without_optimizer_or_scheduler_state_goes_on_as_mmengine(tmp_path, dropped, missing):
    """MMEngine resumes such a checkpoint with the states as built (Lightning refuses it with a KeyError)."""

    class Seen(Hook):
        def before_train(self, runner):
            optimizer = runner.optim_wrapper.optimizer
            self.momentum_buffers = sum(len(s) for s in optimizer.state.values())
            self.lr = optimizer.param_groups[0]["lr"]

    cfg = dict(type="CheckpointHook", interval=1, **dropped)
    run_lightning(tmp_path, cfg, {"acc": [0.5] * 4}, max_epochs=2, module=ScoredModule({}, optimizer="sgd+steplr"))
    seen = Seen()
    bridge = HookBridge(
        default_hooks={**NO_DEFAULTS, "checkpoint": cfg}, custom_hooks=[seen], work_dir=str(tmp_path), resume=True
    )
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        trainer = make_trainer(tmp_path, bridge, max_epochs=3, num_sanity_val_steps=0)
        trainer.fit(ScoredModule({}, optimizer="sgd+steplr"), *loaders())
    said = [str(w.message) for w in caught if "This checkpoint holds no" in str(w.message)]
    assert len(said) == 1 and missing in said[0]
    assert bridge.runner.epoch == 3  # resumed after epoch 2, trained the third
    # what was not saved starts as built: a fresh optimizer has no momentum buffers and its first lr (the lr
    # lives in the optimizer's state, as in MMEngine); a saved optimizer keeps the decayed lr
    assert (seen.momentum_buffers == 0) == ("save_optimizer" in dropped)
    assert seen.lr == pytest.approx(0.1 if "save_optimizer" in dropped else 0.025)
    scheduler = trainer.lr_scheduler_configs[0].scheduler
    assert scheduler.last_epoch == (1 if "save_param_scheduler" in dropped else 3)  # stepped once after resuming


def test_resume_without_optimizer_state_ends_where_mmengine_ends(tmp_path):
    """Both resume the save_optimizer=False checkpoint with a fresh SGD (no momentum): the same final weights."""
    cfg = dict(type="CheckpointHook", interval=1, save_optimizer=False)
    run_mmengine_ckpt(tmp_path / "mm", cfg, {"acc": [0.5] * 4}, max_epochs=2)
    mm = run_mmengine_ckpt(tmp_path / "mm", cfg, {"acc": [0.5] * 4}, max_epochs=3, resume=True)
    run_lightning(tmp_path / "lh", cfg, {"acc": [0.5] * 4}, max_epochs=2)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        _, _, module = run_lightning(tmp_path / "lh", cfg, {"acc": [0.5] * 4}, max_epochs=3, resume=True)
    ours = {k: v for k, v in module.state_dict().items()}
    theirs = {k: v for k, v in mm.model.state_dict().items()}
    assert ours.keys() == theirs.keys()
    for key in ours:
        torch.testing.assert_close(ours[key], theirs[key], rtol=1e-6, atol=1e-7)


@pytest.mark.parametrize(("how", "no_validation"), [("ckpt_path", "limit_val_batches=0"), ("auto", "no val loader")])
def test_resume_before_a_validation_into_a_fit_without_validation(tmp_path, how, no_validation):
    """A checkpoint written before its epoch's validation resumes into that validation; when the
    resumed fit does not validate, it starts the next epoch, as MMEngine's resume does."""
    cfg = dict(type="CheckpointHook", interval=1, max_keep_ckpts=2)
    traced_fit(tmp_path, 2, cfg=cfg)  # epoch 2 is no new best: epoch_2.pth precedes its validation
    log: list = []
    bridge = HookBridge(
        default_hooks={**NO_DEFAULTS, "checkpoint": cfg},
        custom_hooks=[make_trace_hook(Hook, log)],
        work_dir=str(tmp_path),
        resume=how == "auto",
        print_hooks_table=False,
        log_level="WARNING",
    )
    kwargs = dict(limit_val_batches=0) if no_validation == "limit_val_batches=0" else {}
    trainer = make_trainer(tmp_path, bridge, max_epochs=4, num_sanity_val_steps=0, **kwargs)
    train, val = loaders()
    ckpt_path = str(tmp_path / "epoch_2.pth") if how == "ckpt_path" else None
    trainer.fit(ScoredModule(SCORES), train, val if kwargs else None, ckpt_path=ckpt_path)
    assert trainer.global_step == 16
    assert [e[1:3] for e in log if e[0] == "before_train_epoch"] == [(2, 8), (3, 12)]
    assert [e[1:3] for e in log if e[0] == "after_train_epoch"] == [(2, 12), (3, 16)]
    assert sum(e[0] == "after_train_iter" for e in log) == 8
    assert {"epoch_3.pth", "epoch_4.pth"} <= set(files_in(tmp_path)) and "epoch_5.pth" not in files_in(tmp_path)


def test_resume_before_a_validation_inside_an_epoch_keeps_the_epoch(tmp_path):
    """``val_check_interval=0.5``: a checkpoint written before the validation in the middle of epoch 2
    resumes into that validation and the rest of epoch 2, with the uninterrupted run's counters."""
    cfg = dict(type="CheckpointHook", interval=2, by_epoch=False, save_best="acc")
    scores = {"acc": [0.5, 0.1]}  # per epoch: no new best in epoch 2, so iter_6.pth precedes its validation

    def fit(work_dir, ckpt_path=None) -> list:
        log: list = []
        bridge = HookBridge(
            default_hooks={**NO_DEFAULTS, "checkpoint": dict(cfg)},
            custom_hooks=[make_trace_hook(Hook, log)],
            work_dir=str(work_dir),
            print_hooks_table=False,
            log_level="WARNING",
        )
        trainer = make_trainer(work_dir, bridge, max_epochs=2, val_check_interval=0.5, num_sanity_val_steps=0)
        trainer.fit(ScoredModule(scores), *loaders(), ckpt_path=ckpt_path)
        return [e[:3] for e in log if e[0] not in ("before_save_checkpoint", "after_load_checkpoint")]

    whole = fit(tmp_path / "a")
    assert torch.load(tmp_path / "a" / "iter_6.pth", weights_only=True)["lightning_hooks"]["validation_pending"]
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # the resumed hub names run a's best file, which run b does not own
        resumed = fit(tmp_path / "b", ckpt_path=str(tmp_path / "a" / "iter_6.pth"))
    pending = whole.index(("before_val", 1, 6))
    assert resumed[resumed.index(("before_val", 1, 6)) :] == whole[pending:]
    assert ("after_train_epoch", 1, 8) in resumed


class _ResumableLoader(torch.utils.data.DataLoader):
    """A DataLoader with Lightning's resumable-loader protocol: it restarts after the batches it had given."""

    def __init__(self, *args, **kwargs) -> None:
        super().__init__(*args, **kwargs)
        self._skip, self._given, self.loaded = 0, 0, []

    def __iter__(self):
        skip, self._skip = self._skip, 0
        self._given = skip
        for index, batch in enumerate(super().__iter__()):
            if index >= skip:
                self._given = index + 1
                yield batch

    def state_dict(self):
        return {"given": self._given}

    def load_state_dict(self, state):
        self.loaded.append(dict(state))
        self._skip = state["given"]


def test_a_loader_read_in_before_run_keeps_its_resumed_position(tmp_path):
    """A hook reading ``runner.train_dataloader`` in before_run makes the bridge load the data before Lightning
    restores the checkpoint's loop state; the loader Lightning trains with must still start where it stopped."""
    from toy import ToyDataset

    class Module(ScoredModule):
        def train_dataloader(self):
            self.loader = _ResumableLoader(ToyDataset(), batch_size=3)
            return self.loader

    class Reads(Hook):
        def __init__(self) -> None:
            self.first_inputs: list = []

        def before_run(self, runner):
            self.length = len(runner.train_dataloader)

        def before_train_iter(self, runner, batch_idx, data_batch=None):
            self.first_inputs.append(float(data_batch["inputs"][0, 0]))

    def fit(reads: Reads, max_steps: int, resume: bool) -> Module:
        cfg = dict(type="CheckpointHook", interval=2, by_epoch=False)
        bridge = HookBridge(
            default_hooks={**NO_DEFAULTS, "checkpoint": cfg},
            custom_hooks=[reads],
            work_dir=str(tmp_path),
            resume=resume,
            print_hooks_table=False,
            log_level="WARNING",
        )
        trainer = make_trainer(tmp_path, bridge, max_steps=max_steps, num_sanity_val_steps=0, limit_val_batches=0)
        module = Module({"acc": [0.5]})
        trainer.fit(module)
        return module

    whole = Reads()
    fit(whole, 4, resume=False)  # iterations 0-3 of the first epoch; iter_2.pth after two
    (tmp_path / "iter_4.pth").unlink()
    (tmp_path / "last_checkpoint").write_text(str(tmp_path / "iter_2.pth"))
    resumed = Reads()
    module = fit(resumed, 4, resume=True)
    assert resumed.length == 4
    assert module.loader.loaded == [{"given": 2}]
    assert resumed.first_inputs == whole.first_inputs[2:]  # the epoch's third and fourth batches, not its first


class _Killed(RuntimeError):
    """Stands for a kill at a mount point (the process dies there)."""


def _kill_at(stage: str, occurrence: int) -> Hook:
    """A HIGHEST-priority hook that raises at the ``occurrence``-th (0-based) call of ``stage``."""
    calls = [0]

    def method(self, runner, **kwargs):
        if calls[0] == occurrence:
            raise _Killed(f"{stage} #{occurrence}")
        calls[0] += 1

    return type("Kill", (Hook,), {stage: method, "priority": "HIGHEST"})()


def _fit_scored(work_dir, cfg, scores, extra=(), resume=False, **trainer_kwargs):
    log: list = []
    bridge = HookBridge(
        default_hooks={**NO_DEFAULTS, "checkpoint": dict(cfg)},
        custom_hooks=[make_trace_hook(Hook, log), *extra],
        work_dir=str(work_dir),
        resume=resume,
        print_hooks_table=False,
        log_level="WARNING",
    )
    trainer = make_trainer(work_dir, bridge, num_sanity_val_steps=0, **trainer_kwargs)
    trainer.fit(ScoredModule(scores), *loaders())
    return log, trainer


def test_a_new_best_at_the_resumed_validation_re_saves_as_the_uninterrupted_run(tmp_path):
    """Killed inside the last validation (a new best), resumed: that validation runs again, and its re-save
    of epoch_3.pth and the removal of the previous best file happen as in the uninterrupted run."""
    cfg = dict(type="CheckpointHook", interval=1, save_best="acc")
    scores = {"acc": [0.1, 0.2, 0.3]}
    _fit_scored(tmp_path / "a", cfg, scores, max_epochs=3)
    with pytest.raises(_Killed):
        _fit_scored(tmp_path / "b", cfg, scores, extra=[_kill_at("after_val_epoch", 2)], max_epochs=3)
    _fit_scored(tmp_path / "b", cfg, scores, resume=True, max_epochs=3)
    assert files_in(tmp_path / "b") == files_in(tmp_path / "a")
    for run in ("a", "b"):
        saved = torch.load(tmp_path / run / "epoch_3.pth", weights_only=True)
        assert saved["lightning_hooks"]["validation_pending"] is False  # re-saved after its validation
        assert os.path.basename(saved["message_hub"]["runtime_info"]["best_ckpt"]) == "best_acc_epoch_3.pth"


@pytest.mark.parametrize("val_check_interval", [1.0, 0.5], ids=["at-epoch-ends", "inside-epochs"])
def test_a_stop_asked_before_the_interruption_holds_after_the_resume(tmp_path, val_check_interval):
    """EarlyStoppingHook asked to stop (at epoch 2's validation; inside epochs: at its middle one, applied at
    the epoch's end); the run was killed after that point, before it ended. The resume stops where the
    uninterrupted run stopped instead of training epoch 3."""
    from lightning_hooks import EarlyStoppingHook

    cfg = dict(type="CheckpointHook", interval=1, save_best="acc")
    scores = {"acc": [0.5, 0.505, 0.9, 0.9]}  # epoch 2: a new best for save_best, not by min_delta for stopping

    def early() -> Hook:  # inside epochs, epoch 1's two validations report the same score: one more to wait
        return EarlyStoppingHook("acc", patience=1 if val_check_interval == 1.0 else 2, min_delta=0.01)

    kwargs = dict(max_epochs=4, val_check_interval=val_check_interval)
    _, whole = _fit_scored(tmp_path / "a", cfg, scores, extra=[early()], **kwargs)
    assert whole.global_step == 8  # stopped after epoch 2
    kill = _kill_at("after_val", 1) if val_check_interval == 1.0 else _kill_at("after_val_epoch", 3)
    with pytest.raises(_Killed):
        _fit_scored(tmp_path / "b", cfg, scores, extra=[early(), kill], **kwargs)
    _, resumed = _fit_scored(tmp_path / "b", cfg, scores, extra=[early()], resume=True, **kwargs)
    assert resumed.global_step == 8
    assert files_in(tmp_path / "b") == files_in(tmp_path / "a")


def test_resuming_a_run_that_had_ended_still_ends_it(tmp_path):
    """Killed after its last validation, before after_train: the resumed fit has nothing left to train
    (Lightning skips its loop), but hooks get before_train and after_train with the restored counters, as in
    MMEngine, so CheckpointHook publishes as the uninterrupted run did."""
    cfg = dict(type="CheckpointHook", interval=1, save_best="acc", published_keys=["meta", "state_dict"])
    scores = {"acc": [0.1, 0.2]}
    _fit_scored(tmp_path / "a", cfg, scores, max_epochs=2)
    with pytest.raises(_Killed):
        _fit_scored(tmp_path / "b", cfg, scores, extra=[_kill_at("after_val", 1)], max_epochs=2)
    log, _ = _fit_scored(tmp_path / "b", cfg, scores, resume=True, max_epochs=2)
    assert [e[:3] for e in log if e[0] in ("before_train", "after_train", "after_run")] == [
        ("before_train", 2, 8),
        ("after_train", 2, 8),
        ("after_run", 2, 8),
    ]
    # the published copies included (their hash covers storage addresses: it differs from load to load)
    names = {run: [re.sub(r"-[0-9a-f]{8}\.pth$", "-<hash>.pth", f) for f in files_in(tmp_path / run)] for run in "ab"}
    assert names["b"] == names["a"] and "epoch_2-<hash>.pth" in names["a"]


def test_iteration_based_resume_runs_the_validation_pending_after_the_last_iteration(tmp_path):
    """Killed in the validation after the last iteration: Lightning finds max_steps reached and would skip
    its loop; the resume runs that validation (every hook reacts to it) and ends, as the uninterrupted run."""
    cfg = dict(type="CheckpointHook", interval=4, by_epoch=False)
    scores = {"acc": [0.5]}
    kwargs = dict(max_steps=8, max_epochs=-1, val_check_interval=4, check_val_every_n_epoch=None)
    whole, _ = _fit_scored(tmp_path / "a", cfg, scores, **kwargs)
    with pytest.raises(_Killed):
        _fit_scored(tmp_path / "b", cfg, scores, extra=[_kill_at("after_val_epoch", 1)], **kwargs)
    assert torch.load(tmp_path / "b" / "iter_8.pth", weights_only=True)["lightning_hooks"]["validation_pending"]
    resumed, trainer = _fit_scored(tmp_path / "b", cfg, scores, resume=True, **kwargs)
    tail = [e[:3] for e in whole if e[0] in ("after_val_epoch", "after_train_epoch", "after_train", "after_run")]
    assert [e[:3] for e in resumed if e[0] in ("after_val_epoch", "after_train_epoch", "after_train", "after_run")] == (
        tail[-4:]
    )
    assert tail[-4] == ("after_val_epoch", 0, 8)
    assert trainer.global_step == 8 and trainer.max_steps == 8  # the Trainer's own limit again


@pytest.mark.parametrize("resumed_fit", ["validates", "does not validate"])
def test_an_iteration_checkpoint_at_an_epochs_last_batch_resumes_with_the_epochs_end(tmp_path, resumed_fit):
    """Epoch-based training, CheckpointHook(by_epoch=False) saving at the epoch's last batch: the file is
    written before after_train_epoch. The resume closes that epoch first (an epoch-interval scheduler steps
    there), then validates (or not), with the uninterrupted run's counters and learning rates."""
    cfg = dict(type="CheckpointHook", interval=4, by_epoch=False)  # 4 batches per epoch
    scores = {"acc": [0.5]}

    def fit(work_dir, extra=(), resume=False, **kwargs):
        log: list = []
        bridge = HookBridge(
            default_hooks={**NO_DEFAULTS, "checkpoint": dict(cfg), "param_scheduler": dict(type="ParamSchedulerHook")},
            custom_hooks=[make_trace_hook(Hook, log), *extra],
            work_dir=str(work_dir),
            resume=resume,
            print_hooks_table=False,
            log_level="WARNING",
        )
        trainer = make_trainer(work_dir, bridge, max_epochs=3, num_sanity_val_steps=0, **kwargs)
        module = ScoredModule(scores, optimizer="sgd+steplr")
        trainer.fit(module, *loaders())
        return [e[:3] for e in log if e[0] in ("after_train_epoch", "before_train_epoch")], trainer

    whole, trainer = fit(tmp_path / "a")
    with pytest.raises(_Killed):
        fit(tmp_path / "b", extra=[_kill_at("before_val", 0)])
    saved = torch.load(tmp_path / "b" / "iter_4.pth", weights_only=True)["lightning_hooks"]
    assert saved["validation_pending"] and saved["epoch_ends_here"]
    no_validation = dict(limit_val_batches=0) if resumed_fit == "does not validate" else {}
    resumed, resumed_trainer = fit(tmp_path / "b", resume=True, **no_validation)
    assert resumed == whole[whole.index(("after_train_epoch", 0, 4)) :]
    lr = [t.optimizers[0].param_groups[0]["lr"] for t in (trainer, resumed_trainer)]
    assert lr[0] == lr[1] and resumed_trainer.global_step == trainer.global_step == 12


def test_a_stop_asked_at_a_resumed_validation_inside_an_epoch_waits_for_the_epochs_end(tmp_path):
    """val_check_interval=0.5: resumed into the validation in the middle of epoch 2, where EarlyStoppingHook
    asks to stop. As in the uninterrupted run (MMEngine reads the flag between epochs), epoch 2 finishes."""
    from lightning_hooks import EarlyStoppingHook

    table = {2: 0.30, 4: 0.44, 6: 0.40, 8: 0.57, 10: 0.6, 12: 0.7, 14: 0.8, 16: 0.9}

    class StepScored(ScoredModule):
        def on_validation_epoch_end(self) -> None:
            self.log("acc", table[self.trainer.global_step])

    def fit(work_dir, extra=(), resume=False):
        bridge = HookBridge(
            default_hooks={**NO_DEFAULTS, "checkpoint": dict(type="CheckpointHook", interval=2, by_epoch=False)},
            custom_hooks=[EarlyStoppingHook("acc", patience=1), *extra],
            work_dir=str(work_dir),
            resume=resume,
            print_hooks_table=False,
            log_level="WARNING",
        )
        trainer = make_trainer(work_dir, bridge, max_epochs=4, val_check_interval=0.5, num_sanity_val_steps=0)
        trainer.fit(StepScored({}), *loaders())
        return trainer

    assert fit(tmp_path / "a").global_step == 8  # asked at step 6, stopped at the end of epoch 2
    with pytest.raises(_Killed):
        fit(tmp_path / "b", extra=[_kill_at("before_val", 2)])  # the validation after step 6
    assert torch.load(tmp_path / "b" / "iter_6.pth", weights_only=True)["lightning_hooks"]["validation_pending"]
    assert fit(tmp_path / "b", resume=True).global_step == 8
