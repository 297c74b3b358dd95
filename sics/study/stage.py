"""One vocabulary for the notebooks: open a stage, sweep, analyse, close it with a record.

A stage is one notebook's unit of work. `open_stage` resolves the profile, loads the data and the
dense model (cached) and prints how the numbers are made; `Stage.sweep` runs a grid (with the
plateau's magnitude rows, which every escape is measured against) and returns its `Results`,
the rows plus the per-image correctness behind them, from which `sics.analysis` computes
everything; `Stage.close` records the stage in provenance.json and prints one line with its time.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field

import numpy as np
import pandas as pd

from .. import analysis, provenance
from ..analysis import claims
from ..analysis.summaries import PLATEAU_SCORER, Correct, paired_table, per_cluster, result_key
from ..config import architecture_profile, resolve_profile
from ..models import model_label
from ..paths import figures_dir
from ..report import tables
from ..report.output import Output
from ..selection.scorers import get_scorer
from . import bundle
from .record import study_record
from .results import pack_results, pred_name
from .rows import of_model, read_rows
from .study import Study, prepare
from .sweep import sweep_grid


@dataclass
class Results:
    """Sweep rows and the per-image correctness of their selections (`analysis.result_key`)."""

    rows: pd.DataFrame
    correct: dict[tuple[str, int, int], np.ndarray]

    def summary(self) -> pd.DataFrame:
        return analysis.summarize(self.rows, self.correct)

    def paired(self, scorer: str, reference: str) -> pd.DataFrame:
        """scorer − reference per S, paired on the same images (empty if either is missing)."""
        return paired_table(self.rows, self.correct, scorer, reference)

    def claim_pairs(self) -> dict[str, pd.DataFrame]:
        """The paired comparisons the claims read (`claims.PAIRS`: C5 fake − gradient, C6
        logistic_smooth − bump)."""
        return claims.claim_pairs(self.rows, self.correct)


def saved_results(name: str, tag: str = "main") -> Results | None:
    """The `tag` rows of a study saved in figures/<name>/, with their per-image results read from
    its bundle: what another notebook drew, with no model, data or forward pass (None when
    that study has not been run, or packed, yet)."""
    found = bundle.load(name)
    if found is None:
        return None
    rows = read_rows(figures_dir(name) / "sweep.csv")
    rows = of_model(rows, found.ckpt_id, found.n_test)
    rows = rows[rows["tag"] == tag]
    correct, keep = {}, []
    for i, r in enumerate(rows.itertuples()):
        got = found.get(pred_name(r.mask_hash, int(r.recovery_steps), int(r.seed)))
        if got is not None:
            correct[result_key(r)] = per_cluster(got, int(found.meta.get("cluster", 1)))
            keep.append(i)
    return Results(rows.iloc[keep].reset_index(drop=True), correct)


def load_correct(study: Study, rows: pd.DataFrame, known: Correct | None = None) -> Correct:
    """Per-image correctness of every distinct selection in `rows`: `known` (what a sweep just
    measured), else looked up in the study's stores."""
    out: Correct = dict(known or {})
    for r in rows.itertuples():
        key = result_key(r)
        if key not in out:
            out[key] = study.correct_for_row(r)
    return out


_OPEN: list[Stage] = []  # stages opened and not yet closed, newest last


def pack_open() -> None:
    """Save what every open stage has finished: its calibration statistics and results bundle
    (the rows are in sweep.csv already), so a run stopped mid-notebook loses no finished result."""
    for st in list(_OPEN):
        st.study.save_calibration()
        pack_results(st.study)


