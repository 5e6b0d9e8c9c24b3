"""Key rotation: re-encrypt every account's tokens with the newest key.

The operator puts a new key first in TOKEN_ENCRYPTION_KEYS (keeping the old ones after
it), restarts the workers, runs ``herald tokens rotate-key``, and only then drops the
old keys. The run walks ``social_accounts`` in id order, one transaction per batch
(``FOR UPDATE SKIP LOCKED``). A row whose tokens the newest key already opens is not
written, so a re-run after a kill costs one decryption per finished row and picks up
where the work stopped. Rows another transaction held are tried once more at the end;
rows no key opens are reported by id and do not stop the others.
"""

from __future__ import annotations

import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field

import structlog
from cryptography.fernet import Fernet, InvalidToken, MultiFernet

from worker.db.accounts import RotationBatch, rotate_batch
from worker.security.cipher import TokenDecryptError

log = structlog.get_logger(__name__)

#: Rows per transaction unless the operator says otherwise.
DEFAULT_BATCH_SIZE = 500


@dataclass
class RotationReport:
    """Counts of one run, as ``herald tokens rotate-key`` prints them."""

    scanned: int = 0
    rotated: int = 0
    already_current: int = 0
    batches: int = 0
    undecryptable: list[str] = field(default_factory=list)
    locked: list[str] = field(default_factory=list)

    @property
    def complete(self) -> bool:
        """Every row is now under the newest key."""
        return not self.undecryptable and not self.locked

    def add(self, batch: RotationBatch) -> None:
        self.batches += 1
        self.scanned += batch.scanned
        self.rotated += batch.rotated
        self.already_current += batch.current
        self.undecryptable.extend(str(i) for i in batch.undecryptable)

    def as_json(self) -> dict[str, object]:
        return {
            "scanned": self.scanned,
            "rotated": self.rotated,
            "already_current": self.already_current,
            "batches": self.batches,
            "undecryptable": self.undecryptable,
            "locked": self.locked,
            "complete": self.complete,
        }


def rewrapper(keys: list[str]) -> Callable[[str], str | None]:
    """``rewrap(ciphertext)``: None when the newest key opens it already, else the same
    plaintext under the newest key; :class:`TokenDecryptError` when no key opens it."""
    if not keys:
        raise ValueError("at least one Fernet key is needed")
    newest = Fernet(keys[0])
    every = MultiFernet([Fernet(key) for key in keys])

    def rewrap(ciphertext: str) -> str | None:
        token = ciphertext.encode()
        try:
            newest.decrypt(token)
        except InvalidToken:
            pass
        else:
            return None
        try:
            return every.rotate(token).decode()
        except InvalidToken:
            raise TokenDecryptError("token does not decrypt with any configured key") from None

    return rewrap


def rotate_keys(
    keys: list[str], *, batch_size: int = DEFAULT_BATCH_SIZE, pause: float = 0.0
) -> RotationReport:
    """Re-encrypt every account's tokens with ``keys[0]`` (see the module docstring).

    ``pause`` seconds between batches spread the load on a busy database.
    """
    if batch_size < 1:
        raise ValueError(f"batch size must be at least 1 (got {batch_size})")
    rewrap = rewrapper(keys)
    report = RotationReport()
    locked: list[uuid.UUID] = []
    after: uuid.UUID | None = None
    while True:
        batch = rotate_batch(rewrap, after=after, limit=batch_size)
        report.add(batch)
        locked.extend(batch.locked)
        _log_batch(report, batch)
        if batch.last_id is None or batch.scanned < batch_size:
            break
        after = batch.last_id
        if pause > 0:
            time.sleep(pause)  # throttling on purpose: the operator asked for it
    if locked:
        retry = rotate_batch(rewrap, only=locked, limit=len(locked))
        report.add(retry)
        locked = retry.locked
    report.locked = [str(i) for i in locked]
    for account_id in report.undecryptable:
        log.error("tokens.rotate.undecryptable", account_id=account_id)
    return report


def _log_batch(report: RotationReport, batch: RotationBatch) -> None:
    log.info(
        "tokens.rotate.batch",
        batch=report.batches,
        last_id=str(batch.last_id) if batch.last_id else None,
        rotated=batch.rotated,
        current=batch.current,
        undecryptable=len(batch.undecryptable),
        locked=len(batch.locked),
    )
