"""Subprocesses a benchmark starts, waiting with deadlines, and what processes weigh.

Every process runs in its own session, so a Ctrl-C on the harness's terminal reaches
only the harness, which then stops them: SIGTERM, then SIGKILL for the whole tree
(a prefork pool's children included) whatever outlives the deadline.
"""

from __future__ import annotations

import contextlib
import signal
import socket
import subprocess
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TypeVar

import psutil

T = TypeVar("T")

#: Seconds a process gets to exit after SIGTERM before its group is SIGKILLed.
STOP_TIMEOUT_S = 20.0
_MIB = 1024 * 1024


class WaitTimeoutError(TimeoutError):
    """A condition was not met before its deadline."""


def wait_for(
    condition: Callable[[], T | bool | None],
    *,
    timeout: float,
    what: str,
    interval: float = 0.05,
) -> T:
    """The first truthy value of `condition()`; past the deadline, `WaitTimeoutError`."""
    deadline = time.monotonic() + timeout
    last: object = None
    while True:
        last = condition()
        if last:
            return last  # type: ignore[return-value]
        if time.monotonic() >= deadline:
            raise WaitTimeoutError(
                f"timed out after {timeout:.1f}s waiting for {what} (last: {last!r})"
            )
        time.sleep(interval)


def free_port() -> int:
    """A TCP port on 127.0.0.1 that is free right now (the tests use this one too)."""
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port: int = probe.getsockname()[1]
        return port


@dataclass
class ManagedProcess:
    """A started subprocess, its log, and a stop that always ends its whole group."""

    name: str
    process: subprocess.Popen[bytes]
    log_path: Path

    @property
    def pid(self) -> int:
        return self.process.pid

    def alive(self) -> bool:
        return self.process.poll() is None

    def log_tail(self, lines: int = 40) -> str:
        try:
            return "\n".join(self.log_path.read_text(errors="replace").splitlines()[-lines:])
        except OSError:
            return ""

    def check_alive(self) -> None:
        """Raise with the log's tail when the process has exited."""
        if not self.alive():
            raise RuntimeError(
                f"{self.name} exited with status {self.process.returncode}; log "
                f"{self.log_path}:\n{self.log_tail()}"
            )

    def stop(self, timeout: float = STOP_TIMEOUT_S) -> int:
        """SIGTERM (Celery's warm shutdown), then SIGKILL whatever of the tree outlives it."""
        tree = self._descendants()
        if self.alive():
            self.process.send_signal(signal.SIGTERM)
            try:
                self.process.wait(timeout)
            except subprocess.TimeoutExpired:
                self.process.kill()
        code = self.process.wait()
        for child in tree + self._descendants():
            # psutil checks the process is still the one we saw (no pid reuse).
            with contextlib.suppress(psutil.Error):
                child.kill()
        return code

    def _descendants(self) -> list[psutil.Process]:
        try:
            return list(psutil.Process(self.process.pid).children(recursive=True))
        except psutil.Error:
            return []


def start_process(
    name: str, argv: Sequence[str], *, env: Mapping[str, str], cwd: Path, log_path: Path
) -> ManagedProcess:
    with log_path.open("wb") as log:
        process = subprocess.Popen(
            list(argv),
            env=dict(env),
            cwd=cwd,
            stdout=log,
            stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL,
            start_new_session=True,
        )
    return ManagedProcess(name, process, log_path)


@dataclass(frozen=True)
class ProcessMemory:
    pid: int
    role: str  # "main" or "child"
    rss_mib: float
    uss_mib: float  # memory only this process holds (what killing it would free)


def tree_memory(pid: int) -> list[ProcessMemory]:
    """Resident memory of `pid` and each of its descendants."""
    root = psutil.Process(pid)
    members = [(root, "main")] + [(child, "child") for child in root.children(recursive=True)]
    found = []
    for process, role in members:
        with contextlib.suppress(psutil.NoSuchProcess):
            info = process.memory_full_info()
            found.append(ProcessMemory(process.pid, role, info.rss / _MIB, info.uss / _MIB))
    return found


def stable_tree_memory(
    pid: int,
    *,
    timeout: float,
    window: int = 8,
    interval: float = 0.25,
    tolerance: float = 0.01,
) -> tuple[list[ProcessMemory], bool]:
    """Sample until the tree's total RSS varies by at most `tolerance` over `window`
    samples (and the process count is steady); return the last sample and whether it
    settled before the deadline (past it, the last sample is returned, flagged)."""
    deadline = time.monotonic() + timeout
    totals: list[tuple[int, float]] = []
    while True:
        sample = tree_memory(pid)
        totals = [*totals[-(window - 1) :], (len(sample), sum(p.rss_mib for p in sample))]
        if len(totals) == window:
            counts = {count for count, _ in totals}
            values = [total for _, total in totals]
            if len(counts) == 1 and max(values) - min(values) <= tolerance * max(values):
                return sample, True
        if time.monotonic() >= deadline:
            return sample, False
        time.sleep(interval)
