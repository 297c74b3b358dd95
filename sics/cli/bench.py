"""Throughput, FLOPs and MFU of a profile's model, on synthetic data (no dataset, no weights).

Training steps mirror `sics.training.loop`: uint8 batches held on the device go through
`DeviceBatches.prepare` (the profile's augmentation and the resize to `img_size`), bf16 autocast
and torch.compile on CUDA, cross-entropy with label smoothing, AdamW (fused on CUDA). Evaluation
mirrors `sics.models.evaluate`: eval mode, no_grad, autocast, un-augmented batches.
"""

from __future__ import annotations

import argparse
import json
import math
import os
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import torch

from ..config import PROFILES, Profile, pick_device, resolve_profile
from ..data import DeviceBatches
from ..errors import SicsError
from ..files import write_json
from ..models import NUM_CLASSES, build_model, count_params, flops_per_image
from ..models.precision import autocast, cpu_has_fast_bf16, emulates_bf16, precision, uses_bf16
from ..paths import REPO
from ..provenance import device_name
from ..training.loop import compile_wanted, make_optimizer, train_step

# Dense bf16 tensor-core peaks (FLOP/s). First match on the device name wins, so the specific
# H100 variants come before the generic entry (SXM). GH200 matches "H200": same peak as H100 SXM.
PEAK_BF16_FLOPS: tuple[tuple[str, float], ...] = (
    ("H100 PCIe", 756e12),
    ("H100 NVL", 835e12),
    ("H100", 989e12),
    ("H200", 989e12),
    ("A100", 312e12),
)
SOURCE_SIZE = 32  # CIFAR-10 is held at 32x32; `prepare` resizes to the profile's img_size
TRAIN_SET_SIZE = 50_000  # CIFAR-10 train split, for the estimated training time


def peak_flops(device: torch.device) -> float | None:
    """Known dense bf16 peak of a CUDA device, else None (CPU or an unknown GPU)."""
    if device.type != "cuda":
        return None
    return peak_flops_of(torch.cuda.get_device_name(device))


def peak_flops_of(name: str) -> float | None:
    """Peak of a device by its name (see PEAK_BF16_FLOPS), None when unknown."""
    for key, peak in PEAK_BF16_FLOPS:
        if key.lower() in name.lower():
            return peak
    return None


def _sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def _timed(fn: Callable[[], None], device: torch.device, warmup: int, steps: int) -> float:
    """Seconds for `steps` calls of `fn` after `warmup` untimed calls."""
    for _ in range(warmup):
        fn()
    _sync(device)
    t0 = time.perf_counter()
    for _ in range(steps):
        fn()
    _sync(device)
    return time.perf_counter() - t0


def stage_seconds(profile: str) -> dict[str, Any]:
    """Wall time of each `make paper` stage from figures/<profile>/provenance.json ({} if none)."""
    root = Path(os.environ.get("SICS_FIGURES") or REPO / "figures")
    path = root / profile / "provenance.json"  # not figures_dir(): that would create the folder
    try:
        stages = json.loads(path.read_text()).get("stages", {})
    except (OSError, ValueError, AttributeError):
        return {}
    out: dict[str, Any] = {}
    for name, info in stages.items() if isinstance(stages, dict) else ():
        if not isinstance(info, dict):
            continue
        keys = ("seconds", "seconds_per_notebook", "total_seconds")
        entry = {k: info[k] for k in keys if k in info}
        if entry:
            out[name] = entry
    return out


def _time_training(model, profile: Profile, device: torch.device, pool: DeviceBatches, bs: int, steps: int,
                   warmup: int, use_compile: bool) -> float:  # fmt: skip
    """Seconds for `steps` training steps: training's own optimiser and step (its precision
    included), so the figures cannot drift from what training runs."""
    opt = make_optimizer(model, profile, device)
    step_fn = torch.compile(model) if use_compile else model

    def one_step() -> None:
        idx = torch.randint(0, len(pool), (bs,), device=device)
        x, y = pool.prepare(pool.x[idx], profile.augment), pool.y[idx]
        train_step(step_fn, opt, x, y, device, profile.label_smoothing, precision=profile.train_precision)

    model.train()
    return _timed(one_step, device, warmup, steps)


