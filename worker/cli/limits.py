"""`herald limits ...`: see and change the global rate limits while everything runs.

A change is stored in Redis and reaches every worker within
`limits_config.CACHE_SECONDS`; each one is written to the audit log (who: `--actor`,
else the OS user). Three things can be set per platform: the per-account default
(`herald limits set instagram 30/h`), one account (`--account ID`) and the app-wide
cap (`--app`). A bad spec exits 1 with `herald: <message>` on stderr; an unknown
platform or conflicting flags are usage errors (2).
"""

from __future__ import annotations

import uuid
from typing import TYPE_CHECKING, Any

import click

from worker.cli.common import emit, settings_or_exit
from worker.constants import PLATFORMS

if TYPE_CHECKING:
    from worker.resilience.limits_config import LimitTarget, Resolved
    from worker.resilience.ratelimit import RateLimiter


def _target(platform: str, account: uuid.UUID | None, app: bool) -> LimitTarget:
    from worker.resilience.limits_config import LimitTarget

    if app and account is not None:
        raise click.UsageError("give --app or --account, not both")
    if app:
        return LimitTarget(platform, "app")
    return LimitTarget(platform, "account", str(account) if account else None)


def _scope(target: LimitTarget) -> str:
    if target.kind == "app":
        return "app-wide cap"
    return "account" if target.account_id else "per-account default"


def _check_account(target: LimitTarget) -> None:
    """An override for an account that does not exist (a typo) would never apply."""
    from worker.db.accounts import AccountError, AccountNotFound, get_account

    if target.account_id is None:
        return
    account = get_account(target.account_id)
    if account is None:
        raise AccountNotFound.of(target.account_id)
    if account.platform != target.platform:
        raise AccountError(
            f"account {target.account_id} is on {account.platform}, not {target.platform}"
        )


def _described(resolved: Resolved | None) -> dict[str, Any] | None:
    if resolved is None:
        return None
    return {"spec": resolved.spec, "source": resolved.source}


def _limiter() -> RateLimiter:
    settings_or_exit()
    from worker.resilience.ratelimit import get_limiter

    return get_limiter()


def _audited(action: str, target: LimitTarget, actor: str | None, **detail: Any) -> int:
    from worker.db import audit

    return audit.record(action, actor=actor, target=target.field, **detail)


account_option = click.option(
    "--account", type=click.UUID, help="One account (its id in Herald) instead of the default."
)
app_option = click.option("--app", is_flag=True, help="The platform's app-wide cap.")
actor_option = click.option("--actor", help="Who makes the change (default: the OS user).")


@click.group()
def limits() -> None:
    """Global rate limits per platform and account (changes apply within seconds)."""


@limits.command("set")
@click.argument("platform", type=click.Choice(PLATFORMS))
@click.argument("spec")
@account_option
@app_option
@actor_option
def set_(platform: str, spec: str, account: uuid.UUID | None, app: bool, actor: str | None) -> None:
    """Set PLATFORM's per-account limit (or --app / --account ID) to SPEC.

    SPEC is one or more windows COUNT/[N]UNIT (units s, m, h, d), all enforced:
    `30/h`, `25/h,5/m`, `100/15m`.
    """
    from worker.resilience.limits_config import parse

    target = _target(platform, account, app)
    windows = parse(spec)
    limiter = _limiter()
    _check_account(target)
    before = limiter.config.set(target, windows)
    after = limiter.config.resolve(target)
    try:
        entry = _audited("limits.set", target, actor, spec=after.spec, previous=before.spec)
    except Exception:
        _undo(limiter, target, before)  # no change without its audit entry
        raise
    emit(
        {
            "target": target.field,
            "scope": _scope(target),
            "spec": after.spec,
            "previous": _described(before),
            "audit_id": entry,
        }
    )


def _undo(limiter: RateLimiter, target: LimitTarget, before: Resolved) -> None:
    if before.source == "override":
        limiter.config.set(target, before.windows)
    else:
        limiter.config.reset(target)


@limits.command("reset")
@click.argument("platform", type=click.Choice(PLATFORMS))
@account_option
@app_option
@actor_option
def reset(platform: str, account: uuid.UUID | None, app: bool, actor: str | None) -> None:
    """Drop PLATFORM's override (or --app / --account ID's): its default applies again."""
    target = _target(platform, account, app)
    limiter = _limiter()
    removed = limiter.config.reset(target)
    now = limiter.config.resolve(target)
    entry = None
    if removed is not None:
        try:
            entry = _audited("limits.reset", target, actor, spec=now.spec, previous=removed.spec)
        except Exception:
            limiter.config.set(target, removed.windows)
            raise
    emit(
        {
            "target": target.field,
            "scope": _scope(target),
            "changed": removed is not None,
            "spec": now.spec,
            "source": now.source,
            "previous": _described(removed),
            "audit_id": entry,
        }
    )


@limits.command("show")
@click.argument("platform", required=False, type=click.Choice(PLATFORMS))
@account_option
def show(platform: str | None, account: uuid.UUID | None) -> None:
    """Configured windows, where they come from, and what remains now (JSON)."""
    if account is not None and platform is None:
        raise click.UsageError("--account needs PLATFORM")
    limiter = _limiter()
    from worker.resilience import limits_config

    shown = {
        name: _platform_view(limiter, name, str(account) if account else None)
        for name in ([platform] if platform else PLATFORMS)
    }
    emit({"enabled": limits_config.enabled(), "platforms": shown})


def _platform_view(limiter: RateLimiter, platform: str, account_id: str | None) -> dict[str, Any]:
    from worker.resilience.limits_config import LimitTarget, format_spec

    config = limiter.config
    prefix = LimitTarget(platform, "account").field + ":"
    view: dict[str, Any] = {
        "app": _live(limiter, LimitTarget(platform, "app")),
        "account_default": _described(config.resolve(LimitTarget(platform, "account"))),
        "account_overrides": {
            field.removeprefix(prefix): format_spec(windows)
            for field, windows in sorted(config.overrides().items())
            if field.startswith(prefix)
        },
    }
    if account_id is not None:
        view["account"] = {
            "id": account_id,
            **_live(limiter, LimitTarget(platform, "account", account_id)),
        }
    return view


def _live(limiter: RateLimiter, target: LimitTarget) -> dict[str, Any]:
    now = limiter.peek(target.platform, target.account_id, only=target.kind)
    described = _described(limiter.config.resolve(target))
    assert described is not None
    return {**described, "remaining": now.remaining, "retry_after": round(now.retry_after, 3)}
