"""`herald run`: start worker, beat and helper processes, keep them up, stop them cleanly.

Children run in their own sessions so a terminal's Ctrl-C reaches only us; we then
send SIGTERM to each (Celery's warm/soft shutdown) and wait, killing what outlives
the deadline. A child that dies on its own is restarted with backoff; one that keeps
dying stops the whole run with a non-zero status rather than looping forever.
"""

from __future__ import annotations

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


@dataclass
class Child:
    name: str
    argv: Sequence[str]
    process: subprocess.Popen[bytes] | None = None
    restarts: list[float] = field(default_factory=list)


class Supervisor:
    def __init__(
        self, children: Sequence[Child], env: Mapping[str, str], stop_timeout: float
    ) -> None:
        self.children = list(children)
        self.env = dict(env)
        self.stop_timeout = stop_timeout
        self._stopping = False

    def run(self) -> int:
        """Run until a signal or a child that cannot be kept up; return the exit status."""
        previous = {
            sig: signal.signal(sig, self._on_signal) for sig in (signal.SIGINT, signal.SIGTERM)
        }
        try:
            for child in self.children:
                self._start(child)
            status = self._watch()
        finally:
            self.stop()
            for sig, handler in previous.items():
                signal.signal(sig, handler)
        return status

    def _on_signal(self, signum: int, _frame: FrameType | None) -> None:
        log.info("supervisor.stopping", signal=signal.Signals(signum).name)
        self._stopping = True

    def _start(self, child: Child) -> None:
        child.process = subprocess.Popen(child.argv, env=self.env, start_new_session=True)
        log.info("supervisor.started", child=child.name, pid=child.process.pid)

    def _watch(self) -> int:
        while not self._stopping:
            for child in self.children:
                assert child.process is not None
                code = child.process.poll()
                if code is None:
                    continue
                if not self._may_restart(child):
                    log.error("supervisor.giving_up", child=child.name, exit_code=code)
                    return 1
                log.warning("supervisor.restarting", child=child.name, exit_code=code)
                time.sleep(min(2 ** len(child.restarts), 10) * 0.1)
                self._start(child)
            time.sleep(0.2)
        return 0

    def _may_restart(self, child: Child) -> bool:
        now = time.monotonic()
        child.restarts = [t for t in child.restarts if now - t < RESTART_WINDOW] + [now]
        return len(child.restarts) <= MAX_RESTARTS

    def stop(self) -> None:
        """SIGTERM every child, wait up to the deadline, SIGKILL the rest."""
        running = [c for c in self.children if c.process is not None and c.process.poll() is None]
        for child in running:
            assert child.process is not None
            os.kill(child.process.pid, signal.SIGTERM)
        deadline = time.monotonic() + self.stop_timeout
        for child in running:
            assert child.process is not None
            try:
                child.process.wait(timeout=max(0.1, deadline - time.monotonic()))
                log.info("supervisor.stopped", child=child.name, exit_code=child.process.returncode)
            except subprocess.TimeoutExpired:
                log.error("supervisor.killed", child=child.name, after_s=self.stop_timeout)
                child.process.kill()
                child.process.wait()
