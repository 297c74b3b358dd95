"""The Study: the dense model and everything a study's sweeps share, and its per-image results.

Per-image correctness is cached on disk by mask hash (with the device type and precision, which
can flip near-tie images, and the recovery steps and seed): scorers that select the same channels
are evaluated once. A damaged cache file is recomputed with a warning. The dense model's per-image
correctness is measured on the study's own test set through the same cache. A study whose every
result is in the cache or the committed results bundle never touches CIFAR-10.
"""

from __future__ import annotations

import io
import json
import warnings
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch

from .. import provenance
from ..config import Profile, pick_device, resolve_profile
from ..data import Cifar10, DeviceBatches, load_cifar10
from ..errors import DataError, ParameterError, SicsError
from ..evaluate import emulates_bf16, precision, precision_label, predict_correct
from ..files import atomic_write
from ..paths import cache_dir, figures_dir
from ..progress import enabled as progress_enabled
from ..selection.groups import BlockStats, with_taylor
from ..selection.scorers import get_scorer
from ..selection.select import mask_hash, score_and_select
from ..training.train import Trained, fine_tune, train_or_load
from ..training.weights import present as weights_present
from ..units import MlpChannels, Unit, get_unit
from . import bundle as bundle_mod
from .bundle import Bundle
from .calibration import CalibrationStore
from .calibration import file_name as calibration_file
from .rows import read_rows


class StaleRowError(SicsError):
    """A sweep row whose selection the current model and scorer code no longer reproduce."""


