"""Publish pipeline throughput (Redis and RabbitMQ brokers), schedule lag, dispatcher
claim rate.

Posts are rows inserted with generate_series (as an API would insert them), one account
per platform, the sandbox at zero latency, rate limits off. Throughput and lag run a
real `posts` worker (prefork -c 4, as the Celery baseline) against the sandbox; each
throughput is compared with bare Celery's noop on the same broker in the same run.
"""

from __future__ import annotations

import contextlib
import statistics
import time
from datetime import UTC, datetime, timedelta
from typing import Any

from sqlalchemy import text

from bench.context import Context
from bench.registry import Measure, at_least, at_most, benchmark, ratio_at_least
from worker.constants import QUEUE_POSTS

#: Pool size of the posts worker: the same as the Celery noop baseline's.
CONCURRENCY = 4

_MEDIA = (
    "CASE a.platform WHEN 'instagram' THEN '[\"https://example.com/p.jpg\"]'::jsonb "
    "WHEN 'youtube' THEN '[\"https://example.com/v.mp4\"]'::jsonb ELSE '[]'::jsonb END"
)


def _reset_in_process() -> None:
    """The in-process app and caches must follow this run's settings."""
    import worker.app  # noqa: F401  (this process sends: the app follows the reset too)
    from worker import runtime

    runtime.reset()


def seed(count: int, at: datetime) -> None:
    """One account per platform and `count` posts due at `at`, by plain SQL."""
    from worker.db.session import unit_of_work
    from worker.security.cipher import get_cipher

    with unit_of_work() as session:
        for platform in ("instagram", "facebook", "youtube"):
            session.execute(
                text(
                    "INSERT INTO social_accounts (user_id, platform, external_id, "
                    "access_token_enc) VALUES (gen_random_uuid(), :p, :ext, :tok) "
                    "ON CONFLICT DO NOTHING"
                ),
                {"p": platform, "ext": f"bench-{platform}", "tok": get_cipher().encrypt("t")},
            )
        session.execute(
            text(
                "INSERT INTO scheduled_posts (user_id, social_account_id, platform, content, "
                "media, scheduled_at) SELECT a.user_id, a.id, a.platform, 'bench ' || g, "
                f"{_MEDIA}, :at FROM generate_series(1, :n) g "
                "JOIN social_accounts a "
                "ON a.platform = (ARRAY['instagram', 'facebook', 'youtube'])[1 + g % 3]"
            ),
            {"n": count, "at": at},
        )


def published(ids_status: str = "published") -> int:
    from worker.db.session import unit_of_work

    with unit_of_work() as session:
        return int(
            session.execute(
                text("SELECT count(*) FROM scheduled_posts WHERE status = :s"), {"s": ids_status}
            ).scalar_one()
        )


def _start_worker(ctx: Context, *, fast_dispatch: bool = False, guards: bool = False) -> None:
    from worker.local.processes import worker_argv

    ctx.env["HERALD_RATE_LIMITS"] = "on" if guards else "off"
    ctx.env["HERALD_BREAKERS"] = "on" if guards else "off"
    if guards:
        _limits_out_of_the_way(ctx)
    if fast_dispatch:
        ctx.env.update({"HERALD_DISPATCH_INTERVAL": "0.5", "HERALD_DISPATCH_LOOKAHEAD": "5"})
    ctx.start_sandbox()
    worker = ctx.start("posts-worker", worker_argv(("posts",), "bench", CONCURRENCY))
    ctx.wait_for_worker(ctx.herald_app(), worker, "bench")


def _drain(ctx: Context, count: int, dispatch: bool) -> float:
    """Seconds from the first dispatch to the last post published."""
    from schedules.dispatcher import dispatch_due
    from worker.settings import get_settings

    started = time.perf_counter()
    if dispatch:
        dispatch_due(get_settings(), budget=120)
    try:
        ctx.wait_for(
            lambda: published() >= count, timeout=60 + count / 20, what=f"{count} posts published"
        )
    except TimeoutError as exc:
        raise TimeoutError(f"{exc}; posts by status: {status_counts()}") from None
    return time.perf_counter() - started


def status_counts() -> dict[str, int]:
    from worker.db.session import unit_of_work

    with unit_of_work() as session:
        rows = session.execute(
            text("SELECT status, count(*) FROM scheduled_posts GROUP BY status")
        ).all()
        return {str(status): int(n) for status, n in rows}


def _limits_out_of_the_way(ctx: Context) -> None:
    """Limits so high they never refuse: the benchmark measures what checking them costs."""
    from worker.resilience.limits_config import LimitTarget, parse
    from worker.resilience.ratelimit import get_limiter

    config = get_limiter().config
    for platform in ("instagram", "facebook", "youtube"):
        for kind in ("app", "account"):
            config.set(LimitTarget(platform, kind), parse("10000/s"))


def _purge_amqp_queue(url: str, queue: str) -> None:
    """Empty `queue` on RabbitMQ (Herald's queue names are not namespaced there)."""
    from kombu import Connection

    with contextlib.suppress(Exception), Connection(url, connect_timeout=5) as conn:
        channel: Any = conn.default_channel
        channel.queue_purge(queue)


def _use_rabbitmq(ctx: Context) -> None:
    """RabbitMQ as Herald's broker (skips without AMQP_URL); `posts` starts and ends empty."""
    url = ctx.require_amqp()
    ctx.use_broker(url)
    _purge_amqp_queue(url, QUEUE_POSTS)
    # Registered before the worker starts, so it runs after the worker has stopped.
    ctx.stack.callback(_purge_amqp_queue, url, QUEUE_POSTS)


