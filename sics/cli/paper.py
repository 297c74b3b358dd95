"""`make paper`: run the notebooks in order, headlessly, and stop at the first failure.

    python -m sics.cli.paper --profile quick [--data PATH] [--only 02,03] [--engine papermill|inline]
                             [--set n_seeds=20]   (a notebook parameter, for every notebook)

Every input is checked before anything is written (`choose`: the executor settings, `--only`,
each `--set` against its notebook parameter's type and range, the profile). Each notebook reads
its parameters from the cell tagged `parameters`; papermill injects `profile` and `data`. The
last step merges each study folder's claims ledgers into its `claims.*` (`merge_ledgers`), so no
notebook reads another's output. The notebooks hit the artifact cache (checkpoint, sweep rows,
per-image predictions), so a second run only redraws, and an interrupted run resumes. `--engine inline`
executes the same cells in this process without papermill/jupyter (for machines that lack them,
such as the lent GPU machine); the tables and figures are the same either way.

What reaches the terminal: the progress of every long step (training epochs with their accuracy,
sweep rows done out of the total with the time left) and each notebook's one-line summary (the
`[sics]` lines a notebook prints; `--verbose` shows all it prints). The notebooks' stderr is
streamed as it comes; their kernels are asked for plain-text bars (`SICS_PROGRESS=text`, see
`sics.progress`), since tqdm's widget does not show in a terminal. `CI` or `SICS_PROGRESS=0`
turns the bars off. Third-party deprecation noise is filtered (unless `PYTHONWARNINGS` is set),
and the kernel's own log (its plumbing, e.g. ipykernel's warning about unencrypted TCP) is kept
off the terminal: a notebook's errors come back through papermill. Where jupyter_client and
pyzmq support it, the kernel's channels are also encrypted (CurveZMQ), the fix that warning
asks for.
"""

from __future__ import annotations

import argparse
import io
import json
import os
import re
import shutil
import signal
import sys
import time
import warnings
from collections.abc import Iterator
from contextlib import contextmanager, redirect_stdout
from pathlib import Path

from .. import progress
from ..config import resolve_profile
from ..errors import ParameterError, SicsError
from ..paths import figures_dir, notebooks_dir
from ..study.stage import pack_open
from .checks import Parser, check_parameter, check_settings

# run only when asked (`--only NN`): the KV cache (11: no committed study, docs/results.md; KV environment)
ON_REQUEST: tuple[str, ...] = ("11_kv_cache",)
# every other notebooks/NN_*.ipynb, in number order: a new notebook runs without being listed here
NOTEBOOKS = tuple(sorted(p.stem for p in notebooks_dir().glob("[0-9][0-9]_*.ipynb") if p.stem not in ON_REQUEST))
# notebooks run once per parameter set (a `--set` of it runs one, as set): 09 on the ViT, then the ResNet
RUNS: dict[str, tuple[dict, ...]] = {"09_criteria": ({}, {"arch": "resnet"})}
# ... and once more per committed training run k >= 1 of their study (the MoE study of each ViT run)
PER_TRAINING_RUN: dict[str, str] = {"12_moe": "{profile}-experts"}


def runs_of(name: str, sets: dict, profile: str = "") -> list[tuple[str, dict]]:
    """(the executed copy's name, its own parameters) for each run of notebook `name`: one per
    parameter set in `RUNS` or per training run of `profile`, or the one run `--set` fixes; a
    non-empty value names the copy."""
    runs = RUNS.get(name, ({},))
    if name in PER_TRAINING_RUN and profile:
        from ..study.runs import run_numbers
        runs = ({}, *({"run": k} for k in run_numbers(PER_TRAINING_RUN[name].format(profile=profile)) if k > 0))
    fixed = {k for r in runs for k in r} & set(sets)
    if fixed:
        runs = ({k: sets[k] for k in sorted(fixed)},)
    return [(name + "".join(f"-{re.sub(r'[^A-Za-z0-9_]', '_', str(v))}" for v in r.values() if v != ""), r)
            for r in runs]  # fmt: skip


class NotebookFailed(SicsError):
    pass


QUIET_WARNINGS = (DeprecationWarning, PendingDeprecationWarning, FutureWarning)


