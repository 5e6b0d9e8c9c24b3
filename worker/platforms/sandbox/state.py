"""What one sandbox holds: accepted publishes, each platform's faults, call counts.

:class:`Store` is the ledger (and the per-account post lists the list endpoints page
through); :class:`Faults` and :func:`apply_faults` are the fault model and the
validation behind ``POST /__sandbox/faults``; :class:`SandboxState` bundles them for
one app.
"""

from __future__ import annotations

import base64
import dataclasses
import hashlib
import math
import secrets
import threading
import time
from bisect import bisect_left
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from worker.constants import PLATFORMS

#: Calls per platform per minute that the Graph usage headers count as 100 %: high
#: enough that a benchmark is not throttled by its own sandbox.
USAGE_BUDGET_PER_MINUTE = 1_000_000
#: Per process, so video ids do not look sequential.
_ID_SALT = secrets.randbits(63)


@dataclass(frozen=True, slots=True)
class Faults:
    """One platform's switchable misbehaviour (see :mod:`worker.platforms.sandbox`)."""

    latency_ms: float = 0.0
    latency_jitter_ms: float = 0.0
    error_rate: float = 0.0
    status: int = 503
    timeout_rate: float = 0.0
    timeout_s: float = 30.0
    retry_after: float | None = None
    revoke_tokens: bool = False
    usage_percent: int | None = None


#: field -> (type, minimum, maximum, nullable)
_FAULT_RULES: dict[str, tuple[type, float | None, float | None, bool]] = {
    "latency_ms": (float, 0, 600_000, False),
    "latency_jitter_ms": (float, 0, 600_000, False),
    "error_rate": (float, 0, 1, False),
    "status": (int, 400, 599, False),
    "timeout_rate": (float, 0, 1, False),
    "timeout_s": (float, 0, 3600, False),
    "retry_after": (float, 0, 86_400, True),
    "revoke_tokens": (bool, None, None, False),
    "usage_percent": (int, 0, 100, True),
}


def apply_faults(current: Faults, request: dict[str, Any]) -> Faults:
    """Merge a fault request (without ``platform``) into ``current``; ValueError if bad."""
    fields = {k: v for k, v in request.items() if k != "reset"}
    unknown = sorted(set(fields) - set(_FAULT_RULES))
    if unknown:
        allowed = ", ".join(["reset", *_FAULT_RULES])
        raise ValueError(f"unknown fault field(s): {', '.join(unknown)}; allowed: {allowed}")
    if request.get("reset", False) is not False:
        if request["reset"] is not True:
            raise ValueError("reset must be true or false")
        current = Faults()
    updates: dict[str, Any] = {name: _checked(name, value) for name, value in fields.items()}
    return dataclasses.replace(current, **updates)


def _checked(name: str, value: object) -> object:
    kind, low, high, nullable = _FAULT_RULES[name]
    if value is None and nullable:
        return None
    if kind is bool:
        if isinstance(value, bool):
            return value
        raise ValueError(f"{name} must be true or false, got {value!r}")
    expected = "an integer" if kind is int else "a number"
    if isinstance(value, bool) or not isinstance(value, int | float) or not math.isfinite(value):
        raise ValueError(f"{name} must be {expected}, got {value!r}")
    if kind is int and value != int(value):
        raise ValueError(f"{name} must be {expected}, got {value!r}")
    if low is not None and value < low:
        raise ValueError(f"{name} must be >= {low:g}, got {value!r}")
    if high is not None and value > high:
        raise ValueError(f"{name} must be <= {high:g}, got {value!r}")
    return int(value) if kind is int else float(value)


def graph_id(seq: int) -> str:
    """A Graph-looking numeric id."""
    return str(17_841_000_000_000_000 + seq)


def video_id(seq: int) -> str:
    """A YouTube-looking 11-character id (unique: a salted sequence number)."""
    return base64.urlsafe_b64encode((seq ^ _ID_SALT).to_bytes(8, "big"))[:11].decode()


@dataclass(slots=True)
class Post:
    """A publish the sandbox accepted."""

    seq: int
    platform: str
    account: str
    client_ref: str | None
    external_id: str
    content: str
    at: datetime

    def ledger_entry(self) -> dict[str, Any]:
        """The contract's ledger shape."""
        return {
            "platform": self.platform,
            "account": self.account,
            "client_ref": self.client_ref,
            "external_id": self.external_id,
            "at": self.at.isoformat(),
        }