def _time_evaluation(model, pool: DeviceBatches, ebs: int, device: torch.device, steps: int) -> dict[str, float]:
    """Evaluation images/s in both precisions, in one process: which is faster depends on the
    hardware (on CPUs without AMX or AVX-512 BF16, bf16 runs emulated in fp32, `sics.models.bf16`)."""

    @torch.no_grad()
    def eval_step(prec: str) -> None:
        x, y = pool.prepare(pool.x[:ebs]), pool.y[:ebs]
        with autocast(device, prec):
            (model(x).argmax(1) == y).sum()

    model.eval()
    return {prec: steps * ebs / _timed(lambda p=prec: eval_step(p), device, 1, steps) for prec in ("fp32", "bf16")}


def _pool(n: int, profile: Profile, device: torch.device) -> DeviceBatches:
    """n random uint8 images at CIFAR's size, with labels, on the device."""
    g = torch.Generator().manual_seed(0)
    return DeviceBatches.of(torch.randint(0, 256, (n, 3, SOURCE_SIZE, SOURCE_SIZE), dtype=torch.uint8, generator=g),
                            torch.randint(0, NUM_CLASSES, (n,), generator=g), profile, device)  # fmt: skip


def _setup(profile: Profile, device: torch.device, use_compile: bool) -> dict[str, Any]:
    """What was benchmarked, and how."""
    bf16_training = uses_bf16(device, profile.train_precision, cpu_auto=False)
    return dict(profile=profile.name, device=str(device), device_name=device_name(device), torch=torch.__version__,
                compile=use_compile, optimizer=profile.optimizer, train_precision="bf16" if bf16_training else "fp32",
                autocast_bf16=bf16_training, augment=profile.augment, img_size=profile.model.img_size,
                source_size=SOURCE_SIZE)  # fmt: skip


def benchmark(profile: Profile, device: torch.device | str, steps: int, batch_size: int | None = None,
              eval_batch_size: int | None = None, compile: bool | None = None,
              warmup: int | None = None) -> dict[str, Any]:  # fmt: skip
    """Measure training/evaluation images/s, FLOPs per image, TFLOP/s and MFU; return a dict.

    `compile` defaults to True on CUDA (as in `sics.training.loop`); `warmup` untimed steps default to
    3 on CUDA (compilation, autotuning) and 1 elsewhere.
    """
    device = torch.device(device)
    if steps < 1:
        raise ValueError("steps must be >= 1")
    bs = batch_size or profile.batch_size
    ebs = eval_batch_size or profile.eval_batch_size
    use_compile = compile if compile is not None else compile_wanted(device)
    warmup = warmup if warmup is not None else (3 if device.type == "cuda" else 1)

    torch.manual_seed(0)
    model = build_model(profile.from_scratch()).to(device)
    fwd_flops = flops_per_image(model, profile)
    n_params = count_params(model)

    pool = _pool(2 * max(bs, ebs), profile, device)  # to gather shuffled batches from, as `batches` does
    train_s = _time_training(model, profile, device, pool, bs, steps, warmup, use_compile)
    eval_by = _time_evaluation(model, pool, ebs, device, steps)
    eval_precision = precision(device, profile.eval_precision).rsplit("-", 1)[-1]
    eval_ips = eval_by[eval_precision]
    eval_s = steps * ebs / eval_ips

    train_ips = steps * bs / train_s
    achieved = train_ips * 3 * fwd_flops
    peak = peak_flops(device)
    n_train = profile.n_train or TRAIN_SET_SIZE
    return dict(
        **_setup(profile, device, use_compile),
        params=n_params,
        batch_size=bs,
        eval_batch_size=ebs,
        steps=steps,
        warmup_steps=warmup,
        train_seconds=train_s,
        eval_seconds=eval_s,
        train_images_per_s=train_ips,
        eval_images_per_s=eval_ips,
        eval_precision=eval_precision,
        eval_images_per_s_fp32=eval_by["fp32"],
        eval_images_per_s_bf16=eval_by["bf16"],
        cpu_fast_bf16=cpu_has_fast_bf16(),
        bf16_emulated=emulates_bf16(device, "bf16"),
        forward_flops_per_image=fwd_flops,
        train_flops_per_image=3 * fwd_flops,
        train_tflops=achieved / 1e12,
        peak_tflops=peak / 1e12 if peak else None,
        mfu=achieved / peak if peak else None,
        est_train_seconds=profile.epochs * n_train / train_ips,
        stages=stage_seconds(profile.name),
    )