@dataclass
class Study:
    """The dense model and everything the sweeps share (built once per notebook).

    The data are loaded on first use (`data`, `test`): a study whose every result is already in
    the prediction cache or the committed results bundle (`sics.study.bundle`) never touches CIFAR-10,
    so a reader without the dataset regenerates every output from the committed files.
    """

    profile: Profile
    device: torch.device
    trained: Trained
    unit: Unit = field(default_factory=MlpChannels)
    progress: bool = True
    data_spec: str | None = None  # CIFAR-10 source, loaded when an evaluation needs it
    bundle: Bundle | None = None  # committed per-image results of this model and test set
    _data: Cifar10 | None = None
    _test: DeviceBatches | None = None
    _taylor: dict = field(default_factory=dict)
    _magnitude_masks: dict = field(default_factory=dict)
    _dense: np.ndarray | None = None
    _stats: list[BlockStats] | None = None
    unit_cache: dict = field(default_factory=dict)  # what a unit kind keeps per study (`sics.units.tokens`)
    _calibration: CalibrationStore | None = None
    measured_locally: bool = False  # a result came from this machine (evaluated, or its cache)

    @property
    def name(self) -> str:
        """Where the outputs go: the profile's name, with the unit's for another unit than its own."""
        return self.profile.name if self.unit.name == self.profile.unit else f"{self.profile.name}-{self.unit.name}"

    @property
    def default_unit(self) -> bool:
        return self.unit.name == "mlp_channels" and not self.unit.key()

    @property
    def stats(self) -> list[BlockStats]:
        """One group of units per block (per image for tokens), with their importance m."""
        if self._stats is None:
            self._stats = self.unit.stats(self)
        return self._stats

    @property
    def sweep_path(self) -> Path:
        return figures_dir(self.name) / "sweep.csv"

    @property
    def model(self) -> torch.nn.Module:
        return self.trained.model

    @property
    def data(self) -> Cifar10:
        """The study's data (train split, test subset), loaded now if not yet.

        With a bundle attached, the data must be the ones its results were measured on: new
        evaluations are never mixed with results on other images.
        """
        if self._data is None:
            try:
                data = load_study_data(self.profile, self.data_spec)
            except DataError as e:
                if self.bundle is None:
                    raise
                raise DataError(f"{e} (a result the committed bundle does not hold needs evaluating)") from None
            if self.bundle is not None:
                meta = self.bundle.meta
                if data.source_id != meta.get("data_id") or len(data.test_y) != self.bundle.n_test:
                    raise DataError(f"the committed results of profile {self.profile.name} were measured on "
                                    f"{meta.get('data')} ({self.bundle.n_test} test images); {data.source} "
                                    "is different data: give that data, or use another profile")  # fmt: skip
            self._data = data
        return self._data

    @property
    def test(self) -> DeviceBatches:
        if self._test is None:
            self._test = DeviceBatches(self.data.test_x, self.data.test_y, device=self.device,
                                       mean=self.profile.mean, std=self.profile.std,
                                       img_size=self.profile.img_size)  # fmt: skip
        return self._test

    @property
    def data_loaded(self) -> bool:
        return self._data is not None

    def _from_bundle_or_data(self, key: str, from_data):
        if self._data is None and self.bundle is not None:
            return self.bundle.meta[key]
        return from_data(self.data)

    @property
    def n_test(self) -> int:
        return int(self._from_bundle_or_data("n_test", lambda d: len(d.test_y)))

    @property
    def n_train(self) -> int:
        return int(self._from_bundle_or_data("n_train", lambda d: len(d.train_y)))

    @property
    def data_source(self) -> str:
        """The data the study's results are measured on (human-readable), as recorded."""
        return str(self._from_bundle_or_data("data", lambda d: d.source))

    @property
    def data_id(self) -> str:
        return str(self._from_bundle_or_data("data_id", lambda d: d.source_id))

    def results_revision(self) -> str | None:
        """The revision of this model's newest sweep row (rows record the revision that made
        them), or None before any row."""
        rows = read_rows(self.sweep_path)
        rows = rows[rows["ckpt_id"] == self.trained.ckpt_id] if len(rows) else rows
        return None if rows.empty else str(rows["git_rev"].iloc[-1])

    @property
    def precision(self) -> str:
        """Where and in which precision this study evaluates, e.g. 'cpu-bf16' (`evaluate.precision`)."""
        return precision(self.device, self.profile.eval_precision)

    @property
    def emulated_bf16(self) -> bool:
        """Whether this study's bf16 evaluations are emulated in fp32 here (`sics.bf16`)."""
        return emulates_bf16(self.device, self.profile.eval_precision)

    @property
    def precision_label(self) -> str:
        """`precision`, with '(emulated in fp32)' where it is."""
        return precision_label(self.device, self.profile.eval_precision)

    @property
    def calibration(self) -> CalibrationStore:
        """This unit's saved calibration statistics (`sics.study.calibration`), opened on first use."""
        if self._calibration is None:
            identity = dict(ckpt_id=self.trained.ckpt_id, weights_sha256=self.trained.weights_sha256,
                            n_calib=self.profile.n_calib, n_test=self.n_test, data_id=self.data_id)  # fmt: skip
            path = figures_dir(self.name) / calibration_file(self.unit.tag, identity)
            self._calibration = CalibrationStore(path, identity, self.precision)
        return self._calibration

    def calibrated(self, name: str, compute) -> list[np.ndarray]:
        """Calibration statistics `name` of this unit: saved ones, else `compute()` now (and
        saved when the stage closes): a unit's Taylor importances, a token importance."""
        return self.calibration.get(name, compute)

    def save_calibration(self) -> None:
        """Write the calibration statistics computed since they were last saved (if any)."""
        if self._calibration is not None:
            self._calibration.save()

    def taylor(self, seed: int) -> list[np.ndarray]:
        """The gradient baseline's importance (channels: Taylor on a calibration subset drawn with
        `seed`), cached per seed."""
        if seed not in self._taylor:
            self._taylor[seed] = self.unit.taylor(self, seed)
        return self._taylor[seed]

    def stats_for(self, scorer: str, seed: int) -> list[BlockStats]:
        return with_taylor(self.stats, self.taylor(seed)) if get_scorer(scorer).needs_calibration else self.stats

    def masks(self, scorer: str, S: float, seed: int = 0, params: dict | None = None,
              allocation: str = "block") -> tuple[list[np.ndarray], list[np.ndarray]]:  # fmt: skip
        """(per-block scores, keep-masks) of one scorer at sparsity S (see `score_and_select`)."""
        if not self.unit.static and allocation != "block":
            raise ParameterError(f"unit {self.unit.name!r} selects per group (image) only: allocation 'block'")
        return score_and_select(self.stats_for(scorer, seed), scorer, S, seed, params, allocation)

    def magnitude_masks(self, S: float, allocation: str) -> list[np.ndarray]:
        key = (S, allocation)
        if key not in self._magnitude_masks:
            self._magnitude_masks[key] = self.masks("magnitude", S, allocation=allocation)[1]
        return self._magnitude_masks[key]

    @property
    def pred_folder(self) -> str:
        """The prediction cache's folder of this model, test set, evaluation precision and unit."""
        return self.pred_folder_for(None if self.default_unit else self.unit.tag)

    def pred_folder_for(self, unit_tag) -> str:
        """The cache folder of a row made with unit `unit_tag` (rows of one output folder may
        come from several settings of a unit, e.g. two token importances)."""
        default = not isinstance(unit_tag, str) or unit_tag == "mlp_channels"
        decisions = "-fp32d" if self.profile.fp32_decisions else ""
        return f"{self.trained.ckpt_id}-n{self.n_test}-{self.precision}{decisions}{'' if default else '-' + unit_tag}"

    def _pred_path(self, hash_: str, recovery_steps: int, seed: int = 0) -> Path:
        return cache_dir() / "preds" / self.pred_folder / f"{pred_name(hash_, recovery_steps, seed)}.npy"

    def _cached(self, path: Path) -> np.ndarray | None:
        """The cached per-image correctness at `path`; None (with a warning) if it is damaged."""
        if not path.exists():
            return None
        try:
            out = np.load(path, allow_pickle=False)
            if out.dtype != np.bool_ or out.shape != (self.n_test,):
                raise ValueError(f"{out.dtype} array of shape {out.shape}")
            return out
        except Exception as e:
            warnings.warn(f"prediction cache {str(path)!r} is damaged ({type(e).__name__}); "
                          "recomputing it", stacklevel=3)  # fmt: skip
            path.unlink(missing_ok=True)
            return None

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
        self.measured_locally = True
        if not self.unit.static:
            if recovery_steps:
                raise ParameterError(f"recovery fine-tuning is not defined for unit {self.unit.name!r}")
            return self.unit.evaluate(self, masks)
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
        atomic_write(self._pred_path(hash_, recovery_steps, seed), lambda p: p.write_bytes(_npy_bytes(out)))
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
        return [np.ones(n, dtype=bool) for n in self.unit.group_sizes(self)]

    def none_kept(self) -> list[np.ndarray]:
        return [np.zeros(n, dtype=bool) for n in self.unit.group_sizes(self)]

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


