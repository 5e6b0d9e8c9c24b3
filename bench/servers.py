"""The servers a benchmark run uses: named by URL, else embedded; fresh state per run.

`REDIS_URL`, `DATABASE_URL` (a database we may create others from) and `AMQP_URL`
name servers. Without the first two, the embedded servers start under
`.herald/bench/` and are stopped at the end if this invocation started them.
A migrated template database is made once per invocation; each run gets a database
cloned from it and a Redis key namespace of its own, both removed after the run.
"""

from __future__ import annotations

import contextlib
import itertools
import os
import uuid
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from types import TracebackType

import psycopg
import redis

from worker.coordination.redis_client import delete_namespace
from worker.db.admin import (
    admin_connection,
    create_database,
    drop_database,
    migrate_database,
    with_database,
)
from worker.db.engine import libpq_url

#: The repository: subprocesses run here so `bench.*` and `worker.*` import.
ROOT = Path(__file__).resolve().parents[1]
#: Where the embedded servers of benchmarks keep their data.
EMBEDDED_HOME = ROOT / ".herald" / "bench"


def libpq(url: str) -> str:
    """The URL as psycopg and the libpq tools take it (no SQLAlchemy driver suffix)."""
    return libpq_url(url)


@dataclass(frozen=True)
class RunServers:
    """What one run owns: its database and its Redis namespace."""

    database_url: str
    namespace: str


@dataclass
class Servers:
    """Resolve (or start) the servers; make the template; hand out fresh runs."""

    redis_url: str = ""
    admin_database_url: str = ""
    amqp_url: str | None = None
    sources: dict[str, str] = field(default_factory=dict)
    _template: str = ""
    _started_embedded: bool = False
    _counter: Iterator[int] = field(default_factory=itertools.count)

    def __enter__(self) -> Servers:
        try:
            self._resolve()
            self._template = f"herald_bench_tpl_{os.getpid()}"
            create_database(self.admin_database_url, self._template)
            migrate_database(with_database(self.admin_database_url, self._template))
        except BaseException:
            self.__exit__(None, None, None)
            raise
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        try:
            if self._template and self.admin_database_url:
                drop_database(self.admin_database_url, self._template)
        finally:
            if self._started_embedded:
                from worker.local import embedded

                embedded.stop(EMBEDDED_HOME)

    def _resolve(self) -> None:
        redis_url = os.environ.get("REDIS_URL")
        database_url = os.environ.get("DATABASE_URL")
        self.amqp_url = os.environ.get("AMQP_URL") or None
        self.sources = {
            "redis": "REDIS_URL" if redis_url else "embedded",
            "postgres": "DATABASE_URL" if database_url else "embedded",
            "amqp": "AMQP_URL" if self.amqp_url else "none",
        }
        if not (redis_url and database_url):
            from worker.local import embedded

            before = embedded.status(EMBEDDED_HOME)
            # Set first: servers half-started by a failing call are stopped too.
            self._started_embedded = before["redis"] is None and before["postgres"] is None
            urls = embedded.ensure_running(EMBEDDED_HOME)
            redis_url = redis_url or urls.redis_url
            database_url = database_url or urls.database_url
        self.redis_url, self.admin_database_url = redis_url, database_url
        self._check_reachable()

    def _check_reachable(self) -> None:
        try:
            redis.Redis.from_url(self.redis_url, socket_connect_timeout=3).ping()
        except redis.RedisError as exc:
            raise SystemExit(f"bench: Redis at REDIS_URL is not reachable: {exc}") from None
        try:
            admin_connection(self.admin_database_url).close()
        except psycopg.Error as exc:
            raise SystemExit(f"bench: PostgreSQL is not reachable: {exc}") from None

    @contextlib.contextmanager
    def fresh_run(self) -> Iterator[RunServers]:
        """A database cloned from the migrated template and a new namespace; removed after."""
        name = f"herald_bench_{os.getpid()}_{next(self._counter)}"
        namespace = f"hb{uuid.uuid4().hex[:10]}"
        database_url = create_database(self.admin_database_url, name, self._template)
        try:
            yield RunServers(database_url, namespace)
        finally:
            try:
                drop_database(self.admin_database_url, name)
            finally:
                delete_namespace(self.redis_url, namespace)
