"""Retention (grandfather-father-son) over random backup histories, checked against a
straightforward re-computation written independently of worker.backups.retention."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from hypothesis import given, settings
from hypothesis import strategies as st

from worker.backups.retention import Candidate, Policy, keep, to_delete

START = datetime(2024, 1, 1, tzinfo=UTC)
STATUSES = ("succeeded", "succeeded", "succeeded", "running", "failed", "deleted")


@st.composite
def histories(draw: st.DrawFn) -> list[Candidate]:
    """Up to 80 backups over ~3 years, several a day possible, same-second ties too."""
    count = draw(st.integers(0, 80))
    offsets = draw(st.lists(st.integers(0, 3 * 365 * 86_400), min_size=count, max_size=count))
    backups = []
    for backup_id, offset in enumerate(offsets, start=1):
        backups.append(
            Candidate(
                id=backup_id,
                status=draw(st.sampled_from(STATUSES)),
                taken_at=START + timedelta(seconds=offset),
                verified_ok=draw(st.booleans()),
            )
        )
    return backups


policies = st.builds(Policy, st.integers(0, 10), st.integers(0, 8), st.integers(0, 12))


def reference_keep(backups: list[Candidate], policy: Policy) -> set[int]:
    """Walk from newest to oldest; the first backup seen in a period is that period's."""
    done = sorted(
        (b for b in backups if b.status == "succeeded"),
        key=lambda b: (b.taken_at, b.id),
        reverse=True,
    )
    kept: set[int] = set()
    for label, limit in (("day", policy.daily), ("week", policy.weekly), ("month", policy.monthly)):
        seen: list[object] = []
        for backup in done:
            at = backup.taken_at
            if label == "day":
                period: object = (at.year, at.month, at.day)
            elif label == "week":
                iso = at.isocalendar()
                period = (iso.year, iso.week)
            else:
                period = (at.year, at.month)
            if period in seen:
                continue
            if len(seen) == limit:
                break
            seen.append(period)
            kept.add(backup.id)
    for backup in done:  # newest first: the first verified one is the newest
        if backup.verified_ok:
            kept.add(backup.id)
            break
    return kept


@settings(max_examples=200, deadline=None)
@given(histories(), policies)
def test_kept_set_is_the_straightforward_gfs_set(backups: list[Candidate], policy: Policy) -> None:
    assert keep(backups, policy) == reference_keep(backups, policy)


@settings(max_examples=100, deadline=None)
@given(histories(), policies)
def test_newest_verified_backup_is_always_kept(backups: list[Candidate], policy: Policy) -> None:
    verified = [b for b in backups if b.status == "succeeded" and b.verified_ok]
    if verified:
        newest = max(verified, key=lambda b: (b.taken_at, b.id))
        assert newest.id in keep(backups, policy)
        assert newest.id not in to_delete(backups, policy)


@settings(max_examples=100, deadline=None)
@given(histories(), policies)
def test_applying_twice_keeps_the_same_set(backups: list[Candidate], policy: Policy) -> None:
    dropped = set(to_delete(backups, policy))
    after = [
        Candidate(b.id, "deleted", b.taken_at, b.verified_ok) if b.id in dropped else b
        for b in backups
    ]
    assert to_delete(after, policy) == []
    assert keep(after, policy) == keep(backups, policy)


@settings(max_examples=100, deadline=None)
@given(histories(), policies)
def test_never_more_than_the_policy_allows(backups: list[Candidate], policy: Policy) -> None:
    assert len(keep(backups, policy)) <= policy.daily + policy.weekly + policy.monthly + 1


@settings(max_examples=100, deadline=None)
@given(histories(), policies)
def test_only_succeeded_backups_are_deleted(backups: list[Candidate], policy: Policy) -> None:
    by_id = {b.id: b for b in backups}
    for backup_id in to_delete(backups, policy):
        assert by_id[backup_id].status == "succeeded"  # never running, failed or deleted


def test_a_week_of_nightly_backups_keeps_the_newest_each_day() -> None:
    """Given two backups a day for ten days, when keeping 3 daily and nothing else,
    then the later backup of each of the three newest days is kept."""
    backups = [
        Candidate(day * 2 + half, "succeeded", START + timedelta(days=day, hours=3 + 12 * half))
        for day in range(10)
        for half in (0, 1)
    ]
    assert keep(backups, Policy(daily=3, weekly=0, monthly=0)) == {19, 17, 15}


def test_a_running_backup_is_never_deleted_even_with_nothing_kept() -> None:
    backups = [
        Candidate(1, "running", START),
        Candidate(2, "succeeded", START + timedelta(days=1)),
    ]
    assert to_delete(backups, Policy(0, 0, 0)) == [2]
