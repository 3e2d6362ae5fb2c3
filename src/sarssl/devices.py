"""Where the networks run: the device's name, and bf16 autocast where it pays (float32
elsewhere)."""

import contextlib
import platform
from typing import Literal

import torch

Precision = Literal["auto", "bf16", "fp32"]


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
