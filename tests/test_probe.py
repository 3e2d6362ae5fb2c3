"""The k-NN probe against answers known by construction, its MIoU against torchmetrics, its
table with references and tile-bootstrap intervals, and the collapse indicators on
constructed teacher outputs."""

import math

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from conftest import TEST_TILE_PX
from torchmetrics.classification import MulticlassAccuracy, MulticlassJaccardIndex

from sarssl.dataset.worldcover import IGNORE_INDEX, NUM_CLASSES
from sarssl.evaluation.probe import (
    CLS,
    PATCH,
    PATCH_MEANS,
    RANDOM_INIT,
    READINGS,
    SUPERVISED,
    PatchMeans,
    PatchProbe,
    ProbeScores,
    bootstrap_columns,
    knn_predict,
    patch_labels,
    probe_summary,
    probe_table,
    scores_of,
    tile_labels,
)
from sarssl.models.backbone import create_backbone, load_backbone
from sarssl.models.dino import collapse_indicators
from sarssl.models.segmentation import Backbone, TokenDecoder
from sarssl.settings.probe import ProbeSettings
from sarssl.tiles.loader import Normalisation, split_tiles


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


def test_scores_keep_a_confusion_matrix_per_query_tile_and_the_empty_ones():
    truth, predicted = torch.tensor([0, 1, 1, 2]), torch.tensor([0, 1, 0, 2])
    scores = scores_of(predicted, truth, torch.tensor([0, 0, 2, 2]), tiles=4)
    assert scores.tile_confusions.shape == (4, NUM_CLASSES, NUM_CLASSES)
    assert scores.tile_confusions.sum(axis=(1, 2)).tolist() == [2, 0, 2, 0]
    assert scores.tile_confusions[2, 1, 0] == 1  # tile 2's class-1 patch predicted 0
    assert scores.accuracy == 0.75 and scores.miou == scores_of(predicted, truth).miou


def test_a_tile_label_is_the_majority_of_its_labelled_pixels():
    labels = np.full((3, 4, 4), 255, dtype=np.uint8)
    labels[0, :2] = 3  # 8 pixels of class 3
    labels[0, 2, :3] = 1  # 3 of class 1, the rest unlabelled
    labels[1] = 7
    np.testing.assert_array_equal(tile_labels(labels, NUM_CLASSES, 255), [3, 7, 255])


def test_patch_means_are_each_patchs_channel_means():
    images = torch.arange(2 * 12 * 4, dtype=torch.float32).reshape(2, 12, 2, 2)
    images = images.repeat_interleave(16, dim=2).repeat_interleave(16, dim=3)  # 32 x 32 px
    features = PatchMeans().forward_features(images)  # (tile, 2 x 2 patches, channel)
    torch.testing.assert_close(features, images[:, :, ::16, ::16].flatten(2).transpose(1, 2))
    assert PatchMeans().patch_embed.dynamic_feat_size((448, 448)) == (28, 28)


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
    for reading in READINGS:
        assert first[reading].accuracy == second[reading].accuracy
        assert first[reading].miou == second[reading].miou
        assert 0 <= first[reading].accuracy <= 1
        assert len(first[reading].tile_confusions) == 5  # one per query tile, for the bootstrap
    # Queries: every labelled patch (2 x 2 per 32 px tile) of the 5 val tiles, and each tile
    # with a labelled pixel once.
    labels = np.stack([probe_labels(store, t.index) for t in probe.query_tiles["val"]])
    assert first[PATCH].patches == (patch_labels(labels, (2, 2), NUM_CLASSES, 255) != 255).sum()
    assert first[CLS].patches == (labels != 255).any(axis=(1, 2)).sum()
    assert (first[CLS].tile_confusions.sum(axis=(1, 2)) <= 1).all()


