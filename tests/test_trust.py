"""The trust boundary: a checkpoint's contents are data, resume never silently restarts, arguments are checked.

Crafted checkpoints (paths outside the run, symlinks, ``..``, absolute and
relative paths, foreign pickles) must make the hook delete nothing and
unpickle nothing; every hook rejects a misspelt argument; files honour the umask.
"""

from __future__ import annotations

import ast
import os
import pickle
import shutil
import stat
from pathlib import Path

import pytest
import torch
from ckpt_helpers import NO_DEFAULTS, RAMP_SCORES, ScoredModule, files_in, run_lightning
from test_sharded_checkpoint import write_directory
from toy import ToyModule, loaders, make_trainer

import lightning_hooks
from lightning_hooks import EMAHook, HookBridge
from lightning_hooks.checkpoint_io import AtomicCheckpointIO, ResumeError, atomic_torch_save, atomic_write_text
from lightning_hooks.hooks import CheckpointHook
from lightning_hooks.registry import HOOKS

PACKAGE = Path(lightning_hooks.__file__).parent


# ----------------------------------------------------------------------------- crafted checkpoints
class _Payload:
    """A foreign pickle: unpickling it creates ``marker`` (standing in for arbitrary code)."""

    def __init__(self, marker: str) -> None:
        self.marker = marker

    def __reduce__(self):
        return (open, (self.marker, "w"))


def _craft(path: Path, **runtime_info) -> None:
    """Rewrite the checkpoint at ``path`` with the given message-hub runtime_info entries (it still loads weights_only)."""
    ckpt = torch.load(path, weights_only=True)
    ckpt["message_hub"]["runtime_info"].update(runtime_info)
    torch.save(ckpt, path)
    torch.load(path, weights_only=True)  # still plain data


def _victims(tmp_path: Path) -> dict[str, Path]:
    """Files outside the run (and one reached through a symlink) that a crafted checkpoint points at."""
    outside = tmp_path / "outside"
    outside.mkdir()
    victims = {name: outside / name for name in ("best_acc_epoch_1.pth", "epoch_1.pth", "precious.txt")}
    for path in victims.values():
        path.write_text("not yours")
    return victims


CRAFTED = {
    "absolute path outside": lambda run, out: str(out / "best_acc_epoch_1.pth"),
    "dot-dot escape": lambda run, out: str(run / ".." / "outside" / "best_acc_epoch_1.pth"),
    "relative path": lambda run, out: "../outside/best_acc_epoch_1.pth",
    "symlink inside the run": lambda run, out: _symlink(run / "best_acc_epoch_9.pth", out / "best_acc_epoch_1.pth"),
    "foreign name inside the run": lambda run, out: _plant(run / "precious.txt"),
    "not a string": lambda run, out: 12345,
}


def _symlink(link: Path, target: Path) -> str:
    link.symlink_to(target)
    return str(link)


def _plant(path: Path) -> str:
    path.write_text("the user's own file")
    return str(path)


@pytest.mark.parametrize("case", sorted(CRAFTED))
def test_crafted_best_path_is_neither_deleted_nor_published(tmp_path, case, recwarn):
    """A new best after resume would delete ``best_ckpt``; publishing would load it with weights_only=False."""
    run = tmp_path / "run"
    victims = _victims(tmp_path)
    cfg = dict(type="CheckpointHook", interval=1, save_best="acc", published_keys=["meta", "state_dict"])
    run_lightning(run, cfg, {"acc": [0.1, 0.2, 0.3]}, max_epochs=1)
    crafted = CRAFTED[case](run, tmp_path / "outside")
    _craft(run / "epoch_1.pth", best_ckpt=crafted, best_score=0.0)
    before = {p: p.read_text() for p in victims.values()}
    planted = {p: p.read_text() for p in run.iterdir() if p.suffix == ".txt"}
    run_lightning(run, cfg, {"acc": [0.1, 0.2, 0.3]}, max_epochs=2, resume=True)
    assert {p: p.read_text() for p in victims.values()} == before  # nothing outside deleted or touched
    assert {p: p.read_text() for p in planted} == planted  # nor a foreign file inside the run
    assert not list((tmp_path / "outside").glob("*-????????.pth"))  # nothing published outside
    assert any(repr(crafted) in str(w.message) for w in recwarn), [str(w.message) for w in recwarn]
    hub = torch.load(run / "epoch_2.pth", weights_only=True)["message_hub"]["runtime_info"]
    assert hub["best_ckpt"] == str(run / "best_acc_epoch_2.pth")  # the crafted path is not carried on


