"""Every assumption ``lightning_hooks._lightning`` makes about Lightning's internals, checked on the installed Lightning.

A Lightning release that renames, moves or changes one of these fails here, by
name, instead of somewhere deep inside a bridge test. CI runs this file on the
lowest and the highest supported Lightning versions.
"""

from __future__ import annotations

import os
from typing import Any

import lightning.pytorch as pl
import pytest
import torch
from lightning.fabric.plugins.io.torch_io import TorchCheckpointIO
from lightning.pytorch.core.optimizer import LightningOptimizer
from lightning.pytorch.plugins.io.async_plugin import AsyncCheckpointIO
from toy import ToyModule, loaders, make_trainer

from lightning_hooks import AtomicCheckpointIO, _lightning

BATCHES_PER_EPOCH = 4  # toy.py: 12 samples in batches of 3


class Recorder(pl.Callback):
    """Calls a function at ``on_train_batch_end`` and keeps what it returns."""

    def __init__(self, at_batch_end: Any = None) -> None:
        self.at_batch_end = at_batch_end
        self.seen: list[Any] = []
        self.val_epochs: list[int] = []

    def on_train_batch_end(self, trainer, pl_module, outputs, batch, batch_idx):
        if self.at_batch_end is not None:
            self.seen.append(self.at_batch_end(trainer, batch_idx))

    def on_validation_start(self, trainer, pl_module):
        if not trainer.sanity_checking:
            self.val_epochs.append(trainer.current_epoch)


def fit(tmp_path, callback, model=None, ckpt_path=None, **trainer_kwargs):
    trainer = make_trainer(tmp_path, callback, num_sanity_val_steps=0, **trainer_kwargs)
    train, val = loaders()
    trainer.fit(model or ToyModule(), train, val, ckpt_path=ckpt_path)
    return trainer


def test_loop_progress_counts_batches_and_sees_the_epochs_last_batch(tmp_path):
    recorder = Recorder(
        lambda trainer, batch_idx: (
            _lightning.train_batches_processed(trainer),
            _lightning.train_epoch_batches_reached(trainer),
            _lightning.train_total_batch_idx(trainer),
        )
    )
    fit(tmp_path, recorder, max_epochs=2)
    n = 2 * BATCHES_PER_EPOCH
    assert [seen[0] for seen in recorder.seen] == list(range(1, n + 1))
    assert [seen[1] for seen in recorder.seen] == [(i + 1) % BATCHES_PER_EPOCH == 0 for i in range(n)]
    assert [seen[2] for seen in recorder.seen] == list(range(n))


def test_relaxed_epoch_interval_validates_once_and_is_restored(tmp_path):
    saved: list[dict[str, Any]] = []

    def relax_at_first_epoch_end(trainer, batch_idx):
        if trainer.current_epoch == 0 and batch_idx == BATCHES_PER_EPOCH - 1:
            saved.append(_lightning.validate_after_this_batch(trainer, by_epoch=True))

    recorder = Recorder(relax_at_first_epoch_end)
    restorer = RestoreAtValidation(saved)
    trainer = make_trainer(tmp_path, recorder, num_sanity_val_steps=0, max_epochs=2, check_val_every_n_epoch=3)
    trainer.callbacks.append(restorer)
    train, val = loaders()
    trainer.fit(ToyModule(), train, val)
    assert saved == [{"check_val_every_n_epoch": 3}]
    assert recorder.val_epochs == [0]  # without the relaxation: no validation at all
    assert trainer.check_val_every_n_epoch == 3


def test_relaxed_batch_interval_validates_once_and_is_restored(tmp_path):
    saved: list[dict[str, Any]] = []

    def relax_at_step_5(trainer, batch_idx):
        if _lightning.train_total_batch_idx(trainer) == 4:
            saved.append(_lightning.validate_after_this_batch(trainer, by_epoch=False))

    recorder = Recorder(relax_at_step_5)
    trainer = make_trainer(
        tmp_path,
        recorder,
        num_sanity_val_steps=0,
        max_epochs=-1,
        max_steps=6,
        val_check_interval=4,
        check_val_every_n_epoch=None,
    )
    trainer.callbacks.append(RestoreAtValidation(saved))
    train, val = loaders()
    trainer.fit(ToyModule(), train, val)
    assert saved == [{"val_check_batch": 4}]
    assert len(recorder.val_epochs) == 2  # after batch 4 (the interval) and after batch 5 (relaxed)
    assert trainer.val_check_batch == 4


