"""Herald's benchmarks: `make bench` runs `python -m bench`.

    python -m bench [--only NAME ...] [--repeat N] [--quick] [--list]

Each selected benchmark runs N times (default 5; `--quick`: once, small sizes),
together with the baselines it is compared with, and the results go to
`bench/results/latest.json` (every run, median/min/max, the baseline's runs and
median, ratio, target, machine) and `bench/results/latest.md` (the table).
Servers: `REDIS_URL` / `DATABASE_URL` / `AMQP_URL` when set, else embedded Redis
and PostgreSQL under `.herald/bench/`. Every run gets a fresh migrated database
and a fresh Redis namespace, removed afterwards.

Adding a benchmark
------------------
Write a function in a module of its own under `bench/` (any name but
`celery_baseline`; modules are found by themselves)::

    from bench import Measure, benchmark, at_least, ratio_at_least
    from bench.context import Context

    @benchmark(
        "publish_redis",                                   # [a-z0-9_]
        baseline="celery_noop_redis",                      # same metric names, or
        # baseline={"posts_per_s": "celery_noop_redis.tasks_per_s"},
        target={"tasks_per_s": ratio_at_least(0.4)},       # or at_least / at_most / ratio_at_most
    )
    def publish_redis(ctx: Context) -> dict[str, Measure]:
        '''End-to-end publish throughput (first docstring line = description).'''
        n = ctx.size(full=5_000, quick=500)
        sandbox_url = ctx.start_sandbox()      # also sets *_API_URL in ctx.env
        worker = ctx.start("worker", worker_argv(("posts",), "bench", 4))  # ctx.env applies
        ctx.wait_for_worker(ctx.herald_app(), worker, "bench")
        ...                                    # ctx.wait_for(cond, timeout=..., what=...)
        return {"tasks_per_s": Measure(n / seconds, "tasks/s")}

The context (bench/context.py) gives: `redis_url`, `database_url` (this run's fresh
database), `admin_database_url`, `amqp_url` (or `ctx.require_amqp()`, which skips),
`namespace` and `ctx.key(...)`, `env` (for Herald subprocesses: this run's
DATABASE_URL / REDIS_URL / HERALD_NAMESPACE; this process's environment says the
same while the run lasts, so `worker.*` called in-process uses them), `work_dir`
(logs), `quick` / `size()`, `start()` (a subprocess, stopped at the end),
`redis()`, `herald_settings()`, `herald_app()`, `wait_for_worker()`,
`start_sandbox()`, `wait_for()`, `note()` (details kept in the JSON), `skip()`.
Everything a helper starts is stopped when the run ends. Wait on conditions with
deadlines, never on bare sleeps; return measured numbers only.

Baselines ship in `celery_noop.py` (bare Celery: `celery_noop_redis`,
`celery_noop_amqp`), `limiter_baseline.py` (`limits_baseline`, and
`limits_decisions_per_s()` to call directly), `pgdump_baseline.py`
(`pg_dump_baseline`, and `seed_database()` / `timed_pg_dump()`) and `memory.py`
(`idle_memory`).
"""

from bench.registry import (
    Measure,
    Skip,
    Target,
    at_least,
    at_most,
    benchmark,
    ratio_at_least,
    ratio_at_most,
)

__all__ = [
    "Measure",
    "Skip",
    "Target",
    "at_least",
    "at_most",
    "benchmark",
    "ratio_at_least",
    "ratio_at_most",
]
