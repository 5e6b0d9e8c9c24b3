"""One error root: every exception Herald defines is a HeraldError on the right branch,
and the `herald` command turns each branch into one line on stderr and its exit status.
"""

from __future__ import annotations

import importlib
import pkgutil
from collections.abc import Iterator

import click
import kombu.exceptions
import psycopg
import pybreaker
import pytest
import redis
import sqlalchemy.exc
from click.testing import CliRunner, Result

from worker import runtime
from worker.cli.failures import HeraldGroup
from worker.errors import (
    ConfigurationError,
    HeraldError,
    RefusedError,
    UnavailableError,
)
from worker.platforms.errors import PermanentError, PlatformError

PACKAGES = ("worker", "tasks", "schedules")


def defined_exceptions() -> Iterator[type[BaseException]]:
    """Every exception class defined in a module of PACKAGES (imported to find them)."""
    for package in PACKAGES:
        root = importlib.import_module(package)
        names = [package] + [m.name for m in pkgutil.walk_packages(root.__path__, package + ".")]
        for name in names:
            if name.rsplit(".", 1)[-1] == "__main__":
                continue  # running it is what importing it does
            module = importlib.import_module(name)
            for value in vars(module).values():
                if (
                    isinstance(value, type)
                    and issubclass(value, BaseException)
                    and value.__module__ == name
                ):
                    yield value


def test_every_exception_herald_defines_descends_from_herald_error() -> None:
    found = set(defined_exceptions())

    assert len(found) >= 30, sorted(cls.__qualname__ for cls in found)  # the walk saw them
    strays = sorted(
        f"{c.__module__}.{c.__qualname__}" for c in found if not issubclass(c, HeraldError)
    )
    assert strays == []


def _exception(path: str) -> type[BaseException]:
    module, name = path.rsplit(".", 1)
    found: type[BaseException] = getattr(importlib.import_module(module), name)
    return found


#: (class, branch, builtin it was before and still is, for the callers that catch that)
BRANCHES = [
    ("worker.client.HeraldClientError", RefusedError, ValueError),
    ("worker.client.InvalidInputError", RefusedError, ValueError),
    ("worker.client.PostNotModifiableError", RefusedError, ValueError),
    ("worker.db.accounts.AccountError", RefusedError, ValueError),
    ("worker.db.accounts.AccountNotFound", RefusedError, ValueError),
    ("worker.resilience.limits_config.LimitSpecError", RefusedError, ValueError),
    ("worker.publishing.publish.InvalidPublishInputError", RefusedError, ValueError),
    ("worker.platforms.sandbox.google.VideoRejectedError", RefusedError, ValueError),
    ("worker.backups.dump.BackupError", RefusedError, RuntimeError),
    ("worker.backups.pgtools.PgToolsError", RefusedError, RuntimeError),
    ("worker.backups.replace.ReplaceError", RefusedError, RuntimeError),
    ("worker.backups.restore.RestoreRefusedError", RefusedError, Exception),
    ("worker.coordination.locks.AlreadyRunningError", RefusedError, Exception),
    ("worker.deadletter.letter.InvalidLetterError", RefusedError, Exception),
    ("worker.archival.export.ExportError", RefusedError, Exception),
    ("worker.local.embedded.EmbeddedError", UnavailableError, RuntimeError),
    ("worker.settings.SettingsError", ConfigurationError, Exception),
    ("worker.platforms.errors.OutcomeUnknownError", PlatformError, Exception),
    ("worker.resilience.breaker.BreakerOpen", HeraldError, pybreaker.CircuitBreakerError),
]


@pytest.mark.parametrize(("path", "branch", "builtin"), BRANCHES)
def test_each_error_is_on_its_branch_and_keeps_its_builtin(
    path: str, branch: type[HeraldError], builtin: type[Exception]
) -> None:
    error = _exception(path)

    assert issubclass(error, branch)
    assert issubclass(error, builtin)


