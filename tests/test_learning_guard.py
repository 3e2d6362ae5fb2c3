"""The learning guard: the project's own DINO trainer must leave a teacher whose features
beat its random-init twin on the k-NN probe, with the tile bootstrap's lower bound above 0.

The data are textures (tests/texture_store.py): a store built by the pipeline over a small
AOI whose tiles each hold one class's Gaussian random field, all classes around one mean, so
that only what crops of a tile share tells them apart; a random ViT's CLS token scores near
chance (4 classes). The run: timm's test ViT (6 blocks of width 64, patch 16) on 32 px tiles,
16 px local crops, DINO's recipe scaled to 200 steps of 64 tiles, a head of 1024
prototypes; a learning rate of 5e-3 per 256 tiles, ten times DINO's, for so short a run.
One thread, fixed seeds.

What it catches (each broken once in the code, and the test failed): a teacher whose EMA
never moves (it stays the random twin: gain 0), a student whose gradient is cut (the same),
and a centre that is never subtracted. The last one still gains on the probe; it fails the
second check, DINO's own reason for the centre (Caron et al. 2021, section 5.3): without it
one prototype dominates every teacher output. Measured on this run: the teacher's entropy
stays between 4.7 and 6.93 nats (log 1024) with the centre, and below 0.002 from step 20
on without it; the bound of 1 nat lies between the two.
"""

import json

import pandas as pd
import pytest
import torch
from texture_store import texture_store

from sarssl.evaluation.probe import CLS, RANDOM_INIT, PatchProbe, bootstrap_columns
from sarssl.models.backbone import load_backbone
from sarssl.settings.pretrain import settings_from_config
from sarssl.settings.probe import ProbeSettings
from sarssl.settings.recipes import DINO, DINO_RECIPE, scaled_to_run
from sarssl.tiles.loader import split_tiles
from sarssl.training.pretrain import train

EPOCHS, BATCH, TRAIN_TILES = 100, 64, 135
MIN_TEACHER_ENTROPY = 1.0  # nats; the head's log(out_dim) is 6.93
GUARD_DINO = {
    "recipe": DINO,
    **scaled_to_run(DINO_RECIPE, EPOCHS, EPOCHS * (TRAIN_TILES // BATCH)),
    "lr": 5e-3,
    "out_dim": 1024,
    "head_hidden_dim": 256,
    "bottleneck_dim": 64,
    "local_px": 16,
    "local_crops": 4,
    "loader_workers": 0,
    "checkpoint_every": 1000,
    "log_every": 10,
    "probe_every": -1,
}


@pytest.fixture(scope="module")
def textures(tmp_path_factory):
    return texture_store(tmp_path_factory.mktemp("textures"))


@pytest.fixture
def one_thread():
    threads = torch.get_num_threads()
    torch.set_num_threads(1)  # the same sums in the same order on every host
    yield
    torch.set_num_threads(threads)


def test_dino_training_beats_its_random_init_twin_on_the_probe(textures, tmp_path, one_thread):
    run = {"name": "guard", "architecture": "test_vit", "epochs": EPOCHS, "batch_size": BATCH}
    settings = settings_from_config(run, GUARD_DINO, [str(textures)], 32)
    teacher = load_backbone(train(settings, tmp_path / "run"), "teacher")
    probe = PatchProbe(
        split_tiles(textures, ["train"]),
        {"val": split_tiles(textures, ["val"])},
        teacher.normalisation,
        ProbeSettings(train_tiles=TRAIN_TILES, eval_tiles=100, bank_patches=4),
    )
    networks = {"teacher": teacher.network, RANDOM_INIT: teacher.random_twin(settings.seed)}
    scores = {name: probe.score(network)["val"][CLS] for name, network in networks.items()}
    gain = bootstrap_columns(scores, RANDOM_INIT, settings.seed, CLS)["teacher"]
    verdict = json.loads((tmp_path / "run" / "collapse.json").read_text())["sentence"]
    assert gain["cls_accuracy_gain_low"] > 0, (gain, verdict)
    # The centre keeps any one prototype from taking every output: the teacher's entropy
    # never falls to the 0 of a one-hot output.
    entropy = pd.read_csv(tmp_path / "run" / "metrics.csv")["teacher_entropy"]
    assert entropy.min() > MIN_TEACHER_ENTROPY, (entropy.min(), verdict)
