"""CheckpointHook against MMEngine's own Runner: same files, same last_checkpoint, same bookkeeping.

Every scenario runs twice, through ``mmengine.runner.Runner`` with MMEngine's
CheckpointHook and through Trainer + HookBridge with ours, with validation
metrics following the same score sequence. Compared: the checkpoint files left
(published names up to their hash), the content of ``last_checkpoint``, and in
every regular checkpoint ``meta`` epoch/iter and the message hub's
``keep_ckpt_ids``, ``best_score*``, ``best_ckpt*`` and ``last_ckpt``.
"""

from __future__ import annotations

import hashlib
import os
import pickle
import re
import warnings
from typing import Any

import pytest
import torch
from ckpt_helpers import ScoredModule, files_in, run_lightning, run_mmengine_ckpt, runtime_info, strip_dir, unhash
from mmengine.hooks import Hook as MMHook
from toy import ToyModule, loaders, make_trainer, run_mmengine

from lightning_hooks import CheckpointHook, Hook, HookBridge
from lightning_hooks.fileio import pickle_sha256

RAMP = {"acc": [0.1, 0.2, 0.3, 0.4, 0.5, 0.6, 0.7, 0.8]}
HUB_KEYS = ("keep_ckpt_ids", "best_score", "best_ckpt", "last_ckpt", "best_score_acc", "best_score_loss")

SCENARIOS = {
    "interval2_best": (dict(interval=2, save_best="acc"), RAMP, {}),
    "max_keep1_best": (dict(interval=1, save_best="acc", max_keep_ckpts=1), RAMP, {}),
    "max_keep2_best_dips": (dict(interval=1, save_best="acc", max_keep_ckpts=2), {"acc": [0.4, 0.3, 0.5, 0.1]}, {}),
    "two_keys": (
        dict(interval=4, save_best=["acc", "loss"]),
        {"acc": [0.1, 0.3, 0.2, 0.25], "loss": [1.0, 2.0, 0.5, 0.7]},
        {},
    ),
    "publish_best": (dict(interval=2, save_best="acc", published_keys=["meta", "state_dict"]), RAMP, {}),
    "publish_last_only": (dict(interval=2, published_keys="state_dict"), RAMP, {}),
    "no_save_last": (dict(interval=3, save_last=False), RAMP, {}),
    "class_default_interval": (dict(), RAMP, dict(max_epochs=3)),
    "auto_rule_less": (dict(interval=1, save_best="auto", rule="less"), {"acc": [0.4, 0.3, 0.5, 0.1]}, {}),
    "slash_in_key": (dict(interval=2, save_best="coco/bbox_mAP"), {"coco/bbox_mAP": [0.1, 0.3, 0.2, 0.4]}, {}),
    "tie_is_not_better": (dict(interval=2, save_best="acc"), {"acc": [0.3, 0.3, 0.2, 0.3]}, {}),
    "save_begin1_interval2": (dict(interval=2, save_begin=1), RAMP, dict(max_epochs=5)),
    "save_begin3_interval2_no_last": (dict(interval=2, save_begin=3, save_last=False), RAMP, dict(max_epochs=6)),
    "max_keep3": (dict(interval=1, max_keep_ckpts=3), RAMP, dict(max_epochs=6)),
    "filename_tmpl": (dict(interval=2, filename_tmpl="test_{}.pth", save_best="acc"), RAMP, {}),
    "iter_best_resave": (
        dict(interval=3, by_epoch=False, save_best="acc"),
        {"acc": [0.1, 0.3, 0.2, 0.5]},
        dict(max_iters=7, val_interval=2),
    ),
    "iter_save_begin_max_keep": (
        dict(interval=2, by_epoch=False, save_begin=5, max_keep_ckpts=2),
        RAMP,
        dict(max_iters=11, val_interval=4),
    ),
}


def hub_view(path: str, work_dir: str) -> dict:
    info = runtime_info(path)
    view = {k: strip_dir(info[k], work_dir) for k in HUB_KEYS if k in info}
    for key in [k for k in info if k.startswith("best_ckpt_")]:
        view[key] = strip_dir(info[key], work_dir)
    return view


def meta_view(path: str) -> tuple:
    meta = torch.load(path, map_location="cpu", weights_only=False)["meta"]
    return meta["epoch"], meta["iter"]