def test_account_not_found_is_one_class() -> None:
    from worker.client import HeraldClientError, UnknownAccountError
    from worker.db.accounts import AccountError, AccountNotFound

    assert UnknownAccountError is AccountNotFound
    assert issubclass(AccountNotFound, AccountError)
    assert issubclass(AccountNotFound, HeraldClientError)
    assert str(AccountNotFound.of("x")) == "account_id: no account 'x' (not a UUID)"


def _herald_raising(error: BaseException, *args: str) -> Result:
    """Run a one-command `herald` whose command raises `error`."""

    @click.group(cls=HeraldGroup)
    @click.option("--debug", is_flag=True)
    def herald(debug: bool) -> None:
        pass

    @herald.command()
    def boom() -> None:
        raise error

    return CliRunner().invoke(herald, [*args, "boom"])


def _psycopg_connection_failure() -> psycopg.OperationalError:
    return psycopg.OperationalError('connection to server at "127.0.0.1", port 1 failed')


def _wrapped(orig: Exception) -> sqlalchemy.exc.OperationalError:
    return sqlalchemy.exc.OperationalError("SELECT 1", {}, orig)


@pytest.fixture
def settings_with_passwords(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    """Settings whose URLs carry passwords (no server is contacted: they only name one)."""
    monkeypatch.setenv("DATABASE_URL", "postgresql://herald:pg-s3cret@127.0.0.1:1/herald")
    monkeypatch.setenv("REDIS_URL", "redis://:redis-s3cret@127.0.0.1:1/0")
    monkeypatch.delenv("BROKER_URL", raising=False)
    runtime.reset()
    yield
    runtime.reset()


#: (raised by a command, exit status, start of the one line on stderr)
EXITS = [
    (RefusedError("no post 42"), 1, "herald: no post 42"),
    (PermanentError("youtube", "quota exceeded", status=403), 1, "herald: youtube: quota"),
    (UnavailableError("PostgreSQL at db is unreachable"), 69, "herald: PostgreSQL at db"),
    (ConfigurationError(["REDIS_URL: not a URL"]), 2, "herald: configuration error"),
    (_psycopg_connection_failure(), 69, "herald: PostgreSQL at postgresql://herald:***@"),
    (_wrapped(_psycopg_connection_failure()), 69, "herald: PostgreSQL at postgresql://"),
    (redis.ConnectionError("Error 111 connecting"), 69, "herald: Redis at redis://:***@"),
    (redis.TimeoutError("Timeout reading"), 69, "herald: Redis at redis://:***@"),
    (kombu.exceptions.OperationalError("refused"), 69, "herald: the broker at redis://:***@"),
]


@pytest.mark.usefixtures("settings_with_passwords")
@pytest.mark.parametrize(("error", "status", "line"), EXITS, ids=lambda v: type(v).__name__)
def test_the_cli_ends_each_branch_with_one_line_and_its_status(
    error: BaseException, status: int, line: str
) -> None:
    result = _herald_raising(error)

    assert result.exit_code == status
    assert result.stderr.startswith(line)
    assert "s3cret" not in result.stderr
    assert "Traceback" not in result.stderr
    assert result.stdout == ""


def test_configuration_errors_list_one_problem_per_line() -> None:
    result = _herald_raising(ConfigurationError(["REDIS_URL: not a URL", "HERALD_ENV: bad"]))

    assert result.stderr == (
        "herald: configuration error\n  REDIS_URL: not a URL\n  HERALD_ENV: bad\n"
    )


@pytest.mark.parametrize(
    "error",
    [ValueError("a bug"), _wrapped(psycopg.errors.LockNotAvailable("lock timeout"))],
    ids=["bug", "query-error"],
)
def test_anything_else_keeps_its_traceback(error: Exception) -> None:
    result = _herald_raising(error)

    assert result.exit_code == 1
    assert result.exception is error  # not handled: click's runner holds it, as Python would


def test_debug_prints_the_traceback_too() -> None:
    result = _herald_raising(RefusedError("no post 42"), "--debug")

    assert result.exit_code == 1
    assert "Traceback" in result.stderr
    assert result.stderr.endswith("herald: no post 42\n")
