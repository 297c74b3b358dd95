"""The scorer registry: name -> (κ class, function(block, S, rng, **params) -> per-channel scores).

A scorer only computes scores; `sics.prune` turns scores into masks for every scorer alike.
Parameters are keyword arguments whose defaults are the protocol's. To add a scorer:

    @register("my_scorer", kappa="1", stochastic=True)
    def my_scorer(block: BlockStats, S: float, rng: np.random.Generator, *, lam: float = 0.2):
        phi = np.cos(2 * np.pi * rng.uniform() + 3 * np.pi * block.u)  # any shape in [-1, 1]
        return modulate(block, S, phi[block.rank_order], lam=lam)

and it appears in every notebook's `SCORERS` parameter, the sweeps and the tables.
"""

from __future__ import annotations

import inspect
import warnings
import zlib
from collections.abc import Callable
from dataclasses import dataclass, field

import numpy as np
import torch
from torch import nn

from . import features as ft
from .errors import ParameterError
from .models import mlp_blocks

KAPPA_ORDER = ("0", "1", "2", "control", "baseline")


@dataclass(frozen=True)
class BlockStats:
    """What a scorer may look at for one block's H MLP hidden channels."""

    index: int
    m: np.ndarray  # L2 norm of [fc1 row c, fc2 column c], float64
    rank: np.ndarray  # ascending rank of m (ties by channel index), 0 .. H-1
    taylor: np.ndarray | None = None  # first-order Taylor importance (calibration), if computed

    @property
    def H(self) -> int:
        return len(self.m)

    @property
    def u(self) -> np.ndarray:
        """Normalised rank u_c = r_c / (H - 1) in [0, 1]."""
        return self.rank / max(1, self.H - 1)

    @property
    def rank_order(self) -> np.ndarray:
        """Channel indices sorted by ascending rank: `phi[rank]` reads phi at each channel's rank."""
        return np.argsort(self.rank, kind="stable")


@dataclass(frozen=True)
class Scorer:
    name: str
    kappa: str  # "0", "1", "2", "control" or "baseline"
    fn: Callable[..., np.ndarray]
    stochastic: bool
    needs_calibration: bool
    defaults: dict = field(default_factory=dict)

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

# The nine feature classes of the paper, in table order; the others are baselines/ablations.
NINE = (
    "magnitude", "magnitude_sq", "log_magnitude",
    "logistic_smooth", "tent_smooth", "sine_smooth",
    "logistic_raw", "tent_raw",
    "fake_nonmonotone",
)  # fmt: skip


def register(name: str, kappa: str | int, *, stochastic: bool = False, needs_calibration: bool = False):
    """Decorator: register `fn` under `name`; its keyword-only defaults become its parameters."""

    def deco(fn: Callable[..., np.ndarray]) -> Callable[..., np.ndarray]:
        sig = inspect.signature(fn)
        defaults = {k: p.default for k, p in sig.parameters.items() if p.kind is p.KEYWORD_ONLY}
        SCORERS[name] = Scorer(name, str(kappa), fn, stochastic, needs_calibration, defaults)
        return fn

    return deco


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
        phi_c = phi[block.rank]
    elif axis == "index":
        phi_c = phi
    else:
        raise ParameterError(f"axis must be 'rank' or 'index', got {axis!r}")
    env = ft.envelope(block.u, S, sigma_e) if aligned else 1.0
    return block.u + lam * env * phi_c


def _x0(rng: np.random.Generator) -> float:
    return float(rng.uniform(0.05, 0.95))


# --- κ = 0: rank-monotone ------------------------------------------------------------------


@register("magnitude", kappa=0)
def magnitude(block: BlockStats, S: float, rng: np.random.Generator) -> np.ndarray:
    return block.m


@register("magnitude_sq", kappa=0)
def magnitude_sq(block: BlockStats, S: float, rng: np.random.Generator) -> np.ndarray:
    return block.m**2


@register("log_magnitude", kappa=0)
def log_magnitude(block: BlockStats, S: float, rng: np.random.Generator) -> np.ndarray:
    with np.errstate(divide="ignore"):
        return np.log(block.m)


# --- κ = 1: smoothed non-monotone ----------------------------------------------------------


