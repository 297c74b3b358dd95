"""The values a `make` variable or a notebook parameter may take, checked before anything runs:
each check raises one line that names the parameter and what it allows. Torch-free."""

from __future__ import annotations

import argparse
import os
import sys
from collections.abc import Callable

from ..errors import ParameterError


def _number(value) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool)


def _sparsities(empty_ok: bool) -> tuple[Callable, str]:
    def ok(v):
        return isinstance(v, (list, tuple)) and (empty_ok or v) and all(_number(s) and 0 <= s < 1 for s in v)

    return ok, ("a list of sparsities in [0, 1), e.g. [0.5, 0.7]" + (" ([] for the profile's)" if empty_ok else ""))


def _names(known: Callable[[], tuple], what: str) -> tuple[Callable, str]:
    def ok(v):
        return isinstance(v, (list, tuple)) and all(isinstance(n, str) and n in known() for n in v)

    return ok, f"a list of {what}"


def _scorers():
    from ..selection.scorers import SCORERS

    return tuple(SCORERS)


def _ablations():
    from ..study.ablations import ABLATIONS

    return ABLATIONS


def _importances():
    from ..units.tokens import IMPORTANCES

    return IMPORTANCES


def _architectures():
    from ..config import ARCHITECTURES

    return ("", *ARCHITECTURES)


# notebook parameter -> (whether a value is allowed, what is allowed, in words); `profile` and
# `data` are the command's own options, checked where they are resolved
PARAMETERS: dict[str, tuple[Callable, str]] = {
    "sparsities": _sparsities(empty_ok=False),
    "grid": _sparsities(empty_ok=True),
    "ablation_sparsities": _sparsities(empty_ok=True),
    "shape_sparsity": (lambda v: _number(v) and 0 <= v < 1, "a sparsity in [0, 1)"),
    "n_seeds": (lambda v: isinstance(v, int) and not isinstance(v, bool) and v >= 0,
                "a whole number >= 0 (0: the profile's)"),  # fmt: skip
    "scorers": _names(_scorers, "registered scorers (sics.selection.scorers), [] for the notebook's own"),
    "ablations": _names(_ablations, "ablations: allocation, envelope, axis, lambda, recovery"),
    "equivalence_margin": (lambda v: _number(v) and 0 < v < 100, "a margin in points, > 0 (e.g. 0.5)"),
    "block": (lambda v: isinstance(v, int) and not isinstance(v, bool) and v >= -1,
              "a block index >= 0, or -1 for the middle block"),  # fmt: skip
    "importances": (lambda v: isinstance(v, (list, tuple)) and v and all(i in _importances() for i in v),
                    "a non-empty list of token importances: cls_attention, norm"),  # fmt: skip
    "arch": (lambda v: v in _architectures(), "an architecture beside the ViT: '' (none) or resnet"),
    "run": (lambda v: isinstance(v, int) and not isinstance(v, bool) and v >= 0, "a training run, a whole number >= 0"),
    "n_experts": (lambda v: isinstance(v, int) and not isinstance(v, bool) and v >= 2, "a whole number of experts >= 2"),
    "n_images": (lambda v: isinstance(v, int) and not isinstance(v, bool) and v >= 1, "a whole number of images >= 1"),
    "fine_seeds": (lambda v: isinstance(v, int) and not isinstance(v, bool) and v >= 2, "a whole number of seeds >= 2"),
}


def check_parameter(name: str, value) -> None:
    """One notebook parameter against its rule (`PARAMETERS`); a name without a rule passes."""
    if name in PARAMETERS:
        ok, allowed = PARAMETERS[name]
        if not ok(value):
            raise ParameterError(f"--set {name}={value!r}: {name} must be {allowed}")


# the sweep-executor settings `make` exports (EXECUTOR, CHUNK, SLURM_*): variable -> (rule, words)
SETTINGS: dict[str, tuple[Callable[[str], bool], str]] = {
    "SICS_EXECUTOR": (lambda v: v in ("inline", "local", "slurm"), "inline, local or slurm"),
    "SICS_CHUNK": (lambda v: v.isdigit() and int(v) >= 1, "a whole number of rows per job, >= 1"),
    "SICS_SLURM_TIME": (lambda v: v.isdigit() and int(v) >= 1, "a whole number of minutes, >= 1"),
    "SICS_SLURM_GPUS": (lambda v: v.isdigit(), "a whole number of GPUs, >= 0"),
    "SICS_SLURM_CPUS": (lambda v: v.isdigit() and int(v) >= 1, "a whole number of CPUs, >= 1"),
    "SICS_SLURM_PARTITION": (lambda v: bool(v) and not any(c.isspace() for c in v), "a partition name"),
}


def check_settings(environ=None) -> None:
    """The executor settings in the environment (as `make` exports them), each against its rule."""
    environ = os.environ if environ is None else environ
    for var, (ok, allowed) in SETTINGS.items():
        value = environ.get(var, "").strip()
        if value and not ok(value):
            raise ParameterError(f"{var.removeprefix('SICS_')}={value!r}: must be {allowed}")


class Parser(argparse.ArgumentParser):
    """argparse, with a bad option or value reported in one line (`error: ...`), exit status 2."""

    def error(self, message: str):
        print(f"error: {message}", file=sys.stderr)
        raise SystemExit(2)


def non_negative(value: str) -> int:
    """An argparse type: a whole number >= 0."""
    if not value.strip().isdigit():
        raise argparse.ArgumentTypeError(f"{value!r} is not a whole number >= 0")
    return int(value)


def positive(value: str) -> int:
    """An argparse type: a whole number >= 1."""
    if not value.strip().isdigit() or int(value) < 1:
        raise argparse.ArgumentTypeError(f"{value!r} is not a whole number >= 1")
    return int(value)