def test_the_probe_table_has_references_and_intervals_that_hold_its_scores(
    store, tiny_checkpoint, tmp_path
):
    # The supervised reference's model: a tokens decoder around the teacher's ViT, so its
    # row must equal the teacher's, read back from the state dict alone.
    teacher = load_backbone(tiny_checkpoint, "teacher").network
    decoder = TokenDecoder(Backbone(teacher, frozen=False), NUM_CLASSES, width=4)
    torch.save(decoder.state_dict(), tmp_path / "model.pt")
    settings = ProbeSettings(train_tiles=8, eval_tiles=6, bank_patches=3, batch_size=3)
    table = probe_table(tiny_checkpoint, store, settings, tmp_path / "model.pt")
    backbones = ["pre-trained (teacher)", "pre-trained (student)", RANDOM_INIT, PATCH_MEANS,
                 SUPERVISED]  # fmt: skip
    assert table["backbone"].tolist() == backbones * 2
    assert table["split"].tolist() == ["val"] * 5 + ["test"] * 5
    scores = table.columns[table.columns.str.startswith(("patch_", "cls_"))]
    by_backbone = table.set_index(["backbone", "split"])
    np.testing.assert_array_equal(
        by_backbone.loc[SUPERVISED, scores], by_backbone.loc["pre-trained (teacher)", scores]
    )
    for score in ("patch_accuracy", "patch_miou", "cls_accuracy", "cls_miou"):
        low, point, high = (table[f"{score}{end}"] for end in ("_low", "", "_high"))
        assert ((low <= point) & (point <= high)).all()
        gain = table[f"{score}_gain"]
        assert ((table[f"{score}_gain_low"] <= gain) & (gain <= table[f"{score}_gain_high"])).all()
        random = table[table["backbone"] == RANDOM_INIT]
        assert (random[[f"{score}_gain{end}" for end in ("", "_low", "_high")]] == 0).all().all()
        teacher = table[table["backbone"] == backbones[0]].set_index("split")
        np.testing.assert_allclose(
            teacher[f"{score}_gain"], teacher[score] - random.set_index("split")[score]
        )
    summary = probe_summary(table)
    teacher = table.iloc[0]
    assert summary.iloc[0]["patch accuracy [95% CI]"] == (
        f"{teacher.patch_accuracy:.3f} [{teacher.patch_accuracy_low:.3f}, "
        f"{teacher.patch_accuracy_high:.3f}]"
    )
    assert summary.iloc[2]["patch MIoU gain (points) [95% CI]"] == "+0.0 [+0.0, +0.0]"


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


def confusion(correct: int, wrong: int) -> np.ndarray:
    """A 2-class tile confusion: `correct` patches of class 0 right, `wrong` called 1."""
    matrix = np.zeros((NUM_CLASSES, NUM_CLASSES), dtype=np.int64)
    matrix[0, 0], matrix[0, 1] = correct, wrong
    return matrix


def test_bootstrap_columns_pair_the_gain_on_the_same_resampled_tiles():
    # Tiles that vary widely in accuracy (wide intervals for each backbone), where one
    # backbone is right on exactly 2 more patches of 10 per tile than the reference.
    reference = [confusion(c, 10 - c) for c in (1, 3, 5, 7, 2, 6, 4, 8)]
    better = [confusion(c + 2, 8 - c) for c in (1, 3, 5, 7, 2, 6, 4, 8)]
    scores = {
        "better": ProbeScores(np.stack(better)),
        RANDOM_INIT: ProbeScores(np.stack(reference)),
    }
    columns = bootstrap_columns(scores, RANDOM_INIT, seed=0)
    # Accuracy from the summed matrices: (36 + 16) / 80 and 36 / 80.
    assert columns["better"]["patch_accuracy"] == pytest.approx(52 / 80)
    assert columns[RANDOM_INIT]["patch_accuracy"] == pytest.approx(36 / 80)
    assert columns["better"]["patch_accuracy_gain"] == pytest.approx(16 / 80)
    # Paired: every resample gains exactly 2 / 10, so the interval is that point, while
    # each backbone's own interval spans tens of points.
    assert columns["better"]["patch_accuracy_gain_low"] == pytest.approx(0.2)
    assert columns["better"]["patch_accuracy_gain_high"] == pytest.approx(0.2)
    own = columns["better"]["patch_accuracy_high"] - columns["better"]["patch_accuracy_low"]
    assert own > 0.2
    zero = columns[RANDOM_INIT]
    assert zero["patch_accuracy_gain_low"] == zero["patch_accuracy_gain_high"] == 0
