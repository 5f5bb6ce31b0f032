"""The digits demo: a real run whose printed summary is checked against the files it left."""

from __future__ import annotations

import json
import os.path as osp
import runpy
import sys
from pathlib import Path

import pytest
import torch
from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

from lightning_hooks.demo import METRIC, DigitsCNN, DigitsDataModule, evaluate, main, run_demo


def read_scalars(path):
    with open(path) as f:
        return [json.loads(line) for line in f if line.strip()]


def accuracy_of(state_dict, strip_prefix=None):
    if strip_prefix:
        state_dict = {k[len(strip_prefix) :]: v for k, v in state_dict.items() if k.startswith(strip_prefix)}
    model = DigitsCNN()
    model.load_state_dict(state_dict)
    data = DigitsDataModule(seed=0)
    data.setup()
    return evaluate(model, data.val_dataloader())


@pytest.mark.slow
def test_epoch_based_demo_summary_matches_files(tmp_path):
    result = run_demo(epochs=2, work_dir=str(tmp_path / "work"), log_interval=10)
    work = tmp_path / "work"
    # checkpoints: one per epoch, last_checkpoint points at the last one
    assert [osp.basename(p) for p in result.checkpoints] == ["epoch_1.pth", "epoch_2.pth"]
    assert result.last_checkpoint == str(work / "epoch_2.pth")
    assert (work / "last_checkpoint").read_text() == result.last_checkpoint

    # the JSON scalars: MMEngine's layout, training loss lines and one validation line per epoch
    records = read_scalars(result.scalars_json)
    assert Path(result.scalars_json).parent.name == "vis_data"
    train = [r for r in records if "loss" in r]
    val = [r for r in records if METRIC in r]
    assert [r["step"] for r in val] == [1, 2] and len(train) == 8  # 45 iterations/epoch, interval 10
    assert train[-1]["loss"] < train[0]["loss"]

    # best checkpoint: the epoch with the highest validation accuracy, and its score
    best_epoch = max(val, key=lambda r: r[METRIC])["step"]
    assert result.best_checkpoint == str(work / f"best_accuracy_top1_epoch_{best_epoch}.pth")
    assert result.best_score == pytest.approx(max(r[METRIC] for r in val))
    assert "Summary" in result.summary() and result.best_checkpoint in result.summary()

    # TensorBoard: the event file read back holds the same numbers
    acc = EventAccumulator(result.tensorboard_dir)
    acc.Reload()
    tb_val = [(e.step, e.value) for e in acc.Scalars(METRIC)]
    assert tb_val == [(r["step"], pytest.approx(r[METRIC], rel=1e-6)) for r in val]
    assert len(acc.Scalars("loss")) == len(train)

    # accuracies: the checkpoint's state_dict holds the EMA weights, ema_state_dict the raw ones (MMEngine's swap)
    checkpoint = torch.load(result.last_checkpoint, weights_only=True)
    assert result.ema_accuracy == pytest.approx(accuracy_of(checkpoint["state_dict"]))
    assert result.raw_accuracy == pytest.approx(accuracy_of(checkpoint["ema_state_dict"], "module."))
    assert result.ema_accuracy == pytest.approx(val[-1][METRIC], abs=1e-3)  # validation ran on the EMA weights
    assert result.raw_accuracy > 80 and result.ema_accuracy > 80


@pytest.mark.slow
def test_iteration_based_demo(tmp_path):
    result = run_demo(iter_based=True, max_iters=40, val_interval=20, work_dir=str(tmp_path))
    assert [osp.basename(p) for p in result.checkpoints] == ["iter_20.pth", "iter_40.pth"]
    val = [r for r in read_scalars(result.scalars_json) if METRIC in r]
    assert [r["step"] for r in val] == [20, 40]
    assert osp.basename(result.best_checkpoint).startswith("best_accuracy_top1_iter_")
    meta = torch.load(result.last_checkpoint, weights_only=True)["meta"]
    assert (meta["epoch"], meta["iter"]) == (0, 40)


def test_demo_command_line_checks_and_help(monkeypatch, capsys):
    with pytest.raises(SystemExit):
        main(["--epochs", "0"])
    assert "--epochs must be at least 1, got 0" in capsys.readouterr().err
    with pytest.raises(SystemExit):
        main(["--ema-momentum", "1.5"])
    assert "--ema-momentum must be between 0 and 1" in capsys.readouterr().err
    monkeypatch.setattr(sys, "argv", ["python -m lightning_hooks.demo", "--help"])
    with pytest.raises(SystemExit) as exited:
        runpy.run_module("lightning_hooks.demo", run_name="__main__")
    assert exited.value.code == 0
    helped = capsys.readouterr()
    assert all(o in helped.out for o in ("--epochs", "--work-dir", "--iter-based", "--max-iters")), helped


@pytest.mark.slow
def test_demo_through_the_cli_prints_summary(tmp_path, capsys):
    from lightning_hooks.__main__ import main as cli_main

    assert cli_main(["demo", "--epochs", "1", "--work-dir", str(tmp_path)]) == 0
    out = capsys.readouterr().out
    assert "Epoch(train) [1][10/45]" in out  # MMEngine-style lines
    summary = out[out.index("Summary") :]
    assert f"last checkpoint   : {tmp_path / 'epoch_1.pth'}" in summary
    scalars = [line.split(":", 1)[1].strip() for line in summary.splitlines() if "JSON scalars" in line]
    assert len(scalars) == 1 and osp.isfile(scalars[0])
    tensorboard = [
        line.split(":", 1)[1].split("(")[0].strip() for line in summary.splitlines() if "TensorBoard" in line
    ]
    assert list(Path(tensorboard[0]).glob("events.out.tfevents.*"))


@pytest.mark.slow
def test_summary_reports_only_this_runs_files_in_a_reused_work_dir(tmp_path):
    work = str(tmp_path / "work")
    run_demo(epochs=3, work_dir=work, log_interval=10)  # leaves epoch_3.pth and a best checkpoint behind
    result = run_demo(epochs=1, work_dir=work, log_interval=10)
    assert [osp.basename(p) for p in result.checkpoints] == ["epoch_1.pth"]
    assert result.last_checkpoint == osp.join(work, "epoch_1.pth")
    assert osp.basename(result.best_checkpoint) == "best_accuracy_top1_epoch_1.pth"
    assert osp.exists(result.best_checkpoint)
