"""What the rate limiter enforces: window specs, defaults, and run-time overrides.

A *spec* is one or more comma-separated windows ``COUNT/[N]UNIT`` with units ``s``,
``m``, ``h``, ``d``: ``25/h``, ``25/h,5/m``, ``20/2s``. A request is admitted only if
every window admits it. :func:`parse` turns a spec into :class:`Window` tuples and
says exactly what is wrong with a bad one; :func:`format_spec` writes the canonical
form back (shortest window first).

Each platform has two *scopes*: the app-wide cap (one key shared by every account of
the platform: the platform's limit on our app) and the per-account limit. A
:class:`LimitTarget` names what an operator configures: a platform's app-wide cap, its
per-account default, or one account. An account's windows are its own override,
else the platform's per-account override, else :data:`ACCOUNT_DEFAULTS`.

Overrides live in one Redis hash (``<namespace>:rl:config``: field = target, value =
canonical spec) so ``herald limits set`` reaches every worker on every host without a
restart. :class:`LimitsConfig` reads the whole hash at most once per
:data:`CACHE_SECONDS` per process; a change therefore takes effect everywhere within
that time. A malformed value in the hash (written by hand) is logged and ignored: the
default applies, the publish path never crashes on it.

``HERALD_RATE_LIMITS=off`` (read from the environment on every decision; see
:func:`enabled`) switches limiting off for benchmarks and tests.
"""

from __future__ import annotations

import itertools
import re
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Final, Literal

import redis
import structlog

from worker.constants import PLATFORMS
from worker.errors import RefusedError

log = structlog.get_logger(__name__)

#: Environment switch: ``off`` (any case) disables rate limiting; anything else keeps it on.
#: Seconds a process trusts its copy of the overrides hash; bounds how long a change takes.
CACHE_SECONDS: Final = 2.0
#: Unit letter -> seconds.
UNITS: Final = {"s": 1, "m": 60, "h": 3600, "d": 86400}
#: Largest count per window a spec may give: the exact log keeps one entry per admission.
MAX_COUNT: Final = 10_000
#: Longest window a spec may give (seconds): a week.
MAX_WINDOW_S: Final = 7 * 86400
#: Per-account limits (the issue's figures; Instagram's own publishing cap is per 24 h).
ACCOUNT_DEFAULTS: Final[Mapping[str, str]] = {
    "instagram": "25/h",
    "facebook": "50/h",
    "youtube": "10/h",
}
#: App-wide caps per platform, sized for the sandbox and small deployments. YouTube's real
#: default API quota (10,000 units/day, 1,600 per upload) allows ~6 uploads a day:
#: production should set ``herald limits set youtube --app 6/d``.
APP_DEFAULTS: Final[Mapping[str, str]] = {
    "instagram": "200/h",
    "facebook": "200/h",
    "youtube": "60/h",
}

Kind = Literal["app", "account"]
Source = Literal["default", "override", "platform override"]
Windows = tuple["Window", ...]

_PART = re.compile(r"^(?P<count>[^/]*)/(?P<mult>\d*)(?P<unit>.*)$")


class LimitSpecError(RefusedError, ValueError):
    """A spec, platform or target that cannot be used; the message says why."""


@dataclass(frozen=True, slots=True, order=True)
class Window:
    """At most ``limit`` admissions in any ``seconds``-long stretch of time."""

    seconds: int
    limit: int

    def __post_init__(self) -> None:
        if self.limit < 1 or self.seconds < 1:
            raise LimitSpecError(f"a window needs limit >= 1 and seconds >= 1, got {self!r}")

    def __str__(self) -> str:
        for unit, size in sorted(UNITS.items(), key=lambda item: -item[1]):
            if self.seconds % size == 0:
                count = self.seconds // size
                return f"{self.limit}/{'' if count == 1 else count}{unit}"
        raise AssertionError("unreachable: every length is a whole number of seconds")


def parse(spec: str) -> Windows:
    """``"25/h,5/m"`` -> windows, shortest first; :class:`LimitSpecError` names the problem."""
    parts = [part.strip() for part in spec.split(",")]
    if not any(parts):
        raise LimitSpecError("empty spec; expected COUNT/UNIT such as 25/h, or 25/h,5/m")
    windows = sorted(_parse_part(part) for part in parts)
    for shorter, longer in itertools.pairwise(windows):
        if shorter.seconds == longer.seconds:
            raise LimitSpecError(f"{spec}: two limits for one {shorter.seconds} s window; give one")
    return tuple(windows)


def _parse_part(part: str) -> Window:
    match = _PART.match(part)
    if not part or match is None:
        raise LimitSpecError(f"{part!r}: expected COUNT/UNIT such as 25/h or 20/2s")
    count, mult, unit = match["count"].strip(), match["mult"], match["unit"].strip()
    if not count.isdigit():
        raise LimitSpecError(f"{part}: count {count!r} is not a whole number")
    if unit not in UNITS:
        raise LimitSpecError(f"{part}: unknown unit {unit!r}; use s, m, h, d")
    limit, seconds = int(count), int(mult or 1) * UNITS[unit]
    if limit < 1:
        raise LimitSpecError(f"{part}: count must be at least 1")
    if limit > MAX_COUNT:
        raise LimitSpecError(f"{part}: count must be at most {MAX_COUNT} per window")
    if not 1 <= seconds <= MAX_WINDOW_S:
        raise LimitSpecError(f"{part}: the window must be between 1 s and 7d")
    return Window(seconds=seconds, limit=limit)


