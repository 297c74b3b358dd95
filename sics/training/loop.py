"""The training loop, visible and short: the profile's optimiser and schedule, one step, epochs
with resumable checkpoints, and recovery fine-tuning of a pruned model.

An interrupted run resumes from its last state: model, optimiser, schedule and RNG state are saved
atomically every `ckpt_every` epochs (or `ckpt_minutes`), and the data order of epoch e depends
only on (seed, e), so a resumed run retraces the uninterrupted one. A damaged resumable state is a
cache: it is discarded with a warning and training starts over. Recovery fine-tuning draws every
random number (batch order, augmentation, any stochastic layer) from its own seed.
"""

from __future__ import annotations

import copy
import math
import os
import sys
import time
import warnings
from collections.abc import Callable
from pathlib import Path

import torch
import torch.nn.functional as F
from torch import nn

from ..config import Profile
from ..data import Cifar10, DeviceBatches
from ..data.registry import batches_of
from ..errors import ParameterError
from ..files import atomic_write
from ..models import build_model
from ..models.evaluate import accuracy
from ..models.precision import autocast
from ..progress import bar as progress_bar
from ..progress import note


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


def lr_lambda(total_steps: int, warmup_steps: int) -> Callable[[int], float]:
    """Linear warm-up, then cosine decay to zero."""

    def f(step: int) -> float:
        if step < warmup_steps:
            return (step + 1) / warmup_steps
        t = (step - warmup_steps) / max(1, total_steps - warmup_steps)
        return 0.5 * (1 + math.cos(math.pi * min(1.0, t)))

    return f


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


def _snapshot(model: nn.Module, opt, sched, device: torch.device) -> dict:
    """Copies of what one training step changes: weights and buffers, optimiser, scheduler, RNG."""
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


def _first_compiled_step(step_fn, model: nn.Module, args: tuple, name: str):
    """The first step of a compiled model, which compiles: a compiler failure must not end the
    run. What the step may have changed before failing (weights, optimiser, BN statistics, RNG) is
    restored, and the step runs eagerly, so the run trains what it would have trained eagerly.
    Returns (loss, the step function from now on)."""
    opt, device, sched = args[0], args[3], args[5]
    saved = _snapshot(model, opt, sched, device)
    try:
        return train_step(step_fn, *args), step_fn
    except torch.cuda.OutOfMemoryError:
        raise  # not the compiler's fault: eager would run out of memory too
    except Exception as e:
        why = f"{type(e).__name__}: {str(e).splitlines()[0][:160]}" if str(e) else type(e).__name__
        print(f"[sics] train {name}: torch.compile failed ({why}); training in eager mode",
              file=sys.stderr, flush=True)  # fmt: skip
        _restore(saved, model, opt, sched, device)
        return train_step(model, *args), model


def _resume(path: Path, model: nn.Module, opt, sched, device: torch.device) -> tuple[list[dict], int]:
    """Load a resumable state into model, optimiser, schedule and RNG; return (history, epoch)."""
    state = torch.load(path, map_location="cpu", weights_only=False)
    model.load_state_dict(state["model"])
    opt.load_state_dict(state["opt"])
    sched.load_state_dict(state["sched"])
    torch.set_rng_state(state["rng"])
    if device.type == "cuda" and state.get("cuda_rng") is not None:
        torch.cuda.set_rng_state(state["cuda_rng"], device)
    return state["history"], int(state["epoch"])


def _save_state(path: Path, model: nn.Module, opt, sched, device: torch.device, history: list[dict],
                epoch: int) -> None:  # fmt: skip
    state = dict(model=model.state_dict(), opt=opt.state_dict(), sched=sched.state_dict(),
                 rng=torch.get_rng_state(), history=history, epoch=epoch,
                 cuda_rng=torch.cuda.get_rng_state(device) if device.type == "cuda" else None)  # fmt: skip
    atomic_write(path, lambda p: torch.save(state, p))


def _start(profile: Profile, device: torch.device, weights: str | None, total: int, warmup: int,
           state_path: Path, label: str):  # fmt: skip
    """(model, optimiser, schedule, history, first epoch): fresh from the training seed, or resumed
    from a resumable state at `state_path`."""

    def fresh():
        torch.manual_seed(profile.train_seed)
        model = build_model(profile, weights).to(device)
        opt = make_optimizer(model, profile, device)
        return model, opt, torch.optim.lr_scheduler.LambdaLR(opt, lr_lambda(total, warmup))

    model, opt, sched = fresh()
    if state_path.exists():
        try:
            history, epoch = _resume(state_path, model, opt, sched, device)
            print(f"[sics] resuming {label} from epoch {epoch}/{profile.epochs}")
            return model, opt, sched, history, epoch
        except Exception as e:  # a resumable checkpoint is a cache: a damaged one is discarded
            warnings.warn(f"resumable checkpoint {str(state_path)!r} is damaged ({type(e).__name__}); "
                          "training from the start", stacklevel=3)  # fmt: skip
            state_path.unlink(missing_ok=True)
            model, opt, sched = fresh()
    return model, opt, sched, [], 0


