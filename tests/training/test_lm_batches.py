"""The LM's training batches (no transformers needed): sequences as long as a held-out context's
prefix and window, at every start the stream allows, the targets shifted by one."""

import numpy as np

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
