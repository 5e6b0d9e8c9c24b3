"""`herald run`: workers for every queue and beat come up; SIGTERM / Ctrl-C stops them all."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
from pathlib import Path

import psutil
import pytest
from celery import Celery

from tests.fixtures.waiting import wait_for
from worker.constants import KEY_BEAT_HEARTBEAT
from worker.redis_client import get_redis
from worker.settings import get_settings


@pytest.fixture
def run_process(herald_env: dict[str, str], tmp_path: Path) -> subprocess.Popen[bytes]:
    log = (tmp_path / "run.log").open("wb")
    process = subprocess.Popen(
        [sys.executable, "-m", "worker.cli", "run", "--no-sandbox", "--concurrency", "1"],
        env={**herald_env, "HERALD_HEARTBEAT_INTERVAL": "1", "HERALD_SOFT_SHUTDOWN_TIMEOUT": "5"},
        stdout=log,
        stderr=subprocess.STDOUT,
    )
    yield process
    leftovers = descendants(process.pid)
    if process.poll() is None:
        process.send_signal(signal.SIGTERM)
        try:
            process.wait(timeout=30)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()
    for child in leftovers:
        if child.is_running():
            child.kill()
    log.close()


def descendants(pid: int) -> list[psutil.Process]:
    try:
        return psutil.Process(pid).children(recursive=True)
    except psutil.NoSuchProcess:
        return []


@pytest.mark.parametrize("stop_signal", [signal.SIGTERM, signal.SIGINT])
def test_run_brings_up_workers_and_beat_then_stops_everything_cleanly(
    run_process: subprocess.Popen[bytes], control: Celery, stop_signal: signal.Signals
) -> None:
    def both_workers_answer() -> bool:
        replies = control.control.ping(timeout=0.5) or []
        names = {name.split("@")[0] for reply in replies for name in reply}
        return {"posts0", "background"} <= names

    wait_for(both_workers_answer, timeout=90, what="posts and background workers to answer")
    # Beat fired the heartbeat and the background worker ran it.
    key = get_settings().key(KEY_BEAT_HEARTBEAT)
    wait_for(lambda: get_redis().get(key), timeout=60, what="beat's heartbeat to be run")
    children = descendants(run_process.pid)
    assert len(children) >= 3

    os.kill(run_process.pid, stop_signal)
    assert run_process.wait(timeout=60) == 0
    _, alive = psutil.wait_procs(children, timeout=10)
    assert alive == []


def test_health_output_is_valid_json_while_running(
    run_process: subprocess.Popen[bytes], herald_env: dict[str, str]
) -> None:
    def healthy() -> dict[str, object] | None:
        result = subprocess.run(
            [sys.executable, "-m", "worker.cli", "health"],
            env=herald_env,
            capture_output=True,
            text=True,
            timeout=30,
            check=False,
        )
        return json.loads(result.stdout) if result.returncode == 0 else None

    report = wait_for(healthy, timeout=30, interval=0.5, what="herald health to exit 0")
    assert report["status"] == "ok"
