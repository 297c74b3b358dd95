"""The append-only row store: `sweep.csv`, one finished row per line.

Runs of one profile at once (two terminals, Jupyter beside `make paper`) never lose each other's
rows, and a killed run never leaves a row that breaks the next read (`append_row`, `read_rows`).
"""

from __future__ import annotations

import csv
import errno
import io
import os
import warnings
from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from pathlib import Path

import pandas as pd

try:
    import fcntl
except ImportError:  # Windows: no advisory locks; one run per profile at a time there
    fcntl = None

from ..files import atomic_write

COLUMNS = [
    "scorer", "kappa", "kappa_hat", "hf_share", "sparsity", "seed", "accuracy", "n_test",
    "mask_hash", "overlap_magnitude", "jaccard_magnitude", "kept", "allocation", "recovery_steps",
    "params", "tag", "profile", "ckpt_id", "data", "device", "git_rev", "seconds", "key",
    "n_calib", "scorer_version", "unit", "precision",
]  # fmt: skip


# identifiers stay text: a revision such as "788302e304" or an all-digit hash would read as a number
ROW_DTYPES = {c: str for c in ("scorer", "kappa", "mask_hash", "tag", "profile", "ckpt_id", "data", "device",
                               "git_rev", "key", "unit", "precision")}  # fmt: skip


def csv_line(values: Iterable) -> bytes:
    """One newline-terminated CSV line of `values` (None -> empty, as pandas writes NaN)."""
    buf = io.StringIO()
    clean = [v.replace("\r", " ").replace("\n", " ") if isinstance(v, str) else v for v in values]
    csv.writer(buf, lineterminator="\n").writerow(clean)
    return buf.getvalue().encode()


HEADER = csv_line(COLUMNS)


def read_rows(path: Path) -> pd.DataFrame:
    """The finished rows of a sweep.csv, each key once.

    A last line without its newline (a writer killed mid-append, or one appending right now) is
    not a finished row and is left out; a key written twice (two runs finished the same row at
    once) is read once, its first row. Files written whole by earlier versions read the same.
    """
    try:
        data = path.read_bytes()
    except FileNotFoundError:
        return pd.DataFrame(columns=COLUMNS)
    data = data[: data.rfind(b"\n") + 1]
    if not data.strip():
        return pd.DataFrame(columns=COLUMNS)
    rows = pd.read_csv(io.BytesIO(data), dtype=ROW_DTYPES, on_bad_lines="skip")
    return rows.drop_duplicates("key", keep="first", ignore_index=True)


@contextmanager
def _locked_for_append(path: Path) -> Iterator[int]:
    """A descriptor of `path` (created if missing) opened for appending, under an exclusive lock.

    The lock is an advisory `flock` on the file itself, so nothing lies beside it. If the file
    was replaced while we waited (a header migration renames a new file over it), we lock the
    new one instead.
    """
    path.parent.mkdir(parents=True, exist_ok=True)
    while True:
        fd = os.open(path, os.O_RDWR | os.O_CREAT | os.O_APPEND, 0o666)
        try:
            if fcntl is not None:
                try:
                    fcntl.flock(fd, fcntl.LOCK_EX)
                except OSError as e:  # a file system without locks: appends are still one write
                    if e.errno not in (errno.ENOLCK, errno.EOPNOTSUPP, errno.ENOSYS):
                        raise
                    warnings.warn(f"cannot lock {str(path)!r} ({e.strerror}): run one sweep of this "
                                  "profile at a time", stacklevel=4)  # fmt: skip
            if os.fstat(fd).st_ino == os.stat(path).st_ino:
                break
        except FileNotFoundError:  # replaced, then removed: open it again
            pass
        except BaseException:
            os.close(fd)
            raise
        os.close(fd)
    try:
        yield fd
    finally:
        os.close(fd)  # releases the lock


def _end_of_last_line(fd: int, size: int) -> int:
    """Offset just past the file's last newline (0 if it has none), reading from the end."""
    end = size
    while end > 0:
        start = max(0, end - (1 << 16))
        i = os.pread(fd, end - start, start).rfind(b"\n")
        if i >= 0:
            return start + i + 1
        end = start
    return 0


def of_model(rows: pd.DataFrame, ckpt_id: str, n_test: int) -> pd.DataFrame:
    """The rows of one model (checkpoint) on one test set: what its bundle and verify speak for."""
    return rows[(rows["ckpt_id"] == ckpt_id) & (rows["n_test"] == n_test)]


def append_row(path: Path, row: dict) -> int:
    """Append one finished row to `path` as one complete CSV line; return the file's new size.

    Under an exclusive lock on the file, in order:
    1. a torn last line (its writer was killed mid-append: every append ends with a newline) is
       cut off, back to the last newline, so the file is valid CSV again;
    2. an empty file gets the header (`COLUMNS`); a file written with other columns is rewritten
       once in the current ones (a rename, as before; never on the per-row path);
    3. the line is written with one `write` in append mode.
    The cost is that of the row, not of the file (no rewrite), and concurrent writers queue on
    the lock, so no row is lost; readers never lock, and `read_rows` leaves out a line still
    being written.
    """
    line = csv_line(row.get(c) for c in COLUMNS)
    with _locked_for_append(path) as fd:
        size = os.fstat(fd).st_size
        if size and os.pread(fd, 1, size - 1) != b"\n":
            size = _end_of_last_line(fd, size)
            os.ftruncate(fd, size)
        if size and os.pread(fd, len(HEADER), 0) != HEADER:
            old = read_rows(path).reindex(columns=COLUMNS)
            atomic_write(path, lambda p: p.write_bytes(HEADER + old.to_csv(index=False, header=False,
                                                                           lineterminator="\n").encode()))  # fmt: skip
            return append_row(path, row)
        data = line if size else HEADER + line
        while data:
            data = data[os.write(fd, data) :]
        return os.fstat(fd).st_size


def file_size(path: Path) -> int:
    try:
        return path.stat().st_size
    except FileNotFoundError:
        return 0


def parts_dir(path: Path) -> Path:
    """The folder of a sweep's part files, one per job (`sics.study.executor`)."""
    return path.parent / "sweep.parts"


def merge_parts(path: Path) -> int:
    """Append to `path` every finished row of its part files that it lacks (in file order), then
    remove the merged part files. Returns the rows added. Safe to run twice, or concurrently with
    a reader: rows are keyed, and a part is removed only once its rows are in `path`."""
    folder = parts_dir(path)
    if not folder.is_dir():
        return 0
    have, added = set(read_rows(path)["key"]), 0
    # a part is claimed (renamed) first: a job still appending starts a new part file, merged next
    # time; a claim left by a merger that died is merged again (rows are keyed: at worst a repeat,
    # which `read_rows` reads once)
    for part in sorted([*folder.glob("*.csv"), *folder.glob("*.merging-*")]):
        claimed = part if ".merging-" in part.name else part.with_suffix(f".merging-{os.getpid()}")
        try:
            if claimed != part:
                os.rename(part, claimed)
        except FileNotFoundError:
            continue  # another merger took it
        for row in read_rows(claimed).to_dict("records"):
            if row["key"] not in have:
                append_row(path, {k: (None if isinstance(v, float) and v != v else v) for k, v in row.items()})
                have.add(row["key"])
                added += 1
        claimed.unlink(missing_ok=True)
    return added
