"""The dense model of a configuration, as an artifact keyed by it: committed weights where a
profile has them, else a finished checkpoint, else trained (`loop.train`, resuming).

A damaged finished checkpoint stops with a one-line error that says how to recover (retraining
may take hours). The model handed back is the same on every path, built for inference
(drop-path off) with the trained weights, so nothing downstream depends on whether it was
trained just now or loaded.
"""

from __future__ import annotations

import os
import time
from collections.abc import Callable
from pathlib import Path

import pandas as pd
import torch
from torch import nn

from ..config import LMConfig, Profile
from ..data import Cifar10, DeviceBatches
from ..data.registry import batches_of
from ..errors import CheckpointError, ParameterError
from ..files import atomic_write, write_json
from ..models import build_model, fp32_decisions
from ..models.evaluate import accuracy
from ..paths import cache_dir
from . import weights as committed
from .identity import (
    OPTIONAL_TRAINING_FIELDS,
    RECIPE_VERSION,
    TRAINING_FIELDS,
    Trained,
    checkpoint_id,
    committed_trained,
    recipe_hash,
    training_fields,
)
from .loop import train

__all__ = ["OPTIONAL_TRAINING_FIELDS", "RECIPE_VERSION", "TRAINING_FIELDS", "Trained", "checkpoint_id",
           "export_weights", "recipe_hash", "resolved_recipe", "train_or_load", "training_fields"]

def resolved_recipe(profile: Profile, device: torch.device, data_id: str) -> dict:
    """Every setting that shapes a training run but its seed, with `auto` written as what it
    became on `device`: the recipe that the runs of one study must share (`recipe_hash`)."""
    from ..models.precision import uses_bf16
    from .loop import compile_wanted

    fields = training_fields(profile, every_optional=True)
    fields.pop("train_seed")
    fields.update(
        train_precision="bf16" if uses_bf16(device, profile.train_precision, cpu_auto=False) else "fp32",
        tf32_matmul=torch.backends.cuda.matmul.allow_tf32, tf32_cudnn=torch.backends.cudnn.allow_tf32,
        float32_matmul_precision=torch.get_float32_matmul_precision(),
        deterministic_algorithms=torch.are_deterministic_algorithms_enabled(),
        cudnn_deterministic=torch.backends.cudnn.deterministic, cudnn_benchmark=torch.backends.cudnn.benchmark,
        compile=compile_wanted(device), data=data_id, recipe=RECIPE_VERSION,
    )
    return fields


def export_weights(trained: Trained, profile: Profile, data_source: str, *, dtype: str = "fp32",
                   shard_mb: float | None = None, test: DeviceBatches | None = None,
                   recipe: dict | None = None) -> str:  # fmt: skip
    """Commit-ready copy of a trained model: `figures/<profile>/weights.safetensors` + record, or
    with `dtype="bf16"` (and `shard_mb`) bf16 shards (`sics.training.weights.save`).

    Rounded weights are a model of their own: their record carries their own checkpoint id
    (`<id>-bf16`) and their test accuracy, evaluated in fp32 on `test`, beside the trained one's.
    Returns the sha256 (recorded in provenance by the stage that uses the weights).
    """
    state = trained.model.state_dict()
    meta = dict(profile=profile.name, ckpt_id=trained.ckpt_id, training_fields=training_fields(profile),
                test_accuracy=trained.test_accuracy, train_seconds=round(trained.train_seconds, 1),
                history=trained.history.to_dict("records"), data=data_source,
                recipe=RECIPE_VERSION, run=profile.train_seed)  # fmt: skip
    if recipe is not None:
        meta.update(resolved_recipe=recipe, recipe_hash=recipe_hash(recipe))
    if dtype != "fp32":
        if test is None:
            raise ParameterError(f"exporting {dtype} weights needs the test split: their accuracy is measured")
        rounded = {k: v.to(committed.torch_dtype(dtype)).float() if v.is_floating_point() else v for k, v in state.items()}
        model = inference_model(profile, rounded, trained.ckpt_dir, test.device)
        meta.update(ckpt_id=f"{trained.ckpt_id}-{dtype}", trained_test_accuracy=trained.test_accuracy,
                    test_accuracy=accuracy(model, test, profile.eval_batch_size, "fp32"))  # fmt: skip
    return committed.save(profile.name, state, meta, dtype=dtype, shard_mb=shard_mb, run=profile.train_seed)


