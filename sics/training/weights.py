"""Committed weights: a profile's trained dense model as safetensors beside its outputs.

A CPU-trained reference model takes hours to train and a few MB to store, so it is committed as
`figures/<profile>/weights.safetensors` with `weights.json` (sha256, the training fields it was
made with, its checkpoint id, history and test accuracy). `checkpoints.train_or_load` uses them when
they are present and fit the profile, and retrains only when told to (`SICS_RETRAIN=1`, or
`make paper RETRAIN=1`). A file whose hash or recipe does not match is a one-line error, never a
silent retrain: the user decides whether hours of training are worth it.

A larger model (ViT-Small: 22 M parameters) travels as bf16 shards,
`weights-00001-of-0000N.safetensors`, each under a size limit (a lent GPU machine returns files
of at most 16 MB), with every shard's sha256 in `weights.json`. Its `test_accuracy` is that of
the rounded weights, evaluated in fp32, and its checkpoint id says `-bf16`: the model the
studies measure is the one that is shipped.
"""

from __future__ import annotations

import hashlib
import json
import os
from pathlib import Path

import numpy as np

from ..errors import CheckpointError
from ..files import atomic_write, sha256, write_json
from ..paths import run_dir

WEIGHTS_FILE, META_FILE = "weights.safetensors", "weights.json"
SHARD_PATTERN = "weights{suffix}.safetensors"  # huggingface_hub's: weights-00001-of-00003.safetensors
DTYPES = ("fp32", "bf16")


def torch_dtype(name: str):
    import torch

    return {"fp32": torch.float32, "bf16": torch.bfloat16}[name]


def paths(profile_name: str, run: int = 0) -> tuple[Path, Path]:
    """(weights file, record) of training run `run` of the profile (`sics.paths.run_dir`)."""
    out = run_dir(profile_name, run, create=False)
    return out / WEIGHTS_FILE, out / META_FILE


def present(profile_name: str, run: int = 0) -> bool:
    """Whether the profile's run has committed weights (one file, or shards with their record)."""
    wpath, mpath = paths(profile_name, run)
    return wpath.exists() or mpath.exists()


def files(profile_name: str, run: int = 0) -> list[Path]:
    """The committed weight files of the profile's run with their record, as the record lists them."""
    wpath, mpath = paths(profile_name, run)
    if not mpath.exists():
        return [wpath] if wpath.exists() else []
    meta = json.loads(mpath.read_text())
    return [mpath, *(mpath.parent / name for name in _listed(meta))]


def _listed(meta: dict) -> dict[str, str]:
    """file name -> sha256 of every weight file a record lists."""
    return dict(meta["files"]) if "files" in meta else {meta.get("file", WEIGHTS_FILE): meta.get("sha256")}


def retrain_requested() -> bool:
    return os.environ.get("SICS_RETRAIN", "0") not in ("", "0")


def save(profile_name: str, state: dict, meta: dict, *, dtype: str = "fp32",
         shard_mb: float | None = None, run: int = 0) -> str:  # fmt: skip
    """Write the weights and their record atomically; return the weights' sha256.

    By default one fp32 file. With `dtype="bf16"` floating tensors are rounded to bf16, and with
    `shard_mb` the file is split into shards of at most that many MB (huggingface_hub's split);
    the sha256 returned is then that of the shard list (names and hashes).
    """
    from safetensors.torch import save_file

    if dtype not in DTYPES:
        raise ValueError(f"unknown weights dtype {dtype!r}; valid: {', '.join(DTYPES)}")
    wpath, mpath = paths(profile_name, run)
    wpath.parent.mkdir(parents=True, exist_ok=True)
    tensors = {k: (v.to(torch_dtype(dtype)) if v.is_floating_point() else v).detach().cpu().contiguous()
               for k, v in state.items()}  # fmt: skip
    if shard_mb is None and dtype == "fp32":  # the committed CPU models' format
        atomic_write(wpath, lambda p: save_file(tensors, str(p)))
        digest = sha256(wpath)
        write_json(mpath, {**meta, "sha256": digest, "file": WEIGHTS_FILE})
        return digest
    from huggingface_hub import split_torch_state_dict_into_shards

    split = split_torch_state_dict_into_shards(tensors, filename_pattern=SHARD_PATTERN,
                                               max_shard_size=int((shard_mb or 1e6) * 1e6))  # fmt: skip
    listed = {}
    for name, keys in sorted(split.filename_to_tensors.items()):
        part = {k: tensors[k] for k in keys}
        atomic_write(wpath.parent / name, lambda p, part=part: save_file(part, str(p)))
        listed[name] = sha256(wpath.parent / name)
    digest = hashlib.sha256(json.dumps(listed, sort_keys=True).encode()).hexdigest()
    write_json(mpath, {**meta, "sha256": digest, "files": listed, "dtype": dtype})
    for old in wpath.parent.glob("weights*.safetensors"):  # an earlier export's, once the record is new
        if old.name not in listed:
            old.unlink()
    return digest


