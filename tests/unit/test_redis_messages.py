"""Our Redis fast path writes exactly the message Celery would (contract with Celery)."""

from __future__ import annotations

import base64
import json
from datetime import UTC, datetime

from celery import Celery

from worker.taskapp.redis_messages import envelope

VOLATILE = {"origin"}


def test_envelope_matches_celerys_own_task_message() -> None:
    app = Celery("contract", set_as_current=False)
    eta = datetime(2026, 11, 23, 18, 0, tzinfo=UTC)
    args, kwargs = ["post-1"], {"expected_at": eta.isoformat()}
    celery_message = app.amqp.create_task_message("tid-1", "posts.publish", args, kwargs, eta=eta)
    ours = json.loads(
        envelope("posts.publish", "posts", args, kwargs, eta=eta.isoformat(), task_id="tid-1")
    )

    theirs = {k: v for k, v in celery_message.headers.items() if k not in VOLATILE}
    assert {k: v for k, v in ours["headers"].items() if k not in VOLATILE} == theirs
    assert json.loads(base64.b64decode(ours["body"])) == json.loads(json.dumps(celery_message.body))
    assert ours["properties"]["correlation_id"] == celery_message.properties["correlation_id"]
    assert ours["content-type"] == "application/json"
    assert ours["properties"]["delivery_info"] == {"exchange": "", "routing_key": "posts"}
    app.close()


def test_extra_headers_travel_with_the_message() -> None:
    ours = json.loads(envelope("posts.publish", "posts", ["p"], {}, headers={"x-request-id": "r1"}))
    assert ours["headers"]["x-request-id"] == "r1"
    assert ours["headers"]["eta"] is None


def test_generated_ids_are_version_4_uuids() -> None:
    import uuid

    from worker.taskapp.redis_messages import uuid4_text

    ids = {uuid4_text() for _ in range(1000)}
    assert len(ids) == 1000
    for text in list(ids)[:50]:
        parsed = uuid.UUID(text)
        assert (parsed.version, parsed.variant) == (4, uuid.RFC_4122)
        assert str(parsed) == text
