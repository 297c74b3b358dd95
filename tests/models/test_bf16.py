"""bf16 emulated in fp32: the rounding of native autocast, at fp32 speed on CPUs without bf16 units."""

from __future__ import annotations

import pytest
import torch

from sics.config import resolve_profile
from sics.errors import ParameterError
from sics.models import bf16, build_model, fp32_decisions
from sics.models.precision import FP32Linear, autocast, emulates_bf16, precision_label

CPU = torch.device("cpu")


def logits(model, x, how: str) -> torch.Tensor:
    with torch.no_grad():
        if how == "fp32":
            return model(x)
        ctx = bf16.EmulatedBf16() if how == "emulated" else torch.autocast("cpu", dtype=torch.bfloat16)
        with ctx:
            return model(x)


@pytest.mark.parametrize("name", ["ci", "ci_resnet"])
def test_emulated_bf16_rounds_as_native_autocast_does(name):
    torch.manual_seed(0)
    model = build_model(resolve_profile(name)).eval()
    x = torch.randn(256, 3, 32, 32)
    fp32, native, emulated = (logits(model, x, how) for how in ("fp32", "native", "emulated"))
    assert native.dtype == emulated.dtype == torch.bfloat16  # autocast returns the head's output in bf16
    scale = fp32.abs().max().item()
    # the rounding happens: emulation is not fp32 ...
    assert (emulated.float() - fp32).abs().max().item() > 1e-4 * scale
    # ... and it is native bf16's, up to accumulation order: far closer to native than bf16's step
    # to fp32 is, and the argmax agrees on (nearly) every input
    d_native = (emulated.float() - native.float()).abs().max().item()
    assert d_native <= 4 * 2**-8 * scale
    agree = (emulated.float().argmax(1) == native.float().argmax(1)).float().mean().item()
    assert agree >= 0.98


def test_fp32_decision_layers_escape_the_emulation():
    torch.manual_seed(0)
    model = fp32_decisions(build_model(resolve_profile("ci")).eval())
    assert isinstance(model.head, FP32Linear)
    feats = torch.randn(8, model.head.in_features)
    with torch.no_grad(), bf16.EmulatedBf16():
        out = model.head(feats)
    assert out.dtype == torch.float32
    torch.testing.assert_close(out, torch.nn.functional.linear(feats, model.head.weight, model.head.bias))


def test_sics_bf16_chooses_and_is_checked(monkeypatch):
    monkeypatch.setattr("sics.hardware.cpu_has_fast_bf16", lambda: False)
    monkeypatch.delenv("SICS_BF16", raising=False)
    assert emulates_bf16(CPU, "bf16") and not emulates_bf16(CPU, "fp32")
    assert isinstance(autocast(CPU, "bf16"), bf16.EmulatedBf16)
    assert isinstance(autocast(CPU, "bf16", emulate=False), torch.autocast)  # (training's)
    assert precision_label(CPU, "bf16") == "cpu-bf16 (emulated in fp32)"
    monkeypatch.setenv("SICS_BF16", "native")
    assert not emulates_bf16(CPU, "bf16") and precision_label(CPU, "bf16") == "cpu-bf16"
    monkeypatch.setattr("sics.hardware.cpu_has_fast_bf16", lambda: True)
    monkeypatch.setenv("SICS_BF16", "auto")
    assert not emulates_bf16(CPU, "bf16")  # native where bf16 units exist
    monkeypatch.setenv("SICS_BF16", "emulated")
    assert emulates_bf16(CPU, "bf16")
    monkeypatch.setenv("SICS_BF16", "fast")
    with pytest.raises(ParameterError, match="SICS_BF16"):
        emulates_bf16(CPU, "bf16")
