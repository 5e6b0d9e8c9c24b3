"""`herald run` as a user runs it (a subprocess), on ports nobody else on the machine holds."""

from __future__ import annotations

import re
import signal
import socket
import subprocess
import sys
from collections.abc import Iterator
from contextlib import contextmanager, suppress
from dataclasses import dataclass
from pathlib import Path

import psutil

#: `herald run`.
HERALD_RUN = [sys.executable, "-m", "worker.cli", "run"]


def free_ports(count: int = 1) -> int:
    """The first of `count` consecutive ports that are free right now."""
    for _ in range(200):
        with socket.socket() as probe:
            probe.bind(("127.0.0.1", 0))
            first: int = probe.getsockname()[1]
        if first + count < 65535 and all(_free(first + i) for i in range(1, count)):
            return first
    raise AssertionError(f"no {count} consecutive free ports")


def _free(port: int) -> bool:
    with socket.socket() as probe:
        try:
            probe.bind(("127.0.0.1", port))
        except OSError:
            return False
        return True


@dataclass
class RunProcess:
    process: subprocess.Popen[bytes]
    log_path: Path

    @property
    def pid(self) -> int:
        return self.process.pid

    def output(self) -> str:
        return self.log_path.read_text(errors="replace")

    def printed(self, pattern: str) -> re.Match[str] | None:
        return re.search(pattern, self.output(), re.MULTILINE)

    def descendants(self) -> list[psutil.Process]:
        with suppress(psutil.NoSuchProcess):
            return psutil.Process(self.pid).children(recursive=True)
        return []


@contextmanager
def herald_run(env: dict[str, str], log_path: Path, *args: str) -> Iterator[RunProcess]:
    """Start `herald run ARGS`; at the end SIGTERM it and kill whatever it left behind."""
    with log_path.open("wb") as log:
        process = subprocess.Popen(
            [*HERALD_RUN, *args], env=env, stdout=log, stderr=subprocess.STDOUT
        )
    running = RunProcess(process, log_path)
    try:
        yield running
    finally:
        leftovers = running.descendants()
        if process.poll() is None:
            process.send_signal(signal.SIGTERM)
            try:
                process.wait(timeout=60)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait()
        for child in leftovers:
            with suppress(psutil.NoSuchProcess):
                child.kill()
