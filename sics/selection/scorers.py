"""The scorer registry: name -> (κ class, function(block, S, rng, **params) -> per-channel scores).

A scorer only computes scores; `sics.selection.select` turns scores into masks for every scorer alike.
Parameters are keyword arguments whose defaults are the protocol's. To add a scorer:

    @register("my_scorer", kappa="1", stochastic=True)
    def my_scorer(block: BlockStats, S: float, rng: np.random.Generator, *, lam: float = 0.2):
        phi = np.cos(2 * np.pi * rng.uniform() + 3 * np.pi * block.u)  # any shape in [-1, 1]
        return modulate(block, S, phi[block.rank_order], lam=lam)

and it appears in every notebook's `SCORERS` parameter, the sweeps and the tables: the tables
and figures ask the registry for their groups (`feature_classes()`, `by_kappa(k)`, `kappa0()`,
`non_monotone()`, `baselines()`), which read each scorer's κ, so nothing else needs a new name.
κ "0", "1", "2" and "control" make a feature class; "baseline" a baseline or ablation;
"criterion" a published pruning criterion (`sics.selection.criteria`); "matched" a control drawn
against another scorer's selection (`matched_random`).

A scorer written with array operations along the last axis (as the built-in ones are) may be
registered `batched=True`: it is then called once on a stack of equal-size groups
(`BlockStats.stack`, arrays of shape (groups, H)) and must return the scores each group would get
alone, drawing its random numbers group after group (e.g. `rng.uniform(size=block.batch)`).
Token pruning has 10,000 groups per selection, so this is what makes it fast. Without the flag
a scorer is called once per group.

When you later change what a registered scorer computes (not just how fast), bump its version,
`@register("my_scorer", kappa="1", version=2)`: the version is part of a sweep row's key, so
the rows it made before are recomputed instead of being read back from the cache.

The statistics a scorer reads (`BlockStats`, `with_taylor`) live in `sics.selection.groups`;
the unit kinds compute them from a model (`sics.units`).
"""

from __future__ import annotations

import inspect
import warnings
import zlib
from collections.abc import Callable
from dataclasses import dataclass, field

import numpy as np

from ..errors import ParameterError
from . import features as ft
from .groups import BlockStats, Stacked, equal_groups, is_monotone_in_rank
from .groups import with_taylor as with_taylor

KAPPA_ORDER = ("0", "1", "2", "control", "baseline", "criterion", "matched")
FEATURE_KAPPAS = ("0", "1", "2", "control")  # the feature classes; "baseline" is not one
NON_MONOTONE_KAPPAS = ("1", "2")


@dataclass(frozen=True)
class Scorer:
    name: str
    kappa: str  # "0", "1", "2", "control", "baseline" or "criterion"
    fn: Callable[..., np.ndarray]
    stochastic: bool
    needs_calibration: bool
    defaults: dict = field(default_factory=dict)
    needs: tuple[str, ...] = ()  # calibration statistics it reads (`groups.CALIBRATION_STATS`)
    # a control drawn against another scorer's selection (`select.score_and_select`): called once
    # with every group, that selection and magnitude's, fn(groups, S, rng, target, reference, **params)
    matches: bool = False
    version: int = 1  # bump when what the scorer computes changes: sweep rows are keyed by it
    batched: bool = False  # scores a stack of equal-size groups in one call (see the docstring)
    # as a published pruning criterion (the criteria study): "weight" (reads the weights only),
    # "data" (reads calibration data too) or "reference" (a baseline placed among them); None: not one
    criterion: str | None = None
    c1: bool = False  # in C1's measured family: a weight criterion whose ranking is not magnitude's by construction

    @property
    def role(self) -> str:
        """The scorer's role: "feature" (κ 0, 1, 2 or control), "baseline" (and ablations) or
        "criterion" (published criteria)."""
        if self.kappa in FEATURE_KAPPAS:
            return "feature"
        return "criterion" if self.kappa == "criterion" else "baseline"

    def params(self, overrides: dict | None = None) -> dict:
        """The scorer's parameters: protocol defaults updated by `overrides` (checked)."""
        overrides = dict(overrides or {})
        unknown = set(overrides) - set(self.defaults)
        if unknown:
            raise ParameterError(
                f"scorer {self.name!r} has no parameter(s) {sorted(unknown)}; "
                f"valid: {sorted(self.defaults) or 'none'}"
            )
        return {**self.defaults, **overrides}


