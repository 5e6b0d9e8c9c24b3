"""The compose stack, for real: herald:latest in containers, started by Compose.

Run by deploy/stack/stack-test.sh (`make stack-test`), which builds the image and starts
the private Docker daemon this talks to (DOCKER_HOST); skipped unless HERALD_STACK=1.
The stack is docker-compose.yml with deploy/stack/compose.test.yml (host networking,
the machine's PostgreSQL and Redis, a sandbox platform): started once for the module,
the tests below run in file order against it, and it is removed at the end.
"""

from __future__ import annotations

import base64
import json
import os
import secrets
import shlex
import subprocess
import time
import urllib.error
import urllib.request
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TypeVar

import psycopg
import pytest
import redis
import yaml

pytestmark = pytest.mark.skipif(
    os.environ.get("HERALD_STACK") != "1",
    reason="needs Docker and the herald image: deploy/stack/stack-test.sh sets HERALD_STACK=1",
)

ROOT = Path(__file__).resolve().parents[2]
PROJECT = "herald-stack"
DOCKER = os.environ.get("DOCKER", "docker")
#: Compose v1 (Debian 12's docker-compose) or v2 (`docker compose`).
COMPOSE_TOOL = shlex.split(os.environ.get("HERALD_COMPOSE", "docker-compose"))
SOURCES = ["--file", str(ROOT / "docker-compose.yml")]
SOURCES += ["--file", str(ROOT / "deploy" / "stack" / "compose.test.yml")]
#: Commands take the effective file written by the `stack` fixture (see effective_file).
COMPOSE: list[str] = []
#: The machine's servers, as compose.test.yml points the containers at them.
ADMIN_URL = os.environ.get(
    "HERALD_STACK_ADMIN_URL", "postgresql://postgres@127.0.0.1:5432/postgres"
)
DATABASE = "herald_stack"
REDIS_DB = 13
SANDBOX = "http://127.0.0.1:18765"
FLOWER = "http://127.0.0.1:15555"
HERALD_UID = 10001
#: What this test starts; postgres and redis (stand-ins) come along as dependencies.
STARTED = ["migrate", "worker-posts", "worker-background", "beat", "flower", "health", "sandbox"]
#: Services that run Herald's code (the sandbox does too, in development mode).
HERALD_SERVICES = ["worker-posts", "worker-background", "beat", "flower", "health"]
WORKERS = ["worker-posts", "worker-background"]
#: docker-compose.yml's HERALD_SOFT_SHUTDOWN_TIMEOUT for workers.
SOFT_SHUTDOWN_SECONDS = 30
HEALTHY_WITHIN = 420.0
PUBLISHED_WITHIN = 120.0

T = TypeVar("T")


def run(argv: list[str], *, input: str | None = None, timeout: float = 120) -> str:
    """stdout of a command that must succeed; its output is the failure message otherwise."""
    result = subprocess.run(
        argv,
        input=input,
        capture_output=True,
        text=True,
        timeout=timeout,
        check=False,
        env=os.environ | STACK_ENV,
    )
    assert result.returncode == 0, (
        f"{shlex.join(argv)} exited {result.returncode}:\n{result.stdout}{result.stderr}"
    )
    return result.stdout


def wait_for(what: str, probe: Callable[[], T | None], within: float, every: float = 0.5) -> T:
    """The first truthy result of probe(); fails naming `what` when the deadline passes."""
    deadline = time.monotonic() + within
    while True:
        found = probe()
        if found:
            return found
        if time.monotonic() > deadline:
            pytest.fail(f"{what}: not within {within:.0f}s")
        time.sleep(every)


