"""HookBridge: default-hook merging and the hooks table against MMEngine's Runner, errors, state, runner view."""

from __future__ import annotations

import logging
import uuid
import warnings
from collections.abc import Callable
from typing import Any

import lightning.pytorch as pl
import pytest
import torch
from ckpt_helpers import files_in
from mmengine.hooks import Hook as MMHook
from torch.utils.data import DataLoader
from toy import ToyDataset, ToyModule, _mm_classes, loaders, make_trace_hook, make_trainer, run_mmengine, run_mode

from lightning_hooks import HOOKS, Hook, HookBridge, MessageHub, bridge_checks
from lightning_hooks.bridge import merge_default_hooks


def _mm_runner_hooks(tmp_path, default_hooks=None, custom_hooks=None):
    from mmengine.runner import Runner

    runner = Runner(
        model=_mm_classes()[0](),
        work_dir=str(tmp_path / uuid.uuid4().hex[:6]),
        experiment_name=f"mm_{uuid.uuid4().hex[:8]}",
        default_hooks=default_hooks,
        custom_hooks=custom_hooks,
        log_level="WARNING",
    )
    return runner


class ExtraHook(Hook):
    priority = "LOW"


class MMExtraHook(MMHook):
    priority = "LOW"

    def after_train_iter(self, runner, batch_idx, data_batch=None, outputs=None):
        pass


class ExtraHookImpl(ExtraHook):
    def after_train_iter(self, runner, batch_idx, data_batch=None, outputs=None):
        pass


HOOKS.register_module(name="ExtraHook", module=ExtraHookImpl, force=True)


@pytest.mark.parametrize(
    "default_hooks",
    [
        None,
        {"timer": None},
        {"timer": None, "checkpoint": None, "sampler_seed": None},
        {"extra": {"type": "ExtraHook"}},
        {"runtime_info": {"type": "RuntimeInfoHook", "priority": "LOWEST"}},
    ],
)
def test_default_hook_merge_matches_mmengine(tmp_path, default_hooks):
    from mmengine.registry import HOOKS as MM_HOOKS

    MM_HOOKS.register_module(name="ExtraHook", module=MMExtraHook, force=True)
    import copy

    runner = _mm_runner_hooks(tmp_path, copy.deepcopy(default_hooks))
    bridge = HookBridge(default_hooks=copy.deepcopy(default_hooks))
    assert [type(h).__name__.replace("MMExtraHook", "ExtraHookImpl") for h in runner.hooks] == [
        type(h).__name__ for h in bridge.hooks
    ]


def test_replacing_an_entry_replaces_it_whole():
    merged = merge_default_hooks({"checkpoint": {"type": "CheckpointHook", "save_begin": 1}})
    assert merged["checkpoint"] == {"type": "CheckpointHook", "save_begin": 1}
    assert list(merged) == ["runtime_info", "timer", "sampler_seed", "logger", "param_scheduler", "checkpoint"]
    bridge = HookBridge(default_hooks={"checkpoint": {"type": "CheckpointHook", "save_begin": 1}})
    assert bridge.hooks[-1].interval == -1  # the class default, not the default entry's 1


def test_custom_hook_order_and_ties_keep_registration_order(tmp_path):
    class A(Hook):
        pass

    class B(Hook):
        pass

    a, b, c = A(), B(), A()
    bridge = HookBridge(
        custom_hooks=[
            a,
            dict(type="CheckInvalidLossHook", priority=45),
            b,
            {"type": "IterTimerHook", "priority": "NORMAL"},
            c,
        ]
    )
    names = [type(h).__name__ for h in bridge.hooks]
    assert names == [
        "RuntimeInfoHook",
        "CheckInvalidLossHook",
        "IterTimerHook",
        "DistSamplerSeedHook",
        "A",
        "B",
        "IterTimerHook",
        "A",
        "LoggerHook",
        "ParamSchedulerHook",
        "CheckpointHook",
    ]
    assert bridge.hooks[1].priority == 45


def test_hooks_table_matches_mmengine_for_complete_hooks(tmp_path):
    class MMCustom(MMHook):
        def _after_iter(self, runner, batch_idx, data_batch=None, outputs=None, mode="train"):
            pass

    class LHCustom(Hook):
        def _after_iter(self, runner, batch_idx, data_batch=None, outputs=None, mode="train"):
            pass

    # Logger, ParamScheduler and Checkpoint hooks are still partial, so compare without them.
    removed = {"logger": None, "param_scheduler": None, "checkpoint": None}
    runner = _mm_runner_hooks(tmp_path, dict(removed), [MMCustom()])
    bridge = HookBridge(default_hooks=dict(removed), custom_hooks=[LHCustom()])
    assert bridge.get_hooks_info() == runner.get_hooks_info().replace("MMCustom", "LHCustom")