@register("logistic_smooth", kappa=1, stochastic=True)
def logistic_smooth(block: BlockStats, S: float, rng: np.random.Generator, *, lam: float = 0.2,
                    sigma_e: float = 0.1, aligned: bool = True, axis: str = "rank",
                    r: float = 3.99, width: float = 1 / 50, burn_in: int = 1000) -> np.ndarray:  # fmt: skip
    """Logistic map, Gaussian-filtered along rank (σ_f = width·H), rescaled to [-1, 1]."""
    seq = ft.logistic_sequence(block.H, _x0(rng), r=r, burn_in=burn_in)
    phi = ft.rescale(ft.smooth(seq, width * block.H))
    return modulate(block, S, phi, lam=lam, sigma_e=sigma_e, aligned=aligned, axis=axis)


@register("tent_smooth", kappa=1, stochastic=True)
def tent_smooth(block: BlockStats, S: float, rng: np.random.Generator, *, lam: float = 0.2,
                sigma_e: float = 0.1, aligned: bool = True, axis: str = "rank",
                mu: float = 1.99, width: float = 1 / 50, burn_in: int = 1000) -> np.ndarray:  # fmt: skip
    seq = ft.tent_sequence(block.H, _x0(rng), mu=mu, burn_in=burn_in)
    phi = ft.rescale(ft.smooth(seq, width * block.H))
    return modulate(block, S, phi, lam=lam, sigma_e=sigma_e, aligned=aligned, axis=axis)


@register("sine_smooth", kappa=1, stochastic=True)
def sine_smooth(block: BlockStats, S: float, rng: np.random.Generator, *, lam: float = 0.2,
                sigma_e: float = 0.1, aligned: bool = True, axis: str = "rank",
                freq: float = 2.0) -> np.ndarray:  # fmt: skip
    """One low-frequency sinusoid over rank with a seeded phase."""
    grid = np.arange(block.H) / max(1, block.H - 1)
    phi = ft.sinusoid(grid, freq, float(rng.uniform(0, 2 * np.pi)))
    return modulate(block, S, phi, lam=lam, sigma_e=sigma_e, aligned=aligned, axis=axis)


# --- κ = 2: raw non-monotone ---------------------------------------------------------------


@register("logistic_raw", kappa=2, stochastic=True)
def logistic_raw(block: BlockStats, S: float, rng: np.random.Generator, *, lam: float = 0.2,
                 sigma_e: float = 0.1, aligned: bool = True, axis: str = "rank",
                 r: float = 3.99, burn_in: int = 1000) -> np.ndarray:  # fmt: skip
    phi = ft.rescale(ft.logistic_sequence(block.H, _x0(rng), r=r, burn_in=burn_in))
    return modulate(block, S, phi, lam=lam, sigma_e=sigma_e, aligned=aligned, axis=axis)


@register("tent_raw", kappa=2, stochastic=True)
def tent_raw(block: BlockStats, S: float, rng: np.random.Generator, *, lam: float = 0.2,
             sigma_e: float = 0.1, aligned: bool = True, axis: str = "rank",
             mu: float = 1.99, burn_in: int = 1000) -> np.ndarray:  # fmt: skip
    phi = ft.rescale(ft.tent_sequence(block.H, _x0(rng), mu=mu, burn_in=burn_in))
    return modulate(block, S, phi, lam=lam, sigma_e=sigma_e, aligned=aligned, axis=axis)


# --- control -------------------------------------------------------------------------------


@register("fake_nonmonotone", kappa="control")
def fake_nonmonotone(block: BlockStats, S: float, rng: np.random.Generator, *, lam: float = 0.2,
                     sigma_e: float = 0.1, aligned: bool = True, F: float = 20.0) -> np.ndarray:  # fmt: skip
    """φ_c = sin(2π F m̃_c): non-monotone, but a deterministic function of the magnitude."""
    m_tilde = ft.rescale(block.m) * 0.5 + 0.5
    phi_c = np.sin(2 * np.pi * F * m_tilde)
    return modulate(block, S, phi_c, lam=lam, sigma_e=sigma_e, aligned=aligned, axis="index")


# --- baselines and ablations ---------------------------------------------------------------


@register("gradient", kappa="baseline", stochastic=True, needs_calibration=True)
def gradient(block: BlockStats, S: float, rng: np.random.Generator) -> np.ndarray:
    """First-order Taylor importance on a seeded calibration subset (see `taylor_importance`)."""
    if block.taylor is None:
        raise ParameterError("scorer 'gradient' needs calibration data (taylor importance)")
    return block.taylor