def test_crafted_keep_ids_and_last_ckpt_delete_nothing(tmp_path, recwarn):
    run = tmp_path / "run"
    victims = _victims(tmp_path)
    cfg = dict(type="CheckpointHook", interval=1, max_keep_ckpts=1)
    run_lightning(run, cfg, RAMP_SCORES, max_epochs=1)
    _craft(
        run / "epoch_1.pth",
        keep_ckpt_ids=["../outside/epoch_1", "../outside/precious.txt#", 1],
        last_ckpt=str(victims["epoch_1.pth"]),
    )
    run_lightning(run, cfg, RAMP_SCORES, max_epochs=3, resume=True)
    assert all(p.read_text() == "not yours" for p in victims.values())
    assert files_in(run) == ["epoch_3.pth", "last_checkpoint"]
    messages = " ".join(str(w.message) for w in recwarn)
    assert "keep_ckpt_ids" in messages and str(victims["epoch_1.pth"]) in messages


def test_resuming_another_runs_checkpoint_removes_nothing_at_start(tmp_path):
    """The start-up cleanup of a killed rotation applies only to a resume point of this directory."""
    cfg = dict(type="CheckpointHook", interval=1, max_keep_ckpts=2)
    run_lightning(tmp_path / "a", cfg, RAMP_SCORES, max_epochs=3)  # a keeps epochs 2 and 3
    run_lightning(tmp_path / "b", cfg, RAMP_SCORES, max_epochs=1)
    run_lightning(tmp_path / "b", cfg, RAMP_SCORES, max_epochs=4, ckpt_path=str(tmp_path / "a" / "epoch_3.pth"))
    # b/epoch_1.pth is older than a's kept ids, but no run of b's was rotating it out
    assert files_in(tmp_path / "b") == ["epoch_1.pth", "epoch_4.pth", "last_checkpoint"]


def test_a_best_path_that_does_not_exist_removes_no_older_best_at_start(tmp_path):
    run = tmp_path / "run"
    cfg = dict(type="CheckpointHook", interval=1, save_best="acc")
    run_lightning(run, cfg, {"acc": [0.1, 0.2, 0.3]}, max_epochs=2)
    assert (run / "best_acc_epoch_2.pth").exists()
    _craft(run / "epoch_2.pth", best_ckpt=str(run / "best_acc_epoch_999.pth"), best_score=10.0)
    run_lightning(run, cfg, {"acc": [0.1, 0.2, 0.3]}, max_epochs=3, resume=True)
    assert (run / "best_acc_epoch_2.pth").exists()


def test_log_copy_to_out_dir_replaces_a_symlink_instead_of_writing_through_it(tmp_path):
    work_dir, out_dir, victim = tmp_path / "run", tmp_path / "out", tmp_path / "precious.txt"
    victim.write_text("not yours")
    destination = out_dir / "run" / "vis_data" / "scalars.json"
    destination.parent.mkdir(parents=True)
    destination.symlink_to(victim)
    bridge = HookBridge(
        default_hooks={"checkpoint": None, "logger": dict(type="LoggerHook", interval=1, out_dir=str(out_dir))},
        work_dir=str(work_dir),
        print_hooks_table=False,
        log_level="WARNING",
    )
    train, _ = loaders()
    make_trainer(tmp_path, bridge, max_epochs=1).fit(ToyModule(), train)
    assert victim.read_text() == "not yours"
    assert not destination.is_symlink()
    local = next(work_dir.glob("*/vis_data/scalars.json"))
    assert destination.read_text() == local.read_text() != ""


def test_foreign_pickle_named_like_our_best_file_is_not_unpickled_when_publishing(tmp_path):
    """Even a file in the run directory with our name is read with weights_only=True."""
    marker = tmp_path / "code_ran"
    cfg = dict(type="CheckpointHook", interval=1, save_best="acc", published_keys=["meta", "state_dict"])

    class SwapBestForPayload(lightning_hooks.Hook):
        priority = "LOWEST"

        def after_train_epoch(self, runner) -> None:
            if runner.epoch == 1:  # second epoch: the best file of epoch 1 exists
                with open(os.path.join(runner.work_dir, "best_acc_epoch_1.pth"), "wb") as f:
                    pickle.dump({"meta": _Payload(str(marker))}, f)

    bridge = HookBridge(
        default_hooks={**NO_DEFAULTS, "checkpoint": cfg},
        custom_hooks=[SwapBestForPayload()],
        work_dir=str(tmp_path),
        print_hooks_table=False,
    )
    trainer = make_trainer(tmp_path, bridge, max_epochs=2, num_sanity_val_steps=0)
    train, val = loaders()
    with pytest.raises(Exception, match="best_acc_epoch_1"):
        trainer.fit(ScoredModule({"acc": [0.5, 0.1]}), train, val)
    assert not marker.exists()