class Store:
    """Ledger, per-account post lists and Instagram containers, behind one lock."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._seq = 0
        self.ledger: list[Post] = []
        self._by_account: dict[tuple[str, str], list[Post]] = {}
        self._containers: dict[str, tuple[str, str, str | None]] = {}

    def record(
        self,
        platform: str,
        account: str,
        client_ref: str | None,
        content: str,
        make_id: Callable[[int], str] = graph_id,
    ) -> Post:
        """Add an accepted publish to the ledger and the account's posts; ``make_id``
        turns the sandbox's sequence number into the platform's id format."""
        with self._lock:
            self._seq += 1
            now = datetime.now(UTC)
            post = Post(self._seq, platform, account, client_ref, make_id(self._seq), content, now)
            self.ledger.append(post)
            self._by_account.setdefault((platform, account), []).append(post)
            return post

    def page(
        self, platform: str, account: str, before: int | None, limit: int
    ) -> tuple[list[Post], int]:
        """Up to ``limit`` of the account's posts older than seq ``before``, newest
        first, and how many posts the account has."""
        with self._lock:
            posts = self._by_account.get((platform, account), [])
            end = len(posts) if before is None else bisect_left(posts, before, key=_seq)
            return posts[max(0, end - limit) : end][::-1], len(posts)

    def add_container(self, account: str, caption: str, client_ref: str | None) -> str:
        """Keep an Instagram media container until it is published."""
        with self._lock:
            self._seq += 1
            container_id = graph_id(self._seq)
            self._containers[container_id] = (account, caption, client_ref)
        return container_id

    def take_container(self, account: str, container_id: str) -> tuple[str, str | None] | None:
        """Consume a container of ``account``: (caption, client_ref), or None if unknown."""
        with self._lock:
            found = self._containers.get(container_id)
            if found is None or found[0] != account:
                return None
            del self._containers[container_id]
            return found[1], found[2]

    def clear(self) -> int:
        """Forget everything; returns how many publishes the ledger held."""
        with self._lock:
            count = len(self.ledger)
            self.ledger = []
            self._by_account.clear()
            self._containers.clear()
            return count


def _seq(post: Post) -> int:
    return post.seq


class UsageMeter:
    """Calls per platform in the current minute, for Graph's ``X-App-Usage``."""

    def __init__(self) -> None:
        self._minute = 0
        self._counts: dict[str, int] = {}

    def count(self, platform: str) -> None:
        """Count one call."""
        minute = int(time.monotonic() // 60)
        if minute != self._minute:
            self._minute, self._counts = minute, {}
        self._counts[platform] = self._counts.get(platform, 0) + 1

    def percent(self, platform: str, faults: Faults) -> int:
        """Usage in percent of the budget, unless a fault pins it."""
        if faults.usage_percent is not None:
            return faults.usage_percent
        return min(100, self._counts.get(platform, 0) * 100 // USAGE_BUDGET_PER_MINUTE)


def fingerprint(token: str) -> str:
    """What the OAuth log shows of a token: enough to tell tokens apart, never the token."""
    return hashlib.sha256(token.encode()).hexdigest()[:16]


class OAuthLog:
    """Every call to a token endpoint (a test counts refreshes per token with it)."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self.calls: list[dict[str, Any]] = []

    def record(self, platform: str, grant_type: str, grant: str, status: int) -> None:
        """One call: ``grant`` is the token it presented (logged as a fingerprint)."""
        entry = {
            "platform": platform,
            "grant_type": grant_type,
            "grant_sha256": fingerprint(grant) if grant else None,
            "status": status,
            "at": datetime.now(UTC).isoformat(),
        }
        with self._lock:
            self.calls.append(entry)

    def clear(self) -> int:
        with self._lock:
            count, self.calls = len(self.calls), []
            return count


class SandboxState:
    """One app's state: its publishes, each platform's current faults, its call counts."""

    def __init__(self) -> None:
        self.store = Store()
        self.faults = {platform: Faults() for platform in PLATFORMS}
        self.usage = UsageMeter()
        self.oauth = OAuthLog()
