"""LoggerHook against MMEngine's Runner on the same toy scenario, and its writers read back from disk.

Terminal lines are compared character for character with the timing values
(eta, time, data_time) and the experiment name masked; JSON lines are compared
key for key and step for step. TensorBoard files are read with tensorboard's
EventAccumulator, W&B offline runs from their ``.wandb`` file, CSVLogger from
its ``metrics.csv``.
"""

from __future__ import annotations

import csv
import json
import logging
import os
import warnings

import fsspec
import pytest
import torch
from ckpt_helpers import files_in
from lightning.pytorch.loggers import CSVLogger, TensorBoardLogger
from log_toy import LineCatcher, read_json_lines, read_tensorboard, run_lh, run_mm, wait_for_wandb_history
from torch.utils.data import DataLoader, IterableDataset
from toy import ToyDataset, ToyModule, make_trainer

from lightning_hooks import HookBridge, LoggerHook

TIMINGS = ("time", "data_time")
ITER_TRAINER = dict(max_steps=12, max_epochs=-1, val_check_interval=4, check_val_every_n_epoch=None)
MM_ITER = dict(train_cfg=dict(by_epoch=False, max_iters=12, val_interval=4), infinite=True)


def logger_cfg(**kwargs):
    return dict(checkpoint=None, logger=dict(type="LoggerHook", **kwargs))


def both(tmp_path, hook_kwargs, *, epochs=2, iter_based=False, log_processor=None, mode="train"):
    """Run MMEngine and Lightning with the same LoggerHook settings; returns (mm_runner, mm_catcher, lh...)."""
    mm_kwargs = dict(MM_ITER) if iter_based else dict(train_cfg=dict(by_epoch=True, max_epochs=epochs, val_interval=1))
    if mode != "train":
        mm_kwargs = {}
    runner, mm_catcher = run_mm(
        tmp_path / "mm", mode=mode, default_hooks=logger_cfg(**hook_kwargs), log_processor=log_processor, **mm_kwargs
    )
    trainer_kwargs = dict(ITER_TRAINER) if iter_based else dict(max_epochs=epochs)
    lh_mode = {"train": "fit", "val": "validate", "test": "test"}[mode]
    bridge_kwargs = dict(default_hooks=logger_cfg(**hook_kwargs), log_processor=log_processor)
    trainer, bridge, lh_catcher = run_lh(
        tmp_path / "lh", mode=lh_mode, trainer_kwargs=trainer_kwargs, bridge_kwargs=bridge_kwargs
    )
    return runner, mm_catcher, trainer, bridge, lh_catcher


def log_dir_of(bridge) -> str:
    return os.path.join(bridge.runtime["work_dir"], bridge.runtime["timestamp"])


def assert_same_lines(mm_catcher, lh_catcher):
    mm_lines, lh_lines = mm_catcher.lines(), lh_catcher.lines()
    assert mm_lines, "MMEngine printed no LoggerHook line"
    assert lh_lines == mm_lines


# ----------------------------------------------------------------------------- terminal lines
@pytest.mark.parametrize(
    ("hook_kwargs", "iter_based", "log_processor"),
    [
        (dict(interval=3), False, None),  # ignore_last drops the epoch's tail
        (dict(interval=3, ignore_last=False), False, None),
        (dict(interval=5), False, None),  # a loader shorter than the interval logs its end
        (dict(interval=1, interval_exp_name=3), False, None),  # val iteration lines too
        (dict(interval=5), True, dict(by_epoch=False)),  # the off-interval line at iteration len(loader)
        (dict(interval=2), True, dict(by_epoch=False, window_size=3)),
        (
            dict(interval=2),
            False,
            dict(
                window_size=2,
                log_with_hierarchy=True,
                custom_cfg=[dict(data_src="loss", method_name="max", window_size="global", log_name="loss_max")],
            ),
        ),
    ],
)
def test_terminal_lines_match_mmengine(tmp_path, hook_kwargs, iter_based, log_processor):
    _, mm_catcher, _, _, lh_catcher = both(tmp_path, hook_kwargs, iter_based=iter_based, log_processor=log_processor)
    assert_same_lines(mm_catcher, lh_catcher)


