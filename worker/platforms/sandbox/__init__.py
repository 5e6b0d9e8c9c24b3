"""The sandbox platform: Instagram-, Facebook- and YouTube-shaped APIs on loopback.

One Starlette app serves the three platforms under prefixes (``DEFAULT_BASE_URLS``)
and its own control endpoints, a contract that tests outside this repo use:

* ``GET /__sandbox/ledger`` — every accepted publish: ``platform``, ``account``,
  ``client_ref``, ``external_id``, ``at`` (``?platform=`` filters);
  ``DELETE /__sandbox/ledger`` forgets them all.
* ``GET /__sandbox/faults`` — each platform's faults; ``POST /__sandbox/faults`` with
  ``{"platform": ..., <field>: ...}`` merges fields into that platform's faults
  (``"reset": true`` starts from none). Unknown platform or bad field: 400.

``GET /__sandbox/oauth`` lists every token-endpoint call (``platform``,
``grant_type``, ``grant_sha256`` — the first 16 hex digits of the presented token's
SHA-256 —, ``status``, ``at``); ``DELETE`` forgets them, and so does
``DELETE /__sandbox/ledger``.

Fault fields: ``latency_ms`` (+ random ``latency_jitter_ms``) delay every call;
``error_rate`` of publish calls are answered with ``status`` (default 503) in the
platform's error shape, with ``Retry-After: retry_after`` on 429 and 503;
``timeout_rate`` of publishes are recorded, then answered only after ``timeout_s``
(the client's read timeout fires first: the outcome-unknown case);
``revoke_tokens`` makes every call, and the OAuth endpoints, refuse the token;
``usage_percent`` pins the Graph usage headers; ``error_rate`` applies to the token
endpoints too. Failed publishes are not recorded.

Modules, one concern each:

* :mod:`.state` — the ledger store, the faults model and its validation, usage counts;
* :mod:`.faults` — applying a platform's faults to one call;
* :mod:`.wire` — request parsing and JSON responses shared by every route;
* :mod:`.graph` — the Instagram and Facebook Graph routes;
* :mod:`.google` — the YouTube and Google OAuth token routes;
* :mod:`.control` — the ``/__sandbox/*`` routes above;
* :mod:`.app` — the Starlette app, its server and base URLs.
"""

from __future__ import annotations

from worker.platforms.sandbox.app import (
    DEFAULT_BASE_URLS,
    DEFAULT_HOST,
    DEFAULT_PORT,
    base_urls,
    create_app,
    serve,
)
from worker.platforms.sandbox.state import Faults, apply_faults

__all__ = [
    "DEFAULT_BASE_URLS",
    "DEFAULT_HOST",
    "DEFAULT_PORT",
    "Faults",
    "apply_faults",
    "base_urls",
    "create_app",
    "serve",
]
