"""Train (or fine-tune) the dense ViT; the checkpoint is an artifact keyed by its configuration.

Running again with the same configuration loads the finished model instead of training. An
interrupted run resumes from its last checkpoint: model, optimiser, schedule and RNG state are
saved atomically every `ckpt_every` epochs, and the data order of epoch e depends only on
(seed, e), so a resumed run retraces the uninterrupted one. A damaged resumable checkpoint is a
cache: it is discarded with a warning and training starts over. A damaged finished checkpoint
is not (retraining may take hours): it stops with a one-line error that says how to recover.

The model handed back is the same on both paths, built for inference (drop-path off) with the
trained weights, so nothing downstream (recovery fine-tuning included) depends on whether it
was trained just now or loaded. Recovery fine-tuning draws every random number (batch order,
augmentation, any stochastic layer) from its own seed.
"""

from __future__ import annotations

import math
import os
import sys
import time
import warnings
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import pandas as pd
import torch
import torch.nn.functional as F
from torch import nn

from ..config import Profile
from ..data import Cifar10, DeviceBatches
from ..errors import CheckpointError, ParameterError
from ..evaluate import accuracy, autocast
from ..files import atomic_write, stable_hash, write_json
from ..models import build_model, fp32_decisions
from ..paths import cache_dir
from ..progress import bar as progress_bar
from ..progress import note
from . import weights as committed

# Profile fields that change the trained weights (and so the checkpoint key).
TRAINING_FIELDS = (
    "model_name", "img_size", "patch_size", "embed_dim", "depth", "num_heads", "mlp_hidden",
    "pretrained", "mean", "std", "n_train", "epochs", "batch_size", "lr", "weight_decay",
    "warmup_epochs", "label_smoothing", "augment", "drop_path", "train_seed",
)  # fmt: skip


@dataclass
class Trained:
    model: nn.Module
    ckpt_id: str
    ckpt_dir: Path
    history: pd.DataFrame
    test_accuracy: float
    trained_now: bool  # False when the cached checkpoint was loaded
    seconds: float  # of this call
    train_seconds: float  # of the training that made the checkpoint (summed over resumes)
    weights_sha256: str | None = None  # set when the model came from committed weights


RECIPE_VERSION = 2  # bump when the training code changes what a configuration trains


# Fields added later: part of the key only where a profile changes them, so the ids (and the
# committed weights' records) of every earlier configuration stay valid. The defaults are those of
# when each field was added, not read from `Profile`: changing a Profile default then changes ids.
OPTIONAL_TRAINING_FIELDS = {"optimizer": "adamw", "momentum": 0.9, "channels_last": False,
                            "train_precision": "auto", "pool_first": False, "logit_scale": 1.0}


def training_fields(profile: Profile) -> dict:
    """The profile's fields that change the trained weights (JSON-able)."""
    out = {f: list(v) if isinstance(v, tuple) else v
           for f, v in ((f, getattr(profile, f)) for f in TRAINING_FIELDS)}  # fmt: skip
    out.update({f: getattr(profile, f) for f, default in OPTIONAL_TRAINING_FIELDS.items()
                if getattr(profile, f) != default})  # fmt: skip
    return out


def make_optimizer(model: nn.Module, profile: Profile, device: torch.device,
                   lr_scale: float = 1.0) -> torch.optim.Optimizer:  # fmt: skip
    """The profile's optimiser: AdamW (ViTs), or SGD with Nesterov momentum (ResNets)."""
    lr = profile.lr * lr_scale
    if profile.optimizer == "adamw":
        return torch.optim.AdamW(model.parameters(), lr=lr, weight_decay=profile.weight_decay,
                                 fused=device.type == "cuda")  # fmt: skip
    if profile.optimizer == "sgd":
        return torch.optim.SGD(model.parameters(), lr=lr, momentum=profile.momentum, nesterov=True,
                               weight_decay=profile.weight_decay)  # fmt: skip
    raise ParameterError(f"unknown optimizer {profile.optimizer!r}; valid: adamw, sgd")


