"""``load_from`` from where MMEngine reads it: local paths with ``~``, ``http(s)://`` URLs (downloaded
once into torch's hub cache), fsspec URLs; MMEngine's model-zoo names are refused by name.

The URLs are served by a local HTTP server that counts its downloads: nothing leaves the machine.
"""

from __future__ import annotations

import functools
import http.server
import sys
import threading

import fsspec
import pytest
import torch
from toy import ToyModule, loaders, make_trainer

from lightning_hooks import Hook, HookBridge
from lightning_hooks.hooks import LoadFromHook
from lightning_hooks.hooks.load_from_hook import load_weights


class _CountingHandler(http.server.SimpleHTTPRequestHandler):
    def do_GET(self) -> None:
        self.server.downloads.append(self.path)  # type: ignore[attr-defined]
        super().do_GET()

    def log_message(self, *args) -> None:
        pass


@pytest.fixture
def served(tmp_path, monkeypatch):
    """``(url of the served directory, its path, the paths downloaded)``; torch's cache in ``tmp_path``."""
    root = tmp_path / "served"
    root.mkdir()
    monkeypatch.setenv("TORCH_HOME", str(tmp_path / "torch_home"))
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), functools.partial(_CountingHandler, directory=str(root)))
    server.downloads = []  # type: ignore[attr-defined]
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{server.server_address[1]}", root, server.downloads  # type: ignore[attr-defined]
    server.shutdown()
    server.server_close()


def _weights(value: float) -> dict:
    source = ToyModule()
    with torch.no_grad():
        source.linear.weight.fill_(value)
    return {"state_dict": {f"module.{k}": v for k, v in source.state_dict().items()}, "meta": {"epoch": 1}}


def test_an_https_url_is_downloaded_once_into_torchs_cache_as_mmengine_does(served, tmp_path):
    from mmengine.runner.checkpoint import _load_checkpoint

    url, root, downloads = served
    torch.save(_weights(3.0), root / "detector_20230101-0123abcd.pth")
    source = f"{url}/detector_20230101-0123abcd.pth"

    module = ToyModule()
    assert load_weights(module, source) == ([], [])
    assert torch.all(module.linear.weight == 3.0)
    cached = tmp_path / "torch_home" / "hub" / "checkpoints" / "detector_20230101-0123abcd.pth"
    assert cached.is_file()
    theirs = _load_checkpoint(source, map_location="cpu")  # MMEngine finds the same cached file
    assert downloads == ["/detector_20230101-0123abcd.pth"]
    for key, value in theirs["state_dict"].items():
        assert torch.equal(module.state_dict()[key.removeprefix("module.")], value)

    again = ToyModule()
    load_weights(again, source)
    assert torch.all(again.linear.weight == 3.0) and len(downloads) == 1  # read from the cache


def test_fsspec_urls_and_home_paths_load(tmp_path, monkeypatch):
    with fsspec.open("memory://zoo/weights.pth", "wb") as f:
        torch.save(_weights(4.0), f)
    module = ToyModule()
    load_weights(module, "memory://zoo/weights.pth")
    assert torch.all(module.linear.weight == 4.0)

    monkeypatch.setenv("HOME", str(tmp_path))
    torch.save(_weights(5.0), tmp_path / "weights.pth")
    load_weights(module, "~/weights.pth")
    assert torch.all(module.linear.weight == 5.0)


@pytest.mark.parametrize("source", ["open-mmlab://resnet50_v1c", "torchvision://resnet50", "mmcls://resnet50"])
def test_mmengine_model_zoo_names_are_refused_when_the_hook_is_built(source):
    scheme = source.split("://")[0]
    with pytest.raises(ValueError, match=f"{scheme}:// names a checkpoint through MMEngine's model-zoo tables"):
        LoadFromHook(source)
    with pytest.raises(ValueError, match="https:// URL or a local file"):
        HookBridge(custom_hooks=[dict(type="LoadFromHook", filename=source)])


def test_a_missing_state_dict_key_is_named(tmp_path):
    """A checkpoint whose weights sit under another entry: the whole file would load as the state dict
    (MMEngine's rule), which loads nothing; a warning names the entries."""
    path = tmp_path / "model.pth"
    torch.save({"model": ToyModule().state_dict(), "epoch": 3}, path)
    with pytest.warns(UserWarning, match=r"has no 'state_dict' entry; its entries are \['epoch', 'model'\]"):
        _, unexpected = load_weights(ToyModule(), str(path))
    assert sorted(unexpected) == ["epoch", "model"]
    assert load_weights(ToyModule(), str(path), state_dict_key="model") == ([], [])