class RestoreAtValidation(pl.Callback):
    def __init__(self, saved: list[dict[str, Any]]) -> None:
        self.saved = saved

    def on_validation_start(self, trainer, pl_module):
        for entry in self.saved:
            _lightning.restore_trainer_attributes(trainer, entry)


class LogsTwoMetrics(ToyModule):
    def validation_step(self, batch, batch_idx):
        value = torch.tensor(float(batch_idx + 1))
        self.log("epoch_mean", value, on_epoch=True)
        self.log("both", value * 10, on_step=True, on_epoch=True)
        self.log("step_only", value, on_step=True, on_epoch=False)
        self.log("summed", value, on_epoch=True, reduce_fx="sum")


class ReadsEvaluationMetrics(pl.Callback):
    def __init__(self) -> None:
        self.metrics: list[dict[str, Any]] = []

    def on_validation_end(self, trainer, pl_module):
        self.metrics.append(_lightning.evaluation_epoch_metrics(trainer))


def test_evaluation_epoch_metrics_are_the_epoch_values_in_logging_order(tmp_path):
    reader = ReadsEvaluationMetrics()
    trainer = make_trainer(tmp_path, reader)
    _, val = loaders()  # 2 batches: values 1 and 2
    trainer.validate(LogsTwoMetrics(), val, verbose=False)
    (metrics,) = reader.metrics
    assert list(metrics) == ["epoch_mean", "both", "summed"]
    assert metrics["epoch_mean"] == pytest.approx(1.5)
    assert metrics["both"] == pytest.approx(15.0)
    assert metrics["summed"] == pytest.approx(3.0)
    assert all(isinstance(v, float) for v in metrics.values())


class SavesAtLastBatch(pl.Callback):
    def __init__(self, path: str) -> None:
        self.path = path

    def on_train_batch_end(self, trainer, pl_module, outputs, batch, batch_idx):
        if trainer.current_epoch == 0 and batch_idx == BATCHES_PER_EPOCH - 1:
            trainer.save_checkpoint(self.path)


class RecordsStart(pl.Callback):
    def __init__(self) -> None:
        self.first: Any = None

    def on_train_batch_start(self, trainer, pl_module, batch, batch_idx):
        if self.first is None:
            self.first = (trainer.current_epoch, batch_idx, trainer.global_step)


def test_mark_epoch_finished_makes_a_last_batch_save_resume_at_the_next_epoch(tmp_path):
    path = str(tmp_path / "last_batch.ckpt")
    fit(tmp_path, SavesAtLastBatch(path), max_epochs=1)
    checkpoint = torch.load(path, weights_only=False)
    fit_loop = checkpoint["loops"]["fit_loop"]
    # the layout mark_epoch_finished edits (a silent no-op if it ever changes, so check it here)
    assert fit_loop["epoch_progress"]["current"]["processed"] < fit_loop["epoch_progress"]["current"]["started"]
    assert {"total", "current"} <= set(fit_loop["epoch_loop.batch_progress"])
    assert "_batches_that_stepped" in fit_loop["epoch_loop.state_dict"]
    _lightning.mark_epoch_finished(checkpoint["loops"])
    marked = str(tmp_path / "marked.ckpt")
    torch.save(checkpoint, marked)
    again = torch.load(marked, weights_only=False)
    _lightning.mark_epoch_finished(again["loops"])  # idempotent
    assert again["loops"] == checkpoint["loops"]

    start = RecordsStart()
    fit(tmp_path, start, max_epochs=2, ckpt_path=marked)
    assert start.first == (1, 0, BATCHES_PER_EPOCH)


class CountingIO(TorchCheckpointIO):
    def __init__(self) -> None:
        self.saved: list[tuple[str, Any]] = []

    def save_checkpoint(self, checkpoint, path, storage_options=None):
        self.saved.append((str(path), storage_options))
        super().save_checkpoint(checkpoint, path)


class SavesThroughOtherWriter(pl.Callback):
    def __init__(self, path: str, writer: Any) -> None:
        self.path, self.writer = path, writer
        self.kept: Any = None

    def on_train_end(self, trainer, pl_module):
        before = _lightning.strategy_checkpoint_io(trainer)
        _lightning.save_with_checkpoint_io(trainer, self.path, self.writer, {"after_write": None})
        self.kept = _lightning.strategy_checkpoint_io(trainer) is before


def test_save_with_checkpoint_io_uses_the_writer_for_one_save(tmp_path):
    writer = CountingIO()
    saver = SavesThroughOtherWriter(str(tmp_path / "x.ckpt"), writer)
    fit(tmp_path, saver, max_epochs=1)
    assert writer.saved == [(str(tmp_path / "x.ckpt"), {"after_write": None})]
    assert saver.kept
    assert "loops" in torch.load(tmp_path / "x.ckpt", weights_only=False)