def export_weights(trained: Trained, profile: Profile, data_source: str, *, dtype: str = "fp32",
                   shard_mb: float | None = None, test: DeviceBatches | None = None) -> str:  # fmt: skip
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
                recipe=RECIPE_VERSION)  # fmt: skip
    if dtype != "fp32":
        if test is None:
            raise ParameterError(f"exporting {dtype} weights needs the test split: their accuracy is measured")
        rounded = {k: v.to(committed.DTYPES[dtype]).float() if v.is_floating_point() else v for k, v in state.items()}
        model = _inference_model(profile, rounded, trained.ckpt_dir, test.device)
        meta.update(ckpt_id=f"{trained.ckpt_id}-{dtype}", trained_test_accuracy=trained.test_accuracy,
                    test_accuracy=accuracy(model, test, profile.eval_batch_size, "fp32"))  # fmt: skip
    return committed.save(profile.name, state, meta, dtype=dtype, shard_mb=shard_mb)


def checkpoint_id(profile: Profile, data_id: str, weights: str | None = None) -> str:
    config = training_fields(profile)  # tuples as lists: the same JSON, so the same ids
    config.update(data=data_id, weights=str(weights) if weights else None, recipe=RECIPE_VERSION)
    return f"{profile.name}-{stable_hash(config)}"


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


def _inference_model(profile: Profile, state: dict, path: Path, device: torch.device) -> nn.Module:
    """The model every caller gets: drop-path off, the given weights, on `device`, in eval mode,
    with its decisions in fp32 where the profile says (`models.fp32_decisions`)."""
    model = build_model(profile.replace(pretrained=False, drop_path=0.0))
    _load_weights(model, state, path)
    if profile.fp32_decisions:
        fp32_decisions(model)
    return model.to(device).eval()


def lr_lambda(total_steps: int, warmup_steps: int) -> Callable[[int], float]:
    """Linear warm-up, then cosine decay to zero."""

    def f(step: int) -> float:
        if step < warmup_steps:
            return (step + 1) / warmup_steps
        t = (step - warmup_steps) / max(1, total_steps - warmup_steps)
        return 0.5 * (1 + math.cos(math.pi * min(1.0, t)))

    return f


def _snapshot(model: nn.Module, opt, sched, device: torch.device) -> dict:
    """Copies of what one training step changes: weights and buffers, optimiser, scheduler, RNG."""
    import copy

    return dict(model=copy.deepcopy(model.state_dict()), opt=copy.deepcopy(opt.state_dict()),
                sched=copy.deepcopy(sched.state_dict()), rng=torch.get_rng_state(),
                cuda_rng=torch.cuda.get_rng_state(device) if device.type == "cuda" else None)  # fmt: skip


def _restore(saved: dict, model: nn.Module, opt, sched, device: torch.device) -> None:
    model.load_state_dict(saved["model"])
    opt.load_state_dict(saved["opt"])
    sched.load_state_dict(saved["sched"])
    torch.set_rng_state(saved["rng"])
    if saved["cuda_rng"] is not None:
        torch.cuda.set_rng_state(saved["cuda_rng"], device)


def compile_wanted(device: torch.device) -> bool:
    """Whether training compiles the model: `SICS_COMPILE=1`/`0` says, else on CUDA only."""
    flag = os.environ.get("SICS_COMPILE", "").strip()
    if flag not in ("", "0", "1"):
        raise ParameterError(f"SICS_COMPILE must be 0 or 1, got {flag!r}")
    return device.type == "cuda" if not flag else flag == "1"


