"""`herald run`: start worker, beat and helper processes, keep them up, stop them cleanly.

Children run in their own sessions so a terminal's Ctrl-C reaches only us; we then
send SIGTERM to each (Celery's warm/soft shutdown) and wait, killing what outlives
the deadline. A second Ctrl-C / SIGTERM stops waiting and kills them at once.

A child that dies on its own is restarted with exponential backoff (capped), for as long
as it takes: children die mostly because something they need (Redis, PostgreSQL, the
broker) is away, and giving up would turn a 10-second outage into a stopped deployment.
The exception is exit status 2 — bad settings (`worker.app`) or a bad command line
(click) — which no restart can fix: the run stops with status 1 and says which child.
"""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from types import FrameType

import structlog

log = structlog.get_logger(__name__)

#: How often the supervisor looks at its children (seconds).
POLL_INTERVAL = 0.2
#: A child's exit status for a configuration error (settings, usage): never restarted.
CONFIG_ERROR_EXIT = 2


@dataclass(frozen=True)
class RestartPolicy:
    """Backoff between restarts of one child: first_delay, doubled per consecutive
    failure, at most max_delay. A child that stayed up stable_after seconds counts as
    recovered, so its next failure starts again from first_delay."""

    first_delay: float = 0.5
    max_delay: float = 30.0
    stable_after: float = 60.0

    def delay(self, failures: int) -> float:
        """Seconds before restarting after the `failures`-th failure in a row (1-based)."""
        return min(self.max_delay, self.first_delay * 2.0 ** min(max(failures - 1, 0), 60))


@dataclass
class Child:
    name: str
    argv: Sequence[str]
    #: Changes to the supervisor's environment for this child; None removes a variable.
    env: dict[str, str | None] = field(default_factory=dict)
    process: subprocess.Popen[bytes] | None = None
    #: Consecutive failures (exits without a stable run between them).
    failures: int = 0
    started_at: float = 0.0
    #: When a dead child is due to be started again (monotonic); None while it runs.
    restart_at: float | None = None


def apply_env_changes(base: Mapping[str, str], changes: Mapping[str, str | None]) -> dict[str, str]:
    """`base` with `changes` applied (a None value removes the variable)."""
    env = dict(base)
    for name, value in changes.items():
        if value is None:
            env.pop(name, None)
        else:
            env[name] = value
    return env


class Supervisor:
    def __init__(
        self,
        children: Sequence[Child],
        env: Mapping[str, str],
        stop_timeout: float,
        policy: RestartPolicy | None = None,
    ) -> None:
        self.children = list(children)
        self.env = dict(env)
        self.stop_timeout = stop_timeout
        self.policy = policy or RestartPolicy()
        self._signals = 0

    def run(self) -> int:
        """Run until a signal or a child that cannot be kept up; return the exit status.

        0 only when every child stopped within the deadline after we were asked to stop.
        """
        previous = {
            sig: signal.signal(sig, self._on_signal) for sig in (signal.SIGINT, signal.SIGTERM)
        }
        try:
            for child in self.children:
                self._start(child)
            status = self._watch()
        finally:
            clean = self.stop()
            for sig, handler in previous.items():
                signal.signal(sig, handler)
        return status if clean else 1

    def _on_signal(self, signum: int, _frame: FrameType | None) -> None:
        self._signals += 1
        event = "supervisor.stopping" if self._signals == 1 else "supervisor.killing"
        log.info(event, signal=signal.Signals(signum).name)

    def _start(self, child: Child) -> None:
        child.process = subprocess.Popen(
            child.argv, env=apply_env_changes(self.env, child.env), start_new_session=True
        )
        child.started_at = time.monotonic()
        child.restart_at = None
        log.info("supervisor.started", child=child.name, pid=child.process.pid)

    def _watch(self) -> int:
        """Look after the children until a signal (0) or a configuration error (1).

        Never sleeps out a backoff: a restart is only due at `restart_at`, so signals
        and the other children are seen every POLL_INTERVAL meanwhile."""
        while not self._signals:
            for child in self.children:
                if self._signals:
                    break
                if not self._look_after(child, time.monotonic()):
                    return 1
            time.sleep(POLL_INTERVAL)
        return 0

    def _look_after(self, child: Child, now: float) -> bool:
        """Start a child whose backoff is over; schedule a restart for one that died.
        False when it cannot be kept up (a configuration error)."""
        assert child.process is not None
        if child.restart_at is not None:
            if now >= child.restart_at:
                self._start(child)
            return True
        code = child.process.poll()
        if code is None:
            return True
        if code == CONFIG_ERROR_EXIT:
            log.error(
                "supervisor.giving_up",
                child=child.name,
                exit_code=code,
                reason="configuration error (exit status 2): a restart cannot fix it",
            )
            return False
        stable = now - child.started_at >= self.policy.stable_after
        child.failures = 1 if stable else child.failures + 1
        delay = self.policy.delay(child.failures)
        child.restart_at = now + delay
        log.warning(
            "supervisor.restarting",
            child=child.name,
            exit_code=code,
            attempt=child.failures,
            delay_s=delay,
        )
        return True

    def stop(self) -> bool:
        """SIGTERM every child, wait up to the deadline (or a second signal), SIGKILL the
        rest. True when none had to be killed."""
        running = [c for c in self.children if c.process is not None and c.process.poll() is None]
        for child in running:
            assert child.process is not None
            os.kill(child.process.pid, signal.SIGTERM)
        # Stopping on a signal: the second one means "now". Giving up: the first one does.
        enough = 2 if self._signals else 1
        deadline = time.monotonic() + self.stop_timeout
        while time.monotonic() < deadline and self._signals < enough:
            if all(c.process is None or c.process.poll() is not None for c in running):
                break
            time.sleep(POLL_INTERVAL / 2)
        clean = True
        for child in running:
            assert child.process is not None
            if child.process.poll() is None:
                log.error("supervisor.killed", child=child.name, after_s=self.stop_timeout)
                # Its own session: the pool's children go with it.
                _kill_group(child.process.pid)
                child.process.wait()
                clean = False
            log.info("supervisor.stopped", child=child.name, exit_code=child.process.returncode)
        return clean


def _kill_group(pid: int) -> None:
    with contextlib.suppress(ProcessLookupError):
        os.killpg(pid, signal.SIGKILL)