def http(
    url: str, *, auth: str | None = None, body: dict[str, Any] | None = None
) -> tuple[int, Any]:
    """(status, parsed JSON or text) of a GET, or of a POST when body is given."""
    request = urllib.request.Request(url, data=None if body is None else json.dumps(body).encode())
    if body is not None:
        request.add_header("Content-Type", "application/json")
    if auth is not None:
        request.add_header("Authorization", "Basic " + base64.b64encode(auth.encode()).decode())
    try:
        with urllib.request.urlopen(request, timeout=10) as response:
            status, text = response.status, response.read().decode()
    except urllib.error.HTTPError as error:
        with error:
            status, text = error.code, error.read().decode()
    try:
        return status, json.loads(text)
    except ValueError:
        return status, text


# --- the stack -------------------------------------------------------------------------


@dataclass(frozen=True)
class Secrets:
    directory: Path
    fernet_key: str
    flower_login: str


STACK_ENV: dict[str, str] = {}


def write_secrets(directory: Path) -> Secrets:
    """The compose secrets, readable by the herald group only (as secrets/README.md says)."""
    fernet_key = base64.urlsafe_b64encode(os.urandom(32)).decode()
    flower_login = f"admin:{secrets.token_hex(16)}"
    files = {
        "postgres_password": "unused: the machine's PostgreSQL trusts loopback",
        "database_url": f"postgresql+psycopg://postgres@127.0.0.1:5432/{DATABASE}",
        "token_encryption_keys": fernet_key,
        "flower_basic_auth": flower_login,
        "grafana_admin_password": "unused",
    }
    directory.chmod(0o755)
    for name, value in files.items():
        path = directory / name
        path.write_text(value)
        os.chown(path, 0, HERALD_UID)
        path.chmod(0o640)
    return Secrets(directory, fernet_key, flower_login)


def fresh_backends() -> None:
    """An empty database and Redis db of the stack's own: nothing left from a last run."""
    with psycopg.connect(ADMIN_URL, autocommit=True) as connection:
        connection.execute(f"DROP DATABASE IF EXISTS {DATABASE} WITH (FORCE)")
        connection.execute(f"CREATE DATABASE {DATABASE}")
    with redis.Redis(host="127.0.0.1", port=6379, db=REDIS_DB) as client:
        client.flushdb()


def containers(service: str) -> list[str]:
    """Ids of this project's containers of one service, stopped ones included."""
    found = run(
        [
            DOCKER,
            "ps",
            "--all",
            "--quiet",
            "--filter",
            f"label=com.docker.compose.project={PROJECT}",
            "--filter",
            f"label=com.docker.compose.service={service}",
        ]
    )
    return found.split()


def inspect(service: str) -> dict[str, Any]:
    ids = containers(service)
    assert len(ids) == 1, f"{service}: expected one container, found {ids}"
    document: list[dict[str, Any]] = json.loads(run([DOCKER, "inspect", ids[0]]))
    return document[0]


def herald(*argv: str, input: str | None = None, service: str = "worker-background") -> str:
    """Run a herald command inside a running container, as the image's user."""
    return run([*COMPOSE, "exec", "-T", service, "herald", *argv], input=input, timeout=300)


def database() -> psycopg.Connection[tuple[Any, ...]]:
    return psycopg.connect(ADMIN_URL.rsplit("/", 1)[0] + f"/{DATABASE}", autocommit=True)


def effective_file(directory: Path) -> Path:
    """docker-compose.yml with the override merged in, minus every published port: with
    host networking a container publishes nothing, and Compose v1 refuses the two
    together, while an override file can add ports but never remove the base's."""
    merged = yaml.safe_load(run([*COMPOSE_TOOL, *SOURCES, "config"]))
    for service in merged["services"].values():
        service.pop("ports", None)
    path = directory / "stack.yml"
    path.write_text(yaml.safe_dump(merged, sort_keys=False))
    return path


