"""The lightning-hooks command: publish (MMEngine's file name and content) and inspect, on real checkpoints."""

from __future__ import annotations

import fractions
import json
import os
import pickle
import re
import runpy
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import torch
from toy import ToyModule, loaders, make_trainer, run_mmengine

from lightning_hooks import HookBridge
from lightning_hooks.cli import main, publish_dict


@pytest.fixture(scope="module")
def trained(tmp_path_factory):
    """A 2-epoch toy run with save_best and EMA: regular and best checkpoints on disk."""
    work = tmp_path_factory.mktemp("cli")
    bridge = HookBridge(
        default_hooks=dict(checkpoint=dict(type="CheckpointHook", interval=1, save_best="acc")),
        custom_hooks=[dict(type="EMAHook")],
    )
    trainer = make_trainer(work, bridge, max_epochs=2)
    trainer.fit(ToyModule(), *loaders())
    return work


def test_publish_command_writes_loadable_filtered_copy(trained, tmp_path, capsys):
    ckpt = tmp_path / "epoch_2.pth"
    shutil.copy(trained / "epoch_2.pth", ckpt)
    assert main(["publish", str(ckpt), "--keys", "state_dict", "meta"]) == 0
    out = capsys.readouterr().out
    assert "removed keys:" in out and "optimizer_states" in out and "ema_state_dict" in out
    published_files = [p.name for p in tmp_path.glob("epoch_2-*.pth")]
    assert len(published_files) == 1 and re.fullmatch(r"epoch_2-[0-9a-f]{8}\.pth", published_files[0])
    assert published_files[0] in out
    published = torch.load(tmp_path / published_files[0], weights_only=True)
    original = torch.load(ckpt, weights_only=True)
    assert list(published) == [k for k in original if k in ("meta", "state_dict")]  # the checkpoint's order
    assert published["meta"] == original["meta"]
    for key, value in original["state_dict"].items():
        assert torch.equal(published["state_dict"][key], value)


def test_publish_name_is_mmengines_for_the_same_dict(trained, tmp_path, monkeypatch):
    """MMEngine's CheckpointHook._publish_model, fed the very same loaded dict, picks the same file name."""
    import mmengine.runner.checkpoint as mm_checkpoint
    from mmengine.hooks import CheckpointHook as MMCheckpointHook

    loaded = torch.load(trained / "epoch_2.pth", map_location="cpu", weights_only=True)
    ours_path, theirs_path = tmp_path / "ours" / "epoch_2.pth", tmp_path / "theirs" / "epoch_2.pth"
    ours_path.parent.mkdir()
    theirs_path.parent.mkdir()
    target, removed = publish_dict(dict(loaded), str(ours_path), ["meta", "state_dict"])
    monkeypatch.setattr(mm_checkpoint, "_load_checkpoint", lambda *a, **k: dict(loaded))
    MMCheckpointHook(published_keys=["meta", "state_dict"])._publish_model(None, str(theirs_path))
    theirs = [p.name for p in theirs_path.parent.glob("epoch_2-*.pth")]
    assert theirs == [Path(target).name]
    assert "optimizer_states" in removed and "meta" not in removed


def test_publish_errors_name_the_problem(trained, tmp_path, capsys):
    ckpt = tmp_path / "epoch_1.pth"
    shutil.copy(trained / "epoch_1.pth", ckpt)
    assert main(["publish", str(ckpt), "--keys", "state_dict", "no_such_key"]) == 2
    err = capsys.readouterr().err
    assert "no_such_key" in err and "its keys are" in err
    assert main(["publish", str(tmp_path / "nope.pth")]) == 2
    assert "checkpoint not found" in capsys.readouterr().err
    assert main(["publish", str(ckpt), "--keys", "meta", "meta"]) == 2
    assert not list(tmp_path.glob("epoch_1-*.pth"))


def test_inspect_reports_counters_best_and_keys(trained, capsys):
    path = trained / "epoch_2.pth"
    assert main(["inspect", str(path), "--json"]) == 0
    report = json.loads(capsys.readouterr().out)
    checkpoint = torch.load(path, weights_only=True)
    assert (report["epoch"], report["iter"]) == (2, 8)
    assert report["lightning"] == {"epoch": checkpoint["epoch"], "global_step": checkpoint["global_step"]}
    assert report["best_score"] == {"best_score": checkpoint["message_hub"]["runtime_info"]["best_score"]}
    assert report["best_ckpt"]["best_ckpt"].endswith(".pth")
    assert report["ema"] is True and "ema_state_dict" in checkpoint
    assert list(report["keys"]) == list(checkpoint)
    weights = sum(v.numel() * v.element_size() for v in checkpoint["state_dict"].values())
    assert report["keys"]["state_dict"] >= weights
    assert main(["inspect", str(path)]) == 0
    text = capsys.readouterr().out
    assert "epoch      : 2" in text and "EMA        : yes" in text and "state_dict" in text


