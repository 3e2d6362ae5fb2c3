"""Where the networks run: the device's name, its dense bf16 peak and the model FLOP
utilisation (MFU) reached on it, and bf16 autocast where it pays (float32 elsewhere)."""

import contextlib
import os
import platform

import torch

from sarssl.settings.precision import Precision


def default_device() -> torch.device:
    """The GPU where there is one, else the CPU."""
    return torch.device("cuda" if torch.cuda.is_available() else "cpu")


def autocast_dtype(precision: Precision, device: torch.device) -> torch.dtype | None:
    """bf16 autocast: `auto` on a GPU, `bf16` anywhere (on the CPU too, so that the GPU's
    precision path runs in tests); None for float32."""
    if precision == "fp32" or (precision == "auto" and device.type != "cuda"):
        return None
    return torch.bfloat16


def autocast(device_type: str, dtype: torch.dtype | None) -> contextlib.AbstractContextManager:
    """Autocast to `dtype` on `device_type`; no context at all for float32 (so that it also
    runs on devices autocast does not know, such as `meta` for counting FLOPs)."""
    if dtype is None:
        return contextlib.nullcontext()
    return torch.autocast(device_type, dtype=dtype)


def device_description(device: torch.device) -> str:
    """The GPU's name, or the CPU's with the threads torch uses (for logs and records)."""
    if device.type == "cuda":
        return torch.cuda.get_device_name(device)
    cpu = platform.processor() or platform.machine()
    return f"CPU {cpu}, {torch.get_num_threads()} threads"


# Dense (no 2:4 sparsity) bf16 tensor-core peak in FLOP/s by a part of the device's name,
# from NVIDIA's datasheets (which print twice these figures "with sparsity"); the first key
# found in the name wins, so the PCIe H100 comes before the SXM one.
BF16_PEAK_FLOPS = {
    "H100 PCIe": 756e12,
    "H100": 989.4e12,
    "H200": 989.4e12,
    "A100": 312e12,
    "L40S": 362.05e12,
}
# A peak for a device not in the table (the CPU, another GPU), in TFLOP/s.
PEAK_ENVIRONMENT = "SARSSL_PEAK_TFLOPS"


def bf16_peak(name: str) -> float | None:
    """The dense bf16 peak (FLOP/s) of the device called `name`; None when unknown."""
    return next((peak for key, peak in BF16_PEAK_FLOPS.items() if key in name), None)


def peak_flops(device: torch.device) -> float | None:
    """The peak MFU is measured against: SARSSL_PEAK_TFLOPS where set, else the GPU's
    dense bf16 peak from the table; None on the CPU or an unknown GPU (no MFU then)."""
    configured = os.environ.get(PEAK_ENVIRONMENT)
    if configured:
        return float(configured) * 1e12
    return bf16_peak(torch.cuda.get_device_name(device)) if device.type == "cuda" else None


def mfu(flops_per_step: float, steps_per_s: float, peak: float | None) -> float | None:
    """Model FLOP utilisation: the model FLOP/s achieved over the peak; None without one."""
    return flops_per_step * steps_per_s / peak if peak else None


def peak_memory_gb(device: torch.device) -> float | None:
    """GPU memory the process's tensors have peaked at since it started (torch's caching
    allocator, GB); None on the CPU, where torch does not count it."""
    return torch.cuda.max_memory_allocated(device) / 1e9 if device.type == "cuda" else None