@pytest.mark.parametrize("mode", ["val", "test"])
def test_standalone_validation_and_test_lines_match_mmengine(tmp_path, mode):
    _, mm_catcher, _, _, lh_catcher = both(tmp_path, dict(interval=1), mode=mode)
    assert len(mm_catcher.lines()) == 3  # two iteration lines and the summary
    assert_same_lines(mm_catcher, lh_catcher)


class NoEpochStart(LoggerHook):
    """Overrides before_train_epoch without calling LoggerHook's: the epoch's length is not known ahead."""

    def before_train_epoch(self, runner):
        pass


@pytest.mark.parametrize("hook_kwargs", [dict(interval=3), dict(interval=1, interval_exp_name=3)])
def test_lines_without_before_train_epoch_are_the_same(tmp_path, hook_kwargs):
    runs = []
    for name, hook in (("plain", LoggerHook(**hook_kwargs)), ("override", NoEpochStart(**hook_kwargs))):
        _, _, catcher = run_lh(
            tmp_path / name, trainer_kwargs=dict(max_epochs=2), bridge_kwargs=dict(default_hooks=dict(logger=hook))
        )
        runs.append(catcher.lines())
    assert runs[0] and runs[1] == runs[0]
    assert "Exp name: <name>" in runs[0]


def test_log_file_holds_the_lines(tmp_path):
    _, _, _, bridge, lh_catcher = both(tmp_path, dict(interval=2), epochs=1)
    log_file = os.path.join(log_dir_of(bridge), f"{bridge.runtime['timestamp']}.log")
    text = open(log_file, encoding="utf-8").read()
    train_lines = [m for m in lh_catcher.messages if m.startswith("Epoch(train)")]
    assert len(train_lines) == 2
    for line in train_lines:
        assert f" - lightning_hooks - INFO - {line}\n" in text


def test_a_repeated_warning_is_logged_once_per_run(tmp_path, capsys):
    """MMEngine's logger prints a warning message once (its handlers filter repeats); other levels repeat."""
    from lightning_hooks import Hook

    class Warns(Hook):
        def after_train_epoch(self, runner):
            runner.logger.warning("the same warning")
            runner.logger.warning(f"a warning of epoch {runner.epoch}")
            runner.logger.info("the same info")

    _, bridge, _ = run_lh(
        tmp_path, trainer_kwargs=dict(max_epochs=3), bridge_kwargs=dict(custom_hooks=[Warns()], log_level="INFO")
    )
    text = open(os.path.join(log_dir_of(bridge), f"{bridge.runtime['timestamp']}.log"), encoding="utf-8").read()
    printed = capsys.readouterr().out
    for output in (text, printed):
        assert output.count("WARNING - the same warning\n") == 1
        assert [output.count(f"WARNING - a warning of epoch {epoch}\n") for epoch in range(3)] == [1, 1, 1]
        assert output.count("INFO - the same info\n") == 3
    run_lh(  # a new run prints it again
        tmp_path / "again", trainer_kwargs=dict(max_epochs=1), bridge_kwargs=dict(custom_hooks=[Warns()])
    )
    assert capsys.readouterr().out.count("WARNING - the same warning\n") == 1


@pytest.mark.parametrize(("level", "other_ranks"), [("INFO", logging.WARNING), ("ERROR", logging.ERROR)])
def test_other_ranks_print_warnings_at_most_and_never_below_log_level(level, other_ranks):
    """As MMEngine's logger: rank 0 prints from ``log_level``; other ranks from WARNING or ``log_level``, the higher."""
    from lightning_hooks.runner import get_logger

    try:
        logger = get_logger(rank=1, log_level=level)
        stream = next(h for h in logger.handlers if getattr(h, "_lh_stream", False))
        assert stream.level == other_ranks
    finally:
        get_logger(rank=0, log_level="INFO")


