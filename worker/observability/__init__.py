"""Observability: structured logs with request ids, Prometheus metrics, health probes, Sentry."""