class Forward(io.TextIOBase):
    """A notebook's stdout on its way to the terminal: its `[sics]` lines, or all with `verbose`.

    The stage's summary (`[sics] <stage>: done in N s ...`, from `Stage.close`) is held back in
    `summary`: `main` prints it with the notebook's time in all, kernel start included.
    """

    def __init__(self, out, verbose: bool = False):
        self.out, self.verbose, self.pending, self.summary = out, verbose, "", ""

    def write(self, text: str) -> int:
        *lines, self.pending = (self.pending + text).split("\n")
        for line in lines:
            if line.startswith("[sics]") and ": done in " in line:
                self.summary = line
            elif self.verbose or line.startswith("[sics]"):
                self.out.write(line + "\n")
        self.out.flush()
        return len(text)

    def flush(self) -> None:
        self.out.flush()


@contextmanager
def notebook_environment() -> Iterator[None]:
    """Environment variables for the notebooks (their kernels inherit them), restored after.

    Text progress bars (unless bars are off), refreshed every second on a terminal and every 30 s
    into a log file, as wide as the terminal; third-party deprecation warnings ignored. A value
    the user set is kept.
    """
    wanted = dict(COLUMNS=str(shutil.get_terminal_size().columns),
                  SICS_PROGRESS_INTERVAL="1" if sys.stderr.isatty() else "30",
                  PYTHONWARNINGS=",".join(f"ignore::{w.__name__}" for w in QUIET_WARNINGS))  # fmt: skip
    if progress.enabled():
        wanted["SICS_PROGRESS"] = "text"
    saved = {k: os.environ.get(k) for k in wanted}
    os.environ.update({k: v for k, v in wanted.items() if not os.environ.get(k)})
    try:
        yield
    finally:
        for k, v in saved.items():
            if v is None:
                os.environ.pop(k, None)
            else:
                os.environ[k] = v


def kernel_options() -> dict:
    """papermill (nbclient) options that keep the kernel's own log off the terminal.

    The kernel app logs only its plumbing: the warning that its channels are unencrypted TCP,
    an interrupt that jupyter_client sends while shutting it down. Its log level is raised to
    CRITICAL; where the kernelspec, jupyter_client and pyzmq support it the channels are
    encrypted too (CurveZMQ). `coalesce_streams` keeps only the last state of a text bar in the
    executed notebook.
    """
    opts: dict = dict(extra_arguments=["--IPKernelApp.log_level=CRITICAL"], coalesce_streams=True)
    try:
        import zmq
        from jupyter_client.manager import KernelManager
        from traitlets.config import Config

        if zmq.has("curve") and "transport_encryption" in KernelManager.class_trait_names():
            opts["config"] = Config({"KernelManager": {"transport_encryption": "auto"}})
    except ImportError:
        pass
    return opts


def run_papermill(src: Path, dst: Path, parameters: dict, stdout=None) -> None:
    """Execute `src` into `dst` with papermill, streaming its stderr (and `stdout`) as it runs."""
    import papermill as pm
    from nbclient.exceptions import DeadKernelError

    try:
        pm.execute_notebook(str(src), str(dst), parameters=parameters, kernel_name="python3",
                            progress_bar=False, cwd=str(src.parent), stdout_file=stdout,
                            stderr_file=sys.stderr, **kernel_options())  # fmt: skip
    except pm.PapermillExecutionError as e:
        raise NotebookFailed(f"{src.name} failed in cell {e.exec_count}: {e.ename}: {e.evalue}") from None
    except DeadKernelError:
        raise NotebookFailed(f"{src.name}: the kernel died (out of memory?); finished steps are "
                             "cached, so a rerun resumes there") from None  # fmt: skip


def run_inline(src: Path, parameters: dict, quiet_warnings: bool = True) -> None:
    """Execute a notebook's code cells here, with `parameters` assigned after its parameters cell.

    Third-party deprecation warnings are ignored unless `quiet_warnings` is False.
    """
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    nb = json.loads(src.read_text())
    ns: dict = {"__name__": "__main__", "display": lambda *a, **k: None}
    with warnings.catch_warnings():
        for category in QUIET_WARNINGS if quiet_warnings else ():
            warnings.simplefilter("ignore", category)
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


_running: dict = {}  # the notebook running now and where to pack, for `_on_term`


def _on_term(signum, frame) -> None:
    """SIGTERM with --pack-to: save and pack what has finished, then exit (status 143).

    The work is done here rather than by raising: a signal handler may run inside a finalizer,
    where Python ignores an exception. Every write is atomic, so a pack that this one cuts short
    leaves the previous file in place. Whatever happens here, the process ends.
    """
    signal.signal(signal.SIGTERM, signal.SIG_IGN)
    try:
        if _running.get("profile"):
            name = _running.get("notebook") or "between_notebooks"
            _pack(_running["profile"], _running["out"], name, "interrupted", time.time() - _running.get("t0", time.time()))
        os.write(2, f"[sics] stopped by signal {signum}; what had finished is packed\n".encode())
    finally:
        os._exit(143)