def throughput(ctx: Context, *, guards: bool, amqp: bool = False) -> dict[str, Measure]:
    if amqp:
        _use_rabbitmq(ctx)
    _reset_in_process()
    _start_worker(ctx, guards=guards)
    warmup, count = ctx.size(200, 50), ctx.size(3_000, 300)
    seed(warmup, datetime.now(UTC))
    _drain(ctx, warmup, dispatch=True)
    seed(count, datetime.now(UTC))
    seconds = _drain(ctx, warmup + count, dispatch=True)
    ctx.note("posts", count)
    ctx.note("broker", "amqp" if amqp else "redis")
    return {"posts_per_s": Measure(count / seconds, "posts/s")}


@benchmark(
    "publish_redis_bare",
    baseline={"posts_per_s": "celery_noop_redis.tasks_per_s"},
    target={"posts_per_s": ratio_at_least(0.4)},
)
def publish_redis_bare(ctx: Context) -> dict[str, Measure]:
    """End-to-end publish throughput, Redis broker, rate limits and breakers off."""
    return throughput(ctx, guards=False)


@benchmark(
    "publish_redis",
    baseline={"posts_per_s": "celery_noop_redis.tasks_per_s"},
    target={"posts_per_s": ratio_at_least(0.4)},
)
def publish_redis(ctx: Context) -> dict[str, Measure]:
    """End-to-end publish throughput with limiter + breaker on (limits never refusing);
    its median over publish_redis_bare's, in the same invocation, is what they cost."""
    return throughput(ctx, guards=True)


@benchmark(
    "publish_amqp_bare",
    baseline={"posts_per_s": "celery_noop_amqp.tasks_per_s"},
    target={"posts_per_s": ratio_at_least(0.4)},
)
def publish_amqp_bare(ctx: Context) -> dict[str, Measure]:
    """End-to-end publish throughput, RabbitMQ broker (AMQP_URL), limits and breakers off."""
    return throughput(ctx, guards=False, amqp=True)


def _lags(count: int) -> list[float]:
    from worker.db.session import unit_of_work

    with unit_of_work() as session:
        rows = session.execute(
            text(
                "SELECT extract(epoch FROM published_at - scheduled_at) FROM scheduled_posts "
                "WHERE status = 'published' ORDER BY 1"
            )
        ).scalars()
        return [float(v) for v in rows]


def _percentile(values: list[float], q: float) -> float:
    return statistics.quantiles(values, n=100, method="inclusive")[int(q) - 1]


def schedule_lag(ctx: Context, count: int) -> dict[str, Measure]:
    """`count` posts due in the same second, dispatched by the real beat."""
    from worker.local.processes import beat_argv

    _reset_in_process()
    _start_worker(ctx, fast_dispatch=True)
    due = datetime.now(UTC) + timedelta(seconds=8)
    seed(count, due)
    ctx.start("beat", beat_argv())
    ctx.wait_for(lambda: published() >= count, timeout=120 + count / 20, what="all published")
    lags = _lags(count)
    ctx.note("posts", count)
    return {
        "lag_p50_s": Measure(_percentile(lags, 50), "s"),
        "lag_p99_s": Measure(_percentile(lags, 99), "s"),
        "lag_max_s": Measure(max(lags), "s"),
        "early_posts": Measure(float(sum(1 for lag in lags if lag < -0.05)), "posts"),
        # The rate the backlog drained at: max lag is bounded below by count / this.
        "drain_posts_per_s": Measure(count / max(*lags, 1e-3), "posts/s"),
    }


@benchmark("schedule_lag_1000", target={"early_posts": at_most(0)})
def schedule_lag_1000(ctx: Context) -> dict[str, Measure]:
    """Schedule lag (published_at - scheduled_at) for 1,000 posts due in the same second."""
    return schedule_lag(ctx, ctx.size(1_000, 150))


@benchmark("schedule_lag_10000", target={"early_posts": at_most(0)})
def schedule_lag_10000(ctx: Context) -> dict[str, Measure]:
    """Schedule lag for 10,000 posts due in the same second (max vs the drain floor)."""
    return schedule_lag(ctx, ctx.size(10_000, 1_000))


def claim_rate(ctx: Context, count: int) -> dict[str, Measure]:
    from schedules.dispatcher import dispatch_due
    from worker.settings import get_settings

    _reset_in_process()
    seed(count, datetime.now(UTC) - timedelta(seconds=1))
    started = time.perf_counter()
    report = dispatch_due(get_settings(), budget=600)
    seconds = time.perf_counter() - started
    if report.claimed != count:
        raise AssertionError(f"claimed {report.claimed} of {count}")
    ctx.note("rows", count)
    return {"rows_per_s": Measure(count / seconds, "rows/s")}


@benchmark("dispatch_claim_10k", target={"rows_per_s": at_least(20_000)})
def dispatch_claim_10k(ctx: Context) -> dict[str, Measure]:
    """Dispatcher: claim + enqueue 10,000 due rows (no worker)."""
    return claim_rate(ctx, ctx.size(10_000, 2_000))


@benchmark("dispatch_claim_100k", target={"rows_per_s": at_least(20_000)})
def dispatch_claim_100k(ctx: Context) -> dict[str, Measure]:
    """Dispatcher: claim + enqueue 100,000 due rows (no worker)."""
    return claim_rate(ctx, ctx.size(100_000, 10_000))