SCORERS: dict[str, Scorer] = {}


CRITERION_KINDS = ("weight", "data", "reference")
# kvpress's criteria of the KV-cache unit (`kv_criteria`): listed by `published("kv")` only, since
# they read what only that unit provides (the prefill's scores)
KV_KIND = "kv"
MOE_KIND = "moe"  # the experts unit's routing criteria (`moe_criteria`), `published("moe")`


def register(name: str, kappa: str | int, *, stochastic: bool = False, needs_calibration: bool = False,
             needs: tuple[str, ...] = (), version: int = 1, batched: bool = False,
             matches: bool = False, criterion: str | None = None, c1: bool | None = None):  # fmt: skip
    """Decorator: register `fn` under `name`; its keyword-only defaults become its parameters.

    `criterion` makes it one of the published criteria (`CRITERION_KINDS`), so the criteria study
    and C7 take it up; a "weight" criterion joins C1's measured family unless `c1=False`."""
    kappa = _check_kappa(kappa)
    if criterion is not None and criterion not in (*CRITERION_KINDS, KV_KIND, MOE_KIND):
        raise ParameterError(f"scorer {name!r}: criterion kind must be one of {', '.join(CRITERION_KINDS)}, "
                             f"{KV_KIND}, {MOE_KIND}, got {criterion!r}")  # fmt: skip
    c1 = criterion == "weight" if c1 is None else bool(c1)
    if isinstance(version, bool) or not isinstance(version, int) or version < 1:
        raise ParameterError(f"scorer {name!r}: version must be an integer >= 1, got {version!r}")

    def deco(fn: Callable[..., np.ndarray]) -> Callable[..., np.ndarray]:
        sig = inspect.signature(fn)
        defaults = {k: p.default for k, p in sig.parameters.items() if p.kind is p.KEYWORD_ONLY}
        SCORERS[name] = Scorer(name=name, kappa=kappa, fn=fn, stochastic=stochastic,
                               needs_calibration=needs_calibration, defaults=defaults,
                               needs=tuple(needs), version=version, batched=batched,
                               matches=matches, criterion=criterion, c1=c1)  # fmt: skip
        return fn

    return deco


def _check_kappa(kappa: str | int) -> str:
    k = str(kappa)
    if k not in KAPPA_ORDER:
        raise ParameterError(f"unknown κ class {kappa!r}; valid: {', '.join(KAPPA_ORDER)}")
    return k


# --- groupings, read from each scorer's κ (registration order) -----------------------------


def by_kappa(kappa: str | int) -> list[str]:
    """Names of the registered scorers of one κ class ("0", "1", "2", "control", "baseline",
    "criterion")."""
    k = _check_kappa(kappa)
    return [n for n, s in SCORERS.items() if s.kappa == k]


def feature_classes() -> list[str]:
    """The feature classes (κ 0, 1, 2, control): the paper's nine plus any registered since."""
    return [n for n, s in SCORERS.items() if s.role == "feature"]


def kappa0() -> list[str]:
    """The rank-monotone scorers (κ = 0): they must all select magnitude's channels."""
    return by_kappa("0")


def non_monotone() -> list[str]:
    """The smooth and raw non-monotone classes (κ 1 and 2), without the control."""
    return [n for n, s in SCORERS.items() if s.kappa in NON_MONOTONE_KAPPAS]


def baselines() -> list[str]:
    """Baselines and ablations (κ "baseline": gradient, bump, random, ...)."""
    return by_kappa("baseline")


