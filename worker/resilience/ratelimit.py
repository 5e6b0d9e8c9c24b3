"""Global rate limits: one atomic Redis call decides for every worker process and host.

Algorithm: an **exact sliding log** (``ratelimit.lua``). Each scope keeps a sorted set
of its admission times (Redis ``TIME``, µs); a window (L per W) admits at ``t`` iff
fewer than L entries lie in ``(t - W, t]``. Hence *no* interval of length W, wherever
it starts, ever holds more than L admissions, for every window of every scope at once
— the acceptance test ("never more than 5 publishes in any 60 s window") exactly.
Rejected alternatives: GCRA with burst L admits L at once and then one every W/L, so
up to 2L - 1 land in some W-long interval (GCRA bounds a rate, not a window count);
GCRA with burst 1 is exact but spaces posts W/L apart (12 s at 5/min, 2.4 min at
25/h) when users schedule bursts; an approximate (two-counter) sliding window can
over-admit by design. The log costs one sorted-set entry per admission within the
longest window (a spec allows at most 10,000 per window) and O(log n) per check —
trivial at publish rates. One clock (Redis's) means no skew between hosts.

Scopes: every ``acquire(platform, account_id)`` checks the platform's app-wide cap
and the account's own limit together, each with all its windows (e.g. 25/h and 5/m);
it is admitted only if all admit, and a refused request changes nothing. A decision
says ``allowed``, ``remaining`` (the smallest remaining across windows) and
``retry_after`` (seconds until every window admits). What the platform says wins too:
``penalize`` (or ``feedback`` with the platform's error) blocks a scope until the
platform's ``Retry-After``, and the same Lua call honours the block.

Keys: ``<namespace>:rl:{<platform>}:app`` and ``...:acct:<account id>`` (logs, TTL =
the longest window) with ``:block`` twins (TTL = the block); the ``{platform}`` hash
tag keeps one call's keys in one Redis Cluster slot. Redis errors propagate: the
limiter never admits what it could not count. Windows and overrides:
:mod:`worker.resilience.limits_config`. ``HERALD_RATE_LIMITS=off`` admits everything.

Caveat: logs are trimmed to the longest window in force; after an operator lengthens
a window (25/h -> 25/d), admissions older than the old longest window are not counted.
"""

from __future__ import annotations

import functools
import itertools
import os
import secrets
import time
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Final, cast
from uuid import UUID

import redis
import structlog
from redis.commands.core import Script

from worker import runtime
from worker.constants import (
    KEY_RATELIMIT,
    KEY_RATELIMIT_ACCOUNT,
    KEY_RATELIMIT_APP,
    KEY_RATELIMIT_BLOCK,
    KEY_RATELIMIT_CONFIG,
)
from worker.platforms.errors import (
    DEFAULT_RETRY_AFTER_S,
    PlatformError,
    PlatformUsage,
    RateLimitedError,
)
from worker.resilience import limits_config
from worker.resilience.limits_config import Kind, LimitsConfig, Windows

log = structlog.get_logger(__name__)

#: Key part under the namespace for everything the limiter stores.
KEY_PREFIX: Final = KEY_RATELIMIT
#: ``remaining`` reported while limits are off.
UNLIMITED: Final = 1_000_000_000
#: Longest block a platform answer can impose (s): YouTube's upload limit is a day.
MAX_PENALTY_S: Final = 2 * 86400.0
#: Platform error codes that throttle the whole app, not one account: Graph's app
#: limit (4) and Google's per-project quota reasons.
APP_WIDE_CODES: Final = frozenset({4, "quotaExceeded", "dailyLimitExceeded"})
#: The decision script (KEYS and ARGV are described at its top).
SCRIPT: Final = Path(__file__).with_name("ratelimit.lua").read_text()

AccountId = str | UUID | None
#: One script call: the number of keys, then keys and arguments.
Call = tuple[int, *tuple[str, ...]]


@dataclass(frozen=True, slots=True)
class RateDecision:
    """One answer. ``at_us`` is Redis's clock (µs since the epoch) when it was made."""

    allowed: bool
    remaining: int
    retry_after: float
    at_us: int

    @property
    def at(self) -> float:
        """Redis time of the decision in seconds since the epoch."""
        return self.at_us / 1e6


def _new_tag() -> str:
    return f"{os.getpid():x}.{secrets.token_hex(3)}."


#: This process's tag prefix (worker.runtime: a forked child draws a fresh one).
_tag_prefix = runtime.cached("rate-limit log tag", _new_tag)


class _Tags:
    """Log members must be unique across callers: pid + random, fresh after fork."""

    counter = itertools.count()

    @classmethod
    def next(cls) -> str:
        return f"{_tag_prefix()}{next(cls.counter)}"


def _us(seconds: float) -> int:
    return round(seconds * 1_000_000)


