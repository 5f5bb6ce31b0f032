"""MessageHub and HistoryBuffer against MMEngine's, plus the lazy tensor path."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from mmengine.logging import HistoryBuffer as MMHistoryBuffer
from mmengine.logging import MessageHub as MMMessageHub
from toy import ToyModule, loaders, make_trainer

from lightning_hooks import HistoryBuffer, Hook, HookBridge, MessageHub


def _values():
    rng = np.random.default_rng(0)
    return [float(v) for v in rng.normal(size=37)], [int(c) for c in rng.integers(1, 4, size=37)]


@pytest.mark.parametrize("window", [None, 1, 5, 10, 100])
def test_history_buffer_statistics_match_mmengine(window):
    values, counts = _values()
    ours, theirs = HistoryBuffer(), MMHistoryBuffer()
    for v, c in zip(values, counts, strict=True):
        ours.update(torch.tensor(v), c)  # tensors take the lazy path
        theirs.update(v, c)
    for name in ("mean", "max", "min"):
        assert getattr(ours, name)(window) == pytest.approx(getattr(theirs, name)(window))
        assert ours.statistics(name, window) == pytest.approx(theirs.statistics(name, window))
    assert ours.current() == pytest.approx(theirs.current())
    np.testing.assert_allclose(ours.data[0], theirs.data[0])
    np.testing.assert_array_equal(ours.data[1], theirs.data[1])


DTYPE_SEQUENCES = {
    "float64": [torch.float64] * 12,
    "float32": [torch.float32] * 12,
    "float16": [torch.float16] * 12,
    "bfloat16": [torch.bfloat16] * 12,
    "int64": [torch.int64] * 12,
    "one float64": [torch.float64],
    "mixed": [torch.float32, torch.float64, torch.int64, torch.float16] * 3,
    "float16 and float32": [torch.float16, torch.float32] * 6,
}


@pytest.mark.parametrize("dtypes", DTYPE_SEQUENCES.values(), ids=DTYPE_SEQUENCES.keys())
@pytest.mark.parametrize("how", ["update_scalar", "appender"])
def test_tensor_scalars_keep_the_number_item_gives_as_mmengine(dtypes, how):
    """A float64 loss (``Trainer(precision="64-true")``) stays a double, and an integer keeps its value, bit for bit."""
    values = [0.1 * (i + 1) if dtype.is_floating_point else 3 * i + 1 for i, dtype in enumerate(dtypes)]
    tensors = [torch.tensor(v, dtype=dtype) for v, dtype in zip(values, dtypes, strict=True)]
    theirs = MMMessageHub(f"mm-{how}-{len(dtypes)}")
    ours = MessageHub(f"ours-{how}-{len(dtypes)}")
    append = ours.scalar_appender("loss") if how == "appender" else None
    for tensor in tensors:
        theirs.update_scalar("loss", tensor)
        if append is None:
            ours.update_scalar("loss", tensor)
        else:
            append(tensor)
    expected = [float(v) for v in theirs.get_scalar("loss").data[0]]
    assert [float(v) for v in ours.get_scalar("loss").data[0]] == expected
    assert ours.get_scalar("loss").mean(10) == theirs.get_scalar("loss").mean(10)
    assert ours.get_scalar("loss").current() == theirs.get_scalar("loss").current()


NUMBER_SEQUENCES = {
    "ints": [3, 4],
    "int after float": [1.5, 3],
    "float after int": [3, 1.5],
    "int tensor after float": [1.5, "t3"],
    "int tensors": ["t3", "t4"],
}


@pytest.mark.parametrize("history", [(), (1, 2)], ids=["empty", "int history"])
@pytest.mark.parametrize("sequence", NUMBER_SEQUENCES.values(), ids=NUMBER_SEQUENCES.keys())
def test_ints_read_back_as_numpy_holds_them_in_mmengine(sequence, history):
    """MMEngine keeps a numpy array: an empty buffer is float64, so an int logged there reads back as 3.0
    (``k: 3.0000`` in a line, ``3.0`` in scalars.json); only a buffer built from ints stays integer until a
    float joins it. Our readings have the same type, not only the same value."""
    theirs = MMHistoryBuffer(list(history), [1] * len(history))
    ours = HistoryBuffer(list(history), [1] * len(history))
    for value in sequence:
        if isinstance(value, str):
            value = torch.tensor(int(value[1:]))
            theirs.update(value.item())  # MMEngine's MessageHub.update_scalar reads a tensor with .item()
        else:
            theirs.update(value)
        ours.update(value)
    for method in ("current", "max", "min"):
        mine, reference = getattr(ours, method)(), getattr(theirs, method)()
        assert (type(mine), mine) == (type(reference.item()), reference.item()), method
    assert ours.data[0].dtype == theirs.data[0].dtype
    assert ours.data[0].tolist() == theirs.data[0].tolist()


def test_history_buffer_max_length_and_errors():
    buf = HistoryBuffer(max_length=3)
    for v in range(5):
        buf.update(v)
    assert list(buf.data[0]) == [2, 3, 4]
    with pytest.raises(ValueError):
        HistoryBuffer().current()
    with pytest.raises(KeyError, match="not a registered statistic"):
        buf.statistics("median")
    with pytest.raises(TypeError):
        buf.update("1")
    with pytest.raises(ValueError, match="one element"):
        buf.update(torch.ones(2))


def test_registered_statistic_is_usable():
    @HistoryBuffer.register_statistics
    def weighted_sum(self, window_size=None):
        values, counts = self.data
        return float((values * counts).sum())

    buf = HistoryBuffer([1.0, 2.0], [1, 3])
    assert buf.statistics("weighted_sum") == 7.0


def test_lazy_tensor_scalars_sync_once_per_read(monkeypatch):
    # Accelerator tensors (is_cpu False) are copied to the host together; CPU ones are read one by one.
    monkeypatch.setattr(torch.Tensor, "is_cpu", property(lambda self: False))
    buf = HistoryBuffer()
    calls = {"n": 0}
    original = torch.Tensor.tolist

    def counting(self):
        calls["n"] += 1
        return original(self)

    torch.Tensor.tolist = counting
    try:
        for i in range(10):
            buf.update(torch.tensor(float(i)))
        assert calls["n"] == 0  # nothing brought to the host yet
        assert buf.mean(10) == pytest.approx(4.5)
        assert calls["n"] == 1  # one transfer for all ten values
    finally:
        torch.Tensor.tolist = original


def test_message_hub_api_matches_mmengine():
    ours, theirs = MessageHub("ours_api"), MMMessageHub("theirs_api")
    for hub in (ours, theirs):
        hub.update_scalar("train/loss", 1.5)
        hub.update_scalar("train/loss", np.float32(2.5), count=2)
        hub.update_scalars({"train/acc": {"value": 0.5, "count": 3}, "train/lr": torch.tensor(0.1)})
        hub.update_info("epoch", 3)
        hub.update_info_dict({"iter": 7, "dataset_meta": {"a": 1}})
        hub.update_info("tmp", 1, resumed=False)
        hub.update_scalar("tmp_scalar", 1, resumed=False)
    for key in ("train/loss", "train/acc", "train/lr"):
        assert ours.get_scalar(key).mean() == pytest.approx(theirs.get_scalar(key).mean())
    assert ours.get_info("iter") == theirs.get_info("iter") == 7
    assert ours.pop_info("epoch") == theirs.pop_info("epoch") == 3
    assert ours.get_info("epoch", "gone") == theirs.get_info("epoch", "gone") == "gone"
    assert set(ours.state_dict()["runtime_info"]) == set(theirs.state_dict()["runtime_info"])
    assert set(ours.state_dict()["log_scalars"]) == set(theirs.state_dict()["log_scalars"])
    with pytest.raises(AssertionError):
        ours.update_info("tmp", 2, resumed=True)
    with pytest.raises(KeyError, match="missing"):
        ours.get_scalar("missing")


def test_state_dict_is_plain_and_loads_mmengine_state(tmp_path):
    theirs = MMMessageHub("theirs_state")
    theirs.update_scalar("train/loss", 2.0)
    theirs.update_scalar("train/loss", 4.0)
    theirs.update_info("keep_ckpt_ids", [1, 2])
    ours = MessageHub("ours_state")
    ours.load_state_dict(theirs.state_dict())  # MMEngine's HistoryBuffer objects are accepted
    assert ours.get_scalar("train/loss").mean() == 3.0 and ours.get_info("keep_ckpt_ids") == [1, 2]
    path = tmp_path / "hub.pt"
    torch.save(ours.state_dict(), path)
    restored = MessageHub("restored")
    restored.load_state_dict(torch.load(path, weights_only=True))
    assert restored.get_scalar("train/loss").current() == 4.0


def test_current_instance_is_the_runs_hub(tmp_path):
    """Code without trainer access (e.g. inside the LightningModule) finds the bridge's hub."""
    seen = []

    class Module(ToyModule):
        def training_step(self, batch, batch_idx):
            seen.append(MessageHub.get_current_instance().get_info("iter"))
            return super().training_step(batch, batch_idx)

    class Noop(Hook):
        pass

    train, val = loaders()
    bridge = HookBridge(custom_hooks=[Noop()], experiment_name="hubtest")
    make_trainer(tmp_path, bridge, max_epochs=1).fit(Module(), train, val)
    assert seen == [0, 1, 2, 3]
    assert bridge.message_hub.instance_name.startswith("hubtest_")
    assert MessageHub.get_instance(bridge.message_hub.instance_name) is bridge.message_hub


def test_numbers_after_pending_tensors_keep_their_order():
    buf = HistoryBuffer()
    buf.update(torch.tensor(1.0))
    buf.update(2.0)
    buf.update(np.float32(3.0))
    buf.update(torch.tensor(4.0), count=2)
    buf.update(5)
    assert list(buf.data[0]) == [1.0, 2.0, 3.0, 4.0, 5.0]
    assert list(buf.data[1]) == [1, 1, 1, 2, 1]
    assert buf.current() == 5