def test_a_revise_keys_pattern_that_is_not_a_regex_is_refused_when_built():
    with pytest.raises(ValueError, match=r"revise_keys pattern '\(' is not a regular expression"):
        LoadFromHook("weights.pth", revise_keys=[("(", "")])


@pytest.mark.slow
@pytest.mark.skipif(sys.platform != "linux", reason="ddp_fork needs fork (POSIX)")
@pytest.mark.timeout(120)
def test_under_ddp_rank_zero_downloads_and_the_others_read_the_cache(served, tmp_path):
    url, root, downloads = served
    torch.save(_weights(6.0), root / "weights.pth")
    hook = LoadFromHook(f"{url}/weights.pth")
    bridge = HookBridge(default_hooks=dict(checkpoint=None, logger=None), custom_hooks=[hook])
    trainer = make_trainer(tmp_path, bridge, max_epochs=1, strategy="ddp_fork", devices=2)
    trainer.validate(ToyModule(), loaders()[1])
    assert downloads == ["/weights.pth"]  # one download: rank 1 waited for it and read the cache


def test_hooks_see_and_may_edit_the_load_from_checkpoint_first_as_in_mmengine(tmp_path):
    """MMEngine's Runner.load_checkpoint calls after_load_checkpoint before loading the weights; a hook that
    converts pretrained weights does it there. The model and EMAHook's average start from the edited
    weights, in MMEngine's Runner and here alike."""
    from mmengine.hooks import EMAHook as MMEMAHook
    from mmengine.hooks import Hook as MMHook
    from toy import run_mmengine

    from lightning_hooks import EMAHook, Hook

    source = ToyModule()
    torch.save({"state_dict": {f"old.{k}": v for k, v in source.state_dict().items()}}, tmp_path / "pretrained.pth")

    def hooks(base: type, ema_class: type, seen: dict) -> list:
        ema = ema_class()

        class RenameKeys(base):  # type: ignore[misc, valid-type]
            def after_load_checkpoint(self, runner, checkpoint):
                seen.setdefault("order", []).append("after_load_checkpoint")
                checkpoint["state_dict"] = {k[len("old.") :]: v * 2 for k, v in checkpoint["state_dict"].items()}

            def before_train(self, runner):  # before any update of the average
                seen["model"] = {k: v.clone() for k, v in runner.model.state_dict().items()}
                seen["ema"] = {k: v.clone() for k, v in ema.ema_model.module.state_dict().items()}

        return [RenameKeys(), ema]

    mm: dict = {}
    run_mmengine(tmp_path / "mm", hooks(MMHook, MMEMAHook, mm), default_hooks=dict(checkpoint=None, logger=None),
                 load_from=str(tmp_path / "pretrained.pth"))  # fmt: skip
    ours: dict = {}
    custom = [LoadFromHook(str(tmp_path / "pretrained.pth")), *hooks(Hook, EMAHook, ours)]
    bridge = HookBridge(custom_hooks=custom, default_hooks=dict(checkpoint=None, logger=None), print_hooks_table=False)
    model = ToyModule()
    model.linear.weight.data.zero_()
    make_trainer(tmp_path / "lh", bridge, max_epochs=1, limit_train_batches=0).fit(model, *loaders())
    assert mm["order"] == ours["order"] == ["after_load_checkpoint"]
    for name, value in source.state_dict().items():
        assert torch.equal(mm["model"][name], value * 2), name
        assert torch.equal(ours["model"][name], mm["model"][name]), name
        assert torch.equal(ours["ema"][name], mm["ema"][name]), name


class _LoadSpy(Hook):
    """Records the checkpoints hooks get in after_load_checkpoint and the weight training starts from."""

    priority = "LOWEST"

    def __init__(self) -> None:
        self.loaded: list[float] = []
        self.start: float | None = None

    def after_load_checkpoint(self, runner, checkpoint):
        self.loaded.append(float(checkpoint["state_dict"]["linear.weight"][0, 0]))

    def before_train(self, runner):
        self.start = float(runner.model.linear.weight[0, 0])


