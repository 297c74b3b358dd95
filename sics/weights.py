"""Committed weights: a profile's trained dense model as safetensors beside its outputs.

A CPU-trained reference model takes hours to train and a few MB to store, so it is committed as
`figures/<profile>/weights.safetensors` with `weights.json` (sha256, the training fields it was
made with, its checkpoint id, history and test accuracy). `train.train_or_load` uses them when
they are present and fit the profile, and retrains only when told to (`SICS_RETRAIN=1`, or
`make paper RETRAIN=1`). A file whose hash or recipe does not match is a one-line error, never a
silent retrain: the user decides whether hours of training are worth it.
"""

from __future__ import annotations

import hashlib
import json
import os
from pathlib import Path

import torch
from safetensors.torch import load_file, save_file

from .errors import CheckpointError
from .io import atomic_write, write_json
from .paths import figures_dir

WEIGHTS_FILE, META_FILE = "weights.safetensors", "weights.json"


def paths(profile_name: str) -> tuple[Path, Path]:
    out = figures_dir(profile_name)
    return out / WEIGHTS_FILE, out / META_FILE


def sha256(path: Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


def retrain_requested() -> bool:
    return os.environ.get("SICS_RETRAIN", "0") not in ("", "0")


def save(profile_name: str, state: dict[str, torch.Tensor], meta: dict) -> str:
    """Write the weights and their record atomically; return the weights' sha256."""
    wpath, mpath = paths(profile_name)
    tensors = {k: v.detach().cpu().contiguous() for k, v in state.items()}
    atomic_write(wpath, lambda p: save_file(tensors, str(p)))
    digest = sha256(wpath)
    write_json(mpath, {**meta, "sha256": digest, "file": WEIGHTS_FILE})
    return digest


def load(profile_name: str, fields: dict) -> tuple[dict[str, torch.Tensor], dict] | None:
    """(state dict, record) of the committed weights, or None when there are none.

    `fields` are the profile's training fields now: the record must match them.
    """
    wpath, mpath = paths(profile_name)
    if not wpath.exists():
        return None
    if not mpath.exists():
        raise CheckpointError(f"{wpath} has no {META_FILE} beside it; restore it or retrain (RETRAIN=1)")
    meta = json.loads(mpath.read_text())
    digest = sha256(wpath)
    if digest != meta.get("sha256"):
        raise CheckpointError(f"{wpath} does not match the sha256 in {META_FILE} "
                              f"({digest[:12]} vs {str(meta.get('sha256'))[:12]}); restore it or retrain (RETRAIN=1)")  # fmt: skip
    made = meta.get("training_fields", {})
    diff = sorted(k for k in fields if json.dumps(made.get(k)) != json.dumps(fields[k]))
    if diff:
        raise CheckpointError(f"{wpath} was trained with other settings ({', '.join(diff)}); "
                              "restore the profile or retrain (RETRAIN=1)")  # fmt: skip
    try:
        return load_file(str(wpath)), meta
    except Exception as e:
        raise CheckpointError(f"{wpath} is corrupt ({type(e).__name__}); restore it or retrain (RETRAIN=1)") from None
