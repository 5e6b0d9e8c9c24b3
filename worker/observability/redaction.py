"""Secrets out of everything Herald writes down: log lines, Sentry events, breadcrumbs.

Two rules, applied recursively through dicts, lists and tuples:

* a **key** that names a secret (`*token*`, `*secret*`, `*password*`, `authorization`,
  `api_key`, `dsn`, ...) has its text value replaced whole. Only text is withheld:
  a number or a time under such a key (`tokens_refreshed=3`, `token_expires_at`) is
  no secret and stays readable.
* any **text** has the secrets found inside it replaced: passwords in URLs
  (`redis://user:pass@` -> `redis://user:***@`), bearer and basic credentials,
  Fernet tokens (`gAAAAA...`), and `key=value` / `'key': 'value'` pairs whose key
  names a secret (query strings, reprs of kwargs in Celery's own lines, tracebacks).

Sentry's default scrubber matches exact key names and does not recurse, so
`access_token` inside a task's kwargs would get through it (DESIGN.md, Known traps).
"""

from __future__ import annotations

import functools
import re
from collections.abc import Mapping, MutableMapping
from typing import Any, Final

#: What a withheld secret is replaced with.
MASK: Final = "***"

#: Parts of key names whose values are secrets (matched case-insensitively, anywhere).
SECRET_KEY_PARTS: Final = (
    "token",
    "secret",
    "password",
    "passwd",
    "authorization",
    "api_key",
    "apikey",
    "api-key",
    "dsn",
    "cookie",
    "credential",
    "private_key",
)

_KEY_PART = "|".join(re.escape(part) for part in SECRET_KEY_PARTS)

#: scheme://user:password@ (the user may be empty: redis://:password@host).
_URL_PASSWORD = re.compile(r"(\b[A-Za-z][A-Za-z0-9+.-]*://[^\s:/@'\"]*:)([^\s@/'\"]+)@")
#: Authorization header values (a credential of 8+ characters, so prose survives).
_BEARER = re.compile(r"\b(Bearer|bearer|BEARER|Basic|BASIC)(\s+)[A-Za-z0-9._~+/=-]{8,}")
#: Fernet tokens: version byte 0x80 base64-encodes to "gAAAAA".
_FERNET = re.compile(r"gAAAAA[A-Za-z0-9_=-]{20,}")
#: key=value, key: value, 'key': 'value', "key": "value" where the key names a secret.
#: A quoted value runs to its closing quote; a bare one to a separator.
_PAIR = re.compile(
    # The look-behind starts keys at word starts only: without it every position of a
    # long word is tried and a log line costs a millisecond.
    rf"""(?P<key>(?<![\w.-])["']?[\w.-]*?(?:{_KEY_PART})[\w.-]*["']?\s*[:=]\s*)"""
    r"""(?:(?P<quote>["'])(?P<quoted>(?:\\.|(?!(?P=quote)).)*)(?P=quote)"""
    r"""|(?P<bare>(?:Bearer\s+|Basic\s+)?[^\s"'&,;)}\]]+))""",
    re.IGNORECASE,
)
#: Bare values that are no secret: counts, ids by number, already withheld.
_HARMLESS = re.compile(r"\d{1,12}|\*\*\*|None|null|true|false|True|False")


def _names_secret(lowered: str) -> bool:
    return any(part in lowered for part in SECRET_KEY_PARTS)


def is_secret_key(key: object) -> bool:
    """Whether a mapping key (or keyword, header, variable name) names a secret."""
    return isinstance(key, str) and _key_names_secret(key)


@functools.lru_cache(maxsize=4096)
def _key_names_secret(key: str) -> bool:
    # Log lines repeat the same few dozen keys: remember the answer for each.
    return _names_secret(key.lower())


def redact_text(text: str) -> str:
    """`text` with every secret it visibly carries replaced by `MASK`.

    Each pattern runs only when a plain substring test says it could match: every log
    line passes here, and most hold nothing but ids.
    """
    if len(text) < 8:
        return text
    has_pair = "=" in text or ":" in text
    has_space = " " in text
    if not (has_pair or has_space or "gAAAAA" in text):
        return text  # ids, names, numbers: most of every line
    lowered = text.lower()
    if "://" in text and "@" in text:
        text = _URL_PASSWORD.sub(rf"\1{MASK}@", text)
    if has_space and ("bearer" in lowered or "basic" in lowered):
        text = _BEARER.sub(rf"\1\2{MASK}", text)
    if "gAAAAA" in text:
        text = _FERNET.sub(MASK, text)
    if has_pair and _names_secret(lowered):
        text = _PAIR.sub(_mask_pair, text)
    return text
    lowered = text.lower()
    if "://" in text:
        text = _URL_PASSWORD.sub(rf"\1{MASK}@", text)
    if "bearer" in lowered or "basic" in lowered:
        text = _BEARER.sub(rf"\1\2{MASK}", text)
    if "gAAAAA" in text:
        text = _FERNET.sub(MASK, text)
    if _names_secret(lowered) and ("=" in text or ":" in text):
        text = _PAIR.sub(_mask_pair, text)
    return text


def _mask_pair(match: re.Match[str]) -> str:
    quote = match.group("quote")
    if quote is not None:
        return f"{match.group('key')}{quote}{MASK}{quote}" if match.group("quoted") else match[0]
    if _HARMLESS.fullmatch(match.group("bare")):
        return match[0]
    return f"{match.group('key')}{MASK}"


#: Values that cannot carry a secret and keep their type.
_PLAIN = (int, float, bool, type(None))
_PLAIN_TYPES = frozenset(_PLAIN)


def redact(value: Any, *, objects_as_text: bool = False) -> Any:
    """A copy of `value` with secrets withheld (see the module docstring).

    Other objects are kept as they are, or with `objects_as_text` (log lines: the
    renderer would print their repr, which may hold a token) replaced by their
    redacted `str`.
    """
    kind = type(value)
    if kind is str:
        return redact_text(value)
    if kind in _PLAIN_TYPES:
        return value
    if isinstance(value, Mapping):
        return {
            key: MASK if _withheld(key, item) else redact(item, objects_as_text=objects_as_text)
            for key, item in value.items()
        }
    if isinstance(value, list | tuple | set | frozenset):
        items = [redact(item, objects_as_text=objects_as_text) for item in value]
        return tuple(items) if isinstance(value, tuple) else items
    return _redact_scalar(value, objects_as_text)


def _redact_scalar(value: Any, objects_as_text: bool) -> Any:
    if isinstance(value, str):  # a str subclass
        return redact_text(value)
    if isinstance(value, bytes | bytearray):
        return redact_text(value.decode("utf-8", "replace"))
    if objects_as_text and not isinstance(value, _PLAIN):
        return redact_text(str(value))
    return value


def _withheld(key: object, value: Any) -> bool:
    return is_secret_key(key) and isinstance(value, str | bytes | bytearray) and bool(value)


def redact_event(_: Any, __: str, event: MutableMapping[str, Any]) -> dict[str, Any]:
    """structlog processor: the whole event dict, recursively (stdlib records included)."""
    redacted: dict[str, Any] = redact(event, objects_as_text=True)
    return redacted
