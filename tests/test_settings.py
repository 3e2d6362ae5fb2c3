"""Pre-training settings from the config (sarssl.settings.pretrain): errors that name the
run and the key; the paper's two readings of its learning rate."""

import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import yaml
from conftest import REPO
from snakemake.utils import validate

from sarssl.errors import ConfigError
from sarssl.settings.config import Config, JobResources, check, merge_configs
from sarssl.settings.finetune import Init
from sarssl.settings.pretrain import schedule_readings, settings_from_config
from sarssl.training.pretrain import Schedules


def test_config_errors_name_the_run_and_the_key(tiny_store):
    run = {"name": "r1", "architecture": "vit_tiny_patch16_224", "epochs": 2, "batch_size": 4}
    with pytest.raises(ConfigError, match=r"r1: dino overrides \['lerning_rate'\]"):
        settings_from_config({**run, "dino": {"lerning_rate": 1}}, {}, [str(tiny_store)], 32)
    with pytest.raises(ConfigError, match="'vit_tinny' is not a timm model"):
        settings_from_config({**run, "architecture": "vit_tinny"}, {}, [str(tiny_store)], 32)
    with pytest.raises(ConfigError, match=r"warmup_epochs=10 must be within 0..epochs \(2\)"):
        settings_from_config(run, {"warmup_epochs": 10}, [str(tiny_store)], 32)


def paper_settings(*overlays: str) -> dict:
    """The paper's pre-training settings (by run name), with config overlays applied as
    Snakemake applies several --configfile."""
    config = {}
    for name in ("paper.yaml", *overlays):
        config = merge_configs(config, yaml.safe_load((REPO / "config" / name).read_text()))
    validate(config, str(REPO / "config/schema.yaml"))
    check(config)
    return {
        run["name"]: settings_from_config(run, config["dino"], ["store"], 448, config["probe"])
        for run in config["pretrain"]
    }


def test_the_paper_lr_reads_flat_literally_and_as_dinos_cosine_with_the_overlay():
    steps_per_epoch = 10
    literal = paper_settings()["vittiny-europe"]
    lr = Schedules.of(literal, steps_per_epoch).lr
    warmup = literal.warmup_epochs * steps_per_epoch
    # 1e-6 per 256 at a batch of 256 is 1e-6, DINO's min_lr: flat after the warm-up.
    np.testing.assert_allclose(lr[warmup:], 1e-6, rtol=1e-9)
    dino = paper_settings("paper_dino_lr.yaml")
    assert set(dino) == {"vittiny-europe-dinolr", "vitbase-all-dinolr"}
    lr = Schedules.of(dino["vittiny-europe-dinolr"], steps_per_epoch).lr
    # Cosine from 5e-4 (per 256, batch 256) down to 1e-6: 0.5 (5e-4 + 1e-6) halfway, and
    # 1e-6 + 0.5 (5e-4 - 1e-6) (1 + cos(pi (n - 1) / n)) at the last of its n steps.
    n = len(lr) - warmup
    last = 1e-6 + 0.5 * (5e-4 - 1e-6) * (1 + np.cos(np.pi * (n - 1) / n))
    assert lr[warmup] == pytest.approx(5e-4) and lr[-1] == pytest.approx(last, rel=1e-9)
    middle = warmup + (len(lr) - warmup) // 2
    assert lr[middle] == pytest.approx(0.5 * (5e-4 + 1e-6))
    assert (np.diff(lr[warmup:]) <= 0).all()
    # Everything else is the literal run's.
    same = {k: v for k, v in literal.as_dict().items() if k not in ("name", "lr")}
    assert {k: dino["vittiny-europe-dinolr"].as_dict()[k] for k in same} == same


def test_the_model_card_says_which_schedules_a_run_followed():
    literal = schedule_readings(paper_settings()["vittiny-europe"].as_dict())
    assert literal[0].startswith("Learning rate: 1e-06 per 256 tiles, i.e. 1e-06 at the batch")
    assert "flat. This is the paper's lr 1e-6 read as DINO's --lr" in literal[0]
    assert literal[1].startswith("Teacher temperature: falls from 0.01 to 0.001 over 5 epochs")
    dino = schedule_readings(paper_settings("paper_dino_lr.yaml")["vitbase-all-dinolr"].as_dict())
    assert "then a cosine to 1e-06." in dino[0] and "flat" not in dino[0]