@dataclass
class Stage:
    name: str
    study: Study
    t0: float = field(default_factory=time.time)
    _rows: dict = field(default_factory=dict)  # key -> seconds its evaluation took (when made)

    @property
    def profile(self) -> str:
        return self.study.profile.name

    @property
    def out(self) -> Output:
        """Where this stage's tables and figures go, and their caption (how the numbers were made)."""
        return Output(figures_dir(self.study.name), provenance.caption(study_record(self.study)))

    def dense_record(self) -> pd.DataFrame:
        """The dense model's accuracy on the study's own test set, and how it was made. Beside it,
        the accuracy with every unit removed: how much the pruned unit matters in this model at
        all (the pruned curves live between the two)."""
        st, p = self.study, self.study.profile
        return pd.DataFrame([dict(
            profile=p.name, model=model_label(p),
            pretrained=p.pretrained, epochs=p.epochs, test_accuracy=round(st.dense_accuracy * 100, 2),
            unit=st.unit.tag, no_units_accuracy=round(st.units_removed_accuracy * 100, 2),
            n_test=st.n_test, n_train=st.inputs.n_train, data=st.inputs.source, measured_on=study_record(st).measured_on,
            ckpt_id=st.trained.ckpt_id, train_seed=p.train_seed,
        )])  # fmt: skip

    def feature_shapes(self, scorers, S: float, block: int = 0, seed: int = 0) -> pd.DataFrame:
        """Each scorer's scores in one block, read along the magnitude rank u (min-max
        normalised), and whether each unit is kept at S: one row per (scorer, unit)."""
        stats = self.study.selection.stats[block]
        u = np.sort(stats.u)
        parts = []
        for name in scorers:
            scores, masks = self.study.masks(name, S, seed)
            s = scores[block][stats.rank_order]
            parts.append(pd.DataFrame(dict(scorer=name, kappa=get_scorer(name).kappa, u=u,
                                           score=(s - s.min()) / (s.max() - s.min() + 1e-12),
                                           kept=masks[block][stats.rank_order])))  # fmt: skip
        return pd.concat(parts, ignore_index=True)

    def save_power(self, results: Results, sparsities, margin: float) -> pd.DataFrame:
        """Save the power table (each claim's minimum detectable escape at 80% power, and the
        seeds its effect needs) and the throughput of this stage's rows; returns the power as shown."""
        power = analysis.power_table(results.rows, results.correct, sparsities, margin=margin)
        tables.save_table(power, "power", self.out, shown=tables.power_view(power),
                          title="Power: minimum detectable escape at 80% power after each claim's Holm family, and the seeds that would detect the paper's effect (or show equivalence)")  # fmt: skip
        speed = analysis.throughput(self.swept_rows())
        tables.save_table(speed, "throughput", self.out, shown=tables.throughput_view(speed),
                          title="Rows per hour measured, per sweep and precision (selection, surgery and evaluation on every test image)")  # fmt: skip
        return tables.power_view(power)

    def save_seeds(self, results: Results) -> pd.DataFrame:
        """Save the seeds as a distribution (table and figure); returns the table as shown."""
        seeds = analysis.per_seed(results.rows, results.correct)
        shares = analysis.seed_shares(seeds)
        tables.save_table(seeds, "seeds", self.out, shown=tables.seeds_view(shares),
                          title="Seeds as a distribution: seeds whose own selection escapes (exact paired test, Holm over the seeds) / seeds, the median per-seed escape (points) [distribution-free interval]; †: outlier seeds (robust z > 3)")  # fmt: skip
        from ..report import figures  # (matplotlib: imported where a figure is drawn)

        figures.save_figure(figures.figure_seeds(seeds), "fig_seeds", self.out)
        return tables.seeds_view(shares)

    def save_phase(self, classes, grid=(), n_seeds: int = 0) -> tuple[pd.DataFrame, float | None, float | None]:
        """The phase diagram (`fine_sweep` of `classes`): its table and figure saved; returns
        (its summary, the first S where a class escapes, the S where κ=2 takes over)."""
        phase = self.fine_sweep(classes, grid, n_seeds).summary()
        b1, b2 = analysis.regime_boundaries(phase)
        table, shown = tables.table2(phase)
        tables.save_table(table, "phase", self.out, shown=shown,
                          title="Phase diagram: accuracy (%) / escape (points) [95% CI]; *: significant (Holm)")  # fmt: skip
        from ..report import figures  # (matplotlib: imported where a figure is drawn)

        figures.save_figure(figures.figure_phase(phase), "fig_phase", self.out)
        return phase, b1, b2

    def swept_rows(self) -> pd.DataFrame:
        """The rows this stage's sweeps returned, as `sweep.csv` holds them: the same whatever other
        notebooks have added to the study since, so outputs drawn from them regenerate unchanged."""
        st = self.study
        rows = of_model(read_rows(st.sweep_path), st.trained.ckpt_id, st.n_test)
        return rows[rows["key"].isin(self._rows)].reset_index(drop=True)

    def sweep(self, scorers, sparsities, **kwargs) -> Results:
        """`sweep_grid` over `scorers` (plus the plateau's magnitude), with its per-image results."""
        names = list(dict.fromkeys([PLATEAU_SCORER, *scorers])) if scorers else []
        rows, measured = sweep_grid(self.study, names, sparsities, **kwargs)
        self._rows.update(zip(rows["key"], rows["seconds"], strict=True))
        return Results(rows, load_correct(self.study, rows, measured))

    def fine_sweep(self, scorers, grid=(), n_seeds: int = 0) -> Results:
        """The phase diagram's sweep: over `grid`, else the profile's fine grid
        (`Profile.fine_sparsities`), at `n_seeds`, else the profile's `fine_seeds`."""
        p = self.study.profile
        return self.sweep(scorers, [float(s) for s in grid] or p.fine_sparsities(),
                          n_seeds=n_seeds or p.fine_seeds or None)  # fmt: skip

    def variant(self, suffix: str, unit_params: dict, scorers, sparsities, **kwargs) -> tuple[Results, Stage]:
        """The same sweep with the unit's settings changed (e.g. another token importance), as a
        stage of its own (`<name>_<suffix>`, its own output folder), opened, swept and closed."""
        unit = self.study.unit.name
        other = open_stage(f"{self.name}_{suffix}", self.study.profile.name, self.study.inputs.spec or "",
                           unit=unit, unit_params=unit_params)  # fmt: skip
        result = other.sweep(scorers, sparsities, **kwargs)
        other.close(rows=len(result.rows))
        return result, other

    def close(self, **extra) -> None:
        """Record the stage (its time now, and the evaluation time of its rows whenever they
        were made), save the calibration statistics its scorers computed and pack the results
        bundle, so the outputs regenerate, and the selections rebuild, without recomputing."""
        seconds = time.time() - self.t0
        if self._rows:
            cells = self.swept_rows().groupby(["scorer", "tag", "allocation", "sparsity"])["seed"].nunique()
            extra = {"rows": len(self._rows), "evaluation_seconds": round(float(sum(self._rows.values())), 1),
                     "seeds_per_cell": sorted({int(c) for c in cells}), **extra}  # fmt: skip
        self.study.save_calibration()
        pack_results(self.study)
        _OPEN[:] = [st for st in _OPEN if st is not self]
        provenance.record(self.study.name, self.name, **provenance.stage_info(study_record(self.study), seconds, **extra))
        print(f"[sics] {self.name}: done in {seconds:.0f} s (profile {self.profile}, "
              f"ckpt {self.study.trained.ckpt_id}, rev {provenance.git_revision()})")  # fmt: skip


