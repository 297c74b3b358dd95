"""`make verify`: re-evaluate a random sample of committed results and compare them image by image.

    python -m sics.cli.verify --profile reference [--run K] [--n 10] [--seed 0] [--data PATH] [--precision auto]

`--run K` verifies training run K of the recipe (`figures/<study>/runs/<K>/`; 0, the default, is the
committed study).

Each sampled row's selection is recomputed from the committed weights (its mask hash must equal
the row's), evaluated afresh on the whole test set (no prediction cache, no bundle) and compared
with the bundle's per-image correctness. The dense model is always in the sample, and one
recovery row when there are any.

Which agreement is demanded depends on how far this evaluation is from the bundle's (`rule`):
- *exact*: this machine's fingerprint (CPU model and ISA features, threads, torch build, device,
  precision; `provenance.fingerprint`) is one the bundle records. Same kernels, same order.
- *another machine*, same precision: float reductions run in another order, so a few near-tie
  images flip; up to `MACHINE_TOLERANCE` of a result's images may differ.
- *another precision* (fp32 here against a bf16 bundle): up to `PRECISION_TOLERANCE`.
- *per-image selections* (tokens) on another machine: a near tie in a token's importance can change
  which tokens an image keeps, so up to `SELECTION_TOLERANCE`.
The tolerances are set from flips measured on an AVX2-only CPU against bundles made on another
CPU, with a margin (docs/statistics.md). A broken export or load flips thousands of images.

`--precision auto` evaluates in the bundle's precision where this hardware runs it fast (bf16 on
CUDA or on a CPU with AMX / AVX-512 BF16), else in fp32: emulated bf16 is about 6x slower than
fp32 on an AVX2 CPU. `--precision bf16` forces the bundle's precision, for the tighter check.
"""

from __future__ import annotations

import json
import os
import re
import sys
import time

import numpy as np
import pandas as pd

from .. import provenance
from ..config import resolve_profile
from ..data.registry import batches_of
from ..errors import ParameterError, SicsError
from ..hardware import cpu_has_fast_bf16
from ..models.evaluate import predict_correct
from ..progress import bar as progress_bar
from ..selection.select import mask_hash
from ..study.results import pred_name
from ..study.rows import of_model, read_rows
from ..study.study import Study, prepare
from ..units import get_unit
from .checks import Parser, non_negative, positive

# Fractions of a result's images that may differ from the bundle where it was not made here, each
# about 2.5x the most measured on an AVX2-only CPU against bundles made on another CPU, out of
# 10,000 images (docs/statistics.md): 16 in the same precision (a recovery row; one-shot rows 0-9),
# 29 in fp32 against bf16, and 114 for per-image token selections, which near ties also change.
MACHINE_TOLERANCE = 0.004
PRECISION_TOLERANCE = 0.008
SELECTION_TOLERANCE = 0.03


def sample_rows(study: Study, n: int, seed: int = 0) -> pd.DataFrame:
    """`n` distinct committed selections of this model at random, one recovery row among them."""
    rows = read_rows(study.sweep_path)
    # one folder may hold several settings of a unit (e.g. two token importances); a row without
    # a unit is an MLP-channel row, the paper's unit
    rows = of_model(rows, study.trained.ckpt_id, study.n_test)
    unit = rows["unit"].fillna("mlp_channels") if "unit" in rows else pd.Series("mlp_channels", index=rows.index)
    rows = rows[unit == study.unit.tag]
    rows = rows.assign(_name=[pred_name(r.mask_hash, int(r.recovery_steps), int(r.seed)) for r in rows.itertuples()])
    rows = rows.drop_duplicates("_name").reset_index(drop=True)
    if rows.empty:
        return rows
    rng = np.random.default_rng(seed)
    order = rng.permutation(len(rows))
    recovery = [i for i in order if rows.loc[i, "recovery_steps"] > 0]
    picked = ([recovery[0]] if recovery and n >= 2 else []) + [i for i in order if not recovery or i != recovery[0]]
    return rows.loc[picked[:n]].reset_index(drop=True)


