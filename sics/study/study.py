"""The Study: the dense model and everything a study's sweeps share; `prepare` builds one.

Per-image correctness is looked up (the prediction cache, else the committed bundle: see
`sics.study.results`) before anything is evaluated: scorers that select the same units are
evaluated once, and a study whose every result is saved never touches CIFAR-10. The dense
model's per-image correctness is measured on the study's own test set through the same path.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

from ..config import Profile, pick_device, resolve_profile
from ..data.registry import load_data
from ..errors import ParameterError
from ..paths import figures_dir, run_name
from ..progress import enabled as progress_enabled
from ..selection.groups import BlockStats, with_extra, with_taylor
from ..selection.scorers import get_scorer
from ..selection.select import score_and_select
from ..training.identity import Trained, committed_trained
from ..units import MlpChannels, Unit, UnitInputs, get_unit
from . import bundle as bundle_mod
from .bundle import Bundle
from .calibration import CalibrationStore
from .calibration import file_name as calibration_file
from .data import StudyData
from .placement import Placement
from .results import PerImageResults, bundle_applies
from .rows import read_rows

if TYPE_CHECKING:
    from ..data import Cifar10


@dataclass
class Study(PerImageResults):
    """The dense model and everything the sweeps share (built once per notebook).

    The data are loaded on first use (`data`, `test`): a study whose every result is already in
    the prediction cache or the committed results bundle (`sics.study.bundle`) never touches CIFAR-10,
    so a reader without the dataset regenerates every output from the committed files. So is the
    model (`model`, `device`): such a study never imports torch either.
    """

    profile: Profile
    where: Placement  # the device and the precision evaluations run in
    trained: Trained
    inputs: StudyData  # the data, loaded when an evaluation needs them (`sics.study.data`)
    unit: Unit = field(default_factory=MlpChannels)
    progress: bool = True
    bundle: Bundle | None = None  # committed per-image results of this model and test set
    _taylor: dict = field(default_factory=dict)
    _calibration_stats: dict = field(default_factory=dict)
    _magnitude_masks: dict = field(default_factory=dict)
    _dense: np.ndarray | None = None
    _stats: list[BlockStats] | None = None
    _unit_inputs: UnitInputs | None = None
    _calibration: CalibrationStore | None = None
    measured_locally: bool = False  # a result came from this machine (evaluated, or its cache)

    @property
    def name(self) -> str:
        """Where the outputs go, under figures/: the profile's name, with the unit's for another
        unit than its own, and for training run k >= 1 (`train_seed = k`) its `runs/<k>` folder."""
        base = self.profile.name if self.unit.name == self.profile.unit else f"{self.profile.name}-{self.unit.name}"
        return run_name(base, self.profile.train_seed)

    @property
    def data(self) -> Cifar10:
        return self.inputs.data

    @property
    def test(self):
        return self.inputs.test(self.device)

    @property
    def n_test(self) -> int:
        return self.inputs.n_test

    @property
    def data_source(self) -> str:
        return self.inputs.source

    @property
    def default_unit(self) -> bool:
        return self.unit.name == "mlp_channels" and not self.unit.key()

    @property
    def stats(self) -> list[BlockStats]:
        """One group of units per block (per image for tokens), with their importance m."""
        if self._stats is None:
            self._stats = self.unit.stats(self.unit_inputs)
        return self._stats

    @property
    def unit_inputs(self) -> UnitInputs:
        """What the unit kind receives from this study (`sics.units.base.UnitInputs`): the model
        and its device built on first use, the committed weights as arrays where there are some."""
        if self._unit_inputs is None:
            self._unit_inputs = UnitInputs(self.profile, load_model=lambda: self.model, load_device=lambda: self.device,
                                           data=lambda: self.data, test=lambda: self.test,
                                           n_test=lambda: self.n_test, calibrated=self.calibrated,
                                           load_weights=self.trained.load_arrays)  # fmt: skip
        return self._unit_inputs

    @property
    def sweep_path(self) -> Path:
        return figures_dir(self.name) / "sweep.csv"

    @property
    def model(self):
        """The dense model (torch), built on first use."""
        return self.trained.model

    @property
    def device(self):
        """The torch.device evaluations run on (imports torch)."""
        return self.where.device

    def results_revision(self) -> str | None:
        """The revision of this model's newest sweep row (rows record the revision that made
        them), or None before any row."""
        rows = read_rows(self.sweep_path)
        rows = rows[rows["ckpt_id"] == self.trained.ckpt_id] if len(rows) else rows
        return None if rows.empty else str(rows["git_rev"].iloc[-1])

    @property
    def calibration(self) -> CalibrationStore:
        """This unit's saved calibration statistics (`sics.study.calibration`), opened on first use."""
        if self._calibration is None:
            identity = dict(ckpt_id=self.trained.ckpt_id, weights_sha256=self.trained.weights_sha256,
                            n_calib=self.profile.n_calib, n_test=self.n_test, data_id=self.inputs.source_id)  # fmt: skip
            path = figures_dir(self.name) / calibration_file(self.unit.tag, identity)
            self._calibration = CalibrationStore(path, identity, self.where.precision)
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
            self._taylor[seed] = self.unit.taylor(self.unit_inputs, seed)
        return self._taylor[seed]

    def calibration_stats(self, seed: int) -> dict[str, list[np.ndarray]]:
        """The calibration statistics of the published criteria, per group (`Unit.calibration_stats`)."""
        if seed not in self._calibration_stats:
            self._calibration_stats[seed] = self.unit.calibration_stats(self.unit_inputs, seed)
        return self._calibration_stats[seed]

    def stats_for(self, scorer: str, seed: int) -> list[BlockStats]:
        """The stats with what `scorer` reads from the calibration subset of `seed`, if anything."""
        found = get_scorer(scorer)
        stats = with_taylor(self.stats, self.taylor(seed)) if found.needs_calibration else self.stats
        return with_extra(stats, self.calibration_stats(seed)) if found.needs else stats

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
    spec = data or None
    loaded: list[Cifar10] = []

    def get_data() -> Cifar10:
        if not loaded:
            loaded.append(load_data(prof, spec))
        return loaded[0]

    kind = get_unit(unit or prof.unit, **(unit_params or {}))
    def build(state: dict, path: Path):
        from ..training.checkpoints import inference_model

        return inference_model(prof, state, path, study.device)

    trained = committed_trained(prof, build)
    if trained is None:
        from ..training.checkpoints import train_or_load

        trained = train_or_load(prof, get_data, pick_device(device), weights=weights, progress=progress)
    study = Study(profile=prof, where=Placement(device, prof.eval_precision), trained=trained, unit=kind,
                  progress=progress, inputs=StudyData(prof, spec, loaded=loaded[0] if loaded else None))  # fmt: skip
    found = bundle_mod.load(study.name)
    if found is not None and bundle_applies(found, study, loaded[0] if loaded else None):
        study.bundle, study.inputs.record = found, found.meta  # (loaded data: checked by `bundle_applies`)
    return study


