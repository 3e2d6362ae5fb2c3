"""The training utilities (sarssl.training): per-parameter clipping and the weight-decay
groups."""

import torch
from conftest import tiny_settings

from sarssl.pretrain import (
    create_network,
)
from sarssl.training import clip_gradients_per_parameter, parameter_groups


def test_gradients_are_clipped_per_parameter():
    big, small = torch.zeros(2, requires_grad=True), torch.zeros(1, requires_grad=True)
    big.grad, small.grad = torch.tensor([3.0, 4.0]), torch.tensor([1.0])  # norms 5 and 1
    clip_gradients_per_parameter([big, small], max_norm=2.5)
    torch.testing.assert_close(big.grad, torch.tensor([1.5, 2.0]), rtol=1e-5, atol=0)
    torch.testing.assert_close(small.grad, torch.tensor([1.0]))


def test_weight_decay_skips_biases_and_norms(tiny_store):
    network = create_network(tiny_settings(tiny_store), 0.0)
    decayed, not_decayed = parameter_groups(network)
    names = {id(p): n for n, p in network.named_parameters()}
    assert all(p.ndim > 1 for p in decayed["params"])
    assert not_decayed["weight_decay"] == 0.0
    assert any(names[id(p)].endswith("norm.weight") for p in not_decayed["params"])
