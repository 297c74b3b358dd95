"""The results bundle: per-image correctness of every evaluated selection, committed with the rows.

A profile's tables, figures, intervals and verdicts are functions of its `sweep.csv` (one row per
run) and of the per-image correctness behind each row. `results.zip` beside `sweep.csv` holds the
latter for every distinct selection, packed as bits (1,250 bytes per selection of 10,000 test
images) and keyed like the prediction cache (`<mask hash>-r<recovery steps>[-s<seed>]`), so a
reader without CIFAR-10, without the compute, or without torch forward passes can rebuild and
audit every number (`study.Study` reads it before evaluating anything).

A bundle belongs to one checkpoint and one test set; its `meta.json` records them, the data
source they were evaluated on and the evaluation precision(s). It is written deterministically
(sorted entries, fixed timestamps, no dates in the record), so regenerating an unchanged study
leaves the file byte-identical and git sees no change.
"""

from __future__ import annotations

import json
import zipfile
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from ..errors import SicsError
from ..files import write_zip
from ..paths import figures_dir

BUNDLE_FILE = "results.zip"
META = "meta.json"
SUFFIX = ".bits"
FORMAT = 1


class BundleError(SicsError):
    """A results bundle that cannot be read."""


@dataclass
class Bundle:
    meta: dict
    bits: dict[str, bytes]  # entry name (as in the prediction cache) -> packed bits

    @property
    def n_test(self) -> int:
        return int(self.meta["n_test"])

    @property
    def ckpt_id(self) -> str:
        return str(self.meta["ckpt_id"])

    def __contains__(self, name: str) -> bool:
        return name in self.bits

    def __len__(self) -> int:
        return len(self.bits)

    def get(self, name: str) -> np.ndarray | None:
        """Per-image correctness of entry `name` (bool array of n_test), or None if absent."""
        packed = self.bits.get(name)
        if packed is None:
            return None
        return np.unpackbits(np.frombuffer(packed, dtype=np.uint8), count=self.n_test).astype(bool)


def path(profile: str) -> Path:
    return figures_dir(profile) / BUNDLE_FILE


def pack_bits(correct: np.ndarray) -> bytes:
    return np.packbits(np.asarray(correct, dtype=bool)).tobytes()


def load(profile: str) -> Bundle | None:
    """The profile's committed bundle, or None when it has none; a damaged one is an error."""
    p = path(profile)
    if not p.exists():
        return None
    try:
        with zipfile.ZipFile(p) as z:
            meta = json.loads(z.read(META))
            bits = {n[: -len(SUFFIX)]: z.read(n) for n in z.namelist() if n.endswith(SUFFIX)}
        n_bytes = -(-int(meta["n_test"]) // 8)
    except (zipfile.BadZipFile, KeyError, ValueError, OSError) as e:
        raise BundleError(f"results bundle {p} is damaged ({type(e).__name__}); restore it "
                          "(git checkout) or delete it to evaluate again") from None  # fmt: skip
    bad = [n for n, b in bits.items() if len(b) != n_bytes]
    if bad:
        raise BundleError(f"results bundle {p} is damaged (entry {bad[0]} has the wrong length); "
                          "restore it (git checkout) or delete it to evaluate again")  # fmt: skip
    return Bundle(meta, bits)


def write(profile: str, meta: dict, entries: dict[str, np.ndarray]) -> Path:
    """Write the bundle atomically and deterministically (same content, same bytes)."""
    n = int(meta["n_test"])
    for name, arr in entries.items():
        if arr.shape != (n,):
            raise ValueError(f"entry {name} has shape {arr.shape}, expected ({n},)")
    record = json.dumps({**meta, "format": FORMAT, "entries": len(entries)}, indent=1, sort_keys=True)

    members = [(META, record.encode()), *((name + SUFFIX, pack_bits(entries[name])) for name in sorted(entries))]
    return write_zip(path(profile), members)