def assert_same_bookkeeping(mm_dir: str, lh_dir: str, marker_dirs: tuple[str, str] | None = None) -> None:
    mm_files, lh_files = files_in(mm_dir), files_in(lh_dir)
    assert unhash(lh_files) == unhash(mm_files)
    for name in mm_files:
        if not name.endswith(".pth") or re.search(r"-[0-9a-f]{8}\.pth$", name):
            continue
        mm_path, lh_path = os.path.join(mm_dir, name), os.path.join(lh_dir, name)
        assert meta_view(lh_path) == meta_view(mm_path), name
        mm_hub, lh_hub = hub_view(mm_path, mm_dir), hub_view(lh_path, lh_dir)
        assert mm_hub.keys() == lh_hub.keys(), name
        for key, value in mm_hub.items():
            assert lh_hub[key] == (pytest.approx(value, rel=1e-6) if isinstance(value, float) else value), (name, key)


def assert_same_marker(mm_work: str, lh_work: str, mm_root: str, lh_root: str) -> None:
    with open(os.path.join(mm_work, "last_checkpoint")) as f:
        mm_marker = f.read()
    with open(os.path.join(lh_work, "last_checkpoint")) as f:
        lh_marker = f.read()
    assert strip_dir(lh_marker, lh_root) == strip_dir(mm_marker, mm_root)
    assert os.path.isfile(lh_marker)


@pytest.mark.slow
@pytest.mark.parametrize("name", list(SCENARIOS))
def test_same_files_and_bookkeeping_as_mmengine(tmp_path, name):
    cfg, scores, run_kwargs = SCENARIOS[name]
    cfg = dict(type="CheckpointHook", **cfg)
    mm_dir, lh_dir = str(tmp_path / "mm" / "exp"), str(tmp_path / "lh" / "exp")
    run_mmengine_ckpt(mm_dir, cfg, scores, **run_kwargs)
    run_lightning(lh_dir, cfg, scores, **run_kwargs)
    assert len(files_in(mm_dir)) > 1
    assert_same_bookkeeping(mm_dir, lh_dir)
    assert_same_marker(mm_dir, lh_dir, mm_dir, lh_dir)


def test_table_rows_from_the_reference(tmp_path):
    """Section 13.2's observed file sets (MMEngine's), checked on our side alone."""
    cfg = dict(type="CheckpointHook", interval=1, save_best="acc", max_keep_ckpts=2)
    run_lightning(tmp_path, cfg, {"acc": [0.4, 0.3, 0.5, 0.1]})
    assert files_in(tmp_path) == ["best_acc_epoch_3.pth", "epoch_3.pth", "epoch_4.pth", "last_checkpoint"]
    assert runtime_info(str(tmp_path / "epoch_4.pth"))["keep_ckpt_ids"] == [3, 4]


def test_out_dir_gets_work_dir_basename_and_marker_stays_in_work_dir(tmp_path):
    scores = RAMP
    for side in ("mm", "lh"):
        cfg = dict(type="CheckpointHook", interval=2, out_dir=str(tmp_path / side / "outdir_test"))
        runner = run_mmengine_ckpt if side == "mm" else run_lightning
        runner(str(tmp_path / side / "exp"), cfg, scores)
    assert_same_bookkeeping(str(tmp_path / "mm" / "outdir_test" / "exp"), str(tmp_path / "lh" / "outdir_test" / "exp"))
    assert files_in(tmp_path / "lh" / "outdir_test" / "exp") == ["epoch_2.pth", "epoch_4.pth"]
    assert files_in(tmp_path / "lh" / "exp") == ["last_checkpoint"]
    assert_same_marker(
        str(tmp_path / "mm" / "exp"), str(tmp_path / "lh" / "exp"), str(tmp_path / "mm"), str(tmp_path / "lh")
    )


