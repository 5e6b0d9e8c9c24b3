"""Alembic environment: the URL comes from Herald's settings (or a connection passed in)."""

from __future__ import annotations

from alembic import context
from sqlalchemy import Connection

from worker.db.engine import build_engine
from worker.db.models import Base
from worker.settings import get_settings

target_metadata = Base.metadata


def run_with(connection: Connection) -> None:
    context.configure(connection=connection, target_metadata=target_metadata)
    with context.begin_transaction():
        context.run_migrations()


def run_online() -> None:
    given = context.config.attributes.get("connection")
    if given is not None:
        run_with(given)
        return
    engine = build_engine(get_settings(), role="migrate")
    with engine.connect() as connection:
        run_with(connection)
    engine.dispose()


if context.is_offline_mode():
    raise SystemExit("herald migrations run online only (they create partitions from today)")
run_online()
