"""`make paper`: run the notebooks in order, headlessly, and stop at the first failure.

    python -m sics.paper --profile quick [--data PATH] [--only 02,03] [--engine papermill|inline]

Each notebook reads its parameters from the cell tagged `parameters`; papermill injects
`profile` and `data`. The notebooks hit the artifact cache (checkpoint, sweep rows, per-image
predictions), so a second run only redraws, and an interrupted run resumes. `--engine inline`
executes the same cells in this process without papermill/jupyter (for machines that lack them,
such as the lent GPU machine); the tables and figures are the same either way.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from pathlib import Path

from .config import resolve_profile
from .errors import SicsError
from .paths import figures_dir, notebooks_dir

NOTEBOOKS = ("01_finetune", "02_plateau", "03_kappa_spectrum", "04_fake_nonmonotone",
             "05_bump_vs_chaos", "06_claims")  # fmt: skip


class NotebookFailed(SicsError):
    pass


def run_papermill(src: Path, dst: Path, parameters: dict) -> None:
    import papermill as pm

    try:
        pm.execute_notebook(str(src), str(dst), parameters=parameters, kernel_name="python3",
                            progress_bar=False, cwd=str(src.parent))  # fmt: skip
    except pm.PapermillExecutionError as e:
        raise NotebookFailed(f"{src.name} failed in cell {e.exec_count}: {e.ename}: {e.evalue}") from None


def run_inline(src: Path, parameters: dict) -> None:
    """Execute a notebook's code cells here, with `parameters` assigned after its parameters cell."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    nb = json.loads(src.read_text())
    ns: dict = {"__name__": "__main__", "display": lambda *a, **k: None}
    for i, cell in enumerate(nb["cells"]):
        if cell["cell_type"] != "code":
            continue
        source = "".join(cell["source"])
        if "parameters" in cell.get("metadata", {}).get("tags", []):
            source += "\n" + "\n".join(f"{k} = {v!r}" for k, v in parameters.items())
        try:
            exec(compile(source, f"{src.name}[cell {i}]", "exec"), ns)
        except Exception as e:
            raise NotebookFailed(f"{src.name} failed in cell {i}: {type(e).__name__}: {e}") from None
        plt.close("all")


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--profile", default=os.environ.get("SICS_PROFILE", "auto"))
    ap.add_argument("--data", default="", help="CIFAR-10 source (default: $SICS_DATA or download)")
    ap.add_argument("--only", default="", help="comma-separated notebook prefixes, e.g. 01,03")
    ap.add_argument("--engine", choices=("papermill", "inline"), default="papermill")
    args = ap.parse_args(argv)
    try:
        profile = resolve_profile(args.profile).name  # resolve `auto` once, for every notebook
        chosen = [n for n in NOTEBOOKS if not args.only or n[:2] in args.only.split(",")]
        out_dir = figures_dir(profile) / "notebooks"
        out_dir.mkdir(parents=True, exist_ok=True)
        params = dict(profile=profile, data=args.data)
        times = {}
        for name in chosen:
            src = notebooks_dir() / f"{name}.ipynb"
            if not src.exists():
                continue
            print(f"[sics] {name} (profile={profile}, engine={args.engine}) ...", flush=True)
            t0 = time.time()
            if args.engine == "papermill":
                run_papermill(src, out_dir / f"{name}.ipynb", params)
            else:
                run_inline(src, params)
            times[name] = round(time.time() - t0, 1)
            print(f"[sics] {name} done in {times[name]:.1f} s", flush=True)
        from .provenance import record

        record(profile, "make_paper", engine=args.engine, seconds_per_notebook=times,
               total_seconds=round(sum(times.values()), 1))  # fmt: skip
        print(f"[sics] outputs in {figures_dir(profile)}")
        return 0
    except SicsError as e:
        print(f"error: {e}", file=sys.stderr)
        return 1


if __name__ == "__main__":
    sys.exit(main())