@pytest.mark.slow
def test_resume_scenario_13_3_matches_mmengine(tmp_path):
    """Run 1: 2 epochs (.5, .6), max_keep 1; auto-resume to 4 epochs (.55, .7)."""
    scores = {"acc": [0.5, 0.6, 0.55, 0.7]}
    cfg = dict(type="CheckpointHook", interval=1, save_best="acc", max_keep_ckpts=1, keep_resumed=False)
    mm_dir, lh_dir = str(tmp_path / "mm" / "exp"), str(tmp_path / "lh" / "exp")
    mm_cfg = {k: v for k, v in cfg.items() if k != "keep_resumed"}
    run_mmengine_ckpt(mm_dir, mm_cfg, scores, max_epochs=2)
    run_lightning(lh_dir, cfg, scores, max_epochs=2)
    assert_same_bookkeeping(mm_dir, lh_dir)
    run_mmengine_ckpt(mm_dir, mm_cfg, scores, max_epochs=4, resume=True)
    run_lightning(lh_dir, cfg, scores, max_epochs=4, resume=True)
    assert files_in(lh_dir) == ["best_acc_epoch_4.pth", "epoch_4.pth", "last_checkpoint"]
    assert_same_bookkeeping(mm_dir, lh_dir)
    assert runtime_info(os.path.join(lh_dir, "epoch_4.pth"))["best_score"] == pytest.approx(0.7)


@pytest.mark.slow
def test_resume_with_smaller_max_keep_deletes_what_mmengine_deletes(tmp_path):
    """MMEngine's test: keep 3 to step 6, resume to 7 with keep 2: before_train deletes 4, saving 7 deletes 5."""
    mm_dir, lh_dir = str(tmp_path / "mm" / "exp"), str(tmp_path / "lh" / "exp")
    keep3 = dict(type="CheckpointHook", interval=1, max_keep_ckpts=3)
    keep2 = dict(type="CheckpointHook", interval=1, max_keep_ckpts=2)
    run_mmengine_ckpt(mm_dir, keep3, RAMP, max_epochs=6)
    run_lightning(lh_dir, keep3, RAMP, max_epochs=6)
    assert runtime_info(os.path.join(lh_dir, "epoch_6.pth"))["keep_ckpt_ids"] == [4, 5, 6]
    run_mmengine_ckpt(mm_dir, keep2, RAMP, max_epochs=7, resume=True)
    run_lightning(lh_dir, keep2, RAMP, max_epochs=7, resume=True)
    assert files_in(lh_dir) == ["epoch_6.pth", "epoch_7.pth", "last_checkpoint"]
    assert_same_bookkeeping(mm_dir, lh_dir)


def test_published_file_loads_weights_only_and_holds_only_published_keys(tmp_path):
    cfg = dict(type="CheckpointHook", interval=2, save_best="acc", published_keys=["meta", "state_dict"])
    run_lightning(tmp_path, cfg, RAMP)
    published = [f for f in files_in(tmp_path) if re.search(r"-[0-9a-f]{8}\.pth$", f)]
    assert unhash(published) == ["best_acc_epoch_4-xxxxxxxx.pth", "epoch_4-xxxxxxxx.pth"]
    for name in published:
        ckpt = torch.load(tmp_path / name, weights_only=True)
        assert sorted(ckpt) == ["meta", "state_dict"]
        source = torch.load(tmp_path / re.sub(r"-[0-9a-f]{8}\.pth$", ".pth", name), weights_only=False)
        assert_same_state(ckpt["state_dict"], source["state_dict"])
        # The name's hash is MMEngine's sha256(pickle.dumps(filtered dict)), computed while streaming.
        # (Pickling a freshly loaded tensor is not byte-stable across loads, so compare on one object.)
        filtered = {k: v for k, v in source.items() if k in ("meta", "state_dict")}
        assert pickle_sha256(filtered) == hashlib.sha256(pickle.dumps(filtered)).hexdigest()


def test_published_keys_with_mmengine_names_and_a_missing_key(tmp_path, messages):
    """MMEngine's 'optimizer' is Lightning's 'optimizer_states' here and is published under that name; a key
    the checkpoint does not hold is named in a warning instead of being left out silently."""
    cfg = dict(type="CheckpointHook", interval=2, published_keys=["meta", "state_dict", "optimizer", "state_dic"])
    run_lightning(tmp_path, cfg, RAMP)
    (name,) = [f for f in files_in(tmp_path) if re.search(r"-[0-9a-f]{8}\.pth$", f)]
    assert sorted(torch.load(tmp_path / name, weights_only=True)) == ["meta", "optimizer_states", "state_dict"]
    said = [m for m in messages.warnings() if "published_keys" in m]
    assert len(said) == 1 and "'state_dic'" in said[0] and "'state_dict'" in said[0]  # the missing and the held keys