def test_checkpoint_io_loads_weights_only_unless_asked_by_name(tmp_path):
    marker = tmp_path / "code_ran"
    path = tmp_path / "foreign.pth"
    torch.save({"x": _Payload(str(marker))}, path)
    io = AtomicCheckpointIO()
    with pytest.raises(pickle.UnpicklingError):
        io.load_checkpoint(str(path))
    assert not marker.exists()
    io.load_checkpoint(str(path), weights_only=False)  # the explicit opt-in
    assert marker.exists()


def test_every_load_of_the_package_passes_weights_only_true(tmp_path, monkeypatch):
    """Auto-resume and publishing pass ``weights_only=True`` themselves (torch < 2.6 would default to False)."""
    seen: list = []
    real_load = torch.load

    def recording_load(*args, **kwargs):
        seen.append(kwargs.get("weights_only", "not passed"))
        return real_load(*args, **kwargs)

    cfg = dict(type="CheckpointHook", interval=1, save_best="acc", published_keys=["meta", "state_dict"])
    run_lightning(tmp_path, cfg, RAMP_SCORES, max_epochs=1)
    monkeypatch.setattr(torch, "load", recording_load)
    run_lightning(tmp_path, cfg, RAMP_SCORES, max_epochs=2, resume=True)
    assert len(seen) >= 3  # the resume and two publications
    assert seen == [True] * len(seen)


def _torch_load_calls(tree: ast.AST):
    for node in ast.walk(tree):
        if isinstance(node, ast.Call) and isinstance(node.func, ast.Attribute) and node.func.attr == "load":
            if isinstance(node.func.value, ast.Name) and node.func.value.id == "torch":
                yield node


def test_every_torch_load_in_the_package_passes_weights_only_explicitly():
    """torch < 2.6 defaults to full unpickling: no call may rely on the default (the CLI has its --trust flag)."""
    calls = 0
    for path in PACKAGE.rglob("*.py"):
        if path.name == "cli.py":
            continue
        for call in _torch_load_calls(ast.parse(path.read_text())):
            calls += 1
            keywords = {k.arg: k.value for k in call.keywords}
            assert "weights_only" in keywords, f"{path.name}:{call.lineno} relies on torch's weights_only default"
            value = keywords["weights_only"]
            if isinstance(value, ast.Constant):
                assert value.value is True, f"{path.name}:{call.lineno} unpickles without an opt-in"
    assert calls >= 2


# ----------------------------------------------------------------------------- resume from last_checkpoint
def _snapshot(directory: Path) -> dict[str, tuple[int, int]]:
    return {p.name: (p.stat().st_size, p.stat().st_mtime_ns) for p in directory.iterdir() if p.is_file()}


@pytest.mark.parametrize("damage", ["missing", "truncated", "directory"])
def test_auto_resume_from_a_missing_or_unreadable_checkpoint_raises_naming_both_files(tmp_path, damage):
    cfg = dict(type="CheckpointHook", interval=1)
    run_lightning(tmp_path, cfg, RAMP_SCORES, max_epochs=2)
    target = tmp_path / "epoch_2.pth"
    if damage == "missing":
        target.unlink()
    elif damage == "truncated":
        target.write_bytes(target.read_bytes()[:1000])
    else:
        target.unlink()
        target.mkdir()
    before = _snapshot(tmp_path)
    with pytest.raises(FileNotFoundError) as error:
        run_lightning(tmp_path, cfg, RAMP_SCORES, max_epochs=4, resume=True)
    assert isinstance(error.value, ResumeError)
    assert str(tmp_path / "last_checkpoint") in str(error.value) and str(target) in str(error.value)
    assert _snapshot(tmp_path) == before  # nothing trained, nothing overwritten


def test_auto_resume_without_last_checkpoint_starts_fresh_with_one_line(tmp_path, capsys):
    run_lightning(
        tmp_path, dict(type="CheckpointHook", interval=1), RAMP_SCORES, max_epochs=1, resume=True, log_level="INFO"
    )
    out = capsys.readouterr().out
    assert out.count("Did not find last_checkpoint") == 1 and "starting from scratch" in out


