"""MMEngine 0.10.7 ``tests/test_hooks/test_runtime_info_hook.py`` against :class:`RuntimeInfoHook`.

Upstream calls the hook on a built Runner. Here it is called on a runner of
MMEngine's shape (``runner_like``: counters, limits, loaders, a message hub) or,
where upstream writes MMEngine's loop counters (``runner.train_loop._epoch = 9``)
or reads the optimizer's learning rate, on this package's own runner after a
Trainer run.
"""

from __future__ import annotations

from types import SimpleNamespace
from unittest.mock import Mock

import numpy as np
import pytest
import torch
from mmengine.optim import OptimWrapper, OptimWrapperDict
from torch import nn
from torch.optim import SGD

from lightning_hooks.hooks import RuntimeInfoHook

from .suite_helpers import epoch_based, find_hook, run, runner_like


class DatasetWithoutMetainfo:
    def __len__(self) -> int:
        return 12


class DatasetWithMetainfo(DatasetWithoutMetainfo):
    metainfo: dict = dict()


def built_runner(dataset=None):
    """A built runner of ``epoch_based_cfg``: 2 epochs of 4 iterations."""
    loader = SimpleNamespace(dataset=dataset if dataset is not None else DatasetWithoutMetainfo())
    return runner_like(max_epochs=2, max_iters=8, train_dataloader=loader)


def test_before_and_after_train():
    runner, hook = built_runner(), RuntimeInfoHook()
    hook.before_train(runner)
    hub = runner.message_hub
    assert hub.get_info("loop_stage") == "train"
    assert (hub.get_info("epoch"), hub.get_info("iter")) == (0, 0)
    assert (hub.get_info("max_epochs"), hub.get_info("max_iters")) == (2, 8)
    assert hub.get_info("dataset_meta") is None
    hook.after_train(runner)
    assert hub.get_info("loop_stage") is None
    runner = built_runner(DatasetWithMetainfo())
    hook.before_train(runner)
    assert runner.message_hub.get_info("dataset_meta") == dict()


@pytest.fixture(scope="module")
def trained(tmp_path_factory):
    tmp_path = tmp_path_factory.mktemp("runtime_info")
    bridge, _ = run(tmp_path, epoch_based(tmp_path))
    return bridge


def test_before_train_epoch(trained):
    runner = trained.runner
    runner.train_loop._epoch = 9
    find_hook(trained, RuntimeInfoHook).before_train_epoch(runner)
    assert runner.message_hub.get_info("epoch") == 9
    assert runner.epoch == 9


def test_before_train_iter(trained):
    runner, hook = trained.runner, find_hook(trained, RuntimeInfoHook)
    runner.train_loop._iter = 9
    hook.before_train_iter(runner, batch_idx=2, data_batch=None)
    assert runner.message_hub.get_info("iter") == 9
    assert runner.message_hub.get_scalar("train/lr").current() == 0.1  # ToyModule's SGD lr

    with pytest.raises(AssertionError, match=r"runner\.optim_wrapper\.get_lr\(\)"):
        wrong = runner_like(optim_wrapper=Mock(get_lr=Mock(return_value="error type")))
        hook.before_train_iter(wrong, batch_idx=2, data_batch=None)

    # Several optimizers: MMEngine's OptimWrapperDict names the keys.
    model = nn.ModuleDict(dict(layer1=nn.Linear(1, 1), layer2=nn.Linear(1, 1)))
    wrappers = OptimWrapperDict(
        key1=OptimWrapper(SGD(model.layer1.parameters(), lr=0.01)),
        key2=OptimWrapper(SGD(model.layer2.parameters(), lr=0.02)),
    )
    several = runner_like(optim_wrapper=wrappers)
    hook.before_train_iter(several, batch_idx=2, data_batch=None)
    assert several.message_hub.get_scalar("train/key1.lr").current() == 0.01
    assert several.message_hub.get_scalar("train/key2.lr").current() == 0.02


def test_train_loop_counters_cannot_be_set_while_fit_runs(tmp_path):
    """While Lightning's loop runs it owns the counters: a write raises instead of being ignored."""
    from lightning_hooks import Hook

    class SetsEpoch(Hook):
        def before_train_epoch(self, runner):
            runner.train_loop._epoch = 9

    with pytest.raises(RuntimeError, match=r"train_loop\._epoch cannot be set while fit runs"):
        run(tmp_path, epoch_based(tmp_path, [SetsEpoch()]))


def test_train_loop_rejects_unknown_attributes(trained):
    with pytest.raises(AttributeError):
        trained.runner.train_loop.max_epoch = 3  # a typo of max_epochs is not silently kept
    with pytest.raises(TypeError, match="_iter"):
        trained.runner.train_loop._iter = -1


def test_after_train_iter():
    runner = built_runner()
    RuntimeInfoHook().after_train_iter(runner, batch_idx=2, data_batch=None, outputs={"loss_cls": 1.111})
    assert runner.message_hub.get_scalar("train/loss_cls").current() == 1.111


def test_before_and_after_val():
    runner, hook = built_runner(), RuntimeInfoHook()
    hook.before_val(runner)
    assert runner.message_hub.get_info("loop_stage") == "val"
    assert hook.last_loop_stage is None
    hook.after_val(runner)
    assert runner.message_hub.get_info("loop_stage") is None
    # The validation loop inside the training loop.
    runner, hook = built_runner(), RuntimeInfoHook()
    hook.before_train(runner)
    assert runner.message_hub.get_info("loop_stage") == "train"
    hook.before_val(runner)
    assert runner.message_hub.get_info("loop_stage") == "val"
    assert hook.last_loop_stage == "train"
    hook.after_val(runner)
    assert runner.message_hub.get_info("loop_stage") == "train"
    assert hook.last_loop_stage is None


def test_after_val_epoch():
    runner = built_runner()
    RuntimeInfoHook().after_val_epoch(runner, metrics={"acc": 0.8})
    assert runner.message_hub.get_scalar("val/acc").current() == 0.8


def test_before_and_after_test():
    runner, hook = built_runner(), RuntimeInfoHook()
    hook.before_test(runner)
    assert runner.message_hub.get_info("loop_stage") == "test"
    hook.after_test(runner)
    assert runner.message_hub.get_info("loop_stage") is None


def test_after_test_epoch():
    runner = built_runner()
    RuntimeInfoHook().after_test_epoch(runner, metrics={"acc": 0.8})
    assert runner.message_hub.get_scalar("test/acc").current() == 0.8


def test_scalar_check():
    runner, hook = built_runner(), RuntimeInfoHook()
    val = np.mean([5])
    hook.after_val_epoch(
        runner,
        metrics={
            "acc_f32": val.astype(np.float32),
            "acc_i32": val.astype(np.int32),
            "acc_u8": val.astype(np.uint8),
            "acc_ndarray": np.array([5]),
        },
    )
    for key in ("acc_f32", "acc_i32", "acc_u8", "acc_ndarray"):
        assert runner.message_hub.get_scalar(f"val/{key}").current() == 5
    val = torch.tensor([5.0]).mean()
    hook.after_val_epoch(
        runner, metrics={"acc_f32": val.float(), "acc_i64": val.long(), "acc_tensor": torch.tensor([5])}
    )
    for key in ("acc_f32", "acc_i64", "acc_tensor"):
        assert runner.message_hub.get_scalar(f"val/{key}").current() == 5
