"""Step-level ``self.log`` values of training reach the message hub, the log lines, scalars.json and every backend.

MMEngine records a model's ``log_vars`` as ``train/<name>`` each iteration; a LightningModule logs with
``self.log``. The bridge hands the hooks both (``outputs`` = training_step's dict plus this batch's
``self.log`` values), so RuntimeInfoHook records them and LoggerHook writes them at MMEngine's steps,
with MMEngine's rules (names matching ``mean_pattern`` are averaged over ``window_size``). Values stay
on the device between log lines.
"""

from __future__ import annotations

import csv
import os
import re

import pytest
import torch
from lightning.pytorch.loggers import CSVLogger
from log_toy import read_json_lines, read_tensorboard, run_lh
from torchmetrics.classification import BinaryAccuracy
from toy import ToyDataset, ToyModule

from lightning_hooks import Hook

ITERS_PER_EPOCH = 4  # the toy data: 12 samples in batches of 3


class SelfLogModule(ToyModule):
    """The toy regression, logging with self.log each step: a plain value, a loss, a metric object, a quiet one.

    It also returns ``dup`` from training_step and logs ``dup`` with self.log (different values).
    ``record`` keeps what was logged, for the test (the float() calls are the test's, not the package's).
    """

    def __init__(self, record: bool = True) -> None:
        super().__init__()
        self.record = record
        self.train_acc = BinaryAccuracy()
        self.logged: dict[str, list[float]] = {"step_value": [], "train_loss": [], "train_acc": [], "quiet": []}
        self.iteration = 0

    def training_step(self, batch, batch_idx):
        out = self(batch["inputs"])
        loss = ((out - batch["label"]) ** 2).mean()
        step_value = torch.tensor(0.5 + 0.01 * self.iteration)
        quiet = torch.tensor(float(self.iteration))
        self.log("step_value", step_value)
        self.log("train_loss", loss)
        self.train_acc(out, batch["label"])
        self.log("train_acc", self.train_acc)
        self.log("quiet", quiet, logger=False)  # Lightning's loggers do not get it from Lightning
        self.log("dup", torch.tensor(2.0))
        if self.record:
            self.logged["step_value"].append(float(step_value))
            self.logged["train_loss"].append(float(loss))
            self.logged["train_acc"].append(float(self.train_acc._forward_cache))
            self.logged["quiet"].append(float(quiet))
        self.iteration += 1
        return {"loss": loss, "dup": torch.tensor(1.0)}


def window_mean(values: list[float], upto: int, window: int = 10) -> float:
    kept = values[max(0, upto - window) : upto]
    return sum(kept) / len(kept)


