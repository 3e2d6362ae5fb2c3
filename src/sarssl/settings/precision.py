"""The arithmetic a network runs in: bf16 autocast on a GPU (`auto`), always (`bf16`), or
float32 (`fp32`); sarssl.devices applies it."""

from typing import Literal

Precision = Literal["auto", "bf16", "fp32"]