@pytest.mark.parametrize(
    ("kwargs", "error", "words"),
    [
        (dict(custom_hooks=[dict(type="NoSuchHook")]), KeyError, ["NoSuchHook", "Registered names"]),
        (dict(custom_hooks=[dict(type="IterTimerHook", priority="sometimes")]), KeyError, ["sometimes", "NORMAL"]),
        (dict(custom_hooks=[dict(type="IterTimerHook", priority=200)]), ValueError, ["200"]),
        (dict(default_hooks=dict(no_such=None)), KeyError, ["no_such", "runtime_info"]),
        (dict(custom_hooks=[object()]), TypeError, ["object"]),
        (dict(custom_hooks=dict(type="IterTimerHook")), TypeError, ["list"]),
        (dict(default_hooks=dict(timer=torch.nn.Linear(1, 1))), TypeError, ["Linear"]),
        (dict(log_level="LOUD"), ValueError, ["LOUD", "INFO"]),
        (dict(log_level=-1), ValueError, ["-1", "logging level number"]),
        (dict(log_processor=dict(by_epoch="False")), TypeError, ["by_epoch must be True or False", "'False'"]),
        (dict(log_processor=dict(log_with_hierarchy=1)), TypeError, ["log_with_hierarchy must be True or False"]),
        (dict(custom_hooks=[dict(type="EMAHook", update_buffers="False")]), ValueError, ["update_buffers", "'False'"]),
        (dict(custom_hooks="EMAHook"), TypeError, ["'EMAHook'", "custom_hooks=[dict(type='EMAHook')]"]),
        (dict(resume="work_dirs/exp/epoch_3.pth"), TypeError, ["resume", "ckpt_path"]),
        (dict(resume=1), TypeError, ["resume", "True or False"]),
        (dict(work_dir=5), TypeError, ["work_dir", "got 5"]),
        (dict(experiment_name=3), TypeError, ["experiment_name"]),
        (dict(print_hooks_table="no"), TypeError, ["print_hooks_table"]),
        (dict(validate_at_end=None), TypeError, ["validate_at_end"]),
    ],
)
def test_bad_configuration_gets_clear_errors(kwargs, error, words):
    with pytest.raises(error) as info:
        HookBridge(**kwargs)
    for word in words:
        assert word in str(info.value)


@pytest.mark.parametrize("level", [logging.INFO, "WARN", "NOTSET", "fatal"])
def test_log_levels_mmengine_takes(level):
    """MMEngine's logger takes a level number or any name logging knows."""
    assert HookBridge(log_level=level).log_level == (level.upper() if isinstance(level, str) else level)


def test_a_second_hook_of_a_default_type_is_said():
    """MMEngine adds it silently: a misspelt key (``loger``) would print every line twice."""
    with pytest.warns(UserWarning, match=r"default_hooks\['loger'\] adds a second LoggerHook beside .*'logger'"):
        bridge = HookBridge(default_hooks=dict(loger=dict(type="LoggerHook")))
    assert [type(h).__name__ for h in bridge.hook_list.hooks].count("LoggerHook") == 2  # as in MMEngine
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        HookBridge(default_hooks=dict(logger=dict(type="LoggerHook", interval=5), extra=dict(type="EMAHook")))
        HookBridge(default_hooks=dict(logger=None, my_logger=dict(type="LoggerHook")))  # replaces, not a second


def test_checkpoint_state_is_plain_and_round_trips(tmp_path):
    """Message hub and hook state travel in the Lightning checkpoint and load with weights_only=True."""

    class Counter(Hook):
        def __init__(self):
            self.n = 0

        def after_train_iter(self, runner, batch_idx, data_batch=None, outputs=None):
            self.n += 1

        def state_dict(self):
            return {"n": self.n}

        def load_state_dict(self, state):
            self.n = state["n"]

    train, val = loaders()
    bridge = HookBridge(custom_hooks=[Counter()])
    make_trainer(tmp_path, bridge, max_epochs=2).fit(ToyModule(), train, val)
    ckpt = torch.load(tmp_path / "epoch_2.pth", weights_only=True)
    assert ckpt["meta"]["epoch"] == 2 and ckpt["meta"]["iter"] == 8
    assert ckpt["callbacks"]["HookBridge"]["hooks"]["Counter"] == {"n": 8}
    hub = ckpt["message_hub"]
    assert hub["runtime_info"]["epoch"] == 1 and hub["runtime_info"]["iter"] == 7  # last values RuntimeInfoHook wrote
    assert len(hub["log_scalars"]["train/loss"]["log_history"]) == 8
    assert (tmp_path / "last_checkpoint").read_text() == str(tmp_path / "epoch_2.pth")

    # Resume: hook state and message hub come back; training continues from epoch 2.
    resumed = HookBridge(custom_hooks=[Counter()])
    make_trainer(tmp_path, resumed, max_epochs=3).fit(ToyModule(), train, val, ckpt_path=str(tmp_path / "epoch_2.pth"))
    counter = next(h for h in resumed.hooks if type(h).__name__ == "Counter")
    assert counter.n == 12
    assert len(resumed.message_hub.get_scalar("train/loss")) == 12


