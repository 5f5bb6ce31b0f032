"""MMEngine 0.10.7 ``tests/test_hooks/test_empty_cache_hook.py`` against :class:`EmptyCacheHook`.

Upstream runs only with CUDA and patches ``torch.cuda.empty_cache``; here the
releases are counted on CPU through the hook's ``release_fn``, and MMEngine's
own Runner is counted the same way (``tests/test_empty_cache_hook.py``'s
``count_mmengine``). Upstream's expected counts leave out the validation that
MMEngine's ``EpochBasedTrainLoop`` runs after the last epoch even with
``val_interval=1e6`` (``self._epoch == self._max_epochs``); MMEngine's real count,
asserted here for both frameworks, includes it.
"""

from __future__ import annotations

import pytest
from test_empty_cache_hook import Counter, count_mmengine
from toy import BATCH, TRAIN_LEN, VAL_BATCH, ToyModule, make_trainer, run_mode

from lightning_hooks import EmptyCacheHook, HookBridge

MAX_EPOCHS = 2
TRAIN_LEN_BATCHES = TRAIN_LEN // BATCH
VAL_LEN_BATCHES = TRAIN_LEN // VAL_BATCH
VAL_INTERVAL = 1_000_000  # "disable validation during training"

CASES = {
    # upstream: max_epochs + 2 (train, test, val); plus the final validation of training
    "after_epoch": (dict(), ("train", "test", "val"), MAX_EPOCHS + 2 + 1),
    # upstream: max_epochs * 2 + 4; plus the final validation's before and after
    "before_epoch": (dict(before_epoch=True), ("train", "val", "test"), MAX_EPOCHS * 2 + 4 + 2),
    # upstream: max_epochs * 2 + 4 + len(train) * max_epochs + len(val) + len(test); plus the final validation
    "after_iter": (
        dict(after_iter=True, before_epoch=True),
        ("train", "val", "test"),
        MAX_EPOCHS * 2 + 4 + TRAIN_LEN_BATCHES * MAX_EPOCHS + 2 * VAL_LEN_BATCHES + (2 + VAL_LEN_BATCHES),
    ),
}


@pytest.mark.filterwarnings("ignore:.*slow training")
@pytest.mark.parametrize("case", sorted(CASES))
def test_with_runner(tmp_path, monkeypatch, case):
    hook_kwargs, order, expected = CASES[case]
    counter = Counter()
    bridge = HookBridge(custom_hooks=[EmptyCacheHook(**hook_kwargs, release_fn=counter)], print_hooks_table=False)
    trainer = make_trainer(tmp_path / "lh", bridge, max_epochs=MAX_EPOCHS, check_val_every_n_epoch=VAL_INTERVAL)
    model = ToyModule()
    for mode in order:
        run_mode(trainer, model, {"train": "fit", "val": "validate", "test": "test"}[mode])
    assert counter.calls == expected
    assert count_mmengine(tmp_path / "mm", monkeypatch, hook_kwargs, VAL_INTERVAL, order) == expected
