"""The workflow through a real SLURM: `snakemake --cores all --profile slurm` from the
repository root, on a single-node cluster these tests start (see slurm_cluster.py)."""

import json
import re
import subprocess
import sys
from pathlib import Path

import pytest
import yaml
from conftest import (
    REPO,
    TINY_AOI_WKT,
    TINY_DATA_CONFIG,
    tiny_finetune_config,
    tiny_pretrain_config,
)
from slurm_cluster import FIRST_STATUS_CHECK_S, LocalSlurm, slurm_available

from sarssl.dataset.store import open_store

pytestmark = pytest.mark.skipif(slurm_available() is not None, reason=str(slurm_available()))
# A hard limit on every workflow run: a hung status loop must fail the test, not CI.
RUN_LIMIT_S = 600


@pytest.fixture(scope="module")
def cluster(tmp_path_factory):
    slurm = LocalSlurm(tmp_path_factory.mktemp("slurm"))
    try:
        slurm.start()
        yield slurm
    finally:
        slurm.stop()


def profile_run(workdir: Path, config: Path, *targets: str) -> subprocess.CompletedProcess:
    """The README's cluster command, from the repository root, with the settings a cluster
    without accounting needs (squeue for status, a short first status check)."""
    command = [
        "timeout", "-s", "KILL", str(RUN_LIMIT_S),
        sys.executable, "-m", "snakemake", *targets,
        "--cores", "all", "--profile", "slurm",
        "--slurm-status-command", "squeue",
        "--slurm-init-seconds-before-status-checks", str(FIRST_STATUS_CHECK_S),
        "--directory", str(workdir), "--configfile", str(config),
    ]  # fmt: skip
    result = subprocess.run(command, capture_output=True, text=True, cwd=REPO)
    assert result.returncode != -9 and result.returncode != 137, "snakemake hung and was killed"
    return result


def submissions(result: subprocess.CompletedProcess, aoi: str) -> list[str]:
    """Jobs of `aoi` submitted to SLURM (their log folder starts with the AOI's name)."""
    return re.findall(
        rf"submitted with SLURM jobid \d+ \(log: \S*/rule_\w+/{aoi}[/_]", result.stderr
    )


def write_config(workdir: Path, aois: dict[str, str]) -> Path:
    """A config of tiny synthetic AOIs, {name: WKT text}."""
    entries = []
    for name, wkt_text in aois.items():
        wkt = workdir / f"{name}.wkt"
        wkt.write_text(wkt_text)
        entries.append({"name": name, "source": "synthetic", "wkt": str(wkt), "n_shards": 2})
    config = {
        "aois": entries,
        **TINY_DATA_CONFIG,
        **tiny_pretrain_config(["tiny"]),
        "finetune": tiny_finetune_config("tiny", [50]),
    }
    path = workdir / "config.yaml"
    path.write_text(yaml.safe_dump(config))
    return path


# The data of both AOIs, the pre-training, its attention maps and one fine-tuning run (not
# the whole grid and results: each level of the DAG costs SLURM status checks).
FINETUNE_RUN = "results/finetune/tiny-vit/attention-unet/finetuned/frac50/seed0/metrics.json"
CLUSTER_TARGETS = (
    "results/tiny/stats.json",
    "results/broken/stats.json",
    "results/pretrain/tiny-vit/attention/tiny.zarr/zarr.json",
    FINETUNE_RUN,
)


@pytest.fixture(scope="module")
def cluster_run(cluster, tmp_path_factory):
    """One run over a good AOI and a broken one (its polygon is not WKT)."""
    workdir = tmp_path_factory.mktemp("slurm-workflow")
    config = write_config(workdir, {"tiny": TINY_AOI_WKT, "broken": "POLYGON ((not a polygon))"})
    return workdir, config, profile_run(workdir, config, *CLUSTER_TARGETS)


def test_the_workflow_runs_as_slurm_jobs_and_a_failure_stops_nothing_else(cluster_run):
    workdir, _, result = cluster_run
    assert result.returncode != 0  # the broken AOI failed...
    # ...while every job of the good one ran as a SLURM job: grid, split, the tiles kept,
    # 2 synthetic shards, init, 2 build shards, the rejected list, finalise.
    assert len(submissions(result, "tiny")) == 10
    ds = open_store(workdir / "results/tiny/dataset.zarr")
    assert ds.sizes["tile"] == 42 and bool(ds.valid.all())
    assert (workdir / "results/tiny/stats.json").is_file()


def test_pretraining_attention_and_finetuning_run_as_gpu_jobs(cluster_run):
    workdir, _, result = cluster_run
    jobs = re.findall(
        r"submitted with SLURM jobid (\d+) \(log: \S*/rule_(pretrain|attention_maps|finetune)/",
        result.stderr,
    )
    assert sorted(rule for _, rule in jobs) == ["attention_maps", "finetune", "pretrain"]
    for jobid, rule in jobs:
        # Finished jobs stay visible for MinJobAge: their allocation shows the GPU.
        job = subprocess.run(
            ["scontrol", "show", "job", jobid], capture_output=True, text=True, check=True
        ).stdout
        assert "TresPerJob=gres:gpu:1" in job, f"{rule}: {job}"
    assert (workdir / "results/pretrain/tiny-vit/checkpoint.pt").is_file()
    assert (workdir / "results/pretrain/tiny-vit/attention/tiny.zarr/zarr.json").is_file()
    assert json.loads((workdir / FINETUNE_RUN).read_text())["miou"] is not None


def test_a_failed_job_is_reported_with_its_log_and_a_rerun_resumes(cluster_run):
    workdir, config, result = cluster_run
    out = result.stdout + result.stderr
    assert "Error in rule tile_grid" in out
    assert "logs/broken/tile_grid.log" in out  # the job's log, named in the message
    assert "not valid WKT" in (workdir / "logs/broken/tile_grid.log").read_text()
    # Fixed input: the rerun picks the DAG up where it failed; nothing of tiny reruns.
    (workdir / "broken.wkt").write_text(TINY_AOI_WKT)
    rerun = profile_run(workdir, config, "results/broken/splits.csv", "results/tiny/stats.json")
    assert rerun.returncode == 0, rerun.stdout + rerun.stderr
    assert (workdir / "results/broken/splits.csv").is_file()
    # grid, split and the tiles kept
    assert submissions(rerun, "tiny") == [] and len(submissions(rerun, "broken")) == 3


def test_one_target_reruns_through_slurm(cluster_run):
    workdir, config, _ = cluster_run
    (workdir / "results/tiny/stats.json").unlink()
    result = profile_run(workdir, config, "results/tiny/stats.json")
    assert result.returncode == 0, result.stdout + result.stderr
    assert "finalise_store" in result.stderr and "build_store_shard" not in result.stderr
    assert (workdir / "results/tiny/stats.json").is_file()


def test_a_gpu_job_is_scheduled(cluster):
    result = subprocess.run(
        ["timeout", "-s", "KILL", "60", "srun", "--gres=gpu:1", "--time=1", "true"],
        capture_output=True,
        text=True,
    )
    assert result.returncode == 0, result.stderr
