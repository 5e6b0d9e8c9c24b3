"""Celery task messages written straight into a Redis broker, a whole batch per pipeline.

The dispatcher enqueues thousands of publishes a second; Celery's send_task costs
~0.5 ms a message (routing, declares, events), which caps a claim at ~2,000 rows/s.
For the Redis transport a message is one LPUSH of a JSON envelope onto the queue's
key, so we build exactly what kombu would write (Celery's protocol 2: headers, a
base64 JSON body [args, kwargs, embed], properties) and push a batch at once.
`tests/unit/test_redis_messages.py` checks the envelope against Celery's own
`create_task_message` so a Celery upgrade that changes the format fails a test.
"""

from __future__ import annotations

import base64
import functools
import json
import os
import socket
from collections.abc import Iterable
from typing import Any

import redis

#: Embedded callbacks of a plain task call (no chain, chord or errbacks).
_EMBED = {"callbacks": None, "errbacks": None, "chain": None, "chord": None}
_ORIGIN_JSON = json.dumps(f"gen{os.getpid()}@{socket.gethostname()}")


def uuid4_text() -> str:
    """A random (version 4) UUID as text, without building a uuid.UUID (4x cheaper)."""
    h = os.urandom(16).hex()
    return f"{h[:8]}-{h[8:12]}-4{h[13:16]}-{'89ab'[int(h[16], 16) & 3]}{h[17:20]}-{h[20:]}"


@functools.cache
def _fixed(task_name: str, queue: str) -> tuple[str, str]:
    """The JSON text around a message's variable parts, for one task and queue."""
    return json.dumps(task_name), json.dumps(queue)


def envelope(
    task_name: str,
    queue: str,
    args: list[Any],
    kwargs: dict[str, Any],
    *,
    eta: str | None = None,
    headers: dict[str, Any] | None = None,
    task_id: str | None = None,
) -> str:
    """The JSON kombu's Redis transport stores for one Celery task message (`eta`: ISO).

    Assembled as text around the parts that vary (ids, body, eta): encoding the whole
    envelope with json.dumps would cost twice as much, and the dispatcher builds
    thousands a second.
    """
    task, routing_key = _fixed(task_name, queue)
    tid = task_id or uuid4_text()
    body = base64.b64encode(json.dumps([args, kwargs, _EMBED]).encode()).decode()
    eta_json = f'"{eta}"' if eta is not None else "null"
    extra = "".join(f", {json.dumps(k)}: {json.dumps(v)}" for k, v in (headers or {}).items())
    return (
        f'{{"body": "{body}", "content-encoding": "utf-8", '
        f'"content-type": "application/json", "headers": {{"lang": "py", "task": {task}, '
        f'"id": "{tid}", "shadow": null, "eta": {eta_json}, "expires": null, "group": null, '
        f'"group_index": null, "retries": 0, "timelimit": [null, null], "root_id": "{tid}", '
        f'"parent_id": null, "argsrepr": {json.dumps(repr(args))}, '
        f'"kwargsrepr": {json.dumps(repr(kwargs))}, "origin": {_ORIGIN_JSON}, '
        f'"ignore_result": false, "replaced_task_nesting": 0, "stamped_headers": null, '
        f'"stamps": {{}}{extra}}}, "properties": {{"correlation_id": "{tid}", '
        f'"reply_to": null, "delivery_mode": 2, "delivery_info": {{"exchange": "", '
        f'"routing_key": {routing_key}}}, "priority": 0, "body_encoding": "base64", '
        f'"delivery_tag": "{uuid4_text()}"}}}}'
    )


def push(client: redis.Redis, queue_key: str, envelopes: Iterable[str]) -> int:
    """LPUSH every envelope onto the queue in one pipeline (as kombu's _put does, batched)."""
    batch = list(envelopes)
    if batch:
        pipe = client.pipeline(transaction=False)
        pipe.lpush(queue_key, *batch)
        pipe.execute()
    return len(batch)