def test_out_dir_settings_without_out_dir_are_named():
    """MMEngine ignores them silently when there is no out_dir to copy the logs to."""
    with pytest.warns(UserWarning, match=r"keep_local=False, out_suffix, backend_args only apply with out_dir"):
        LoggerHook(keep_local=False, out_suffix=".log", backend_args=dict(anon=True))
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        LoggerHook(out_suffix=[".json", ".log", ".py", "yaml"])  # the default, as a list
        LoggerHook(out_dir="memory://logs", keep_local=False)


def test_log_level_holds_through_warnings_said_during_the_run(tmp_path, capsys):
    """``log_level='WARNING'``: a warning the bridge says at the start of the run (here: two checkpoint
    savers) does not bring the INFO lines back."""
    run_lh(
        tmp_path,
        trainer_kwargs=dict(max_epochs=1, enable_checkpointing=True),
        bridge_kwargs=dict(log_level="WARNING"),
    )
    printed = capsys.readouterr().out
    assert "WARNING - Both CheckpointHook and Lightning's ModelCheckpoint" in printed
    assert " - INFO - " not in printed


# ----------------------------------------------------------------------------- JSON lines
def _assert_same_records(mm_records, lh_records):
    assert len(lh_records) == len(mm_records) > 0
    for mm, lh in zip(mm_records, lh_records, strict=True):
        assert list(lh) == list(mm)
        for key in mm:
            if key not in TIMINGS:
                assert lh[key] == pytest.approx(mm[key], rel=1e-6), key


@pytest.mark.parametrize("iter_based", [False, True])
def test_json_lines_match_mmengine(tmp_path, iter_based):
    runner, _, _, bridge, _ = both(
        tmp_path, dict(interval=2), iter_based=iter_based, log_processor=dict(by_epoch=not iter_based)
    )
    mm_dir = os.path.join(runner.log_dir, "vis_data")
    lh_dir = os.path.join(log_dir_of(bridge), "vis_data")
    mm_records = read_json_lines(os.path.join(mm_dir, "scalars.json"))
    _assert_same_records(mm_records, read_json_lines(os.path.join(lh_dir, "scalars.json")))
    timestamp_json = read_json_lines(os.path.join(lh_dir, f"{bridge.runtime['timestamp']}.json"))
    assert timestamp_json == read_json_lines(os.path.join(lh_dir, "scalars.json"))
    steps = [r["step"] for r in mm_records]
    assert steps == ([2, 4, 0, 6, 8, 0, 10, 12, 0] if iter_based else [2, 4, 1, 6, 8, 2])


def test_validation_scalars_by_iteration(tmp_path):
    runner, _, _, bridge, _ = both(tmp_path, dict(interval=2, log_metric_by_epoch=False))
    mm_records = read_json_lines(os.path.join(runner.log_dir, "vis_data", "scalars.json"))
    lh_records = read_json_lines(os.path.join(log_dir_of(bridge), "vis_data", "scalars.json"))
    _assert_same_records(mm_records, lh_records)
    assert [r["step"] for r in lh_records if "acc" in r] == [4, 8]


def test_test_results_go_to_timestamp_json(tmp_path):
    runner, _, _, bridge, _ = both(tmp_path, dict(interval=10), mode="test")
    mm = json.load(open(os.path.join(runner.log_dir, f"{runner.timestamp}.json")))
    ours = json.load(open(os.path.join(log_dir_of(bridge), f"{bridge.runtime['timestamp']}.json")))
    assert list(ours) == list(mm) == ["acc", "data_time", "time"]
    assert ours["acc"] == pytest.approx(mm["acc"])
    assert not os.path.exists(os.path.join(log_dir_of(bridge), "vis_data", "scalars.json"))


# ----------------------------------------------------------------------------- TensorBoard, CSV, W&B
def _json_series(records, key):
    return [(r["step"], r[key]) for r in records if key in r]