def test_writer_kind_tells_lightnings_writers_apart():
    assert _lightning.writer_kind(TorchCheckpointIO()) == "default"
    assert _lightning.writer_kind(AsyncCheckpointIO()) == "async"
    assert _lightning.writer_kind(AtomicCheckpointIO()) == "other"
    assert _lightning.writer_kind(CountingIO()) == "other"


class ArmsResume(pl.Callback):
    def __init__(self, path: str, twice: bool = False) -> None:
        self.path, self.twice = path, twice
        self.asked: list[Any] = []

    def setup(self, trainer, pl_module, stage):
        def choose(checkpoint_path):
            self.asked.append(checkpoint_path)
            return self.path

        if self.twice:
            _lightning.intercept_resume_start(trainer, lambda p: pytest.fail("the first choice must be replaced"))
        _lightning.intercept_resume_start(trainer, choose)


@pytest.mark.parametrize("twice", [False, True])
def test_intercept_resume_start_chooses_the_checkpoint_after_fit_started(tmp_path, twice):
    path = str(tmp_path / "epoch1.ckpt")
    first = fit(tmp_path, RecordsStart(), max_epochs=1)
    first.save_checkpoint(path)
    arms = ArmsResume(path, twice=twice)
    trainer = fit(tmp_path, arms, max_epochs=2)
    assert arms.asked == [None]  # fit got no ckpt_path
    assert str(trainer.ckpt_path) == path
    assert trainer.current_epoch == 2 and trainer.global_step == 2 * BATCHES_PER_EPOCH
    assert "resume_start" not in vars(trainer._checkpoint_connector)  # one call only: the patch is gone


def test_unwrap_optimizer_finds_the_torch_optimizer():
    model = torch.nn.Linear(1, 1)
    optimizer = torch.optim.SGD(model.parameters(), lr=0.1)
    assert _lightning.unwrap_optimizer(LightningOptimizer(optimizer)) is optimizer
    assert _lightning.unwrap_optimizer(optimizer) is optimizer


def test_attached_trainer_and_loading_the_train_dataloader_early(tmp_path):
    seen: list[Any] = []

    class Early(ToyModule):
        def configure_optimizers(self) -> Any:
            trainer = _lightning.attached_trainer(self)
            seen.append(trainer.train_dataloader)
            _lightning.load_train_dataloader(trainer)
            seen.append(trainer.num_training_batches)
            return super().configure_optimizers()

    assert _lightning.attached_trainer(ToyModule()) is None
    trainer = make_trainer(tmp_path, Recorder(), max_epochs=1)
    trainer.fit(Early(), *loaders())
    assert seen == [None, BATCHES_PER_EPOCH]
    assert trainer.global_step == BATCHES_PER_EPOCH  # loading early did not disturb the fit


class SeesLoadedCheckpoint(pl.Callback):
    def __init__(self) -> None:
        self.loaded: list[str] = []

    def on_load_checkpoint(self, trainer, pl_module, checkpoint):
        self.loaded.append(trainer.state.fn.value)


@pytest.mark.parametrize("mode", ["validate", "test"])
def test_callbacks_see_the_checkpoint_in_validate_and_test(tmp_path, mode):
    """``after_load_checkpoint`` fires in ``validate``/``test(ckpt_path=...)`` (Lightning < 2.5 skipped callbacks there)."""
    path = str(tmp_path / "done.ckpt")
    fit(tmp_path, RecordsStart(), max_epochs=1).save_checkpoint(path)
    seer = SeesLoadedCheckpoint()
    _, val = loaders()
    getattr(make_trainer(tmp_path, seer), mode)(ToyModule(), val, ckpt_path=path, verbose=False)
    assert seer.loaded == [mode]


class LogsSometimes(ToyModule):
    """Logs ``every`` each batch, ``even`` on even batches only, and ``quiet`` with logger=False."""

    def training_step(self, batch, batch_idx):
        loss = super().training_step(batch, batch_idx)
        self.log("every", loss * 1)
        if batch_idx % 2 == 0:
            self.log("even", torch.tensor(float(batch_idx)))
        self.log("quiet", torch.tensor(3.0), logger=False)
        self.log("epoch_only", loss, on_step=False, on_epoch=True)
        return loss


