"""What a benchmark function gets: this run's servers, and helpers that clean up after it.

Everything a helper starts or opens (processes, clients, Celery apps) is stopped or
closed when the run ends, in reverse order, even when the benchmark raised.
"""

from __future__ import annotations

import contextlib
import os
import socket
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, NoReturn, TypeVar

import redis

from bench.processes import ManagedProcess, free_port, start_process, wait_for
from bench.registry import Skip
from bench.servers import ROOT

if TYPE_CHECKING:
    from celery import Celery

    from worker.settings import Settings

T = TypeVar("T")


@dataclass
class Context:
    """One run of one benchmark.

    `database_url` is a fresh migrated database and `namespace` a fresh Redis key
    prefix, both only this run's; `env` is the environment for Herald subprocesses
    (they use exactly those). While the run lasts, this process's environment names
    them too, so Herald code called in-process (`worker.*`) uses them as well.
    """

    benchmark: str
    repetition: int
    quick: bool
    redis_url: str
    admin_database_url: str
    database_url: str
    amqp_url: str | None
    namespace: str
    work_dir: Path
    env: dict[str, str]
    stack: contextlib.ExitStack = field(default_factory=contextlib.ExitStack)
    notes: dict[str, Any] = field(default_factory=dict)

    def size(self, full: int, quick: int) -> int:
        """The problem size: `quick` under --quick, else `full`."""
        return quick if self.quick else full

    def note(self, key: str, value: Any) -> None:
        """Record a detail of this run (JSON-serialisable) in the results file."""
        self.notes[key] = value

    def skip(self, reason: str) -> NoReturn:
        raise Skip(reason)

    def require_amqp(self) -> str:
        """AMQP_URL, or skip this benchmark with a reason."""
        if not self.amqp_url:
            self.skip("AMQP_URL not set (RabbitMQ benchmarks need a RabbitMQ server)")
        return self.amqp_url

    def use_broker(self, url: str) -> None:
        """Make `url` Herald's broker for this run: its subprocesses (`env`) and this
        process (the environment, settings, and `worker.app` if imported) alike."""
        self.env["BROKER_URL"] = url
        os.environ["BROKER_URL"] = url
        _reset_herald_caches()
        self.stack.callback(_forget_broker)

    def wait_for(
        self,
        condition: Callable[[], T | bool | None],
        *,
        timeout: float,
        what: str,
        interval: float = 0.05,
    ) -> T:
        return wait_for(condition, timeout=timeout, what=what, interval=interval)

    def start(
        self, name: str, argv: Sequence[str], *, env: Mapping[str, str] | None = None
    ) -> ManagedProcess:
        """Start `argv` from the repository root with `self.env` (plus `env`); its output
        goes to `work_dir/<name>.log`. It is stopped when the run ends."""
        path = os.pathsep.join(p for p in (str(ROOT), self.env.get("PYTHONPATH", "")) if p)
        process = start_process(
            name,
            argv,
            env={**self.env, "PYTHONPATH": path, **(env or {})},
            cwd=ROOT,
            log_path=self.work_dir / f"{name}.log",
        )
        self.stack.callback(process.stop)
        return process

    def redis(self) -> redis.Redis:
        """A client of this run's Redis (str replies); closed when the run ends."""
        client = redis.Redis.from_url(self.redis_url, decode_responses=True, socket_timeout=10)
        self.stack.callback(client.close)
        return client

    def key(self, *parts: str) -> str:
        """A Redis key in this run's namespace (flushed after the run)."""
        return ":".join((self.namespace, *parts))

    def herald_settings(self, **overrides: Any) -> Settings:
        """Herald's settings for this run's servers and namespace."""
        from worker.settings import load_settings

        values = {
            "database_url": self.database_url,
            "redis_url": self.redis_url,
            "namespace": self.namespace,
            **overrides,
        }
        return load_settings(**values)

    def herald_app(self, **overrides: Any) -> Celery:
        """A Celery client of Herald's config for this run: send tasks, ping workers."""
        from celery import Celery

        from worker.taskapp.config import celery_config

        app = Celery(f"bench-{self.benchmark}", set_as_current=False)
        app.conf.update(celery_config(self.herald_settings(**overrides)))
        self.stack.callback(app.close)
        return app

    def wait_for_worker(
        self, app: Celery, process: ManagedProcess, node: str, timeout: float = 90.0
    ) -> None:
        """Wait until the worker `node` (`name`, or `name@host`) answers a ping."""
        hostname = node if "@" in node else f"{node}@{socket.gethostname()}"

        def answers() -> bool:
            process.check_alive()
            return bool(app.control.ping([hostname], timeout=0.5))

        wait_for(answers, timeout=timeout, what=f"{hostname} to answer ping", interval=0.2)

    def start_sandbox(self) -> str:
        """Start the sandbox platform on a free port; point `env`'s platform URLs at it."""
        import httpx

        from worker.constants import PLATFORMS
        from worker.local.processes import sandbox_argv

        port = free_port()
        process = self.start("sandbox", sandbox_argv(port))
        base = f"http://127.0.0.1:{port}"

        def up() -> bool:
            process.check_alive()
            with contextlib.suppress(httpx.TransportError):
                return httpx.get(f"{base}/__sandbox/ledger", timeout=1.0).is_success
            return False

        wait_for(up, timeout=30.0, what="the sandbox to answer", interval=0.1)
        for platform in PLATFORMS:
            self.env[f"{platform.upper()}_API_URL"] = f"{base}/{platform}"
        return base


def subprocess_env(
    redis_url: str, database_url: str, namespace: str, base: Mapping[str, str] | None = None
) -> dict[str, str]:
    """The environment of Herald processes in a run (BROKER_URL unset: Redis is the broker)."""
    env = {k: v for k, v in (base or os.environ).items() if k not in {"BROKER_URL"}}
    env.update(
        {
            "REDIS_URL": redis_url,
            "DATABASE_URL": database_url,
            "HERALD_NAMESPACE": namespace,
            "HERALD_ENV": "development",
            "HERALD_LOG_FORMAT": "json",
            "HERALD_LOG_LEVEL": "WARNING",
            "PYTHONUNBUFFERED": "1",
        }
    )
    return env


@contextlib.contextmanager
def in_process_env(env: Mapping[str, str]) -> Iterator[None]:
    """This process sees the run's servers (`worker.*` caches reset before and after)."""
    names = ("REDIS_URL", "DATABASE_URL", "HERALD_NAMESPACE", "BROKER_URL")
    saved = {name: os.environ.get(name) for name in names}
    for name in names:
        if name in env:
            os.environ[name] = env[name]
        else:
            os.environ.pop(name, None)
    _reset_herald_caches()
    try:
        yield
    finally:
        _reset_herald_caches()
        for name, value in saved.items():
            if value is None:
                os.environ.pop(name, None)
            else:
                os.environ[name] = value


def _forget_broker() -> None:
    """Back to Redis as the broker (`in_process_env` then restores what was there)."""
    os.environ.pop("BROKER_URL", None)
    _reset_herald_caches()


def _reset_herald_caches() -> None:
    """Every cached client, and `worker.app` if imported (its pools name the old broker)."""
    from worker import runtime

    runtime.reset()