def _pack(profile: str, out: Path, notebook: str, status: str, seconds: float) -> None:
    """Save the open stages' finished results, log the notebook, pack the study into `out`."""
    from .. import ship

    pack_open()
    ship.log_stage(profile, notebook, status, seconds)
    manifest = ship.pack(profile, out)
    print(f"[sics] packed {len(manifest['files'])} files to {out} after {notebook}", flush=True)


def parse_sets(items: list[str]) -> dict:
    """`--set NAME=VALUE` pairs as notebook parameters (VALUE a Python literal, else a string)."""
    import ast

    out = {}
    for item in items:
        name, sep, value = item.partition("=")
        if not sep or not name.isidentifier():
            raise SicsError(f"--set wants NAME=VALUE, got {item!r}")
        try:
            out[name] = ast.literal_eval(value)
        except (ValueError, SyntaxError):
            out[name] = value
    return out


def notebook_parameters(src: Path) -> dict:
    """The defaults of a notebook's parameters cell (`NAME = literal` lines), by name."""
    import ast
    import json as _json

    cells = _json.loads(src.read_text())["cells"]
    cell = next((c for c in cells if "parameters" in c.get("metadata", {}).get("tags", [])), None)
    if cell is None:
        return {}
    out = {}
    for node in ast.parse("".join(cell["source"])).body:
        if isinstance(node, ast.Assign) and len(node.targets) == 1 and isinstance(node.targets[0], ast.Name):
            out[node.targets[0].id] = ast.literal_eval(node.value)
    return out


def _kind(value) -> str:
    """A parameter's kind for checking a `--set`: a number (int or float), text, a list, a truth value."""
    if isinstance(value, bool):
        return "a truth value (True or False)"
    if isinstance(value, (int, float)):
        return "a number"
    if isinstance(value, (list, tuple)):
        return "a list, e.g. [0.5, 0.7]"
    return "a text" if isinstance(value, str) else type(value).__name__


def check_sets(sets: dict, notebooks: list[Path]) -> None:
    """Every `--set` must name a parameter of some chosen notebook, of the kind its default is
    (an int where the default is an int), so a bad value stops here with one line rather than
    failing inside a notebook."""
    defaults: dict = {}
    for src in notebooks:
        for name, value in notebook_parameters(src).items():
            defaults.setdefault(name, value)
    for name, value in sets.items():
        if name not in defaults:
            raise SicsError(f"--set {name}: no chosen notebook has a parameter {name!r}; "
                            f"theirs: {', '.join(sorted(defaults))}")  # fmt: skip
        want = defaults[name]
        ok = _kind(value) == _kind(want) and not (isinstance(want, int) and not isinstance(want, bool)
                                                  and isinstance(value, float))  # fmt: skip
        if not ok:
            raise SicsError(f"--set {name}={value!r}: {name} is {_kind(want)} (default {want!r})")
        check_parameter(name, value)


def merge_ledgers() -> list[str]:
    """The last step: every study folder's `claims.*` from its notebooks' ledgers
    (`report.tables.merge_claims`); returns the folders merged."""
    from ..paths import figures_root
    from ..report.tables import merge_claims

    root = figures_root()
    folders = sorted(p for p in root.iterdir() if p.is_dir()) if root.exists() else []
    return [f.name for f in folders if merge_claims(f) is not None]


def execute(src: Path, dest: Path, params: dict, engine: str, out: Forward, quiet_warnings: bool) -> None:
    """Run one notebook with `params` (papermill, writing the executed copy to `dest`, or inline)."""
    with notebook_environment():
        if engine == "papermill":
            run_papermill(src, dest, params, stdout=out)
        else:
            with redirect_stdout(out):
                run_inline(src, params, quiet_warnings)


def parser() -> argparse.ArgumentParser:
    ap = Parser(description=__doc__.splitlines()[0])
    ap.add_argument("--profile", default=os.environ.get("SICS_PROFILE", "auto"))
    ap.add_argument("--data", default="", help="CIFAR-10 source (default: $SICS_DATA or download)")
    ap.add_argument("--only", default="", help="comma-separated notebook prefixes, e.g. 01,03")
    ap.add_argument("--engine", choices=("papermill", "inline"), default="papermill")
    ap.add_argument("--verbose", action="store_true", help="show everything the notebooks print")
    ap.add_argument("--set", action="append", default=[], metavar="NAME=VALUE",
                    help="a notebook parameter for every notebook that has it, e.g. n_seeds=20 (a Python literal)")
    ap.add_argument("--pack-to", default="", help="after each notebook (and on SIGTERM) copy the profile's "
                    "study files to this folder (`sics.ship`); go on past a failed notebook")  # fmt: skip
    return ap


