"""Export one table's rows to a gzip JSON-lines file, a sha256 file and a manifest.

The rows are streamed by `COPY (SELECT row_to_json(t) ...) TO STDOUT`, written
compressed while being hashed, fsynced, then read back (checksum and row count)
before anything is renamed into place. The manifest is renamed last: a manifest on
disk means the export beside it is complete. Files of an export that died half-way
keep a `.tmp` suffix and are overwritten by the next run.

COPY's text format would escape every backslash of the JSON (`\\n` becomes `\\\\n`);
CSV format with a quote and a delimiter byte that JSON never contains (PostgreSQL
escapes control characters inside JSON strings) passes each document through as is.
"""

from __future__ import annotations

import gzip
import hashlib
import json
import os
from dataclasses import asdict, dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import psycopg
from psycopg import sql

from worker.backups.files import create_private, fsync_dir, write_durably
from worker.errors import RefusedError

#: Rows are buffered up to this many bytes per write to the compressor.
_WRITE_CHUNK = 1 << 20
#: Good ratio for JSON at several times the speed of gzip's default level 9.
_GZIP_LEVEL = 5
FORMAT = "jsonl.gz"


class ExportError(RefusedError):
    """An export is incomplete or does not match its table: nothing may be dropped."""


@dataclass(frozen=True)
class Export:
    """What the manifest records; `file` is the data file's name, beside the manifest."""

    table: str
    rows: int
    sha256: str
    bytes: int
    file: str
    exported_at: str
    format: str = FORMAT


class _HashingWriter:
    """A binary sink that hashes and counts what goes through it."""

    def __init__(self, raw: Any) -> None:
        self.raw = raw
        self.digest = hashlib.sha256()
        self.size = 0

    def write(self, data: bytes) -> int:
        self.digest.update(data)
        self.size += len(data)
        written: int = self.raw.write(data)
        return written

    def flush(self) -> None:
        self.raw.flush()


def paths(directory: Path, table: str) -> tuple[Path, Path, Path]:
    """(data, sha256, manifest) paths of `table`'s export in `directory`."""
    data = directory / f"{table}.{FORMAT}"
    return data, directory / f"{data.name}.sha256", directory / f"{table}.manifest.json"


def export_table(
    conn: psycopg.Connection[Any], table: str, directory: Path, *, expected_rows: int
) -> Export:
    """Write `table`'s rows (in the caller's transaction) and check them; raise ExportError
    if the file does not hold exactly `expected_rows` rows."""
    directory.mkdir(parents=True, exist_ok=True, mode=0o700)
    data, sha_file, manifest = paths(directory, table)
    tmp = data.with_name(data.name + ".tmp")
    rows, digest, size = _copy_out(conn, table, tmp)
    if rows != expected_rows:
        raise ExportError(f"{table}: wrote {rows} rows but the table holds {expected_rows}")
    check_file(tmp, sha256=digest, rows=rows)
    export = Export(
        table=table,
        rows=rows,
        sha256=digest,
        bytes=size,
        file=data.name,
        exported_at=datetime.now(UTC).isoformat(),
    )
    os.replace(tmp, data)
    write_durably(sha_file, f"{digest}  {data.name}\n".encode())
    write_durably(manifest, json.dumps(asdict(export), indent=2).encode() + b"\n")
    fsync_dir(directory)
    return export


def _copy_out(conn: psycopg.Connection[Any], table: str, target: Path) -> tuple[int, str, int]:
    query = sql.SQL(
        "COPY (SELECT row_to_json(t) FROM {} t) TO STDOUT "
        "WITH (FORMAT csv, QUOTE E'\\x01', DELIMITER E'\\x02')"
    ).format(sql.Identifier(table))
    rows = 0
    with create_private(target) as raw:
        sink = _HashingWriter(raw)
        with (
            gzip.GzipFile(fileobj=sink, mode="wb", compresslevel=_GZIP_LEVEL, mtime=0) as gz,
            conn.cursor() as cursor,
            cursor.copy(query) as copy,
        ):
            buffer = bytearray()
            for chunk in copy:
                buffer += chunk
                if len(buffer) >= _WRITE_CHUNK:
                    rows += buffer.count(b"\n")
                    gz.write(buffer)
                    buffer.clear()
            rows += buffer.count(b"\n")
            gz.write(buffer)
        raw.flush()
        os.fsync(raw.fileno())
    return rows, sink.digest.hexdigest(), sink.size


def check_file(path: Path, *, sha256: str, rows: int) -> None:
    """Raise ExportError unless `path` has this checksum and `rows` JSON objects."""
    digest = hashlib.sha256()
    with path.open("rb") as handle:
        for block in iter(lambda: handle.read(_WRITE_CHUNK), b""):
            digest.update(block)
    if digest.hexdigest() != sha256:
        raise ExportError(f"{path.name}: checksum {digest.hexdigest()} is not {sha256}")
    found = 0
    with gzip.open(path, "rb") as lines:
        for block in iter(lambda: lines.read(_WRITE_CHUNK), b""):
            found += block.count(b"\n")
    if found != rows:
        raise ExportError(f"{path.name}: holds {found} rows, expected {rows}")


def verify_export(manifest: Path) -> Export:
    """Read an export's manifest and check its file against it (checksum, row count)."""
    export = Export(**json.loads(manifest.read_text()))
    check_file(manifest.parent / export.file, sha256=export.sha256, rows=export.rows)
    return export