@pytest.mark.parametrize("edit", ["replace the dict", "in place"])
def test_after_load_checkpoint_edits_reach_the_model(tmp_path, edit):
    """MMEngine runs after_load_checkpoint before the weights reach the model; so does the bridge."""
    train, val = loaders()
    make_trainer(tmp_path, HookBridge(), max_epochs=1).fit(ToyModule(), train, val)

    class ZeroWeights(Hook):
        def after_load_checkpoint(self, runner, checkpoint):
            if edit == "in place":
                for value in checkpoint["state_dict"].values():
                    value.zero_()
            else:
                checkpoint["state_dict"] = {k: torch.zeros_like(v) for k, v in checkpoint["state_dict"].items()}

    model = ToyModule()
    make_trainer(tmp_path, HookBridge(custom_hooks=[ZeroWeights()])).validate(
        model, val, ckpt_path=str(tmp_path / "epoch_1.pth")
    )
    assert all(float(p.detach().abs().sum()) == 0 for p in model.parameters())


def test_runner_view_attributes(tmp_path):
    seen = {}

    class Look(Hook):
        def before_train(self, runner):
            seen.update(
                max_epochs=runner.max_epochs,
                max_iters=runner.max_iters,
                work_dir=runner.work_dir,
                log_dir=runner.log_dir,
                lr=runner.optim_wrapper.get_lr(),
                rank=runner.rank,
                world_size=runner.world_size,
                distributed=runner.distributed,
                n_train=len(runner.train_dataloader),
                n_val=len(runner.val_dataloader),
                hub=runner.message_hub is MessageHub.get_current_instance(),
                model=runner.model,
                name=runner.experiment_name,
                schedulers=runner.param_schedulers,
            )

    train, val = loaders()
    model = ToyModule(scheduler=lambda opt: torch.optim.lr_scheduler.StepLR(opt, 1))
    bridge = HookBridge(custom_hooks=[Look()], experiment_name="exp")
    make_trainer(tmp_path, bridge, max_epochs=3, limit_train_batches=3).fit(model, train, val)
    assert seen["max_epochs"] == 3 and seen["max_iters"] == 9 and seen["n_train"] == 3 and seen["n_val"] == 2
    assert seen["work_dir"] == str(tmp_path) and seen["log_dir"].startswith(str(tmp_path))
    assert seen["lr"] == {"lr": [0.1]} and seen["rank"] == 0 and seen["world_size"] == 1 and not seen["distributed"]
    assert seen["hub"] and seen["model"] is model and seen["name"].startswith("exp_")
    assert seen["schedulers"][0].by_epoch is True
    log_file = tmp_path / seen["log_dir"].split("/")[-1] / (seen["log_dir"].split("/")[-1] + ".log")
    text = log_file.read_text()
    assert "Hooks will be executed in the following order" in text and "Saving checkpoint at 3 epochs" in text


def _run_start_recorder(base: type, seen: list) -> Any:
    """A hook recording, in before_run, what MMEngine's hooks may read there: the loader's length and the run's."""

    class RunStart(base):  # type: ignore[misc, valid-type]
        def before_run(self, runner) -> None:
            seen.append((len(runner.train_dataloader), len(runner.val_dataloader), runner.max_epochs, runner.max_iters))

    return RunStart()


def _eval_start_recorder(base: type, seen: list, kind: str) -> Any:
    """A hook recording, in before_run of a standalone validation or test, its loader's length."""

    class EvalStart(base):  # type: ignore[misc, valid-type]
        def before_run(self, runner) -> None:
            seen.append(len(getattr(runner, f"{kind}_dataloader")))

    return EvalStart()


@pytest.mark.parametrize("mode", ["val", "test"])
def test_before_run_sees_the_evaluation_loader_as_in_mmengine(tmp_path, mode):
    theirs: list = []
    run_mmengine(tmp_path / "mm", [_eval_start_recorder(MMHook, theirs, mode)], mode=mode)
    ours: list = []
    bridge = HookBridge(custom_hooks=[_eval_start_recorder(Hook, ours, mode)], work_dir=str(tmp_path / "lh"))
    run_mode(make_trainer(tmp_path, bridge), ToyModule(), "validate" if mode == "val" else "test")
    assert ours == theirs == [2]


def _seen_in_before_run(tmp_path, recorder: Callable[[type, list], Any], train_cfg: dict) -> tuple[list, list]:
    """What ``recorder``'s hook saw in before_run: (ours, MMEngine's), for 3 epochs or 10 iterations."""
    theirs: list = []
    run_mmengine(tmp_path / "mm", [recorder(MMHook, theirs)], train_cfg=train_cfg, infinite="max_iters" in train_cfg)
    ours: list = []
    bridge = HookBridge(custom_hooks=[recorder(Hook, ours)], work_dir=str(tmp_path / "lh"))
    if "max_iters" in train_cfg:
        length = dict(max_steps=10, max_epochs=-1, val_check_interval=4, check_val_every_n_epoch=None)
    else:
        length = dict(max_epochs=3)
    make_trainer(tmp_path, bridge, **length).fit(ToyModule(), *loaders())
    return ours, theirs


