"""Finding pg_dump / pg_restore that can handle the server, and running them safely.

pg_dump refuses a server of a newer major version than its own, so the tools are
chosen by version, in this order: `HERALD_PG_BIN_DIR` (the operator's choice, used
or refused, never second-guessed), the embedded server's own binaries when the
database is the embedded one, the newest `/usr/lib/postgresql/*/bin`, then `PATH`.
The password never appears on a command line (visible in `ps`): it goes to the tool
in `PGPASSWORD`, and the URL passed with `-d` has none.
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import warnings
from dataclasses import dataclass
from pathlib import Path

import psycopg
from sqlalchemy.engine import URL, make_url

from worker.db.engine import libpq_url
from worker.errors import RefusedError
from worker.settings import Settings

#: Where Debian/Ubuntu install each PostgreSQL major version's client tools.
DEBIAN_PG_ROOT = Path("/usr/lib/postgresql")
_VERSION = re.compile(r"\(PostgreSQL\)\s+(\d+)")


class PgToolsError(RefusedError, RuntimeError):
    """No usable pg_dump / pg_restore; the message says what was tried."""


@dataclass(frozen=True)
class PgTools:
    """A directory holding pg_dump and pg_restore of one major version."""

    bin_dir: Path
    major: int

    @property
    def pg_dump(self) -> str:
        return str(self.bin_dir / "pg_dump")

    @property
    def pg_restore(self) -> str:
        return str(self.bin_dir / "pg_restore")

    @property
    def psql(self) -> str:
        return str(self.bin_dir / "psql")


@dataclass(frozen=True)
class DatabaseTarget:
    """How a libpq tool reaches one database: a password-free URL plus environment."""

    url: str  # no password: safe on a command line
    env: dict[str, str]

    @classmethod
    def of(cls, database_url: str) -> DatabaseTarget:
        url = make_url(libpq_url(database_url))
        env = {**os.environ, "PGCONNECT_TIMEOUT": "10"}
        env.pop("PGPASSWORD", None)
        if url.password is not None:
            env["PGPASSWORD"] = str(url.password)
        # URL.set() ignores None: build the URL again without the password.
        bare = URL.create(
            url.drivername, url.username, None, url.host, url.port, url.database, url.query
        )
        return cls(bare.render_as_string(hide_password=False), env)

    @property
    def database(self) -> str:
        return make_url(self.url).database or ""


def tool_major(binary: Path) -> int | None:
    """Major version printed by `binary --version`, None when it is absent or broken."""
    if not binary.is_file():
        return None
    try:
        out = subprocess.run(
            [str(binary), "--version"], capture_output=True, text=True, timeout=10, check=True
        ).stdout
    except (OSError, subprocess.SubprocessError):
        return None
    match = _VERSION.search(out)
    return int(match.group(1)) if match else None


def server_major(database_url: str) -> int:
    with psycopg.connect(libpq_url(database_url), connect_timeout=10) as conn:
        row = conn.execute("SHOW server_version_num").fetchone()
    assert row is not None
    return int(str(row[0])) // 10000


def find_tools(settings: Settings, database_url: str | None = None) -> PgTools:
    """pg_dump/pg_restore at least as new as the server of `database_url` (default: ours)."""
    url = database_url or settings.database_url
    assert url is not None, "settings must be resolved (get_settings())"
    need = server_major(url)
    if settings.pg_bin_dir is not None:
        return _explicit(settings.pg_bin_dir, need)
    tried = []
    for bin_dir in candidate_dirs(settings, url):
        major = tool_major(bin_dir / "pg_dump")
        if major is not None and major >= need and tool_major(bin_dir / "pg_restore") == major:
            return PgTools(bin_dir, major)
        tried.append(f"{bin_dir} ({major or 'absent'})")
    raise PgToolsError(
        f"no pg_dump/pg_restore of PostgreSQL {need} or newer (the server's version); "
        f"tried {', '.join(tried) or 'nothing'}; set HERALD_PG_BIN_DIR"
    )


def _explicit(bin_dir: Path, need: int) -> PgTools:
    major = tool_major(bin_dir / "pg_dump")
    if major is None:
        raise PgToolsError(f"HERALD_PG_BIN_DIR: no working pg_dump in {bin_dir}")
    if major < need:
        raise PgToolsError(
            f"HERALD_PG_BIN_DIR: pg_dump in {bin_dir} is PostgreSQL {major}, older than the "
            f"server ({need}); it cannot dump it"
        )
    return PgTools(bin_dir, major)


def candidate_dirs(settings: Settings, database_url: str) -> list[Path]:
    """Directories to try, best first (see the module docstring)."""
    found = []
    embedded = _embedded_bin_dir(settings, database_url)
    if embedded is not None:
        found.append(embedded)
    if DEBIAN_PG_ROOT.is_dir():
        versions = [p for p in DEBIAN_PG_ROOT.iterdir() if p.name.isdigit()]
        found += [p / "bin" for p in sorted(versions, key=lambda p: int(p.name), reverse=True)]
    on_path = shutil.which("pg_dump")
    if on_path:
        found.append(Path(on_path).resolve().parent)
    return list(dict.fromkeys(found))


def _embedded_bin_dir(settings: Settings, database_url: str) -> Path | None:
    """pgserver's binaries when `database_url` is the embedded server (same host:port)."""
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # pgserver warns about XDG_RUNTIME_DIR at import
            import pgserver._commands as pg_commands

            from worker.local import embedded
    except ImportError:
        return None
    running = embedded.status(settings.home).get("postgres")
    if running is None:
        return None
    ours, theirs = make_url(database_url), make_url(running)
    if (ours.host, ours.port) != (theirs.host, theirs.port):
        return None
    return Path(pg_commands.POSTGRES_BIN_PATH)