def assert_same_state(a: dict, b: dict) -> None:
    assert a.keys() == b.keys()
    assert all(torch.equal(a[k], b[k]) for k in a)


def test_best_checkpoints_hold_no_optimizer_or_scheduler_state(tmp_path):
    cfg = dict(type="CheckpointHook", interval=1, save_best="acc")
    run_lightning(tmp_path, cfg, RAMP, max_epochs=2)
    best = torch.load(tmp_path / "best_acc_epoch_2.pth", weights_only=False)
    regular = torch.load(tmp_path / "epoch_2.pth", weights_only=False)
    assert "optimizer_states" not in best and "lr_schedulers" not in best
    assert "optimizer_states" in regular and {"meta", "state_dict", "message_hub"} <= set(best)


def test_save_optimizer_false_drops_the_optimizer(tmp_path):
    run_lightning(tmp_path, dict(type="CheckpointHook", interval=1, save_optimizer=False), RAMP, max_epochs=1)
    assert "optimizer_states" not in torch.load(tmp_path / "epoch_1.pth", weights_only=False)


# ----------------------------------------------------------------------------- constructor, as MMEngine's test_init
def test_constructor_validation_matches_mmengine():
    from mmengine.hooks import CheckpointHook as MMCheckpointHook

    bad = [
        dict(file_client_args={}, backend_args={}),
        dict(save_best=dict(a=1)),
        dict(save_best=["auto", "acc"]),
        dict(save_best=["acc", "acc"]),
        dict(save_best="acc", rule=1),
        dict(save_best="acc", rule=["greater", "less"]),
        dict(save_best="recall"),
        dict(save_best="acc", rule="bigger"),
        dict(published_keys=["meta", "meta"]),
        dict(published_keys=3),
        dict(save_begin=-1),
    ]
    for kwargs in bad:
        with pytest.raises(Exception) as mm_error:
            MMCheckpointHook(**kwargs)
        with pytest.raises(type(mm_error.value)):
            CheckpointHook(**kwargs)
    good = [
        dict(save_best="acc"),
        dict(save_best=["acc", "mIoU"]),
        dict(save_best=["FID", "IS"], rule=["less", "greater"]),
        dict(save_best="loss_cls", less_keys="loss_cls"),
        dict(save_best="auto", rule="less"),
        dict(save_best=["acc", "loss"], greater_keys=["acc"], less_keys=("loss",)),
    ]
    for kwargs in good:
        mm, ours = MMCheckpointHook(**kwargs), CheckpointHook(**kwargs)
        assert ours.rules == mm.rules and ours.key_indicators == mm.key_indicators
        assert tuple(ours.greater_keys) == tuple(mm.greater_keys) and tuple(ours.less_keys) == tuple(mm.less_keys)
    assert CheckpointHook().interval == -1 and CheckpointHook().filename_tmpl == "epoch_{}.pth"
    assert CheckpointHook(by_epoch=False).filename_tmpl == "iter_{}.pth"
    assert CheckpointHook(filename_tmpl="ckpt_{:03d}.pth").filename_tmpl.format(7) == "ckpt_007.pth"
    for template in ("ckpt.pth", "ckpt_{}_{}.pth", "ckpt_{.pth"):
        with pytest.raises(ValueError, match="filename_tmpl"):
            CheckpointHook(filename_tmpl=template)
    # arguments that would change nothing are named (MMEngine ignores them silently)
    for kwargs, words in (
        (dict(rule="greater"), "rule only apply with save_best"),
        (dict(greater_keys=["f1"], less_keys="err"), "greater_keys, less_keys only apply with save_best"),
        (dict(backend_args=dict(anon=True)), "does not use backend_args"),
    ):
        with pytest.warns(UserWarning, match=words):
            CheckpointHook(**kwargs)
    # a directory part: the hook would write files it then may not rotate, publish or resume from
    for template in ("ckpts/ep_{}.pth", "../ep_{}.pth", "ckpts\\ep_{}.pth"):
        with pytest.raises(ValueError, match=r"filename_tmpl .*directory.*out_dir"):
            CheckpointHook(filename_tmpl=template)


