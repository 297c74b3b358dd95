"""Atomic writes and stable hashes: finished results are never lost or half-written."""

from __future__ import annotations

import hashlib
import json
import os
import tempfile
from collections.abc import Callable
from pathlib import Path
from typing import Any


def atomic_write(path: str | Path, write: Callable[[Path], None]) -> Path:
    """Call `write(tmp)` then rename tmp over `path`: readers see the old or the new file only."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    os.close(fd)
    try:
        write(Path(tmp))
        os.replace(tmp, path)
    finally:
        if os.path.exists(tmp):
            os.unlink(tmp)
    return path


_ZIP_EPOCH = (1980, 1, 1, 0, 0, 0)  # zip's earliest timestamp: the same bytes on every write


def write_zip(path: str | Path, members) -> Path:
    """A deflated zip of `members` ((name, bytes) pairs, in the order given), written atomically
    and deterministically (fixed timestamps and modes): the same content gives the same bytes,
    so git sees no change when a result is rewritten unchanged."""
    import zipfile

    def write(tmp: Path) -> None:
        with zipfile.ZipFile(tmp, "w") as z:
            for name, data in members:
                info = zipfile.ZipInfo(name, date_time=_ZIP_EPOCH)
                info.compress_type = zipfile.ZIP_DEFLATED
                info.external_attr = 0o644 << 16
                z.writestr(info, data)

    return atomic_write(path, write)


def write_text(path: str | Path, text: str) -> Path:
    return atomic_write(path, lambda p: p.write_text(text))


# Floats in written tables: 6 significant digits, far above what a result can resolve (one image
# of 10,000 is 0.01 points) and far below where float noise lives (the 16th digit differs between
# CPUs that sum in another order), so an unchanged result writes the same bytes everywhere.
FLOAT_FORMAT = "%.6g"


def write_csv(path: str | Path, df) -> Path:
    """A DataFrame as CSV at the fixed float precision (`FLOAT_FORMAT`), atomically."""
    return atomic_write(path, lambda p: df.to_csv(p, index=False, float_format=FLOAT_FORMAT, lineterminator="\n"))


def write_json(path: str | Path, obj: Any) -> Path:
    return write_text(path, json.dumps(obj, indent=2, sort_keys=True, default=str) + "\n")


def stable_hash(obj: Any, length: int = 12) -> str:
    """Hash of a JSON-able configuration: the key of a cached artifact."""
    blob = json.dumps(obj, sort_keys=True, default=str).encode()
    return hashlib.sha256(blob).hexdigest()[:length]


def sha256(path: str | Path) -> str:
    """The sha256 of a file's bytes (hex), read in 1 MB chunks."""
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


def file_digest(path: str | Path, length: int = 16) -> str:
    """A file's sha256, shortened: the content key of a cached artifact."""
    return sha256(path)[:length]
