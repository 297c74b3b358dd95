"""Saved calibration statistics: what a study's scorers read besides the weights, kept beside its
outputs so that its selections can be rebuilt without a forward pass.

The gradient baseline's Taylor importances (per seed, from calibration images) and the token
importances (from the test images) come from forward and backward passes. They are written to
`figures/<study>/calibration-<unit tag>-<identity>.npz` when a stage closes, so a machine other than the one
that measured a study (a CPU checking a GPU run) rebuilds exactly that study's selections from
them, instead of re-deriving them in another precision, where near-ties may rank otherwise. The
file's name carries a hash of the model, calibration size and data it belongs to (recorded inside
too), so studies of other settings keep files of their own; each entry records the precision it
was computed in. It is written deterministically (sorted entries, fixed timestamps), and only when it
gained statistics, so a regeneration leaves it byte-identical.
"""

from __future__ import annotations

import io
import json
import zipfile
from collections.abc import Callable
from pathlib import Path

import numpy as np

from ..files import stable_hash, write_zip

META = "meta.json"


def file_name(unit_tag: str, identity: dict) -> str:
    return f"calibration-{unit_tag}-{stable_hash(identity, 8)}.npz"


class CalibrationStore:
    """The calibration statistics of one study and unit: saved ones, and those computed since."""

    def __init__(self, path: Path, identity: dict, precision: str = ""):
        self.path, self.identity, self.precision = path, identity, precision
        self.made_in: dict[str, str] = {}  # entry -> the precision it was computed in
        self.saved = self._read()
        self.new: dict[str, list[np.ndarray]] = {}

    def _read(self) -> dict[str, list[np.ndarray]]:
        if not self.path.exists():
            return {}
        try:
            with zipfile.ZipFile(self.path) as z:
                meta = json.loads(z.read(META))
                if meta.get("identity") != self.identity:
                    return {}  # another model, calibration size or data: not this study's
                self.made_in = dict(meta.get("precision", {}))
                return {key: [np.load(io.BytesIO(z.read(f"{key}/{i}.npy")), allow_pickle=False) for i in range(n)]
                        for key, n in meta["entries"].items()}  # fmt: skip
        except (zipfile.BadZipFile, KeyError, ValueError, OSError):
            return {}  # a damaged file is a cache: recomputed, then rewritten

    def get(self, key: str, compute: Callable[[], list[np.ndarray]]) -> list[np.ndarray]:
        """The statistics `key`: saved ones when there are, else `compute()` (kept for `save`)."""
        if key in self.saved:
            return self.saved[key]
        if key not in self.new:
            self.new[key] = [np.asarray(a) for a in compute()]
            self.made_in[key] = self.precision
        return self.new[key]

    def save(self) -> Path | None:
        """Write the saved and new statistics together, if any are new; returns the path."""
        if not self.new:
            return None
        entries = {**self.saved, **self.new}
        meta = dict(identity=self.identity, entries={k: len(v) for k, v in sorted(entries.items())},
                    precision={k: self.made_in.get(k, "") for k in sorted(entries)})  # fmt: skip

        def npy(arr: np.ndarray) -> bytes:
            buf = io.BytesIO()
            np.save(buf, arr, allow_pickle=False)
            return buf.getvalue()

        members = [(META, json.dumps(meta, indent=1, sort_keys=True).encode())]
        members += [(f"{key}/{i}.npy", npy(arr)) for key in sorted(entries) for i, arr in enumerate(entries[key])]
        write_zip(self.path, members)
        self.saved, self.new = entries, {}
        return self.path