def test_missing_save_best_metric_names_the_reported_ones(tmp_path):
    cfg = dict(type="CheckpointHook", interval=1, save_best=["acc", "loss"])
    with pytest.raises(KeyError, match=r"did not report \['loss'\].*\['acc'\]"):
        run_lightning(tmp_path, cfg, {"acc": [0.1, 0.2]}, max_epochs=2)


def test_standalone_validate_with_save_best_does_not_crash(tmp_path):
    """MMEngine's runner.val() crashes here (AttributeError: no file_backend)."""
    from ckpt_helpers import NO_DEFAULTS, ScoredModule
    from toy import loaders, make_trainer

    from lightning_hooks import HookBridge

    bridge = HookBridge(
        default_hooks={**NO_DEFAULTS, "checkpoint": dict(type="CheckpointHook", interval=1, save_best="acc")},
        print_hooks_table=False,
    )
    trainer = make_trainer(tmp_path, bridge)
    _, val = loaders()
    results = trainer.validate(ScoredModule(RAMP), val)
    assert results[0]["acc"] == pytest.approx(0.1)
    assert files_in(tmp_path) == []


@pytest.mark.parametrize("validating", [False, True], ids=["no-validation", "validation"])
def test_save_best_without_any_validation_is_said(tmp_path, validating):
    """MMEngine saves no best file and says nothing when no validation runs; here a warning says why."""
    cfg = dict(type="CheckpointHook", interval=1, save_best="acc")
    limit = {} if validating else dict(limit_val_batches=0)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        run_lightning(tmp_path, cfg, RAMP, max_epochs=2, **limit)
    said = [str(w.message) for w in caught if "saved no best checkpoint" in str(w.message)]
    best = [name for name in files_in(tmp_path) if name.startswith("best_")]
    if validating:
        assert said == [] and best == ["best_acc_epoch_2.pth"]
    else:
        assert len(said) == 1 and "save_best='acc'" in said[0] and "limit_val_batches" in said[0]
        assert best == []


@pytest.mark.parametrize("by_epoch", [True, False], ids=["by_epoch", "by_iter"])
def test_runner_save_checkpoint_from_a_hook_writes_mmengines_meta(tmp_path, by_epoch):
    """A hook calls ``runner.save_checkpoint`` mid-epoch, as MMEngine hooks do: ``meta`` gets epoch and iter by
    MMEngine's rule unless it has them, and the arguments are MMEngine's, in its order."""

    def save_at_iter_5(base: type) -> Any:
        class SaveMine(base):  # type: ignore[misc, valid-type]
            def after_train_iter(self, runner, batch_idx, data_batch=None, outputs=None):
                if runner.iter == 5:
                    # positional, MMEngine's order: out_dir, filename, file_client_args, save_optimizer
                    runner.save_checkpoint(
                        runner.work_dir, "mine.pth", None, False, meta={"note": 1}, by_epoch=by_epoch
                    )

        return SaveMine()

    run_mmengine(tmp_path / "mm", [save_at_iter_5(MMHook)])
    bridge = HookBridge(default_hooks=dict(checkpoint=None), custom_hooks=[save_at_iter_5(Hook)])
    make_trainer(tmp_path / "lh", bridge, max_epochs=2).fit(ToyModule(), *loaders())
    theirs = torch.load(tmp_path / "mm" / "mine.pth", map_location="cpu", weights_only=False)
    ours = torch.load(tmp_path / "lh" / "mine.pth", weights_only=True)
    assert {k: ours["meta"][k] for k in ("note", "epoch", "iter")} == {
        k: theirs["meta"][k] for k in ("note", "epoch", "iter")
    }
    assert "optimizer_states" not in ours and "optimizer" not in theirs  # save_optimizer=False, given positionally
    with pytest.raises(ValueError, match="backend_args is not supported"):
        bridge.runner.save_checkpoint(str(tmp_path), "x.pth", backend_args={"anon": True})


