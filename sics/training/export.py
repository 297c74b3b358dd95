"""Train a profile's dense model (or resume it) and export its weights beside its outputs.

    python -m sics.training.export --profile reference [--data PATH] [--run K]
    python -m sics.training.export --profile scratch --dtype bf16 --shard-mb 15

The export is what later runs load instead of training (`sics.training.weights`): one fp32 safetensors
file for the CPU-trained models, or bf16 shards under a size limit for a model trained on a lent
GPU machine, whose files must come back through a 16 MB-per-file channel. The studies then run
on the exported weights, so the results measure the model that is shipped.
"""

from __future__ import annotations

import argparse
import json
import os
import sys

from ..config import pick_device, resolve_profile
from ..data.registry import batches_of, load_data
from ..errors import SicsError
from . import weights
from .checkpoints import export_weights, resolved_recipe, train_or_load


def export(profile: str, data: str | None = None, *, dtype: str = "fp32", shard_mb: float | None = None,
           progress: bool = True, run: int = 0) -> dict:  # fmt: skip
    """Train run `run` of the profile's recipe (`train_seed = run`), or load it from the cache, and
    export it to `sics.paths.run_dir`; returns the weights' record."""
    p = resolve_profile(profile, train_seed=run)
    if weights.present(p.name, run) and not weights.retrain_requested():
        raise SicsError(f"{weights.paths(p.name, run)[1].parent} already holds committed weights; "
                        "move them away (or RETRAIN=1) to export new ones")  # fmt: skip
    d = load_data(p, data)
    device = pick_device()
    t = train_or_load(p, d, device, progress=progress)
    test = batches_of(d.test_x, d.test_y, p, device)
    export_weights(t, p, d.source, dtype=dtype, shard_mb=shard_mb, test=test,
                   recipe=resolved_recipe(p, device, d.source_id))  # fmt: skip
    return json.loads(weights.paths(p.name, run)[1].read_text())


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--profile", default=os.environ.get("SICS_PROFILE", "auto"))
    ap.add_argument("--data", default="", help="CIFAR-10 source (default: $SICS_DATA or download)")
    ap.add_argument("--dtype", choices=tuple(weights.DTYPES), default="fp32")
    ap.add_argument("--run", type=int, default=0, help="training run k: the recipe with train_seed = k")
    ap.add_argument("--shard-mb", type=float, default=None, help="split into shards of at most this many MB")
    args = ap.parse_args(argv)
    try:
        if args.run < 0:
            raise SicsError(f"--run must be a non-negative integer, not {args.run}")
        meta = export(args.profile, args.data or None, dtype=args.dtype, shard_mb=args.shard_mb, run=args.run)
    except SicsError as e:
        print(f"error: {e}", file=sys.stderr)
        return 1
    run = meta.get("run", 0)
    out = weights.paths(meta["profile"], run)[1].parent
    sizes = ", ".join(f"{f.name} {f.stat().st_size / 1e6:.1f} MB" for f in weights.files(meta["profile"], run)[1:])
    trained = meta.get("trained_test_accuracy")
    print(f"[sics] {meta['profile']}: exported {meta['ckpt_id']} to {out} ({sizes}); test accuracy "
          f"{meta['test_accuracy']:.2%}" + (f" (trained: {trained:.2%})" if trained is not None else "")
          + f"; sha256 {meta['sha256'][:12]}")  # fmt: skip
    return 0


if __name__ == "__main__":
    sys.exit(main())
