"""A study's selections: the unit kind's groups and importances, what each scorer reads from a
calibration subset, and the keep-masks of any scorer at any S, computed once per study. Pure
selection (numpy) where the weights are committed; a model is built only for calibration
statistics that are not saved."""

from __future__ import annotations

import json
from dataclasses import dataclass, field

import numpy as np

from ..errors import ParameterError, SicsError
from ..selection.groups import BlockStats, with_extra, with_taylor
from ..selection.scorers import get_scorer
from ..selection.select import mask_hash, score_and_select
from ..units import Unit, UnitInputs


class StaleRowError(SicsError):
    """A sweep row whose selection the current model and scorer code no longer reproduce."""


@dataclass
class Selection:
    """The selections of one unit kind in one dense model (`inputs`: what the unit reads)."""

    unit: Unit
    inputs: UnitInputs
    _stats: list[BlockStats] | None = None
    _taylor: dict = field(default_factory=dict)
    _calibration_stats: dict = field(default_factory=dict)
    _magnitude: dict = field(default_factory=dict)

    @property
    def stats(self) -> list[BlockStats]:
        """One group of units per block (per image for tokens), with their importance m."""
        if self._stats is None:
            self._stats = self.unit.stats(self.inputs)
        return self._stats

    def taylor(self, seed: int) -> list[np.ndarray]:
        """The gradient baseline's importance (channels: Taylor on a calibration subset drawn with
        `seed`), per seed."""
        if seed not in self._taylor:
            self._taylor[seed] = self.unit.taylor(self.inputs, seed)
        return self._taylor[seed]

    def calibration_stats(self, seed: int) -> dict[str, list[np.ndarray]]:
        """The calibration statistics of the published criteria, per group (`Unit.calibration_stats`)."""
        if seed not in self._calibration_stats:
            self._calibration_stats[seed] = self.unit.calibration_stats(self.inputs, seed)
        return self._calibration_stats[seed]

    def stats_for(self, scorer: str, seed: int) -> list[BlockStats]:
        """The stats with what `scorer` reads from the calibration subset of `seed`, if anything."""
        found = get_scorer(scorer)
        stats = with_taylor(self.stats, self.taylor(seed)) if found.needs_calibration else self.stats
        return with_extra(stats, self.calibration_stats(seed)) if found.needs else stats

    def masks(self, scorer: str, S: float, seed: int = 0, params: dict | None = None,
              allocation: str = "block") -> tuple[list[np.ndarray], list[np.ndarray]]:  # fmt: skip
        """(per-group scores, keep-masks) of one scorer at sparsity S (see `score_and_select`)."""
        if not self.unit.static and allocation != "block":
            raise ParameterError(f"unit {self.unit.name!r} selects per group (image) only: allocation 'block'")
        return score_and_select(self.stats_for(scorer, seed), scorer, S, seed, params, allocation)

    def magnitude(self, S: float, allocation: str) -> list[np.ndarray]:
        """The plateau's selection at S: every row's overlap is measured against it."""
        key = (S, allocation)
        if key not in self._magnitude:
            self._magnitude[key] = self.masks("magnitude", S, allocation=allocation)[1]
        return self._magnitude[key]

    def row_masks(self, row, where: str = "sweep.csv") -> list[np.ndarray]:
        """The selection of a sweep row, recomputed and checked against its mask hash: a row whose
        selection the current model and scorer code no longer make is stale (`StaleRowError`)."""
        _, masks = self.masks(row.scorer, float(row.sparsity), int(row.seed), json.loads(row.params), row.allocation)
        if mask_hash(masks) != row.mask_hash:
            raise StaleRowError(
                f"sweep row {row.scorer} S={row.sparsity} seed={row.seed} ({row.allocation}) is stale: "
                f"it records mask {row.mask_hash}, the current model and scorer select "
                f"{mask_hash(masks)}; bump the scorer's version (or delete {where}) and rerun the sweep"
            )
        return masks

    def all_kept(self) -> list[np.ndarray]:
        return [np.ones(n, dtype=bool) for n in self.unit.group_sizes(self.inputs)]

    def none_kept(self) -> list[np.ndarray]:
        return [np.zeros(n, dtype=bool) for n in self.unit.group_sizes(self.inputs)]
