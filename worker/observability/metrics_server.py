"""prometheus_client's multiprocess mode under prefork, and each process's /metrics.

A prefork worker's tasks run in forked children; each child writes its samples to
memory-mapped files in one directory, and the main process's /metrics sums them
(``MultiProcessCollector``). prometheus_client picks its value class from
``PROMETHEUS_MULTIPROC_DIR`` when it is imported, and a labelled metric makes its
values only at ``.labels()``; so :func:`use_multiprocess_dir`, run in the worker's
main process before the pool forks and before any task ran, sets the variable and
re-picks the value class (children inherit both). The directory is this worker's
own (``<metrics_dir or HERALD_HOME/metrics>/<pid>``) and starts empty: files of a
previous run would be summed in forever.
"""

from __future__ import annotations

import os
import shutil
import tempfile
from pathlib import Path

import structlog
from prometheus_client import CollectorRegistry, multiprocess, start_http_server, values

from worker.settings import Settings

log = structlog.get_logger(__name__)

#: The variable prometheus_client reads to switch to multiprocess mode.
MULTIPROC_ENV = "PROMETHEUS_MULTIPROC_DIR"


def multiprocess_dir(settings: Settings, pid: int) -> Path:
    """This worker's own directory: two workers must never share (or wipe) one."""
    base = settings.metrics_dir or settings.home / "metrics"
    return base / str(pid)


def use_multiprocess_dir(settings: Settings) -> Path | None:
    """Switch this process (and the children it forks later) to multiprocess mode.

    An unwritable HERALD_HOME (a read-only image) falls back to the temp directory;
    if that fails too, metrics stay off for this worker rather than stop it."""
    fallback = Path(tempfile.gettempdir()) / "herald-metrics" / str(os.getpid())
    for path in (multiprocess_dir(settings, os.getpid()), fallback):
        try:
            shutil.rmtree(path, ignore_errors=True)
            path.mkdir(parents=True)
        except OSError as exc:
            log.warning("metrics.dir_unusable", path=str(path), error=str(exc))
            continue
        _switch_to(path)
        return path
    return None


def _switch_to(path: Path) -> None:
    os.environ[MULTIPROC_ENV] = str(path)
    # Re-pick the value class: metrics already declared make their (labelled) values
    # lazily through `values.ValueClass`, so none exists yet in the old mode.
    values.ValueClass = values.get_value_class()  # type: ignore[no-untyped-call]


def multiprocess_registry() -> CollectorRegistry:
    """A registry that sums every process's files in the multiprocess directory."""
    registry = CollectorRegistry()
    multiprocess.MultiProcessCollector(registry)  # type: ignore[no-untyped-call]
    return registry


def serve_metrics(port: int, registry: CollectorRegistry | None = None) -> bool:
    """Serve /metrics on `port` (0: off). A port in use is logged, never fatal: losing
    metrics must not stop a worker from publishing."""
    if port == 0:
        return False
    try:
        if registry is None:
            start_http_server(port)
        else:
            start_http_server(port, registry=registry)
    except OSError as exc:
        log.warning("metrics.serve_failed", port=port, error=str(exc))
        return False
    log.info("metrics.serving", port=port)
    return True


def process_exited(pid: int) -> None:
    """Drop a dead child's live gauges (its counters stay: they are still summed)."""
    if os.environ.get(MULTIPROC_ENV):
        multiprocess.mark_process_dead(pid)  # type: ignore[no-untyped-call]


def remove_multiprocess_dir() -> None:
    """At worker exit: the directory is this worker's alone and useless after it."""
    path = os.environ.get(MULTIPROC_ENV)
    if path:
        shutil.rmtree(path, ignore_errors=True)
