"""Files that must survive a crash whole or not at all: backups, exports, their checksums.

Written owner-only (a dump or export holds every row), fsynced, renamed into place,
then the directory fsynced so the rename itself is durable.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import BinaryIO


def create_private(path: Path) -> BinaryIO:
    """`path` opened for writing, truncated, readable by its owner only (0600)."""
    return os.fdopen(os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600), "wb")


def write_durably(path: Path, content: bytes) -> None:
    """Replace `path` with `content` atomically (temp file, fsync, rename)."""
    tmp = path.with_name(f".{path.name}.tmp")
    try:
        with create_private(tmp) as handle:
            handle.write(content)
            handle.flush()
            os.fsync(handle.fileno())
        os.replace(tmp, path)
    finally:
        tmp.unlink(missing_ok=True)


def fsync_dir(directory: Path) -> None:
    """Make renames and creations in `directory` durable."""
    fd = os.open(directory, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)
