"""Flower behind a login: where its credentials come from and how they reach it.

Flower reads every option from a `FLOWER_<OPTION>` environment variable, so the
credentials go there and never onto a command line (`ps` shows argv to every user).
Production settings refuse to start without `FLOWER_BASIC_AUTH`; in development a
missing one is replaced by a random password that `herald run` prints once.

Flower 2.x serves `/metrics` and `/healthcheck` without a login even with basic auth
on. They carry worker names, task names and counts, no arguments or secrets; bind
Flower to loopback or put a proxy in front if even that must stay private.

`python -m worker.local.flower [FLOWER OPTIONS]` is the container entry point: it loads the
settings (which read `/run/secrets/flower_basic_auth`) and becomes Flower.
"""

from __future__ import annotations

import os
import secrets
import sys
from collections.abc import Mapping
from dataclasses import dataclass

from worker import runtime
from worker.local.supervisor import apply_env_changes
from worker.settings import Settings, SettingsError, get_settings

#: The variable Flower reads its `--basic-auth` option from (`user:password[,user:password]`).
AUTH_VARIABLE = "FLOWER_BASIC_AUTH"
#: Flower treats every `FLOWER_*` variable as an option and crashes on unknown ones.
FLOWER_PREFIX = "FLOWER_"
#: The user of a generated development login.
GENERATED_USER = "herald"


@dataclass(frozen=True)
class FlowerLogin:
    """Flower's credentials; `generated` ones were made up for this run only."""

    credentials: str
    generated: bool

    @property
    def user(self) -> str:
        return self.credentials.split(":", 1)[0]

    @property
    def password(self) -> str:
        return self.credentials.split(":", 1)[1]

    def __repr__(self) -> str:
        return f"FlowerLogin(user={self.user!r}, generated={self.generated})"


def flower_login(settings: Settings) -> FlowerLogin:
    """The configured login, else (development only; settings enforce it) a random one."""
    if settings.flower_basic_auth is not None:
        return FlowerLogin(settings.flower_basic_auth.get_secret_value(), generated=False)
    if settings.env == "production":
        # The settings validator already refuses this; a second lock on the same door.
        raise SettingsError(["FLOWER_BASIC_AUTH: required in production"])
    return FlowerLogin(f"{GENERATED_USER}:{secrets.token_urlsafe(18)}", generated=True)


def flower_env_changes(base: Mapping[str, str], login: FlowerLogin) -> dict[str, str | None]:
    """What Flower's environment changes from `base`: the login in, other `FLOWER_*` out
    (None: remove), so a stray variable cannot crash it or override its options."""
    changes: dict[str, str | None] = {k: None for k in base if k.startswith(FLOWER_PREFIX)}
    changes[AUTH_VARIABLE] = login.credentials
    return changes


def flower_env(base: Mapping[str, str], login: FlowerLogin) -> dict[str, str]:
    """`base` with the login for Flower and without stray `FLOWER_*` variables."""
    return apply_env_changes(base, flower_env_changes(base, login))


def flower_args(host: str, port: int) -> list[str]:
    """Flower's options (the `celery -A worker.app flower` part is the caller's)."""
    return [f"--address={host}", f"--port={port}"]


def flower_url(host: str, port: int) -> str:
    shown = "127.0.0.1" if host in ("", "0.0.0.0") else host  # noqa: S104 - only displayed
    return f"http://{shown}:{port}/"


def main(argv: list[str]) -> None:
    """Load settings (secrets included), hand the login to Flower's env, exec Flower."""
    runtime.use_embedded_servers()  # an entry point (see worker.runtime)
    try:
        settings = get_settings()
        login = flower_login(settings)
    except SettingsError as exc:
        print("herald flower: configuration error", file=sys.stderr)
        for problem in exc.problems:
            print(f"  {problem}", file=sys.stderr)
        sys.exit(2)
    if login.generated:
        print(f"herald flower: login {login.user} / {login.password}", file=sys.stderr)
    command = [sys.executable, "-m", "celery", "-A", "worker.app", "flower", *argv]
    # Become Flower (same pid: the container's signals and exit status are Flower's).
    os.execve(sys.executable, command, flower_env(os.environ, login))  # noqa: S606


if __name__ == "__main__":
    main(sys.argv[1:])
