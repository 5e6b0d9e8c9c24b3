"""Dead letters from real workers: what Celery would drop is recorded, readable, purgeable.

A posts worker and a background worker (tokens, maintenance, dead_letter) run as real
processes; messages go in through the broker (raw kombu where Celery would refuse
them); `herald dlq ...` runs as a subprocess and speaks JSON.
"""

from __future__ import annotations

import json
import os
import pickle
import pty
import subprocess
import uuid
from typing import Any

import pytest
from celery import Celery

from tests.fixtures.cli import HERALD, run_herald
from tests.fixtures.deadletter import dlq, wait_letters
from tests.fixtures.workers import WorkerFactory, WorkerProcess
from worker.constants import QUEUE_POSTS, TASK_PUBLISH
from worker.db import audit
from worker.deadletter.letter import HEADER_REPLAY_OF
from worker.deadletter.reasons import NOT_A_TASK
from worker.local.processes import BACKGROUND_QUEUES

#: A value that must reach the dead-letter table but never a log line.
MARKER = "marker-5e1f0c"


def send_raw(
    control: Celery, body: bytes, content_type: str, encoding: str, headers: dict[str, Any]
) -> None:
    """Publish bytes as they are to the posts queue, the way a foreign client might."""
    with control.connection_for_write() as conn:
        conn.Producer().publish(
            body,
            exchange="",
            routing_key=QUEUE_POSTS,
            content_type=content_type,
            content_encoding=encoding,
            headers=headers,
        )


@pytest.fixture
def workers(worker_process: WorkerFactory) -> tuple[WorkerProcess, WorkerProcess]:
    return worker_process((QUEUE_POSTS,)), worker_process(BACKGROUND_QUEUES, name="bg")


def test_messages_celery_would_drop_each_land_in_dead_letters_with_a_readable_reason(
    workers: tuple[WorkerProcess, WorkerProcess], control: Celery, herald_env: dict[str, str]
) -> None:
    posts_worker, background_worker = workers
    pickled_id = str(uuid.uuid4())
    # Given six messages a worker cannot run:
    send_raw(  # a content type workers refuse, addressed to a real task
        control,
        pickle.dumps([MARKER]),
        "application/x-python-serialize",
        "binary",
        {"task": TASK_PUBLISH, "id": pickled_id},
    )
    send_raw(control, b'{"args": ["' + MARKER.encode() + b'"', "application/json", "utf-8", {})
    send_raw(control, json.dumps({"hello": MARKER}).encode(), "application/json", "utf-8", {})
    unknown = control.send_task(
        "posts.nonexistent", args=[MARKER], headers={"x-request-id": "req-1"}
    )
    invalid = control.send_task(TASK_PUBLISH, args=["not-a-uuid"])
    control.send_task(TASK_PUBLISH, args=["a", "b", "c"])

    # Then each is one open dead letter, and a person can tell why.
    letters = wait_letters(herald_env, 6)
    reasons = {letter["reason"]: letter for letter in letters}
    assert set(reasons) == {
        "refused content type 'application/x-python-serialize': workers accept only json",
        "cannot decode the message body as 'application/json' (DecodeError)",
        NOT_A_TASK,
        "unknown task 'posts.nonexistent': the worker has no task of that name "
        "(a typo, or a sender newer than the workers)",
        "invalid input: post_id 'not-a-uuid' is not a UUID",
        "invalid input: posts.publish(post_id, expected_at=None) cannot take these "
        "arguments: too many positional arguments",
    }
    assert all(letter["status"] == "open" for letter in letters)
    by_task = {letter["task_id"]: letter for letter in letters}
    assert by_task[pickled_id]["task_name"] == TASK_PUBLISH
    assert not by_task[pickled_id]["replayable"]
    assert by_task[unknown.id]["replayable"] and by_task[unknown.id]["queue"] == QUEUE_POSTS
    assert by_task[invalid.id]["exception_type"] == "InvalidPublishInputError"

    # `show` has what a replay needs; an undecodable one keeps its raw body.
    shown = dlq("show", str(by_task[unknown.id]["id"]), env=herald_env)
    assert shown["args"] == [MARKER] and shown["headers"]["x-request-id"] == "req-1"
    failed = dlq("show", str(by_task[invalid.id]["id"]), env=herald_env)
    assert failed["args"] == ["not-a-uuid"] and failed["headers"]["id"] == invalid.id
    assert "delivery_info" not in failed["headers"] and "parse_input" in failed["traceback"]
    raw = dlq("show", str(by_task[pickled_id]["id"]), env=herald_env)
    assert raw["raw_body"] and raw["replayable"] is False

    # The bodies reached the table, not the workers' logs.
    assert MARKER not in posts_worker.log()
    assert MARKER not in background_worker.log()


