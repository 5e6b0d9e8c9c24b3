"""The chunked Fernet format of encrypted backups: round trip, and every way a file
can be damaged or misused fails with a clear error instead of yielding bad bytes."""

from __future__ import annotations

import io
import os
import struct

import pytest
from cryptography.fernet import Fernet

from worker.backups.crypto import CHUNK, MAGIC, BackupDecryptError, decrypt_stream, encrypt_chunks
from worker.backups.pgtools import DatabaseTarget


def encrypt(fernet: Fernet, data: bytes, piece: int = 70_000) -> bytes:
    pieces = [data[i : i + piece] for i in range(0, len(data), piece)]
    return b"".join(encrypt_chunks(fernet, pieces))


def decrypt(fernet: Fernet, blob: bytes) -> bytes:
    return b"".join(decrypt_stream(fernet, io.BytesIO(blob)))


@pytest.mark.parametrize("size", [0, 1, CHUNK - 1, CHUNK, CHUNK + 1, 3 * CHUNK + 5])
def test_round_trip_of_any_size(size: int) -> None:
    fernet = Fernet(Fernet.generate_key())
    data = os.urandom(size)
    blob = encrypt(fernet, data)
    assert blob.startswith(MAGIC)
    assert decrypt(fernet, blob) == data


def frames(blob: bytes) -> list[bytes]:
    out, at = [], len(MAGIC)
    while at < len(blob):
        (length,) = struct.unpack(">I", blob[at : at + 4])
        out.append(blob[at : at + 4 + length])
        at += 4 + length
    return out


def test_wrong_key_fails_clearly() -> None:
    blob = encrypt(Fernet(Fernet.generate_key()), b"secret rows")
    with pytest.raises(BackupDecryptError, match="wrong HERALD_BACKUP_ENCRYPTION_KEY"):
        decrypt(Fernet(Fernet.generate_key()), blob)


def test_a_dropped_last_chunk_is_detected() -> None:
    fernet = Fernet(Fernet.generate_key())
    parts = frames(encrypt(fernet, os.urandom(2 * CHUNK + 10)))
    assert len(parts) == 3
    with pytest.raises(BackupDecryptError, match="truncated"):
        decrypt(fernet, MAGIC + b"".join(parts[:2]))


def test_reordered_chunks_are_detected() -> None:
    fernet = Fernet(Fernet.generate_key())
    parts = frames(encrypt(fernet, os.urandom(2 * CHUNK + 10)))
    with pytest.raises(BackupDecryptError, match="chunk 1 found where chunk 0 belongs"):
        decrypt(fernet, MAGIC + parts[1] + parts[0] + parts[2])


def test_bytes_after_the_end_are_detected() -> None:
    fernet = Fernet(Fernet.generate_key())
    with pytest.raises(BackupDecryptError, match="after the last chunk"):
        decrypt(fernet, encrypt(fernet, b"x") + b"junk")


def test_a_plain_file_is_not_taken_for_an_encrypted_one() -> None:
    with pytest.raises(BackupDecryptError, match="bad header"):
        decrypt(Fernet(Fernet.generate_key()), b"PGDMP\x01\x0e")


def test_the_password_leaves_the_url_for_the_environment() -> None:
    target = DatabaseTarget.of("postgresql://herald:s3cret@db.example:5433/herald?sslmode=require")
    assert "s3cret" not in target.url
    assert target.url == "postgresql://herald@db.example:5433/herald?sslmode=require"
    assert target.env["PGPASSWORD"] == "s3cret"