# ----------------------------------------------------------------------------- umask and temp files
@pytest.mark.parametrize("umask", [0o022, 0o077, 0o002])
def test_files_are_created_with_the_process_umask(tmp_path, umask):
    old = os.umask(umask)
    try:
        run_lightning(tmp_path, dict(type="CheckpointHook", interval=1, save_best="acc"), RAMP_SCORES, max_epochs=1)
        atomic_torch_save({"x": 1}, str(tmp_path / "direct.pth"))
        atomic_write_text(str(tmp_path / "direct.txt"), "x")
    finally:
        os.umask(old)
    expected = 0o666 & ~umask
    for name in ("epoch_1.pth", "best_acc_epoch_1.pth", "last_checkpoint", "direct.pth", "direct.txt"):
        assert stat.S_IMODE((tmp_path / name).stat().st_mode) == expected, name


def test_leftover_temp_files_of_killed_writes_are_removed_at_the_next_start(tmp_path):
    cfg = dict(type="CheckpointHook", interval=1)
    run_lightning(tmp_path, cfg, RAMP_SCORES, max_epochs=1)
    ours = [
        ".epoch_2.pth.0123456789ab.tmp",
        ".last_checkpoint.abcdefabcdef.tmp",
        ".best_acc_epoch_2.pth.00112233aabb.tmp",
    ]
    foreign = [
        ".notes.txt.0123456789ab.tmp",
        ".epoch_2.pth.tmp",
        "epoch_2.pth.0123456789ab.tmp",
        ".epoch_2.pth.xyz.tmp",
    ]
    for name in ours + foreign:
        (tmp_path / name).write_bytes(b"partial")
    (tmp_path / "keep").mkdir()
    (tmp_path / "keep" / ".epoch_5.pth.0123456789ab.tmp").write_bytes(b"another directory")
    (tmp_path / "elsewhere.bin").write_bytes(b"a symlink target")
    (tmp_path / ".epoch_3.pth.ffffffffffff.tmp").symlink_to(tmp_path / "elsewhere.bin")
    run_lightning(tmp_path, cfg, RAMP_SCORES, max_epochs=2, resume=True)
    left = sorted(p.name for p in tmp_path.iterdir())
    assert not any(name in left for name in ours)
    assert all(name in left for name in foreign)
    assert ".epoch_3.pth.ffffffffffff.tmp" in left and (tmp_path / "keep" / ".epoch_5.pth.0123456789ab.tmp").exists()


# ----------------------------------------------------------------------------- arguments
def _hook_classes():
    return sorted(HOOKS.module_dict.items())


REQUIRED = {"EarlyStoppingHook": {"monitor": "acc"}}


def _misspell(name: str) -> str:
    return name[:-1] + name[-1] * 2 if len(name) > 3 else name + "x"


@pytest.mark.parametrize(("name", "cls"), _hook_classes())
def test_every_hook_rejects_a_misspelt_argument_naming_the_closest_one(name, cls):
    import inspect

    params = [
        p.name
        for p in inspect.signature(cls).parameters.values()
        if p.kind in (p.POSITIONAL_OR_KEYWORD, p.KEYWORD_ONLY) and p.name != "self"
    ]
    if name == "EMAHook":
        params = ["momentum"]  # an argument of the averaged model, forwarded through **kwargs
    wrong = _misspell(params[-1]) if params else "intervall"
    with pytest.raises(TypeError) as error:
        cls(**REQUIRED.get(name, {}), **{wrong: 1})
    message = str(error.value)
    assert repr(wrong) in message and name in message and "Valid arguments" in message
    if params:
        assert f"Did you mean {params[-1]!r}?" in message


def test_checkpoint_hook_typo_from_the_report_is_an_error_before_training():
    with pytest.raises(TypeError, match=r"'intervall'.*Did you mean 'interval'\?"):
        CheckpointHook(intervall=1)
    with pytest.raises(TypeError, match=r"'intervall'.*Did you mean 'interval'\?"):
        HookBridge(default_hooks=dict(checkpoint=dict(type="CheckpointHook", intervall=1)))


@pytest.mark.parametrize(
    "kwargs",
    [dict(by_epoch="false"), dict(save_last=1), dict(max_keep_ckpts="3"), dict(interval="2"), dict(async_save="yes")],
)
def test_checkpoint_hook_arguments_of_the_wrong_type_are_type_errors(kwargs):
    """Checks MMEngine does not make: a wrong type is a TypeError, as docs/hooks/checkpoint_hook.md says."""
    with pytest.raises(TypeError):
        CheckpointHook(**kwargs)