def test_a_letter_that_cannot_be_decoded_is_refused_by_replay_with_a_clear_error(
    workers: object, control: Celery, herald_env: dict[str, str]
) -> None:
    send_raw(control, b"\x80not json", "application/json", "utf-8", {})
    (letter,) = wait_letters(herald_env, 1)

    result = run_herald("dlq", "replay", str(letter["id"]), env=herald_env)

    assert result.returncode == 1
    assert "could not be decoded" in result.stderr and "no task to send again" in result.stderr
    assert dlq("list", env=herald_env)[0]["status"] == "open"


def test_the_same_failure_recorded_twice_is_one_letter(
    workers: object, control: Celery, herald_env: dict[str, str]
) -> None:
    sent = control.send_task("posts.nonexistent", args=[1])
    wait_letters(herald_env, 1)
    control.send_task("posts.nonexistent", args=[1], task_id=sent.id)  # the same message again
    control.send_task("posts.nonexistent", args=[2])
    letters = wait_letters(herald_env, 2)

    assert sorted(letter["task_id"] == sent.id for letter in letters) == [False, True]


def test_replay_all_of_a_task_resends_each_original_message_under_a_new_id(
    workers: object, control: Celery, herald_env: dict[str, str]
) -> None:
    # Given two letters of a task no worker knows (yet), and one of another task
    originals = {control.send_task("posts.nonexistent", args=[n]).id: n for n in (1, 2)}
    control.send_task("posts.other")
    wait_letters(herald_env, 3)

    # When all of posts.nonexistent are replayed (the task is still unknown)
    done = dlq("replay", "--all", "--task", "posts.nonexistent", env=herald_env)["done"]

    # Then each original went out again, new id, same args, and came back as a new letter
    # that names the letter it was replayed from.
    assert {entry["task_id"] for entry in done} == set(originals)
    letters = wait_letters(herald_env, 5)
    new_ids = {entry["replayed_task_id"]: entry for entry in done}
    for letter in letters:
        if letter["task_id"] in new_ids:
            shown = dlq("show", str(letter["id"]), env=herald_env)
            replayed_from = new_ids[letter["task_id"]]
            assert shown["args"] == [originals[replayed_from["task_id"]]]
            assert shown["headers"][HEADER_REPLAY_OF] == str(replayed_from["id"])
    assert sum(letter["task_id"] in new_ids for letter in letters) == 2
    assert len(audit.recent(action="dlq.replay")) == 2


def test_purge_asks_first_and_is_audited(
    workers: object, control: Celery, herald_env: dict[str, str]
) -> None:
    control.send_task("posts.nonexistent")
    control.send_task("posts.nonexistent")
    first, second = (str(letter["id"]) for letter in wait_letters(herald_env, 2))

    # Not a terminal and no --yes: refused, nothing changes.
    refused = run_herald("dlq", "purge", first, env=herald_env)
    assert refused.returncode == 1 and "--yes" in refused.stderr
    # On a terminal, the operator is asked (and says yes).
    assert "Purge dead letter(s)" in _on_a_terminal(["dlq", "purge", first], "y\n", herald_env)
    # --yes skips the question.
    done = dlq("purge", second, "--yes", "--actor", "ops-alice", env=herald_env)

    assert done["done"][0]["status"] == "purged"
    assert {row["status"] for row in dlq("list", "--status", "all", env=herald_env)} == {"purged"}
    entries = audit.recent(action="dlq.purge")
    assert {entry.target for entry in entries} == {
        f"dead_letter:{first}",
        f"dead_letter:{second}",
    }
    assert "ops-alice" in {entry.actor for entry in entries}
    again = run_herald("dlq", "purge", second, "--yes", env=herald_env)
    assert again.returncode == 1 and "already purged" in again.stderr


def _on_a_terminal(args: list[str], answer: str, env: dict[str, str]) -> str:
    """Run `herald *args` with a pseudo-terminal as stdin/stdout; type `answer`."""
    parent, child = pty.openpty()
    process = subprocess.Popen([*HERALD, *args], env=env, stdin=child, stdout=child, stderr=child)
    os.close(child)
    os.write(parent, answer.encode())
    output = b""
    while True:
        try:
            chunk = os.read(parent, 4096)
        except OSError:  # the child closed the terminal
            break
        if not chunk:
            break
        output += chunk
    os.close(parent)
    assert process.wait(60) == 0, output
    return output.decode(errors="replace")