def test_train_step_logged_values_are_this_batchs_self_log_values(tmp_path):
    last_seen: dict[str, Any] = {}
    lightning_logged: set[str] = set()
    recorder = Recorder(
        lambda trainer, batch_idx: _lightning.TrainBatchEndReader(trainer, last_seen, lightning_logged).logged()
    )
    fit(tmp_path, recorder, model=LogsSometimes(), max_epochs=1, limit_val_batches=0)
    names = [sorted(values) for values in recorder.seen]
    # a key logged at batch 0 and not at batch 1 is not reported again at batch 1; epoch-level values never
    assert names == [["even", "every", "quiet"], ["every", "quiet"], ["even", "every", "quiet"], ["every", "quiet"]]
    assert [float(values["even"]) for values in recorder.seen if "even" in values] == [0.0, 2.0]
    assert all(isinstance(v, torch.Tensor) for values in recorder.seen for v in values.values())
    assert lightning_logged == {"every", "even"}  # logger=False: Lightning does not write 'quiet' itself


def test_default_outputs_move_or_vanish_before_anything_else_is_written(tmp_path, monkeypatch):
    """Lightning stores os.getcwd() for an unnamed default_root_dir and builds its default logger's writer
    (an event file in ./lightning_logs) before any callback's setup; both can be moved or undone there."""
    monkeypatch.chdir(tmp_path)
    assert _lightning.default_root_dir_named(pl.Trainer(default_root_dir="x", logger=False))
    trainer = pl.Trainer(logger=True, enable_checkpointing=False)
    assert not _lightning.default_root_dir_named(trainer)
    _ = trainer.logger.experiment  # what Lightning's setup does before the callbacks' setup
    assert (tmp_path / "lightning_logs" / "version_0").is_dir()
    assert _lightning.move_default_outputs(trainer, str(tmp_path / "root")) == []
    assert os.listdir(tmp_path) == []
    assert trainer.default_root_dir == str(tmp_path / "root")
    trainer.logger.log_metrics({"x": 1.0}, step=0)
    trainer.logger.experiment.flush()
    assert trainer.logger.log_dir == str(tmp_path / "root" / "lightning_logs" / "version_0")
    assert any(p.name.startswith("events.out") for p in (tmp_path / "root" / "lightning_logs" / "version_0").iterdir())

    other = pl.Trainer(logger=True, enable_checkpointing=False)
    _ = other.logger.experiment
    _lightning.discard_default_outputs(other)
    assert os.listdir(tmp_path) == ["root"]


class Stream(torch.utils.data.IterableDataset):
    """Seven toy samples with no length: only the data fetcher knows the epoch's last batch."""

    def __iter__(self):
        train, _ = loaders()
        for index, sample in enumerate(train.dataset):
            if index == 7:
                return
            yield sample


@pytest.mark.parametrize("data", ["sized", "iterable"])
def test_bound_epoch_end_check_agrees_with_lightning_every_batch(tmp_path, data):
    """The once-per-epoch reader gives Lightning's own answer at every batch, across epochs, from the
    attributes the bridge reads inline (progress, batches) as from ends_epoch()."""
    readers: dict[int, Any] = {}

    def both(trainer, batch_idx):
        epoch = trainer.current_epoch
        if epoch not in readers:
            readers[epoch] = _lightning.TrainBatchEndReader(trainer, {})
        reader = readers[epoch]
        inline = reader.progress.current.ready == reader.batches or reader.progress.is_last_batch
        return reader.ends_epoch(), bool(inline), _lightning.train_epoch_batches_reached(trainer), bool(reader.results)

    recorder = Recorder(both)
    trainer = make_trainer(tmp_path, recorder, num_sanity_val_steps=0, max_epochs=2, limit_val_batches=0)
    if data == "sized":
        trainer.fit(ToyModule(), loaders()[0])
        expected = [False] * (len(loaders()[0]) - 1) + [True]
    else:
        trainer.fit(ToyModule(), torch.utils.data.DataLoader(Stream(), batch_size=2))
        expected = [False, False, False, True]
    assert [row[:3] for row in recorder.seen] == [(end, end, end) for end in expected * 2]
    assert not any(row[3] for row in recorder.seen)  # nothing logged with self.log: no call for values


def test_results_are_non_empty_once_the_module_logs(tmp_path):
    recorder = Recorder(lambda trainer, batch_idx: bool(_lightning.TrainBatchEndReader(trainer, {}).results))
    fit(tmp_path, recorder, model=LogsSometimes(), max_epochs=1, limit_val_batches=0)
    assert recorder.seen and all(recorder.seen)


class StepLRModule(ToyModule):
    def configure_optimizers(self):
        optimizer = torch.optim.SGD(self.parameters(), lr=0.1)
        return {"optimizer": optimizer, "lr_scheduler": torch.optim.lr_scheduler.StepLR(optimizer, 1)}


