"""The KV study's byte-level LMs (in the KV environment: `make kv-env`; skipped without
transformers): a stopped training run resumes to the same weights, and the held-out loss with
the whole prefix kept equals the plain one."""

from __future__ import annotations

import numpy as np
import pytest
import torch

pytest.importorskip("transformers")

from sics.config import resolve_profile  # noqa: E402
from sics.data.text import encode, held_out_contexts  # noqa: E402
from sics.training.lm import total_steps, train_lm, window_loss  # noqa: E402

TEXT = encode("It is a truth universally acknowledged, that a single man in possession of a good fortune, "
              "must be in want of a wife. " * 60)  # fmt: skip


@pytest.fixture
def profile():
    return resolve_profile("ci_lm", epochs=0.5)


def test_a_stopped_run_resumes_to_the_same_weights(profile, tmp_path):
    steps = total_steps(profile, len(TEXT))
    assert steps >= 4
    whole, history = train_lm(profile, TEXT, torch.device("cpu"), tmp_path / "a.pt", progress=False)
    train_lm(profile, TEXT, torch.device("cpu"), tmp_path / "b.pt", progress=False, stop_after=steps // 2)
    resumed, again = train_lm(profile, TEXT, torch.device("cpu"), tmp_path / "b.pt", progress=False)
    a, b = whole.state_dict(), resumed.state_dict()
    assert all(torch.equal(a[k], b[k]) for k in a)
    assert [h["train_loss"] for h in history] == [h["train_loss"] for h in again]


def test_the_window_loss_is_the_models_and_the_context_check_drops_the_prefix(profile, tmp_path):
    model, _ = train_lm(profile, TEXT, torch.device("cpu"), tmp_path / "s.pt", progress=False)
    L = profile.model.context
    ctx = held_out_contexts(TEXT, L, 8)
    loss, acc = window_loss(model, ctx, L, 8)
    same, _ = window_loss(model, ctx, L, 8, keep_last=L)
    assert np.allclose(loss, same) and loss.shape == acc.shape == (len(ctx),)
    rows = torch.from_numpy(ctx[:2].astype(np.int64))
    logits = model(input_ids=rows[:, :-1]).logits[:, -8:]
    direct = torch.nn.functional.cross_entropy(logits.flatten(0, 1), rows[:, -8:].flatten(), reduction="none")
    assert np.allclose(direct.view(2, 8).mean(1).detach().numpy(), loss[:2], atol=1e-5)
    short, _ = window_loss(model, ctx, L, 8, keep_last=8)
    assert not np.allclose(short, loss)  # a shorter prefix is another input