def assert_series(got, expected):
    """Same steps, values equal up to float32 rounding (TensorBoard stores float32)."""
    assert [s for s, _ in got] == [s for s, _ in expected]
    assert [v for _, v in got] == pytest.approx([v for _, v in expected], rel=1e-6)


def test_own_tensorboard_writer_matches_json_lines(tmp_path):
    backends = [dict(type="LocalVisBackend"), dict(type="TensorboardVisBackend")]
    _, bridge, _ = run_lh(
        tmp_path,
        trainer_kwargs=dict(max_epochs=2),
        bridge_kwargs=dict(default_hooks=logger_cfg(interval=2, vis_backends=backends)),
    )
    vis_dir = os.path.join(log_dir_of(bridge), "vis_data")
    records = read_json_lines(os.path.join(vis_dir, "scalars.json"))
    board = read_tensorboard(vis_dir)
    for key in ("lr", "loss", "acc", "epoch", "iter"):
        assert_series(board[key], _json_series(records, key))
    assert [s for s, _ in board["loss"]] == [2, 4, 6, 8]


def test_trainer_loggers_get_the_same_scalars_and_steps(tmp_path):
    tb = TensorBoardLogger(str(tmp_path / "tb"), name="run")
    csv_logger = CSVLogger(str(tmp_path / "csv"), name="run")
    backends = [dict(type="LocalVisBackend"), dict(type="TensorboardVisBackend")]
    _, bridge, _ = run_lh(
        tmp_path / "lh",
        trainer_kwargs=dict(max_epochs=2, logger=[tb, csv_logger]),
        bridge_kwargs=dict(default_hooks=logger_cfg(interval=2, vis_backends=backends)),
    )
    vis_dir = os.path.join(log_dir_of(bridge), "vis_data")
    records = read_json_lines(os.path.join(vis_dir, "scalars.json"))
    assert not any(name.startswith("events.out") for name in os.listdir(vis_dir))  # TensorBoardLogger covers it
    board = read_tensorboard(tb.log_dir)
    assert_series(board["loss"], _json_series(records, "loss"))
    assert_series(board["lr"], _json_series(records, "lr"))
    with open(os.path.join(csv_logger.log_dir, "metrics.csv")) as f:
        rows = list(csv.DictReader(f))
    csv_loss = [(int(r["step"]), float(r["loss"])) for r in rows if r.get("loss")]
    assert_series(csv_loss, _json_series(records, "loss"))


@pytest.mark.slow
def test_wandb_offline_runs(tmp_path, monkeypatch):
    """Own W&B writer from vis_backends, and Lightning's WandbLogger fed through log_metrics."""
    from lightning.pytorch.loggers import WandbLogger

    monkeypatch.setenv("WANDB_MODE", "offline")
    backends = [dict(type="LocalVisBackend"), dict(type="WandbVisBackend", init_kwargs=dict(project="lh-test"))]
    _, bridge, _ = run_lh(
        tmp_path / "own",
        trainer_kwargs=dict(max_epochs=2),
        bridge_kwargs=dict(default_hooks=logger_cfg(interval=2, vis_backends=backends)),
    )
    vis_dir = os.path.join(log_dir_of(bridge), "vis_data")
    records = read_json_lines(os.path.join(vis_dir, "scalars.json"))
    rows = wait_for_wandb_history(vis_dir, "loss", 4)
    assert_series([(r["step"], r["loss"]) for r in rows if "loss" in r], _json_series(records, "loss"))
    assert_series([(r["step"], r["acc"]) for r in rows if "acc" in r], _json_series(records, "acc"))

    wandb_logger = WandbLogger(save_dir=str(tmp_path / "wl"), offline=True, project="lh-test")
    _, bridge, _ = run_lh(
        tmp_path / "lightning",
        trainer_kwargs=dict(max_epochs=2, logger=wandb_logger),
        bridge_kwargs=dict(default_hooks=logger_cfg(interval=2, vis_backends=backends)),
    )
    wandb_logger.experiment.finish()
    records = read_json_lines(os.path.join(log_dir_of(bridge), "vis_data", "scalars.json"))
    assert not list((tmp_path / "lightning").rglob("*.wandb"))  # the WandbLogger covers W&B: no second run
    rows = wait_for_wandb_history(tmp_path / "wl", "loss", 4)
    logged = [(r["trainer/global_step"], r["loss"]) for r in rows if "loss" in r]
    assert_series(logged, _json_series(records, "loss"))


