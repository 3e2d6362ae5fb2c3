"""The training utilities (sarssl.training.utils): per-parameter clipping, the weight-decay
groups, the collapse verdict on metric rows of known answer, and the telemetry: MFU on a
known FLOP count, the time waited on a loader made slow on purpose."""

import json
import math

import pandas as pd
import pytest
import torch
from conftest import tiny_settings

from sarssl.devices import PEAK_ENVIRONMENT, bf16_peak, mfu, peak_flops
from sarssl.training.pretrain import (
    create_network,
)
from sarssl.training.utils import (
    CollapseVerdict,
    DataWait,
    clip_gradients_per_parameter,
    collapse_verdict,
    parameter_groups,
)


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


def metric_rows(teacher_entropy, batch_entropy, prototypes, steps: int = 40) -> pd.DataFrame:
    """Metric rows of steps 1 to `steps` with the given indicators (scalars or per row)."""
    return pd.DataFrame(
        {
            "step": range(1, steps + 1),
            "teacher_entropy": teacher_entropy,
            "batch_entropy": batch_entropy,
            "prototypes": prototypes,
        }
    )


@pytest.mark.parametrize(
    ("teacher_entropy", "batch_entropy", "prototypes", "verdict", "kind"),
    [
        # 8 tiles on 8 distinct prototypes (one-hot teacher): 8 groups of 8.
        (0.0, math.log(8), 8, "ok", None),
        # The demo: 2 prototypes win per batch of 8 at a batch-mean entropy of log 2.
        (0.0, math.log(2), 2, "partial collapse", None),
        # DINO's temperatures at out_dim 4096: every teacher output uniform; their argmax
        # is noise, so many prototypes still "win".
        (8.30, math.log(4096), 16, "full collapse", "uniform"),
        # Every tile on one prototype.
        (0.0, 0.01, 1, "full collapse", "one prototype"),
        # Every tile the same distribution, neither uniform nor one-hot.
        (3.0, 3.1, 5, "full collapse", "one distribution"),
    ],
)
def test_the_collapse_verdict_of_known_cases(
    teacher_entropy, batch_entropy, prototypes, verdict, kind
):
    result = collapse_verdict(metric_rows(teacher_entropy, batch_entropy, prototypes), 4096, 8)
    assert (result.verdict, result.kind) == (verdict, kind)
    assert result.groups == pytest.approx(math.exp(batch_entropy - teacher_entropy))
    assert result.collapsed == (verdict != "ok")
    assert result.sentence.startswith(verdict)


@pytest.mark.parametrize(
    ("groups", "verdict"),
    [
        (1.5 - 1e-9, "full collapse"),
        (1.5 + 1e-9, "partial collapse"),
        (4 - 1e-9, "partial collapse"),  # half of min(8 tiles, 4096)
        (4 + 1e-9, "ok"),
    ],
)
def test_the_thresholds_of_the_collapse_verdict(groups, verdict):
    assert collapse_verdict(metric_rows(0.5, 0.5 + math.log(groups), 4), 4096, 8).verdict == verdict


def test_the_capacity_is_the_smaller_of_batch_and_prototypes_and_one_tile_tells_nothing():
    # 3 groups: partial of 8 tiles, but most of a head with only 4 prototypes.
    rows = metric_rows(0.0, math.log(3), 3)
    assert collapse_verdict(rows, 4096, 8).verdict == "partial collapse"
    assert collapse_verdict(rows, 4, 8).verdict == "ok"
    assert collapse_verdict(rows, 4096, 1).verdict == "unknown"


def test_the_verdict_reads_the_last_tenth_of_the_steps():
    collapsed_early = [0.0] * 90 + [math.log(8)] * 10  # rows of steps 1-90, then 91-100
    result = collapse_verdict(metric_rows(0.0, collapsed_early, 8, steps=100), 4096, 8)
    assert (result.verdict, result.first_step, result.last_step) == ("ok", 91, 100)
    collapsed_late = [math.log(8)] * 89 + [0.0] * 11
    result = collapse_verdict(metric_rows(0.0, collapsed_late, 1, steps=100), 4096, 8)
    assert result.verdict == "full collapse"
    # Rows every 10 steps: the window holds the last row only (step 100 > 90).
    sparse = metric_rows(0.0, [math.log(8)] * 9 + [0.0], 8, steps=10).assign(
        step=range(10, 101, 10)
    )
    assert collapse_verdict(sparse, 4096, 8).first_step == 100


def test_the_verdict_is_written_as_json_and_read_back(tmp_path):
    result = collapse_verdict(metric_rows(0.0, math.log(2), 2), 4096, 8)
    result.write(tmp_path / "collapse.json")
    stored = json.loads((tmp_path / "collapse.json").read_text())
    assert stored["verdict"] == "partial collapse" and stored["groups"] == pytest.approx(2)
    assert stored["thresholds"]["partial_collapse_share"] == 0.5
    assert CollapseVerdict.read(tmp_path / "collapse.json") == result


def test_mfu_is_the_model_flops_per_second_over_the_peak():
    # 2 TFLOP per step at 50 steps/s: 100 TFLOP/s, of an H100's 989.4 dense bf16 TFLOP/s.
    assert mfu(2e12, 50.0, 989.4e12) == pytest.approx(100 / 989.4)
    assert mfu(2e12, 50.0, None) is None


def test_the_peak_is_read_from_the_device_name_or_configured(monkeypatch):
    assert bf16_peak("NVIDIA H100 80GB HBM3") == 989.4e12  # SXM
    assert bf16_peak("NVIDIA H100 PCIe") == 756e12
    assert bf16_peak("NVIDIA A100-SXM4-80GB") == 312e12
    assert bf16_peak("NVIDIA GeForce RTX 3090") is None
    monkeypatch.delenv(PEAK_ENVIRONMENT, raising=False)
    assert peak_flops(torch.device("cpu")) is None  # no MFU on the CPU ...
    monkeypatch.setenv(PEAK_ENVIRONMENT, "0.5")
    assert peak_flops(torch.device("cpu")) == 0.5e12  # ... unless a peak is configured


class Clock:
    """A clock that moves only when told: the loader's and the step's seconds, exactly."""

    def __init__(self) -> None:
        self.now = 0.0

    def __call__(self) -> float:
        return self.now


class SlowLoader:
    """Batches that each take `seconds` of the clock to arrive."""

    def __init__(self, clock: Clock, seconds: float, batches: int):
        self.clock, self.seconds, self.count = clock, seconds, batches

    def __iter__(self):
        for batch in range(self.count):
            self.clock.now += self.seconds
            yield batch


@pytest.mark.parametrize("step_s", [0.02, 0.06])
def test_the_data_wait_share_is_the_time_blocked_on_the_loader(step_s):
    """Batches that take 20 ms to arrive, steps of 20 or 60 ms: the wait is 1/2 or 1/4 of
    the wall time, on a clock that moves only with them."""
    clock = Clock()
    waits = DataWait(clock)
    for _batch in waits.batches(SlowLoader(clock, 0.02, batches=32)):
        clock.now += step_s
    share = waits.take() / clock.now
    assert share == pytest.approx(0.02 / (0.02 + step_s), rel=1e-9)
    assert waits.take() == 0.0  # taken: counted afresh
