"""Priority and registry, checked against MMEngine's own implementations."""

from __future__ import annotations

import pytest
from mmengine.runner import Priority as MMPriority
from mmengine.runner import get_priority as mm_get_priority

from lightning_hooks import HOOKS, Hook, Priority, Registry, get_priority


def test_priority_values_match_mmengine():
    assert {p.name: p.value for p in Priority} == {p.name: p.value for p in MMPriority}


@pytest.mark.parametrize("value", [0, 1, 50, 100, True, "normal", "HIGHEST", "Very_Low", Priority.LOW])
def test_get_priority_matches_mmengine(value):
    mm_value = MMPriority[value.name] if isinstance(value, Priority) else value
    assert get_priority(value) == mm_get_priority(mm_value)


@pytest.mark.parametrize(
    ("value", "error", "mm_error"),
    [
        (-1, ValueError, ValueError),
        (101, ValueError, ValueError),
        ("unknown", KeyError, KeyError),
        (1.5, TypeError, TypeError),
    ],
)
def test_bad_priorities_raise_like_mmengine_with_clear_messages(value, error, mm_error):
    with pytest.raises(mm_error):
        mm_get_priority(value)
    with pytest.raises(error) as info:
        get_priority(value)
    assert repr(value) in str(info.value)
    if isinstance(value, str):
        assert "NORMAL" in str(info.value)  # lists the valid names


def test_register_as_decorator_call_list_and_force():
    reg = Registry("thing")

    @reg.register_module()
    class A:
        pass

    @reg.register_module(name=["B1", "B2"])
    class B:
        pass

    reg.register_module(name="C", module=A)
    assert reg.get("A") is A and reg.get("B1") is B and reg.get("B2") is B and reg.get("C") is A
    with pytest.raises(KeyError, match="already registered"):
        reg.register_module(module=A)
    reg.register_module(name="A", force=True, module=B)
    assert reg.get("A") is B
    assert reg.get("scope.B1") is B


def test_build_keeps_callers_dict_and_accepts_classes():
    reg = Registry("thing")

    @reg.register_module()
    class Point:
        def __init__(self, x, y=0):
            self.x, self.y = x, y

    cfg = dict(type="Point", x=1)
    p = reg.build(cfg, default_args=dict(y=5))
    assert (p.x, p.y) == (1, 5) and cfg == dict(type="Point", x=1)
    assert reg.build(dict(type=Point, x=2)).x == 2


def test_unknown_type_lists_names_and_suggests_closest():
    with pytest.raises(KeyError) as info:
        HOOKS.build(dict(type="CheckpointHok"))
    message = str(info.value)
    assert "CheckpointHok" in message and "Did you mean 'CheckpointHook'" in message
    assert "RuntimeInfoHook" in message  # the registered names are listed


def test_build_errors_name_the_problem():
    with pytest.raises(KeyError, match='"type"'):
        HOOKS.build(dict(interval=1))
    with pytest.raises(TypeError, match=r"IterTimerHook.*no_such_argument"):
        HOOKS.build(dict(type="IterTimerHook", no_such_argument=1))


def test_every_registered_name_of_the_issue_exists():
    for name in [
        "RuntimeInfoHook",
        "IterTimerHook",
        "DistSamplerSeedHook",
        "LoggerHook",
        "ParamSchedulerHook",
        "CheckpointHook",
        "EMAHook",
        "EmptyCacheHook",
        "SyncBuffersHook",
        "ProfilerHook",
        "EarlyStoppingHook",
        "CheckInvalidLossHook",
    ]:
        assert name in HOOKS, name
        assert issubclass(HOOKS.get(name), Hook)