# ----------------------------------------------------------------------------- no per-iteration sync
class LongToy(ToyModule):
    """The toy module on 40 samples in batches of 2 (20 iterations)."""

    def train_dataloader(self):
        from toy import ToyDataset

        return torch.utils.data.DataLoader(ToyDataset(40), batch_size=2)


def test_no_host_sync_between_log_lines(tmp_path, monkeypatch):
    """Between two training lines the iterations call no .item/.tolist/.cpu/float(); MMEngine would call .item() each.

    The losses are made to look like accelerator tensors (``is_cpu`` False), which are copied
    to the host together; CPU ones, with nothing to copy, are read one by one at the line.
    """
    from host_reads import count_host_reads, per_iteration_reads, pretend_accelerator_tensors
    from toy import make_trainer

    from lightning_hooks import HookBridge

    pretend_accelerator_tensors(monkeypatch)
    probes, syncs = per_iteration_reads(count_host_reads(monkeypatch))
    bridge = HookBridge(default_hooks=logger_cfg(interval=10), custom_hooks=probes)
    make_trainer(tmp_path, bridge, max_epochs=1, limit_val_batches=0).fit(LongToy())
    assert len(syncs) == 20
    quiet = [syncs[i] for i in range(11, 20)]
    assert quiet == [0] * 9, f"host syncs in iterations 11..19: {quiet}"
    assert 1 <= syncs[20] <= 2  # the line at iteration 20 reads the 10 pending losses in one copy
    hub_loss = bridge.message_hub.get_scalar("train/loss")
    assert len(hub_loss) == 20


# ----------------------------------------------------------------------------- out_dir and keep_local
def test_out_dir_local_copy_and_keep_local(tmp_path):
    out = tmp_path / "out"
    _, bridge, _ = run_lh(
        tmp_path / "work",
        trainer_kwargs=dict(max_epochs=1),
        bridge_kwargs=dict(default_hooks=logger_cfg(interval=2, out_dir=str(out), out_suffix=".log", keep_local=False)),
    )
    timestamp = bridge.runtime["timestamp"]
    copied = out / "work" / f"{timestamp}.log"  # <out_dir>/<basename(work_dir)>/<path relative to log_dir>
    assert copied.exists() and "Epoch(train)" in copied.read_text()
    assert not (out / "work" / "vis_data").exists()  # only .log was asked for
    log_dir = log_dir_of(bridge)
    assert not os.path.exists(os.path.join(log_dir, f"{timestamp}.log"))
    assert os.path.exists(os.path.join(log_dir, "vis_data", "scalars.json"))  # not a copied suffix: kept


def test_out_dir_fsspec_memory_url(tmp_path):
    url = "memory://lh_logs"
    _, bridge, _ = run_lh(
        tmp_path / "work",
        trainer_kwargs=dict(max_epochs=1),
        bridge_kwargs=dict(default_hooks=logger_cfg(interval=2, out_dir=url)),
    )
    timestamp = bridge.runtime["timestamp"]
    fs = fsspec.filesystem("memory")
    remote = "/lh_logs/work"
    names = sorted(p.rsplit("/", 1)[1] for p in fs.find(remote))
    assert names == sorted([f"{timestamp}.log", f"{timestamp}.json", "scalars.json"])
    with fs.open(f"{remote}/vis_data/scalars.json", "r") as f:
        remote_lines = [json.loads(line) for line in f]
    assert remote_lines == read_json_lines(os.path.join(log_dir_of(bridge), "vis_data", "scalars.json"))
    fs.rm("/lh_logs", recursive=True)