@pytest.mark.parametrize("train_cfg", [dict(by_epoch=True, max_epochs=3), dict(by_epoch=False, max_iters=10)])
def test_before_run_sees_the_training_loader_and_length_as_in_mmengine(tmp_path, train_cfg):
    ours, theirs = _seen_in_before_run(tmp_path, _run_start_recorder, train_cfg)
    expected = [(4, 2, 3, 12)] if "max_epochs" in train_cfg else [(4, 2, 1, 10)]
    assert ours == theirs == expected


def _lengths_recorder(base: type, seen: list) -> Any:
    """A hook reading the run's lengths in before_run before anything else loads the training data."""

    class Lengths(base):  # type: ignore[misc, valid-type]
        priority = "HIGHEST"

        def before_run(self, runner) -> None:
            seen.append((runner.max_iters, runner.train_loop.max_iters, runner.val_interval))

    return Lengths()


@pytest.mark.parametrize(
    "train_cfg", [dict(by_epoch=True, max_epochs=3), dict(by_epoch=False, max_iters=10, val_interval=4)]
)
def test_before_run_reads_the_lengths_as_in_mmengine(tmp_path, train_cfg):
    """Known without the training data: as in MMEngine. Epoch-based ``max_iters`` needs the data, which
    Lightning loads after before_run: -1 there (loading it early would lose a resumed loader's position
    and, read on one rank, hang DDP in Lightning's collective length check)."""
    ours, theirs = _seen_in_before_run(tmp_path, _lengths_recorder, train_cfg)
    if "max_epochs" in train_cfg:
        assert theirs == [(12, 12, 1)] and ours == [(-1, -1, 1)]
    else:
        assert ours == theirs == [(10, 10, 4)]


@pytest.mark.parametrize("read", ["get_lr", "param_schedulers"])
def test_optimizers_read_before_lightning_creates_them_is_an_error_that_says_when(tmp_path, read):
    """MMEngine builds its optimizer wrapper before before_run; Lightning calls configure_optimizers after it."""

    def look(runner):
        return runner.optim_wrapper.get_lr() if read == "get_lr" else runner.param_schedulers

    seen = []

    class Early(Hook):
        def before_run(self, runner):
            look(runner)

    class Later(Hook):
        def before_train(self, runner):
            seen.append(look(runner))

    module = ToyModule(scheduler=lambda optimizer: torch.optim.lr_scheduler.StepLR(optimizer, 1))
    with pytest.raises(RuntimeError, match=r"after before_run .* Read them from before_train on"):
        make_trainer(tmp_path, HookBridge(custom_hooks=[Early()]), max_epochs=1).fit(module, *loaders())
    make_trainer(tmp_path, HookBridge(custom_hooks=[Later()]), max_epochs=1).fit(module, *loaders())
    if read == "get_lr":
        assert seen == [{"lr": [0.1]}]
    else:
        assert [type(s).__name__ for s in seen[0]] == ["StepLR"]


@pytest.mark.parametrize("take_back", [False, True], ids=["stop", "stop-taken-back"])
def test_stop_training_inside_an_iteration_keeps_the_trainers_max_steps(tmp_path, messages, take_back):
    """Iteration-based: the fit ends after that iteration (MMEngine's reading); the Trainer's
    ``max_steps`` reads as set afterwards, and a stop taken back in the same iteration is no stop."""
    flags = []

    class Stop(Hook):
        def after_train_iter(self, runner, batch_idx, data_batch=None, outputs=None):
            if runner.iter + 1 == 6:
                runner.train_loop.stop_training = True
                flags.append(runner.train_loop.stop_training)
                if take_back:
                    runner.train_loop.stop_training = False
                    flags.append(runner.train_loop.stop_training)

    length = dict(max_steps=12, max_epochs=-1, val_check_interval=4, check_val_every_n_epoch=None)
    trainer = make_trainer(tmp_path, HookBridge(custom_hooks=[Stop()]), **length)
    trainer.fit(ToyModule(), *loaders())
    assert flags == ([True, False] if take_back else [True])
    assert trainer.global_step == (12 if take_back else 6)
    assert trainer.max_steps == 12
    said = [r.getMessage() for r in messages.records if r.getMessage().startswith("runner.train_loop")]
    ended = "runner.train_loop.stop_training: training ended after iteration 6 (Lightning reports it as max_steps=6 reached)"
    assert said == ([] if take_back else [ended])  # said once it happened, not when asked


class _Tunable(ToyModule):
    """The toy module with its own loaders, as Lightning's Tuner needs (``batch_size`` is what it scales)."""

    def __init__(self) -> None:
        super().__init__()
        self.batch_size = 3

    def train_dataloader(self):
        from toy import ToyDataset

        return DataLoader(ToyDataset(24), batch_size=self.batch_size)

    def val_dataloader(self):
        return loaders()[1]