def _epoch_accuracy(model: nn.Module, test: DeviceBatches, profile: Profile, device: torch.device,
                    last: bool) -> float:  # fmt: skip
    """Monitoring epochs evaluate in the profile's evaluation precision (bf16 is 4x faster on a CPU
    with AMX: 3 s instead of 11 s per ResNet epoch); the last, whose accuracy is the model's, in
    fp32 on a CPU (bf16 on CUDA) whatever the CPU."""
    final = "auto" if device.type == "cuda" else "fp32"
    return accuracy(model, test, profile.eval_batch_size, final if last else profile.eval_precision)


def train(profile: Profile, data: Cifar10, device: torch.device, state_path: Path, *,
          weights: str | None = None, progress: bool = True, on_epoch_end: Callable[[int], None] | None = None,
          compile: bool | None = None, label: str = "") -> tuple[nn.Module, list[dict]]:  # fmt: skip
    """Train the profile's model from its seed, resuming from `state_path` if it holds a resumable
    state (saved there every `ckpt_every` epochs or `ckpt_minutes`); return (model, history)."""
    ckpt_id = label or profile.name
    test = batches_of(data.test_x, data.test_y, profile, device)
    split = batches_of(data.train_x, data.train_y, profile, device)
    drop_last = len(split) >= 2 * profile.batch_size  # fixed shapes for torch.compile
    steps_per_epoch = (len(split) // profile.batch_size if drop_last
                       else math.ceil(len(split) / profile.batch_size))  # fmt: skip
    total = steps_per_epoch * profile.epochs
    warmup = max(1, round(profile.warmup_epochs * steps_per_epoch))

    model, opt, sched, history, start_epoch = _start(profile, device, weights, total, warmup, state_path, ckpt_id)
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
        for x, y in split.batches(profile.batch_size, shuffle=True, augment=profile.augment, seed=seed,
                                  drop_last=drop_last):  # fmt: skip
            args = (opt, x, y, device, profile.label_smoothing, sched, profile.train_precision)
            if step_fn is model or compiled_ok:
                loss_sum += train_step(step_fn, *args)
            else:
                loss, step_fn = _first_compiled_step(step_fn, model, args, profile.name)
                loss_sum += loss
                compiled_ok = True
        acc = _epoch_accuracy(model, test, profile, device, last=epoch + 1 == profile.epochs)
        history.append(dict(epoch=epoch + 1, train_loss=loss_sum.item() / steps_per_epoch,
                            test_accuracy=acc, lr=sched.get_last_lr()[0],
                            seconds=time.time() - te))  # fmt: skip
        bar.set_postfix(loss=f"{history[-1]['train_loss']:.3f}", acc=f"{acc:.3f}")
        note(bar, f"[sics] train {profile.name}: epoch {epoch + 1}/{profile.epochs}, loss "
                  f"{history[-1]['train_loss']:.3f}, test accuracy {acc:.2%} ({history[-1]['seconds']:.0f} s)")  # fmt: skip
        due = profile.ckpt_minutes is not None and time.time() - saved_at >= 60 * profile.ckpt_minutes
        if (epoch + 1) % profile.ckpt_every == 0 or due or epoch + 1 == profile.epochs:
            saved_at = time.time()
            _save_state(state_path, model, opt, sched, device, history, epoch + 1)
        if on_epoch_end is not None:
            on_epoch_end(epoch + 1)

    return model, history


def fine_tune(model: nn.Module, profile: Profile, data: Cifar10, device: torch.device, *,
              steps: int, lr_scale: float = 0.1, seed: int = 0) -> nn.Module:  # fmt: skip
    """A short recovery fine-tuning of a pruned model (an opt-in beyond the paper's one-shot).

    `steps` optimiser steps at `lr_scale` x the profile's peak rate, cosine-decayed, same recipe.
    The result depends only on (model, data, steps, seed): batch order and augmentation come
    from generators seeded with `seed`, and any stochastic layer (drop-path, dropout) draws from
    the global RNG reseeded with `seed` inside a fork, so the caller's RNG state is untouched.
    """
    split = batches_of(data.train_x, data.train_y, profile, device)
    opt = make_optimizer(model, profile, device, lr_scale)
    sched = torch.optim.lr_scheduler.LambdaLR(opt, lr_lambda(steps, 1))
    cuda = list(range(torch.cuda.device_count())) if device.type == "cuda" else []
    with torch.random.fork_rng(devices=cuda):
        torch.manual_seed(seed)
        model.train()
        done, epoch = 0, 0
        while done < steps:
            for x, y in split.batches(profile.batch_size, shuffle=True, augment=profile.augment,
                                      seed=seed * 7919 + epoch):  # fmt: skip
                train_step(model, opt, x, y, device, profile.label_smoothing, sched, profile.train_precision)
                done += 1
                if done >= steps:
                    break
            epoch += 1
    return model.eval()