def criteria() -> list[str]:
    """The published criteria of the channel units (κ "criterion": `sics.selection.criteria`) and
    the adaptive selector; the KV and experts units' are `published("kv")`, `published("moe")`."""
    return [n for n in by_kappa("criterion") if SCORERS[n].criterion not in (KV_KIND, MOE_KIND)]


def published(kind: str | None = None) -> list[str]:
    """The published criteria of the criteria study (registration order: weight, then data, then
    the references), or those of one `kind` (`CRITERION_KINDS`)."""
    kinds = CRITERION_KINDS if kind is None else (kind,)
    return [n for k in kinds for n, s in SCORERS.items() if s.criterion == k]


def c1_family(kind: str | None = None) -> list[str]:
    """C1's measured family: the weight criteria whose ranking is not magnitude's by construction
    (of `kind` "kv": kvpress's score criteria, beside observed attention)."""
    kinds = CRITERION_KINDS if kind is None else (kind,)
    return [n for n, s in SCORERS.items() if s.c1 and s.criterion in kinds]


def get_scorer(name: str) -> Scorer:
    if name not in SCORERS:
        raise ParameterError(f"unknown scorer {name!r}; valid: {', '.join(SCORERS)}")
    return SCORERS[name]


def check_scorers(names) -> list[str]:
    """Validate a list of scorer names (non-empty, all known) and return it as a list."""
    if isinstance(names, str):
        names = [names]
    names = list(names)
    if not names:
        raise ParameterError(f"the scorer list is empty; valid scorers: {', '.join(SCORERS)}")
    for n in names:
        get_scorer(n)
    return names


def params_for(names, **overrides) -> dict[str, dict]:
    """Per-scorer parameters: each scorer gets only the overrides it accepts (λ, aligned, axis...)."""
    return {n: {k: v for k, v in overrides.items() if k in get_scorer(n).defaults} for n in names}


def modulate(block: BlockStats, S: float, phi: np.ndarray, *, lam: float, sigma_e: float = 0.1,
             aligned: bool = True, axis: str = "rank") -> np.ndarray:  # fmt: skip
    """The shared non-monotone form s_c = u_c + λ E(u_c) φ_c.

    `phi` is given per rank position (phi[i] is the value at rank i). With axis="rank" channel c
    reads phi at its rank r_c; with axis="index" it reads phi at its index c, so φ carries no
    information about magnitude. aligned=False replaces the envelope by E ≡ 1.
    """
    if axis == "rank":
        phi_c = np.take_along_axis(np.broadcast_to(phi, block.rank.shape), block.rank, axis=-1)
    elif axis == "index":
        phi_c = phi
    else:
        raise ParameterError(f"axis must be 'rank' or 'index', got {axis!r}")
    env = ft.envelope(block.u, S, sigma_e) if aligned else 1.0
    return block.u + lam * env * phi_c


def _x0(rng: np.random.Generator, block: BlockStats) -> np.ndarray:
    """One chaotic start per group, drawn group after group."""
    return rng.uniform(0.05, 0.95, size=block.batch)


# --- κ = 0: rank-monotone ------------------------------------------------------------------


@register("magnitude", kappa=0, batched=True)
def magnitude(block: BlockStats, S: float, rng: np.random.Generator) -> np.ndarray:
    return block.m


@register("magnitude_sq", kappa=0, batched=True)
def magnitude_sq(block: BlockStats, S: float, rng: np.random.Generator) -> np.ndarray:
    return block.m**2


@register("log_magnitude", kappa=0, batched=True)
def log_magnitude(block: BlockStats, S: float, rng: np.random.Generator) -> np.ndarray:
    with np.errstate(divide="ignore"):
        return np.log(block.m)


# --- κ = 1: smoothed non-monotone ----------------------------------------------------------


