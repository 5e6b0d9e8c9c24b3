"""One SQLAlchemy engine per process (held by worker.runtime), tuned pool, safe across fork."""

from __future__ import annotations

from sqlalchemy import Engine, create_engine
from sqlalchemy.engine import URL, make_url

from worker import runtime
from worker.constants import PG_APPLICATION_NAME
from worker.settings import Settings, get_settings, required_url


def sqlalchemy_url(database_url: str) -> URL:
    """The URL with the psycopg 3 driver, whatever spelling the operator used."""
    return make_url(database_url).set(drivername="postgresql+psycopg")


def libpq_url(database_url: str) -> str:
    """The URL as libpq tools (psql, pg_dump, psycopg) take it."""
    url = make_url(database_url).set(drivername="postgresql")
    return url.render_as_string(hide_password=False)


def build_engine(settings: Settings, *, role: str = "worker") -> Engine:
    """An engine whose connections identify themselves and cannot run forever."""
    return create_engine(
        sqlalchemy_url(required_url(settings, "database_url")),
        pool_size=settings.db_pool_size,
        max_overflow=settings.db_max_overflow,
        pool_timeout=settings.db_pool_timeout,
        # A connection dropped by a PostgreSQL restart is noticed before use, not mid-task.
        pool_pre_ping=True,
        pool_recycle=1800,
        connect_args={
            "connect_timeout": settings.db_connect_timeout,
            "application_name": f"{PG_APPLICATION_NAME}-{role}",
            "options": f"-c statement_timeout={settings.db_statement_timeout_ms}",
        },
    )


def _dispose(engine: Engine) -> None:
    engine.dispose()


def _forget_in_child(engine: Engine) -> None:
    # The inherited connections belong to the parent: dereferenced, not closed (closing
    # them would end the parent's sessions).
    engine.dispose(close=False)


#: This process's engine, created on first use (worker.runtime: reset, after fork).
get_engine = runtime.cached(
    "engine", lambda: build_engine(get_settings()), close=_dispose, forget=_forget_in_child
)
