"""`herald run`: workers for every queue, beat and Flower come up; it prints where to look;
SIGTERM / Ctrl-C (SIGINT) reaches every child, all of them exit, and so does run, with 0."""

from __future__ import annotations

import json
import os
import signal
import sys
import threading
from collections.abc import Iterator
from pathlib import Path

import httpx
import psutil
import pytest
from celery import Celery

from tests.fixtures.herald_run import RunProcess, herald_run
from tests.fixtures.ports import free_ports
from tests.fixtures.waiting import wait_for
from worker.constants import KEY_BEAT_HEARTBEAT
from worker.coordination.redis_client import get_redis
from worker.local.supervisor import Child, Supervisor
from worker.settings import get_settings


@pytest.fixture
def run_env(herald_env: dict[str, str]) -> dict[str, str]:
    """Quick heartbeats, a short soft shutdown, and ports nobody else holds."""
    return {
        **herald_env,
        "HERALD_HEARTBEAT_INTERVAL": "1",
        "HERALD_SOFT_SHUTDOWN_TIMEOUT": "5",
        "HERALD_FLOWER_PORT": str(free_ports()),
        "HERALD_HEALTH_PORT": str(free_ports()),
        # Three consecutive ports: posts0, background, beat.
        "HERALD_METRICS_PORT": str(free_ports(3)),
    }


@pytest.fixture
def run_process(run_env: dict[str, str], tmp_path: Path) -> Iterator[RunProcess]:
    with herald_run(run_env, tmp_path / "run.log", "--no-sandbox", "--concurrency", "1") as run:
        yield run


@pytest.mark.parametrize("stop_signal", [signal.SIGTERM, signal.SIGINT], ids=["SIGTERM", "SIGINT"])
def test_run_brings_up_workers_and_beat_then_stops_everything_cleanly(
    run_process: RunProcess, control: Celery, stop_signal: signal.Signals
) -> None:
    def both_workers_answer() -> bool:
        replies = control.control.ping(timeout=0.5) or []
        names = {name.split("@")[0] for reply in replies for name in reply}
        return {"posts0", "background"} <= names

    wait_for(both_workers_answer, timeout=90, what="posts and background workers to answer")
    # Beat fired the heartbeat and the background worker ran it.
    key = get_settings().key(KEY_BEAT_HEARTBEAT)
    wait_for(lambda: get_redis().get(key), timeout=60, what="beat's heartbeat to be run")
    children = run_process.descendants()
    names = " ".join(" ".join(child.cmdline()) for child in children)
    for role in ("posts0@", "background@", " beat ", " flower ", " health --serve"):
        assert role in names, f"{role.strip()} is not running: {names}"

    os.kill(run_process.pid, stop_signal)

    assert run_process.process.wait(timeout=60) == 0, run_process.output()
    _, alive = psutil.wait_procs(children, timeout=10)
    assert alive == []
    assert "supervisor.killed" not in run_process.output()


def test_run_prints_where_to_look(run_process: RunProcess, run_env: dict[str, str]) -> None:
    first = int(run_env["HERALD_METRICS_PORT"])

    flower = wait_for(
        lambda: run_process.printed(r"^herald: Flower\s+(\S+) \(basic auth\)$"),
        timeout=60,
        what="the Flower URL",
    )

    assert flower.group(1) == f"http://127.0.0.1:{run_env['HERALD_FLOWER_PORT']}/"
    for offset, name in enumerate(("posts-0", "background", "beat")):
        url = rf"http://127\.0\.0\.1:{first + offset}/metrics \({name}\)$"
        assert run_process.printed(rf"^herald: metrics\s+{url}"), run_process.output()
        served = f"http://127.0.0.1:{first + offset}/metrics"
        wait_for(lambda u=served: _answers(u), timeout=60, what=f"{name}'s metrics at {served}")
    health = run_process.printed(r"^herald: health\s+(\S+/healthz) (\S+/readyz)$")
    assert health, run_process.output()
    assert health.group(1) == f"http://127.0.0.1:{run_env['HERALD_HEALTH_PORT']}/healthz"
    wait_for(lambda: _answers(health.group(1)), timeout=60, what="the health server")


def _answers(url: str) -> bool:
    try:
        return httpx.get(url, timeout=2, trust_env=False).status_code == 200
    except httpx.TransportError:
        return False


def test_health_output_is_valid_json_while_running(
    run_process: RunProcess, run_env: dict[str, str]
) -> None:
    from tests.fixtures.cli import run_herald

    def healthy() -> dict[str, object] | None:
        result = run_herald("health", env=run_env, timeout=30)
        return json.loads(result.stdout) if result.returncode == 0 else None

    report = wait_for(healthy, timeout=30, interval=0.5, what="herald health to exit 0")
    assert report["status"] == "ok"


def test_a_second_signal_kills_children_that_ignore_the_first() -> None:
    """Given a child that ignores SIGTERM, when asked to stop twice, the supervisor kills it
    at once (no waiting out the deadline) and reports an unclean stop (status 1)."""
    stubborn = "import signal, time; signal.signal(signal.SIGTERM, signal.SIG_IGN); time.sleep(600)"
    child = Child("stubborn", [sys.executable, "-c", stubborn])
    supervisor = Supervisor([child], dict(os.environ), stop_timeout=300)
    me = os.getpid()

    def stop_twice() -> None:
        wait_for(lambda: child.process is not None, timeout=10, what="the child to start")
        assert child.process is not None
        ignoring = wait_for(
            lambda: _ignores_sigterm(child.process.pid if child.process else 0),
            timeout=10,
            what="the child to ignore SIGTERM",
        )
        assert ignoring
        os.kill(me, signal.SIGTERM)
        wait_for(lambda: supervisor._signals == 1, timeout=5, what="the first signal")
        os.kill(me, signal.SIGINT)

    stopper = threading.Thread(target=stop_twice, daemon=True)
    stopper.start()

    status = supervisor.run()

    stopper.join(timeout=10)
    assert status == 1
    assert child.process is not None and child.process.returncode == -signal.SIGKILL


def _ignores_sigterm(pid: int) -> bool:
    """Whether `pid` has set SIGTERM to ignored (bit 15 of SigIgn in /proc/PID/status)."""
    try:
        status = Path(f"/proc/{pid}/status").read_text()
    except FileNotFoundError:
        return False
    ignored = next(line for line in status.splitlines() if line.startswith("SigIgn:"))
    return bool(int(ignored.split()[1], 16) & (1 << (signal.SIGTERM - 1)))


def test_run_exits_with_one_clear_line_on_bad_settings(
    run_env: dict[str, str], tmp_path: Path
) -> None:
    env = {**run_env, "HERALD_FLOWER_PORT": "not-a-port"}

    with herald_run(env, tmp_path / "bad.log") as run:
        code = run.process.wait(timeout=60)

    assert code == 2
    assert "flower_port" in run.output().lower() or "FLOWER_PORT" in run.output()
    assert "herald: starting" not in run.output()
