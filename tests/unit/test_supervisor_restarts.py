"""The supervisor's restart policy, with real (tiny) child processes.

A child that keeps exiting (its Redis is down) is restarted with capped exponential
backoff for as long as it takes; a child that exits with status 2 (bad settings or
command line) stops the run with status 1, since no restart can fix it.
"""

from __future__ import annotations

import itertools
import os
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Callable
from pathlib import Path

import pytest

from tests.fixtures.waiting import wait_for
from worker.local.supervisor import Child, RestartPolicy, Supervisor

#: Backoff short enough for a unit test, same shape as production's.
QUICK = RestartPolicy(first_delay=0.01, max_delay=0.05, stable_after=60.0)


def python(code: str) -> list[str]:
    return [sys.executable, "-c", code]


def stop_when(condition: Callable[[], object], what: str) -> threading.Thread:
    """SIGTERM this process (the supervisor's stop request) once `condition()` holds."""

    def run() -> None:
        wait_for(condition, timeout=30, interval=0.02, what=what)
        os.kill(os.getpid(), signal.SIGTERM)

    thread = threading.Thread(target=run, daemon=True)
    thread.start()
    return thread


def test_the_delay_doubles_up_to_the_cap_and_never_runs_out() -> None:
    policy = RestartPolicy()
    delays = [policy.delay(n) for n in range(1, 9)]
    assert delays == [0.5, 1.0, 2.0, 4.0, 8.0, 16.0, 30.0, 30.0]
    assert policy.delay(10_000) == 30.0


def test_a_child_that_keeps_failing_is_restarted_for_as_long_as_it_takes() -> None:
    # Given a child that always exits 1 at once (as beat did while Redis was down)
    child = Child("flaky", python("raise SystemExit(1)"))
    supervisor = Supervisor([child], dict(os.environ), stop_timeout=5, policy=QUICK)
    # When it has failed far more often than any fixed limit, then we are asked to stop
    stopper = stop_when(lambda: child.failures >= 12, "12 failures in a row")
    status = supervisor.run()
    stopper.join(10)
    # Then the supervisor never gave up: it stopped because it was asked to, cleanly
    assert status == 0
    assert child.failures >= 12


def test_restarts_are_held_apart_by_the_growing_backoff(tmp_path: Path) -> None:
    # Given a child that records each start, then exits 1
    starts = tmp_path / "starts"
    record = f"import time; open({str(starts)!r}, 'a').write(f'{{time.monotonic()}}\\n'); exit(1)"
    policy = RestartPolicy(first_delay=0.2, max_delay=0.4, stable_after=60.0)
    child = Child("flaky", python(record))
    supervisor = Supervisor([child], dict(os.environ), stop_timeout=5, policy=policy)

    def started(n: int) -> bool:
        return starts.exists() and len(starts.read_text().split()) >= n

    # When it has started 5 times
    stopper = stop_when(lambda: started(5), "5 starts")
    supervisor.run()
    stopper.join(10)
    # Then each restart waited its delay: 0.2 s, then 0.4 s (capped) from there on
    times = [float(t) for t in starts.read_text().split()]
    gaps = [b - a for a, b in itertools.pairwise(times)]
    expected = [policy.delay(n) for n in range(1, len(gaps) + 1)]
    too_soon = [(round(g, 3), e) for g, e in zip(gaps, expected, strict=True) if g < e]
    assert not too_soon, f"restarted before the backoff was over: {too_soon}"
    assert max(gaps) < 5, f"restarts stalled: gaps {gaps}"


@pytest.mark.timeout(30)
def test_a_configuration_error_stops_the_run_without_restarting() -> None:
    # Given a child that exits 2 (bad settings) next to one that runs fine
    broken = Child("beat", python("raise SystemExit(2)"))
    healthy = Child("worker", python("import time; time.sleep(60)"))
    supervisor = Supervisor([healthy, broken], dict(os.environ), stop_timeout=10, policy=QUICK)
    # When the run starts, then it ends with status 1, never restarting the broken child,
    # and stops the healthy one (cleanly: SIGTERM ends a sleeping python at once)
    began = time.monotonic()
    assert supervisor.run() == 1
    assert time.monotonic() - began < 10
    assert broken.failures == 0 and broken.process is not None
    assert broken.process.returncode == 2
    assert healthy.process is not None and healthy.process.returncode == -signal.SIGTERM


def test_a_child_that_ran_stably_starts_its_backoff_afresh() -> None:
    # Given a child that had failed 5 times in a row, then stayed up 2 minutes and died
    policy = RestartPolicy(first_delay=0.5, max_delay=30.0, stable_after=60.0)
    child = Child("worker", python("raise SystemExit(1)"), failures=5, started_at=1000.0)
    child.process = subprocess.Popen(child.argv)
    child.process.wait(10)
    supervisor = Supervisor([child], {}, stop_timeout=5, policy=policy)
    # When the supervisor notices (its clock injected)
    assert supervisor._look_after(child, now=1120.0)
    # Then its restart is due after the first delay, not the sixth
    assert child.failures == 1
    assert child.restart_at == pytest.approx(1120.5)


def test_a_child_that_dies_quickly_again_waits_longer() -> None:
    policy = RestartPolicy(first_delay=0.5, max_delay=30.0, stable_after=60.0)
    child = Child("worker", python("raise SystemExit(1)"), failures=3, started_at=1000.0)
    child.process = subprocess.Popen(child.argv)
    child.process.wait(10)
    supervisor = Supervisor([child], {}, stop_timeout=5, policy=policy)
    assert supervisor._look_after(child, now=1001.0)
    assert child.failures == 4
    assert child.restart_at == pytest.approx(1001.0 + 4.0)