def bundle_precision(study: Study) -> str:
    """The precision the bundle's results were measured in ('bf16' or 'fp32').

    Its fingerprints say so; bundles from before fingerprints only by their `measured_on` labels
    ('..., cpu-bf16'). The profile's precision when neither does.
    """
    meta = study.bundle.meta
    found = {fp["precision"].rsplit("-", 1)[-1] for fp in meta.get("fingerprints") or []}
    found |= {m.group(1) for label in meta.get("measured_on") or [] if (m := re.search(r"-(bf16|fp32)\b", label))}
    found &= {"bf16", "fp32"}
    if len(found) > 1:
        raise SicsError(f"the bundle of {study.name} mixes precisions ({sorted(found)}); verify each alone")
    return found.pop() if found else study.where.precision.rsplit("-", 1)[-1]


def choose_precision(study: Study, asked: str = "auto") -> str:
    """'bf16' or 'fp32': the bundle's precision where it runs fast here (or when asked), else fp32."""
    if asked not in ("auto", "bf16", "fp32"):
        raise ParameterError(f"unknown precision {asked!r}; valid: auto, bf16, fp32")
    if asked != "auto":
        return asked
    wanted = bundle_precision(study)
    fast = study.where.type == "cuda" or cpu_has_fast_bf16()
    # a per-image unit (tokens) selects from activations computed in the evaluation precision:
    # another precision selects other tokens, so only the bundle's can reproduce its rows
    return wanted if wanted == "fp32" or fast or not study.unit.static else "fp32"


def rule(study: Study) -> tuple[str, float]:
    """(which agreement applies to this study's evaluations against its bundle, the tolerance)."""
    here = provenance.fingerprint(study.device, study.where.precision, study.where.emulated_bf16)
    if here in (study.bundle.meta.get("fingerprints") or []):
        return "exact (this machine and build made the bundle)", 0.0
    if not study.unit.static:
        return (f"another machine, per-image selections ({provenance.device_name(study.device)}): up to "
                f"{SELECTION_TOLERANCE:.1%} of a result's images", SELECTION_TOLERANCE)  # fmt: skip
    if study.where.precision.rsplit("-", 1)[-1] != bundle_precision(study):
        return f"another precision ({study.where.precision}): up to {PRECISION_TOLERANCE:.1%} of a result's images", PRECISION_TOLERANCE
    return f"another machine ({provenance.device_name(study.device)}): up to {MACHINE_TOLERANCE:.1%} of a result's images", MACHINE_TOLERANCE


def verify(study: Study, n: int = 10, seed: int = 0, tolerance: float | None = None) -> tuple[pd.DataFrame, bool]:
    """(one line per checked result, whether all agree within the tolerance that applies here:
    `rule`'s, or `tolerance` where given and this is not the machine that made the bundle)."""
    if study.bundle is None:
        raise SicsError(f"profile {study.profile.name} has no results bundle for this model "
                        f"({study.trained.ckpt_id}): nothing to verify")  # fmt: skip
    _, limit = rule(study)
    limit = limit if tolerance is None or limit == 0.0 else tolerance
    dense = study.selection.all_kept()
    checks = [(dict(scorer="dense", sparsity=0.0, seed=0, allocation="block", recovery_steps=0), dense,
               mask_hash(dense))]  # fmt: skip
    for r in sample_rows(study, n, seed).itertuples():
        info = dict(scorer=r.scorer, sparsity=float(r.sparsity), seed=int(r.seed), allocation=r.allocation,
                    recovery_steps=int(r.recovery_steps))  # fmt: skip
        if study.unit.static:  # the selection is a function of the weights: it must be the row's
            checks.append((info, study.selection.row_masks(r), r.mask_hash))
        else:  # selected per image from activations, which another machine computes a little
            # differently: a near-tie image may keep other tokens, and that shows as a flip below
            _, masks = study.masks(r.scorer, float(r.sparsity), int(r.seed), json.loads(r.params), r.allocation)
            checks.append((info, masks, r.mask_hash))
    out = []
    bar = progress_bar(checks, desc="verify", unit="result", disable=not study.progress)
    for info, masks, hash_ in bar:
        steps, seed_ = info["recovery_steps"], info["seed"]
        name = pred_name(hash_, steps, seed_)
        committed = study.bundle.get(name)
        if committed is None:
            raise SicsError(f"the bundle has no result {name} (row {info})")
        t0 = time.time()
        now = study.evaluate(masks, steps, seed_)
        differ = int((now != committed).sum())
        out.append(dict(**info, committed=round(committed.mean() * 100, 2), now=round(now.mean() * 100, 2),
                        same_selection=mask_hash(masks) == hash_, images_differing=differ,
                        ok=differ <= limit * study.n_test,
                        seconds=round(time.time() - t0, 1)))  # fmt: skip
    bar.close()
    table = pd.DataFrame(out)
    return table, bool(table["ok"].all())


