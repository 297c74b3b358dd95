"""(scorer x sparsity x seed) grids -> tidy rows, appended to sweep.csv as each finishes.

Every row is keyed by its full configuration (checkpoint, test set, calibration-set size, scorer
parameters and code version, S, seed, allocation, recovery). A sweep skips keys already in
`sweep.csv`, so an interrupted `make paper` resumes where it stopped and re-running a notebook
only redraws; bumping a scorer's `version` after fixing it recomputes its rows. `sweep.csv` is
append-only (see `append_row`): runs of one profile at once (two terminals, Jupyter beside
`make paper`) never lose each other's rows, and a killed run never leaves a row that breaks
the next read. Per-image correctness is cached on disk by mask hash (with the device type and precision, which can flip
near-tie images, and the recovery steps and seed): scorers that select the same channels are
evaluated once. A damaged cache file is recomputed with a warning. The dense model's per-image
correctness is measured on the study's own test set through the same cache.

Global allocation scores all L·H channels as one pooled group (`pooled`): u is the rank of m
among all channels and the envelope sits on the global cut, so a non-monotone scorer perturbs
magnitude's global selection, as it perturbs magnitude's per-block one under block allocation.
Scoring each block apart and ranking the scores across blocks would not: the u-based scores lie
in [0, 1] in every block, so their global top-k keeps about k channels per block whatever the
magnitudes, and the escape would measure that allocation rather than the feature.
"""

from __future__ import annotations

import csv
import errno
import io
import json
import os
import time
import warnings
from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd
import torch

try:
    import fcntl
except ImportError:  # Windows: no advisory locks; one run per profile at a time there
    fcntl = None

from .. import provenance
from ..config import Profile, pick_device, resolve_profile
from ..data import Cifar10, DeviceBatches, load_cifar10
from ..errors import DataError, ParameterError, SicsError
from ..evaluate import precision, predict_correct
from ..files import atomic_write, stable_hash
from ..paths import cache_dir, figures_dir
from ..progress import bar as progress_bar
from ..progress import enabled as progress_enabled
from ..provenance import git_revision
from ..selection.complexity import kappa_hat
from ..selection.groups import BlockStats, with_taylor
from ..selection.scorers import check_scorers, get_scorer, score_blocks
from ..selection.select import ALLOCATIONS, check_sparsity, jaccard, mask_hash, overlap, select
from ..training.train import Trained, fine_tune, train_or_load
from ..training.weights import present as weights_present
from ..units import MlpChannels, Unit, get_unit
from . import bundle as bundle_mod
from .bundle import Bundle
from .calibration import CalibrationStore
from .calibration import file_name as calibration_file

COLUMNS = [
    "scorer", "kappa", "kappa_hat", "hf_share", "sparsity", "seed", "accuracy", "n_test",
    "mask_hash", "overlap_magnitude", "jaccard_magnitude", "kept", "allocation", "recovery_steps",
    "params", "tag", "profile", "ckpt_id", "data", "device", "git_rev", "seconds", "key",
    "n_calib", "scorer_version", "unit",
]  # fmt: skip


class StaleRowError(SicsError):
    """A sweep row whose selection the current model and scorer code no longer reproduce."""


def scorer_version(name: str) -> int:
    """The scorer's code version (`register(..., version=)`): part of row keys."""
    return get_scorer(name).version


def pooled(stats: list[BlockStats]) -> BlockStats:
    """Every channel of every block as one group: the scorer's input under global allocation.

    m (and the Taylor importance, when present) is the concatenation over blocks; the rank is
    the ascending rank of m over all channels, ties by position in the concatenation (the
    earlier one ranks higher, as `selection.select.select` keeps the earlier one).
    """
    m = np.concatenate([b.m for b in stats])
    has_taylor = all(b.taylor is not None for b in stats)
    taylor = np.concatenate([b.taylor for b in stats]) if has_taylor else None
    return BlockStats.from_magnitudes(-1, m, taylor)


def scoring_groups(stats: list[BlockStats], allocation: str) -> list[BlockStats]:
    """The groups a scorer scores: every block apart ("block"), or one pooled group ("global")."""
    if allocation == "block":
        return stats  # (as given: a Stacked list of token groups stays one stack)
    if allocation == "global":
        return [pooled(stats)]
    raise ParameterError(f"unknown allocation {allocation!r}; valid: {', '.join(ALLOCATIONS)}")


def score_and_select(stats: list[BlockStats], scorer: str, S: float, seed: int = 0,
                     params: dict | None = None, allocation: str = "block",
                     ) -> tuple[list[np.ndarray], list[np.ndarray]]:  # fmt: skip
    """(per-block scores, keep-masks) of one scorer at sparsity S under `allocation`.

    Under "global" the scores are computed once over the pooled group, split back per block,
    and the top round((1 - S) L H) of them kept over all blocks.
    """
    groups = scoring_groups(stats, allocation)
    scores = score_blocks(groups, scorer, S, seed, params)
    if allocation == "global":
        scores = np.split(scores[0], np.cumsum([b.H for b in stats])[:-1])
    return scores, select(scores, S, allocation)


