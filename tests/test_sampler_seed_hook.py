"""DistSamplerSeedHook: every sampler's ``set_epoch`` receives each epoch exactly once.

Lightning's fit loop already calls ``set_epoch`` on ``loader.sampler`` and
``loader.batch_sampler.sampler`` before each epoch; the hook must add only what
Lightning misses (a batch sampler's own ``set_epoch``). The samplers below are
real samplers that record their calls.
"""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from typing import Any

import pytest
from torch.utils.data import BatchSampler, DataLoader, DistributedSampler, Sampler
from toy import BATCH, TRAIN_LEN, VAL_BATCH, ToyDataset, ToyModule, _mm_classes, loaders, make_trainer

from lightning_hooks import DistSamplerSeedHook, HookBridge
from lightning_hooks.hooks.sampler_seed_hook import epoch_seed_targets

EPOCHS = 3
ONLY_SEED_HOOK = dict(runtime_info=None, timer=None, logger=None, param_scheduler=None, checkpoint=None)
NO_HOOKS = dict(ONLY_SEED_HOOK, sampler_seed=None)


class CountingSampler(Sampler[int]):
    """Sequential indices; records every ``set_epoch`` call."""

    def __init__(self, dataset: Any, seed: Any = None, shuffle: bool = False) -> None:
        self.n = len(dataset)
        self.calls: list[int] = []

    def __iter__(self) -> Iterator[int]:
        return iter(range(self.n))

    def __len__(self) -> int:
        return self.n

    def set_epoch(self, epoch: int) -> None:
        self.calls.append(epoch)


class CountingBatchSampler(Sampler[list[int]]):
    """A batch sampler with its own ``set_epoch`` (e.g. a bucketing one) and no ``sampler`` attribute."""

    def __init__(self, n: int, batch_size: int) -> None:
        self.n, self.batch_size = n, batch_size
        self.calls: list[int] = []

    def __iter__(self) -> Iterator[list[int]]:
        return (list(range(i, min(i + self.batch_size, self.n))) for i in range(0, self.n, self.batch_size))

    def __len__(self) -> int:
        return (self.n + self.batch_size - 1) // self.batch_size

    def set_epoch(self, epoch: int) -> None:
        self.calls.append(epoch)


class CountingDistributedSampler(DistributedSampler):
    def __init__(self, dataset: Any) -> None:
        super().__init__(dataset, num_replicas=1, rank=0, shuffle=True, seed=0)
        self.calls: list[int] = []

    def set_epoch(self, epoch: int) -> None:
        self.calls.append(epoch)
        super().set_epoch(epoch)


def fit(tmp_path, train: DataLoader, default_hooks=ONLY_SEED_HOOK, ckpt_path=None, **kwargs) -> None:
    bridge = HookBridge(default_hooks=default_hooks, print_hooks_table=False)
    kwargs.setdefault("max_epochs", EPOCHS)
    trainer = make_trainer(tmp_path, bridge, num_sanity_val_steps=0, limit_val_batches=0, **kwargs)
    trainer.fit(ToyModule(), train, loaders()[1], ckpt_path=ckpt_path)


def test_custom_sampler_is_seeded_once_per_epoch_like_mmengine(tmp_path):
    from mmengine.registry import DATA_SAMPLERS
    from mmengine.runner import Runner

    DATA_SAMPLERS.register_module(module=CountingSampler, force=True)
    model_cls, _ = _mm_classes()
    runner = Runner(
        model=model_cls(),
        work_dir=str(tmp_path / "mm"),
        experiment_name=f"seed_{uuid.uuid4().hex[:8]}",
        train_dataloader=dict(
            dataset=ToyDataset(),
            batch_size=BATCH,
            sampler=dict(type="CountingSampler"),
            collate_fn=dict(type="default_collate"),
        ),
        optim_wrapper=dict(optimizer=dict(type="SGD", lr=0.1)),
        train_cfg=dict(by_epoch=True, max_epochs=EPOCHS),
        default_hooks=dict(checkpoint=None, logger=None),
        log_level="WARNING",
    )
    runner.train()
    mm_calls = runner.train_dataloader.sampler.calls

    sampler = CountingSampler(ToyDataset())
    fit(tmp_path / "lh", DataLoader(ToyDataset(), batch_size=BATCH, sampler=sampler))
    assert mm_calls == [0, 1, 2]
    assert sampler.calls == mm_calls


