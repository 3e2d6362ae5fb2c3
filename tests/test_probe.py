"""The k-NN probe against answers known by construction, its MIoU against torchmetrics, and
the collapse indicators on constructed teacher outputs."""

import math

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from conftest import TEST_TILE_PX
from torchmetrics.classification import MulticlassAccuracy, MulticlassJaccardIndex

from sarssl.backbone import create_backbone
from sarssl.data import Normalisation, split_tiles
from sarssl.dataset.worldcover import IGNORE_INDEX, NUM_CLASSES
from sarssl.dino import collapse_indicators
from sarssl.probe import PatchProbe, ProbeSettings, knn_predict, patch_labels, scores_of


def unit(x: torch.Tensor) -> torch.Tensor:
    return F.normalize(x, dim=-1)


def test_patch_labels_take_the_majority_and_ignore_mostly_unlabelled_patches():
    labels = np.full((1, 4, 4), 3, dtype=np.uint8)
    labels[0, :2, 2:] = [[1, 1], [1, 5]]  # top right: 3 of class 1
    labels[0, 2:, :2] = [[IGNORE_INDEX, IGNORE_INDEX], [IGNORE_INDEX, 2]]  # 1 of 4 labelled
    expected = [[3, 1], [IGNORE_INDEX, 3]]
    assert patch_labels(labels, (2, 2), NUM_CLASSES, IGNORE_INDEX)[0].tolist() == expected


def test_separable_features_are_classified_perfectly():
    generator = torch.Generator().manual_seed(0)
    classes = torch.arange(5).repeat(20)
    centres = torch.eye(5, 16) * 10
    bank = unit(centres[classes] + torch.randn(100, 16, generator=generator))
    queries = unit(centres[classes] + torch.randn(100, 16, generator=generator))
    predicted = knn_predict(bank, classes, queries, 20, 0.07, NUM_CLASSES)
    assert scores_of(predicted, classes).accuracy == 1.0


def test_features_identical_across_classes_give_the_majority_rate():
    classes = torch.tensor([2] * 12 + [7] * 6 + [4] * 2)
    bank = unit(torch.ones(20, 8))
    truth = torch.tensor([2] * 5 + [7] * 3 + [4] * 2)
    # Every neighbour is as close as any other: with all of them voting, the most frequent
    # class of the bank wins for every query.
    predicted = knn_predict(bank, classes, unit(torch.ones(10, 8)), 20, 0.07, NUM_CLASSES)
    assert (predicted == 2).all() and scores_of(predicted, truth).accuracy == 0.5


def test_k_1_gives_the_label_of_the_nearest_neighbour():
    generator = torch.Generator().manual_seed(1)
    bank, queries = unit(torch.randn(50, 6, generator=generator)), unit(torch.randn(30, 6))
    classes = torch.randint(0, NUM_CLASSES, (50,), generator=generator)
    nearest = classes[(queries @ bank.T).argmax(dim=1)]
    torch.testing.assert_close(knn_predict(bank, classes, queries, 1, 0.07, NUM_CLASSES), nearest)


def test_votes_are_weighted_by_exp_similarity_over_temperature():
    # Cosine similarity 0.9 to a bank patch of class 0, 0.8 to two of class 1.
    query = torch.tensor([[1.0, 0.0]])
    bank = torch.tensor([[0.9, math.sqrt(1 - 0.81)], [0.8, 0.6], [0.8, -0.6]])
    classes = torch.tensor([0, 1, 1])
    # T = 0.07: e^(0.9/0.07) = 3.8e5 > 2 e^(0.8/0.07) = 1.8e5; T = 1: 2.46 < 2 * 2.23.
    assert knn_predict(bank, classes, query, 3, 0.07, NUM_CLASSES).item() == 0
    assert knn_predict(bank, classes, query, 3, 1.0, NUM_CLASSES).item() == 1


def test_probe_scores_agree_with_torchmetrics_on_the_same_predictions():
    generator = torch.Generator().manual_seed(2)
    truth = torch.randint(0, 6, (500,), generator=generator)
    predicted = torch.where(torch.rand(500, generator=generator) < 0.7, truth, (truth + 1) % 6)
    scores = scores_of(predicted, truth)
    jaccard = MulticlassJaccardIndex(NUM_CLASSES, average="macro", ignore_index=IGNORE_INDEX)
    assert scores.miou == pytest.approx(jaccard(predicted, truth).item(), abs=1e-6)
    accuracy = MulticlassAccuracy(NUM_CLASSES, average="micro")(predicted, truth).item()
    assert scores.accuracy == pytest.approx(accuracy) and scores.patches == 500


@pytest.fixture(scope="module")
def store(tiny_store):
    return tiny_store


def test_the_probe_of_a_backbone_is_deterministic_and_counts_every_labelled_patch(store):
    settings = ProbeSettings(train_tiles=8, eval_tiles=5, bank_patches=3, batch_size=3)
    probe = PatchProbe(
        split_tiles(store, ["train"]),
        {"val": split_tiles(store, ["val"])},
        Normalisation.of_stores([store]),
        settings,
    )
    assert len(probe.bank_tiles) == 8 and len(probe.query_tiles["val"]) == 5
    torch.manual_seed(0)
    backbone = create_backbone("vit_tiny_patch16_224", TEST_TILE_PX).eval()
    first, second = probe.score(backbone)["val"], probe.score(backbone)["val"]
    assert first.accuracy == second.accuracy and first.miou == second.miou
    # Queries: every labelled patch (2 x 2 per 32 px tile) of the 5 val tiles.
    labels = np.stack([probe_labels(store, t.index) for t in probe.query_tiles["val"]])
    assert first.patches == (patch_labels(labels, (2, 2), NUM_CLASSES, 255) != 255).sum()
    assert 0 <= first.accuracy <= 1


def probe_labels(store, index):
    import zarr

    return zarr.open_group(store, mode="r")["labels"][index]


def test_collapse_indicators_on_constructed_teacher_outputs():
    K, B = 64, 8
    same = F.one_hot(torch.full((B,), 5), K).float()
    entropy, prototypes = collapse_indicators(same)
    assert entropy.item() == pytest.approx(0.0, abs=1e-6) and prototypes.item() == 1
    distinct = F.one_hot(torch.arange(B), K).float()
    entropy, prototypes = collapse_indicators(distinct)
    assert entropy.item() == pytest.approx(math.log(B)) and prototypes.item() == B
    uniform = torch.full((B, K), 1 / K)
    entropy, prototypes = collapse_indicators(uniform)
    assert entropy.item() == pytest.approx(math.log(K)) and prototypes.item() == 1
