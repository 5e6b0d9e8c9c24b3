"""`worker.coordination.locks.singleton` across real processes on a real Redis.

Holders are separate Python processes (as two beats, or a worker and `herald backup
now`, would be); the test process is the contender.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass

import pytest

from tests.fixtures.waiting import wait_for
from worker.coordination.locks import AlreadyRunningError, singleton
from worker.coordination.redis_client import get_redis
from worker.settings import get_settings

#: Holds `singleton(argv[1], ttl=argv[2])`, says "held", and lets go when stdin closes.
HOLDER = """
import sys
from worker.coordination.locks import AlreadyRunningError, singleton
try:
    with singleton(sys.argv[1], ttl=float(sys.argv[2])):
        print("held", flush=True)
        sys.stdin.read()
except AlreadyRunningError:
    print("busy", flush=True)
    raise SystemExit(3)
print("released", flush=True)
"""


@dataclass
class Holder:
    process: subprocess.Popen[str]

    def answer(self) -> str:
        assert self.process.stdout is not None
        return self.process.stdout.readline().strip()

    def release(self) -> str:
        assert self.process.stdin is not None
        self.process.stdin.close()
        self.process.wait(15)
        return self.answer()

    def kill(self) -> None:
        os.kill(self.process.pid, signal.SIGKILL)
        self.process.wait(10)


HolderFactory = Callable[[str, float], Holder]


@pytest.fixture
def hold(namespace: str) -> Iterator[HolderFactory]:
    started: list[Holder] = []

    def start(name: str, ttl: float) -> Holder:
        process = subprocess.Popen(
            [sys.executable, "-c", HOLDER, name, str(ttl)],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            text=True,
            env={**os.environ},
        )
        holder = Holder(process)
        started.append(holder)
        return holder

    yield start
    for holder in started:
        if holder.process.poll() is None:
            holder.kill()
        for stream in (holder.process.stdin, holder.process.stdout):
            if stream is not None:
                stream.close()


def can_take(name: str) -> bool:
    """Try the lock once from this process (and let it go at once)."""
    try:
        with singleton(name, ttl=5):
            return True
    except AlreadyRunningError:
        return False


def lock_ttl_ms(name: str) -> int:
    return int(get_redis().pttl(get_settings().key("lock", name)))


def test_two_holders_in_different_processes_exclude_each_other(hold: HolderFactory) -> None:
    # Given a process holding the lock
    first = hold("backup", 30)
    assert first.answer() == "held"
    # When another process and this one try it, then both are refused
    second = hold("backup", 30)
    assert second.answer() == "busy"
    assert second.process.wait(15) == 3
    assert not can_take("backup")
    # And another name is independent
    assert can_take("archive")
    # When the holder lets go, then the next one gets it
    assert first.release() == "released"
    assert can_take("backup")


def test_the_ttl_frees_the_lock_of_a_killed_holder(hold: HolderFactory) -> None:
    # Given a holder with a 2 s TTL, SIGKILLed (no release, no watchdog any more)
    ttl = 2.0
    holder = hold("backup", ttl)
    assert holder.answer() == "held"
    holder.kill()
    killed_at = time.monotonic()
    # Then the lock is still taken right away, and free once its TTL has run out
    assert not can_take("backup")
    wait_for(lambda: can_take("backup"), timeout=ttl + 3, interval=0.1, what="the TTL to free it")
    assert time.monotonic() - killed_at <= ttl + 0.5


def test_the_watchdog_keeps_a_long_holder_s_lock_past_its_ttl(hold: HolderFactory) -> None:
    # Given a holder with a 1 s TTL that keeps working
    ttl = 1.0
    holder = hold("backup", ttl)
    assert holder.answer() == "held"
    # When four TTLs pass, then the lock never expired and nobody else got it
    deadline = time.monotonic() + 4 * ttl
    while time.monotonic() < deadline:
        assert lock_ttl_ms("backup") > 0, "the lock expired under a live holder"
        assert not can_take("backup")
        time.sleep(0.05)  # sampling rate, not a wait for a condition
    # And it is released (not left to expire) when the holder finishes
    assert holder.release() == "released"
    assert lock_ttl_ms("backup") == -2  # no such key
    assert can_take("backup")
