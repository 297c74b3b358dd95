"""How much could a byte-level LM gain from the part of its context beyond the last 64 positions?
Prints figures; writes nothing. Run in the KV environment, on committed LM weights:

    SICS_TEXT=/path/to/janeaustenr .venv-kv/bin/python tools/lm_context_bound.py [--profile lm] [--run 0]

Two measurements on the held-out novel's windows (the context check's, docs/protocol.md §8):
- **Does the model copy?** Each window is replaced by a copy of 32 bytes from far back in its own
  context (bytes 200–231). A model that copies (induction) predicts the copy far better with the
  whole prefix than with only the last 64 positions.
- **What could copying save at most?** An oracle copier predicts a window byte perfectly wherever an
  n-byte suffix of what precedes it also occurs beyond the last 64 positions followed by that same
  byte, and nowhere in the last 64. The share of the model's last-64 loss on those bytes bounds
  what such copying could add to the context check, at each context length (the model's loss is
  always read with the last 64 positions, so the bound needs no model of the longer context).
"""

from __future__ import annotations

import argparse

import numpy as np
import torch

from sics.config import resolve_profile
from sics.data.text import held_out_contexts, load_corpus
from sics.errors import SicsError
from sics.models import build_model
from sics.training import weights
from sics.training.identity import training_fields
from sics.training.lm import window_loss

KEEP = 64  # the context check's recent positions
FAR_SPAN = 200  # where the copied span starts in the copy test


def copy_test(model, contexts: np.ndarray, context: int, window: int) -> tuple[float, float]:
    """(loss with the whole prefix, loss with the last KEEP) in nats per byte, over windows that
    repeat bytes FAR_SPAN..FAR_SPAN + window of their own context."""
    rep = contexts.copy()
    rep[:, -window:] = rep[:, FAR_SPAN : FAR_SPAN + window]
    full, _ = window_loss(model, rep, context, window)
    recent, _ = window_loss(model, rep, context, window, keep_last=KEEP)
    return float(full.mean()), float(recent.mean())


def far_only_copies(contexts: np.ndarray, window: int, n: int) -> np.ndarray:
    """(contexts, window) True where an n-byte suffix match beyond the last KEEP prefix positions,
    and none within them, continues with the true byte."""
    length = contexts.shape[1]
    far_end = length - window - KEEP
    mask = np.zeros((len(contexts), window), dtype=bool)
    for c, row in enumerate(contexts):
        b = row.tobytes()
        for w, t in enumerate(range(length - window, length)):
            suffix, far, near = b[t - n : t], False, False
            j = b.find(suffix, 0, t - 1)
            while j != -1 and j + n < t:
                if b[j + n] == b[t]:
                    far, near = far or j + n < far_end, near or j + n >= far_end
                j = b.find(suffix, j + 1, t - 1)
            mask[c, w] = far and not near
    return mask


def recent_losses(model, contexts: np.ndarray, window: int, batch: int = 32) -> np.ndarray:
    """Per window byte, the loss in nats given only the last KEEP prefix positions."""
    out = []
    for i in range(0, len(contexts), batch):
        rows = torch.from_numpy(contexts[i : i + batch, -(window + KEEP) :].astype(np.int64))
        logits = model(input_ids=rows[:, :-1]).logits[:, -window:].float()
        out.append(torch.nn.functional.cross_entropy(logits.transpose(1, 2), rows[:, -window:], reduction="none").numpy())
    return np.concatenate(out)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--profile", default="lm")
    ap.add_argument("--run", type=int, default=0)
    ap.add_argument("--text", default=None, help="the corpus (default: $SICS_TEXT)")
    ap.add_argument("--contexts", type=int, nargs="+", default=[512, 1024, 2048, 4096])
    ap.add_argument("--n", type=int, default=200, help="held-out windows per measurement, spread over the novel")
    args = ap.parse_args()
    p = resolve_profile(args.profile, train_seed=args.run)
    loaded = weights.load(p.name, training_fields(p), args.run)
    if loaded is None:
        raise SicsError(f"no committed weights of {p.name} run {args.run}")
    model = build_model(p)
    model.load_state_dict(loaded[0])
    model.eval()
    corpus, m = load_corpus(args.text), p.model
    test = corpus.test_bytes()

    def spread(ctx: np.ndarray) -> np.ndarray:
        return ctx[np.linspace(0, len(ctx) - 1, min(args.n, len(ctx))).astype(int)]

    with torch.no_grad():
        full, recent = copy_test(model, spread(held_out_contexts(test, m.context, m.window)), m.context, m.window)
        print(f"{p.name} run {args.run}: a window copying bytes {FAR_SPAN}-{FAR_SPAN + m.window - 1} of its context: "
              f"{full:.3f} nats/byte with the whole prefix, {recent:.3f} with the last {KEEP} "
              f"({1 - full / recent:+.1%} lower with the whole prefix)")  # fmt: skip
        for length in args.contexts:
            ctx = spread(held_out_contexts(test, length, m.window))
            loss = recent_losses(model, ctx, m.window)
            shares = []
            for n in (4, 6):
                mask = far_only_copies(ctx, m.window, n)
                shares.append(f"{n}-byte suffix: {mask.mean():.1%} of window bytes, {loss[mask].sum() / loss.sum():.1%} of the loss")
            print(f"context {length}: an oracle copier from beyond the last {KEEP} could save at most: " + "; ".join(shares), flush=True)


if __name__ == "__main__":
    main()
