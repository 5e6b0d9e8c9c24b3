"""Herald's image as a worker in pytest-celery's Docker-based setup (`celery_setup`).

Where a Docker engine is reachable, pytest-celery builds Herald's image from the
repository's Dockerfile, starts it as the worker next to its Redis and RabbitMQ vendor
containers (one run per broker, Redis as result backend) and the test talks to it
as any Celery client would. Elsewhere the module skips with that reason: these
machines have a docker client but no engine and no image registry. Herald's other
integration tests cover the same worker against real servers without Docker.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from pytest_celery import (
    CELERY_RABBITMQ_BROKER,
    CELERY_REDIS_BROKER,
    CeleryTestBroker,
    CeleryTestSetup,
    CeleryTestWorker,
    CeleryWorkerCluster,
    CeleryWorkerContainer,
)
from pytest_docker_tools import build, container, fxtr

ROOT = Path(__file__).resolve().parents[2]
#: The worker's Celery node name and queue: the publish queue Herald's workers consume.
WORKER_NAME = "herald_smoke"
WORKER_QUEUE = "posts"
CONTAINER_TIMEOUT_S = 120


#: Where docker-py looks for the engine when DOCKER_HOST is unset.
DEFAULT_SOCKET = Path("/var/run/docker.sock")


def _engine_unreachable() -> str | None:
    """Why no Docker engine answers, or None when one does."""
    if not os.environ.get("DOCKER_HOST") and not DEFAULT_SOCKET.exists():
        # Checked first: docker-py leaves its socket unclosed when the engine is absent.
        return f"no Docker engine: DOCKER_HOST is unset and {DEFAULT_SOCKET} does not exist"
    import docker

    try:
        client = docker.from_env(timeout=3)
    except docker.errors.DockerException as exc:
        return f"no Docker engine reachable ({exc}); pytest-celery's setup runs containers"
    try:
        client.ping()
    except docker.errors.DockerException as exc:
        return f"the Docker engine does not answer ({exc}); pytest-celery needs one"
    finally:
        client.close()
    return None


_UNREACHABLE = _engine_unreachable()
pytestmark = [
    pytest.mark.skipif(_UNREACHABLE is not None, reason=_UNREACHABLE or ""),
    # Image builds and containers load the machine: never beside another xdist group.
    pytest.mark.xdist_group("docker"),
]


class HeraldWorkerContainer(CeleryWorkerContainer):
    """Herald's image running `celery -A worker.app worker` on the publish queue."""

    @classmethod
    def command(cls, *args: str, **kwargs: Any) -> list[str]:
        return [
            "celery", "-A", "worker.app", "worker",
            f"--loglevel={cls.log_level()}",
            "--hostname", f"{cls.worker_name()}@%h",
            "--queues", cls.worker_queue(),
            "--pool", "solo",
            *args,
        ]  # fmt: skip

    @classmethod
    def version(cls) -> str:
        import celery

        return celery.__version__

    @classmethod
    def worker_name(cls) -> str:
        return WORKER_NAME

    @classmethod
    def worker_queue(cls) -> str:
        return WORKER_QUEUE


@pytest.fixture
def default_worker_container_cls() -> type[CeleryWorkerContainer]:
    return HeraldWorkerContainer


@pytest.fixture(scope="session")
def default_worker_container_session_cls() -> type[CeleryWorkerContainer]:
    return HeraldWorkerContainer


@pytest.fixture
def default_worker_env(
    default_worker_container_cls: type[CeleryWorkerContainer],
    celery_worker_cluster_config: dict[str, Any],
) -> dict[str, str]:
    """pytest-celery's broker and backend URLs under the names Herald's settings read.

    Development mode with a database URL that no test call reaches: the smoke checks
    that the image's worker starts, joins the broker and serves Herald's tasks.
    """
    env: dict[str, str] = default_worker_container_cls.initial_env(celery_worker_cluster_config)
    return {
        **env,
        "BROKER_URL": env["CELERY_BROKER_URL"],
        "REDIS_URL": env["CELERY_RESULT_BACKEND"],
        "DATABASE_URL": "postgresql://herald@127.0.0.1:1/herald",
        "HERALD_ENV": "development",
    }


herald_worker_image = build(path=str(ROOT), tag="herald:pytest-celery")

default_worker_container = container(
    image="{herald_worker_image.id}",
    environment=fxtr("default_worker_env"),
    network="{default_pytest_celery_network.name}",
    wrapper_class=HeraldWorkerContainer,
    timeout=CONTAINER_TIMEOUT_S,
    command=fxtr("default_worker_command"),
)


@pytest.fixture(params=[CELERY_REDIS_BROKER, CELERY_RABBITMQ_BROKER])
def celery_broker(request: pytest.FixtureRequest) -> Iterator[CeleryTestBroker]:
    """Both brokers Herald supports, in a fixed order (pytest-celery's own list is a set,
    whose order differs between xdist workers, which must collect the same tests)."""
    broker: CeleryTestBroker = request.getfixturevalue(request.param)
    yield broker
    broker.teardown()


@pytest.fixture
def celery_worker_cluster(
    celery_setup_worker: CeleryTestWorker,
) -> Iterator[CeleryWorkerCluster]:
    """The Docker worker alone (tests/conftest.py gives `celery_worker` back to Celery's
    in-process fixture, so pytest-celery's cluster is built from its node directly)."""
    cluster = CeleryWorkerCluster(celery_setup_worker)
    yield cluster
    cluster.teardown()


def test_herald_image_worker_serves_herald_tasks_on_each_broker(
    celery_setup: CeleryTestSetup,
) -> None:
    # Given pytest-celery's setup with Herald's image as its worker
    assert celery_setup.ready(control=True)
    worker = celery_setup.worker
    assert worker is not None
    # When a client asks the worker which tasks it serves
    inspect = celery_setup.app.control.inspect(destination=[worker.hostname()], timeout=10)
    registered = inspect.registered() or {}
    # Then Herald's task names (a contract other languages send to) are there
    assert "posts.publish" in registered.get(worker.hostname(), [])
