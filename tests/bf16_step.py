"""One DINO step on the tiny store in float32 and in bf16, in a process of its own: the
test runs it with oneDNN's native bf16 (AMX, AVX512-BF16, where the CPU has them) and with
bf16 emulated (ONEDNN_MAX_CPU_ISA=AVX512_CORE), which must be chosen before oneDNN starts.
Prints {"losses": {precision: loss}, "qkv_dtypes": {precision: dtype}} as JSON."""

import json
import sys
from pathlib import Path

import torch
from conftest import tiny_settings
from test_pretrain import first_batch

from sarssl.training.pretrain import DINOTrainer, device_views


def step_losses(store: Path) -> dict:
    cpu = torch.device("cpu")
    losses, qkv_dtypes = {}, {}
    for precision in ("fp32", "bf16"):
        settings = tiny_settings(store, precision=precision)
        torch.manual_seed(0)
        trainer = DINOTrainer(settings, cpu)
        dtype = trainer.student.autocast_dtype or torch.float32
        batch, standardise = first_batch(store, settings)
        crops = device_views(batch, cpu, standardise, settings.crops, dtype)

        def record(module, args, output, precision=precision):
            qkv_dtypes.setdefault(precision, str(output.dtype))

        # A linear layer inside the backbone (its final norm runs in float32 under autocast).
        trainer.student.backbone.blocks[0].attn.qkv.register_forward_hook(record)
        losses[precision] = trainer.step(crops, 1e-3, 0.04, 0.996, 0.04, False)[0].item()
    return {"losses": losses, "qkv_dtypes": qkv_dtypes}


if __name__ == "__main__":
    print(json.dumps(step_losses(Path(sys.argv[1]))))
