"""LogProcessor against MMEngine's LogProcessor, fed the same message-hub content.

Both processors read a runner stand-in (plain attributes: counters, dataloader
lengths) and a real message hub each (MMEngine's and ours), filled with the
same values. Lines and tags must be identical.
"""

from __future__ import annotations

import itertools
from types import SimpleNamespace

import numpy as np
import pytest
import torch
from mmengine.logging import MessageHub as MMHub
from mmengine.runner import LogProcessor as MMLogProcessor

from lightning_hooks.logging import LogProcessor, build_log_processor
from lightning_hooks.message_hub import MessageHub

RNG = np.random.default_rng(0)
LOSSES = RNG.random(25).round(6).tolist()
TIMES = (RNG.random(25) / 10).round(6).tolist()


def fill(hub, tensors: bool) -> None:
    for i, (loss, t) in enumerate(zip(LOSSES, TIMES, strict=True)):
        hub.update_scalar("train/lr", 0.1 * 0.9**i)
        hub.update_scalar("train/data_time", t / 3)
        hub.update_scalar("train/loss", torch.tensor(loss) if tensors else float(torch.tensor(loss)))
        hub.update_scalar("train/loss_cls", loss / 2)
        hub.update_scalar("train/time", t)
    for i in range(4):
        hub.update_scalar("val/time", TIMES[i])
        hub.update_scalar("val/data_time", TIMES[i] / 4)
        hub.update_scalar("test/time", TIMES[i + 4])
        hub.update_scalar("test/data_time", TIMES[i + 4] / 4)
    hub.update_scalar("val/acc", 0.875)
    hub.update_scalar("test/acc", 0.5)
    hub.update_info("val/recall", {"cat": 1, "dog": 0})
    hub.update_info("test/cm", torch.tensor([1, 2, 3]))
    hub.update_info("eta", 3725.7)


def runner_for(hub, train_loop: bool = True, by_epoch: bool = True):
    loaders = dict(train=list(range(12)), val=list(range(4)), test=list(range(4)))
    return SimpleNamespace(
        message_hub=hub,
        iter=23,
        epoch=1,
        max_epochs=10,
        max_iters=120,
        model=torch.nn.Linear(1, 1),
        _train_loop=SimpleNamespace() if train_loop else None,
        train_loop=SimpleNamespace(dataloader=loaders["train"]),
        val_loop=SimpleNamespace(dataloader=loaders["val"]),
        test_loop=SimpleNamespace(dataloader=loaders["test"]),
        train_dataloader=loaders["train"],
        val_dataloader=loaders["val"],
        test_dataloader=loaders["test"],
    )


def pair(tensors: bool = True, train_loop: bool = True):
    mm_hub, our_hub = MMHub(f"mm_{RNG.integers(1e9)}"), MessageHub(f"lh_{RNG.integers(1e9)}")
    fill(mm_hub, False)
    fill(our_hub, tensors)
    return runner_for(mm_hub, train_loop), runner_for(our_hub, train_loop)


CUSTOM = [
    dict(data_src="loss", method_name="mean", window_size="global", log_name="loss_global"),
    dict(data_src="loss", method_name="max", window_size=5, log_name="loss_max5"),
    dict(data_src="time", method_name="max", window_size="epoch"),
]


@pytest.mark.parametrize(
    ("by_epoch", "hierarchy", "mode", "custom", "train_loop"),
    [
        (b, h, m, c, t)
        for b, h, m, c, t in itertools.product([True, False], [False, True], ["train", "val", "test"], [0, 1], [1, 0])
        if not (c and not b)  # window 'epoch' needs by_epoch
    ],
)
def test_lines_and_tags_after_iter_match_mmengine(by_epoch, hierarchy, mode, custom, train_loop):
    cfg = dict(by_epoch=by_epoch, log_with_hierarchy=hierarchy, custom_cfg=CUSTOM if custom else None)
    mm_runner, our_runner = pair(train_loop=bool(train_loop))
    mm_tag, mm_line = MMLogProcessor(**cfg).get_log_after_iter(mm_runner, 8, mode)
    our_tag, our_line = LogProcessor(**cfg).get_log_after_iter(our_runner, 8, mode)
    assert our_line == mm_line
    assert list(our_tag) == list(mm_tag)
    assert our_tag == pytest.approx(dict(mm_tag), rel=1e-12)


def _last_two(buffer, window_size: int = 2) -> np.ndarray:
    """A statistic that is an array (registered on both HistoryBuffer classes for the test below)."""
    return np.asarray(buffer.data[0][-window_size:], dtype=float).round(3)


@pytest.mark.parametrize("by_epoch", [True, False])
def test_an_array_statistic_stays_on_the_training_line(by_epoch):
    """MMEngine formats floats in an iteration line and prints anything else as it is; the newlines
    around an array belong to its epoch lines only."""
    from mmengine.logging import HistoryBuffer as MMHistoryBuffer

    from lightning_hooks.message_hub import HistoryBuffer

    for buffer_class in (MMHistoryBuffer, HistoryBuffer):
        if "_last_two" not in buffer_class._statistics_methods:  # MMEngine refuses a second registration
            buffer_class.register_statistics(_last_two)
    cfg = dict(
        by_epoch=by_epoch,
        custom_cfg=[dict(data_src="loss", method_name="_last_two", window_size=2, log_name="last_two")],
    )
    mm_runner, our_runner = pair()
    mm_tag, mm_line = MMLogProcessor(**cfg).get_log_after_iter(mm_runner, 8, "train")
    our_tag, our_line = LogProcessor(**cfg).get_log_after_iter(our_runner, 8, "train")
    assert "\n" not in mm_line
    assert our_line == mm_line
    assert np.array_equal(our_tag["last_two"], mm_tag["last_two"])


