"""DINO numerics against values worked out from the formulas."""

import math

import numpy as np
import pytest
import torch

from sarssl.models.dino import (
    DINOHead,
    DINOLoss,
    cosine_schedule,
    ema_update,
    teacher_temperature_schedule,
)


def test_uniform_teacher_and_flat_student_give_log_k():
    # Teacher logits all equal -> q = 1/3; student logits 0 -> log-softmax = log(1/3):
    # every pair's cross-entropy is log 3, and so is their mean.
    loss = DINOLoss(out_dim=3, n_crops=3, student_temp=0.1, center_momentum=0.9)
    terms = loss(torch.zeros(3, 3), torch.ones(2, 3), teacher_temp=0.04)
    assert terms.loss.item() == pytest.approx(math.log(3))
    assert terms.teacher_entropy.item() == pytest.approx(math.log(3))
    assert terms.kl.item() == pytest.approx(0.0, abs=1e-6)


def softmax(x):
    e = np.exp(x - x.max(axis=-1, keepdims=True))
    return e / e.sum(axis=-1, keepdims=True)


def test_loss_is_the_mean_cross_entropy_over_pairs_of_different_views():
    # 2 global crops + 1 local, batch 1, K = 2; the teacher is centred by center = 0 here.
    student = np.array([[1.0, 0.0], [0.0, 2.0], [0.5, 0.5]])
    teacher = np.array([[0.3, 0.1], [0.0, 0.2]])
    ts, tt = 0.5, 0.1
    q = softmax(teacher / tt)
    logp = np.log(softmax(student / ts))
    # pairs (teacher view, student view): (0,1), (0,2), (1,0), (1,2)
    expected = np.mean([-(q[t] * logp[s]).sum() for t, s in ((0, 1), (0, 2), (1, 0), (1, 2))])
    loss = DINOLoss(out_dim=2, n_crops=3, student_temp=ts, center_momentum=0.9)
    terms = loss(torch.tensor(student), torch.tensor(teacher), teacher_temp=tt)
    assert terms.loss.item() == pytest.approx(expected, rel=1e-6)


def test_center_is_an_ema_of_the_teacher_batch_mean_and_is_subtracted():
    loss = DINOLoss(out_dim=3, n_crops=2, student_temp=0.1, center_momentum=0.9)
    teacher = torch.tensor([[1.0, 2.0, 3.0], [3.0, 4.0, 5.0]])
    loss(torch.zeros(2, 3), teacher, teacher_temp=1.0)
    # 0.9 * 0 + 0.1 * mean([1, 2, 3], [3, 4, 5]) = 0.1 * [2, 3, 4]
    np.testing.assert_allclose(loss.center.numpy(), [[0.2, 0.3, 0.4]], rtol=1e-6)
    loss(torch.zeros(2, 3), teacher, teacher_temp=1.0)
    np.testing.assert_allclose(loss.center.numpy(), [[0.38, 0.57, 0.76]], rtol=1e-6)
    # With teacher rows equal to the center, centring makes the teacher uniform.
    terms = loss(torch.zeros(2, 3), loss.center.repeat(2, 1).clone(), teacher_temp=0.001)
    assert terms.teacher_entropy.item() == pytest.approx(math.log(3), rel=1e-5)


def test_bf16_inputs_are_computed_in_float32():
    """bf16 outputs are cast to float32 before the temperatures: the loss equals float32's
    on the same (rounded) values; computed in bf16, the softmaxes at 0.03 and 0.001 would
    round their logits to 8 bits and miss it by far more than 1e-6."""
    loss = DINOLoss(out_dim=4, n_crops=2, student_temp=0.03, center_momentum=0.99)
    student, teacher = torch.randn(2, 4).bfloat16(), torch.randn(2, 4).bfloat16()
    rounded = loss(student.float(), teacher.float(), 0.001).loss
    loss.center.zero_()
    half = loss(student, teacher, 0.001).loss
    assert half.dtype == torch.float32
    assert half.item() == pytest.approx(rounded.item(), rel=1e-6, abs=1e-6)


def test_teacher_temperature_warms_up_linearly_then_stays():
    schedule = teacher_temperature_schedule(0.01, 0.001, warmup_epochs=5, epochs=8)
    np.testing.assert_allclose(
        schedule, [0.01, 0.00775, 0.0055, 0.00325, 0.001, 0.001, 0.001, 0.001]
    )


def test_cosine_schedule_warms_up_then_follows_the_cosine():
    # warm-up over 2 steps: 0, 1; cosine over 2 steps: 1 + cos(0) -> 1, (1 + cos(pi/2)) / 2 = 0.5
    np.testing.assert_allclose(
        cosine_schedule(1.0, 0.0, 2, 2, warmup_epochs=1), [0.0, 1.0, 1.0, 0.5]
    )
    values = cosine_schedule(1e-6, 1e-7, epochs=10, steps_per_epoch=4)
    assert len(values) == 40 and values[0] == 1e-6
    assert values[20] == pytest.approx(1e-7 + 0.5 * 9e-7 * (1 + math.cos(math.pi / 2)))


def test_ema_moves_the_teacher_towards_the_student():
    teacher, student = [torch.ones(3), torch.zeros(2)], [torch.full((3,), 3.0), torch.ones(2)]
    ema_update(teacher, student, momentum=0.75)
    np.testing.assert_allclose(teacher[0].numpy(), [1.5, 1.5, 1.5])  # 0.75 * 1 + 0.25 * 3
    np.testing.assert_allclose(teacher[1].numpy(), [0.25, 0.25])


def test_head_bottleneck_is_normalised_and_the_last_layer_norm_fixed():
    head = DINOHead(in_dim=8, out_dim=16, hidden_dim=32, bottleneck_dim=4)
    out = head(torch.randn(5, 8))
    assert out.shape == (5, 16) and out.dtype == torch.float32
    magnitude = head.last_layer.parametrizations.weight.original0
    assert not magnitude.requires_grad and torch.all(magnitude == 1.0)
    # |last_layer(u)| <= 1 per output for a unit-norm input u, since each weight row has norm 1.
    assert out.abs().max() <= 1.0 + 1e-6
    assert DINOHead(
        8, 16, 32, 4, norm_last_layer=False
    ).last_layer.parametrizations.weight.original0.requires_grad
