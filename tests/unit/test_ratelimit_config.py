"""Rate-limit specs, targets and the overrides cache (an in-memory hash, an injected clock)."""

from __future__ import annotations

from typing import Any, cast

import pytest
from hypothesis import given
from hypothesis import strategies as st

from worker.resilience import limits_config
from worker.resilience.limits_config import (
    LimitsConfig,
    LimitSpecError,
    LimitTarget,
    Window,
    format_spec,
    parse,
)


@pytest.mark.parametrize(
    ("spec", "windows"),
    [
        ("25/h", (Window(3600, 25),)),
        ("25/h,5/m", (Window(60, 5), Window(3600, 25))),
        (" 5/m , 25/h ", (Window(60, 5), Window(3600, 25))),
        ("20/2s", (Window(2, 20),)),
        ("100/15m,1000/d", (Window(900, 100), Window(86400, 1000))),
    ],
)
def test_a_spec_parses_to_windows_shortest_first(spec: str, windows: tuple[Window, ...]) -> None:
    assert parse(spec) == windows


@pytest.mark.parametrize(
    ("spec", "message"),
    [
        ("30/x", "30/x: unknown unit 'x'; use s, m, h, d"),
        ("", "empty spec; expected COUNT/UNIT such as 25/h, or 25/h,5/m"),
        ("30", "'30': expected COUNT/UNIT such as 25/h or 20/2s"),
        ("many/h", "many/h: count 'many' is not a whole number"),
        ("-1/h", "-1/h: count '-1' is not a whole number"),
        ("0/h", "0/h: count must be at least 1"),
        ("10001/h", "10001/h: count must be at most 10000 per window"),
        ("5/8d", "5/8d: the window must be between 1 s and 7d"),
        ("5/0s", "5/0s: the window must be between 1 s and 7d"),
        ("5/m,6/60s", "5/m,6/60s: two limits for one 60 s window; give one"),
        ("25/h,", "'': expected COUNT/UNIT such as 25/h or 20/2s"),
    ],
)
def test_a_bad_spec_is_refused_with_what_is_wrong(spec: str, message: str) -> None:
    with pytest.raises(LimitSpecError) as raised:
        parse(spec)
    assert str(raised.value) == message


@pytest.mark.parametrize(
    ("window", "text"),
    [(Window(3600, 25), "25/h"), (Window(7200, 3), "3/2h"), (Window(90, 1), "1/90s")],
)
def test_a_window_prints_in_its_largest_whole_unit(window: Window, text: str) -> None:
    assert str(window) == text


@given(
    st.dictionaries(
        st.integers(1, limits_config.MAX_WINDOW_S),
        st.integers(1, limits_config.MAX_COUNT),
        min_size=1,
    )
)
def test_the_canonical_spec_parses_back_to_the_same_windows(by_length: dict[int, int]) -> None:
    windows = tuple(sorted(Window(seconds, limit) for seconds, limit in by_length.items()))
    assert parse(format_spec(windows)) == windows


def test_targets_name_their_hash_field_and_unknown_platforms_are_refused() -> None:
    assert LimitTarget("instagram", "app").field == "instagram:app"
    assert LimitTarget("instagram", "account").field == "instagram:account"
    assert LimitTarget("youtube", "account", "a1").field == "youtube:account:a1"
    assert LimitTarget.from_field("youtube:account:a1") == LimitTarget("youtube", "account", "a1")
    with pytest.raises(LimitSpecError, match="unknown platform 'tiktok'; use instagram"):
        LimitTarget("tiktok", "app")


def test_the_off_switch_reads_the_setting(monkeypatch: pytest.MonkeyPatch) -> None:
    from worker import runtime

    for value, expected in ((None, True), ("OFF", False), ("off", False), ("on", True)):
        if value is None:
            monkeypatch.delenv(limits_config.ENV_SWITCH, raising=False)
        else:
            monkeypatch.setenv(limits_config.ENV_SWITCH, value)
        runtime.reset()
        assert limits_config.enabled() is expected
    monkeypatch.undo()
    runtime.reset()


class FakeHash:
    """The three hash commands LimitsConfig uses, counting reads."""

    def __init__(self) -> None:
        self.fields: dict[str, str] = {}
        self.reads = 0

    def hgetall(self, key: str) -> dict[str, str]:
        self.reads += 1
        return dict(self.fields)

    def hset(self, key: str, field: str, value: str) -> int:
        self.fields[field] = value
        return 1

    def hdel(self, key: str, field: str) -> int:
        return 1 if self.fields.pop(field, None) is not None else 0


class Clock:
    def __init__(self) -> None:
        self.now = 100.0

    def __call__(self) -> float:
        return self.now


@pytest.fixture
def store() -> FakeHash:
    return FakeHash()


@pytest.fixture
def clock() -> Clock:
    return Clock()


@pytest.fixture
def config(store: FakeHash, clock: Clock) -> LimitsConfig:
    return LimitsConfig(cast(Any, store), "ns:rl:config", cache_seconds=2.0, clock=clock)


def test_defaults_apply_without_overrides(config: LimitsConfig) -> None:
    assert config.windows("instagram", "a1") == (parse("200/h"), parse("25/h"))
    assert config.windows("facebook", None) == (parse("200/h"), None)
    assert config.resolve(LimitTarget("youtube", "account", "a1")).source == "default"
    assert config.resolve(LimitTarget("youtube", "account")).spec == "10/h"


def test_an_account_override_beats_the_platform_override_which_beats_the_default(
    config: LimitsConfig,
) -> None:
    config.set(LimitTarget("instagram", "account"), parse("30/h"))
    assert config.windows("instagram", "a1")[1] == parse("30/h")
    assert config.resolve(LimitTarget("instagram", "account", "a1")).source == "platform override"
    config.set(LimitTarget("instagram", "account", "a1"), parse("5/m,20/h"))
    assert config.windows("instagram", "a1")[1] == parse("5/m,20/h")
    assert config.windows("instagram", "a2")[1] == parse("30/h")
    assert config.resolve(LimitTarget("instagram", "account", "a1")).source == "override"


def test_another_process_change_is_seen_once_the_cache_is_stale(
    config: LimitsConfig, store: FakeHash, clock: Clock
) -> None:
    assert config.windows("facebook", "a1")[1] == parse("50/h")
    store.fields["facebook:account"] = "7/m"  # as `herald limits set` elsewhere would
    clock.now += 1.9
    assert config.windows("facebook", "a1")[1] == parse("50/h")
    assert store.reads == 1
    clock.now += 0.2
    assert config.windows("facebook", "a1")[1] == parse("7/m")
    assert store.reads == 2


def test_reset_returns_what_it_removed_and_none_when_there_was_nothing(
    config: LimitsConfig,
) -> None:
    target = LimitTarget("youtube", "app")
    before = config.set(target, parse("6/d"))
    assert (before.spec, before.source) == ("60/h", "default")
    removed = config.reset(target)
    assert removed is not None
    assert removed.spec == "6/d"
    assert config.reset(target) is None
    assert config.resolve(target).spec == "60/h"


def test_a_malformed_override_in_redis_is_ignored_not_fatal(
    config: LimitsConfig, store: FakeHash
) -> None:
    store.fields.update({"instagram:app": "lots/h", "nonsense": "5/m", "tiktok:app": "5/m"})
    assert config.windows("instagram", None) == (parse("200/h"), None)
    assert config.overrides() == {}


def test_unknown_platform_is_refused_by_the_hot_path(config: LimitsConfig) -> None:
    with pytest.raises(LimitSpecError, match="unknown platform"):
        config.windows("myspace", "a1")