def sample_indices(n_test: int, n: int) -> np.ndarray:
    """A fixed, evenly spread sample of `n` test images (every class, no randomness)."""
    return np.unique(np.linspace(0, n_test - 1, min(n, n_test)).round().astype(int))


def check_sample(study: Study, n_images: int = 1000) -> tuple[int, int, float]:
    """The dense model on a fixed sample of test images against the bundle: (images that
    differ, images checked, the tolerance that applies). Seconds, not minutes: it catches a
    broken export or load, which flips a large share of any sample; `verify` is the full check."""
    if not study.unit.static:
        raise ParameterError(f"check_sample is defined for static units, not {study.unit.name!r}")
    committed = study.bundle.get(pred_name(mask_hash(study.selection.all_kept()), 0))
    if committed is None:
        raise SicsError(f"the bundle of {study.name} has no dense result")
    idx = sample_indices(study.n_test, n_images)
    p = study.profile
    test = batches_of(study.data.test_x[idx], study.data.test_y[idx], p, study.device)
    now = predict_correct(study.model, test, p.eval_batch_size, p.eval_precision).cpu().numpy()
    return int((now != committed[idx]).sum()), len(idx), rule(study)[1]


def main(argv: list[str] | None = None) -> int:
    ap = Parser(description=__doc__.splitlines()[0])
    ap.add_argument("--profile", default=os.environ.get("SICS_PROFILE", "auto"))
    ap.add_argument("--data", default="", help="CIFAR-10 source (default: $SICS_DATA or download)")
    ap.add_argument("--unit", default="", help="the study's unit kind (default: the profile's; e.g. tokens)")
    ap.add_argument("--run", type=non_negative, default=0, help="the training run to verify (0: the committed study)")
    ap.add_argument("--n", type=positive, default=10, help="rows to re-evaluate, besides the dense model")
    ap.add_argument("--seed", type=non_negative, default=0, help="seed of the random sample")
    ap.add_argument("--precision", default=os.environ.get("SICS_VERIFY_PRECISION", "auto"),
                    choices=("auto", "bf16", "fp32"), help="auto (the bundle's where it is fast here, else fp32) | bf16 | fp32")
    ap.add_argument("--tolerance", type=float, default=None,
                    help="override the tolerance that applies on another machine or precision")
    args = ap.parse_args(argv)
    try:
        resolve_profile(args.profile)  # an unknown profile or unit is one line, before any model loads
        if args.unit:
            get_unit(args.unit)
        study = prepare(args.profile, args.data or None, unit=args.unit or None, train_seed=args.run)
        chosen = choose_precision(study, args.precision)
        if chosen != study.where.precision.rsplit("-", 1)[-1]:
            study = prepare(study.profile.replace(eval_precision=chosen), args.data or None, unit=args.unit or None)  # keeps the run
        how, _ = rule(study)
        print(f"[sics] verify {study.name}: evaluating in {study.where.precision} on "
              f"{provenance.device_name(study.device)}; rule: {how}", flush=True)  # fmt: skip
        table, ok = verify(study, args.n, args.seed, args.tolerance)
    except SicsError as e:
        print(f"error: {e}", file=sys.stderr)
        return 1
    print(table.to_string(index=False))
    print(f"[sics] verify {study.name}: {int(table['ok'].sum())}/{len(table)} results agree, "
          f"{int(table['images_differing'].sum())} image(s) differ in all (most in one result: "
          f"{int(table['images_differing'].max())} of {study.n_test}); rule: {how} -> "
          f"{'PASS' if ok else 'FAIL'}")  # fmt: skip
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
