"""The refresh policy: when a token is due (pure logic, an injected clock)."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from worker.tokens.policy import RefreshPolicy

NOW = datetime(2026, 1, 1, 12, 0, tzinfo=UTC)
DAY = 86_400.0
#: The defaults: a day's window, sweeps every five minutes.
POLICY = RefreshPolicy(window=DAY, margin=600.0)


def due(expires_in: float, lived: float, policy: RefreshPolicy = POLICY) -> bool:
    """A token that expires ``expires_in`` seconds from now and was stored ``lived`` ago."""
    expires_at = NOW + timedelta(seconds=expires_in)
    return policy.is_due(expires_at, NOW - timedelta(seconds=lived), NOW)


@pytest.mark.parametrize(
    ("expires_in", "lived", "expected"),
    [
        (DAY - 1, 59 * DAY, True),  # a 60-day token inside its last day
        (DAY + 60, 59 * DAY, False),  # ... a minute before that day starts
        (-60, 60 * DAY, True),  # already expired: still tried (the platform decides)
        (1799, 1800, True),  # Google's hour: due at half its life
        (1900, 1700, False),  # ... not before
        (3599, 0, False),  # a token just stored is never due at once
        (500, 2 * DAY, True),  # inside the margin, whatever the estimate
    ],
)
def test_given_a_token_when_asked_then_due_follows_window_or_half_life(
    expires_in: float, lived: float, expected: bool
) -> None:
    assert due(expires_in, lived) is expected


def test_a_token_of_unknown_expiry_is_never_due() -> None:
    assert POLICY.is_due(None, NOW - timedelta(days=400), NOW) is False


def test_the_margin_never_makes_a_fresh_short_token_due() -> None:
    # Sweeps every hour (margin 2 h) against tokens that live an hour.
    hourly = RefreshPolicy(window=DAY, margin=7200.0)

    assert due(3599, 1, hourly) is False
    assert due(1790, 1810, hourly) is True


def test_reach_covers_the_window_and_the_margin() -> None:
    assert RefreshPolicy(window=60, margin=600).reach == 600
    assert POLICY.reach == DAY
    assert POLICY.sql_params(NOW) == {"now": NOW, "window": DAY, "margin": 600.0, "reach": DAY}


def test_a_malformed_account_id_is_a_counted_outcome_that_never_echoes_a_long_value() -> None:
    from prometheus_client import REGISTRY

    from worker.tokens.refresh import refresh_account

    labels = {"platform": "unknown", "outcome": "not_found"}

    def counted() -> float:
        return REGISTRY.get_sample_value("herald_token_refreshes_total", labels) or 0.0

    before = counted()
    long_value = "EAAB" + "x" * 60

    typo = refresh_account("acct-42")
    pasted = refresh_account(long_value)

    assert (typo.outcome, pasted.outcome) == ("not_found", "not_found")
    assert "'acct-42' is not a UUID" in typo.detail
    assert long_value not in pasted.detail and "64 characters" in pasted.detail
    assert counted() == before + 2