def test_batch_samplers_sampler_is_seeded_once(tmp_path):
    inner = CountingSampler(ToyDataset())
    loader = DataLoader(ToyDataset(), batch_sampler=BatchSampler(inner, batch_size=BATCH, drop_last=False))
    assert epoch_seed_targets(loader) == [inner]  # MMEngine's fallback target
    fit(tmp_path, loader)
    assert inner.calls == [0, 1, 2]


def test_batch_sampler_with_its_own_set_epoch_is_reached(tmp_path):
    with_hook = CountingBatchSampler(TRAIN_LEN, BATCH)
    fit(tmp_path / "hook", DataLoader(ToyDataset(), batch_sampler=with_hook))
    without_hook = CountingBatchSampler(TRAIN_LEN, BATCH)
    fit(tmp_path / "none", DataLoader(ToyDataset(), batch_sampler=without_hook), default_hooks=NO_HOOKS)
    assert with_hook.calls == [0, 1, 2]
    assert without_hook.calls == []  # Lightning alone never reaches it


def test_distributed_sampler_is_not_seeded_twice(tmp_path):
    sampler = CountingDistributedSampler(ToyDataset())
    fit(tmp_path, DataLoader(ToyDataset(), batch_size=BATCH, sampler=sampler))
    assert sampler.calls == [0, 1, 2]
    assert sampler.epoch == 2


def test_iteration_based_training_seeds_each_pass_once(tmp_path):
    sampler = CountingSampler(ToyDataset())
    loader = DataLoader(ToyDataset(), batch_size=BATCH, sampler=sampler)
    fit(tmp_path, loader, max_steps=10, max_epochs=-1, val_check_interval=4, check_val_every_n_epoch=None)
    assert sampler.calls == [0, 1, 2]  # 10 iterations of 4-batch passes


@pytest.mark.slow
def test_resumed_run_continues_the_epochs(tmp_path):
    ckpt = dict(ONLY_SEED_HOOK, checkpoint=dict(type="CheckpointHook", interval=1))
    first = CountingSampler(ToyDataset())
    fit(tmp_path, DataLoader(ToyDataset(), batch_size=BATCH, sampler=first), default_hooks=ckpt, max_epochs=2)
    second = CountingSampler(ToyDataset())
    fit(
        tmp_path,
        DataLoader(ToyDataset(), batch_size=BATCH, sampler=second),
        default_hooks=ckpt,
        max_epochs=4,
        ckpt_path=str(tmp_path / "epoch_2.pth"),
    )
    assert first.calls == [0, 1]
    assert second.calls == [2, 3]


def test_targets_follow_mmengine_order():
    plain = DataLoader(ToyDataset(), batch_size=VAL_BATCH)
    assert epoch_seed_targets(plain) == []  # SequentialSampler has no set_epoch
    sampler = CountingSampler(ToyDataset())
    direct = DataLoader(ToyDataset(), batch_size=BATCH, sampler=sampler)
    assert epoch_seed_targets(direct) == [sampler]
    hook = DistSamplerSeedHook()
    assert hook.priority == "NORMAL"


def test_mount_points_and_priority_match_mmengine():
    from mmengine.hooks import DistSamplerSeedHook as MMDistSamplerSeedHook

    ours, theirs = DistSamplerSeedHook(), MMDistSamplerSeedHook()
    assert ours.priority == theirs.priority
    assert set(ours.get_triggered_stages()) == set(theirs.get_triggered_stages())
