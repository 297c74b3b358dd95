"""The Study: the dense model and everything a study's sweeps share; `prepare` builds one.

Per-image correctness is looked up (the prediction cache, else the committed bundle: see
`sics.study.results`) before anything is evaluated: scorers that select the same units are
evaluated once, and a study whose every result is saved never touches CIFAR-10. The dense
model's per-image correctness is measured on the study's own test set through the same path.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

from ..config import Profile, pick_device, resolve_profile
from ..data.registry import load_data
from ..errors import ParameterError
from ..paths import figures_dir, run_name
from ..progress import enabled as progress_enabled
from ..selection.select import mask_hash
from ..training.identity import Trained, committed_trained
from ..units import Unit, UnitInputs, get_unit
from . import bundle as bundle_mod
from .bundle import Bundle
from .calibration import CalibrationStore
from .calibration import file_name as calibration_file
from .data import StudyData
from .placement import Placement
from .results import ResultStore, bundle_applies, pred_name
from .rows import read_rows
from .selection import Selection

if TYPE_CHECKING:
    from ..data import Cifar10


@dataclass
class Study:
    """A dense model, the unit kind it is pruned by, where it is evaluated, and its stores: the
    data (`inputs`, loaded on first use), the per-image results (`results`: the prediction cache,
    then the committed bundle), the selections (`selection`) and the calibration statistics
    (`calibration`). A study whose every result is stored never touches CIFAR-10 nor torch:
    the model (`model`, `device`) is built only where something is evaluated.
    """

    profile: Profile
    where: Placement  # the device and the precision evaluations run in
    trained: Trained
    inputs: StudyData  # the data, loaded when an evaluation needs them (`sics.study.data`)
    unit: Unit
    results: ResultStore  # per-image results by selection (`sics.study.results`)
    progress: bool = True
    _selection: Selection | None = None
    _calibration: CalibrationStore | None = None
    _dense: np.ndarray | None = None

    @property
    def name(self) -> str:
        """Where the outputs go, under figures/: the profile's name, with the unit's for another
        unit than its own, and for training run k >= 1 (`train_seed = k`) its `runs/<k>` folder."""
        return study_name(self.profile, self.unit)

    @property
    def data(self) -> Cifar10:
        return self.inputs.data

    @property
    def test(self):
        return self.inputs.test(self.device)

    @property
    def n_test(self) -> int:
        return self.results.n_test

    @property
    def bundle(self) -> Bundle | None:
        return self.results.bundle

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

    @property
    def selection(self) -> Selection:
        """The selections of this unit kind in this model (`sics.study.selection`): from the
        committed weights as arrays where there are some, else from the model."""
        if self._selection is None:
            inputs = UnitInputs(self.profile, load_model=lambda: self.model, load_device=lambda: self.device,
                                data=lambda: self.data, test=lambda: self.test, n_test=lambda: self.n_test,
                                calibrated=self.calibration.get, load_weights=self.trained.load_arrays)  # fmt: skip
            self._selection = Selection(self.unit, inputs)
        return self._selection

    def masks(self, scorer: str, S: float, seed: int = 0, params: dict | None = None,
              allocation: str = "block") -> tuple[list[np.ndarray], list[np.ndarray]]:  # fmt: skip
        """(per-group scores, keep-masks) of one scorer at S (`Selection.masks`)."""
        return self.selection.masks(scorer, S, seed, params, allocation)

    @property
    def calibration(self) -> CalibrationStore:
        """This unit's saved calibration statistics (`sics.study.calibration`), opened on first use."""
        if self._calibration is None:
            identity = dict(ckpt_id=self.trained.ckpt_id, weights_sha256=self.trained.weights_sha256,
                            n_calib=self.profile.n_calib, n_test=self.n_test, data_id=self.inputs.source_id)  # fmt: skip
            path = figures_dir(self.name) / calibration_file(self.unit.tag, identity)
            self._calibration = CalibrationStore(path, identity, self.where.precision)
        return self._calibration

    def save_calibration(self) -> None:
        """Write the calibration statistics computed since they were last saved (if any)."""
        if self._calibration is not None:
            self._calibration.save()

    def results_revision(self) -> str | None:
        """The revision of this model's newest sweep row (rows record the revision that made
        them), or None before any row."""
        rows = read_rows(self.sweep_path)
        rows = rows[rows["ckpt_id"] == self.trained.ckpt_id] if len(rows) else rows
        return None if rows.empty else str(rows["git_rev"].iloc[-1])

    def evaluate(self, masks: list[np.ndarray], recovery_steps: int = 0, seed: int = 0) -> np.ndarray:
        """Per-image correctness of the pruned model, measured now (no cache, no bundle).

        With `recovery_steps` the sliced model is first fine-tuned with `seed` (the row's seed).
        """
        from ..models.evaluate import predict_correct
        from ..training.loop import fine_tune

        if not self.unit.static:
            if recovery_steps:
                raise ParameterError(f"recovery fine-tuning is not defined for unit {self.unit.name!r}")
            return self.unit.evaluate(self.selection.inputs, masks)
        model = self.unit.apply(self.model, masks)
        if recovery_steps:
            fine_tune(model, self.profile, self.data, self.device, steps=recovery_steps, seed=seed)
        return predict_correct(model, self.test, self.profile.eval_batch_size,
                               self.profile.eval_precision).cpu().numpy()  # fmt: skip

    def correct(self, masks: list[np.ndarray], recovery_steps: int = 0, seed: int = 0) -> np.ndarray:
        """Per-image correctness of the pruned model: looked up by mask hash, else measured and
        stored; per cluster where the unit's items come in clusters (`ResultStore.outcomes`)."""
        name = pred_name(mask_hash(masks), recovery_steps, seed)
        found = self.results.lookup(name)
        if found is None:
            found = self.evaluate(masks, recovery_steps, seed)
            self.results.put(name, found)
        return self.results.outcomes(found)

    def correct_for_row(self, row) -> np.ndarray:
        """Per-image correctness behind a sweep row: looked up, else its selection is recomputed
        (and checked against the row's mask hash: `StaleRowError`) and evaluated."""
        found = self.results.lookup(pred_name(row.mask_hash, int(row.recovery_steps), int(row.seed)))
        if found is not None:
            return self.results.outcomes(found)
        return self.correct(self.selection.row_masks(row, str(self.sweep_path)), int(row.recovery_steps), int(row.seed))

    def dense_correct(self) -> np.ndarray:
        """Per-image correctness of the unpruned model on this study's test set (bool array).

        Measured here, not read from the checkpoint (whose accuracy is on the test set in force
        at training time, in the training's precision), and stored like any selection.
        """
        if self._dense is None:
            self._dense = self.correct(self.selection.all_kept())
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
        return float(self.correct(self.selection.none_kept()).mean())


