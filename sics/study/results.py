"""A study's per-image results and the policy of its committed bundle, in one place.

Per-image correctness is cached on disk by mask hash (`pred_name`), in a folder per model, test
set, evaluation precision and unit; the committed bundle (`sics.study.bundle`, the file format)
holds the same entries for readers without data. Here: the names, reading a cache file, the
store a study looks results up in (`ResultStore`), whether a bundle applies to a study
(`bundle_applies`), and packing a study's results into its bundle (`pack_results`).
"""

from __future__ import annotations

import io
import warnings
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

from .. import provenance
from ..analysis.summaries import per_cluster
from ..files import atomic_write
from ..paths import cache_dir
from ..selection.select import mask_hash
from ..training.weights import present as weights_present
from . import bundle as bundle_mod
from .bundle import Bundle
from .rows import of_model, read_rows

if TYPE_CHECKING:
    from ..config import Profile
    from ..data import Cifar10
    from ..training.identity import Trained


@dataclass
class ResultStore:
    """Per-image correctness by result name (`pred_name`): the prediction cache of this model,
    test set, evaluation precision and unit on disk, then the committed bundle. It knows names
    and files, never models: what is not stored is evaluated by the Study and `put` here."""

    ckpt_id: str
    n_test: int
    precision: str  # the evaluation precision (`Placement.precision`)
    fp32_decisions: bool
    unit_tag: str | None  # None: the paper's unit (MLP channels with default settings)
    bundle: Bundle | None = None
    measured_locally: bool = False  # a result came from this machine (evaluated, or its cache)
    cluster: int = 1  # per-item results per independent unit (`Unit.cluster`)

    def outcomes(self, correct: np.ndarray) -> np.ndarray:
        """What the statistics read of a stored result: per image, or per cluster (`per_cluster`),
        from the per-item result itself (never from one already reduced)."""
        if len(correct) != self.n_test:
            raise ValueError(f"a stored result holds {self.n_test} items, not {len(correct)}")
        return per_cluster(correct, self.cluster)

    @property
    def folder(self) -> str:
        """The prediction cache's folder of this model, test set, evaluation precision and unit."""
        return self.folder_for(self.unit_tag)

    def folder_for(self, unit_tag) -> str:
        """The cache folder of a row made with unit `unit_tag` (rows of one output folder may
        come from several settings of a unit, e.g. two token importances)."""
        default = not isinstance(unit_tag, str) or unit_tag == "mlp_channels"
        decisions = "-fp32d" if self.fp32_decisions else ""
        return f"{self.ckpt_id}-n{self.n_test}-{self.precision}{decisions}{'' if default else '-' + unit_tag}"

    def path(self, name: str, folder: str | None = None) -> Path:
        return cache_dir() / "preds" / (folder or self.folder) / f"{name}.npy"

    def cached(self, name: str, folder: str | None = None) -> np.ndarray | None:
        """The result `name` in this machine's prediction cache (of this store's folder, or
        `folder`): None if absent or damaged."""
        return read_cached(self.path(name, folder), self.n_test)

    def lookup(self, name: str) -> np.ndarray | None:
        """The result `name` already measured: from the prediction cache, else the bundle."""
        found = self.cached(name)
        self.measured_locally |= found is not None
        if found is None and self.bundle is not None:
            found = self.bundle.get(name)
        return found

    def put(self, name: str, correct: np.ndarray) -> None:
        """Cache a result measured now (written atomically)."""
        self.measured_locally = True
        atomic_write(self.path(name), lambda p: p.write_bytes(npy_bytes(correct)))


def pred_name(hash_: str, recovery_steps: int, seed: int = 0) -> str:
    """The name of a selection's per-image result, in the prediction cache and the bundle."""
    return f"{hash_}-r{recovery_steps}" + (f"-s{seed}" if recovery_steps else "")


def npy_bytes(arr: np.ndarray) -> bytes:
    buf = io.BytesIO()
    np.save(buf, arr, allow_pickle=False)
    return buf.getvalue()


def read_cached(path: Path, n_test: int) -> np.ndarray | None:
    """The cached per-image correctness at `path`; None (with a warning) if it is damaged."""
    if not path.exists():
        return None
    try:
        out = np.load(path, allow_pickle=False)
        if out.dtype != np.bool_ or out.shape != (n_test,):
            raise ValueError(f"{out.dtype} array of shape {out.shape}")
        return out
    except Exception as e:
        warnings.warn(f"prediction cache {str(path)!r} is damaged ({type(e).__name__}); "
                      "recomputing it", stacklevel=3)  # fmt: skip
        path.unlink(missing_ok=True)
        return None


