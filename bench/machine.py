"""The machine and software a set of figures came from (figures mean nothing without it)."""

from __future__ import annotations

import contextlib
import os
import platform
import subprocess
import sys
from pathlib import Path
from typing import Any

import psutil
import psycopg
import redis

from bench.servers import ROOT, libpq


def cpu_model() -> str:
    with contextlib.suppress(OSError):
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    return platform.processor() or platform.machine()


def git_commit() -> str | None:
    try:
        head = subprocess.run(
            ["git", "rev-parse", "--short=12", "HEAD"],
            cwd=ROOT,
            capture_output=True,
            text=True,
            timeout=10,
            check=True,
        ).stdout.strip()
        dirty = subprocess.run(
            ["git", "status", "--porcelain", "--untracked-files=no"],
            cwd=ROOT,
            capture_output=True,
            text=True,
            timeout=10,
            check=True,
        ).stdout.strip()
    except (OSError, subprocess.SubprocessError):
        return None
    return f"{head}-dirty" if dirty else head


def redis_version(url: str) -> str | None:
    with contextlib.suppress(redis.RedisError):
        client = redis.Redis.from_url(url, socket_timeout=5)
        try:
            return str(client.info("server")["redis_version"])
        finally:
            client.close()
    return None


def postgres_version(url: str) -> str | None:
    with contextlib.suppress(psycopg.Error), psycopg.connect(libpq(url), connect_timeout=5) as c:
        row = c.execute("SHOW server_version").fetchone()
        return str(row[0]) if row else None
    return None


def rabbitmq_version(url: str | None) -> str | None:
    if not url:
        return None
    from kombu import Connection

    with contextlib.suppress(Exception), Connection(url, connect_timeout=5) as conn:
        conn.ensure_connection(max_retries=1)
        properties = getattr(conn.connection, "server_properties", {}) or {}
        version = properties.get("version")
        return version.decode() if isinstance(version, bytes) else str(version)
    return None


def describe(redis_url: str, database_url: str, amqp_url: str | None) -> dict[str, Any]:
    import celery

    memory = psutil.virtual_memory().total
    return {
        "cpu_model": cpu_model(),
        "cpu_cores": os.cpu_count(),
        "cpu_physical_cores": psutil.cpu_count(logical=False),
        "memory_gib": round(memory / 1024**3, 1),
        "os": platform.platform(),
        "python": platform.python_version(),
        "python_executable": sys.executable,
        "celery": celery.__version__,
        "redis_server": redis_version(redis_url),
        "postgres": postgres_version(database_url),
        "rabbitmq": rabbitmq_version(amqp_url),
        "git_commit": git_commit(),
        "load_average_at_start": [round(x, 2) for x in os.getloadavg()],
    }
