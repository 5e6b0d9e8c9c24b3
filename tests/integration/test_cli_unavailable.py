"""A server Herald needs is down: the command says which and where in one line, exit 69.

Given the other servers up and one URL pointing at a port where nothing listens, when a
command needs that server, then stderr is one line naming it (password masked), stdout
is empty and the exit status is 69 (EX_UNAVAILABLE).
"""

from __future__ import annotations

import subprocess

import pytest

from tests.fixtures.cli import run_herald
from tests.fixtures.ports import free_port

PASSWORD = "s3cret-never-shown"


def assert_unavailable(result: subprocess.CompletedProcess[str], server: str) -> None:
    lines = result.stderr.splitlines()
    assert result.returncode == 69, result.stderr
    assert len(lines) == 1, result.stderr
    assert f" {server} at " in lines[0] and "is unreachable" in lines[0]
    assert lines[0].startswith("herald: ")
    assert PASSWORD not in result.stderr and "***" in lines[0]
    assert result.stdout == ""


@pytest.mark.parametrize("command", [("posts", "list"), ("dlq", "list")])
def test_postgresql_down_is_one_line_and_exit_69(
    herald_env: dict[str, str], command: tuple[str, ...]
) -> None:
    env = {
        **herald_env,
        "DATABASE_URL": f"postgresql://herald:{PASSWORD}@127.0.0.1:{free_port()}/herald",
    }

    result = run_herald(*command, env=env)

    assert_unavailable(result, "PostgreSQL")


def test_redis_down_is_one_line_and_exit_69(herald_env: dict[str, str]) -> None:
    env = {**herald_env, "REDIS_URL": f"redis://:{PASSWORD}@127.0.0.1:{free_port()}/0"}

    result = run_herald("breakers", env=env)

    assert_unavailable(result, "Redis")
    assert result.stderr.startswith("herald: reading the breakers failed: Redis at redis://")