def test_inspect_of_a_work_dir_names_its_last_checkpoint(trained, capsys):
    assert main(["inspect", str(trained)]) == 2
    err = capsys.readouterr().err
    assert "not a complete sharded checkpoint" in err
    assert f"last_checkpoint names {trained / 'epoch_2.pth'}" in err


def test_inspect_mmengine_checkpoint_needs_trust(tmp_path, monkeypatch, capsys):
    run_mmengine(tmp_path, [], train_cfg=dict(by_epoch=True, max_epochs=1, val_interval=1))
    path = next(tmp_path.glob("epoch_1.pth"))
    assert main(["inspect", str(path)]) == 2
    assert "--trust" in capsys.readouterr().err
    assert main(["inspect", str(path), "--json", "--trust"]) == 0
    report = json.loads(capsys.readouterr().out)
    assert (report["epoch"], report["iter"]) == (1, 4)
    assert list(report["keys"])[:2] == ["meta", "state_dict"]


def test_command_line_entry_points(trained, monkeypatch, capsys):
    script = Path(sys.executable).with_name("lightning-hooks")  # the console script pip installs
    out = subprocess.run(
        [str(script), "inspect", str(trained / "epoch_1.pth")], capture_output=True, text=True, timeout=300
    )
    assert out.returncode == 0, out.stderr
    assert "epoch      : 1" in out.stdout
    monkeypatch.setattr(sys, "argv", ["python -m lightning_hooks", "--help"])  # python -m lightning_hooks
    with pytest.raises(SystemExit) as exited:
        runpy.run_module("lightning_hooks", run_name="__main__")
    assert exited.value.code == 0
    helped = capsys.readouterr()
    assert all(c in helped.out for c in ("demo", "publish", "inspect")), helped
    with pytest.raises(SystemExit):
        main(["demo", "--help"])
    assert capsys.readouterr().out.startswith("usage: lightning-hooks demo ")  # the command as typed