def load_checkpoint(path: Path) -> dict:
    try:
        return torch.load(path, map_location="cpu", weights_only=False)
    except Exception as e:
        raise CheckpointError(
            f"checkpoint {str(path)!r} is corrupt ({type(e).__name__}); delete it to retrain"
        ) from None


def _load_weights(model: nn.Module, state: dict, path: Path) -> None:
    try:
        model.load_state_dict(state)
    except Exception as e:
        first = str(e).strip().splitlines()[0]
        raise CheckpointError(
            f"checkpoint {str(path)!r} does not fit the model ({first}); delete it to retrain"
        ) from None


def inference_model(profile: Profile, state: dict, path: Path, device: torch.device) -> nn.Module:
    """The model every caller gets: drop-path off, the given weights, on `device`, in eval mode,
    with its decisions in fp32 where the profile says (`models.fp32_decisions`)."""
    model = build_model(profile.from_scratch().replace(drop_path=0.0))
    _load_weights(model, state, path)
    if profile.fp32_decisions:
        fp32_decisions(model)
    return model.to(device).eval()


def train_or_load(
    profile: Profile,
    data: Cifar10 | Callable[[], Cifar10],
    device: torch.device,
    *,
    weights: str | None = None,
    progress: bool = True,
    on_epoch_end: Callable[[int], None] | None = None,
    compile: bool | None = None,
) -> Trained:
    """Return the dense model of this configuration, training (or resuming) only if needed.

    `data` may be a function that loads them: committed weights are then used without data.
    """
    t0 = time.time()
    if profile.pretrained:  # the weights file is part of the configuration, however it was given
        weights = weights or os.environ.get("SICS_WEIGHTS") or None
    if not profile.pretrained:
        found = committed_trained(profile, lambda state, path: inference_model(profile, state, path, device))
        if found is not None:
            return found
    if callable(data):
        data = data()
    ckpt_id = checkpoint_id(profile, data.source_id, weights)
    if not profile.pretrained and committed.present(profile.name, profile.train_seed):
        ckpt_id += "-retrained"  # never shares caches or results with the committed weights
    ckpt_dir = cache_dir() / "checkpoints" / ckpt_id
    final, state_path = ckpt_dir / "model.pt", ckpt_dir / "state.pt"
    if final.exists():
        blob = load_checkpoint(final)
        if not isinstance(blob, dict) or "model" not in blob or "test_accuracy" not in blob:
            raise CheckpointError(f"checkpoint {str(final)!r} is incomplete; delete it to retrain")
        model = inference_model(profile, blob["model"], final, device)
        history = pd.DataFrame(blob.get("history", []))
        return Trained(ckpt_id, ckpt_dir, history, float(blob["test_accuracy"]), False, time.time() - t0,
                       float(history["seconds"].sum()) if len(history) else 0.0, _model=model)  # fmt: skip
    if isinstance(profile.model, LMConfig):  # (the committed LMs are trained by `sics.cli.lm`, the same way)
        from .lm import train_lm, window_loss

        model, history = train_lm(profile, data.train_x, device, state_path, progress=progress)
        model.eval()
        with torch.no_grad():
            test_acc = float(window_loss(model, data.test_x, profile.model.context, profile.model.window)[1].mean())
    else:
        model, history = train(profile, data, device, state_path, weights=weights, progress=progress,
                               on_epoch_end=on_epoch_end, compile=compile, label=ckpt_id)  # fmt: skip
        test = batches_of(data.test_x, data.test_y, profile, device)
        model.eval()
        test_acc = history[-1]["test_accuracy"] if history else accuracy(model, test, profile.eval_batch_size)
    blob = dict(model=model.state_dict(), history=history, test_accuracy=test_acc)
    atomic_write(final, lambda p: torch.save(blob, p))
    model = inference_model(profile, blob["model"], final, device)  # as a later load builds it
    pd.DataFrame(history).to_csv(ckpt_dir / "history.csv", index=False)
    write_json(ckpt_dir / "meta.json", dict(ckpt_id=ckpt_id, profile=profile.as_dict(),
                                            data=data.source, test_accuracy=test_acc))  # fmt: skip
    state_path.unlink(missing_ok=True)
    train_seconds = float(sum(h["seconds"] for h in history))
    return Trained(ckpt_id, ckpt_dir, pd.DataFrame(history), test_acc, True, time.time() - t0, train_seconds,
                   _model=model)