def kappa_inputs(scores: list[np.ndarray], stats: list[BlockStats],
                 allocation: str) -> tuple[list[np.ndarray], list[BlockStats]]:  # fmt: skip
    """(scores, stats) in the groups the scorer scored: κ̂ reads each group's curve along rank."""
    if allocation == "global":
        return [np.concatenate(scores)], [pooled(stats)]
    return scores, stats


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
    here = provenance.fingerprint(study.device, study.precision)
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


def seeds_for(scorer: str, n_seeds: int) -> list[int]:
    """Deterministic scorers run once (seed 0); stochastic ones over n_seeds seeds."""
    return list(range(n_seeds)) if get_scorer(scorer).stochastic else [0]


def row_key(study: Study, scorer: str, S: float, seed: int, params: dict, allocation: str,
            recovery_steps: int) -> str:  # fmt: skip
    """The row's configuration, hashed. The unit enters only when it is not the paper's MLP
    channels, so every MLP-channel key made before units existed stays the same."""
    config = dict(ckpt=study.trained.ckpt_id, n_test=study.n_test, scorer=scorer,
                  params=get_scorer(scorer).params(params), S=round(S, 6), seed=seed,
                  allocation=allocation, recovery=recovery_steps,
                  n_calib=study.profile.n_calib, version=scorer_version(scorer))  # fmt: skip
    if not study.default_unit:
        config["unit"] = {"name": study.unit.name, **study.unit.key()}
    if study.profile.fp32_decisions:  # (only where set: the committed profiles' keys stay)
        config["fp32_decisions"] = True
    return stable_hash(config)


ROW_DTYPES = {"kappa": str, "mask_hash": str}


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


def _size(path: Path) -> int:
    try:
        return path.stat().st_size
    except FileNotFoundError:
        return 0


def run_sweep(
    study: Study,
    scorers: Iterable[str],
    sparsities: Iterable[float],
    *,
    n_seeds: int | None = None,
    params: dict[str, dict] | None = None,
    allocation: str = "block",
    recovery_steps: int = 0,
    tag: str | None = None,
) -> pd.DataFrame:
    """Evaluate every (scorer, S, seed); return this grid's rows (new and previously finished).

    `tag` labels the rows; by default "main" for the protocol's settings and "variant" for any
    other allocation, recovery or scorer parameters (so tables of the paper never mix them).
    """
    scorers = check_scorers(scorers)
    sparsities = [check_sparsity(s) for s in sparsities]
    if not sparsities:
        raise ParameterError("the sparsity list is empty; give values in [0, 1)")
    params = params or {}
    for name in params:
        get_scorer(name).params(params[name])
    n_seeds = study.profile.n_seeds if n_seeds is None else n_seeds
    if tag is None:
        default = all(get_scorer(n).params(p) == get_scorer(n).params() for n, p in params.items())
        tag = "main" if allocation == "block" and not recovery_steps and default else "variant"
    path = study.sweep_path
    seen = _size(path)
    have = set(read_rows(path)["key"])
    jobs = [(sc, S, seed) for S in sparsities for sc in scorers for seed in seeds_for(sc, n_seeds)]
    keys = [row_key(study, sc, S, seed, params.get(sc, {}), allocation, recovery_steps) for sc, S, seed in jobs]
    todo = [(job, key) for job, key in zip(jobs, keys, strict=True) if key not in have]
    rev = git_revision()
    bar = progress_bar(desc=f"sweep {tag}", total=len(jobs), initial=len(jobs) - len(todo), unit="row",
                       disable=not study.progress or not todo)  # fmt: skip
    for (sc, S, seed), key in todo:
        if _size(path) != seen:  # another run appended rows meanwhile: skip those it finished
            seen = _size(path)
            have = set(read_rows(path)["key"])
        if key in have:
            bar.update()
            continue
        t0 = time.time()
        p = params.get(sc, {})
        scores, masks = study.masks(sc, S, seed, p, allocation)
        ref = study.magnitude_masks(S, allocation)
        correct = study.correct(masks, recovery_steps, seed)
        k_hat, share = kappa_hat(*kappa_inputs(scores, study.stats, allocation))
        seen = append_row(path, dict(
            scorer=sc, kappa=get_scorer(sc).kappa, kappa_hat=k_hat, hf_share=round(share, 4),
            sparsity=S, seed=seed, accuracy=float(correct.mean()), n_test=len(correct),
            mask_hash=mask_hash(masks), overlap_magnitude=overlap(masks, ref),
            jaccard_magnitude=jaccard(masks, ref), kept=int(sum(m.sum() for m in masks)),
            allocation=allocation, recovery_steps=recovery_steps,
            params=json.dumps(get_scorer(sc).params(p), sort_keys=True), tag=tag,
            profile=study.profile.name, ckpt_id=study.trained.ckpt_id, data=study.data_source,
            device=str(study.device), git_rev=rev, seconds=round(time.time() - t0, 3), key=key,
            n_calib=study.profile.n_calib, scorer_version=scorer_version(sc), unit=study.unit.tag,
        ))  # fmt: skip
        bar.update()
    bar.close()
    done = read_rows(path)  # typed as a reader of sweep.csv sees it, with any other run's rows
    result = done[done["key"].isin(set(keys))].copy()
    return result.reset_index(drop=True)
