"""`make verify`: re-evaluate a random sample of committed results and compare them image by image.

    python -m sics.verify --profile reference [--n 10] [--seed 0] [--data PATH] [--tolerance 0.002]

Each sampled row's selection is recomputed from the committed weights (its mask hash must equal
the row's), evaluated afresh on the test set (no prediction cache, no bundle) and compared with
the bundle's per-image correctness. The dense model is always in the sample, and one recovery
row when there are any. On a machine and precision the bundle records in `measured_on` the
agreement must be exact. Elsewhere (another CPU, a GPU, another torch build) float reductions run
in another order, so a few near-tie images may flip: up to `tolerance` of a row's images (default
0.2%) may differ there, and more is a failure.
"""

from __future__ import annotations

import argparse
import os
import sys
import time

import numpy as np
import pandas as pd

from . import provenance
from .errors import SicsError
from .progress import bar as progress_bar
from .prune import mask_hash
from .sweep import Study, pred_name, prepare, read_rows


def sample_rows(study: Study, n: int, seed: int = 0) -> pd.DataFrame:
    """`n` distinct committed selections of this model at random, one recovery row among them."""
    rows = read_rows(study.sweep_path)
    rows = rows[(rows["ckpt_id"] == study.trained.ckpt_id) & (rows["n_test"] == study.n_test)]
    rows = rows.assign(_name=[pred_name(r.mask_hash, int(r.recovery_steps), int(r.seed)) for r in rows.itertuples()])
    rows = rows.drop_duplicates("_name").reset_index(drop=True)
    if rows.empty:
        return rows
    rng = np.random.default_rng(seed)
    order = rng.permutation(len(rows))
    recovery = [i for i in order if rows.loc[i, "recovery_steps"] > 0]
    picked = ([recovery[0]] if recovery and n >= 2 else []) + [i for i in order if not recovery or i != recovery[0]]
    return rows.loc[picked[:n]].reset_index(drop=True)


def exact_here(study: Study) -> bool:
    """Whether this machine and precision made (part of) the bundle: agreement must be exact."""
    return provenance.measured_here(study) in (study.bundle.meta.get("measured_on") or [])


def verify(study: Study, n: int = 10, seed: int = 0, tolerance: float = 0.002) -> tuple[pd.DataFrame, bool]:
    """(one line per checked result, whether all agree within the tolerance that applies here)."""
    if study.bundle is None:
        raise SicsError(f"profile {study.profile.name} has no results bundle for this model "
                        f"({study.trained.ckpt_id}): nothing to verify")  # fmt: skip
    limit = 0.0 if exact_here(study) else tolerance
    checks = [(dict(scorer="dense", sparsity=0.0, seed=0, allocation="block", recovery_steps=0), study.all_kept())]
    for r in sample_rows(study, n, seed).itertuples():
        info = dict(scorer=r.scorer, sparsity=float(r.sparsity), seed=int(r.seed), allocation=r.allocation,
                    recovery_steps=int(r.recovery_steps))  # fmt: skip
        checks.append((info, study.row_masks(r)))
    out = []
    bar = progress_bar(checks, desc="verify", unit="result", disable=not study.progress)
    for info, masks in bar:
        steps, seed_ = info["recovery_steps"], info["seed"]
        name = pred_name(mask_hash(masks), steps, seed_)
        committed = study.bundle.get(name)
        if committed is None:
            raise SicsError(f"the bundle has no result {name} (row {info})")
        t0 = time.time()
        now = study.evaluate(masks, steps, seed_)
        differ = int((now != committed).sum())
        out.append(dict(**info, committed=round(committed.mean() * 100, 2), now=round(now.mean() * 100, 2),
                        images_differing=differ, ok=differ <= limit * study.n_test,
                        seconds=round(time.time() - t0, 1)))  # fmt: skip
    bar.close()
    table = pd.DataFrame(out)
    return table, bool(table["ok"].all())


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--profile", default=os.environ.get("SICS_PROFILE", "auto"))
    ap.add_argument("--data", default="", help="CIFAR-10 source (default: $SICS_DATA or download)")
    ap.add_argument("--n", type=int, default=10, help="rows to re-evaluate, besides the dense model")
    ap.add_argument("--seed", type=int, default=0, help="seed of the random sample")
    ap.add_argument("--tolerance", type=float, default=0.002,
                    help="fraction of a row's images that may differ on another machine or precision")
    args = ap.parse_args(argv)
    try:
        study = prepare(args.profile, args.data or None)
        table, ok = verify(study, args.n, args.seed, args.tolerance)
    except SicsError as e:
        print(f"error: {e}", file=sys.stderr)
        return 1
    print(table.to_string(index=False))
    here = provenance.measured_here(study)
    rule = "exact agreement (this machine and precision made the bundle)" if exact_here(study) else (
        f"up to {args.tolerance:.1%} of the images per result ({here} did not make the bundle)")
    print(f"[sics] verify {study.profile.name}: {int(table['ok'].sum())}/{len(table)} results agree, "
          f"{int(table['images_differing'].sum())} image(s) differ in all; rule: {rule} -> "
          f"{'PASS' if ok else 'FAIL'}")  # fmt: skip
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
