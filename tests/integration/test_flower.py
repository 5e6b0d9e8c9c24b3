"""Flower behind a login: `herald run` starts it with basic auth, generated or configured.

Given `herald run` (real workers, beat, Flower), when a client asks Flower without
credentials it gets 401, with them 200; a generated password is printed once and
appears nowhere else (no log line, no command line); the dashboard lists the running
workers (a headless Chromium screenshot is kept as an artifact).
"""

from __future__ import annotations

import base64
import shutil
import socket
import subprocess
import sys
from pathlib import Path

import httpx
import pytest

from tests.fixtures.chromium import Page, chromium_page
from tests.fixtures.herald_run import herald_run
from tests.fixtures.ports import free_ports
from tests.fixtures.waiting import wait_for

ROOT = Path(__file__).resolve().parents[2]
#: Where the dashboard screenshot is kept after the run (pytest's tmp dirs are pruned).
ARTIFACTS = ROOT / ".herald" / "artifacts"
LOGIN_LINE = r"Flower login \(this run only\): (\S+) / (\S+) "

pytestmark = pytest.mark.slow


@pytest.fixture
def run_env(herald_env: dict[str, str]) -> dict[str, str]:
    """Flower on a port of its own, no metrics servers (ports other tests may hold)."""
    env = {k: v for k, v in herald_env.items() if not k.startswith("FLOWER_")}
    env.update(
        {
            "HERALD_FLOWER": "true",
            "HERALD_FLOWER_PORT": str(free_ports()),
            "HERALD_METRICS_PORT": "0",
            "HERALD_HEALTH_PORT": str(free_ports()),
            "HERALD_HEARTBEAT_INTERVAL": "1",
            "HERALD_SOFT_SHUTDOWN_TIMEOUT": "5",
        }
    )
    return env


def flower_base(env: dict[str, str]) -> str:
    return f"http://127.0.0.1:{env['HERALD_FLOWER_PORT']}"


def wait_until_flower_answers(base: str, run: subprocess.Popen[bytes], output: str = "") -> None:
    def answers() -> bool:
        if run.poll() is not None:
            raise AssertionError(f"exited {run.returncode} before Flower answered:\n{output}")
        try:
            return httpx.get(f"{base}/healthcheck", timeout=2, trust_env=False).status_code == 200
        except httpx.TransportError:
            return False

    wait_for(answers, timeout=90, interval=0.5, what=f"Flower at {base}")


def test_generated_login_is_required_and_printed_only_once(
    run_env: dict[str, str], tmp_path: Path
) -> None:
    with herald_run(run_env, tmp_path / "run.log", "--no-sandbox", "--concurrency", "1") as run:
        login = wait_for(lambda: run.printed(LOGIN_LINE), timeout=60, what="the Flower login")
        user, password = login.group(1), login.group(2)
        base = flower_base(run_env)
        wait_until_flower_answers(base, run.process, run.output())

        anonymous = httpx.get(f"{base}/", trust_env=False, timeout=5)
        wrong = httpx.get(f"{base}/", auth=(user, password + "x"), trust_env=False, timeout=5)
        api = httpx.get(f"{base}/api/workers", trust_env=False, timeout=5)
        right = httpx.get(f"{base}/", auth=(user, password), trust_env=False, timeout=5)
        argvs = [" ".join(p.cmdline()) for p in run.descendants()]

        assert anonymous.status_code == 401
        assert anonymous.headers["WWW-Authenticate"].startswith("Basic")
        assert wrong.status_code == 401
        assert api.status_code == 401
        assert right.status_code == 200
        assert not any(password in argv for argv in argvs), "the password is on a command line"
        # Flower 2.x answers these without a login (documented in worker/local/flower.py).
        assert httpx.get(f"{base}/healthcheck", trust_env=False).status_code == 200
        assert httpx.get(f"{base}/metrics", trust_env=False).status_code == 200
        assert run.printed(
            rf"^herald: Flower\s+http://127\.0\.0\.1:{run_env['HERALD_FLOWER_PORT']}/"
        )
    assert run.output().count(password) == 1, "the generated password must be printed once"