def test_self_log_values_reach_hub_lines_json_tensorboard_and_lightning_loggers(tmp_path):
    csv_logger = CSVLogger(str(tmp_path / "csv"), name="run")
    module = SelfLogModule()
    backends = [dict(type="LocalVisBackend"), dict(type="TensorboardVisBackend")]
    _, bridge, catcher = run_lh(
        tmp_path / "work",
        trainer_kwargs=dict(max_epochs=2, logger=csv_logger, log_every_n_steps=3),
        bridge_kwargs=dict(default_hooks=dict(logger=dict(type="LoggerHook", interval=2, vis_backends=backends))),
        module=module,
    )
    iters = 2 * ITERS_PER_EPOCH
    hub = bridge.message_hub
    # the message hub: one value per iteration, each iteration's own
    for name in ("step_value", "train_loss", "train_acc", "quiet"):
        values, _ = hub.get_scalar(f"train/{name}").data
        assert list(values) == pytest.approx(module.logged[name], rel=1e-6), name
        assert len(values) == iters
    # training_step's dict wins over self.log for a name given by both, and the log says so once
    dup, _ = hub.get_scalar("train/dup").data
    assert list(dup) == [1.0] * iters
    told = [m for m in catcher.messages if "'dup' is both a key of training_step's output and a self.log name" in m]
    assert len(told) == 1
    # scalars.json at MMEngine's steps (every 2 iterations): latest values, and window means for *loss*
    log_dir = os.path.join(bridge.runtime.work_dir, bridge.runtime.timestamp)
    records = [r for r in read_json_lines(os.path.join(log_dir, "vis_data", "scalars.json")) if "step_value" in r]
    assert [r["step"] for r in records] == [2, 4, 6, 8]
    for record in records:
        step = record["step"]
        assert record["step_value"] == pytest.approx(module.logged["step_value"][step - 1], rel=1e-6)
        assert record["train_acc"] == pytest.approx(module.logged["train_acc"][step - 1], rel=1e-6)
        assert record["quiet"] == pytest.approx(module.logged["quiet"][step - 1])
        assert record["train_loss"] == pytest.approx(window_mean(module.logged["train_loss"], step), rel=1e-5)
    # the terminal/log-file lines show them
    lines = [m for m in catcher.messages if m.startswith("Epoch(train)")]
    assert len(lines) == 4
    for line, record in zip(lines, records, strict=True):
        assert f"step_value: {record['step_value']:.4f}" in line and f"train_acc: {record['train_acc']:.4f}" in line
    # the TensorBoard backend has the same series as scalars.json
    board = read_tensorboard(os.path.join(log_dir, "vis_data"))
    for name in ("step_value", "train_loss", "train_acc", "quiet"):
        assert board[name] == [(r["step"], pytest.approx(r[name], rel=1e-6)) for r in records], name
    # a Lightning logger: LoggerHook forwards what Lightning does not write there itself ('quiet', logger=False),
    # at MMEngine's steps; names Lightning writes itself are not written a second time at other steps
    csv_logger.save()
    with open(os.path.join(csv_logger.log_dir, "metrics.csv")) as f:
        rows = list(csv.DictReader(f))
    quiet_rows = [(int(r["step"]), float(r["quiet"])) for r in rows if r.get("quiet")]
    assert quiet_rows == [(r["step"], pytest.approx(r["quiet"])) for r in records]
    lightning_steps = sorted({int(r["step"]) for r in rows if r.get("step_value")})
    assert lightning_steps == [2, 5]  # Lightning's own cadence (log_every_n_steps=3, 0-based steps), only


def test_no_host_sync_between_log_lines_with_self_log(tmp_path, monkeypatch):
    """Values logged with self.log stay on the device: iterations between two lines make no host sync."""
    from host_reads import count_host_reads, per_iteration_reads
    from toy import make_trainer

    from lightning_hooks import HookBridge

    class Plain(SelfLogModule):
        """Plain tensors only (a torchmetrics object validates its inputs on the host, which is the module's cost)."""

        def training_step(self, batch, batch_idx):
            loss = ((self(batch["inputs"]) - batch["label"]) ** 2).mean()
            self.log("step_value", loss.detach() * 2)
            self.log("train_loss", loss)
            return loss

        def train_dataloader(self):
            return torch.utils.data.DataLoader(ToyDataset(40), batch_size=2)

    class Outputs(Hook):
        def after_train_iter(self, runner, batch_idx, data_batch=None, outputs=None):
            assert "step_value" in outputs and "train_loss" in outputs

    probes, syncs = per_iteration_reads(count_host_reads(monkeypatch))
    bridge = HookBridge(
        default_hooks=dict(logger=dict(type="LoggerHook", interval=10)), custom_hooks=[*probes, Outputs()]
    )
    make_trainer(tmp_path, bridge, max_epochs=1, limit_val_batches=0).fit(Plain(record=False))
    assert len(syncs) == 20
    quiet = [syncs[i] for i in range(11, 20)]
    assert quiet == [0] * 9, f"host syncs in iterations 11..19: {quiet}"
    assert len(bridge.message_hub.get_scalar("train/step_value")) == 20


class ValidationSelfLogModule(ToyModule):
    """Logs in validation: ``acc`` (the toy's), ``loss`` (a name training_step's dict also has) and a
    ``logger=False`` value."""

    def validation_step(self, batch, batch_idx):
        super().validation_step(batch, batch_idx)
        self.log("loss", ((self(batch["inputs"]) - batch["label"]) ** 2).mean())
        self.log("val_quiet", torch.tensor(float(self.current_epoch)), logger=False)

    def training_step(self, batch, batch_idx):
        return {"loss": super().training_step(batch, batch_idx)}