@pytest.mark.parametrize("search", ["lr_find", "scale_batch_size"])
def test_a_tuner_search_is_not_a_run_of_the_hooks(tmp_path, search):
    """Lightning's Tuner runs a fit of its own, with its callbacks in place of the Trainer's: no log
    directory, no mount points. The fit that follows is the one run, equal to a fit without tuning."""
    from lightning.pytorch.tuner import Tuner

    def fit(work_dir, tune):
        log: list = []
        bridge = HookBridge(custom_hooks=[make_trace_hook(Hook, log)], work_dir=str(work_dir), print_hooks_table=False)
        trainer = make_trainer(work_dir, bridge, max_epochs=2, num_sanity_val_steps=0)
        module = _Tunable()
        if tune and search == "lr_find":
            Tuner(trainer).lr_find(module, num_training=5, update_attr=False)
        elif tune:
            Tuner(trainer).scale_batch_size(module, mode="power", max_trials=2)
            module.batch_size = 3
        trainer.fit(module)
        return log, module

    log, tuned = fit(tmp_path / "tuned", True)
    _, plain = fit(tmp_path / "plain", False)
    assert [entry[0] for entry in log].count("before_run") == 1
    assert len([p for p in (tmp_path / "tuned").iterdir() if p.is_dir()]) == 1  # the fit's log directory only
    for name, value in plain.state_dict().items():
        assert torch.equal(tuned.state_dict()[name], value)


@pytest.mark.parametrize("method", ["validate", "test"])
def test_a_tuner_search_in_an_evaluation_is_not_a_run_of_the_hooks(tmp_path, method):
    """``scale_batch_size(method=...)`` after a fit: no mount point fires, and its temporary checkpoint
    (written and restored by Lightning) leaves the trained weights as they are, EMAHook or not."""
    from lightning.pytorch.tuner import Tuner

    log: list = []
    bridge = HookBridge(
        custom_hooks=[make_trace_hook(Hook, log), dict(type="EMAHook", momentum=0.5)],
        default_hooks=dict(checkpoint=None),
        print_hooks_table=False,
    )
    trainer = make_trainer(tmp_path, bridge, max_epochs=2, num_sanity_val_steps=0)
    module = _Tunable()
    module.test_dataloader = module.val_dataloader
    trainer.fit(module)
    trained = {name: value.clone() for name, value in module.state_dict().items()}
    del log[:]
    Tuner(trainer).scale_batch_size(module, method=method, mode="power", init_val=2, max_trials=2)
    assert log == []
    for name, value in trained.items():
        assert torch.equal(module.state_dict()[name], value), name


class _Predicting(_Tunable):
    def predict_dataloader(self):
        return loaders()[1]

    def predict_step(self, batch, batch_idx):
        return None


def test_predict_with_a_checkpoint_after_fit_is_not_a_resume(tmp_path):
    """``predict(ckpt_path=...)`` on the Trainer that ran ``fit`` loads the file's weights as a fresh
    Trainer does, and a later ``fit`` on that Trainer numbers its epochs from the fit, not the file."""
    bridge = HookBridge(
        custom_hooks=[dict(type="EMAHook", momentum=0.5)],
        default_hooks=dict(checkpoint=dict(type="CheckpointHook", interval=1)),
        print_hooks_table=False,
    )
    trainer = make_trainer(tmp_path, bridge, max_epochs=2, num_sanity_val_steps=0)
    module = _Predicting()
    trainer.fit(module)
    saved = torch.load(tmp_path / "epoch_2.pth", weights_only=True)["state_dict"]
    trainer.predict(module, ckpt_path=str(tmp_path / "epoch_2.pth"))
    for name, value in saved.items():
        assert torch.equal(module.state_dict()[name], value), name
    trainer.fit_loop.max_epochs = 3
    trainer.fit(module)
    assert sorted(p.name for p in tmp_path.glob("epoch_*.pth")) == ["epoch_1.pth", "epoch_2.pth", "epoch_3.pth"]


def test_iteration_based_counters(tmp_path):
    seen = []

    class Look(Hook):
        def before_train(self, runner):
            seen.append((runner.max_epochs, runner.max_iters, runner.by_epoch))

    train, val = loaders()
    make_trainer(
        tmp_path,
        HookBridge(custom_hooks=[Look()]),
        max_steps=6,
        max_epochs=-1,
        accumulate_grad_batches=2,
        val_check_interval=4,
        check_val_every_n_epoch=None,
    ).fit(ToyModule(), train, val)
    assert seen == [(1, 12, False)]  # max_steps counts optimizer steps; max_iters counts batches