@register("logistic_smooth", kappa=1, stochastic=True, batched=True)
def logistic_smooth(block: BlockStats, S: float, rng: np.random.Generator, *, lam: float = 0.2,
                    sigma_e: float = 0.1, aligned: bool = True, axis: str = "rank",
                    r: float = 3.99, width: float = 1 / 50, burn_in: int = 1000) -> np.ndarray:  # fmt: skip
    """Logistic map, Gaussian-filtered along rank (σ_f = width·H), rescaled to [-1, 1]."""
    seq = ft.logistic_sequence(block.H, _x0(rng, block), r=r, burn_in=burn_in)
    phi = ft.rescale(ft.smooth(seq, width * block.H))
    return modulate(block, S, phi, lam=lam, sigma_e=sigma_e, aligned=aligned, axis=axis)


@register("tent_smooth", kappa=1, stochastic=True, batched=True)
def tent_smooth(block: BlockStats, S: float, rng: np.random.Generator, *, lam: float = 0.2,
                sigma_e: float = 0.1, aligned: bool = True, axis: str = "rank",
                mu: float = 1.99, width: float = 1 / 50, burn_in: int = 1000) -> np.ndarray:  # fmt: skip
    seq = ft.tent_sequence(block.H, _x0(rng, block), mu=mu, burn_in=burn_in)
    phi = ft.rescale(ft.smooth(seq, width * block.H))
    return modulate(block, S, phi, lam=lam, sigma_e=sigma_e, aligned=aligned, axis=axis)


@register("sine_smooth", kappa=1, stochastic=True, batched=True)
def sine_smooth(block: BlockStats, S: float, rng: np.random.Generator, *, lam: float = 0.2,
                sigma_e: float = 0.1, aligned: bool = True, axis: str = "rank",
                freq: float = 2.0) -> np.ndarray:  # fmt: skip
    """One low-frequency sinusoid over rank with a seeded phase."""
    grid = np.arange(block.H) / max(1, block.H - 1)
    phi = ft.sinusoid(grid, freq, rng.uniform(0, 2 * np.pi, size=(*block.batch, 1)))
    return modulate(block, S, phi, lam=lam, sigma_e=sigma_e, aligned=aligned, axis=axis)


# --- κ = 2: raw non-monotone ---------------------------------------------------------------


@register("logistic_raw", kappa=2, stochastic=True, batched=True)
def logistic_raw(block: BlockStats, S: float, rng: np.random.Generator, *, lam: float = 0.2,
                 sigma_e: float = 0.1, aligned: bool = True, axis: str = "rank",
                 r: float = 3.99, burn_in: int = 1000) -> np.ndarray:  # fmt: skip
    phi = ft.rescale(ft.logistic_sequence(block.H, _x0(rng, block), r=r, burn_in=burn_in))
    return modulate(block, S, phi, lam=lam, sigma_e=sigma_e, aligned=aligned, axis=axis)


@register("tent_raw", kappa=2, stochastic=True, batched=True)
def tent_raw(block: BlockStats, S: float, rng: np.random.Generator, *, lam: float = 0.2,
             sigma_e: float = 0.1, aligned: bool = True, axis: str = "rank",
             mu: float = 1.99, burn_in: int = 1000) -> np.ndarray:  # fmt: skip
    phi = ft.rescale(ft.tent_sequence(block.H, _x0(rng, block), mu=mu, burn_in=burn_in))
    return modulate(block, S, phi, lam=lam, sigma_e=sigma_e, aligned=aligned, axis=axis)


# --- control -------------------------------------------------------------------------------


@register("fake_nonmonotone", kappa="control", batched=True)
def fake_nonmonotone(block: BlockStats, S: float, rng: np.random.Generator, *, lam: float = 0.2,
                     sigma_e: float = 0.1, aligned: bool = True, F: float = 20.0) -> np.ndarray:  # fmt: skip
    """φ_c = sin(2π F m̃_c): non-monotone, but a deterministic function of the magnitude."""
    m_tilde = ft.rescale(block.m) * 0.5 + 0.5
    phi_c = np.sin(2 * np.pi * F * m_tilde)
    return modulate(block, S, phi_c, lam=lam, sigma_e=sigma_e, aligned=aligned, axis="index")


