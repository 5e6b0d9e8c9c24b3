"""The ``/__sandbox/*`` control routes: read or clear the ledger, read or set faults.

These are the contract tests outside this repo rely on (see
:mod:`worker.platforms.sandbox`); their shapes must not change.
"""

from __future__ import annotations

import dataclasses
import json

from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from worker.constants import PLATFORMS
from worker.platforms.sandbox.state import SandboxState, apply_faults
from worker.platforms.sandbox.wire import json_response


def routes(state: SandboxState) -> list[Route]:
    """The control routes of a sandbox holding ``state``."""
    control = Control(state)
    return [
        Route("/__sandbox/ledger", control.get_ledger, methods=["GET"]),
        Route("/__sandbox/ledger", control.delete_ledger, methods=["DELETE"]),
        Route("/__sandbox/faults", control.get_faults, methods=["GET"]),
        Route("/__sandbox/faults", control.post_faults, methods=["POST"]),
        Route("/__sandbox/oauth", control.get_oauth, methods=["GET"]),
        Route("/__sandbox/oauth", control.delete_oauth, methods=["DELETE"]),
    ]


class Control:
    """Control endpoints over one sandbox's state."""

    def __init__(self, state: SandboxState) -> None:
        self._state = state

    async def get_ledger(self, request: Request) -> Response:
        """Every accepted publish, oldest first; ``?platform=`` filters."""
        only = request.query_params.get("platform")
        posts = list(self._state.store.ledger)
        return json_response([p.ledger_entry() for p in posts if only in (None, p.platform)])

    async def delete_ledger(self, request: Request) -> Response:
        """Forget every publish (and every token-endpoint call: a fresh start)."""
        self._state.oauth.clear()
        return json_response({"cleared": self._state.store.clear()})

    async def get_oauth(self, request: Request) -> Response:
        """Every token-endpoint call, oldest first; ``?platform=`` filters."""
        only = request.query_params.get("platform")
        calls = list(self._state.oauth.calls)
        return json_response([c for c in calls if only in (None, c["platform"])])

    async def delete_oauth(self, request: Request) -> Response:
        """Forget every token-endpoint call."""
        return json_response({"cleared": self._state.oauth.clear()})

    async def get_faults(self, request: Request) -> Response:
        """Each platform's current faults."""
        return json_response({p: dataclasses.asdict(f) for p, f in self._state.faults.items()})

    async def post_faults(self, request: Request) -> Response:
        """Change one platform's faults; 400 with the reason when the request is bad."""
        try:
            body = json.loads(await request.body())
        except ValueError:
            body = None
        if not isinstance(body, dict):
            return json_response({"error": "the body must be a JSON object"}, 400)
        platform = body.pop("platform", None)
        faults = self._state.faults
        if platform not in faults:
            known = ", ".join(PLATFORMS)
            return json_response({"error": f"platform must be one of {known}"}, 400)
        try:
            faults[platform] = apply_faults(faults[platform], body)
        except ValueError as exc:
            return json_response({"error": str(exc)}, 400)
        return json_response({"platform": platform, **dataclasses.asdict(faults[platform])})