def _damaged_copies(source: Path, where: Path) -> dict[str, Path]:
    """A real checkpoint cut in half, an empty file, bytes that are no checkpoint, and a cut legacy pickle."""
    data = source.read_bytes()
    legacy = pickle.dumps({"meta": {"epoch": 1}, "state_dict": {"w": [1.0, 2.0]}}, protocol=2)
    files = {
        "truncated": data[: len(data) // 2],
        "empty": b"",
        "not_a_checkpoint": b"this is a text file, not a checkpoint\n",
        "truncated_legacy_pickle": legacy[: len(legacy) // 2],
    }
    paths = {}
    for name, content in files.items():
        paths[name] = where / f"{name}.pth"
        paths[name].write_bytes(content)
    return paths


@pytest.mark.parametrize("trust", [False, True], ids=["safe", "trust"])
@pytest.mark.parametrize("command", ["inspect", "publish"])
def test_unreadable_file_is_one_line_and_status_2(trained, tmp_path, capsys, command, trust):
    """A truncated or corrupt file: one line on stderr naming the file, exit status 2, nothing written."""
    for name, path in _damaged_copies(trained / "epoch_2.pth", tmp_path).items():
        status = main([command, str(path), *(["--trust"] if trust else [])])
        captured = capsys.readouterr()
        lines = captured.err.strip().splitlines()
        assert status == 2, (name, captured)
        assert len(lines) == 1 and lines[0].startswith(f"lightning-hooks {command}: error: "), (name, captured.err)
        assert str(path) in lines[0] and "truncated or corrupt" in lines[0], (name, lines[0])
        assert "--trust" not in lines[0]  # damage is not a trust problem: --trust would not help
        assert captured.out == ""
    assert not list(tmp_path.glob("*-*.pth"))  # publish wrote nothing


def test_untrusted_objects_are_named_with_the_way_out(tmp_path, capsys):
    """A loadable file holding a class: weights_only refuses it, and the line names the class and --trust."""
    path = tmp_path / "foreign.pth"
    torch.save({"meta": {"epoch": 1}, "extra": fractions.Fraction(1, 3)}, path)
    assert main(["inspect", str(path)]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "fractions.Fraction" in err[0] and "--trust" in err[0]
    assert main(["inspect", str(path), "--trust"]) == 0


class _BlockedModule:
    """Pickles as a call of a function from a module torch refuses outright (``os``; harmless here)."""

    def __reduce__(self):
        return (os.getcwd, ())


def test_objects_of_a_blocked_module_are_named_with_the_way_out(tmp_path, capsys):
    """torch words these 'unsupported GLOBAL posix.getcwd whose module posix is blocked'."""
    path = tmp_path / "blocked.pth"
    torch.save({"meta": {"epoch": 1}, "extra": _BlockedModule()}, path)
    assert main(["inspect", str(path)]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "getcwd" in err[0] and "--trust" in err[0], err


@pytest.mark.parametrize(
    "content",
    [
        {"meta": 5, "state_dict": {}},
        {"meta": {}, "callbacks": [1], "state_dict": {}},
        {"meta": {}, "message_hub": {"runtime_info": [1]}, "state_dict": {}},
    ],
    ids=["meta", "callbacks", "runtime_info"],
)
def test_a_checkpoint_of_an_odd_shape_is_one_line_and_status_2(tmp_path, capsys, content):
    path = tmp_path / "odd.pth"
    torch.save(content, path)
    assert main(["inspect", str(path)]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and str(path) in err[0] and "not a dict" in err[0], err


@pytest.mark.parametrize("trust", [False, True])
def test_every_load_states_weights_only(trained, tmp_path, monkeypatch, capsys, trust):
    """torch.load always gets weights_only explicitly: True, and False only with --trust."""
    calls = []
    real_load = torch.load

    def recording_load(*args, **kwargs):
        calls.append(kwargs.get("weights_only", "missing"))
        return real_load(*args, **kwargs)

    monkeypatch.setattr(torch, "load", recording_load)
    ckpt = tmp_path / "epoch_2.pth"
    shutil.copy(trained / "epoch_2.pth", ckpt)
    extra = ["--trust"] if trust else []
    assert main(["inspect", str(ckpt), *extra]) == 0
    assert main(["publish", str(ckpt), *extra]) == 0
    capsys.readouterr()
    assert calls and all(c is (not trust) for c in calls), calls


def test_publish_goes_through_the_hooks_publishing_function(trained, tmp_path, monkeypatch, capsys):
    """One implementation: the command calls lightning_hooks.publishing.write_published, as CheckpointHook does."""
    import lightning_hooks.hooks.checkpoint_hook as checkpoint_hook_module
    import lightning_hooks.publishing as publishing

    assert checkpoint_hook_module.write_published is publishing.write_published
    calls = []
    real = publishing.write_published

    def recording(checkpoint, path, keys, *args, **kwargs):
        calls.append((path, list(keys)))
        return real(checkpoint, path, keys, *args, **kwargs)

    monkeypatch.setattr(publishing, "write_published", recording)
    ckpt = tmp_path / "epoch_1.pth"
    shutil.copy(trained / "epoch_1.pth", ckpt)
    assert main(["publish", str(ckpt), "--keys", "meta", "state_dict"]) == 0
    capsys.readouterr()
    assert calls == [(str(ckpt), ["meta", "state_dict"])]
    assert len(list(tmp_path.glob("epoch_1-*.pth"))) == 1
    assert not [p for p in tmp_path.iterdir() if p.name.startswith(".") or p.suffix == ".tmp"]  # no temp left


@pytest.mark.parametrize("command", [["inspect"], ["publish", "--keys", "meta", "state_dict"]])
def test_commands_import_neither_lightning_nor_the_hooks(trained, tmp_path, command):
    """inspect and publish read one file: a fresh process running them never imports Lightning or the hooks."""
    ckpt = tmp_path / "epoch_1.pth"
    shutil.copy(trained / "epoch_1.pth", ckpt)
    probe = (
        "import json, sys\n"
        "from lightning_hooks.__main__ import main\n"
        f"status = main([{command[0]!r}, sys.argv[1], *{command[1:]!r}])\n"
        "heavy = [m for m in sys.modules if m.split('.')[0] in ('lightning', 'pytorch_lightning')\n"
        "         or m.startswith(('lightning_hooks.hooks', 'lightning_hooks.bridge', 'lightning_hooks.runner'))]\n"
        "print('RESULT', json.dumps([status, sorted(heavy)]))\n"
    )
    out = subprocess.run([sys.executable, "-c", probe, str(ckpt)], capture_output=True, text=True, timeout=300)
    assert out.returncode == 0, out.stderr
    status, heavy = json.loads(out.stdout.split("RESULT", 1)[1])
    assert status == 0 and heavy == []
