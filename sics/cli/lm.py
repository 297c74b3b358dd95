"""Train (or resume) training run k of a byte-level LM profile, measure it on the held-out novel,
and export it beside its outputs: figures/<profile>/ (run 0) or figures/<profile>/runs/<k>/.

    python -m sics.cli.lm --profile lm --run 0 [--text DIR]

Runs in the KV environment (`make kv-env`: transformers). Its record (`weights.json`) holds, beside
the weights' sha256, training fields, recipe hash and training curve: the held-out loss over the
continuation window of every held-out context (nats per byte, bits per character), the next-byte
accuracy there, the unigram and 5-gram baselines, and the context check (the same loss with only
the last `KEEP_LAST` positions of the prefix).
"""

from __future__ import annotations

import argparse
import math
import sys
import time

from ..errors import SicsError

KEEP_LAST = 64  # the context check's window: StreamingLLM's recent positions


def heldout_record(model, corpus, profile) -> dict:
    """The held-out measurements of the record (see the module docstring)."""
    import numpy as np

    from ..analysis.ngram import baseline_bits
    from ..data.text import held_out_contexts
    from ..training.lm import LOG2E, window_loss

    test, m = corpus.test_bytes(), profile.model
    contexts = held_out_contexts(test, m.context, m.window)
    full, accuracy = window_loss(model, contexts, m.context, m.window)
    recent, _ = window_loss(model, contexts, m.context, m.window, keep_last=KEEP_LAST)
    bytes_per_char = len(test) / len(corpus.test)
    base = baseline_bits(corpus.train_bytes(), contexts, m.window)
    return dict(
        contexts=len(contexts), context=m.context, window=m.window, keep_last=KEEP_LAST,
        nats_per_byte=float(full.mean()), bits_per_char=float(full.mean() * LOG2E * bytes_per_char),
        nats_per_byte_last_only=float(recent.mean()),
        context_gain=float(recent.mean() / full.mean() - 1),  # the loss added by keeping only the last positions
        baselines_bits_per_char={k: v * bytes_per_char for k, v in base.items()},
        contexts_worse_without_context=float(np.mean(recent > full)), next_byte_accuracy=float(accuracy.mean()),
    )  # fmt: skip


def train_and_export(profile_name: str, run: int, text: str | None = None) -> dict:
    from ..config import LMConfig, pick_device, resolve_profile
    from ..data.text import load_corpus
    from ..errors import ParameterError
    from ..paths import cache_dir
    from ..training import weights
    from ..training.checkpoints import resolved_recipe
    from ..training.identity import checkpoint_id, recipe_hash, training_fields
    from ..training.lm import train_lm

    p = resolve_profile(profile_name, train_seed=run)
    if not isinstance(p.model, LMConfig):
        raise ParameterError(f"profile {p.name} is not a language model's: lm, lm_repeat or ci_lm")
    corpus = load_corpus(text)
    device = pick_device()
    ckpt_id = checkpoint_id(p, corpus.source_id)
    state_path = cache_dir() / "checkpoints" / ckpt_id / "state.pt"
    model, history = train_lm(p, corpus.train_bytes(), device, state_path)
    t0 = time.time()  # (the held-out record's time; training's is in the history)
    train_seconds = sum(h["seconds"] for h in history)
    record = heldout_record(model, corpus, p)
    recipe = {**resolved_recipe(p, device, corpus.source_id), "compile": False}  # (train_lm never compiles)
    meta = dict(ckpt_id=ckpt_id, profile=p.name, data=corpus.source, training_fields=training_fields(p),
                history=history, train_seconds=round(train_seconds, 1), heldout=record,
                test_accuracy=record["next_byte_accuracy"], resolved_recipe=recipe, recipe_hash=recipe_hash(recipe),
                measured_on=str(device), eval_seconds=round(time.time() - t0, 1))  # fmt: skip
    state = {k: v.detach().clone() for k, v in model.state_dict().items()}
    weights.save(p.name, state, meta, run=run)
    return meta


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--profile", default="lm", help="an LM profile: lm (default), lm_repeat or ci_lm")
    ap.add_argument("--run", type=int, default=0, help="training run k: the recipe with train_seed = k")
    ap.add_argument("--text", default="", help="the corpus (default: $SICS_TEXT)")
    args = ap.parse_args(argv)
    try:
        meta = train_and_export(args.profile, args.run, args.text or None)
    except SicsError as e:
        print(f"error: {e}", file=sys.stderr)
        return 1
    h = meta["heldout"]
    print(f"[sics] {meta['profile']} run {args.run}: {h['bits_per_char']:.3f} bits/char on the held-out windows "
          f"({h['nats_per_byte']:.3f} nats/byte; unigram {h['baselines_bits_per_char']['unigram']:.2f}, "
          f"5-gram {h['baselines_bits_per_char']['5-gram']:.2f}); only the last {h['keep_last']} positions: "
          f"+{h['context_gain']:.1%} loss; {meta['train_seconds'] / 60:.0f} min of training")  # fmt: skip
    return 0 if math.isfinite(h["nats_per_byte"]) else 1


if __name__ == "__main__":
    sys.exit(main())