def format_spec(windows: Windows) -> str:
    """The canonical spec of ``windows``: ``"5/m,25/h"``."""
    return ",".join(str(window) for window in sorted(windows))


#: The environment variable (setting `rate_limits`) that turns every limit off.
ENV_SWITCH: Final = "HERALD_RATE_LIMITS"


def enabled() -> bool:
    """False when ``HERALD_RATE_LIMITS=off``: every request is admitted, penalties ignored."""
    from worker.settings import get_settings

    return get_settings().rate_limits


def check_platform(platform: str) -> str:
    if platform not in PLATFORMS:
        raise LimitSpecError(f"unknown platform {platform!r}; use {', '.join(PLATFORMS)}")
    return platform


@dataclass(frozen=True, slots=True)
class LimitTarget:
    """What an operator configures: ``app`` cap, or ``account`` (one, or all when id is None)."""

    platform: str
    kind: Kind
    account_id: str | None = None

    def __post_init__(self) -> None:
        check_platform(self.platform)
        if self.kind == "app" and self.account_id is not None:
            raise LimitSpecError("the app-wide cap belongs to no account")

    @property
    def field(self) -> str:
        """Its field in the overrides hash: ``instagram:app``, ``instagram:account[:<id>]``."""
        suffix = f":{self.account_id}" if self.account_id else ""
        return f"{self.platform}:{self.kind}{suffix}"

    @classmethod
    def from_field(cls, field: str) -> LimitTarget:
        platform, _, rest = field.partition(":")
        kind, _, account_id = rest.partition(":")
        if kind not in ("app", "account"):
            raise LimitSpecError(f"{field!r} names no scope")
        return cls(platform, "app" if kind == "app" else "account", account_id or None)


@dataclass(frozen=True, slots=True)
class Resolved:
    """The windows that apply to a target and where they come from."""

    windows: Windows
    source: Source

    @property
    def spec(self) -> str:
        return format_spec(self.windows)


def _defaults(specs: Mapping[str, str]) -> dict[str, Windows]:
    return {platform: parse(spec) for platform, spec in specs.items()}


class LimitsConfig:
    """Defaults plus the overrides hash, cached per process for ``cache_seconds``.

    ``account_defaults`` / ``app_defaults`` replace the module defaults (tests and
    benchmarks pass windows no spec could give). ``clock`` is monotonic seconds.
    """

    def __init__(
        self,
        client: redis.Redis,
        hash_key: str,
        *,
        account_defaults: Mapping[str, Windows] | None = None,
        app_defaults: Mapping[str, Windows] | None = None,
        cache_seconds: float = CACHE_SECONDS,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.client = client
        self.hash_key = hash_key
        self.account_defaults = dict(account_defaults or _defaults(ACCOUNT_DEFAULTS))
        self.app_defaults = dict(app_defaults or _defaults(APP_DEFAULTS))
        self.cache_seconds = cache_seconds
        self.clock = clock
        self._overrides: dict[str, Windows] = {}
        self._expires = float("-inf")

    def windows(self, platform: str, account_id: str | None) -> tuple[Windows, Windows | None]:
        """The hot path: (app-wide windows, account windows or None without an account)."""
        if platform not in self.app_defaults:
            check_platform(platform)
            raise LimitSpecError(f"no defaults for platform {platform!r}")
        overrides = self.overrides()
        app = overrides.get(f"{platform}:app") or self.app_defaults[platform]
        if account_id is None:
            return app, None
        account = (
            overrides.get(f"{platform}:account:{account_id}")
            or overrides.get(f"{platform}:account")
            or self.account_defaults[platform]
        )
        return app, account

    def resolve(self, target: LimitTarget) -> Resolved:
        """The windows that apply to ``target``, and whether they are a default or an override."""
        overrides = self.overrides()
        own = overrides.get(target.field)
        if own is not None:
            return Resolved(own, "override")
        if target.kind == "app":
            return Resolved(self.app_defaults[target.platform], "default")
        if target.account_id is not None:
            inherited = overrides.get(LimitTarget(target.platform, "account").field)
            if inherited is not None:
                return Resolved(inherited, "platform override")
        return Resolved(self.account_defaults[target.platform], "default")

    def set(self, target: LimitTarget, windows: Windows) -> Resolved:
        """Override ``target`` everywhere (within :data:`CACHE_SECONDS`); returns what
        applied before."""
        before = self.resolve(target)
        self.client.hset(self.hash_key, target.field, format_spec(windows))
        self.invalidate()
        return before

    def reset(self, target: LimitTarget) -> Resolved | None:
        """Drop ``target``'s override (back to its default); the removed one, or None."""
        before = self.resolve(target)
        removed = self.client.hdel(self.hash_key, target.field)
        self.invalidate()
        return before if removed else None

    def overrides(self) -> dict[str, Windows]:
        """Every valid override by hash field; re-read once the cached copy is stale."""
        if self.clock() >= self._expires:
            raw: dict[str, str] = self.client.hgetall(self.hash_key)  # type: ignore[assignment]
            self._overrides = _valid(raw)
            self._expires = self.clock() + self.cache_seconds
        return self._overrides

    def invalidate(self) -> None:
        """Forget the cached copy: the next decision reads the hash again."""
        self._expires = float("-inf")


def _valid(raw: Mapping[str, str]) -> dict[str, Windows]:
    parsed: dict[str, Windows] = {}
    for field, spec in raw.items():
        try:
            LimitTarget.from_field(field)
            parsed[field] = parse(spec)
        except LimitSpecError as exc:
            log.warning("ratelimit.bad_override", field=field, spec=spec, error=str(exc))
    return parsed