# Imports that the config's border must not make: the settings layer and the Snakefile's
# parse stay torch-free (and so quick), and what they use of timm is read in a child.
HEAVY = ("torch", "timm")
BLOCK_HEAVY = f"""
import sys

class Blocked:
    def find_spec(self, name, path=None, target=None):
        if name.split(".")[0] in {HEAVY!r}:
            raise ModuleNotFoundError(f"blocked import of {{name}}")

sys.meta_path.insert(0, Blocked())
"""


def run_blocking_heavy(code: str, cwd: Path) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-c", BLOCK_HEAVY + code],
        capture_output=True,
        text=True,
        cwd=cwd,
    )


def test_the_settings_layer_imports_no_torch(tmp_path):
    modules = [f"sarssl.settings.{m.stem}" for m in (REPO / "src/sarssl/settings").glob("*.py")]
    code = "\n".join(f"import {module}" for module in ["sarssl.settings", *modules])
    result = run_blocking_heavy(code, tmp_path)
    assert result.returncode == 0, result.stderr


def test_the_snakefile_parses_without_torch(tmp_path):
    """A dry run of the default config resolves the whole DAG, the settings of every job
    included, with torch and timm unimportable."""
    # The default config reads the kept Sen1Floods11 chip from tests/data.
    for folder in ("config", "resources", "tests"):
        (tmp_path / folder).symlink_to(REPO / folder)
    snakefile = REPO / "Snakefile"
    code = (
        "import runpy\n"
        f"sys.argv = ['snakemake', '-n', '--quiet', 'rules', '--snakefile', '{snakefile}']\n"
        "runpy.run_module('snakemake', run_name='__main__')\n"
    )
    result = run_blocking_heavy(code, tmp_path)
    assert result.returncode == 0, result.stdout + result.stderr
    assert "finetune" in result.stdout  # the grid's jobs were resolved


def test_a_jobs_resources_and_the_figures_runs_come_from_config():
    """Config.job reads a section's cores, memory, wall time and GPU switch; the example
    predictions take the frozen init at the largest fraction of the shown (first) seed, or
    the grid's first init when frozen is not in it."""
    values = yaml.safe_load((REPO / "config/config.yaml").read_text())
    values["probe"] |= {"threads": 3, "mem_mb": 1234, "runtime": 7, "gpu": False}
    values["attention"] |= {"threads": 5, "mem_mb": 2345, "runtime": 2, "gpu": True}
    values["finetune"] |= {"percents": [5, 50, 20], "seed": 7, "seeds": 2}
    config = Config.checked(values, REPO / "config/schema.yaml")
    assert config.job("probe") == JobResources(threads=3, mem_mb=1234, runtime=7, gpus=0)
    assert config.job("attention") == JobResources(threads=5, mem_mb=2345, runtime=2, gpus=1)
    runs = config.attention_predictions_runs("vittiny-demo")
    assert {run.init for run in runs.values()} == {Init.FROZEN}
    assert {(run.fraction, run.seed) for run in runs.values()} == {(50, 7)}
    values["finetune"]["inits"] = [Init.FINETUNED.value, Init.SCRATCH.value]
    runs = Config.checked(values, REPO / "config/schema.yaml").attention_predictions_runs("x")
    assert {run.init for run in runs.values()} == {Init.FINETUNED}


def test_the_schema_offers_the_transfer_tasks_the_code_reads():
    from sarssl.settings.transfer import SECTION_DEFAULTS, TRANSFER_TASKS

    schema = yaml.safe_load((REPO / "config/schema.yaml").read_text())
    task = schema["properties"]["transfer"]["properties"]["task"]
    assert task["enum"] == list(TRANSFER_TASKS) and task["default"] == SECTION_DEFAULTS["task"]
