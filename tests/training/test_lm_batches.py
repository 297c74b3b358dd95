"""The LM's training batches (no transformers needed): sequences as long as a held-out context's
prefix and window, at every start the stream allows, the targets shifted by one."""

import numpy as np
import torch

from sics.config import resolve_profile
from sics.training.lm import sample_batch, total_steps


def test_training_sequences_reach_every_position_a_held_out_window_does():
    m = resolve_profile("lm").model
    assert m.sequence == m.context + m.window == 544
    stream = np.arange(200, dtype=np.uint8)
    x, y = sample_batch(stream, np.random.default_rng(0), 4000, 150)
    assert x.shape == (4000, 150) and np.array_equal(x[:, 1:].numpy(), y[:, :-1].numpy())
    assert set(x[:, 0].tolist()) == set(range(0, 50))  # starts 0 .. len - length - 1, the last included
    assert total_steps(resolve_profile("lm"), 3_591_623) == 826  # 4 epochs of 32 x 544, rounded up


def test_the_study_attention_is_not_in_the_lm_checkpoint_key():
    from sics.training.identity import checkpoint_id

    p = resolve_profile("lm")
    assert checkpoint_id(p, "d") == checkpoint_id(p.replace(attention="sdpa"), "d")
    assert checkpoint_id(p, "d") != checkpoint_id(p.replace(window=16), "d")


def test_repeated_spans_copy_a_span_later_and_the_plain_recipe_draws_nothing_more():
    from sics.training.lm import REPEAT_SPAN, repeat_spans

    stream = np.random.default_rng(1).integers(0, 256, 100_000).astype(np.uint8)
    a, b = np.random.default_rng(5), np.random.default_rng(5)
    x0, _ = sample_batch(stream, a, 8, 544)
    x1, _ = sample_batch(stream, b, 8, 544, repeat_rate=0.0)
    assert torch.equal(x0, x1) and a.bit_generator.state == b.bit_generator.state  # rate 0: the old batches
    rows = np.random.default_rng(2).integers(0, 256, (400, 545))
    before = rows.copy()
    repeat_spans(rows, np.random.default_rng(3), 0.5)
    changed = (rows != before).any(1)
    assert 0.4 < changed.mean() < 0.6  # about half the rows
    for r, o in zip(rows[changed][:20], before[changed][:20], strict=True):
        diff = np.flatnonzero(r != o)
        dst, last = int(diff[0]), int(diff[-1])
        assert last - dst < REPEAT_SPAN[1]  # one span, at most 64 bytes
        copied = r[dst : last + 1]
        assert any(np.array_equal(copied, o[s : s + len(copied)]) for s in range(0, dst))  # from earlier on
