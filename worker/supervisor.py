"""`herald run`: start worker, beat and helper processes, keep them up, stop them cleanly.

Children run in their own sessions so a terminal's Ctrl-C reaches only us; we then
send SIGTERM to each (Celery's warm/soft shutdown) and wait, killing what outlives
the deadline. A second Ctrl-C / SIGTERM stops waiting and kills them at once. A child
that dies on its own is restarted with backoff; one that keeps dying stops the whole
run with a non-zero status rather than looping forever.
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

#: A child restarted this many times within RESTART_WINDOW seconds is given up on.
MAX_RESTARTS = 5
RESTART_WINDOW = 60.0
#: How often the supervisor looks at its children (seconds).
POLL_INTERVAL = 0.2


@dataclass
class Child:
    name: str
    argv: Sequence[str]
    #: Changes to the supervisor's environment for this child; None removes a variable.
    env: dict[str, str | None] = field(default_factory=dict)
    process: subprocess.Popen[bytes] | None = None
    restarts: list[float] = field(default_factory=list)


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
        self, children: Sequence[Child], env: Mapping[str, str], stop_timeout: float
    ) -> None:
        self.children = list(children)
        self.env = dict(env)
        self.stop_timeout = stop_timeout
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
        log.info("supervisor.started", child=child.name, pid=child.process.pid)

    def _watch(self) -> int:
        while not self._signals:
            for child in self.children:
                assert child.process is not None
                code = child.process.poll()
                if code is None or self._signals:
                    continue
                if not self._may_restart(child):
                    log.error("supervisor.giving_up", child=child.name, exit_code=code)
                    return 1
                log.warning("supervisor.restarting", child=child.name, exit_code=code)
                time.sleep(min(2 ** len(child.restarts), 10) * 0.1)
                self._start(child)
            time.sleep(POLL_INTERVAL)
        return 0

    def _may_restart(self, child: Child) -> bool:
        now = time.monotonic()
        child.restarts = [t for t in child.restarts if now - t < RESTART_WINDOW] + [now]
        return len(child.restarts) <= MAX_RESTARTS

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
