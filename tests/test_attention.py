"""The CLS-row attention equals the explicit full attention of timm (fused attention off)."""

import pytest
import timm
import torch

from sarssl.models.attention import cls_attention


def explicit_cls_attention(model, images):
    """timm's own attention matrix, with fused attention off, captured at attn_drop."""
    attn = model.blocks[-1].attn
    attn.fused_attn = False
    captured = {}
    handle = attn.attn_drop.register_forward_hook(lambda m, i, o: captured.setdefault("a", o))
    try:
        model.forward_features(images)
    finally:
        handle.remove()
        attn.fused_attn = True
    full = captured["a"]  # (B, H, N, N)
    return full[:, :, 0, model.num_prefix_tokens :]


@pytest.mark.parametrize(
    ("name", "size", "heads"), [("vit_tiny_patch16_224", 448, 3), ("vit_small_patch16_224", 96, 6)]
)
def test_cls_row_equals_the_full_attention_matrix(name, size, heads):
    torch.manual_seed(0)
    model = timm.create_model(
        name, pretrained=False, img_size=size, in_chans=12, num_classes=0
    ).eval()
    images = torch.randn(2, 12, size, size)
    with torch.no_grad():
        ours = cls_attention(model, images)
        theirs = explicit_cls_attention(model, images)
    grid = size // 16
    assert ours.shape == (2, heads, grid, grid)  # 28 x 28 at 448 px
    torch.testing.assert_close(ours.reshape(2, heads, -1), theirs, atol=1e-5, rtol=0)
    assert torch.all(ours.sum(dim=(-2, -1)) < 1.0)  # the CLS token takes its share too