def train_step(model: Callable, opt: torch.optim.Optimizer, x: torch.Tensor, y: torch.Tensor,
               device: torch.device, label_smoothing: float, sched=None,
               precision: str = "auto") -> torch.Tensor:  # fmt: skip
    """One optimiser step (bf16 autocast on CUDA, or where `precision` says); returns the detached
    loss, no host sync."""
    with autocast(device, precision, cpu_auto=False, emulate=False):
        loss = F.cross_entropy(model(x), y, label_smoothing=label_smoothing)
    opt.zero_grad(set_to_none=True)
    loss.backward()
    opt.step()
    if sched is not None:
        sched.step()
    return loss.detach()


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
    if not profile.pretrained and not committed.retrain_requested():
        found = committed.load(profile.name, training_fields(profile))
        if found is not None:
            state, meta = found
            wpath = committed.paths(profile.name)[1]
            history = pd.DataFrame(meta.get("history", []))
            return Trained(_inference_model(profile, state, wpath, device), meta["ckpt_id"],
                           wpath.parent, history, float(meta["test_accuracy"]), False,
                           time.time() - t0, float(meta.get("train_seconds", 0.0)), meta["sha256"])  # fmt: skip
    if callable(data):
        data = data()
    ckpt_id = checkpoint_id(profile, data.source_id, weights)
    if not profile.pretrained and committed.present(profile.name):
        ckpt_id += "-retrained"  # never shares caches or results with the committed weights
    ckpt_dir = cache_dir() / "checkpoints" / ckpt_id
    final, state_path = ckpt_dir / "model.pt", ckpt_dir / "state.pt"
    if final.exists():
        blob = load_checkpoint(final)
        if not isinstance(blob, dict) or "model" not in blob or "test_accuracy" not in blob:
            raise CheckpointError(f"checkpoint {str(final)!r} is incomplete; delete it to retrain")
        model = _inference_model(profile, blob["model"], final, device)
        history = pd.DataFrame(blob.get("history", []))
        return Trained(model, ckpt_id, ckpt_dir, history, float(blob["test_accuracy"]), False,
                       time.time() - t0, float(history["seconds"].sum()) if len(history) else 0.0)  # fmt: skip

    test = DeviceBatches(data.test_x, data.test_y, device=device, mean=profile.mean,
                         std=profile.std, img_size=profile.img_size)  # fmt: skip
    train = DeviceBatches(data.train_x, data.train_y, device=device, mean=profile.mean,
                          std=profile.std, img_size=profile.img_size)  # fmt: skip
    drop_last = len(train) >= 2 * profile.batch_size  # fixed shapes for torch.compile
    steps_per_epoch = (len(train) // profile.batch_size if drop_last
                       else math.ceil(len(train) / profile.batch_size))  # fmt: skip
    total = steps_per_epoch * profile.epochs
    warmup = max(1, round(profile.warmup_epochs * steps_per_epoch))

    def fresh():
        torch.manual_seed(profile.train_seed)
        model = build_model(profile, weights).to(device)
        opt = make_optimizer(model, profile, device)
        return model, opt, torch.optim.lr_scheduler.LambdaLR(opt, lr_lambda(total, warmup))

    model, opt, sched = fresh()
    history: list[dict] = []
    start_epoch = 0
    if state_path.exists():
        try:
            state = torch.load(state_path, map_location="cpu", weights_only=False)
            model.load_state_dict(state["model"])
            opt.load_state_dict(state["opt"])
            sched.load_state_dict(state["sched"])
            torch.set_rng_state(state["rng"])
            if device.type == "cuda" and state.get("cuda_rng") is not None:
                torch.cuda.set_rng_state(state["cuda_rng"], device)
            history, start_epoch = state["history"], int(state["epoch"])
            print(f"[sics] resuming {ckpt_id} from epoch {start_epoch}/{profile.epochs}")
        except Exception as e:  # a resumable checkpoint is a cache: a damaged one is discarded
            warnings.warn(f"resumable checkpoint {str(state_path)!r} is damaged ({type(e).__name__}); "
                          "training from the start", stacklevel=2)  # fmt: skip
            state_path.unlink(missing_ok=True)
            model, opt, sched = fresh()
            history, start_epoch = [], 0

    use_compile = compile_wanted(device) if compile is None else compile
    step_fn = torch.compile(model) if use_compile else model
    compiled_ok = False
    saved_at = time.time()
    bar = progress_bar(range(start_epoch, profile.epochs), desc=f"train {profile.name}", unit="epoch",
                       disable=not progress)  # fmt: skip
    for epoch in bar:
        te = time.time()
        model.train()
        loss_sum = torch.zeros((), device=device)
        seed = profile.train_seed * 100_003 + epoch
        for x, y in train.batches(profile.batch_size, shuffle=True, augment=profile.augment, seed=seed,
                                  drop_last=drop_last):  # fmt: skip
            args = (opt, x, y, device, profile.label_smoothing, sched, profile.train_precision)
            if step_fn is model or compiled_ok:
                loss_sum += train_step(step_fn, *args)
                continue
            # the first compiled step compiles: a compiler failure must not end the run. What the
            # step may have changed before failing (weights, optimiser, BN statistics, RNG) is
            # restored, so the eager run trains what it would have trained from the start.
            saved = _snapshot(model, opt, sched, device)
            try:
                loss_sum += train_step(step_fn, *args)
            except torch.cuda.OutOfMemoryError:
                raise  # not the compiler's fault: eager would run out of memory too
            except Exception as e:
                why = f"{type(e).__name__}: {str(e).splitlines()[0][:160]}" if str(e) else type(e).__name__
                print(f"[sics] train {profile.name}: torch.compile failed ({why}); training in eager mode",
                      file=sys.stderr, flush=True)  # fmt: skip
                _restore(saved, model, opt, sched, device)
                step_fn = model
                loss_sum += train_step(step_fn, *args)
            compiled_ok = True
        # Monitoring epochs evaluate in the profile's evaluation precision (bf16 is 4x faster on a
        # CPU with AMX: 3 s instead of 11 s per ResNet epoch); the last, whose accuracy is the
        # model's, in fp32 on a CPU (bf16 on CUDA) whatever the CPU.
        last = epoch + 1 == profile.epochs
        model_precision = "auto" if device.type == "cuda" else "fp32"
        acc = accuracy(model, test, profile.eval_batch_size, model_precision if last else profile.eval_precision)
        history.append(dict(epoch=epoch + 1, train_loss=loss_sum.item() / steps_per_epoch,
                            test_accuracy=acc, lr=sched.get_last_lr()[0],
                            seconds=time.time() - te))  # fmt: skip
        bar.set_postfix(loss=f"{history[-1]['train_loss']:.3f}", acc=f"{acc:.3f}")
        note(bar, f"[sics] train {profile.name}: epoch {epoch + 1}/{profile.epochs}, loss "
                  f"{history[-1]['train_loss']:.3f}, test accuracy {acc:.2%} ({history[-1]['seconds']:.0f} s)")  # fmt: skip
        due = profile.ckpt_minutes is not None and time.time() - saved_at >= 60 * profile.ckpt_minutes
        if (epoch + 1) % profile.ckpt_every == 0 or due or epoch + 1 == profile.epochs:
            saved_at = time.time()
            state = dict(model=model.state_dict(), opt=opt.state_dict(), sched=sched.state_dict(),
                         rng=torch.get_rng_state(), history=history, epoch=epoch + 1,
                         cuda_rng=torch.cuda.get_rng_state(device) if device.type == "cuda" else None)  # fmt: skip
            atomic_write(state_path, lambda p, s=state: torch.save(s, p))
        if on_epoch_end is not None:
            on_epoch_end(epoch + 1)

    model.eval()
    test_acc = history[-1]["test_accuracy"] if history else accuracy(model, test, profile.eval_batch_size)
    blob = dict(model=model.state_dict(), history=history, test_accuracy=test_acc)
    atomic_write(final, lambda p: torch.save(blob, p))
    model = _inference_model(profile, blob["model"], final, device)  # as a later load builds it
    pd.DataFrame(history).to_csv(ckpt_dir / "history.csv", index=False)
    write_json(ckpt_dir / "meta.json", dict(ckpt_id=ckpt_id, profile=profile.as_dict(),
                                            data=data.source, test_accuracy=test_acc))  # fmt: skip
    state_path.unlink(missing_ok=True)
    train_seconds = float(sum(h["seconds"] for h in history))
    return Trained(model, ckpt_id, ckpt_dir, pd.DataFrame(history), test_acc, True, time.time() - t0, train_seconds)