def test_dashboard_shows_the_running_workers(run_env: dict[str, str], tmp_path: Path) -> None:
    env = {**run_env, "FLOWER_BASIC_AUTH": "operator:s3cret-pw"}
    with herald_run(env, tmp_path / "run.log", "--no-sandbox", "--concurrency", "1") as run:
        base = flower_base(env)
        wait_until_flower_answers(base, run.process, run.output())
        expected = {f"posts0@{socket.gethostname()}", f"background@{socket.gethostname()}"}
        shot = tmp_path / "flower-dashboard.png"

        seen: list[list[str]] = [[]]

        def listed() -> bool:
            seen[0] = _dashboard_rows(page, base)
            return expected <= set(seen[0])

        with chromium_page(tmp_path / "chromium") as page:
            page.basic_auth("operator", "s3cret-pw")
            try:
                wait_for(listed, timeout=90, interval=1.0, what=f"the dashboard to list {expected}")
            except AssertionError as exc:
                text = page.evaluate("document.body.innerText.slice(0, 600)")
                raise AssertionError(f"{exc}; it lists {seen[0]}; it reads: {text!r}") from None
            page.screenshot(shot)

        assert "s3cret-pw" not in run.output(), "a configured password must never be printed"
    assert shot.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n" and shot.stat().st_size > 10_000
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    shutil.copy(shot, ARTIFACTS / shot.name)


def _dashboard_rows(page: Page, base: str) -> list[str]:
    """Load the dashboard and return the names in its workers table."""
    page.send("Page.navigate", url=f"{base}/")
    wait_for(
        lambda: page.evaluate("document.readyState") == "complete",
        timeout=15,
        what="the dashboard to load",
    )
    # DataTables renders the rows; a cell's text may wrap, so whitespace is dropped.
    names = page.evaluate(
        "Array.from(document.querySelectorAll('#workers-table tbody tr'))"
        ".map(r => r.cells[0] ? r.cells[0].textContent.replace(/\\s+/g, '') : '')"
    )
    return [str(name) for name in names or [] if name]


def test_container_entry_point_requires_the_configured_login(
    run_env: dict[str, str], tmp_path: Path
) -> None:
    """`python -m worker.local.flower` (the compose service): a stray FLOWER_* variable such as
    FLOWER_BASIC_AUTH_FILE does not crash Flower, and the login is enforced."""
    port = run_env["HERALD_FLOWER_PORT"]
    env = {**run_env, "FLOWER_BASIC_AUTH": "ops:pw-123", "FLOWER_BASIC_AUTH_FILE": "/nowhere"}
    with (tmp_path / "flower.log").open("wb") as log:
        process = subprocess.Popen(
            [sys.executable, "-m", "worker.local.flower", "--address=127.0.0.1", f"--port={port}"],
            env=env,
            stdout=log,
            stderr=subprocess.STDOUT,
        )
    try:
        base = f"http://127.0.0.1:{port}"
        wait_until_flower_answers(base, process, "see flower.log")
        assert httpx.get(f"{base}/", trust_env=False).status_code == 401
        assert httpx.get(f"{base}/", auth=("ops", "pw-123"), trust_env=False).status_code == 200
    finally:
        process.terminate()
        assert process.wait(timeout=20) == 0


def test_container_entry_point_refuses_production_without_a_login(
    run_env: dict[str, str], tmp_path: Path
) -> None:
    key = base64.urlsafe_b64encode(bytes(32)).decode()
    env = {**run_env, "HERALD_ENV": "production", "TOKEN_ENCRYPTION_KEYS": key}
    env.pop("FLOWER_BASIC_AUTH", None)

    result = subprocess.run(
        [sys.executable, "-m", "worker.local.flower"],
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
        cwd=tmp_path,  # no developer's .env
    )

    assert result.returncode == 2
    assert "FLOWER_BASIC_AUTH: required in production" in result.stderr
