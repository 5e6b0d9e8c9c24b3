"""Backup files encrypted at rest, in chunks (Fernet holds a whole message in memory).

File format, version 1 (every integer big-endian):

    MAGIC (8 bytes: b"HRLDENC1")
    frame*   each: u32 token length N, then N bytes of one Fernet token

Each token's plaintext is `u64 chunk index, u8 last flag, up to CHUNK bytes of dump`.
Fernet authenticates every chunk (AES-128-CBC + HMAC-SHA256, timestamped); the index
and the flag make reordered, dropped or truncated frames fail too: indices must run
0, 1, 2 ... and the stream must end exactly after the frame flagged last.
"""

from __future__ import annotations

import struct
from collections.abc import Iterable, Iterator
from typing import BinaryIO

from cryptography.fernet import Fernet, InvalidToken

from worker.errors import RefusedError

MAGIC = b"HRLDENC1"
#: Plaintext bytes per token: big enough that the per-token cost is noise.
CHUNK = 1024 * 1024
_FRAME = struct.Struct(">I")
_HEADER = struct.Struct(">QB")


class BackupDecryptError(RefusedError):
    """The file is not a readable encrypted backup (wrong key, damaged, truncated)."""


def is_encrypted(path_head: bytes) -> bool:
    """Whether a file starting with `path_head` is in this format."""
    return path_head.startswith(MAGIC)


def encrypt_chunks(fernet: Fernet, chunks: Iterable[bytes]) -> Iterator[bytes]:
    """The encrypted file's bytes for a plaintext given as `chunks` (any sizes)."""
    yield MAGIC
    index = 0
    pending = b""
    for chunk in chunks:
        pending += chunk
        while len(pending) > CHUNK:  # keep one back: only the end knows which is last
            yield _frame(fernet, index, False, pending[:CHUNK])
            pending = pending[CHUNK:]
            index += 1
    yield _frame(fernet, index, True, pending)


def _frame(fernet: Fernet, index: int, last: bool, data: bytes) -> bytes:
    token = fernet.encrypt(_HEADER.pack(index, int(last)) + data)
    return _FRAME.pack(len(token)) + token


def decrypt_stream(fernet: Fernet, source: BinaryIO) -> Iterator[bytes]:
    """The plaintext of the encrypted file `source`, chunk by chunk."""
    if source.read(len(MAGIC)) != MAGIC:
        raise BackupDecryptError("not an encrypted Herald backup (bad header)")
    expected = 0
    while True:
        size = source.read(_FRAME.size)
        if len(size) != _FRAME.size:
            raise BackupDecryptError(f"truncated: chunk {expected} missing")
        (length,) = _FRAME.unpack(size)
        token = source.read(length)
        if len(token) != length:
            raise BackupDecryptError(f"truncated inside chunk {expected}")
        try:
            plain = fernet.decrypt(token)
        except InvalidToken:
            raise BackupDecryptError(
                f"chunk {expected} does not decrypt: wrong HERALD_BACKUP_ENCRYPTION_KEY "
                "or a damaged file"
            ) from None
        index, last = _HEADER.unpack_from(plain)
        if index != expected:
            raise BackupDecryptError(f"chunk {index} found where chunk {expected} belongs")
        yield plain[_HEADER.size :]
        if last:
            break
        expected += 1
    if source.read(1):
        raise BackupDecryptError("data after the last chunk")
