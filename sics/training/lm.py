"""Training the KV-cache study's byte-level language models, and their held-out loss.

A step reads `batch_size` sequences of `context + window + 1` bytes (`LMConfig.sequence` + 1) at
random starts in the training texts, so every position a held-out window reaches is trained
(drawn with the train seed, so a run's data order is its own), and minimises the next-byte loss
with AdamW, a linear warm-up and a cosine decay. An epoch is as many bytes as the training texts
hold. The state (weights, optimiser, schedule, both generators, history) is saved every few
minutes and at the end, so a stopped run resumes where it stopped, bit for bit.

The held-out loss is measured on the continuation window of each held-out context
(`sics.data.text.held_out_contexts`): given the whole cached prefix, or only its last positions
(the context check: a model that does not use its context loses nothing without it).
"""

from __future__ import annotations

import math
import time
from pathlib import Path

import numpy as np
import torch

from ..config import Profile
from ..files import atomic_write
from ..models import build_model
from ..models.precision import autocast
from ..progress import bar as progress_bar
from .loop import lr_lambda

SAVE_SECONDS = 300.0  # the state is saved at least this often (and at the end)
LOG2E = 1 / math.log(2)


def total_steps(profile: Profile, n_train_bytes: int) -> int:
    """Optimiser steps of the recipe: `epochs` passes' worth of bytes, `batch_size` sequences a step."""
    return math.ceil(profile.epochs * n_train_bytes / (profile.batch_size * profile.model.sequence))


def sample_batch(stream: np.ndarray, rng: np.random.Generator, batch: int, length: int,
                 repeat_rate: float = 0.0) -> tuple[torch.Tensor, torch.Tensor]:  # fmt: skip
    """(inputs, next-byte targets) of `batch` sequences of `length` positions at random starts;
    with `repeat_rate`, that share of them repeats one of its spans later (`repeat_spans`)."""
    starts = rng.integers(0, len(stream) - length, size=batch)  # (the last start, len - length - 1, included)
    rows = np.stack([stream[s : s + length + 1] for s in starts]).astype(np.int64)
    if repeat_rate:  # (no draw at all without: the plain recipe's stream of batches is unchanged)
        repeat_spans(rows, rng, repeat_rate)
    t = torch.from_numpy(rows)
    return t[:, :-1], t[:, 1:]


REPEAT_SPAN = (16, 64)  # bytes a repeated span holds (inclusive)