def record(profile_name: str, fields: dict, run: int = 0) -> dict | None:
    """The record of the committed weights of a run, their files checked against it (sha256) and
    its training fields against `fields` (the profile's now); None when there are none."""
    wpath, mpath = paths(profile_name, run)
    if not present(profile_name, run):
        return None
    if not mpath.exists():
        raise CheckpointError(f"{wpath} has no {META_FILE} beside it; restore it or retrain (RETRAIN=1)")
    meta = json.loads(mpath.read_text())
    for name, want in _listed(meta).items():
        path = mpath.parent / name
        if not path.exists():
            raise CheckpointError(f"{path} is missing ({META_FILE} lists it); restore it or retrain (RETRAIN=1)")
        digest = sha256(path)
        if digest != want:
            raise CheckpointError(f"{path} does not match the sha256 in {META_FILE} "
                                  f"({digest[:12]} vs {str(want)[:12]}); restore it or retrain (RETRAIN=1)")  # fmt: skip
    made = meta.get("training_fields", {})
    diff = sorted(k for k in fields if json.dumps(made.get(k)) != json.dumps(fields[k]))
    if diff:
        raise CheckpointError(f"{mpath.parent} holds weights trained with other settings ({', '.join(diff)}); "
                              "restore the profile or retrain (RETRAIN=1)")  # fmt: skip
    return meta


def _read(folder: Path, meta: dict, framework: str) -> dict:
    from safetensors import safe_open

    state = {}
    for name in _listed(meta):
        try:
            with safe_open(str(folder / name), framework=framework) as f:
                state.update({k: f.get_tensor(k) for k in f.keys()})  # noqa: SIM118 (safe_open is not a dict)
        except Exception as e:
            raise CheckpointError(f"{folder / name} is corrupt ({type(e).__name__}); "
                                  "restore it or retrain (RETRAIN=1)") from None  # fmt: skip
    return state


def state_dict(profile_name: str, meta: dict, run: int = 0) -> dict:
    """The committed weights of a run (`record` checked them) as a torch state dict in fp32."""
    state = _read(paths(profile_name, run)[1].parent, meta, "pt")
    return {k: v.float() if v.is_floating_point() else v for k, v in state.items()}


def arrays(profile_name: str, meta: dict, run: int = 0) -> dict[str, np.ndarray]:
    """The committed weights of a run as numpy arrays, without torch (fp32 files; bf16 shards,
    which numpy cannot hold, are read through torch)."""
    if meta.get("dtype", "fp32") != "fp32":
        return {k: v.numpy() for k, v in state_dict(profile_name, meta, run).items()}
    return _read(paths(profile_name, run)[1].parent, meta, "numpy")


def load(profile_name: str, fields: dict, run: int = 0) -> tuple[dict, dict] | None:
    """(state dict in fp32, record) of the committed weights of a run, or None when there are none.

    `fields` are the profile's training fields now: the record must match them.
    """
    meta = record(profile_name, fields, run)
    return None if meta is None else (state_dict(profile_name, meta, run), meta)
