"""Per-head CLS-to-patch attention of a timm ViT's last block, without the full matrix.

timm's fused attention never forms the attention matrix (hooks on `attn_drop` capture
nothing), and the full 785 x 785 matrix per head is wasted work when only the CLS row is
used. The CLS row needs the CLS query and every key: the last block's input comes from
timm's public `forward_intermediates`, and only the q rows of CLS and the k rows of the
fused qkv projection (laid out [q; k; v]) are computed.
"""

import torch
import torch.nn.functional as F
from timm.models.vision_transformer import VisionTransformer


def last_block_input(model: VisionTransformer, images: torch.Tensor) -> torch.Tensor:
    """(batch, tokens, dim) tokens entering the last block, prefix tokens first."""
    ((spatial, prefix),) = model.forward_intermediates(
        images,
        indices=[len(model.blocks) - 2],
        return_prefix_tokens=True,
        output_fmt="NLC",
        intermediates_only=True,
        stop_early=True,
    )
    return torch.cat([prefix, spatial], dim=1)


def cls_attention(model: VisionTransformer, images: torch.Tensor) -> torch.Tensor:
    """(batch, heads, grid_h, grid_w) softmax attention of the CLS query over the patch
    tokens in the last block (the softmax runs over all tokens, CLS included, as in DINO's
    attention maps)."""
    tokens = model.blocks[-1].norm1(last_block_input(model, images))
    attn = model.blocks[-1].attn
    batch, n_tokens, _dim = tokens.shape
    heads, head_dim = attn.num_heads, attn.head_dim
    weight, bias = attn.qkv.weight, attn.qkv.bias
    inner = heads * head_dim
    q_bias = None if bias is None else bias[:inner]
    k_bias = None if bias is None else bias[inner : 2 * inner]
    q = F.linear(tokens[:, :1], weight[:inner], q_bias).reshape(batch, 1, heads, head_dim)
    k = F.linear(tokens, weight[inner : 2 * inner], k_bias).reshape(
        batch, n_tokens, heads, head_dim
    )
    q, k = attn.q_norm(q.transpose(1, 2)), attn.k_norm(k.transpose(1, 2))  # (B, H, *, d)
    weights = ((q * attn.scale) @ k.transpose(-2, -1)).softmax(dim=-1)[:, :, 0]  # (B, H, N)
    grid_h, grid_w = model.patch_embed.dynamic_feat_size(images.shape[-2:])
    return weights[:, :, model.num_prefix_tokens :].reshape(batch, heads, grid_h, grid_w)
