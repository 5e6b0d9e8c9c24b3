"""The one way library code reaches the Celery app: to send tasks.

`worker.app` registers its app here when it creates it; library modules (publishing,
tokens, dead letters) send through :func:`current` and never import `worker.app`,
which imports them (through the task modules and the signal receivers): that was an
import cycle. Signal receivers need no app from here: Celery hands it to them as
`sender` (or `sender.app`).

Why a registration rather than Celery's `current_app`: `current_app` falls back to a
default app (broker `amqp://localhost`) in a process that never created Herald's, and
follows whichever app a test made current last; a send would then go to the wrong
broker without an error. Here an unregistered app is an error that names the fix.
"""

from __future__ import annotations

from celery import Celery


class _Registered:
    app: Celery | None = None


def register(app: Celery) -> None:
    """Make `app` the one library code sends with (called by `worker.app` on creation)."""
    _Registered.app = app


def current() -> Celery:
    """The registered app; an entry point that sends imports `worker.app` first."""
    app = _Registered.app
    if app is None:
        raise RuntimeError(
            "no Celery app in this process: import worker.app (the entry point's job) "
            "before sending tasks"
        )
    return app