@pytest.mark.parametrize(
    ("kwargs", "named"),
    [
        (dict(by_epoch="false"), "by_epoch"),
        (dict(save_last=1), "save_last"),
        (dict(max_keep_ckpts="3"), "max_keep_ckpts"),
        (dict(save_begin=1.5), "save_begin"),
        (dict(out_dir=3), "out_dir"),
        (dict(backend_args="s3"), "backend_args"),
        (dict(async_save="yes"), "async_save"),
        (dict(filename_tmpl=5), "filename_tmpl"),
    ],
)
def test_checkpoint_hook_bad_values_fail_at_construction_naming_argument_and_value(kwargs, named):
    with pytest.raises((TypeError, ValueError)) as error:
        CheckpointHook(**kwargs)
    assert named in str(error.value) and repr(next(iter(kwargs.values()))) in str(error.value)


@pytest.mark.parametrize(
    ("kwargs", "named"),
    [(dict(momentum=1.5), "momentum"), (dict(interval=0), "interval"), (dict(begin_iter="3"), "begin_iter")],
)
def test_ema_hook_bad_values_fail_at_construction(kwargs, named):
    with pytest.raises((TypeError, ValueError), match=named):
        EMAHook(**kwargs)


def test_a_second_ema_hook_is_refused_at_bridge_construction():
    with pytest.raises(ValueError, match="only one is allowed"):
        HookBridge(custom_hooks=[dict(type="EMAHook"), dict(type="EMAHook", momentum=0.01)])
    bridge = HookBridge(custom_hooks=[dict(type="EMAHook")])
    with pytest.raises(ValueError, match="only one is allowed"):
        bridge.register_hook(EMAHook())
    assert sum(isinstance(h, EMAHook) for h in bridge.hooks) == 1


BAD_VALUES = [
    ("CheckInvalidLossHook", {}, "interval", "50"),
    ("CheckInvalidLossHook", {}, "interval", 0),
    ("EarlyStoppingHook", {"monitor": "acc"}, "min_delta", "0.1"),
    ("EarlyStoppingHook", {"monitor": "acc"}, "strict", "yes"),
    ("EarlyStoppingHook", {"monitor": "acc"}, "check_finite", 1),
    ("EarlyStoppingHook", {"monitor": "acc"}, "stopping_threshold", "0.9"),
    ("EarlyStoppingHook", {"monitor": "acc"}, "patience", 2.5),
    ("EarlyStoppingHook", {}, "monitor", 3),
    ("LoggerHook", {}, "interval", "10"),
    ("LoggerHook", {}, "keep_local", "no"),
    ("EmptyCacheHook", {}, "after_iter", "yes"),
    ("LoadFromHook", {"filename": "w.pth"}, "strict", "yes"),
    ("LoadFromHook", {"filename": "w.pth"}, "state_dict_key", 3),
    ("ValIntervalHook", {}, "val_interval", 0),
    ("EMAHook", {}, "strict_load", "no"),
    ("CheckpointHook", {}, "keep_resumed", "no"),
]


@pytest.mark.parametrize(("name", "required", "argument", "value"), BAD_VALUES)
def test_bad_argument_values_fail_at_construction_naming_argument_and_value(name, required, argument, value):
    import lightning_hooks.hooks as package_hooks

    cls = getattr(package_hooks, name)  # the package's class (tests may register their own under its name)
    with pytest.raises((TypeError, ValueError)) as error:
        cls(**required, **{argument: value})
    assert argument in str(error.value) and repr(value) in str(error.value), str(error.value)


def test_last_checkpoint_may_name_a_complete_sharded_directory_but_not_an_incomplete_one(tmp_path):
    from lightning_hooks.fileio import find_last_checkpoint

    sharded = tmp_path / "epoch_3.pth"
    sharded.mkdir()
    (tmp_path / "last_checkpoint").write_text(str(sharded))
    with pytest.raises(ResumeError, match="not a complete sharded checkpoint"):
        find_last_checkpoint(str(tmp_path))
    (sharded / ".metadata").write_bytes(b"index")
    (sharded / "meta.pt").write_bytes(b"meta")
    with pytest.raises(ResumeError, match="cannot be loaded as data only"):  # not an index at all
        find_last_checkpoint(str(tmp_path))
    shutil.rmtree(sharded)
    write_directory(sharded)
    assert find_last_checkpoint(str(tmp_path)) == str(sharded)
