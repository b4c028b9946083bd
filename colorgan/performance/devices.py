"""Facts about the device a measurement runs on: its name, whether the CPU computes bf16 in hardware, the
datasheets' dense peaks, the precision a step's convolutions run in, and waiting for the device (timers need it)."""

from __future__ import annotations

import platform
import re
from pathlib import Path
from typing import TYPE_CHECKING, Any

import torch

if TYPE_CHECKING:
    from colorgan.method.step import ColorGANStep

# Dense (no sparsity) peak TFLOP/s from the vendors' datasheets; the first pattern found in the device
# name wins, so specific names come before general ones. tf32: fp32 convolutions on tensor cores
# (cuDNN's default, torch.backends.cudnn.allow_tf32).
PEAK_TFLOPS: tuple[tuple[str, dict[str, float]], ...] = (
    ("H100 PCIe", {"bf16": 756.0, "tf32": 378.0, "fp32": 51.2}),
    ("H100 NVL", {"bf16": 835.5, "tf32": 417.5, "fp32": 60.0}),
    ("H100", {"bf16": 989.4, "tf32": 494.7, "fp32": 66.9}),  # SXM5 ("NVIDIA H100 80GB HBM3")
    ("H200 NVL", {"bf16": 835.5, "tf32": 417.5, "fp32": 60.0}),
    ("H200", {"bf16": 989.4, "tf32": 494.7, "fp32": 66.9}),  # SXM
    ("A100", {"bf16": 312.0, "tf32": 156.0, "fp32": 19.5}),
    ("L40S", {"bf16": 362.1, "tf32": 183.0, "fp32": 91.6}),
    ("L4", {"bf16": 121.0, "tf32": 60.0, "fp32": 30.3}),
    ("RTX 4090", {"bf16": 165.2, "tf32": 82.6, "fp32": 82.6}),  # bf16 with fp32 accumulation
)


def device_label(device: torch.device) -> str:
    """'NVIDIA H100 80GB HBM3', or 'cpu AMD EPYC (2 threads)'."""
    if device.type == "cuda":
        return torch.cuda.get_device_name(device)
    model = platform.processor() or platform.machine()
    cpuinfo = Path("/proc/cpuinfo")
    if cpuinfo.is_file():
        found = re.search(r"^model name\s*:\s*(.+)$", cpuinfo.read_text(), re.MULTILINE)
        model = found.group(1).strip() if found else model
    return f"cpu {model} ({torch.get_num_threads()} threads)"


def cpu_bf16_support() -> dict[str, Any]:
    """Whether this CPU computes bf16 in hardware: {'native', 'flags', 'torch_capability'}.

    AVX512_BF16 (dot products of bf16 pairs) and AMX_BF16 (tile matrix units) are what oneDNN's bf16
    convolutions use; without them bf16 is emulated and slower than fp32.
    """
    flags: set[str] = set()
    cpuinfo = Path("/proc/cpuinfo")
    if cpuinfo.is_file():
        found = re.search(r"^flags\s*:\s*(.+)$", cpuinfo.read_text(), re.MULTILINE)
        flags = set(found.group(1).split()) if found else set()
    bf16 = sorted(flags & {"avx512_bf16", "amx_bf16"})
    capability = torch.backends.cpu.get_cpu_capability()
    return {"native": bool(bf16) or "AMX" in capability, "flags": bf16, "torch_capability": capability}


def peak_tflops(label: str) -> dict[str, float] | None:
    """Dense peaks {'bf16', 'tf32', 'fp32'} for a CUDA device name; None for CPUs and unknown devices."""
    if label.startswith("cpu"):
        return None
    return next((peaks for pattern, peaks in PEAK_TFLOPS if pattern in label), None)


def conv_precision(step: ColorGANStep) -> str:
    """The precision the convolutions run in: bf16 (autocast), tf32 (CUDA fp32 on tensor cores) or fp32."""
    if step.amp_dtype is not None:
        return "bf16"
    return "tf32" if step.device.type == "cuda" and torch.backends.cudnn.allow_tf32 else "fp32"


def synchronize(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)