def fine_tune(model: nn.Module, profile: Profile, data: Cifar10, device: torch.device, *,
              steps: int, lr_scale: float = 0.1, seed: int = 0) -> nn.Module:  # fmt: skip
    """A short recovery fine-tuning of a pruned model (an opt-in beyond the paper's one-shot).

    `steps` optimiser steps at `lr_scale` x the profile's peak rate, cosine-decayed, same recipe.
    The result depends only on (model, data, steps, seed): batch order and augmentation come
    from generators seeded with `seed`, and any stochastic layer (drop-path, dropout) draws from
    the global RNG reseeded with `seed` inside a fork, so the caller's RNG state is untouched.
    """
    train = DeviceBatches(data.train_x, data.train_y, device=device, mean=profile.mean,
                          std=profile.std, img_size=profile.img_size)  # fmt: skip
    opt = make_optimizer(model, profile, device, lr_scale)
    sched = torch.optim.lr_scheduler.LambdaLR(opt, lr_lambda(steps, 1))
    cuda = list(range(torch.cuda.device_count())) if device.type == "cuda" else []
    with torch.random.fork_rng(devices=cuda):
        torch.manual_seed(seed)
        model.train()
        done, epoch = 0, 0
        while done < steps:
            for x, y in train.batches(profile.batch_size, shuffle=True, augment=profile.augment,
                                      seed=seed * 7919 + epoch):  # fmt: skip
                train_step(model, opt, x, y, device, profile.label_smoothing, sched, profile.train_precision)
                done += 1
                if done >= steps:
                    break
            epoch += 1
    return model.eval()