def bundle_applies(found: Bundle, profile: Profile, trained: Trained, data: Cifar10 | None) -> bool:
    """Whether a bundle holds results of this model (checkpoint and weights hash), test-set size
    and data."""
    meta = found.meta
    same_model = (meta.get("ckpt_id"), meta.get("weights_sha256")) == (trained.ckpt_id, trained.weights_sha256)
    if not same_model or meta.get("profile_n_test") != profile.n_test:
        return False
    if bool(meta.get("fp32_decisions", False)) != profile.fp32_decisions:
        return False  # measured with the other decision precision
    return data is None or (meta.get("data_id") == data.source_id and found.n_test == len(data.test_y))


def pack_results(study) -> Path | None:
    """Write the profile's results bundle from the sweep rows of this model (see `sics.study.bundle`).

    Every distinct selection of every row of this model and test set, plus the dense model and
    the model without its units when measured. A bundle of the committed weights is never
    overwritten by another model: with committed weights present, only their study packs (and
    replaces a bundle left by weights committed before them).
    Returns the path, or None when it left the bundle alone.
    """
    committed = weights_present(study.profile.name)
    if committed and study.trained.weights_sha256 is None:
        return None
    store = study.results
    existing = store.bundle
    if existing is None and bundle_mod.path(study.name).exists() and committed:
        if bundle_mod.load(study.name).meta.get("weights_sha256") == study.trained.weights_sha256:
            return None  # a committed bundle of these weights, for another test set
        # else it holds results of weights no longer committed: the new weights' bundle replaces it
    rows = read_rows(study.sweep_path)
    rows = of_model(rows, study.trained.ckpt_id, study.n_test)
    own = store.folder
    wanted = {(str(r.mask_hash), int(r.recovery_steps), int(r.seed) if int(r.recovery_steps) else 0,
               store.folder_for(getattr(r, "unit", None))) for r in rows.itertuples()}  # fmt: skip
    wanted |= {(mask_hash(m), 0, 0, own) for m in (study.selection.all_kept(), study.selection.none_kept())}
    measured_on = set(existing.meta.get("measured_on") or []) if existing is not None else set()
    fingerprints = list(existing.meta.get("fingerprints") or []) if existing is not None else []
    here = None  # this machine's fingerprint, taken (with torch) only where it measured a result
    entries = {}
    for hash_, steps, seed, folder in sorted(wanted):
        name = pred_name(hash_, steps, seed)
        if name in entries:
            continue
        found = store.cached(name, folder)
        if found is not None:
            measured_on.add(f"{provenance.device_name(study.where.type)}, {study.where.precision_label}")  # (it may be in the bundle too)
            here = here or provenance.fingerprint(study.device, study.where.precision, study.where.emulated_bf16)
            fingerprints += [here] if here not in fingerprints else []
        elif existing is not None:
            found = existing.get(name)
        if found is not None:
            entries[name] = found
    meta = dict(profile=study.profile.name, ckpt_id=study.trained.ckpt_id,
                weights_sha256=study.trained.weights_sha256, n_test=study.n_test,
                profile_n_test=study.profile.n_test, n_train=study.inputs.n_train, data=study.inputs.source,
                data_id=study.inputs.source_id, measured_on=sorted(measured_on), rows=len(rows))  # fmt: skip
    if fingerprints:  # (bundles from before fingerprints have none: exactness is never assumed)
        meta["fingerprints"] = fingerprints
    if study.profile.fp32_decisions:  # (only where set: the committed bundles stay as they are)
        meta["fp32_decisions"] = True
    if store.cluster > 1:
        meta["cluster"] = store.cluster
    if existing is not None and set(existing.bits) == set(entries) and all(
        existing.meta.get(k) == v for k, v in meta.items()
    ):
        return bundle_mod.path(study.name)  # unchanged: leave the file as it is
    out = bundle_mod.write(study.name, meta, entries)
    store.bundle = bundle_mod.load(study.name)
    study.inputs.record = study.inputs.record or store.bundle.meta
    return out
