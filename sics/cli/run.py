"""Add training run k of a study's recipe: train (or resume) and export its weights, then sweep
what a run contributes to the recipe-level verdicts, into figures/<profile>/runs/<k>/.

    python -m sics.cli.run --profile reference --run 1 [--data PATH] [--seeds 5] [--token-seeds 3]

Run k is the profile's recipe with `train_seed = k` (`sics.paths.run_dir`). A run's study is
smaller than run 0's, since the spread between networks, not the seeds, limits a recipe-level
verdict: the main grid (every feature class and the baselines) at `--seeds` seeds, the published
criteria at the main S with one calibration seed (kvpress's for the language model, `lm`, whose
data are the text corpus), and for a ViT its tokens (CLS-attention) at `--token-seeds`. Every step resumes: exported weights are reused, a training run resumes from its
last epoch's state, finished rows are keyed in sweep.csv, and each stage packs its results.
"""

from __future__ import annotations

import argparse
import os
import sys

from ..errors import SicsError

TOKEN_UNIT = {"block": -1, "importance": "cls_attention"}  # notebook 07's main study


def add_run(profile: str, run: int, data: str | None = None, *, seeds: int = 5, token_seeds: int = 3,
            criteria_seeds: int = 1) -> None:  # fmt: skip
    """Train and export run `run` of `profile` where it is not committed yet, then sweep it."""
    from ..config import LMConfig, resolve_profile
    from ..selection.criteria import applicable
    from ..selection.scorers import KV_KIND, baselines, feature_classes, published
    from ..study.stage import open_stage
    from ..training import weights
    from ..training.export import export

    if run < 1:
        raise SicsError(f"--run must be 1 or more (run 0 is the committed study), not {run}")
    p = resolve_profile(profile)
    lm = isinstance(p.model, LMConfig)
    if not weights.present(p.name, run):
        if lm:
            from .lm import train_and_export

            train_and_export(p.name, run, data)
        else:
            export(p.name, data, run=run)
    main = open_stage("runs_main", p.name, data or "", train_seed=run)
    grid = [*feature_classes(), *baselines()]
    main.sweep(grid, p.sparsities, n_seeds=seeds)
    if lm:
        crit = published(KV_KIND)
    else:
        crit = [*(n for n in applicable(published(), main.study.selection.stats) if n not in grid), "sics_adaptive"]
    main.sweep(crit, p.sparsities, n_seeds=criteria_seeds)
    main.close()
    if p.unit == "mlp_channels":  # a ViT: its tokens too
        tokens = open_stage("runs_tokens", p.name, data or "", unit="tokens", unit_params=TOKEN_UNIT,
                            train_seed=run)  # fmt: skip
        tokens.sweep(grid, p.sparsities, n_seeds=token_seeds)
        tokens.close()


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--profile", default=os.environ.get("SICS_PROFILE", "reference"))
    ap.add_argument("--run", type=int, required=True, help="training run k >= 1: the recipe with train_seed = k")
    ap.add_argument("--data", default="", help="CIFAR-10 source (default: $SICS_DATA or download); for lm the text corpus ($SICS_TEXT)")
    ap.add_argument("--seeds", type=int, default=5, help="seeds per stochastic cell of the main grid")
    ap.add_argument("--token-seeds", type=int, default=3, help="seeds per stochastic cell of the tokens (ViTs)")
    args = ap.parse_args(argv)
    try:
        if args.seeds < 2 or args.token_seeds < 2:
            raise SicsError("--seeds and --token-seeds must be 2 or more: one seed gives no interval")
        add_run(args.profile, args.run, args.data or None, seeds=args.seeds, token_seeds=args.token_seeds)
    except SicsError as e:
        print(f"error: {e}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