def test_mmengine_out_dir_layout_is_the_same(tmp_path):
    out = tmp_path / "out"
    runner, _, _, bridge, _ = both(tmp_path, dict(interval=2, out_dir=str(out)), epochs=1)
    mm_files = sorted(
        p.relative_to(out / "mm").as_posix().replace(runner.timestamp, "TS")
        for p in (out / "mm").rglob("*")
        if p.is_file()
    )
    lh_ts = bridge.runtime["timestamp"]
    lh_files = sorted(
        p.relative_to(out / "lh").as_posix().replace(lh_ts, "TS") for p in (out / "lh").rglob("*") if p.is_file()
    )
    mm_files = [f for f in mm_files if not f.endswith(".py")]  # MMEngine also dumps its config
    assert lh_files == mm_files


# ----------------------------------------------------------------------------- settings and progress bar
@pytest.mark.parametrize(
    ("kwargs", "error", "message"),
    [
        (dict(interval=0), ValueError, "interval must be greater than 0, got 0"),
        (dict(interval="10"), TypeError, "interval must be an int, got '10'"),
        (dict(interval_exp_name=-1), ValueError, "interval_exp_name must be greater than 0"),
        (dict(out_dir=1), TypeError, "out_dir must be a str or Path"),
        (dict(out_suffix=[100]), TypeError, "out_suffix should be a string or a sequence of strings"),
        (dict(keep_local="yes"), TypeError, "keep_local must be a boolean"),
        (dict(file_client_args=dict(backend="disk")), ValueError, "backend_args"),
        (
            dict(vis_backends=[dict(type="MLflowVisBackend")]),
            ValueError,
            "unknown type 'MLflowVisBackend'.*valid types",
        ),
        (dict(vis_backends=[dict(type="WandbVisBackend", watch_kwargs={})]), ValueError, "unsupported arguments"),
        (dict(vis_backends="tensorboard"), TypeError, "list of dicts"),
    ],
)
def test_bad_settings_are_rejected(kwargs, error, message):
    with pytest.raises(error, match=message):
        LoggerHook(**kwargs)


def test_progress_bar_can_stay_on(tmp_path):
    """Lightning's progress bar and the lines coexist; pick one with enable_progress_bar or interval."""
    trainer, _, catcher = run_lh(
        tmp_path,
        trainer_kwargs=dict(max_epochs=1, enable_progress_bar=True),
        bridge_kwargs=dict(default_hooks=logger_cfg(interval=2)),
    )
    assert trainer.progress_bar_callback is not None
    assert len([m for m in catcher.messages if m.startswith("Epoch(train)")]) == 2


def test_mmengine_reads_the_loss_every_iteration(tmp_path):
    """The anchor for the test above: MMEngine's Runner calls .item() on the loss at every iteration."""
    from mmengine.hooks import Hook as MMHook

    counts = {"item": 0}
    original = torch.Tensor.item

    def counting_item(self):
        counts["item"] += 1
        return original(self)

    per_iter: list[int] = []

    class Start(MMHook):
        priority = "HIGHEST"

        def before_train_iter(self, runner, batch_idx, data_batch=None):
            self.start = counts["item"]

    class End(MMHook):
        priority = "LOWEST"

        def after_train_iter(self, runner, batch_idx, data_batch=None, outputs=None):
            per_iter.append(counts["item"] - start.start)

    start = Start()
    torch.Tensor.item = counting_item
    try:
        run_mm(tmp_path, default_hooks=logger_cfg(interval=10), custom_hooks=[start, End()])
    finally:
        torch.Tensor.item = original
    assert len(per_iter) == 8
    assert min(per_iter) >= 1  # at least one host read per iteration, line or not


# ----------------------------------------------------------------------------- loaders without a length
class _Streamed(IterableDataset):
    """The toy samples as a stream: the DataLoader cannot tell how many batches an epoch has."""

    def __init__(self, n: int) -> None:
        self.n = n

    def __iter__(self):
        data = ToyDataset(self.n)
        return (data[i] for i in range(self.n))