@pytest.mark.parametrize(
    ("trainer_kwargs", "max_iters", "saved"),
    [
        # 4 batches per epoch, 3 per step: Lightning also steps at each epoch's end, 2 steps an epoch
        (dict(max_steps=6, max_epochs=-1, accumulate_grad_batches=3, val_check_interval=5), 12, ["iter_12.pth"]),
        # max_epochs and max_steps: whichever ends first (here max_steps, in the third epoch)
        (dict(max_steps=10, max_epochs=5), 10, ["iter_10.pth", "iter_4.pth", "iter_8.pth"]),
    ],
    ids=["iteration-based-accumulate", "epochs-cut-by-max-steps"],
)
def test_max_iters_counts_the_batches_lightning_trains(tmp_path, trainer_kwargs, max_iters, saved):
    """``runner.max_iters`` is the batches the fit trains, so the last iteration is saved (``save_last``)."""
    log: list = []
    seen = []

    class Look(Hook):
        def before_train(self, runner):
            seen.append(runner.max_iters)

    checkpoint = dict(type="CheckpointHook", by_epoch=False, interval=100 if trainer_kwargs["max_epochs"] == -1 else 4)
    bridge = HookBridge(
        default_hooks=dict(checkpoint=checkpoint),
        custom_hooks=[Look(), make_trace_hook(Hook, log)],
        work_dir=str(tmp_path),
    )
    if trainer_kwargs.get("max_epochs") == -1:
        trainer_kwargs = dict(trainer_kwargs, check_val_every_n_epoch=None)
    train, val = loaders()
    make_trainer(tmp_path, bridge, **trainer_kwargs).fit(ToyModule(), train, val)
    assert seen == [max_iters]
    assert sum(entry[0] == "after_train_iter" for entry in log) == max_iters
    assert [f for f in files_in(tmp_path) if f.startswith("iter_")] == saved


class _GrowingData(ToyModule):
    """Training data that grows every epoch (4, 5, 6 batches), reloaded by Lightning each epoch."""

    def train_dataloader(self):
        return DataLoader(ToyDataset(12 + 3 * self.trainer.current_epoch), batch_size=3)

    def val_dataloader(self):
        return loaders()[1]


class _NoLength(torch.utils.data.IterableDataset):
    """The toy training data without a length (an epoch ends when it runs out)."""

    def __iter__(self):
        return iter(ToyDataset())


@pytest.mark.parametrize("data", ["reloaded each epoch", "without a length"])
def test_the_last_iteration_is_known_when_it_comes(tmp_path, data):
    """``runner.max_iters`` is right by the last iteration, so ``save_last`` saves it, when the loader is
    reloaded with another length every epoch or cannot tell its length."""
    seen: list = []

    class Look(Hook):
        def after_train_iter(self, runner, batch_idx, data_batch=None, outputs=None):
            seen.append((runner.iter + 1, runner.max_iters))

    checkpoint = dict(type="CheckpointHook", by_epoch=False, interval=4)
    bridge = HookBridge(default_hooks=dict(checkpoint=checkpoint), custom_hooks=[Look()], work_dir=str(tmp_path))
    if data == "reloaded each epoch":
        trainer = make_trainer(tmp_path, bridge, max_epochs=3, reload_dataloaders_every_n_epochs=1)
        trainer.fit(_GrowingData())
        last, saved = 15, ["iter_12.pth", "iter_15.pth", "iter_4.pth", "iter_8.pth"]
    else:
        trainer = make_trainer(tmp_path, bridge, max_epochs=2)
        trainer.fit(ToyModule(), DataLoader(_NoLength(), batch_size=3), loaders()[1])
        last, saved = 8, ["iter_4.pth", "iter_8.pth"]
    assert seen[-1] == (last, last)
    assert [f for f in files_in(tmp_path) if f.startswith("iter_")] == saved
    assert (tmp_path / "last_checkpoint").read_text().endswith(f"iter_{last}.pth")


class _StopAfter(pl.Callback):
    """Asks Lightning to stop once ``steps`` optimizer steps ran (as ``max_time`` or a user's callback would)."""

    def __init__(self, steps: int) -> None:
        self.steps = steps

    def on_train_batch_end(self, trainer, pl_module, outputs, batch, batch_idx) -> None:
        trainer.should_stop = trainer.should_stop or trainer.global_step >= self.steps


def test_training_until_stopped_has_no_length_and_runs_every_hook(tmp_path, messages):
    """``Trainer(max_epochs=-1)`` without ``max_steps``: Lightning trains until stopped. The lengths are -1
    (unknown), and hooks that check against them (EMAHook's ``begin_*``) skip the check instead of failing."""
    seen = []

    class Look(Hook):
        def before_train(self, runner):
            seen.append((runner.max_epochs, runner.max_iters, runner.by_epoch))

    bridge = HookBridge(
        default_hooks=dict(logger=dict(type="LoggerHook", interval=2)),
        custom_hooks=[Look(), dict(type="EMAHook", begin_epoch=1)],
        work_dir=str(tmp_path),
    )
    trainer = make_trainer(tmp_path, bridge, callbacks=[bridge, _StopAfter(10)], max_epochs=-1)
    trainer.fit(ToyModule(), *loaders())
    assert seen == [(-1, -1, True)]
    assert trainer.global_step == 10 and bridge.runner.epoch == 3
    train_lines = [r.getMessage() for r in messages.records if r.getMessage().startswith("Epoch(train)")]
    assert "Epoch(train) [1][2/4]  lr:" in train_lines[0] and "Epoch(train) [3][2/4]  lr:" in train_lines[-1]
    assert not any("eta:" in line for line in train_lines)  # no end to count down to
    assert files_in(tmp_path) == ["epoch_1.pth", "epoch_2.pth", "epoch_3.pth", "last_checkpoint"]


