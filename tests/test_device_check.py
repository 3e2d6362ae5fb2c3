"""benchmarks/device_check.py in its CPU mode (--cpu --quick): the code paths of the GPU
check on tiny sizes, so that the check cannot rot before a GPU runs it. The tiny store is
given (--store): building one through Snakemake, as the GPU check does, is tested by the
workflow tests."""

import json
import math
import subprocess
import sys

import pandas as pd
import pytest
from conftest import REPO

PEAK_TFLOPS = 0.2  # about a 2-core AVX2 CPU's fp32 peak: MFU must come out in (0, 1]


def positive(value) -> bool:
    return isinstance(value, int | float) and value > 0 and math.isfinite(value)


def test_the_quick_cpu_check_writes_every_key_and_sensible_values(
    tiny_store, tmp_path, monkeypatch
):
    monkeypatch.syspath_prepend(REPO / "benchmarks")
    from device_check import FINETUNE_MODELS, QUICK, part_keys

    out = tmp_path / "check"
    subprocess.run(
        [sys.executable, str(REPO / "benchmarks/device_check.py"), "--cpu", "--quick",
         "--store", str(tiny_store), "--peak-tflops", str(PEAK_TFLOPS), "--out", str(out)],
        check=True,
        capture_output=True,
    )  # fmt: skip
    record = json.loads((out / "device_check.json").read_text())

    def keys_of(template: dict, found: dict) -> None:
        for key, value in template.items():
            assert key in found, key
            if isinstance(value, dict):
                keys_of(value, found[key])

    expected = part_keys(QUICK)
    keys_of(expected, record)
    parts = [record[p] for p in ("environment", "device_views", "loader", "resume", "learning")]
    parts += [record["attention_maps"], *record["dino_step"].values()]
    parts += record["finetune_step"].values()
    assert [part["error"] for part in parts] == [None] * len(parts)

    step = record["dino_step"]["test_vit"]
    assert positive(step["eager"]["tiles_per_s"]) and positive(step["eager"]["tflops_per_s"])
    assert 0 < step["eager"]["mfu"] <= 1
    assert step["eager"]["peak_memory_gb"] is None  # not counted on the CPU
    assert step["max_batch"] == QUICK.max_batch and step["max_batch_capped"]
    assert step["compile"]["tiles_per_s"] is None and record["skipped"] == ["dino_step compile"]
    assert record["environment"]["peak_tflops"] == PEAK_TFLOPS
    assert positive(record["device_views"]["fp32_ms_per_batch"])
    for workers in QUICK.workers:
        loader = record["loader"][str(workers)]
        assert positive(loader["tiles_per_s"]) and 0 <= loader["data_wait_share"] < 1
    resume = record["resume"]
    assert 0 < resume["killed_at_step"] < resume["steps"] == resume["resumed_step"]
    assert resume["teacher_max_abs_diff"] < 1e-6  # one CPU: the same run
    assert positive(record["attention_maps"]["tiles_per_s"])
    finetune = record["finetune_step"]["test_vit"]
    assert all(positive(finetune[model]["tiles_per_s"]) for model in FINETUNE_MODELS)
    learning = record["learning"]
    assert learning["steps"] == learning["epochs"] * (
        learning["train_tiles"] // QUICK.learning_batch
    )
    assert learning["collapse"] in ("ok", "partial collapse", "full collapse")
    for split in ("val", "test"):
        for reading in ("cls", "patch"):
            scores = learning["probe"][split][reading]
            assert scores["gain_low"] <= scores["gain"] <= scores["gain_high"]
            assert scores["gain"] == pytest.approx(scores["miou"] - scores["random_miou"])
    # The peak reaches `sarssl pretrain`: its rows carry MFU.
    metrics = pd.read_csv(out / "resume/killed/metrics.csv")
    assert metrics.mfu.between(0, 1, inclusive="right").all()

    section = (out / "device_check.md").read_text()
    assert section.startswith("## Device check: CPU") and "Failed parts" not in section
    assert "Learning: test_vit, DINO's recipe" in section