@pytest.fixture(scope="module")
def stack(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Secrets]:
    secrets_ = write_secrets(tmp_path_factory.mktemp("secrets"))
    STACK_ENV.update(
        HERALD_STACK_SECRETS=str(secrets_.directory), HERALD_STACK_REDIS_DB=str(REDIS_DB)
    )
    compose_file = effective_file(tmp_path_factory.mktemp("compose"))
    project = ["--project-name", PROJECT, "--project-directory", str(ROOT)]
    COMPOSE[:] = [*COMPOSE_TOOL, "--file", str(compose_file), *project]
    fresh_backends()
    logs = ROOT / ".herald" / "stack-logs.txt"
    try:
        # Returns once the dependencies are healthy and migrate has exited 0.
        run([*COMPOSE, "up", "--detach", "--no-build", *STARTED], timeout=600)
        yield secrets_
    finally:
        logs.parent.mkdir(exist_ok=True)
        logs.write_text(
            subprocess.run(
                [*COMPOSE, "logs", "--no-color", "--timestamps"],
                capture_output=True,
                text=True,
                timeout=120,
                check=False,
                env=os.environ | STACK_ENV,
            ).stdout
        )
        run([*COMPOSE, "down", "--volumes", "--remove-orphans", "--timeout", "10"], timeout=300)


def schedule_posts(account: dict[str, Any], contents: list[str]) -> list[str]:
    """Posts due now, inserted as any other language would: the SQL contract."""
    with database() as connection:
        return [
            str(
                connection.execute(
                    "INSERT INTO scheduled_posts "
                    "(user_id, social_account_id, platform, content, media, scheduled_at) "
                    "VALUES (%s, %s, 'instagram', %s, '[\"https://cdn.example/p.jpg\"]', now()) "
                    "RETURNING id",
                    (account["user_id"], account["id"], content),
                ).fetchone()[0]  # type: ignore[index]
            )
            for content in contents
        ]


def statuses(post_ids: list[str]) -> dict[str, str]:
    with database() as connection:
        rows = connection.execute(
            "SELECT id::text, status FROM scheduled_posts WHERE id::text = ANY(%s)", (post_ids,)
        ).fetchall()
    return dict(rows)


def ledger() -> list[dict[str, Any]]:
    """What the sandbox published: `client_ref` is Herald's post id."""
    status, entries = http(f"{SANDBOX}/__sandbox/ledger")
    assert status == 200, entries
    return list(entries)


def times_published(post_ids: list[str]) -> dict[str, int]:
    refs = [entry.get("client_ref") for entry in ledger()]
    return {post_id: refs.count(post_id) for post_id in post_ids}


@pytest.fixture(scope="module")
def account(stack: Secrets) -> dict[str, Any]:
    """An Instagram account added with `herald accounts add`, its token piped in."""
    token = f"stack-access-{secrets.token_hex(16)}"
    added = herald(
        "accounts",
        "add",
        "--platform",
        "instagram",
        "--external-id",
        f"1784{secrets.randbelow(10**12):012d}",
        "--access-token",
        "-",
        input=token + "\n",
    )
    described: dict[str, Any] = json.loads(added)
    assert token not in added
    return described | {"token": token}


# --- what the stack proves ---------------------------------------------------------------


def test_migrate_exits_0(stack: Secrets) -> None:
    state = inspect("migrate")["State"]

    assert (state["Status"], state["ExitCode"]) == ("exited", 0)


def test_every_herald_container_turns_healthy_as_the_herald_user(stack: Secrets) -> None:
    watched = [*HERALD_SERVICES, "sandbox", "postgres", "redis"]

    def health() -> dict[str, str]:
        return {name: inspect(name)["State"].get("Health", {}).get("Status") for name in watched}

    def all_healthy() -> bool:
        return set(health().values()) == {"healthy"}

    deadline = time.monotonic() + HEALTHY_WITHIN
    while not all_healthy():
        if time.monotonic() > deadline:
            last = {
                name: (inspect(name)["State"].get("Health") or {}).get("Log", [])[-1:]
                for name in watched
            }
            pytest.fail(f"not healthy within {HEALTHY_WITHIN:.0f}s: {health()}\n{last}")
        time.sleep(1)
    for name in HERALD_SERVICES:
        assert inspect(name)["Config"]["User"] == f"{HERALD_UID}:{HERALD_UID}", name