def open_architecture(name: str, profile: str, arch: str, data: str = "") -> tuple[Stage, str]:
    """(the stage of architecture `arch` studied beside the ViT profile `profile`, that ViT
    profile's name): e.g. `resnet` beside `reference`, `ci_resnet` beside `ci`."""
    vit = resolve_profile(profile).name
    return open_stage(name, architecture_profile(vit, arch), data), vit


def open_stage(name: str, profile: str = "auto", data: str = "", **prepare_kwargs) -> Stage:
    """Prepare the study of `profile` and say how its numbers are made."""
    t0 = time.time()
    study = prepare(profile, data or None, **prepare_kwargs)
    print(provenance.caption(study_record(study)))
    origin = ("trained now" if study.trained.trained_now else
              "committed weights" if study.trained.weights_sha256 else "loaded from the cache")  # fmt: skip
    results = f"; {len(study.bundle)} results in the committed bundle" if study.bundle is not None else ""
    cluster = study.results.cluster
    items = (f"{study.n_test} predicted bytes ({study.n_test // cluster} contexts)" if cluster > 1 else
             f"{study.n_test} test images")  # fmt: skip
    print(f"dense accuracy {study.dense_accuracy:.2%} on {items} ({origin}{results})")
    stage = Stage(name, study, t0)
    _OPEN.append(stage)
    return stage
