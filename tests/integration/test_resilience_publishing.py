"""The publish path under its guards, with real workers, beat, Redis and the sandbox:
global rate limits hold across worker processes; a failing platform's breaker opens,
defers its posts (not dead, no attempt spent) while others keep publishing, and every
deferred post publishes once after it recovers."""

from __future__ import annotations

import collections
import subprocess
import sys
from datetime import datetime

import pytest

from tests.fixtures.posting import InsertPosts, ledger_refs, post_rows, statuses, wait_all
from tests.fixtures.sandbox import SandboxServer
from tests.fixtures.settings import quick_breakers, use_settings
from tests.fixtures.waiting import wait_for
from tests.fixtures.workers import WorkerFactory
from worker.resilience.breaker import get_breakers

LIMIT, WINDOW = 5, 10.0


def most_in_any_window(times: list[float], window: float) -> int:
    times = sorted(times)
    best, start = 0, 0
    for end, at in enumerate(times):
        while at - times[start] >= window:
            start += 1
        best = max(best, end - start + 1)
    return best


def test_an_account_limit_holds_across_three_worker_processes(
    publish_env: dict[str, str],
    accounts: dict[str, object],
    insert_posts: InsertPosts,
    worker_process: WorkerFactory,
    beat_process: object,
    sandbox: SandboxServer,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    use_settings(monkeypatch, HERALD_RATE_LIMITS="on")
    account = str(accounts["instagram"])
    set_limit = subprocess.run(
        [sys.executable, "-m", "worker.cli", "limits", "set", "instagram", f"{LIMIT}/10s",
         "--account", account, "--actor", "test"],
        env={**publish_env, "HERALD_RATE_LIMITS": "on"},
        capture_output=True, text=True, timeout=60, check=False,
    )  # fmt: skip
    assert set_limit.returncode == 0, set_limit.stderr
    ids = insert_posts(20, platforms=("instagram",))
    for name in ("a", "b", "c"):
        worker_process(concurrency=2, name=name)
    beat_process()  # type: ignore[operator]
    wait_all(ids, "published", timeout=120)

    times = [datetime.fromisoformat(e["at"]).timestamp() for e in sandbox.ledger("instagram")]
    assert len(times) == 20
    # The limiter decides on Redis's clock, the ledger records on arrival: allow the
    # few milliseconds between them by checking windows a little shorter than W.
    assert most_in_any_window(times, WINDOW - 0.5) <= LIMIT
    assert max(collections.Counter(ledger_refs(sandbox)).values()) == 1
    assert all(row["attempts"] == 1 for row in post_rows(ids))  # deferrals spent nothing


def test_a_failing_platform_opens_its_breaker_defers_and_recovers(
    publish_env: dict[str, str],
    insert_posts: InsertPosts,
    worker_process: WorkerFactory,
    beat_process: object,
    sandbox: SandboxServer,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    quick_breakers(monkeypatch, fail_max=3, reset_timeout=4, max_attempts=30)
    sandbox.set_faults("facebook", error_rate=1.0, status=503)
    facebook = insert_posts(8, platforms=("facebook",))
    instagram = insert_posts(8, platforms=("instagram",))
    worker_process(concurrency=2)
    beat_process()  # type: ignore[operator]

    wait_all(instagram, "published", timeout=60)  # the other platform is not held up
    breaker = get_breakers()["facebook"]
    opened = wait_for(
        lambda: breaker.status()["opened_at"] if breaker.status()["state"] == "open" else None,
        timeout=30,
        what="the breaker to open",
    )
    spent_at_opening = sum(r["attempts"] for r in post_rows(facebook))
    # While the platform still fails, the half-open probe re-opens it: wait for that.
    wait_for(
        lambda: breaker.status()["opened_at"] not in (None, opened),
        timeout=30,
        what="a failed probe to re-open the breaker",
    )
    spent_after_probe = sum(r["attempts"] for r in post_rows(facebook))
    # Deferred posts spent nothing: only the probe(s) counted an attempt meanwhile.
    assert spent_after_probe - spent_at_opening <= 2
    assert statuses(facebook).get("dead", 0) == 0
    assert statuses(facebook).get("published", 0) == 0

    sandbox.reset_faults("facebook")
    wait_all(facebook, "published", timeout=90)
    assert breaker.status()["state"] == "closed"
    counts = collections.Counter(ledger_refs(sandbox))
    assert all(counts[str(post)] == 1 for post in facebook + instagram)
