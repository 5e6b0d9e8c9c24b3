"""What `herald run` starts and with which environment (no processes started here)."""

from __future__ import annotations

import pytest
from pydantic import SecretStr

from worker.local.flower import AUTH_VARIABLE, flower_env, flower_env_changes, flower_login
from worker.local.processes import (
    METRICS_PORT_VARIABLE,
    WORKER_ENV,
    Extras,
    metrics_ports,
    run_plan,
)
from worker.local.supervisor import apply_env_changes
from worker.settings import Settings, SettingsError


def test_workers_and_beat_get_consecutive_metrics_ports_and_helpers_none() -> None:
    extras = Extras(sandbox_port=8765, metrics_port=9900, flower=("127.0.0.1", 5555))
    children = run_plan(2, 4, extras=extras)

    names = ["sandbox", "posts-0", "posts-1", "background", "beat", "flower"]
    assert [c.name for c in children] == names
    ports = {"posts-0": 9900, "posts-1": 9901, "background": 9902, "beat": 9903}
    assert metrics_ports(children) == ports


def test_no_metrics_port_means_no_metrics_servers() -> None:
    children = run_plan(1, 1, extras=Extras(metrics_port=None))

    assert not any(METRICS_PORT_VARIABLE in c.env for c in children)


def test_every_worker_and_only_workers_shut_down_softly_on_sigterm() -> None:
    for child in run_plan(2, 1, extras=Extras(flower=("127.0.0.1", 5555))):
        is_worker = "worker" in child.argv
        assert (child.env.items() >= WORKER_ENV.items()) is is_worker, child.name


def test_flower_gets_the_login_in_its_environment_not_its_command_line() -> None:
    login = flower_login(Settings(flower_basic_auth=SecretStr("ops:pw-1"), _env_file=None))
    base = {"PATH": "/bin", "FLOWER_BASIC_AUTH_FILE": "/run/secrets/x", "FLOWER_PORT": "1"}
    changes = flower_env_changes(base, login)
    extras = Extras(flower=("0.0.0.0", 5555), flower_env=changes)
    (flower,) = [c for c in run_plan(1, 1, extras=extras) if c.name == "flower"]

    env = apply_env_changes(base, flower.env)
    assert env == {"PATH": "/bin", AUTH_VARIABLE: "ops:pw-1"} == flower_env(base, login)
    assert not any("pw-1" in arg for arg in flower.argv)
    assert "--port=5555" in flower.argv and "--address=0.0.0.0" in flower.argv


def test_development_without_a_login_gets_a_fresh_random_one() -> None:
    settings = Settings(env="development", flower_basic_auth=None, _env_file=None)

    first, second = flower_login(settings), flower_login(settings)

    assert first.generated and first.user == "herald"
    assert len(first.password) >= 20 and first.password != second.password
    assert first.password not in repr(first)


def test_production_without_a_login_is_refused() -> None:
    settings = Settings.model_construct(env="production", flower_basic_auth=None)

    with pytest.raises(SettingsError, match="FLOWER_BASIC_AUTH"):
        flower_login(settings)
