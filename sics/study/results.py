"""A study's per-image results and the policy of its committed bundle, in one place.

Per-image correctness is cached on disk by mask hash (`pred_name`), in a folder per model, test
set, evaluation precision and unit; the committed bundle (`sics.study.bundle`, the file format)
holds the same entries for readers without data. Here: the names, reading a cache file, whether a
bundle applies to a study (`bundle_applies`), the Study's lookup
and evaluation of per-image results (`PerImageResults`), and packing them into its bundle
(`pack_results`).
"""

from __future__ import annotations

import io
import json
import warnings
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

from .. import provenance
from ..errors import ParameterError, SicsError
from ..files import atomic_write
from ..paths import cache_dir
from ..selection.select import mask_hash
from ..training.weights import present as weights_present
from . import bundle as bundle_mod
from .bundle import Bundle
from .rows import of_model, read_rows

if TYPE_CHECKING:
    from ..data import Cifar10


class StaleRowError(SicsError):
    """A sweep row whose selection the current model and scorer code no longer reproduce."""


class PerImageResults:
    """The Study's per-image results: looked up in the prediction cache, else the bundle, else
    evaluated now (and cached), by mask hash."""

    @property
    def pred_folder(self) -> str:
        """The prediction cache's folder of this model, test set, evaluation precision and unit."""
        return self.pred_folder_for(None if self.default_unit else self.unit.tag)

    def pred_folder_for(self, unit_tag) -> str:
        """The cache folder of a row made with unit `unit_tag` (rows of one output folder may
        come from several settings of a unit, e.g. two token importances)."""
        default = not isinstance(unit_tag, str) or unit_tag == "mlp_channels"
        decisions = "-fp32d" if self.profile.fp32_decisions else ""
        return f"{self.trained.ckpt_id}-n{self.n_test}-{self.where.precision}{decisions}{'' if default else '-' + unit_tag}"

    def _pred_path(self, hash_: str, recovery_steps: int, seed: int = 0) -> Path:
        return cache_dir() / "preds" / self.pred_folder / f"{pred_name(hash_, recovery_steps, seed)}.npy"

    def _cached(self, path: Path) -> np.ndarray | None:
        return read_cached(path, self.n_test)

    def lookup(self, hash_: str, recovery_steps: int = 0, seed: int = 0) -> np.ndarray | None:
        """Per-image correctness already measured: from the prediction cache, else the bundle."""
        found = self._cached(self._pred_path(hash_, recovery_steps, seed))
        self.measured_locally |= found is not None
        if found is None and self.bundle is not None:
            found = self.bundle.get(pred_name(hash_, recovery_steps, seed))
        return found

    def evaluate(self, masks: list[np.ndarray], recovery_steps: int = 0, seed: int = 0) -> np.ndarray:
        """Per-image correctness of the pruned model, measured now (no cache, no bundle).

        With `recovery_steps` the sliced model is first fine-tuned with `seed` (the row's seed).
        """
        from ..models.evaluate import predict_correct
        from ..training.loop import fine_tune

        self.measured_locally = True
        if not self.unit.static:
            if recovery_steps:
                raise ParameterError(f"recovery fine-tuning is not defined for unit {self.unit.name!r}")
            return self.unit.evaluate(self.unit_inputs, masks)
        model = self.unit.apply(self.model, masks)
        if recovery_steps:
            fine_tune(model, self.profile, self.data, self.device, steps=recovery_steps, seed=seed)
        return predict_correct(model, self.test, self.profile.eval_batch_size,
                               self.profile.eval_precision).cpu().numpy()  # fmt: skip

    def correct(self, masks: list[np.ndarray], recovery_steps: int = 0, seed: int = 0) -> np.ndarray:
        """Per-image correctness of the pruned model: measured once, then cached by mask hash."""
        hash_ = mask_hash(masks)
        found = self.lookup(hash_, recovery_steps, seed)
        if found is not None:
            return found
        out = self.evaluate(masks, recovery_steps, seed)
        atomic_write(self._pred_path(hash_, recovery_steps, seed), lambda p: p.write_bytes(npy_bytes(out)))
        return out

    def correct_for_row(self, row) -> np.ndarray:
        """Per-image correctness behind a sweep row (cache, bundle, else recomputed).

        A recomputed selection must have the row's mask hash; if not, the row is stale (the
        model or the scorer's code changed since it was written) and StaleRowError says so.
        """
        steps, seed = int(row.recovery_steps), int(row.seed)
        found = self.lookup(row.mask_hash, steps, seed)
        if found is not None:
            return found
        return self.correct(self.row_masks(row), steps, seed)

    def row_masks(self, row) -> list[np.ndarray]:
        """The selection of a sweep row, recomputed and checked against its mask hash."""
        params = json.loads(row.params)
        _, masks = self.masks(row.scorer, float(row.sparsity), int(row.seed), params, row.allocation)
        if mask_hash(masks) != row.mask_hash:
            raise StaleRowError(
                f"sweep row {row.scorer} S={row.sparsity} seed={row.seed} ({row.allocation}) is stale: "
                f"it records mask {row.mask_hash}, the current model and scorer select "
                f"{mask_hash(masks)}; bump the scorer's version (or delete {self.sweep_path}) "
                "and rerun the sweep"
            )
        return masks

    def all_kept(self) -> list[np.ndarray]:
        return [np.ones(n, dtype=bool) for n in self.unit.group_sizes(self.unit_inputs)]

    def none_kept(self) -> list[np.ndarray]:
        return [np.zeros(n, dtype=bool) for n in self.unit.group_sizes(self.unit_inputs)]

    def dense_correct(self) -> np.ndarray:
        """Per-image correctness of the unpruned model on this study's test set (bool array).

        Measured here, not read from the checkpoint (whose accuracy is on the test set in force
        at training time, in the training's precision), and cached like any selection.
        """
        if self._dense is None:
            self._dense = self.correct(self.all_kept())
        return self._dense

    @property
    def dense_accuracy(self) -> float:
        """Top-1 accuracy of the unpruned model on this study's test set, as a fraction."""
        return float(self.dense_correct().mean())

    @property
    def units_removed_accuracy(self) -> float:
        """Accuracy with every unit removed (every MLP hidden channel: each MLP adds only its
        output bias; every inner conv channel; every patch token after the block): how much the
        pruned unit matters in this model at all."""
        return float(self.correct(self.none_kept()).mean())


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