def test_mmengine_runner_smoke_for_reference(tmp_path):
    """The reference Runner itself runs here (guards the conformance tests' premise)."""
    runner = run_mmengine(tmp_path, [])
    assert runner.iter == 8 and runner.epoch == 2


def test_use_hooks_runs_one_hook_alone(tmp_path):
    from lightning_hooks import use_hooks

    calls = []

    class One(Hook):
        def after_train_epoch(self, runner):
            calls.append(runner.epoch)

    bridge = use_hooks(One())
    assert [type(h).__name__ for h in bridge.hooks] == ["RuntimeInfoHook", "One"]
    assert [type(h).__name__ for h in use_hooks(One(), runtime_info=False).hooks] == ["One"]
    train, val = loaders()
    make_trainer(tmp_path, bridge, max_epochs=2).fit(ToyModule(), train, val)
    assert calls == [0, 1]
    assert not list(tmp_path.glob("*.pth"))  # no CheckpointHook


def test_iteration_based_training_gets_iteration_log_lines_by_default(tmp_path, capsys):
    train, val = loaders()
    trainer = make_trainer(
        tmp_path,
        HookBridge(default_hooks=dict(logger=dict(type="LoggerHook", interval=5))),
        max_steps=10,
        max_epochs=-1,
        val_check_interval=5,
        check_val_every_n_epoch=None,
    )
    trainer.fit(ToyModule(), train, val)
    out = capsys.readouterr().out
    assert "Iter(train) [ 5/10]" in out and "Iter(train) [10/10]" in out
    assert "Epoch(train)" not in out


def test_log_lines_survive_a_logging_config_that_disables_existing_loggers(tmp_path, capsys):
    import logging.config

    from lightning_hooks.runner import get_logger

    get_logger()  # the logger exists before the third-party config runs
    logging.config.dictConfig({"version": 1, "disable_existing_loggers": True})
    train, val = loaders()
    make_trainer(tmp_path, HookBridge(), max_epochs=1).fit(ToyModule(), train, val)
    assert "Saving checkpoint at 1 epochs" in capsys.readouterr().out


class _WeightsAcrossValidation(pl.Callback):
    """The largest change of any weight between the end of an epoch's training and the next epoch's first batch."""

    def __init__(self) -> None:
        self.snapshot: list[torch.Tensor] = []
        self.changes: list[float] = []

    def on_train_batch_end(self, trainer: Any, module: Any, *args: Any) -> None:
        self.snapshot = [p.detach().clone() for p in module.parameters()]

    def on_train_batch_start(self, trainer: Any, module: Any, batch: Any, batch_idx: int) -> None:
        if self.snapshot and batch_idx == 0:
            self.changes.append(
                max((p - s).abs().max().item() for p, s in zip(module.parameters(), self.snapshot, strict=True))
            )


def test_lightning_weight_averaging_beside_ema_hook_is_refused(tmp_path):
    """Swapped in and out in the callbacks' order, two averages overwrite the training weights: shown, then refused."""
    from lightning.pytorch.callbacks import EMAWeightAveraging

    train, val = loaders()
    probe = _WeightsAcrossValidation()
    averaging = EMAWeightAveraging()
    bridge = HookBridge(default_hooks={"checkpoint": None}, custom_hooks=[dict(type="EMAHook", momentum=0.5)])
    trainer = make_trainer(tmp_path / "a", bridge, max_epochs=2, callbacks=[probe, averaging, bridge])
    with pytest.MonkeyPatch.context() as patch:  # what happened before the check existed
        patch.setattr(bridge_checks, "refuse_overlapping_callbacks", lambda trainer, hook_list: None)
        trainer.fit(ToyModule(), train, val)
    assert max(probe.changes) > 1e-3  # validation changed the training weights

    for callbacks in ([bridge, averaging], [averaging, bridge]):
        bridge = HookBridge(default_hooks={"checkpoint": None}, custom_hooks=[dict(type="EMAHook")])
        callbacks = [bridge if isinstance(c, HookBridge) else c for c in callbacks]
        trainer = make_trainer(tmp_path / "b", bridge, max_epochs=1, callbacks=callbacks)
        with pytest.raises(ValueError, match="EMAHook and Lightning's EMAWeightAveraging would both swap"):
            trainer.fit(ToyModule(), train, val)
    plain = HookBridge(default_hooks={"checkpoint": None})  # without EMAHook, Lightning's averaging is welcome
    make_trainer(tmp_path / "c", plain, max_epochs=1, callbacks=[EMAWeightAveraging(), plain]).fit(
        ToyModule(), train, val
    )