# --- baselines and ablations ---------------------------------------------------------------


@register("gradient", kappa="baseline", stochastic=True, needs_calibration=True, batched=True,
          criterion="reference")  # fmt: skip
def gradient(block: BlockStats, S: float, rng: np.random.Generator) -> np.ndarray:
    """First-order Taylor importance on a seeded calibration subset (see `taylor_importance`)."""
    if block.taylor is None:
        raise ParameterError("scorer 'gradient' needs calibration data (taylor importance)")
    return block.taylor


@register("bump", kappa="baseline", batched=True)
def bump(block: BlockStats, S: float, rng: np.random.Generator, *, lam: float = 0.2,
         sigma_b: float = 0.05) -> np.ndarray:  # fmt: skip
    """Handcrafted Gaussian bump centred just below the cut (S - σ_b), no envelope."""
    return block.u + lam * ft.envelope(block.u, S - sigma_b, sigma_b)


@register("random", kappa="baseline", stochastic=True, batched=True, criterion="reference")
def random(block: BlockStats, S: float, rng: np.random.Generator) -> np.ndarray:
    return rng.random(block.m.shape)


# The protocol's nine feature classes, in table order (docs/protocol.md). Kept for the
# paper-shaped tests; code that groups scorers asks `feature_classes()` and friends instead, so
# a scorer registered later is not left out. A test checks it equals `feature_classes()` as
# registered at import.
NINE = (
    "magnitude", "magnitude_sq", "log_magnitude",
    "logistic_smooth", "tent_smooth", "sine_smooth",
    "logistic_raw", "tent_raw",
    "fake_nonmonotone",
)  # fmt: skip


# --- applying scorers to a model -----------------------------------------------------------


def scorer_rng(name: str, seed: int) -> np.random.Generator:
    """Independent, reproducible stream per (scorer, seed)."""
    return np.random.default_rng([seed, zlib.crc32(name.encode())])


def score_blocks(stats: list[BlockStats], name: str, S: float, seed: int = 0,
                 params: dict | None = None) -> list[np.ndarray]:  # fmt: skip
    """Scores of every block for one scorer; warns when a non-monotone class came out monotone.

    A `batched` scorer scores equal-size groups in one call on their stack (the same scores,
    group by group, as one call per group); any other is called once per group.
    """
    scorer = get_scorer(name)
    kwargs = scorer.params(params)
    rng = scorer_rng(name, seed)
    if scorer.batched and equal_groups(stats):
        batch = BlockStats.stack(stats)
        raw = np.asarray(scorer.fn(batch, S, rng, **kwargs), dtype=np.float64)
        _check_scores(name, raw, batch)
        scores = Stacked(list(raw), raw)
        monotone = is_monotone_in_rank(raw, batch)
    else:
        scores = []
        for block in stats:
            s = np.asarray(scorer.fn(block, S, rng, **kwargs), dtype=np.float64)
            _check_scores(name, s, block)
            scores.append(s)
        monotone = all(is_monotone_in_rank(s, b) for s, b in zip(scores, stats))
    if scorer.kappa in NON_MONOTONE_KAPPAS and monotone:
        warnings.warn(f"scorer {name!r} with {kwargs} is monotone in rank at S={S}: its selection "
                      "is exactly magnitude's (λ/σ_E below √e?)", stacklevel=2)  # fmt: skip
    return scores


def _check_scores(name: str, s: np.ndarray, block: BlockStats) -> None:
    if s.shape != block.m.shape or np.isnan(s).any():
        raise ParameterError(f"scorer {name!r} gave {s.shape} scores with NaN={np.isnan(s).any()} "
                             f"for a block of H={block.H}")  # fmt: skip
