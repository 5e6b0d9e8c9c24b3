"""Replaying dead letters, and poison jobs, with real workers and the sandbox platform."""

from __future__ import annotations

import os
import signal
import uuid

from celery import Celery
from sqlalchemy import text

from tests.fixtures.cli import run_herald
from tests.fixtures.deadletter import dlq, wait_letters
from tests.fixtures.posting import InsertPosts, ledger_refs, post_rows, statuses, wait_all
from tests.fixtures.sandbox import SandboxServer
from tests.fixtures.waiting import wait_for
from tests.fixtures.workers import WorkerFactory
from worker.constants import HEADER_REQUEST_ID, KEY_DELIVERIES, QUEUE_POSTS, TASK_PUBLISH
from worker.coordination.redis_client import get_redis
from worker.db import audit
from worker.db.accounts import deactivate_account
from worker.db.session import unit_of_work
from worker.deadletter.letter import Failure, record_dead_letter
from worker.deadletter.reasons import poison_reason
from worker.local.processes import BACKGROUND_QUEUES
from worker.publishing.account_cache import invalidate_account
from worker.settings import Settings, get_settings

#: The default of HERALD_MAX_DELIVERIES (the tests' workers use it).
MAX_DELIVERIES = Settings.model_fields["max_deliveries"].default


def reactivate(account_id: uuid.UUID) -> None:
    with unit_of_work() as session:
        session.execute(
            text("UPDATE social_accounts SET is_active = true WHERE id = :id"), {"id": account_id}
        )
    invalidate_account(account_id)


def attempt_task_ids(post_id: uuid.UUID) -> list[str]:
    with unit_of_work() as session:
        return list(
            session.execute(
                text("SELECT task_id FROM post_attempts WHERE post_id = :id ORDER BY attempt"),
                {"id": post_id},
            ).scalars()
        )


def test_a_dead_publish_replayed_after_the_fix_publishes_once_and_is_linked(
    insert_posts: InsertPosts,
    accounts: dict[str, uuid.UUID],
    worker_process: WorkerFactory,
    control: Celery,
    publish_env: dict[str, str],
    sandbox: SandboxServer,
) -> None:
    # Given a post that died because its account was deactivated...
    (post_id,) = insert_posts(1, platforms=("instagram",))
    deactivate_account(accounts["instagram"])
    worker_process((QUEUE_POSTS,))
    worker_process(BACKGROUND_QUEUES, name="bg")
    sent = control.send_task(
        TASK_PUBLISH, args=[str(post_id)], headers={HEADER_REQUEST_ID: "req-42"}
    )
    wait_all([post_id], "dead", timeout=30)
    (dead,) = post_rows([post_id])
    # ...and its dead letter, as the publish path records it.
    assert record_dead_letter(
        task_name=TASK_PUBLISH,
        task_id=sent.id,
        args=[str(post_id)],
        headers={HEADER_REQUEST_ID: "req-42"},
        queue=QUEUE_POSTS,
        reason=dead["last_error"],
        exception=Failure("AccountUnusable", dead["last_error"]),
        attempts=dead["attempts"],
    )
    (letter,) = wait_letters(publish_env, 1, "--task", TASK_PUBLISH)

    # When the account is fixed and the letter replayed
    reactivate(accounts["instagram"])
    done = dlq("replay", str(letter["id"]), "--actor", "ops-bob", env=publish_env)["done"]

    # Then the post publishes once, under the new task id the letter links to.
    wait_all([post_id], "published", timeout=30)
    assert ledger_refs(sandbox) == [str(post_id)]
    new_id = done[0]["replayed_task_id"]
    assert new_id != sent.id and attempt_task_ids(post_id) == [sent.id, new_id]
    (replayed,) = dlq("list", "--status", "replayed", env=publish_env)
    assert replayed["replayed_task_id"] == new_id and replayed["replayed_at"]
    (entry,) = audit.recent(action="dlq.replay")
    assert entry.actor == "ops-bob" and entry.detail["replayed_task_id"] == new_id
    # A letter is replayed once.
    again = run_herald("dlq", "replay", str(letter["id"]), env=publish_env)
    assert again.returncode == 1 and f"already replayed as task {new_id}" in again.stderr


def test_a_job_whose_worker_keeps_dying_is_dead_lettered_instead_of_run_again(
    insert_posts: InsertPosts,
    worker_process: WorkerFactory,
    control: Celery,
    publish_env: dict[str, str],
    sandbox: SandboxServer,
) -> None:
    (post_id,) = insert_posts(1, platforms=("instagram",))
    sandbox.set_faults("instagram", latency_ms=4000)  # slow enough to die in the middle
    posts_worker = worker_process((QUEUE_POSTS,))
    worker_process(BACKGROUND_QUEUES, name="bg")
    # Given a job already delivered MAX_DELIVERIES times (its worker died every time)
    task_id = str(uuid.uuid4())
    counter = get_settings().key(KEY_DELIVERIES, task_id)
    get_redis().set(counter, MAX_DELIVERIES)
    control.send_task(TASK_PUBLISH, args=[str(post_id)], task_id=task_id)
    wait_for(lambda: statuses([post_id]).get("publishing"), timeout=30, what="publishing")

    # When its worker dies with it once more
    (child,) = posts_worker.children()
    os.kill(child, signal.SIGKILL)

    # Then the redelivery is dead-lettered, not run; the post says dead, with the reason.
    (letter,) = wait_letters(publish_env, 1)
    assert letter["reason"] == poison_reason(MAX_DELIVERIES) and letter["task_id"] == task_id
    assert letter["attempts"] == MAX_DELIVERIES + 1
    wait_all([post_id], "dead", timeout=30)
    (post,) = post_rows([post_id])
    assert post["last_error"] == poison_reason(MAX_DELIVERIES) and post["attempts"] == 1
    assert attempt_task_ids(post_id) == []  # the killed run recorded nothing, none ran since
    assert get_redis().get(counter) == str(MAX_DELIVERIES + 1)

    # And once the cause is gone, a replay publishes it, once.
    sandbox.reset_faults("instagram")
    dlq("replay", str(letter["id"]), env=publish_env)
    wait_all([post_id], "published", timeout=30)
    assert ledger_refs(sandbox) == [str(post_id)]