class RateLimiter:
    """Decisions for ``(platform, account)``; cheap to call, safe from any process."""

    def __init__(self, client: redis.Redis, prefix: str, config: LimitsConfig | None = None):
        self.redis = client
        self.prefix = prefix
        self.config = config or LimitsConfig(client, f"{prefix}:{KEY_RATELIMIT_CONFIG}")

    @functools.cached_property
    def script(self) -> Script:
        """The decision script on this client: redis-py loads it on NOSCRIPT (a server
        that never saw it, or restarted), also in pipelines. Made on first use, so a
        limiter that is off never touches Redis."""
        return self.redis.register_script(SCRIPT)

    def keys(self, platform: str, kind: Kind, account_id: AccountId = None) -> tuple[str, str]:
        """The (log, block) keys of a scope: the app-wide cap, or one account."""
        scope = (KEY_RATELIMIT_APP,) if kind == "app" else (KEY_RATELIMIT_ACCOUNT, str(account_id))
        base = ":".join((self.prefix, f"{{{platform}}}", *scope))
        return base, f"{base}:{KEY_RATELIMIT_BLOCK}"

    def acquire(self, platform: str, account_id: AccountId) -> RateDecision:
        """Take one slot in the app-wide cap and (with an account) the account's limit.

        Refused: nothing is taken; wait ``retry_after`` seconds. ``account_id=None``
        checks the app-wide cap only. Unknown platform: ``LimitSpecError``.
        """
        if not limits_config.enabled():
            return _unlimited()
        return decision_from_reply(self._eval(self._call("acquire", platform, account_id)))

    def acquire_many(self, requests: Iterable[tuple[str, AccountId]]) -> list[RateDecision]:
        """``acquire`` for each ``(platform, account_id)`` in one pipelined round trip
        (after redis-py's ``SCRIPT EXISTS`` check, one per batch).

        Each is its own atomic decision, in order (a later one sees earlier admissions).
        """
        if not limits_config.enabled():
            return [_unlimited() for _ in requests]
        calls = [self._call("acquire", p, a) for p, a in requests]
        with self.redis.pipeline(transaction=False) as pipe:
            for call in calls:
                self.script(*_split(call), client=pipe)
            # The pipeline makes sure the script is loaded before it sends the batch.
            replies: list[Any] = pipe.execute(raise_on_error=False)
        for reply in replies:
            if isinstance(reply, Exception):
                raise reply
        return [decision_from_reply(reply) for reply in replies]

    def peek(
        self, platform: str, account_id: AccountId, *, only: Kind | None = None
    ) -> RateDecision:
        """What ``acquire`` would answer now, taking nothing (``only``: one scope)."""
        if not limits_config.enabled():
            return _unlimited()
        return decision_from_reply(self._eval(self._call("peek", platform, account_id, only=only)))

    def penalize(self, platform: str, account_id: AccountId, retry_after_s: float) -> float:
        """Block the account (or, with ``account_id=None``, the whole platform) for
        ``retry_after_s`` seconds; a longer block in place stays. Returns the seconds
        the scope is now blocked for (0.0 when limits are off or the time is <= 0)."""
        seconds = min(retry_after_s, MAX_PENALTY_S)
        if not limits_config.enabled() or not seconds > 0:
            return 0.0
        limits_config.check_platform(platform)
        kind: Kind = "app" if account_id is None else "account"
        keys = self.keys(platform, kind, account_id)
        until, now = self._eval((2, *keys, "penalize", str(_us(seconds))))
        log.warning("ratelimit.penalized", platform=platform, scope=kind, seconds=seconds)
        return (int(until) - int(now)) / 1e6

    def feedback(
        self,
        platform: str,
        account_id: AccountId,
        *,
        error: PlatformError | None = None,
        usage: PlatformUsage | None = None,
    ) -> float:
        """Obey the platform: a throttling error or usage at 100 % blocks the scope it names.

        Graph code 4 and Google project-quota reasons block the platform; other
        throttling (429, Graph 17/32/613/80000-range, per-user reasons) and usage
        headers block the account. Returns the seconds blocked (0.0: nothing to obey).
        """
        usage = usage or (error.usage if error is not None else None)
        if isinstance(error, RateLimitedError):
            scope = None if error.code in APP_WIDE_CODES else account_id
            return self.penalize(platform, scope, error.retry_after)
        if usage is not None and usage.usage_percent >= 100:
            wait = usage.regain_access_s or DEFAULT_RETRY_AFTER_S
            return self.penalize(platform, account_id, wait)
        return 0.0

    def _call(
        self, mode: str, platform: str, account_id: AccountId, *, only: Kind | None = None
    ) -> Call:
        app, account = self.config.windows(platform, _text(account_id))
        scopes: list[tuple[tuple[str, str], Windows]] = []
        if only != "account":
            scopes.append((self.keys(platform, "app"), app))
        if account is not None and only != "app":
            scopes.append((self.keys(platform, "account", account_id), account))
        keys = [key for pair, _ in scopes for key in pair]
        args = [mode, _Tags.next() if mode == "acquire" else ""]
        for _, windows in scopes:
            args.append(str(len(windows)))
            for window in windows:
                args += (str(window.limit), str(window.seconds * 1_000_000))
        return (len(keys), *(keys + args))

    def _eval(self, call: Call) -> list[Any]:
        """One script call, one EVALSHA (plus a load on NOSCRIPT)."""
        return cast("list[Any]", self.script(*_split(call)))


def _split(call: Call) -> tuple[tuple[str, ...], tuple[str, ...]]:
    """A call's (keys, args)."""
    numkeys = call[0]
    keys, args = call[1 : numkeys + 1], call[numkeys + 1 :]
    return cast("tuple[str, ...]", keys), cast("tuple[str, ...]", args)


def decision_from_reply(reply: Sequence[Any]) -> RateDecision:
    """The script's ``{allowed, remaining, retry_after µs, now µs}`` as a :class:`RateDecision`."""
    allowed, remaining, wait_us, now_us = (int(value) for value in reply)
    return RateDecision(bool(allowed), remaining, wait_us / 1e6, now_us)


def _unlimited() -> RateDecision:
    return RateDecision(True, UNLIMITED, 0.0, time.time_ns() // 1000)


def _text(account_id: AccountId) -> str | None:
    return None if account_id is None else str(account_id)


def _build_limiter() -> RateLimiter:
    from worker.coordination.redis_client import get_redis
    from worker.settings import get_settings

    return RateLimiter(get_redis(), get_settings().key(KEY_PREFIX))


#: This process's limiter (worker.runtime: rebuilt with the Redis client, on reset and
#: after fork; its config cache goes with it).
get_limiter = runtime.cached("rate limiter", _build_limiter)
