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

from .blocks import BlockStats, block_stats, taylor_importance, with_taylor
from .complexity import kappa_hat
from .config import Profile, pick_device, resolve_profile
from .data import Cifar10, DeviceBatches, load_cifar10
from .errors import ParameterError, SicsError
from .evaluate import precision, predict_correct
from .io import atomic_write, stable_hash
from .paths import cache_dir, figures_dir
from .progress import bar as progress_bar
from .progress import enabled as progress_enabled
from .provenance import git_revision
from .prune import ALLOCATIONS, check_sparsity, jaccard, mask_hash, overlap, select, sliced
from .scorers import check_scorers, get_scorer, score_blocks
from .train import Trained, fine_tune, train_or_load

COLUMNS = [
    "scorer", "kappa", "kappa_hat", "hf_share", "sparsity", "seed", "accuracy", "n_test",
    "mask_hash", "overlap_magnitude", "jaccard_magnitude", "kept", "allocation", "recovery_steps",
    "params", "tag", "profile", "ckpt_id", "data", "device", "git_rev", "seconds", "key",
    "n_calib", "scorer_version",
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
    earlier one ranks higher, as `prune.select` keeps the earlier one).
    """
    m = np.concatenate([b.m for b in stats])
    has_taylor = all(b.taylor is not None for b in stats)
    taylor = np.concatenate([b.taylor for b in stats]) if has_taylor else None
    return BlockStats.from_magnitudes(-1, m, taylor)


def scoring_groups(stats: list[BlockStats], allocation: str) -> list[BlockStats]:
    """The groups a scorer scores: every block apart ("block"), or one pooled group ("global")."""
    if allocation == "block":
        return list(stats)
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
    """The trained dense model and everything the sweeps share (built once per notebook)."""

    profile: Profile
    device: torch.device
    data: Cifar10
    trained: Trained
    test: DeviceBatches
    stats: list[BlockStats]
    progress: bool = True
    _taylor: dict = field(default_factory=dict)
    _magnitude_masks: dict = field(default_factory=dict)
    _dense: np.ndarray | None = None

    @property
    def sweep_path(self) -> Path:
        return figures_dir(self.profile.name) / "sweep.csv"

    @property
    def model(self) -> torch.nn.Module:
        return self.trained.model

    def taylor(self, seed: int) -> list[np.ndarray]:
        """Taylor importance on a calibration subset drawn with `seed` (cached per seed)."""
        if seed not in self._taylor:
            g = torch.Generator().manual_seed(10_000 + seed)
            idx = torch.randperm(len(self.data.train_y), generator=g)[: self.profile.n_calib]
            calib = DeviceBatches(self.data.train_x[idx], self.data.train_y[idx], device=self.device,
                                  mean=self.profile.mean, std=self.profile.std,
                                  img_size=self.profile.img_size)  # fmt: skip
            x = calib.prepare(calib.x)
            self._taylor[seed] = taylor_importance(self.model, x, calib.y)
        return self._taylor[seed]

    def stats_for(self, scorer: str, seed: int) -> list[BlockStats]:
        return with_taylor(self.stats, self.taylor(seed)) if get_scorer(scorer).needs_calibration else self.stats

    def masks(self, scorer: str, S: float, seed: int = 0, params: dict | None = None,
              allocation: str = "block") -> tuple[list[np.ndarray], list[np.ndarray]]:  # fmt: skip
        """(per-block scores, keep-masks) of one scorer at sparsity S (see `score_and_select`)."""
        return score_and_select(self.stats_for(scorer, seed), scorer, S, seed, params, allocation)

    def magnitude_masks(self, S: float, allocation: str) -> list[np.ndarray]:
        key = (S, allocation)
        if key not in self._magnitude_masks:
            self._magnitude_masks[key] = self.masks("magnitude", S, allocation=allocation)[1]
        return self._magnitude_masks[key]

    def _pred_path(self, hash_: str, recovery_steps: int, seed: int = 0) -> Path:
        folder = f"{self.trained.ckpt_id}-n{len(self.test)}-{precision(self.device)}"
        name = f"{hash_}-r{recovery_steps}" + (f"-s{seed}" if recovery_steps else "")
        return cache_dir() / "preds" / folder / f"{name}.npy"

    def _cached(self, path: Path) -> np.ndarray | None:
        """The cached per-image correctness at `path`; None (with a warning) if it is damaged."""
        if not path.exists():
            return None
        try:
            out = np.load(path, allow_pickle=False)
            if out.dtype != np.bool_ or out.shape != (len(self.test),):
                raise ValueError(f"{out.dtype} array of shape {out.shape}")
            return out
        except Exception as e:
            warnings.warn(f"prediction cache {str(path)!r} is damaged ({type(e).__name__}); "
                          "recomputing it", stacklevel=3)  # fmt: skip
            path.unlink(missing_ok=True)
            return None

    def correct(self, masks: list[np.ndarray], recovery_steps: int = 0, seed: int = 0) -> np.ndarray:
        """Per-image correctness of the pruned model, cached on disk by mask hash.

        With `recovery_steps` the sliced model is first fine-tuned with `seed` (the row's seed).
        """
        path = self._pred_path(mask_hash(masks), recovery_steps, seed)
        cached = self._cached(path)
        if cached is not None:
            return cached
        model = sliced(self.model, masks)
        if recovery_steps:
            fine_tune(model, self.profile, self.data, self.device, steps=recovery_steps, seed=seed)
        out = predict_correct(model, self.test, self.profile.eval_batch_size).cpu().numpy()
        atomic_write(path, lambda p: p.write_bytes(_npy_bytes(out)))
        return out

    def correct_for_row(self, row) -> np.ndarray:
        """Per-image correctness behind a sweep row (from the cache, else recomputed).

        A recomputed selection must have the row's mask hash; if not, the row is stale (the
        model or the scorer's code changed since it was written) and StaleRowError says so.
        """
        steps, seed = int(row.recovery_steps), int(row.seed)
        cached = self._cached(self._pred_path(row.mask_hash, steps, seed))
        if cached is not None:
            return cached
        params = json.loads(row.params)
        _, masks = self.masks(row.scorer, float(row.sparsity), seed, params, row.allocation)
        if mask_hash(masks) != row.mask_hash:
            raise StaleRowError(
                f"sweep row {row.scorer} S={row.sparsity} seed={seed} ({row.allocation}) is stale: "
                f"it records mask {row.mask_hash}, the current model and scorer select "
                f"{mask_hash(masks)}; bump the scorer's version (or delete {self.sweep_path}) "
                "and rerun the sweep"
            )
        return self.correct(masks, steps, seed)

    def dense_correct(self) -> np.ndarray:
        """Per-image correctness of the unpruned model on this study's test set (bool array).

        Measured here, not read from the checkpoint (whose accuracy is on the test set in force
        at training time), and cached like any selection: all channels kept.
        """
        if self._dense is None:
            self._dense = self.correct([np.ones(b.H, dtype=bool) for b in self.stats])
        return self._dense

    @property
    def dense_accuracy(self) -> float:
        """Top-1 accuracy of the unpruned model on this study's test set, as a fraction."""
        return float(self.dense_correct().mean())


def _npy_bytes(arr: np.ndarray) -> bytes:
    buf = io.BytesIO()
    np.save(buf, arr, allow_pickle=False)
    return buf.getvalue()


def prepare(profile: str | Profile = "auto", data: str | None = None, *, device: str | None = None,
            weights: str | None = None, progress: bool | None = None, **overrides) -> Study:  # fmt: skip
    """Resolve the profile, load data, and train or load the dense model (cached).

    Progress bars are on unless `progress=False`, `CI` is set, or `SICS_PROGRESS=0`.
    """
    if progress is None:
        progress = progress_enabled()
    prof = profile if isinstance(profile, Profile) else resolve_profile(profile, **overrides)
    dev = pick_device(device)
    full = load_cifar10(data)
    ds = full.subset(prof.n_train, prof.n_test)
    trained = train_or_load(prof, ds, dev, weights=weights, progress=progress)
    test = DeviceBatches(ds.test_x, ds.test_y, device=dev, mean=prof.mean, std=prof.std,
                         img_size=prof.img_size)  # fmt: skip
    return Study(profile=prof, device=dev, data=ds, trained=trained, test=test,
                 stats=block_stats(trained.model), progress=progress)  # fmt: skip


def seeds_for(scorer: str, n_seeds: int) -> list[int]:
    """Deterministic scorers run once (seed 0); stochastic ones over n_seeds seeds."""
    return list(range(n_seeds)) if get_scorer(scorer).stochastic else [0]


def row_key(study: Study, scorer: str, S: float, seed: int, params: dict, allocation: str,
            recovery_steps: int) -> str:  # fmt: skip
    return stable_hash(dict(ckpt=study.trained.ckpt_id, n_test=len(study.test), scorer=scorer,
                            params=get_scorer(scorer).params(params), S=round(S, 6), seed=seed,
                            allocation=allocation, recovery=recovery_steps,
                            n_calib=study.profile.n_calib, version=scorer_version(scorer)))  # fmt: skip


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
            profile=study.profile.name, ckpt_id=study.trained.ckpt_id, data=study.data.source,
            device=str(study.device), git_rev=rev, seconds=round(time.time() - t0, 3), key=key,
            n_calib=study.profile.n_calib, scorer_version=scorer_version(sc),
        ))  # fmt: skip
        bar.update()
    bar.close()
    done = read_rows(path)  # typed as a reader of sweep.csv sees it, with any other run's rows
    result = done[done["key"].isin(set(keys))].copy()
    return result.reset_index(drop=True)
