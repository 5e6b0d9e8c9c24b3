"""A forced restore: replace what a backup contains in a database that has it already.

`pg_restore --clean` cannot do it for Herald's schema: it drops each partition's
primary key on its own, which PostgreSQL refuses ("cannot drop inherited constraint").
So the objects the backup creates are dropped first (tables with CASCADE, which takes
their partitions, indexes, constraints and owned sequences along), and the drops and
the whole restore run as ONE transaction: pg_restore writes the SQL script, psql runs
it after `BEGIN` and the drops (`ON_ERROR_STOP`), and `COMMIT` is sent only when
pg_restore finished cleanly. A restore that fails part-way leaves the target as it was.
"""

from __future__ import annotations

import contextlib
import re
import subprocess
import tempfile
from pathlib import Path

from worker.backups.pgtools import DatabaseTarget, PgTools
from worker.errors import RefusedError

_ENTRY = re.compile(r"^\d+; \d+ \d+ (?P<rest>.+)$")
#: TOC kinds we drop before restoring, longest first, with how to drop one.
_DROPPED = (
    ("MATERIALIZED VIEW", "MATERIALIZED VIEW"),
    ("TABLE", "TABLE"),
    ("VIEW", "VIEW"),
    ("SEQUENCE", "SEQUENCE"),
    ("DOMAIN", "DOMAIN"),
    ("TYPE", "TYPE"),
    ("FUNCTION", "FUNCTION"),
)
#: TOC kinds that start like a dropped kind but are parts of one (data, attach, ...).
_PARTS = ("TABLE DATA", "TABLE ATTACH", "SEQUENCE SET", "SEQUENCE OWNED BY")


class ReplaceError(RefusedError, RuntimeError):
    """The forced restore failed; the target was left unchanged (rolled back)."""


def quote(identifier: str) -> str:
    return '"' + identifier.replace('"', '""') + '"'


def drop_statement(toc_line: str) -> str | None:
    """The DROP for one `pg_restore --list` line, None when it creates nothing to drop."""
    entry = _ENTRY.match(toc_line.strip())
    if entry is None:
        return None
    rest = entry.group("rest")
    if rest.startswith(_PARTS):
        return None
    if rest.startswith("SCHEMA - "):
        name = rest.removeprefix("SCHEMA - ").rsplit(" ", 1)[0]
        return None if name == "public" else f"DROP SCHEMA IF EXISTS {quote(name)} CASCADE;"
    for kind, keyword in _DROPPED:
        if rest.startswith(kind + " "):
            schema, _, named = rest.removeprefix(kind + " ").partition(" ")
            name = named.rsplit(" ", 1)[0]  # the last word is the owner
            if kind == "FUNCTION":
                base, paren, args = name.partition("(")
                target = f"{quote(schema)}.{quote(base)}{paren}{args}"
            else:
                target = f"{quote(schema)}.{quote(name)}"
            return f"DROP {keyword} IF EXISTS {target} CASCADE;"
    return None


def drop_statements(tools: PgTools, dump: Path) -> list[str]:
    listed = subprocess.run(
        [tools.pg_restore, "--list", str(dump)], capture_output=True, text=True, check=False
    )
    if listed.returncode != 0:
        raise ReplaceError(f"pg_restore --list failed: {listed.stderr.strip()[-2000:]}")
    found = (drop_statement(line) for line in listed.stdout.splitlines())
    return [statement for statement in found if statement]


def restore_replacing(tools: PgTools, dump: Path, database_url: str) -> None:
    """Drop what `dump` contains from `database_url` and restore it, in one transaction."""
    target = DatabaseTarget.of(database_url)
    prelude = ["SET client_min_messages = warning;", "BEGIN;", *drop_statements(tools, dump)]
    with tempfile.TemporaryFile() as errors:
        script = subprocess.Popen(
            [tools.pg_restore, "--no-owner", "--file=-", str(dump)],
            stdout=subprocess.PIPE,
            stderr=errors,
        )
        psql = subprocess.Popen(
            [
                tools.psql,
                "--no-psqlrc",
                "--quiet",
                "--no-password",
                "--set=ON_ERROR_STOP=1",
                f"--dbname={target.url}",
            ],
            stdin=subprocess.PIPE,
            stdout=subprocess.DEVNULL,
            stderr=errors,
            env=target.env,
        )
        try:
            _feed(psql, script, "\n".join(prelude).encode() + b"\n")
        finally:
            for process in (script, psql):  # interrupted: killing psql rolls back
                if process.poll() is None:
                    process.kill()
                    process.wait()
            for pipe in (script.stdout, psql.stdin):
                if pipe is not None and not pipe.closed:
                    with contextlib.suppress(BrokenPipeError):
                        pipe.close()
        if psql.returncode != 0 or script.returncode != 0:
            errors.seek(0)
            message = errors.read().decode(errors="replace").strip()[-2000:] or "(no message)"
            raise ReplaceError(f"restore rolled back, target unchanged: {message}")


def _feed(psql: subprocess.Popen[bytes], script: subprocess.Popen[bytes], prelude: bytes) -> None:
    """Send psql the drops, pg_restore's script, and COMMIT only if pg_restore finished
    cleanly: without it psql ends the session and the whole transaction rolls back."""
    assert psql.stdin is not None and script.stdout is not None
    try:
        psql.stdin.write(prelude)
        for chunk in iter(lambda: script.stdout.read(1024 * 1024), b""):  # type: ignore[union-attr]
            psql.stdin.write(chunk)
        if script.wait() == 0:
            psql.stdin.write(b"COMMIT;\n")
        psql.stdin.close()
    except BrokenPipeError:  # psql stopped on an error (ON_ERROR_STOP): nothing committed
        pass
    psql.wait()