def repeat_spans(rows: np.ndarray, rng: np.random.Generator, rate: float) -> None:
    """In place: a share `rate` of the rows copy a span of 16-64 bytes from a random place to a
    random later one, so the text sometimes repeats itself verbatim far back, and a model learns
    to look there (copying: induction heads). The rows keep their length."""
    n = rows.shape[1]
    for i in np.flatnonzero(rng.random(len(rows)) < rate):
        span = min(int(rng.integers(REPEAT_SPAN[0], REPEAT_SPAN[1] + 1)), n // 2)
        src = int(rng.integers(0, n - 2 * span + 1))
        dst = int(rng.integers(src + span, n - span + 1))
        rows[i, dst : dst + span] = rows[i, src : src + span]


def _start(profile: Profile, device: torch.device, steps: int):
    torch.manual_seed(profile.train_seed)
    model = build_model(profile.replace(attention=profile.model.train_attention)).to(device)
    model.config.use_cache = False
    opt = torch.optim.AdamW(model.parameters(), lr=profile.lr, weight_decay=profile.weight_decay, betas=(0.9, 0.95))
    warmup = max(1, round(profile.warmup_epochs / max(profile.epochs, 1e-9) * steps))
    sched = torch.optim.lr_scheduler.LambdaLR(opt, lr_lambda(steps, warmup))
    return model, opt, sched


def train_lm(profile: Profile, stream: np.ndarray, device: torch.device, state_path: Path, *,
             progress: bool = True, stop_after: int | None = None) -> tuple[torch.nn.Module, list[dict]]:  # fmt: skip
    """Train (or resume) the profile's LM on the byte stream; returns (model, history).

    The history has one entry per 50 steps (mean training loss in nats per byte, lr, seconds).
    `stop_after` ends the call after that many steps of this call (the tests' interruption).
    """
    steps = total_steps(profile, len(stream))
    model, opt, sched = _start(profile, device, steps)
    rng, history, step, losses, carried = np.random.default_rng(profile.train_seed), [], 0, [], 0.0
    if state_path.exists():
        state = torch.load(state_path, map_location="cpu", weights_only=False)
        model.load_state_dict(state["model"])
        opt.load_state_dict(state["opt"])
        sched.load_state_dict(state["sched"])
        torch.set_rng_state(state["rng"])
        rng.bit_generator.state = state["np_rng"]
        history, step, losses = state["history"], int(state["step"]), state["losses"]
        carried = float(state["seconds"])  # training time since the last history entry

    def save() -> None:
        state = dict(model=model.state_dict(), opt=opt.state_dict(), sched=sched.state_dict(),
                     rng=torch.get_rng_state(), np_rng=rng.bit_generator.state, history=history, step=step,
                     losses=losses, seconds=carried + time.time() - t0)  # fmt: skip
        atomic_write(state_path, lambda p: torch.save(state, p))

    model.train()
    bar = progress_bar(desc=f"train {profile.name}", total=steps, initial=step, unit="step", disable=not progress)
    saved_at, t0, done_here = time.time(), time.time(), 0
    while step < steps and (stop_after is None or done_here < stop_after):
        x, y = sample_batch(stream, rng, profile.batch_size, profile.model.sequence, profile.model.repeat_rate)
        with autocast(device, profile.train_precision, cpu_auto=False):
            logits = model(input_ids=x.to(device)).logits
        loss = torch.nn.functional.cross_entropy(logits.float().flatten(0, 1), y.to(device).flatten())
        opt.zero_grad(set_to_none=True)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
        opt.step()
        sched.step()
        step, done_here = step + 1, done_here + 1
        losses.append(loss.item())
        bar.update()
        if step % 50 == 0 or step == steps:
            history.append(dict(step=step, train_loss=float(np.mean(losses)), lr=sched.get_last_lr()[0],
                                seconds=round(carried + time.time() - t0, 1)))  # fmt: skip
            bar.set_postfix(loss=f"{history[-1]['train_loss']:.3f}")
            losses, t0, carried = [], time.time(), 0.0
        if time.time() - saved_at > SAVE_SECONDS or step == steps:
            save()
            saved_at = time.time()
    bar.close()
    if step < steps:
        save()
    return model.eval(), history


@torch.no_grad()
def window_loss(model: torch.nn.Module, contexts: np.ndarray, context: int, window: int, *,
                keep_last: int | None = None, batch: int = 32,
                device: torch.device | None = None) -> tuple[np.ndarray, np.ndarray]:  # fmt: skip
    """Per held-out context, (the mean next-byte loss in nats, the next-byte accuracy) over its
    continuation window, given the whole prefix, or only its last `keep_last` positions
    (positions renumbered from 0, as a model that never saw the rest would see them)."""
    device = device or next(model.parameters()).device
    start = 0 if keep_last is None else context - keep_last
    losses, hits = [], []
    for i in range(0, len(contexts), batch):
        rows = torch.from_numpy(contexts[i : i + batch, start:].astype(np.int64)).to(device)
        logits = model(input_ids=rows[:, :-1]).logits[:, -window:].float()
        target = rows[:, -window:]
        nll = torch.nn.functional.cross_entropy(logits.flatten(0, 1), target.flatten(), reduction="none")
        losses.append(nll.view(len(rows), window).mean(1).cpu().numpy())
        hits.append((logits.argmax(-1) == target).float().mean(1).cpu().numpy())
    return np.concatenate(losses), np.concatenate(hits)
