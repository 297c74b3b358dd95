"""What every unit kind shares without running a model: the `Unit` protocol, the `UnitInputs` it
receives from a study, and the weight statistics of a group of channels (numpy, from the weights
as arrays: committed weights are read without torch). What runs the model is in `sics.units.ops`."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import numpy as np

from ..config import Profile
from ..selection.groups import CALIBRATION_STATS, BlockStats


class UnitInputs:
    """What a unit kind receives from its study: the profile's settings, the dense model and its
    device (given, or built on first use by `load_model`, `load_device`), the dense weights as
    arrays (`weights`), the data loaded on first call (a study whose results are all saved never
    loads them), the saved calibration statistics, and a dict the unit keeps between calls."""

    def __init__(self, profile: Profile, model: Any = None, device: Any = None, *,
                 data: Callable[[], Any] | None = None,  # train split (calibration images), test subset
                 test: Callable[[], Any] | None = None,  # the test subset on the device
                 n_test: Callable[[], int] | None = None,
                 # calibrated(name, compute): the saved statistics `name`, else compute() now (saved later)
                 calibrated: Callable[[str, Callable[[], list[np.ndarray]]], list[np.ndarray]] | None = None,
                 load_model: Callable[[], Any] | None = None, load_device: Callable[[], Any] | None = None,
                 load_weights: Callable[[], dict[str, np.ndarray]] | None = None):  # fmt: skip
        self.profile, self._model, self._device = profile, model, device
        self.data, self.test, self.n_test, self.calibrated = data, test, n_test, calibrated
        self._load_model, self._load_device, self._load_weights = load_model, load_device, load_weights
        self.cache: dict = {}

    @property
    def model(self):
        if self._model is None:
            self._model = self._load_model()
        return self._model

    @property
    def device(self):
        if self._device is None:
            self._device = self._load_device()
        return self._device

    def weights(self) -> dict[str, np.ndarray]:
        """The dense model's parameters and buffers as numpy arrays, by state-dict name: the
        committed weights read without torch where the study has them, else the model's."""
        if "weights" not in self.cache:
            if self._load_weights is not None:
                self.cache["weights"] = self._load_weights()
            else:
                self.cache["weights"] = {k: v.detach().cpu().numpy() for k, v in self.model.state_dict().items()}
        return self.cache["weights"]


class Unit:
    """A kind of pruning unit (see the module docstring). Subclasses fill in the methods."""

    name: str = ""
    description: str = ""
    static: bool = True  # True: the selection depends on the weights only, not on the images

    def key(self) -> dict:
        """What besides the name tells this unit's selections apart (part of every row key)."""
        return {}

    def cluster(self, profile: Profile) -> int:
        """How many consecutive per-item results make one independent unit of the statistics
        (1: an image; the KV unit's predicted bytes come `window` to a context)."""
        return 1

    @property
    def tag(self) -> str:
        """Short label of the unit and its settings, for cache folders."""
        return self.name

    def stats(self, inputs: UnitInputs) -> list[BlockStats]:
        """One group of units per block (per image for tokens), with their importance m."""
        raise NotImplementedError

    def group_sizes(self, inputs: UnitInputs) -> list[int]:
        return [b.H for b in self.stats(inputs)]

    def taylor(self, inputs: UnitInputs, seed: int) -> list[np.ndarray]:
        """The gradient baseline's importance per group, from the calibration subset of `seed`."""
        raise NotImplementedError

    def calibration_stats(self, inputs: UnitInputs, seed: int) -> dict[str, list[np.ndarray]]:
        """The calibration statistics of the published criteria (`groups.CALIBRATION_STATS`),
        per group, from the calibration subset of `seed`."""
        raise NotImplementedError(f"unit {self.name!r} provides no calibration statistics")

    def masked(self, model: Any, masks: list[np.ndarray]):
        """Context manager: the model with the pruned units zeroed (a hook), restored after."""
        raise NotImplementedError

    def apply(self, model: Any, masks: list[np.ndarray]) -> Any:
        """A pruned copy of the model (units sliced out where possible), for evaluation."""
        raise NotImplementedError

    def evaluate(self, inputs: UnitInputs, masks: list[np.ndarray]) -> np.ndarray:
        """Per-image correctness under `masks`, for a unit whose selection differs per image
        (`static` False: `Study.correct` calls this instead of `apply`)."""
        raise NotImplementedError


def saved_calibration_stats(inputs: UnitInputs, seed: int, compute: Callable[[], dict]) -> dict[str, list[np.ndarray]]:
    """The calibration statistics of the published criteria (`groups.CALIBRATION_STATS`) for the
    subset of `seed`: the saved ones (`<name>-s<seed>`), else all four from one `compute()`, made
    once and saved with the study's, so a study whose statistics are saved runs no model."""
    computed: dict[str, dict] = {}

    def part(name: str) -> list[np.ndarray]:
        if "all" not in computed:
            computed["all"] = compute()
        return computed["all"][name]

    return {name: inputs.calibrated(f"{name}-s{seed}", lambda n=name: part(n)) for name in CALIBRATION_STATS}


def _dense(w) -> np.ndarray:
    """float64, C-ordered: numpy's sums follow the memory order, so a channels-last tensor's view
    would round differently from the same weights read from their file."""
    return np.ascontiguousarray(w, dtype=np.float64)


def weight_stats(w_in: np.ndarray, w_out: np.ndarray) -> dict[str, np.ndarray]:
    """The weight statistics of a group's H channels (`groups.WEIGHT_STATS`), from their
    input-side weights `w_in` (channel first) and output-side weights `w_out` (channel second,
    as an fc2 column or a conv2 input slice). float64."""
    a = _dense(w_in).reshape(len(w_in), -1)  # (H, fan-in)
    b = np.ascontiguousarray(np.moveaxis(_dense(w_out), 1, 0)).reshape(np.shape(w_out)[1], -1)  # (H, fan-out)
    return dict(in_norm=np.linalg.norm(a, axis=1), out_norm=np.linalg.norm(b, axis=1),
                l1=np.abs(a).sum(1) + np.abs(b).sum(1), out_abs_mean=np.abs(b).mean(1),
                vectors=np.concatenate([a, b], axis=1))  # fmt: skip


def magnitudes(w_in: np.ndarray, w_out: np.ndarray) -> np.ndarray:
    """m_c = ‖[input-side weights of c, output-side weights of c]‖₂ (float64), with `w_in` channel
    first and `w_out` channel second, as in `weight_stats`."""
    a, b = _dense(w_in), _dense(w_out)
    return np.sqrt((a**2).sum(tuple(range(1, a.ndim))) + (b**2).sum((0, *range(2, b.ndim))))
