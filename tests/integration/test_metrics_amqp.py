"""Queue depth on RabbitMQ: a passive queue_declare per queue, a missing queue is 0.

Uses queues of its own: RabbitMQ has no namespace, and other tests share the vhost.
"""

from __future__ import annotations

import uuid

import pytest
from kombu import Connection, Exchange, Producer, Queue

from worker.observability.probes import amqp_queue_depths
from worker.settings import load_settings


@pytest.mark.amqp
def test_amqp_queue_depth_counts_waiting_messages(amqp_url: str) -> None:
    waiting, missing = f"hm-{uuid.uuid4().hex[:8]}", f"hm-{uuid.uuid4().hex[:8]}"
    # Confirmed publishes: the broker has every message before the depth is read.
    with Connection(amqp_url, transport_options={"confirm_publish": True}) as conn:
        queue = Queue(waiting, Exchange(waiting), routing_key=waiting, auto_delete=False)
        bound = queue(conn.default_channel)
        bound.declare()
        producer = Producer(conn.default_channel, exchange=queue.exchange, routing_key=waiting)
        try:
            for n in range(3):
                producer.publish({"n": n}, serializer="json")
            settings = load_settings(broker_url=amqp_url)
            depths = amqp_queue_depths(settings, 3.0, (waiting, missing))
        finally:
            bound.delete()
            queue.exchange(conn.default_channel).delete()
    assert depths == {waiting: 3, missing: 0}
