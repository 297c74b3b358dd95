"""sics.cli.bench: throughput, FLOPs and MFU on synthetic data (CPU, ci profile, few steps)."""

from __future__ import annotations

import itertools
import json
import math
from types import SimpleNamespace

import pytest
import torch
from torch import nn

from sics.cli import bench
from sics.config import PROFILES
from sics.models import build_model, flops_per_image

CI = PROFILES["ci"]


def analytic_forward_flops(model: nn.Module, img_size: int, patch_size: int, depth: int,
                           embed_dim: int) -> float:  # fmt: skip
    """2 x (linear weights) x tokens + patch-embedding conv + the two attention matmuls."""
    patches = (img_size // patch_size) ** 2
    tokens = patches + 1  # + class token
    linear = sum(m.weight.numel() for m in model.modules() if isinstance(m, nn.Linear))
    conv = sum(m.weight.numel() for m in model.modules() if isinstance(m, nn.Conv2d))
    attention = depth * 2 * 2 * tokens**2 * embed_dim  # q @ k^T and attn @ v
    return 2 * linear * tokens + 2 * conv * patches + attention


@pytest.fixture(scope="module")
def ci_result() -> dict:
    return bench.benchmark(CI, "cpu", steps=2, batch_size=32, eval_batch_size=64)


def test_rates_are_the_timed_images_over_the_reported_seconds(ci_result):
    r = ci_result
    for key in ("train_seconds", "eval_seconds", "train_tflops"):
        assert isinstance(r[key], float) and math.isfinite(r[key]) and r[key] > 0, key
    steps = r["steps"]
    assert r["train_images_per_s"] == pytest.approx(steps * r["batch_size"] / r["train_seconds"])
    assert r["eval_images_per_s"] == pytest.approx(steps * r["eval_batch_size"] / r["eval_seconds"])
    assert r["est_train_seconds"] == pytest.approx(CI.epochs * CI.n_train / r["train_images_per_s"])
    assert r["params"] == sum(p.numel() for p in build_model(CI).parameters())
    # on CPU the defaults follow from the device (none of these was passed)
    assert r["compile"] is False and r["autocast_bf16"] is False and r["warmup_steps"] == 1
    assert r["device_name"] and r["torch"] == torch.__version__


def test_known_rates_steps_and_mfu_under_a_fake_clock(monkeypatch):
    """Each clock read advances 0.25 s, so every timed phase lasts 0.25 s and the rates, the
    estimated training time and the MFU against a stated peak have known values."""
    clock = itertools.count(0.0, 0.25)
    monkeypatch.setattr(bench, "time", SimpleNamespace(perf_counter=lambda: next(clock)))
    monkeypatch.setattr(bench, "peak_flops", lambda device: 100e12)
    seen = []
    real_step = bench.train_step

    def counting_step(model, opt, x, y, *args, **kwargs):
        seen.append((tuple(x.shape), x.dtype, tuple(y.shape)))
        return real_step(model, opt, x, y, *args, **kwargs)

    monkeypatch.setattr(bench, "train_step", counting_step)
    profile = CI.replace(img_size=48)  # the 32 px source must be resized to the profile's size
    r = bench.benchmark(profile, "cpu", steps=3, batch_size=8, eval_batch_size=16)
    assert len(seen) == 1 + 3  # one untimed warm-up step on CPU, then the timed steps
    assert set(seen) == {((8, 3, 48, 48), torch.float32, (8,))}
    assert r["train_seconds"] == r["eval_seconds"] == 0.25
    assert r["train_images_per_s"] == 96.0 and r["eval_images_per_s"] == 192.0  # 3*8, 3*16 / 0.25
    assert r["est_train_seconds"] == pytest.approx(profile.epochs * profile.n_train / 96.0)
    assert r["train_tflops"] == pytest.approx(96.0 * 3 * r["forward_flops_per_image"] / 1e12)
    assert r["peak_tflops"] == 100.0 and r["mfu"] == pytest.approx(r["train_tflops"] / 100.0)
    assert f"{100 * r['mfu']:.1f} %" in bench.format_report(r)
    with pytest.raises(ValueError, match="steps"):
        bench.benchmark(profile, "cpu", steps=0)


def test_flops_match_the_counter_and_an_analytic_estimate(ci_result):
    model = build_model(CI.replace(pretrained=False))
    counted = flops_per_image(model, CI)
    assert ci_result["forward_flops_per_image"] == counted
    assert ci_result["train_flops_per_image"] == 3 * counted
    estimate = analytic_forward_flops(model, CI.model.img_size, CI.model.patch_size, CI.model.depth, CI.model.embed_dim)
    assert 0.5 < counted / estimate < 2.0, (counted, estimate)
    achieved = ci_result["train_images_per_s"] * ci_result["train_flops_per_image"]
    assert ci_result["train_tflops"] == pytest.approx(achieved / 1e12)


def test_flops_scale_with_the_model():
    """A bigger profile counts more FLOPs, and the analytic estimate tracks it too."""
    quick = PROFILES["quick"]
    model = build_model(quick.replace(pretrained=False))
    counted = flops_per_image(model, quick)
    estimate = analytic_forward_flops(model, quick.model.img_size, quick.model.patch_size, quick.model.depth,
                                      quick.model.embed_dim)  # fmt: skip
    assert 0.5 < counted / estimate < 2.0
    assert counted > 10 * flops_per_image(build_model(CI.replace(pretrained=False)), CI)


def test_no_mfu_on_cpu(ci_result):
    assert ci_result["mfu"] is None and ci_result["peak_tflops"] is None
    assert bench.peak_flops(torch.device("cpu")) is None
    assert "MFU" in bench.format_report(ci_result)
    assert bench.format_report(ci_result).count("n/a") >= 2  # peak and MFU


@pytest.mark.parametrize(
    "name, peak",
    [
        ("NVIDIA H100 80GB HBM3", 989e12),
        ("NVIDIA H100 PCIe", 756e12),
        ("NVIDIA H200", 989e12),
        ("NVIDIA A100-SXM4-80GB", 312e12),
        ("NVIDIA GeForce RTX 4090", None),
    ],
)
def test_peak_table(name, peak):
    assert bench.peak_flops_of(name) == peak


def test_cli_writes_json_and_reads_stage_times(tmp_path, monkeypatch, capsys):
    monkeypatch.setenv("SICS_PROFILE", "ci")  # --profile left out: the environment picks it
    monkeypatch.setenv("SICS_FIGURES", str(tmp_path / "figures"))
    prov = tmp_path / "figures" / "ci" / "provenance.json"
    prov.parent.mkdir(parents=True)
    prov.write_text(json.dumps({"stages": {
        "01_finetune": {"seconds": 1.5, "device": "cpu"},
        "make_paper": {"engine": "inline", "seconds_per_notebook": {"01_finetune": 9.25},
                       "total_seconds": 9.25},
    }}))  # fmt: skip
    out = tmp_path / "bench.json"
    argv = ["--steps", "1", "--batch-size", "16", "--eval-batch-size", "32", "--device", "cpu",
            "--json", str(out)]  # fmt: skip
    assert bench.main(argv) == 0
    printed = capsys.readouterr().out
    assert "train images/s" in printed and "eval images/s" in printed
    assert "9.25" in printed and "01_finetune" in printed
    blob = json.loads(out.read_text())
    for key in ("profile", "device", "device_name", "torch", "batch_size", "eval_batch_size",
                "steps", "train_images_per_s", "eval_images_per_s", "forward_flops_per_image",
                "train_flops_per_image", "train_tflops", "mfu", "peak_tflops", "stages"):  # fmt: skip
        assert key in blob, key
    # the CLI passes its options through: 16 and 32 are not the ci profile's own batch sizes
    sizes = (blob["batch_size"], blob["eval_batch_size"])
    assert sizes == (16, 32) != (CI.batch_size, CI.eval_batch_size)
    assert blob["profile"] == "ci" and blob["steps"] == 1
    assert blob["train_images_per_s"] == pytest.approx(16 / blob["train_seconds"])
    assert blob["mfu"] is None and blob["torch"] == torch.__version__
    assert blob["stages"]["01_finetune"] == {"seconds": 1.5}
    assert blob["stages"]["make_paper"]["seconds_per_notebook"] == {"01_finetune": 9.25}


def test_cli_rejects_an_unknown_profile(capsys):
    assert bench.main(["--profile", "nope", "--device", "cpu"]) == 1
    assert "unknown profile" in capsys.readouterr().err


def test_the_resnet_benchmark_times_its_own_recipe(monkeypatch):
    """`make bench PROFILE=resnet` steps the ResNet's SGD in bf16, as its training does, not AdamW."""
    from sics.training import loop

    seen = {}
    step = loop.train_step

    def spy(model, opt, *args, precision="auto", **kw):
        seen["opt"], seen["precision"] = type(opt).__name__, precision
        return step(model, opt, *args, precision=precision, **kw)

    monkeypatch.setattr(bench, "train_step", spy)
    p = PROFILES["ci_resnet"].replace(train_precision="bf16")
    r = bench.benchmark(p, "cpu", steps=1, batch_size=8, eval_batch_size=8)
    assert seen == {"opt": "SGD", "precision": "bf16"}
    assert r["optimizer"] == "sgd" and r["train_precision"] == "bf16" and r["autocast_bf16"] is True
    assert "optimizer sgd, training in bf16" in bench.format_report(r)
    assert bench.benchmark(PROFILES["ci"], "cpu", steps=1, batch_size=8, eval_batch_size=8)["optimizer"] == "adamw"