def _npy_bytes(arr: np.ndarray) -> bytes:
    buf = io.BytesIO()
    np.save(buf, arr, allow_pickle=False)
    return buf.getvalue()


def load_study_data(profile: Profile, spec: str | None) -> Cifar10:
    """The profile's train split and test subset of CIFAR-10 from `spec` (see `data.load_cifar10`)."""
    return load_cifar10(spec).subset(profile.n_train, profile.n_test)


def prepare(profile: str | Profile = "auto", data: str | None = None, *, device: str | None = None,
            weights: str | None = None, progress: bool | None = None, unit: str | Unit | None = None,
            unit_params: dict | None = None, **overrides) -> Study:  # fmt: skip
    """Resolve the profile, load (or train, cached) the dense model, attach committed results.

    `unit` (default: the profile's, `mlp_channels` for ViTs) is the kind of unit the study prunes,
    with `unit_params` for its settings (`sics.units`).

    The data are loaded only when needed: to train, or to evaluate a result that neither the
    prediction cache nor the committed bundle holds. Progress bars are on unless
    `progress=False`, `CI` is set, or `SICS_PROGRESS=0`.
    """
    if progress is None:
        progress = progress_enabled()
    prof = profile if isinstance(profile, Profile) else resolve_profile(profile, **overrides)
    dev = pick_device(device)
    spec = data or None
    loaded: list[Cifar10] = []

    def get_data() -> Cifar10:
        if not loaded:
            loaded.append(load_study_data(prof, spec))
        return loaded[0]

    kind = get_unit(unit or prof.unit, **(unit_params or {}))
    trained = train_or_load(prof, get_data, dev, weights=weights, progress=progress)
    study = Study(profile=prof, device=dev, trained=trained, unit=kind, progress=progress, data_spec=spec)
    found = bundle_mod.load(study.name)
    if found is not None and bundle_applies(found, study, loaded[0] if loaded else None):
        study.bundle = found
    study._data = loaded[0] if loaded else None  # checked against the bundle by `bundle_applies`
    return study


def bundle_applies(found: Bundle, study: Study, data: Cifar10 | None) -> bool:
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


def pack_results(study: Study) -> Path | None:
    """Write the profile's results bundle from the sweep rows of this model (see `sics.study.bundle`).

    Every distinct selection of every row of this model and test set, plus the dense model and
    the model without MLP channels when measured. A bundle of the committed weights is never
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
    rows = rows[(rows["ckpt_id"] == study.trained.ckpt_id) & (rows["n_test"] == study.n_test)]
    own = study.pred_folder
    wanted = {(str(r.mask_hash), int(r.recovery_steps), int(r.seed) if int(r.recovery_steps) else 0,
               study.pred_folder_for(getattr(r, "unit", None))) for r in rows.itertuples()}  # fmt: skip
    wanted |= {(mask_hash(m), 0, 0, own) for m in (study.all_kept(), study.none_kept())}
    measured_on = set(existing.meta.get("measured_on") or []) if existing is not None else set()
    fingerprints = list(existing.meta.get("fingerprints") or []) if existing is not None else []
    here = provenance.fingerprint(study.device, study.precision, study.emulated_bf16)
    entries = {}
    for hash_, steps, seed, folder in sorted(wanted):
        if pred_name(hash_, steps, seed) in entries:
            continue
        found = study._cached(cache_dir() / "preds" / folder / f"{pred_name(hash_, steps, seed)}.npy")
        if found is not None:
            measured_on.add(provenance.measured_here(study))  # (it may be in the bundle too)
            fingerprints += [here] if here not in fingerprints else []
        elif existing is not None:
            found = existing.get(pred_name(hash_, steps, seed))
        if found is not None:
            entries[pred_name(hash_, steps, seed)] = found
    meta = dict(profile=study.profile.name, ckpt_id=study.trained.ckpt_id,
                weights_sha256=study.trained.weights_sha256, n_test=study.n_test,
                profile_n_test=study.profile.n_test, n_train=study.n_train, data=study.data_source,
                data_id=study.data_id, measured_on=sorted(measured_on), rows=len(rows))  # fmt: skip
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
    return out
