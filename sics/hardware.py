"""This machine, without importing torch: the CPU and its ISA, whether CUDA can be there, and the
precision an evaluation runs in on a device.

Regenerating committed results from their bundle runs no model, so it must not pay for torch's
import (seconds per notebook kernel). Everything here answers from /proc, the environment and
the installed files; torch is asked only where it is loaded already, or where CUDA may really be
present (a CUDA build of torch beside a GPU device node), since only torch can say for sure.
"""

from __future__ import annotations

import importlib.util
import os
import platform
import sys
from functools import lru_cache
from pathlib import Path

from .errors import ParameterError

EVAL_PRECISIONS = ("auto", "fp32", "bf16")
BF16_MODES = ("auto", "native", "emulated")
# The ISA features that change which kernels (so which float reduction orders) run on a CPU.
ISA_FEATURES = ("avx2", "fma", "avx512f", "avx512bw", "avx512_vnni", "avx512_bf16", "avx512_fp16",
                "avx_vnni", "amx_tile", "amx_bf16", "amx_int8", "asimd", "sve")  # fmt: skip
# oneDNN ISA levels (ONEDNN_MAX_CPU_ISA) below the first with native bf16 instructions
_NO_BF16_ISA = ("SSE41", "AVX", "AVX2", "AVX2_VNNI", "AVX2_VNNI_2", "AVX512_CORE", "AVX512_CORE_VNNI")
# libraries only a GPU build of torch ships, and the device nodes a GPU driver makes
_GPU_LIBS = ("libtorch_cuda.so", "libtorch_hip.so", "torch_cuda.dll")
_GPU_NODES = ("/dev/nvidia0", "/dev/nvidiactl", "/dev/kfd", "/dev/dxg")


def torch_loaded() -> bool:
    return "torch" in sys.modules


@lru_cache(maxsize=1)
def _cpuinfo() -> tuple[str, frozenset[str]]:
    """(CPU model name, its feature flags) from /proc/cpuinfo; the platform's words elsewhere."""
    name, flags = "", frozenset()
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            key, _, value = line.partition(":")
            key = key.strip().lower()
            if key in ("model name", "hardware") and not name:
                name = value.strip()
            elif key in ("flags", "features") and not flags:
                flags = frozenset(value.split())
    except OSError:
        pass
    return name or platform.processor() or platform.machine(), flags


def cpu_name() -> str:
    return _cpuinfo()[0]


def cpu_isa() -> list[str]:
    """The float-relevant ISA features this CPU has (`ISA_FEATURES`), as /proc/cpuinfo names them."""
    return [f for f in ISA_FEATURES if f in _cpuinfo()[1]]


def default_threads() -> int:
    """The intra-op threads torch starts with: `OMP_NUM_THREADS`, else the physical cores this
    process may use."""
    if os.environ.get("OMP_NUM_THREADS", "").isdigit():
        return int(os.environ["OMP_NUM_THREADS"])
    usable = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count() or 1
    cores, current = set(), {}
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            key, _, value = (part.strip() for part in line.partition(":"))
            if key in ("processor", "physical id", "core id"):
                current[key] = value
                if key == "core id":
                    cores.add((current.get("physical id"), value))
    except OSError:
        pass
    return min(usable, len(cores)) if cores else usable


def cpu_has_fast_bf16() -> bool:
    """Whether this CPU has bf16 matrix units (AMX or AVX-512 BF16) that oneDNN may use.

    Without them bf16 autocast is emulated and much slower than fp32: a forward pass of the
    reference ViT ran 6x slower in bf16 than in fp32 on an AVX2-only CPU. Read from the kernel's
    flags where it lists them (Linux), else asked of torch.
    """
    if os.environ.get("ONEDNN_MAX_CPU_ISA", "").upper() in _NO_BF16_ISA:
        return False
    flags = _cpuinfo()[1]
    if flags:
        return bool({"amx_tile", "avx512_bf16"} & flags)
    import torch

    return bool(torch.cpu._is_amx_tile_supported() or torch.cpu._is_avx512_bf16_supported())


def gpu_possible() -> bool:
    """False where CUDA certainly is not available: torch is a CPU build, or no GPU device node
    exists. True means only that torch must be asked."""
    try:
        spec = importlib.util.find_spec("torch")
    except (ImportError, ValueError):  # torch cannot be imported here
        return False
    if spec is None or not spec.submodule_search_locations:
        return False
    lib = Path(next(iter(spec.submodule_search_locations))) / "lib"
    if not any((lib / name).exists() for name in _GPU_LIBS):
        return False
    return any(os.path.exists(node) for node in _GPU_NODES)


def cuda_available() -> bool:
    """`torch.cuda.is_available()`, importing torch only where the answer may be yes."""
    if not torch_loaded() and not gpu_possible():
        return False
    import torch

    return torch.cuda.is_available()


def device_type(device: str | None = None) -> str:
    """'cuda' or 'cpu' (or another torch device type): the argument, `SICS_DEVICE`, else `cuda`
    where it is available. A torch.device is read by its type."""
    device = getattr(device, "type", device) or os.environ.get("SICS_DEVICE") or ""
    if device:
        return str(device).split(":")[0]
    return "cuda" if cuda_available() else "cpu"


def bf16_mode() -> str:
    """`SICS_BF16`, checked: auto | native | emulated (`sics.models.bf16`)."""
    value = os.environ.get("SICS_BF16", "auto").strip() or "auto"
    if value not in BF16_MODES:
        raise ParameterError(f"SICS_BF16 must be one of {', '.join(BF16_MODES)}, got {value!r}")
    return value


def uses_bf16(device, eval_precision: str = "auto", cpu_auto: bool = True) -> bool:
    """Whether `autocast` with these arguments runs in bf16 on `device` (a type or torch.device)."""
    if eval_precision not in EVAL_PRECISIONS:
        raise ParameterError(f"unknown evaluation precision {eval_precision!r}; valid: {', '.join(EVAL_PRECISIONS)}")
    kind = device_type(device)
    if eval_precision == "auto":
        return kind == "cuda" or (cpu_auto and kind == "cpu" and cpu_has_fast_bf16())
    return eval_precision == "bf16"


def emulates_bf16(device, eval_precision: str = "auto") -> bool:
    """Whether an evaluation in this precision runs bf16 emulated in fp32 here (`sics.models.bf16`):
    bf16 on a CPU without bf16 matrix units, unless `SICS_BF16=native`."""
    if device_type(device) != "cpu" or not uses_bf16(device, eval_precision):
        return False
    chosen = bf16_mode()
    return chosen == "emulated" or (chosen == "auto" and not cpu_has_fast_bf16())


def precision(device, eval_precision: str = "auto") -> str:
    """Device type and the precision evaluations run in there, e.g. 'cpu-fp32', 'cuda-bf16'.

    Part of every cache key of predictions: bf16 and fp32 logits can rank a near-tie differently.
    """
    return f"{device_type(device)}-{'bf16' if uses_bf16(device, eval_precision) else 'fp32'}"


def precision_label(device, eval_precision: str = "auto") -> str:
    """`precision`, saying so where bf16 is emulated: 'cpu-bf16 (emulated in fp32)'."""
    label = precision(device, eval_precision)
    return f"{label} (emulated in fp32)" if emulates_bf16(device, eval_precision) else label