def choose(args) -> tuple[str, list[str], dict]:
    """(profile, notebooks, parameters) of a run, every input checked first: the executor settings,
    `--only`, each `--set` against the chosen notebooks' parameters, then the profile."""
    check_settings()
    wanted = [w.strip() for w in args.only.split(",")] if args.only else []
    known = {n[:2] for n in (*NOTEBOOKS, *ON_REQUEST)}
    unknown = [w for w in wanted if w not in known]
    if unknown:
        raise SicsError(f"--only {args.only}: no notebook {', '.join(unknown)}; valid: {', '.join(sorted(known))}")
    chosen = [n for n in (*NOTEBOOKS, *ON_REQUEST) if (n in NOTEBOOKS and not wanted) or n[:2] in wanted]
    sets = parse_sets(args.set)
    check_sets(sets, [p for n in chosen if (p := notebooks_dir() / f"{n}.ipynb").exists()])
    profile = resolve_profile(args.profile)  # `auto` resolved once, for every notebook
    if profile.unit not in ("mlp_channels", "conv_channels"):
        raise ParameterError(f"profile {profile.name} is a language model's: it trains with python -m sics.cli.lm "
                             "(make kv-env); its KV-cache study is not one of these notebooks")  # fmt: skip
    return profile.name, chosen, sets


def main(argv: list[str] | None = None) -> int:
    args = parser().parse_args(argv)
    if args.pack_to:
        _running["out"] = Path(args.pack_to)
        signal.signal(signal.SIGTERM, _on_term)
    try:
        profile, chosen, sets = choose(args)  # before anything is written
        _running.update(profile=profile, t0=time.time())
        out_dir = figures_dir(profile) / "notebooks"
        out_dir.mkdir(parents=True, exist_ok=True)
        params = dict(profile=profile, data=args.data, **sets)
        quiet_warnings = not os.environ.get("PYTHONWARNINGS")
        times, failed = {}, []
        for notebook, (name, extra) in [(n, run) for n in chosen for run in runs_of(n, sets, profile)]:
            src = notebooks_dir() / f"{notebook}.ipynb"
            print(f"[sics] {name} (profile={profile}, engine={args.engine}) ...", flush=True)
            t0 = time.time()
            out = Forward(sys.stdout, args.verbose)
            _running.update(profile=profile, notebook=name, t0=t0)
            try:
                execute(src, out_dir / f"{name}.ipynb", {**params, **extra}, args.engine, out, quiet_warnings)
            except NotebookFailed as e:
                if not args.pack_to:
                    raise
                print(f"error: {e}", file=sys.stderr, flush=True)
                failed.append(name)
            times[name] = round(time.time() - t0, 1)
            if args.pack_to:  # what comes back carries the ledgers merged so far
                merge_ledgers()
                _pack(profile, Path(args.pack_to), name, "failed" if name in failed else "0", times[name])
                _running["notebook"] = None  # (a TERM now stops the run between notebooks)
            if name not in failed:
                print(f"{out.summary or f'[sics] {name}: done'}; {times[name]:.0f} s in all", flush=True)
        if failed:
            print(f"error: {len(failed)} notebook(s) failed: {', '.join(failed)}", file=sys.stderr)
            return 1
        merge_ledgers()
        record_run(profile, args, times, full=len(chosen) == len(NOTEBOOKS))
        return 0
    except SicsError as e:
        print(f"error: {e}", file=sys.stderr)
        return 1


def record_run(profile: str, args, times: dict, full: bool) -> None:
    """The run's timing: in provenance.json for a full run, in the git-ignored last_run.json only
    for a partial one (it never replaces the full run's, and never dirties the committed record)."""
    from ..provenance import record

    total = round(sum(times.values()), 1)
    stage = "make_paper" if full else f"make_paper --only {args.only}"
    record(profile, stage, committed=full, engine=args.engine, seconds_per_notebook=times, total_seconds=total)
    print(f"[sics] {len(times)} notebooks in {total:.0f} s; outputs in {figures_dir(profile)}")


if __name__ == "__main__":
    sys.exit(main())