def test_a_post_inserted_in_sql_is_published_once(stack: Secrets, account: dict[str, Any]) -> None:
    content = f"stack test {secrets.token_hex(4)}"

    [post_id] = schedule_posts(account, [content])

    wait_for(
        f"post {post_id} published",
        lambda: statuses([post_id]).get(post_id) == "published",
        PUBLISHED_WITHIN,
    )
    assert times_published([post_id]) == {post_id: 1}
    with database() as connection:
        external_id = connection.execute(
            "SELECT external_post_id FROM scheduled_posts WHERE id = %s", (post_id,)
        ).fetchone()
    [published] = [entry for entry in ledger() if entry["client_ref"] == post_id]
    assert external_id == (published["external_id"],)
    assert published["account"] == account["external_id"]


def test_flower_needs_the_login_from_the_compose_secret(stack: Secrets) -> None:
    assert http(f"{FLOWER}/")[0] == 401
    assert http(f"{FLOWER}/", auth="admin:wrong")[0] == 401
    assert http(f"{FLOWER}/", auth=stack.flower_login)[0] == 200


def test_backup_now_writes_a_verified_backup_as_the_herald_user(stack: Secrets) -> None:
    row = json.loads(herald("backup", "now"))

    assert row["verify_ok"] is True, row
    owner = run([*COMPOSE, "exec", "-T", "worker-background", "stat", "-c", "%u", row["file"]])
    assert owner.strip() == str(HERALD_UID)
    assert Path(row["file"]).parent == Path("/var/lib/herald/backups")


def test_stop_is_a_soft_shutdown_that_loses_nothing(
    stack: Secrets, account: dict[str, Any]
) -> None:
    """SIGTERM while publishes are in flight: the workers finish or requeue them, exit 0
    within the soft-shutdown timeout, and after a restart every post is published once."""
    http(f"{SANDBOX}/__sandbox/faults", body={"platform": "instagram", "latency_ms": 3000})
    contents = [f"in flight {i} {secrets.token_hex(4)}" for i in range(6)]
    post_ids = schedule_posts(account, contents)
    wait_for(
        "a publish in flight",
        lambda: "publishing" in statuses(post_ids).values(),
        PUBLISHED_WITHIN,
        every=0.1,
    )

    started = time.monotonic()
    run([*COMPOSE, "stop", *HERALD_SERVICES], timeout=180)
    took = time.monotonic() - started

    states = {name: inspect(name)["State"] for name in WORKERS}
    seen = {
        name: (state["Status"], state["ExitCode"], state["StartedAt"], state["FinishedAt"])
        for name, state in states.items()
    }
    for state in states.values():
        assert (state["Status"], state["ExitCode"]) == ("exited", 0), f"{took:.1f}s: {seen}"
    assert took < SOFT_SHUTDOWN_SECONDS + 15, f"stop took {took:.1f}s: {seen}"

    http(f"{SANDBOX}/__sandbox/faults", body={"platform": "instagram", "reset": True})
    run([*COMPOSE, "up", "--detach", "--no-build", *STARTED], timeout=600)
    wait_for(
        "every post published after the restart",
        lambda: set(statuses(post_ids).values()) == {"published"},
        PUBLISHED_WITHIN,
    )
    assert times_published(post_ids) == dict.fromkeys(post_ids, 1)


def test_no_secret_reaches_the_logs(stack: Secrets, account: dict[str, Any]) -> None:
    logs = run([*COMPOSE, "logs", "--no-color"], timeout=120)

    assert "worker-posts" in logs and "published" in logs.lower(), "logs are not what we think"
    for name, value in [
        ("access token", account["token"]),
        ("Fernet key", stack.fernet_key),
        ("Flower password", stack.flower_login.split(":", 1)[1]),
    ]:
        assert value not in logs, f"the {name} appears in docker compose logs"