@pytest.mark.parametrize(
    ("by_epoch", "hierarchy", "mode"), itertools.product([True, False], [False, True], ["val", "test"])
)
def test_lines_and_tags_after_epoch_match_mmengine(by_epoch, hierarchy, mode):
    cfg = dict(by_epoch=by_epoch, log_with_hierarchy=hierarchy)
    mm_runner, our_runner = pair()
    mm_tag, mm_line = MMLogProcessor(**cfg).get_log_after_epoch(mm_runner, 4, mode, with_non_scalar=True)
    our_tag, our_line = LogProcessor(**cfg).get_log_after_epoch(our_runner, 4, mode, with_non_scalar=True)
    assert our_line == mm_line
    assert list(our_tag) == list(mm_tag)
    for key, value in mm_tag.items():
        if isinstance(value, torch.Tensor):
            assert torch.equal(our_tag[key], value)
        else:
            assert our_tag[key] == pytest.approx(value, rel=1e-12)


def test_known_mmengine_strings():
    """Two lines from MMEngine's own tests and docs, checked literally."""
    _, runner = pair()
    _, line = LogProcessor().get_log_after_epoch(runner, 4, "val")
    assert line.startswith("Epoch(val) [1][4/4]    acc: 0.8750  recall: {'cat': 1, 'dog': 0}  time: ")
    _, line = LogProcessor().get_log_after_iter(runner, 4, "train")
    assert line.startswith("Epoch(train)  [2][ 5/12]  lr: 7.9766e-03  eta: 1:02:05  time: ")


def test_reading_tensor_losses_costs_one_sync_per_key(monkeypatch):
    # Accelerator tensors (is_cpu False) are copied to the host together; CPU ones are read one by one.
    monkeypatch.setattr(torch.Tensor, "is_cpu", property(lambda self: False))
    _, runner = pair(tensors=True)
    calls = {"item": 0, "tolist": 0}
    originals = {name: getattr(torch.Tensor, name) for name in calls}

    def counting(name):
        def wrapper(self, *args, **kwargs):
            calls[name] += 1
            return originals[name](self, *args, **kwargs)

        return wrapper

    for name in calls:
        setattr(torch.Tensor, name, counting(name))
    try:
        LogProcessor().get_log_after_iter(runner, 8, "train")
    finally:
        for name, fn in originals.items():
            setattr(torch.Tensor, name, fn)
    assert calls == {"item": 0, "tolist": 1}  # 25 pending losses, one stacked copy


@pytest.mark.parametrize(
    ("cfg", "error", "message"),
    [
        (
            dict(custom_cfg=[dict(data_src="loss", method_name="mean"), dict(data_src="loss", method_name="max")]),
            ValueError,
            "log_name 'loss'.*already",
        ),
        (
            dict(
                custom_cfg=[
                    dict(data_src="a", log_name="x", method_name="mean"),
                    dict(data_src="b", log_name="x", method_name="mean"),
                ]
            ),
            ValueError,
            "log_name 'x'",
        ),
        # checked when built, not at the first line (MMEngine fails there)
        (dict(custom_cfg=[dict(data_src="loss", method="mean")]), ValueError, "needs a 'method_name'"),
        (dict(custom_cfg=[dict(data_src="loss", method_name="meann")]), ValueError, "'meann' is not a statistic"),
        (
            dict(custom_cfg=[dict(data_src="loss", method_name="mean", windows_size=5)]),
            ValueError,
            r"'mean' takes \(self, window_size.*not the arguments \['windows_size'\]",
        ),
        (
            dict(custom_cfg=[dict(data_src="loss", method_name="current", window_size=5)]),
            ValueError,
            r"'current' takes \(self\)",
        ),
        (
            dict(custom_cfg=[dict(data_src="loss", method_name="mean", window_size=0)]),
            ValueError,
            "window_size must be positive, got 0",
        ),
        (
            dict(by_epoch=False, custom_cfg=[dict(data_src="loss", method_name="mean", window_size="epoch")]),
            ValueError,
            "window_size='epoch'.*by_epoch=True",
        ),
        (
            dict(custom_cfg=[dict(data_src="loss", method_name="mean", window_size=[1])]),
            TypeError,
            "int, 'epoch' or 'global'",
        ),
        (dict(custom_cfg=[dict(method_name="mean")]), ValueError, "needs a 'data_src'"),
        (dict(window_size=0), ValueError, "window_size must be a positive int"),
        (dict(mean_pattern="("), ValueError, r"mean_pattern '\(' is not a regular expression"),
        (dict(window_sise=5), TypeError, r"'window_sise'. Did you mean 'window_size'"),
        (dict(type="FancyLogProcessor"), ValueError, "must be LogProcessor or a subclass"),
    ],
)
def test_bad_settings_are_rejected_with_clear_errors(cfg, error, message):
    with pytest.raises(error, match=message):
        build_log_processor(cfg)


def test_mmengine_rejects_the_same_settings():
    """The settings we reject are the ones MMEngine rejects (with a bare AssertionError)."""
    for custom in (
        [dict(data_src="loss", method_name="mean"), dict(data_src="loss", method_name="max")],
        [dict(data_src="loss", method_name="mean", window_size="epoch")],
    ):
        with pytest.raises(AssertionError):
            MMLogProcessor(by_epoch=False, custom_cfg=custom)