def bundle_applies(found: Bundle, study, data: Cifar10 | None) -> bool:
    """Whether a bundle holds results of this study: same model (checkpoint and weights hash),
    test-set size and data."""
    meta = found.meta
    same_model = (meta.get("ckpt_id"), meta.get("weights_sha256")) == (study.trained.ckpt_id,
                                                                       study.trained.weights_sha256)  # fmt: skip
    if not same_model or meta.get("profile_n_test") != study.profile.n_test:
        return False
    if bool(meta.get("fp32_decisions", False)) != study.profile.fp32_decisions:
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
    existing = study.bundle
    if existing is None and bundle_mod.path(study.name).exists() and committed:
        if bundle_mod.load(study.name).meta.get("weights_sha256") == study.trained.weights_sha256:
            return None  # a committed bundle of these weights, for another test set
        # else it holds results of weights no longer committed: the new weights' bundle replaces it
    rows = read_rows(study.sweep_path)
    rows = of_model(rows, study.trained.ckpt_id, study.n_test)
    own = study.pred_folder
    wanted = {(str(r.mask_hash), int(r.recovery_steps), int(r.seed) if int(r.recovery_steps) else 0,
               study.pred_folder_for(getattr(r, "unit", None))) for r in rows.itertuples()}  # fmt: skip
    wanted |= {(mask_hash(m), 0, 0, own) for m in (study.all_kept(), study.none_kept())}
    measured_on = set(existing.meta.get("measured_on") or []) if existing is not None else set()
    fingerprints = list(existing.meta.get("fingerprints") or []) if existing is not None else []
    here = None  # this machine's fingerprint, taken (with torch) only where it measured a result
    entries = {}
    for hash_, steps, seed, folder in sorted(wanted):
        if pred_name(hash_, steps, seed) in entries:
            continue
        found = read_cached(cache_dir() / "preds" / folder / f"{pred_name(hash_, steps, seed)}.npy", study.n_test)
        if found is not None:
            measured_on.add(f"{provenance.device_name(study.where.type)}, {study.where.precision_label}")  # (it may be in the bundle too)
            here = here or provenance.fingerprint(study.device, study.where.precision, study.where.emulated_bf16)
            fingerprints += [here] if here not in fingerprints else []
        elif existing is not None:
            found = existing.get(pred_name(hash_, steps, seed))
        if found is not None:
            entries[pred_name(hash_, steps, seed)] = found
    meta = dict(profile=study.profile.name, ckpt_id=study.trained.ckpt_id,
                weights_sha256=study.trained.weights_sha256, n_test=study.n_test,
                profile_n_test=study.profile.n_test, n_train=study.inputs.n_train, data=study.data_source,
                data_id=study.inputs.source_id, measured_on=sorted(measured_on), rows=len(rows))  # fmt: skip
    if fingerprints:  # (bundles from before fingerprints have none: exactness is never assumed)
        meta["fingerprints"] = fingerprints
    if study.profile.fp32_decisions:  # (only where set: the committed bundles stay as they are)
        meta["fp32_decisions"] = True
    if existing is not None and set(existing.bits) == set(entries) and all(
        existing.meta.get(k) == v for k, v in meta.items()
    ):
        return bundle_mod.path(study.name)  # unchanged: leave the file as it is
    out = bundle_mod.write(study.name, meta, entries)
    study.bundle = bundle_mod.load(study.name)
    study.inputs.record = study.inputs.record or study.bundle.meta
    return out
