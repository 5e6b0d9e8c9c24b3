"""Breakers across separate processes: one probe, one shared count, one log line.

Each child is a fresh Python process with its own Redis connection; a Redis list is
the starting gate, so all of them decide at once (no sleeps).
"""

from __future__ import annotations

import os
import subprocess
import sys
import uuid

from tests.fixtures.cli import json_lines
from tests.fixtures.waiting import wait_for
from worker.coordination.redis_client import get_redis
from worker.platforms.errors import TransientError
from worker.resilience.breaker import BreakerConfig, PlatformBreaker
from worker.settings import get_settings

CHILD = r"""
import json, sys
from worker.observability.logging import configure_logging
from worker.platforms.errors import TransientError
from worker.coordination.redis_client import get_redis
from worker.resilience.breaker import BreakerConfig, PlatformBreaker
from worker.settings import load_settings

configure_logging(load_settings())  # JSON lines on stderr
action, gate, count, fail_max = sys.argv[1], sys.argv[2], int(sys.argv[3]), int(sys.argv[4])
breaker = PlatformBreaker("facebook", BreakerConfig(fail_max=fail_max, reset_timeout=30))
redis = get_redis()
redis.rpush(gate + ":ready", 1)
if redis.blpop([gate], timeout=60) is None:
    sys.exit("the gate never opened")
if action == "admit":
    admission = breaker.admit()
    print(json.dumps({"allowed": admission.allowed, "probe": admission.probe}))
else:
    for _ in range(count):
        breaker.record_failure(TransientError("facebook", "HTTP 503", status=503))
"""


def run_children(action: str, n: int, *, count: int = 1, fail_max: int = 3) -> list[str]:
    """Start `n` children, open the gate once all are ready; check each exits 0 and
    return each one's output (stdout, then its JSON log lines from stderr)."""
    gate = get_settings().key("test", "gate", uuid.uuid4().hex)
    argv = [sys.executable, "-c", CHILD, action, gate, str(count), str(fail_max)]
    children = [
        subprocess.Popen(
            argv, env={**os.environ}, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True
        )
        for _ in range(n)
    ]

    def all_ready() -> bool:
        exited = [c for c in children if c.poll() not in (None, 0)]
        assert not exited, exited[0].communicate()[1]
        return get_redis().llen(f"{gate}:ready") == n

    wait_for(all_ready, timeout=60, interval=0.1, what=f"{n} children at the gate")
    get_redis().rpush(gate, *["go"] * n)
    outputs = []
    for child in children:
        out, err = child.communicate(timeout=60)
        assert child.returncode == 0, err
        outputs.append(out + err)
    return outputs


def test_exactly_one_probe_among_separate_processes(namespace: str) -> None:
    breaker = PlatformBreaker("facebook", BreakerConfig(fail_max=1))
    breaker.force_open(0.001)
    wait_for(lambda: breaker.status()["retry_after"] == 0, timeout=2, what="reset time")

    admissions = [
        line for line in json_lines("\n".join(run_children("admit", 4))) if "probe" in line
    ]

    assert len(admissions) == 4
    assert sum(a["probe"] for a in admissions) == 1
    assert sum(a["allowed"] for a in admissions) == 1
    assert breaker.status()["state"] == "half-open"


def test_failures_counted_in_another_process_open_it_here(namespace: str) -> None:
    run_children("fail", 1, count=2, fail_max=3)
    here = PlatformBreaker("facebook", BreakerConfig(fail_max=3))
    assert here.status()["failures"] == 2
    assert here.admit().allowed

    here.record_failure(TransientError("facebook", "HTTP 502", status=502))

    assert not here.admit().allowed


def test_many_processes_failing_at_once_log_the_opening_once(namespace: str) -> None:
    lines = json_lines("\n".join(run_children("fail", 4, count=3, fail_max=3)))

    opened = [line for line in lines if line.get("event") == "breaker.opened"]
    assert len(opened) == 1, opened
    assert opened[0]["platform"] == "facebook"
    # pybreaker counts a failure, then decides on the count it read: failures other
    # processes count in between are in Redis by the time the trip lands.
    assert opened[0]["failures"] >= 3
    assert opened[0]["reset_at"] is not None
    assert not PlatformBreaker("facebook").admit().allowed
