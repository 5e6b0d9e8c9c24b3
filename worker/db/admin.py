"""Databases as objects: create (optionally from a template), drop, migrate.

For whatever needs a scratch or per-run database on the configured server: test
fixtures, benchmarks, and backup verification (a restore into a scratch database).
"""

from __future__ import annotations

import psycopg
from psycopg import sql
from sqlalchemy import create_engine
from sqlalchemy.engine import make_url

from worker.db.engine import libpq_url, sqlalchemy_url


def with_database(url: str, name: str) -> str:
    """`url` pointing at database `name` instead."""
    return make_url(url).set(database=name).render_as_string(hide_password=False)


def admin_connection(url: str) -> psycopg.Connection[tuple[object, ...]]:
    # CREATE/DROP DATABASE cannot run inside a transaction.
    return psycopg.connect(libpq_url(url), autocommit=True, connect_timeout=5)


def create_database(admin_url: str, name: str, template: str | None = None) -> str:
    """(Re)create `name` on `admin_url`'s server, as a copy of `template` if given;
    return its URL. An existing database of that name is dropped first."""
    drop_database(admin_url, name)
    statement = sql.SQL("CREATE DATABASE {}").format(sql.Identifier(name))
    if template:
        statement += sql.SQL(" TEMPLATE {}").format(sql.Identifier(template))
    with admin_connection(admin_url) as conn:
        conn.execute(statement)
    return with_database(admin_url, name)


def drop_database(admin_url: str, name: str) -> None:
    """Drop `name` if it exists, closing its connections (FORCE)."""
    with admin_connection(admin_url) as conn:
        conn.execute(
            sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(sql.Identifier(name))
        )


def migrate_database(database_url: str) -> None:
    """Upgrade `database_url` to the newest revision (its own short-lived engine)."""
    from worker.db.migrate import upgrade

    engine = create_engine(sqlalchemy_url(database_url))
    try:
        with engine.begin() as conn:
            upgrade(connection=conn)
    finally:
        engine.dispose()
