"""EmptyCacheHook: MMEngine's call-count formulas (section 11.1), counted on CPU in both frameworks.

Our side counts calls of the release function given through the hook's
``release_fn`` seam, in real Trainer runs. MMEngine's hook has no seam and only
releases when CUDA exists, so its side is counted as MMEngine's own test does:
``torch.cuda.empty_cache`` is replaced by a counter (and MMEngine's
``is_cuda_available`` answers True) for the duration of MMEngine's run only.
"""

from __future__ import annotations

import uuid

import pytest
import torch
from toy import BATCH, TRAIN_LEN, VAL_BATCH, ToyDataset, ToyModule, _mm_classes, loaders, make_trainer, run_mode

from lightning_hooks import EmptyCacheHook, HookBridge
from lightning_hooks.hooks.empty_cache_hook import release_function_for

MAX_EPOCHS = 2
TRAIN_ITERS = TRAIN_LEN // BATCH  # 4
VAL_ITERS = TRAIN_LEN // VAL_BATCH  # 2, also the test loader

#: name -> (hook kwargs, val_interval, run order, MMEngine's formula)
SCENARIOS = {
    "defaults": (dict(), 1_000_000, ("train", "test", "val"), MAX_EPOCHS + 3),
    "before_epoch": (dict(before_epoch=True), 1, ("train", "val", "test"), MAX_EPOCHS * 2 + (MAX_EPOCHS + 1) * 2 + 2),
    "after_iter": (
        dict(before_epoch=True, after_iter=True),
        1,
        ("train", "val", "test"),
        MAX_EPOCHS * (2 + TRAIN_ITERS) + (MAX_EPOCHS + 1) * (2 + VAL_ITERS) + (2 + VAL_ITERS),
    ),
}


class Counter:
    def __init__(self) -> None:
        self.calls = 0

    def __call__(self) -> None:
        self.calls += 1


def count_lightning(tmp_path, hook_kwargs, val_interval, order) -> int:
    counter = Counter()
    hook = EmptyCacheHook(**hook_kwargs, release_fn=counter)
    bridge = HookBridge(custom_hooks=[hook], print_hooks_table=False)
    trainer = make_trainer(tmp_path, bridge, max_epochs=MAX_EPOCHS, check_val_every_n_epoch=val_interval)
    model = ToyModule()
    for mode in order:
        run_mode(trainer, model, {"train": "fit", "val": "validate", "test": "test"}[mode])
    return counter.calls


def count_mmengine(tmp_path, monkeypatch, hook_kwargs, val_interval, order) -> int:
    import mmengine.hooks.empty_cache_hook as mm_module
    from mmengine.runner import Runner

    counter = Counter()
    model_cls, metric_cls = _mm_classes()

    def loader(batch):
        return dict(
            dataset=ToyDataset(),
            batch_size=batch,
            sampler=dict(type="DefaultSampler", shuffle=False),
            collate_fn=dict(type="default_collate"),
        )

    runner = Runner(
        model=model_cls(),
        work_dir=str(tmp_path),
        experiment_name=f"ec_{uuid.uuid4().hex[:8]}",
        train_dataloader=loader(BATCH),
        val_dataloader=loader(VAL_BATCH),
        test_dataloader=loader(VAL_BATCH),
        val_evaluator=dict(type=metric_cls),
        test_evaluator=dict(type=metric_cls),
        val_cfg=dict(),
        test_cfg=dict(),
        optim_wrapper=dict(optimizer=dict(type="SGD", lr=0.1)),
        train_cfg=dict(by_epoch=True, max_epochs=MAX_EPOCHS, val_interval=val_interval),
        custom_hooks=[dict(type="EmptyCacheHook", **hook_kwargs)],
        default_hooks=dict(checkpoint=None, logger=None),
        log_level="WARNING",
    )
    with monkeypatch.context() as patch:
        patch.setattr(mm_module, "is_cuda_available", lambda: True)
        patch.setattr(torch.cuda, "empty_cache", counter)
        for mode in order:
            getattr(runner, mode)()
    return counter.calls


@pytest.mark.parametrize("name", sorted(SCENARIOS))
def test_call_counts_match_mmengine_formulas(tmp_path, monkeypatch, name):
    hook_kwargs, val_interval, order, formula = SCENARIOS[name]
    if hook_kwargs.get("after_iter"):
        with pytest.warns(UserWarning, match="slow training"):
            ours = count_lightning(tmp_path / "lh", hook_kwargs, val_interval, order)
    else:
        ours = count_lightning(tmp_path / "lh", hook_kwargs, val_interval, order)
    theirs = count_mmengine(tmp_path / "mm", monkeypatch, hook_kwargs, val_interval, order)
    assert theirs == formula
    assert ours == formula


def test_release_function_follows_the_trainer_device(tmp_path):
    assert release_function_for("cpu") is None
    assert release_function_for(None) is None
    assert release_function_for("cuda") is torch.cuda.empty_cache
    assert release_function_for(torch.device("xpu")) is torch.xpu.empty_cache
    assert release_function_for("mps") is torch.mps.empty_cache
    assert release_function_for("meta") is None

    hook = EmptyCacheHook(before_epoch=True)
    hook.release_fn = lambda: None  # replaced at before_run by the device's function (none on CPU)
    bridge = HookBridge(custom_hooks=[hook], print_hooks_table=False)
    trainer = make_trainer(tmp_path, bridge, max_epochs=1)
    train, val = loaders()
    trainer.fit(ToyModule(), train, val)
    assert trainer.strategy.root_device.type == "cpu"
    assert hook.release_fn is None


def test_bad_arguments_are_named():
    with pytest.raises(TypeError, match="after_epoch"):
        EmptyCacheHook(after_epoch="yes")  # type: ignore[arg-type]
    with pytest.raises(TypeError, match="release_fn"):
        EmptyCacheHook(release_fn=3)  # type: ignore[arg-type]
    with pytest.warns(UserWarning, match="after_iter=True"):
        EmptyCacheHook(after_iter=True)


def test_mount_points_and_priority_match_mmengine():
    from mmengine.hooks import EmptyCacheHook as MMEmptyCacheHook

    ours, theirs = EmptyCacheHook(), MMEmptyCacheHook()
    assert ours.priority == theirs.priority
    # Ours also uses before_run, to choose the release function from the Trainer's device.
    assert set(ours.get_triggered_stages()) == set(theirs.get_triggered_stages()) | {"before_run"}
