"""The process's cached clients: where they live, one `reset()`, one after-fork hook.

Herald caches one of each of these per process; every one is held here:

======================  =================================================
client                  getter (declared by the module that builds it)
======================  =================================================
settings                ``worker.settings.get_settings``
SQLAlchemy engine       ``worker.db.engine.get_engine``
coordination Redis      ``worker.coordination.redis_client.get_redis``
breakers                ``worker.resilience.breaker.get_breakers``
rate limiter            ``worker.resilience.ratelimit.get_limiter``
token cipher            ``worker.security.cipher.get_cipher``
platform HTTP clients   ``worker.platforms.base.http_client``
rate-limit log tag      ``worker.resilience.ratelimit`` (pid + random, per process)
======================  =================================================

A module declares its client with :func:`cached`, which returns the getter: the value
is built on first call and kept here until :func:`reset` (tests and benchmarks moving
to another database or namespace, a process whose settings changed), which closes and
forgets every client and then runs the :func:`on_reset` hooks (the Celery app
re-reads its configuration and drops its broker pools). Nothing else resets a client.

**After fork** the child forgets every client *without closing it*: the sockets belong
to the parent, and closing them in the child would end the parent's sessions. One hook
does it, registered once with ``os.register_at_fork`` when this module is first
imported; it runs in every forked child (Celery's prefork pool, multiprocessing,
``os.fork``) before any of the child's code can touch a parent's socket, which
Celery's ``worker_process_init`` signal alone would not cover.

**Embedded servers.** With ``DATABASE_URL`` / ``REDIS_URL`` unset, settings resolve to
embedded servers (``worker.local.embedded``), but only in a process that an entry
point marked with :func:`use_embedded_servers`: the ``herald`` command and Celery's
configuration load (``celeryconfig.py``, read when a worker, beat or Flower starts, or
when this process first sends a task). Anywhere else an unset URL stays unset:
reading settings works, connecting fails with a `SettingsError` naming the variable
(``worker.settings.required_url``). Importing a module never starts a server.

This module imports nothing from Herald, so every module may import it without a cycle.
"""

from __future__ import annotations

import os
import threading
from collections.abc import Callable
from typing import Any, Generic, TypeVar

T = TypeVar("T")

#: Serializes building: two threads asking at once get one client. Re-entrant because
#: building one client asks for another (the engine reads the settings).
_build_lock = threading.RLock()


class Cached(Generic[T]):
    """One cached client; call it to get the value (built on first call)."""

    def __init__(
        self,
        name: str,
        build: Callable[[], T],
        close: Callable[[T], object] | None,
        forget: Callable[[T], object] | None,
    ) -> None:
        self.name = name
        self._build = build
        self._close = close
        self._forget = forget
        self._value: T | None = None

    def __call__(self) -> T:
        value = self._value
        if value is None:
            with _build_lock:
                if self._value is None:
                    self._value = self._build()
                value = self._value
        return value

    def __repr__(self) -> str:
        state = "built" if self._value is not None else "not built"
        return f"<runtime client {self.name!r}: {state}>"

    def built(self) -> bool:
        return self._value is not None

    def _take(self) -> T | None:
        value, self._value = self._value, None
        return value


_clients: dict[str, Cached[Any]] = {}
_reset_hooks: list[Callable[[], object]] = []


class _Process:
    """What kind of process this is (not a client: `reset()` keeps it)."""

    embedded_servers = False


def cached(
    name: str,
    build: Callable[[], T],
    *,
    close: Callable[[T], object] | None = None,
    forget: Callable[[T], object] | None = None,
) -> Cached[T]:
    """Declare the process's `name` client; return its getter.

    `close` runs on :func:`reset` (default: the client is only dropped); `forget`
    runs in a forked child instead (default: dropped without touching it).
    Declaring a name again (a reloaded module) replaces the earlier declaration.
    """
    client = Cached(name, build, close, forget)
    _clients[name] = client
    return client


def on_reset(hook: Callable[[], object]) -> None:
    """Run `hook` after every :func:`reset` (state derived from settings that is not a
    client held here, such as the Celery app's configuration)."""
    _reset_hooks.append(hook)


def reset() -> None:
    """Close and forget every client, then run the reset hooks: the next use builds
    from the current settings and environment, as in a new process.

    Clients are closed newest first (those built on others go before them); every
    client is forgotten even if closing one fails, and the first failure is raised.
    """
    taken = [(client, client._take()) for client in reversed(_clients.values())]
    failure: BaseException | None = None
    for client, value in taken:
        if value is not None and client._close is not None:
            try:
                client._close(value)
            except Exception as exc:  # the others are still closed
                failure = failure or exc
    for hook in _reset_hooks:
        hook()
    if failure is not None:
        raise failure


def _after_fork_in_child() -> None:
    global _build_lock  # noqa: PLW0603 - a parent's thread may have held it at fork time
    _build_lock = threading.RLock()
    for client in _clients.values():
        value = client._take()
        if value is not None and client._forget is not None:
            client._forget(value)


os.register_at_fork(after_in_child=_after_fork_in_child)


def use_embedded_servers() -> None:
    """Let this process start the embedded servers for an unset URL (entry points only)."""
    _Process.embedded_servers = True


def embedded_servers_allowed() -> bool:
    return _Process.embedded_servers
