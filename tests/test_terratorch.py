"""Our export in TerraTorch (the `[terratorch]` extra): its EncoderDecoderFactory builds a
segmentation model from `sarssl.weights.terratorch_arguments`, with the export's weights in
its encoder, and its SemanticSegmentationTask takes a forward and a backward step on the real
Sen1Floods11 chip as `prepare` makes it, the ViT fine-tuned or frozen.

TerraTorch 1.2.11 sets torch's float32 matmul precision to "medium" for the whole process when
it is imported (its Clay v1.5 backbone module does, at import): bf16 matmuls on CPUs with AMX,
TF32 on GPUs. It is imported here in a fixture that puts the precision back, not when the
tests are collected, so that no other test computes at that precision."""

import numpy as np
import pytest
import rasterio
import rioxarray
import torch
from conftest import S1_CHIP, S1_LABELS
from rasterio.windows import Window
from safetensors.torch import load_file

from sarssl.dataset.worldcover import IGNORE_INDEX
from sarssl.paths import WEIGHTS_NAME
from sarssl.weights import load, terratorch_arguments

# A training step outside a Lightning Trainer: the task's self.log has nowhere to log.
pytestmark = pytest.mark.filterwarnings("ignore:You are trying to `self.log")

WINDOW_PX = 64  # a corner of the chip: four patches a side
CLASSES = 2  # Sen1Floods11's hand label: not water, water (-1 nodata)


@pytest.fixture(scope="module")
def segmentation_task_class():
    """TerraTorch's SemanticSegmentationTask, imported with the matmul precision kept. Not
    importorskip: the extra is part of the test install, and a missing TerraTorch must fail."""
    precision = torch.get_float32_matmul_precision()
    from terratorch.tasks import SemanticSegmentationTask

    torch.set_float32_matmul_precision(precision)
    return SemanticSegmentationTask


@pytest.fixture(scope="module")
def batch(tiny_export):
    """The chip's first window as `prepare` makes it, and its hand label (nodata ignored)."""
    _, prepare = load(tiny_export)
    image = rioxarray.open_rasterio(S1_CHIP, masked=True)
    image = prepare(image.isel(x=slice(0, WINDOW_PX), y=slice(0, WINDOW_PX)), units="dB",
                    seasons="replicate")  # fmt: skip
    with rasterio.open(S1_LABELS) as source:
        label = source.read(1, window=Window(0, 0, WINDOW_PX, WINDOW_PX)).astype(np.int64)
    assert (label == 1).any() and (label == 0).any()  # both classes in the window
    mask = torch.from_numpy(np.where(label < 0, IGNORE_INDEX, label))[None]
    return {"image": image, "mask": mask}


def segmentation_task(task_class, export, freeze: bool):
    model_args = terratorch_arguments(export) | {"decoder": "FCNDecoder", "num_classes": CLASSES}
    return task_class(
        model_args=model_args,
        model_factory="EncoderDecoderFactory",
        loss="ce",
        ignore_index=IGNORE_INDEX,
        freeze_backbone=freeze,
    )


def test_the_factorys_encoder_holds_the_export_and_gives_its_blocks_output(
    segmentation_task_class, tiny_export, batch
):
    """Every weight of the export is in the encoder (but the final norm, which the
    features_only model does not apply), and the last feature map is the export's last block
    output, as timm's own model of the export computes it."""
    task = segmentation_task(segmentation_task_class, tiny_export, freeze=False)
    encoder = task.model.encoder.eval()
    weights = load_file(str(tiny_export / WEIGHTS_NAME))
    encoder_state = {name.removeprefix("model."): v for name, v in encoder.state_dict().items()}
    assert set(weights) - set(encoder_state) == {"norm.weight", "norm.bias"}
    for name, encoder_value in encoder_state.items():
        torch.testing.assert_close(encoder_value, weights[name], rtol=0, atol=0, msg=name)

    model, _ = load(tiny_export)
    with torch.no_grad():
        last = encoder(batch["image"])[-1]
        (expected,) = model.forward_intermediates(
            batch["image"], indices=[len(model.blocks) - 1], norm=False, intermediates_only=True
        )
    assert last.shape == (1, model.num_features, WINDOW_PX // 16, WINDOW_PX // 16)
    torch.testing.assert_close(last, expected, rtol=1e-5, atol=1e-5)


@pytest.mark.parametrize("freeze", [False, True], ids=["finetuned", "frozen"])
def test_a_training_step_reaches_the_vit_unless_it_is_frozen(
    segmentation_task_class, tiny_export, batch, freeze
):
    task = segmentation_task(segmentation_task_class, tiny_export, freeze=freeze)
    task.train()
    logits = task.model(batch["image"]).output
    assert logits.shape == (1, CLASSES, WINDOW_PX, WINDOW_PX)

    loss = task.training_step(batch, 0)
    assert torch.isfinite(loss) and loss > 0
    loss.backward()
    encoder_grads = [p.grad for p in task.model.encoder.parameters() if p.grad is not None]
    decoder_grads = [p.grad for p in task.model.decoder.parameters() if p.grad is not None]
    assert decoder_grads and all(torch.isfinite(g).all() for g in decoder_grads)
    if freeze:
        assert not encoder_grads
    else:
        patch_embedding = task.model.encoder.model.patch_embed.proj.weight
        assert patch_embedding.grad is not None and patch_embedding.grad.abs().sum() > 0
        assert all(torch.isfinite(g).all() for g in encoder_grads)
