"""When an account's token is due for a refresh: one rule, in Python and in SQL.

A token is refreshed ``window`` seconds before it expires (HERALD_TOKEN_REFRESH_WINDOW).
A token that lives shorter than twice the window (Google's hour against a day's window)
would be due from birth, so it is refreshed at half its life instead. Its life is
``token_expires_at - updated_at``: the row is written when the token is stored. An
unrelated write later (a deactivation) shortens that estimate, which only delays the
refresh towards expiry; so a token is always due once fewer than ``margin`` seconds
(two sweeps) remain, capped at half its life so a fresh token is never due at once.

``is_due`` decides under the account's lock; ``DUE_SQL`` selects in the sweep, its
first condition a range on the ``(is_active, token_expires_at)`` index. A test checks
that the two agree.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Final

from worker.settings import Settings

#: The sweep's WHERE (parameters :now, :window, :margin, :reach as seconds).
DUE_SQL: Final = """
    is_active = true
    AND token_expires_at <= :now + make_interval(secs => :reach)
    AND NOT needs_reauth
    AND extract(epoch FROM token_expires_at - :now) <= greatest(
        CASE WHEN extract(epoch FROM token_expires_at - updated_at) >= 2 * :window
             THEN :window
             ELSE extract(epoch FROM token_expires_at - updated_at) / 2 END,
        least(:margin, extract(epoch FROM token_expires_at - updated_at) / 2)
    )
"""


@dataclass(frozen=True)
class RefreshPolicy:
    """``window``: seconds before expiry a long-lived token is refreshed; ``margin``:
    seconds before expiry any token is due (at most half its life)."""

    window: float
    margin: float

    @classmethod
    def from_settings(cls, settings: Settings) -> RefreshPolicy:
        return cls(float(settings.token_refresh_window), 2 * settings.token_refresh_interval)

    @property
    def reach(self) -> float:
        """The furthest ahead of now a due token can expire."""
        return max(self.window, self.margin)

    def threshold(self, lifetime: float) -> float:
        """Seconds before expiry at which a token living ``lifetime`` seconds is due."""
        base = self.window if lifetime >= 2 * self.window else lifetime / 2
        return max(base, min(self.margin, lifetime / 2))

    def is_due(self, expires_at: datetime | None, issued_at: datetime, now: datetime) -> bool:
        """Whether a token expiring at ``expires_at`` (None: unknown, never due), stored
        at ``issued_at``, should be refreshed at ``now``."""
        if expires_at is None:
            return False
        lifetime = (expires_at - issued_at).total_seconds()
        return (expires_at - now).total_seconds() <= self.threshold(lifetime)

    def sql_params(self, now: datetime) -> dict[str, object]:
        """The parameters of :data:`DUE_SQL`."""
        return {"now": now, "window": self.window, "margin": self.margin, "reach": self.reach}