def test_an_error_while_setting_up_leaves_no_log_file_open(tmp_path, monkeypatch):
    """The run's log file is opened before the other checks of ``setup``; a failure there closes it."""
    import logging

    def fail(trainer: Any, hook_list: Any) -> None:
        raise RuntimeError("a check failed")

    def file_handlers() -> list[str]:
        return [h.baseFilename for h in logging.getLogger("lightning_hooks").handlers if hasattr(h, "baseFilename")]

    before = file_handlers()
    monkeypatch.setattr(bridge_checks, "warn_implicit_max_epochs", fail)
    train, val = loaders()
    with pytest.raises(RuntimeError, match="a check failed"):
        make_trainer(tmp_path, HookBridge(), max_epochs=1).fit(ToyModule(), train, val)
    assert file_handlers() == before


def test_warns_when_stochastic_weight_averaging_beside_ema_hook(tmp_path, capsys):
    from lightning.pytorch.callbacks import StochasticWeightAveraging

    train, val = loaders()
    bridge = HookBridge(default_hooks={"checkpoint": None}, custom_hooks=[dict(type="EMAHook")])
    swa = StochasticWeightAveraging(swa_lrs=0.05)
    make_trainer(tmp_path, bridge, max_epochs=1, callbacks=[bridge, swa]).fit(ToyModule(), train, val)
    assert "Both EMAHook and Lightning's StochasticWeightAveraging average the weights" in capsys.readouterr().out


def test_warns_when_lightning_checkpointing_also_saves(tmp_path, capsys):
    train, val = loaders()
    make_trainer(tmp_path / "a", HookBridge(), max_epochs=1, enable_checkpointing=True).fit(ToyModule(), train, val)
    assert "Both CheckpointHook and Lightning's ModelCheckpoint will save checkpoints" in capsys.readouterr().out
    make_trainer(tmp_path / "b", HookBridge(), max_epochs=1).fit(ToyModule(), train, val)  # enable_checkpointing=False
    assert "Both CheckpointHook" not in capsys.readouterr().out
    make_trainer(
        tmp_path / "c", HookBridge(default_hooks={"checkpoint": None}), max_epochs=1, enable_checkpointing=True
    ).fit(ToyModule(), train, val)
    assert "Both CheckpointHook" not in capsys.readouterr().out


def test_mmengine_runner_attributes_without_a_counterpart_say_where_their_job_is(tmp_path):
    """A hook ported from MMEngine that reaches for runner.visualizer learns where that job is done."""
    seen: dict[str, Any] = {}

    class Reach(Hook):
        def before_train(self, runner):
            seen["model_name"] = runner.model_name
            seen["hasattr"] = hasattr(runner, "visualizer")
            seen["hooks_info"] = runner.get_hooks_info()
            for name in ("visualizer", "val_evaluator", "load_checkpoint", "register_hook", "no_such_thing"):
                try:
                    getattr(runner, name)
                except AttributeError as error:
                    seen[name] = str(error)

    make_trainer(tmp_path, HookBridge(custom_hooks=[Reach()]), max_epochs=1).fit(ToyModule(), *loaders())
    assert seen["model_name"] == "ToyModule" and seen["hasattr"] is False
    assert "no counterpart under Lightning" in seen["visualizer"] and "LoggerHook" in seen["visualizer"]
    assert "validation_step" in seen["val_evaluator"] and "LoadFromHook" in seen["load_checkpoint"]
    assert "HookBridge(custom_hooks=" in seen["register_hook"]
    assert "\n(NORMAL      ) Reach" in seen["hooks_info"].split("before_train:")[1].split("--")[0]  # MMEngine's table
    assert seen["no_such_thing"] == "'RunnerView' object has no attribute 'no_such_thing'"


def test_a_new_trainer_starts_a_new_run_and_a_second_fit_goes_on(tmp_path):
    """A bridge reused by a new Trainer starts afresh, as a new MMEngine Runner does: the earlier run's
    kept checkpoints and best score decide nothing (none of its files is deleted, a best is saved).
    A second fit of the same Trainer continues the first: its kept checkpoints still rotate."""
    checkpoint = dict(type="CheckpointHook", interval=1, max_keep_ckpts=2, save_best="acc", rule="greater")
    bridge = HookBridge(default_hooks=dict(checkpoint=checkpoint))
    train, val = loaders()
    first = make_trainer(tmp_path / "a", bridge, max_epochs=3)
    first.fit(ToyModule(), train, val)
    assert {"epoch_2.pth", "epoch_3.pth"} <= set(files_in(tmp_path / "a"))
    assert "epoch_1.pth" not in files_in(tmp_path / "a")

    make_trainer(tmp_path / "a", bridge, max_epochs=1).fit(ToyModule(), train, val)
    assert {"epoch_1.pth", "epoch_2.pth", "epoch_3.pth"} <= set(files_in(tmp_path / "a"))
    make_trainer(tmp_path / "b", bridge, max_epochs=1).fit(ToyModule(), train, val)
    assert "best_acc_epoch_1.pth" in files_in(tmp_path / "b")

    first.fit_loop.max_epochs = 4
    first.fit(ToyModule(), train, val)
    assert "epoch_4.pth" in files_in(tmp_path / "a")
    assert "epoch_3.pth" in files_in(tmp_path / "a") and "epoch_2.pth" not in files_in(tmp_path / "a")
