"""Every Redis key part lives in ``worker/constants.py``; code elsewhere only joins them.

Keys are built with ``Settings.key(*parts)``. This test reads the source (no server)
and refuses the three ways a key part creeps back in as a literal:

* a string or f-string passed to ``.key(...)`` (``settings.key("lock", name)``);
* an f-string on the namespace adding a word (``f"{settings.namespace}:lock:{name}"``);
* an f-string or ``+`` on a key or prefix adding a word (``f"{prefix}:config"``).

A separator alone (``f"{base}:{KEY_RATELIMIT_BLOCK}"``, the broker's
``f"{settings.namespace}:"``) is fine: it carries no name.
"""

from __future__ import annotations

import ast
import re
from collections.abc import Iterator
from pathlib import Path

import pytest

from worker import constants

ROOT = Path(__file__).resolve().parents[2]
SCANNED = ("worker", "tasks", "schedules", "celeryconfig.py")
#: A variable holding a key, a key prefix or the namespace (``key``, ``self.prefix``, ...).
KEYISH = re.compile(r"(^|_)(key|prefix|namespace)$")
WORD = re.compile(r"[A-Za-z]")
#: A literal that appends a named part to a key: ``":config"``, ``":lock:"``.
APPENDED_PART = re.compile(r"^:[A-Za-z]")


def _name(node: ast.expr) -> str | None:
    if isinstance(node, ast.Name):
        return node.id
    if isinstance(node, ast.Attribute):
        return node.attr
    return None


def _keyish(node: ast.expr) -> bool:
    name = _name(node)
    return name is not None and KEYISH.search(name) is not None


def _literal_word(node: ast.expr) -> bool:
    if isinstance(node, ast.Constant) and isinstance(node.value, str):
        return WORD.search(node.value) is not None
    if isinstance(node, ast.JoinedStr):
        return any(_literal_word(value) for value in node.values)
    return False


def _appends_part(node: ast.expr) -> bool:
    if isinstance(node, ast.JoinedStr) and node.values:
        return _appends_part(node.values[0])
    return (
        isinstance(node, ast.Constant)
        and isinstance(node.value, str)
        and APPENDED_PART.match(node.value) is not None
    )


def _key_call_with_literal(node: ast.AST) -> bool:
    """A literal word among ``.key(...)``'s parts: ``settings.key("lock", name)``."""
    return (
        isinstance(node, ast.Call)
        and isinstance(node.func, ast.Attribute)
        and node.func.attr == "key"
        and any(_literal_word(arg) for arg in node.args)
    )


def _f_string_on_key(node: ast.AST) -> bool:
    """A literal word right after a key-ish value: ``f"{prefix}:config"``."""
    if not isinstance(node, ast.JoinedStr):
        return False
    pairs = zip(node.values, node.values[1:], strict=False)
    return any(
        isinstance(before, ast.FormattedValue) and _keyish(before.value) and _appends_part(after)
        for before, after in pairs
    )


def _concatenated_on_key(node: ast.AST) -> bool:
    """A literal word added to a key-ish value: ``prefix + ":config"``."""
    return (
        isinstance(node, ast.BinOp)
        and isinstance(node.op, ast.Add)
        and _keyish(node.left)
        and _appends_part(node.right)
    )


def violations(source: str) -> Iterator[tuple[int, str]]:
    """(line, code) of every key part written as a literal in ``source``."""
    checks = (_key_call_with_literal, _f_string_on_key, _concatenated_on_key)
    for node in ast.walk(ast.parse(source)):
        if any(check(node) for check in checks):
            yield getattr(node, "lineno", 0), ast.unparse(node)


def sources() -> Iterator[Path]:
    for name in SCANNED:
        path = ROOT / name
        yield from [path] if path.suffix == ".py" else sorted(path.rglob("*.py"))


@pytest.mark.parametrize(
    "code",
    [
        'get_settings().key("lock", name)',
        'settings.key(f"lock:{name}")',
        'f"{settings.namespace}:lock:{name}"',
        'f"{namespace}:redbeat:"',
        'f"{self.prefix}:config"',
        'f"{entry_key}:gen"',
        'prefix + ":config"',
        'self.prefix + f":acct:{account_id}"',
    ],
)
def test_a_key_part_written_as_a_literal_is_found(code: str) -> None:
    assert list(violations(code)) != []


@pytest.mark.parametrize(
    "code",
    [
        "get_settings().key(KEY_LOCK, name)",
        "settings.key(*KEY_TOKEN_FAILURES, str(account_id))",
        'f"{settings.namespace}:"',
        'f"{base}:{KEY_RATELIMIT_BLOCK}"',
        'f"{platform}: unknown"',
        'headers.get("key")',
        'f\'{{"routing_key": {routing_key}}}, "priority": 0\'',
    ],
)
def test_keys_joined_from_constants_pass(code: str) -> None:
    assert list(violations(code)) == []


def test_no_module_writes_a_redis_key_part_as_a_literal() -> None:
    found = [
        f"{path.relative_to(ROOT)}:{line}: {code}"
        for path in sources()
        if path != ROOT / "worker" / "constants.py"
        for line, code in violations(path.read_text())
    ]
    assert found == [], "move these key parts to worker/constants.py:\n" + "\n".join(found)


def test_key_parts_are_plain_words() -> None:
    # A part holding the separator would make two keys' namespaces overlap.
    parts = {
        name: value
        for name, value in vars(constants).items()
        if name.startswith(("KEY_", "LOCK_")) and name != "KEY_BEAT_HEARTBEAT"
    }
    assert parts
    for name, value in parts.items():
        for part in value if isinstance(value, tuple) else (value,):
            assert re.fullmatch(r"[a-z][a-z-]*", part), f"{name}: {part!r}"