def format_report(r: dict[str, Any]) -> str:
    """A readable table of a `benchmark` result."""

    def num(v: float, unit: str = "") -> str:
        return f"{v:,.1f}{unit}" if math.isfinite(v) else "n/a"

    rows = [
        ("profile", f"{r['profile']} ({r['params'] / 1e6:.2f} M params, {r['img_size']} px, "
                    f"augment={r['augment']})"),
        ("device", f"{r['device_name']} [{r['device']}], torch {r['torch']}"),
        ("setup", f"compile={r['compile']}, optimizer {r['optimizer']}, training in {r['train_precision']}, "
                  f"{r['steps']} timed steps after {r['warmup_steps']} warm-up"),
        ("train images/s", f"{num(r['train_images_per_s'])}  (batch {r['batch_size']})"),
        ("eval images/s", f"{num(r['eval_images_per_s'])}  (batch {r['eval_batch_size']}, the profile's "
                          f"{r['eval_precision']})"),
        ("eval images/s fp32", num(r["eval_images_per_s_fp32"])),
        ("eval images/s bf16", f"{num(r['eval_images_per_s_bf16'])}  (fast bf16 units on this CPU: "
                               f"{'yes' if r['cpu_fast_bf16'] else 'no'}"
                               f"{'; emulated in fp32' if r.get('bf16_emulated') else ''})"),
        ("fwd FLOPs/image", f"{r['forward_flops_per_image'] / 1e9:.4f} GFLOP"),
        ("train FLOPs/image", f"{r['train_flops_per_image'] / 1e9:.4f} GFLOP (3 x forward)"),
        ("train TFLOP/s", f"{r['train_tflops']:.4g}"),
        ("peak TFLOP/s", "n/a" if r["peak_tflops"] is None else f"{r['peak_tflops']:.0f} (bf16 dense)"),
        ("MFU", "n/a" if r["mfu"] is None else f"{100 * r['mfu']:.1f} %"),
        ("est. training", f"{num(r['est_train_seconds'] / 60)} min for the profile's epochs"),
    ]  # fmt: skip
    for name, info in r["stages"].items():
        if "seconds" in info:
            rows.append((f"stage {name}", f"{info['seconds']} s"))
        for nb, s in (info.get("seconds_per_notebook") or {}).items():
            rows.append((f"stage {name}: {nb}", f"{s} s"))
        if "total_seconds" in info:
            rows.append((f"stage {name}: total", f"{info['total_seconds']} s"))
    width = max(len(k) for k, _ in rows)
    return "\n".join(f"{k:<{width}}  {v}" for k, v in rows)


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--profile", default=os.environ.get("SICS_PROFILE", "auto"),
                    help=f"{'|'.join(PROFILES)}|auto")  # fmt: skip
    ap.add_argument("--steps", type=int, default=None, help="timed steps (default 5 CPU, 30 CUDA)")
    ap.add_argument("--batch-size", type=int, default=None, help="default: the profile's")
    ap.add_argument("--eval-batch-size", type=int, default=None, help="default: the profile's")
    ap.add_argument("--device", default=None, help="cpu|cuda (default: cuda when available)")
    ap.add_argument("--json", default=None, metavar="PATH", help="also write the figures as JSON")
    ap.add_argument("--no-compile", action="store_true", help="skip torch.compile on CUDA")
    args = ap.parse_args(argv)
    try:
        profile = resolve_profile(args.profile)
        device = pick_device(args.device)
        steps = args.steps or (30 if device.type == "cuda" else 5)
        result = benchmark(profile, device, steps, args.batch_size, args.eval_batch_size,
                           compile=False if args.no_compile else None)  # fmt: skip
    except (SicsError, ValueError, RuntimeError) as e:
        print(f"error: {e}", file=sys.stderr)
        return 1
    print(format_report(result))
    if args.json:
        write_json(args.json, result)
    return 0


if __name__ == "__main__":
    sys.exit(main())