def test_validation_self_log_names_reach_lightning_loggers_once(tmp_path):
    """Lightning writes validation's ``self.log`` values to its loggers itself; LoggerHook's copy at MMEngine's
    epoch steps would be a second, interleaved series under the same name. It forwards only what Lightning
    does not write there (``logger=False`` values), and a training name shared with validation keeps its series."""
    csv_logger = CSVLogger(str(tmp_path / "csv"), name="run")
    run_lh(
        tmp_path / "work",
        trainer_kwargs=dict(max_epochs=2, logger=csv_logger, log_every_n_steps=1),
        bridge_kwargs=dict(default_hooks=dict(logger=dict(type="LoggerHook", interval=2))),
        module=ValidationSelfLogModule(),
    )
    csv_logger.save()
    with open(os.path.join(csv_logger.log_dir, "metrics.csv")) as f:
        rows = list(csv.DictReader(f))

    def steps(name: str) -> list[int]:
        return sorted(int(r["step"]) for r in rows if r.get(name))

    lightning_val_steps = steps("acc")
    assert len(lightning_val_steps) == 2  # one per validation, from Lightning only
    # 'epoch' is Lightning's in its loggers (0-based, beside every value it writes): not a second series
    assert steps("epoch") == lightning_val_steps
    assert not set(lightning_val_steps) & {1, 2}  # not again at the completed-epoch steps
    assert steps("val_quiet") == [1, 2]  # logger=False: Lightning does not write it, LoggerHook does
    # 'loss': training's at MMEngine's steps (every 2 iterations), validation's from Lightning only
    assert steps("loss") == sorted([2, 4, 6, 8, *lightning_val_steps])


class LateLogModule(SelfLogModule):
    """Logs ``late`` in ``on_train_batch_end``, which Lightning calls after every callback's."""

    def on_train_batch_end(self, outputs, batch, batch_idx):
        self.log("late", torch.tensor(float(batch_idx)))


def test_values_logged_after_the_bridge_in_on_train_batch_end_are_named_not_shifted(tmp_path):
    """The hooks cannot get a value logged after their after_train_iter: it must not reach them as the
    next iteration's (one step late, the epoch's last lost), and a warning names it once."""
    with pytest.warns(UserWarning, match=r"on_train_batch_end after HookBridge's own \(late\)") as record:
        _, bridge, _ = run_lh(
            tmp_path,
            trainer_kwargs=dict(max_epochs=2),
            bridge_kwargs=dict(default_hooks=dict(logger=dict(type="LoggerHook", interval=1))),
            module=LateLogModule(record=False),
        )
    assert sum("(late)" in str(w.message) for w in record) == 1
    assert "train/late" not in bridge.message_hub.log_scalars
    assert len(bridge.message_hub.get_scalar("train/step_value").data[0]) == 2 * ITERS_PER_EPOCH


class TakenNamesModule(ToyModule):
    """Logs names the default hooks write themselves, in training and in validation."""

    def training_step(self, batch, batch_idx):
        self.log("time", 1000.0)
        self.log("step", 900.0)
        return super().training_step(batch, batch_idx)

    def validation_step(self, batch, batch_idx):
        self.log("data_time", 1000.0)
        return super().validation_step(batch, batch_idx)


def test_a_value_named_like_one_the_default_hooks_write_is_named_once(tmp_path):
    with pytest.warns(UserWarning, match="shares its name") as record:
        run_lh(tmp_path, trainer_kwargs=dict(max_epochs=2), module=TakenNamesModule())
    said = sorted(
        re.search(r"value '(\w+)' shares", str(w.message)).group(1) for w in record if "shares" in str(w.message)
    )
    assert said == ["data_time", "step", "time"]  # each once, over two epochs


class StepOnlyValidationModule(ToyModule):
    def validation_step(self, batch, batch_idx):
        self.log("per_batch", float(batch_idx), on_step=True, on_epoch=False)
        return super().validation_step(batch, batch_idx)


def test_a_validation_value_logged_on_step_only_is_named_once(tmp_path):
    """It has no epoch value for after_val_epoch (MMEngine's evaluator gives epoch metrics only)."""
    with pytest.warns(UserWarning, match=r"on_epoch=False \(per_batch\)") as record:
        _, bridge, _ = run_lh(tmp_path, trainer_kwargs=dict(max_epochs=2), module=StepOnlyValidationModule())
    assert sum("per_batch" in str(w.message) for w in record) == 1
    assert "val/per_batch" not in bridge.message_hub.log_scalars and "val/acc" in bridge.message_hub.log_scalars