@register("bump", kappa="baseline")
def bump(block: BlockStats, S: float, rng: np.random.Generator, *, lam: float = 0.2,
         sigma_b: float = 0.05) -> np.ndarray:  # fmt: skip
    """Handcrafted Gaussian bump centred just below the cut (S - σ_b), no envelope."""
    return block.u + lam * ft.envelope(block.u, S - sigma_b, sigma_b)


@register("random", kappa="baseline", stochastic=True)
def random(block: BlockStats, S: float, rng: np.random.Generator) -> np.ndarray:
    return rng.random(block.H)


# --- applying scorers to a model -----------------------------------------------------------


def block_stats(model: nn.Module) -> list[BlockStats]:
    """m_c and its rank for every block, from fc1 rows and fc2 columns (float64)."""
    out = []
    for i, mlp in enumerate(mlp_blocks(model)):
        w1 = mlp.fc1.weight.detach().double().cpu()
        w2 = mlp.fc2.weight.detach().double().cpu()
        m = torch.sqrt((w1**2).sum(1) + (w2**2).sum(0)).numpy()
        order = np.argsort(m, kind="stable")
        rank = np.empty(len(m), dtype=np.int64)
        rank[order] = np.arange(len(m))
        out.append(BlockStats(i, m, rank))
    return out


def with_taylor(stats: list[BlockStats], taylor: list[np.ndarray]) -> list[BlockStats]:
    return [BlockStats(b.index, b.m, b.rank, t) for b, t in zip(stats, taylor, strict=True)]


def taylor_importance(model: nn.Module, x: torch.Tensor, y: torch.Tensor, batch_size: int = 64) -> list[np.ndarray]:
    """I_c = Σ_batches (Σ_{samples, tokens} a_c · ∂L/∂a_c)^2, a_c the post-GELU activation."""
    acts: dict[int, torch.Tensor] = {}

    def hook(i):
        def f(_module, _inp, out):
            out.retain_grad()
            acts[i] = out

        return f

    handles = [mlp.act.register_forward_hook(hook(i)) for i, mlp in enumerate(mlp_blocks(model))]
    was_training = model.training
    model.eval()
    total = [torch.zeros(mlp.fc1.out_features, dtype=torch.float64, device=x.device)
             for mlp in mlp_blocks(model)]  # fmt: skip
    try:
        for s in range(0, len(y), batch_size):
            model.zero_grad(set_to_none=True)
            loss = torch.nn.functional.cross_entropy(model(x[s : s + batch_size]), y[s : s + batch_size])
            loss.backward()
            for i, a in acts.items():
                total[i] += ((a.detach() * a.grad).sum(dim=tuple(range(a.dim() - 1))).double()) ** 2
    finally:
        for h in handles:
            h.remove()
        model.zero_grad(set_to_none=True)
        model.train(was_training)
    return [t.cpu().numpy() for t in total]


def scorer_rng(name: str, seed: int) -> np.random.Generator:
    """Independent, reproducible stream per (scorer, seed)."""
    return np.random.default_rng([seed, zlib.crc32(name.encode())])


def score_blocks(stats: list[BlockStats], name: str, S: float, seed: int = 0,
                 params: dict | None = None) -> list[np.ndarray]:  # fmt: skip
    """Scores of every block for one scorer; warns when a non-monotone class came out monotone."""
    from .complexity import is_monotone_in_rank

    scorer = get_scorer(name)
    kwargs = scorer.params(params)
    rng = scorer_rng(name, seed)
    scores = []
    for block in stats:
        s = np.asarray(scorer.fn(block, S, rng, **kwargs), dtype=np.float64)
        if s.shape != (block.H,) or np.isnan(s).any():
            raise ParameterError(f"scorer {name!r} gave {s.shape} scores with NaN={np.isnan(s).any()} "
                                 f"for a block of H={block.H}")  # fmt: skip
        scores.append(s)
    if scorer.kappa in ("1", "2") and all(is_monotone_in_rank(s, b) for s, b in zip(scores, stats)):
        warnings.warn(f"scorer {name!r} with {kwargs} is monotone in rank at S={S}: its selection "
                      "is exactly magnitude's (λ/σ_E below √e?)", stacklevel=2)  # fmt: skip
    return scores
