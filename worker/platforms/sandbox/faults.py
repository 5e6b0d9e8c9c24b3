"""Applying a platform's faults to one call: latency, injected errors, hangs.

Every route starts with :func:`enter`; publish routes then ask :func:`fails` before
accepting and :func:`maybe_hang` after recording, so a failed publish is never in the
ledger and a hung one always is.
"""

from __future__ import annotations

import asyncio
import random

from worker.platforms.sandbox.state import Faults, SandboxState


def chance() -> float:
    """A uniform draw in [0, 1) for the rate faults."""
    return random.random()  # noqa: S311 -- fault injection, not cryptography


async def enter(state: SandboxState, platform: str) -> Faults:
    """Start a call on ``platform``: wait out its latency, count it, return its faults."""
    faults = state.faults[platform]
    delay_ms = faults.latency_ms + chance() * faults.latency_jitter_ms
    if delay_ms > 0:
        await asyncio.sleep(delay_ms / 1000)
    state.usage.count(platform)
    return faults


def fails(faults: Faults) -> bool:
    """Whether this publish is answered with the fault ``status`` instead."""
    return faults.error_rate > 0 and chance() < faults.error_rate


async def maybe_hang(faults: Faults) -> None:
    """Hold an already-recorded publish for ``timeout_s`` when the timeout fault hits."""
    # Recorded already: the client times out on a publish that did happen.
    if faults.timeout_rate > 0 and chance() < faults.timeout_rate:
        await asyncio.sleep(faults.timeout_s)


def retry_after_headers(faults: Faults) -> dict[str, str]:
    """``Retry-After`` for an injected 429 or 503, when the faults set one."""
    if faults.retry_after is None or faults.status not in (429, 503):
        return {}
    return {"Retry-After": f"{faults.retry_after:g}"}
