"""Sentry for workers and beat: task errors as issues, beat's tasks as Crons monitors.

`init_sentry` runs in a worker's main process at `celeryd_init` (before the pool
forks: children inherit the client, and the SDK restarts its sending thread in each
child) and in beat at `beat_init` (before the first entry is sent, so the Crons
headers go on every beat message). Not at app import: the CLI, Flower and every API
process that imports `worker.app` would report as workers, and the Celery
integration would patch their `apply_async` too.

Every event, transaction and breadcrumb leaves through `scrub`, the same redaction
as the logs, recursively: the Celery integration puts task args and kwargs in
`extra`, and local variables in exception frames, where Sentry's own scrubber (exact
key names, top level only) would let `access_token` through.
"""

from __future__ import annotations

import importlib.metadata
from typing import Any, Final

import sentry_sdk
import structlog
from sentry_sdk.integrations.celery import CeleryIntegration

from worker.observability.redaction import redact
from worker.settings import Settings

log = structlog.get_logger(__name__)

#: Process kinds that report to Sentry (its `component` tag).
COMPONENTS: Final = frozenset({"worker", "beat"})


def release(settings: Settings) -> str:
    """HERALD_SENTRY_RELEASE, else herald@<installed version>."""
    if settings.sentry_release:
        return settings.sentry_release
    try:
        return f"herald@{importlib.metadata.version('herald')}"
    except importlib.metadata.PackageNotFoundError:
        return "herald@unknown"


def scrub(event: Any, _hint: Any = None) -> Any:
    """before_send / before_send_transaction / before_breadcrumb: secrets withheld."""
    return redact(event)


def init_sentry(settings: Settings, component: str) -> bool:
    """Start the SDK for a worker or beat; False (and nothing started) without a DSN."""
    if component not in COMPONENTS:
        raise ValueError(f"component must be one of {sorted(COMPONENTS)}, not {component!r}")
    if settings.sentry_dsn is None or not settings.sentry_dsn.get_secret_value().strip():
        return False
    if sentry_sdk.get_client().is_active():  # `worker -B`: celeryd_init, then beat_init
        return True
    environment = settings.sentry_environment or settings.env
    sentry_sdk.init(
        dsn=settings.sentry_dsn.get_secret_value().strip(),
        environment=environment,
        release=release(settings),
        send_default_pii=False,
        traces_sample_rate=settings.sentry_traces_sample_rate,
        # Error lines (a post gone dead: its task ends normally) become events too.
        integrations=[CeleryIntegration(monitor_beat_tasks=True)],
        before_send=scrub,
        before_send_transaction=scrub,
        before_breadcrumb=scrub,
    )
    # The global scope: every task's scope (and each forked pool child's) starts from it.
    sentry_sdk.get_global_scope().set_tag("component", component)
    log.info("sentry.started", component=component, environment=environment)
    return True