@pytest.mark.parametrize("asked_by", ["bridge", "checkpoint_hook"])
def test_load_from_is_skipped_when_auto_resume_finds_a_checkpoint(tmp_path, capsys, asked_by):
    """``resume=True`` resumes from ``<work_dir>/last_checkpoint``: the load_from file is neither loaded nor
    shown to the hooks, then replaced by the resumed weights; the log says so, as for ``fit(ckpt_path=...)``."""
    torch.save(
        {"state_dict": ToyModule().state_dict() | {"linear.weight": torch.full((1, 2), 7.0)}}, tmp_path / "pre.pth"
    )
    work = tmp_path / "work"
    quiet = dict(print_hooks_table=False, default_hooks=dict(logger=None))
    make_trainer(work, HookBridge(**quiet), max_epochs=1).fit(ToyModule(), *loaders())
    resumed_from = (work / "last_checkpoint").read_text()
    saved = float(torch.load(resumed_from, weights_only=True)["state_dict"]["linear.weight"][0, 0])
    capsys.readouterr()

    load_from, spy = LoadFromHook(str(tmp_path / "pre.pth")), _LoadSpy()
    if asked_by == "bridge":
        bridge = HookBridge(resume=True, custom_hooks=[load_from, spy], log_level="INFO", **quiet)
    else:
        checkpoint = dict(type="CheckpointHook", resume=True)
        quiet = dict(print_hooks_table=False, default_hooks=dict(logger=None, checkpoint=checkpoint))
        bridge = HookBridge(custom_hooks=[load_from, spy], log_level="INFO", **quiet)
    trainer = make_trainer(work, bridge, max_epochs=2)
    trainer.fit(ToyModule(), *loaders())
    assert trainer.ckpt_path == resumed_from
    assert load_from.loaded is None and spy.loaded == [saved] and spy.start == saved
    assert f"load_from={tmp_path / 'pre.pth'} skipped: resuming from {resumed_from}" in capsys.readouterr().out


def test_load_from_loads_when_auto_resume_finds_no_checkpoint(tmp_path, capsys):
    torch.save(
        {"state_dict": ToyModule().state_dict() | {"linear.weight": torch.full((1, 2), 7.0)}}, tmp_path / "pre.pth"
    )
    load_from, spy = LoadFromHook(str(tmp_path / "pre.pth")), _LoadSpy()
    bridge = HookBridge(
        resume=True,
        custom_hooks=[load_from, spy],
        log_level="INFO",
        print_hooks_table=False,
        default_hooks=dict(logger=None),
    )
    trainer = make_trainer(tmp_path / "work", bridge, max_epochs=1)
    trainer.fit(ToyModule(), *loaders())
    assert trainer.ckpt_path is None
    assert load_from.loaded == ([], []) and spy.loaded == [7.0] and spy.start == 7.0
    out = capsys.readouterr().out
    assert out.count("Did not find last_checkpoint") == 1 and f"Load checkpoint from {tmp_path / 'pre.pth'}" in out


def test_load_from_is_skipped_when_fit_is_given_a_checkpoint_and_before_run_names_it(tmp_path):
    """Lightning sets trainer.ckpt_path only after setup: before_run must still see fit's ckpt_path
    (and not auto-resume's last_checkpoint, nor the previous fit's path)."""
    import torch as _torch
    from toy import ToyModule, loaders, make_trainer

    from lightning_hooks import Hook, HookBridge
    from lightning_hooks.hooks.load_from_hook import LoadFromHook

    first = make_trainer(tmp_path / "a", HookBridge(work_dir=str(tmp_path / "a")), max_epochs=1)
    first.fit(ToyModule(), *loaders())
    ckpt = str(tmp_path / "a" / "epoch_1.pth")
    weights = tmp_path / "w.pth"
    _torch.save({"state_dict": ToyModule().state_dict()}, weights)
    seen: list = []

    class Seen(Hook):
        def before_run(self, runner):
            seen.append(runner.resume_checkpoint())

    load = LoadFromHook(str(weights))
    bridge = HookBridge(work_dir=str(tmp_path / "b"), custom_hooks=[load, Seen()])
    trainer = make_trainer(tmp_path / "b", bridge, max_epochs=2)
    trainer.fit(ToyModule(), *loaders(), ckpt_path=ckpt)
    assert seen == [ckpt] and load.loaded is None