class RenamesInterval(pl.Callback):
    def __init__(self, interval: str) -> None:
        self.interval = interval

    def on_train_start(self, trainer, pl_module):
        trainer.lr_scheduler_configs[0].interval = self.interval


@pytest.mark.parametrize("interval, steps", [("epoch", 2), ("lightning_hooks.ParamSchedulerHook", 0)])
def test_lightning_steps_only_schedulers_whose_interval_it_knows(tmp_path, interval, steps):
    """ParamSchedulerHook takes a scheduler over by giving its config an interval Lightning does not know."""
    model = StepLRModule()
    fit(tmp_path, RenamesInterval(interval), model=model, max_epochs=2)
    assert model.lr_schedulers().last_epoch == steps


class OverridesOneEvent(pl.Callback):
    def __init__(self) -> None:
        self.calls = 0

    def on_before_backward(self, trainer, pl_module, loss):
        self.calls += 1


def test_skipped_callback_events_are_not_called_and_overridden_ones_are(tmp_path):
    callback = OverridesOneEvent()
    names = ("on_before_backward", "on_after_backward", "on_before_zero_grad")
    assert _lightning.skip_callback_events(callback, names) == ["on_after_backward", "on_before_zero_grad"]
    assert callback.on_after_backward is None  # Lightning must tolerate None (it checks callable)
    fit(tmp_path, callback, max_epochs=1)
    assert callback.calls == BATCHES_PER_EPOCH


class RecordsValidationDecision(pl.Callback):
    def __init__(self) -> None:
        self.decided: list[int] = []
        self.validated_after: list[int] = []

    def on_train_batch_end(self, trainer, pl_module, outputs, batch, batch_idx):
        if _lightning.validation_follows_batch(trainer):
            self.decided.append(_lightning.train_total_batch_idx(trainer))

    def on_validation_start(self, trainer, pl_module):
        if not trainer.sanity_checking:
            self.validated_after.append(_lightning.train_total_batch_idx(trainer))


def test_validation_follows_batch_is_lightnings_own_decision(tmp_path):
    recorder = RecordsValidationDecision()
    fit(tmp_path, recorder, max_epochs=2, val_check_interval=2)
    assert recorder.decided == [1, 3, 5, 7]
    assert recorder.validated_after == recorder.decided


class SavesBeforeValidation(pl.Callback):
    def __init__(self, path: str) -> None:
        self.path = path

    def on_train_batch_end(self, trainer, pl_module, outputs, batch, batch_idx):
        if _lightning.train_total_batch_idx(trainer) == 1:
            trainer.save_checkpoint(self.path)


class RecordsOrder(pl.Callback):
    def __init__(self) -> None:
        self.events: list[Any] = []

    def on_validation_start(self, trainer, pl_module):
        self.events.append("val")

    def on_train_batch_start(self, trainer, pl_module, batch, batch_idx):
        self.events.append(("train", batch_idx))


def test_mark_validation_pending_makes_a_resume_run_that_validation_first(tmp_path):
    path = str(tmp_path / "before_val.ckpt")
    fit(tmp_path, SavesBeforeValidation(path), max_epochs=1, val_check_interval=2)
    checkpoint = torch.load(path, weights_only=False)
    val_progress = checkpoint["loops"]["fit_loop"]["epoch_loop.val_loop.batch_progress"]
    assert {"ready", "started", "processed", "completed"} <= set(val_progress["current"])  # the layout it edits
    assert "is_last_batch" in val_progress
    _lightning.mark_validation_pending(checkpoint["loops"])
    marked = str(tmp_path / "marked.ckpt")
    torch.save(checkpoint, marked)
    order = RecordsOrder()
    fit(tmp_path, order, max_epochs=1, val_check_interval=2, ckpt_path=marked)
    assert order.events[:2] == ["val", ("train", 2)]


def test_sharded_save_kind_reads_model_parallel_strategys_setting():
    from types import SimpleNamespace

    from lightning.pytorch.strategies import ModelParallelStrategy

    full_file = ModelParallelStrategy(save_distributed_checkpoint=False)
    assert full_file._save_distributed_checkpoint is False  # the private attribute read
    assert _lightning.sharded_save_kind(SimpleNamespace(strategy=full_file)) == "file"
    assert _lightning.sharded_save_kind(SimpleNamespace(strategy=ModelParallelStrategy())) == "directory"
    assert _lightning.sharded_save_kind(SimpleNamespace(strategy=object())) is None