def test_a_validation_inside_an_epoch_leaves_the_epochs_checkpoint_as_it_was(tmp_path):
    """Lightning's val_check_interval=0.5 validates mid-epoch. A new best there is not re-saved into
    epoch_<completed epochs>.pth (MMEngine's re-save names the step by epoch, and MMEngine never
    validates inside one): that file keeps the end of its epoch, and the next epoch's save records the best."""
    scores = {"acc": [0.1, 0.2, 0.3, 0.4]}  # every validation a new best
    cfg = dict(type="CheckpointHook", interval=1, save_best="acc")
    module = ScoredModule(scores, by_epoch=False)  # one score per validation, two per epoch
    run_lightning(tmp_path, cfg, scores, max_epochs=2, module=module, val_check_interval=0.5)
    first = torch.load(tmp_path / "epoch_1.pth", map_location="cpu", weights_only=False)
    assert (first["meta"]["iter"], first["global_step"]) == (4, 4)  # not the state of the validation at iteration 6
    assert files_in(tmp_path) == ["best_acc_epoch_2.pth", "epoch_1.pth", "epoch_2.pth", "last_checkpoint"]
    assert runtime_info(str(tmp_path / "epoch_2.pth"))["best_score"] == pytest.approx(0.4)


def _save_every_third_iteration(base: type) -> Any:
    """A hook saving ``iter_<n>.pth`` at every third iteration, as CheckpointHook(by_epoch=False) does."""

    class SaveEveryThird(base):  # type: ignore[misc, valid-type]
        def after_train_iter(self, runner, batch_idx, data_batch=None, outputs=None):
            if (runner.iter + 1) % 3 == 0:
                runner.save_checkpoint(runner.work_dir, f"iter_{runner.iter + 1}.pth", by_epoch=False)

    return SaveEveryThird()


@pytest.mark.parametrize("by_epoch", [True, False], ids=["by_epoch", "by_iter"])
def test_checkpoints_lightning_writes_carry_the_meta_of_the_hooks_file_of_the_same_state(tmp_path, by_epoch):
    """ModelCheckpoint's files (inside an epoch, at an epoch's end, ``last.ckpt``) and ``trainer.save_checkpoint``
    after ``fit`` carry ``meta`` epoch/iter as the hooks' own file of the same state: the finished epochs and
    iterations, which MMEngine's resume reads back (``train_loop._epoch = meta['epoch']``)."""
    from lightning.pytorch.callbacks import ModelCheckpoint

    if by_epoch:
        checkpoint = dict(type="CheckpointHook", interval=1)
        length: dict[str, Any] = dict(max_epochs=2)
        at_epoch_ends = ModelCheckpoint(dirpath=tmp_path, filename="{step}-end", save_top_k=-1, save_last=True)
        # the hooks' files of the state of each global step: epoch ends, and iterations 3 and 6 inside epochs
        same_state = {4: "epoch_1.pth", 8: "epoch_2.pth", 3: "iter_3.pth", 6: "iter_6.pth"}
    else:
        checkpoint = dict(type="CheckpointHook", by_epoch=False, interval=4)
        length = dict(max_steps=8, max_epochs=-1, val_check_interval=4, check_val_every_n_epoch=None)
        at_epoch_ends = ModelCheckpoint(dirpath=tmp_path, filename="{step}-end", save_top_k=0, save_last=True)
        same_state = {4: "iter_4.pth", 8: "iter_8.pth", 3: "iter_3.pth", 6: "iter_6.pth"}
    every_3 = ModelCheckpoint(dirpath=tmp_path, filename="{step}-in", every_n_train_steps=3, save_top_k=-1)
    bridge = HookBridge(default_hooks=dict(checkpoint=checkpoint), custom_hooks=[_save_every_third_iteration(Hook)])
    trainer = make_trainer(tmp_path, bridge, enable_checkpointing=True, callbacks=[bridge, at_epoch_ends, every_3], **length)  # fmt: skip
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        trainer.fit(ToyModule(), *loaders())
    trainer.save_checkpoint(tmp_path / "final.ckpt")
    lightning_files = [name for name in os.listdir(tmp_path) if name.endswith(".ckpt")]
    expected = ["last.ckpt", "final.ckpt", "step=3-in.ckpt", "step=6-in.ckpt"]
    if by_epoch:
        expected += ["step=4-end.ckpt", "step=8-end.ckpt"]
    assert sorted(lightning_files) == sorted(expected)
    for name in lightning_files:
        step = torch.load(tmp_path / name, weights_only=True)["global_step"]
        assert meta_view(str(tmp_path / name)) == meta_view(str(tmp_path / same_state[step])), name
