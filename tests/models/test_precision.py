"""Precision where it decides: with `fp32_decisions` the classifier's argmax and the token
importance do not depend on bf16 rounding."""

from __future__ import annotations

import numpy as np
import torch

from sics.config import resolve_profile
from sics.data import DeviceBatches
from sics.models import build_model, fp32_decisions
from sics.models.evaluate import predict_correct
from sics.models.precision import FP32Linear
from sics.study.study import prepare


def near_tie_model(decide_in_fp32: bool) -> torch.nn.Module:
    """The ci ViT with classes 0 and 1 scored by the same head row, class 1 higher by 2^-10:
    closer than one bf16 step (2^-7 at 1), so in bf16 the two logits tie and argmax says 0."""
    torch.manual_seed(0)
    model = build_model(resolve_profile("ci")).eval()
    with torch.no_grad():
        model.head.weight[1] = model.head.weight[0]
        model.head.weight[2:] = 0
        model.head.bias.zero_()
        model.head.bias[:2] = 8.0  # far above the other classes' 0 and the features' share
        model.head.bias[1] += 2.0**-10 * 8
    return fp32_decisions(model) if decide_in_fp32 else model


def test_logits_closer_than_one_bf16_step_are_ranked_in_fp32():
    p = resolve_profile("ci")
    x = torch.randint(0, 256, (64, 3, 32, 32), dtype=torch.uint8)
    split = DeviceBatches(x, torch.ones(64, dtype=torch.long), device=torch.device("cpu"), mean=p.model.mean,
                          std=p.model.std, img_size=p.model.img_size)  # fmt: skip
    plain, decided = near_tie_model(False), near_tie_model(True)
    assert isinstance(decided.head, FP32Linear) and set(decided.state_dict()) == set(plain.state_dict())
    assert predict_correct(plain, split, 64, "fp32").all()  # in fp32 class 1 wins everywhere
    assert predict_correct(plain, split, 64, "bf16").float().mean() < 0.5  # bf16 ties it away
    assert predict_correct(decided, split, 64, "bf16").all()  # the fp32 head under bf16 autocast


def test_token_importance_under_a_bf16_evaluation_is_the_fp32_one(tiny_tree):
    def state(**changes):
        study = prepare("ci", str(tiny_tree), device="cpu", progress=False, unit="tokens", epochs=1, **changes)
        return study, study.unit._state(study.selection.inputs)["importance"]

    fp32_study, fp32 = state(eval_precision="fp32")
    _, decided = state(eval_precision="bf16")  # ci has fp32_decisions
    _, rounded = state(eval_precision="bf16", fp32_decisions=False)
    assert np.array_equal(decided, fp32)
    assert not np.array_equal(rounded, fp32)  # the check can tell: bf16 importances differ
    kept = fp32_study.masks("magnitude", 0.5)[1]
    study, _ = state(eval_precision="bf16")
    assert all(np.array_equal(a, b) for a, b in zip(study.masks("magnitude", 0.5)[1], kept, strict=True))