def is_default_unit(unit: Unit) -> bool:
    """The paper's unit with its default settings: rows and cache folders without a unit field."""
    return unit.name == "mlp_channels" and not unit.key()


def study_name(profile: Profile, unit: Unit) -> str:
    """A study's folder under figures/ (`Study.name`)."""
    base = profile.name if unit.name == profile.unit else f"{profile.name}-{unit.name}"
    return run_name(base, profile.train_seed)


def prepare(profile: str | Profile = "auto", data: str | None = None, *, device: str | None = None,
            weights: str | None = None, progress: bool | None = None, unit: str | Unit | None = None,
            unit_params: dict | None = None, **overrides) -> Study:  # fmt: skip
    """Resolve the profile, load (or train, cached) the dense model, attach committed results.

    `unit` (default: the profile's, `mlp_channels` for ViTs) is the kind of unit the study prunes,
    with `unit_params` for its settings (`sics.units`).

    The data are loaded only when needed: to train, to evaluate a result that neither the
    prediction cache nor the committed bundle holds, or (here) where no committed bundle records
    the test set's size, which keys the prediction cache. Progress bars are on unless
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

        return inference_model(prof, state, path, where.device)

    where = Placement(device, prof.eval_precision)
    trained = committed_trained(prof, build)
    if trained is None:
        from ..training.checkpoints import train_or_load

        trained = train_or_load(prof, get_data, pick_device(device), weights=weights, progress=progress)
    inputs = StudyData(prof, spec, loaded=loaded[0] if loaded else None)
    found = bundle_mod.load(study_name(prof, kind))
    if found is not None and bundle_applies(found, prof, trained, loaded[0] if loaded else None):
        inputs.record = found.meta  # (loaded data: checked by `bundle_applies`)
    else:
        found = None
    results = ResultStore(trained.ckpt_id, inputs.n_test, where.precision, prof.fp32_decisions,
                          None if is_default_unit(kind) else kind.tag, bundle=found,
                          cluster=kind.cluster(prof))  # fmt: skip
    return Study(profile=prof, where=where, trained=trained, inputs=inputs, unit=kind, results=results,
                 progress=progress)  # fmt: skip