class StreamedModule(ToyModule):
    def train_dataloader(self):
        return DataLoader(_Streamed(12), batch_size=3)

    def val_dataloader(self):
        return DataLoader(_Streamed(12), batch_size=6)

    test_dataloader = val_dataloader

    def configure_optimizers(self):
        return torch.optim.SGD(self.parameters(), lr=0.1)


@pytest.mark.parametrize("by_epoch", [True, False], ids=["by-epoch", "by-iter"])
def test_loaders_that_cannot_tell_their_length_get_lines_not_a_crash(tmp_path, by_epoch):
    """MMEngine calls len() on the loader and fails; here the size shows as '?' and there is no ETA it cannot know."""
    if by_epoch:
        length: dict = dict(max_epochs=2)
    else:
        length = dict(max_steps=8, max_epochs=-1, val_check_interval=4, check_val_every_n_epoch=None)
    bridge = HookBridge(default_hooks=dict(logger=dict(type="LoggerHook", interval=2)))
    trainer = make_trainer(tmp_path, bridge, num_sanity_val_steps=0, **length)
    catcher = LineCatcher()
    logging.getLogger("lightning_hooks").addHandler(catcher)
    try:
        module = StreamedModule()
        trainer.fit(module)
        trainer.test(module)
    finally:
        logging.getLogger("lightning_hooks").removeHandler(catcher)
    lines = catcher.lines()
    train = [line for line in lines if "(train)" in line]
    if by_epoch:
        assert [line.split("  ")[0] for line in train] == [f"Epoch(train) [{e}][{i}/?]" for e in (1, 2) for i in (2, 4)]
        assert not any("eta" in line for line in train[:-1])  # the length of training is unknown...
        assert "eta: <t>" in train[-1]  # ...until its last iteration has come
    else:
        assert [line.split("  ")[0] for line in train] == [f"Iter(train) [{i}/8]" for i in (2, 4, 6, 8)]
        assert all("eta: <t>" in line for line in train)
    val = [line for line in lines if "(val)" in line]
    assert any(line.split("  ")[0].endswith("[2/?]") for line in val)
    assert any(line.split("  ")[0].endswith("[2/2]") and "acc:" in line for line in val)
    assert any(line.startswith(("Epoch(test) [2/2]", "Iter(test) [2/2]")) and "acc:" in line for line in lines)
    assert files_in(tmp_path)  # and CheckpointHook saved as usual


def test_end_of_epoch_is_false_for_a_loader_without_a_length():
    hook = LoggerHook()
    assert hook.end_of_epoch(DataLoader(_Streamed(6), batch_size=3), 1) is False
    assert hook.end_of_epoch(DataLoader(ToyDataset(6), batch_size=3), 1) is True


@pytest.mark.parametrize(
    ("hook_kwargs", "trainer_kwargs", "warned", "val_steps"),
    [
        (dict(), dict(val_check_interval=0.5), True, [0, 1, 1, 2]),
        (dict(log_metric_by_epoch=False), dict(val_check_interval=0.5), False, [2, 4, 6, 8]),
        (dict(), dict(), False, [1, 2]),
    ],
    ids=["by-epoch-within-epochs", "by-iteration", "at-epoch-ends"],
)
def test_validations_within_an_epoch_that_would_share_a_step_are_named(
    tmp_path, messages, hook_kwargs, trainer_kwargs, warned, val_steps
):
    bridge_kwargs = dict(default_hooks=logger_cfg(interval=2, **hook_kwargs))
    _, bridge, _ = run_lh(tmp_path, trainer_kwargs=dict(max_epochs=2, **trainer_kwargs), bridge_kwargs=bridge_kwargs)
    records = read_json_lines(os.path.join(log_dir_of(bridge), "vis_data", "scalars.json"))
    assert [r["step"] for r in records if "acc" in r] == val_steps
    found = [m for m in messages.warnings() if "share a step" in m]
    assert len(found) == (1 if warned else 0), messages.warnings()
    if warned:
        assert "val_check_interval=0.5" in found[0] and "LoggerHook(log_metric_by_epoch=False)" in found[0]
