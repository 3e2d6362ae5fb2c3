"""The model card, section by section: the card is its sections in order, each a heading
and its lines ending blank, and the DINO table compares a run with the original DINO."""

from sarssl.models.checkpoint import Checkpoint
from sarssl.outputs.export_format import DINO_WHERE_THE_PAPER_DIFFERS, DataDescription
from sarssl.outputs.model_card import (
    data_section,
    dino_differences,
    evaluation_section,
    files_section,
    input_section,
    licences_section,
    limitations_section,
    loading_section,
    model_card,
    title_section,
    training_section,
)
from sarssl.settings.pretrain import PretrainSettings

DATA = DataDescription(
    aois=["tiny"],
    year=2020,
    tiles={"tiny": {s: {"valid": 10, "rejected": 1} for s in ("train", "val", "test")}},
    split={"nbands": 5, "angle": 0.0, "fractions": {"train": 0.6, "val": 0.2, "test": 0.2}},
    sources={"tiny": "synthetic"},
    orbit_pass={"tiny": "none (synthetic)"},
    composite={"tiny": "synthetic seasonal means"},
)


def run_settings(**overrides) -> dict:
    """A run's settings as a checkpoint holds them: PretrainSettings' defaults (the paper's)."""
    return PretrainSettings(
        name="run", architecture="vit_tiny_patch16_224", stores=("store",), epochs=100,
        batch_size=256, **overrides,
    ).as_dict()  # fmt: skip


def test_a_run_of_the_defaults_differs_from_dino_where_the_paper_states_its_own():
    assert set(dino_differences(run_settings())) == set(DINO_WHERE_THE_PAPER_DIFFERS)
    assert dino_differences(run_settings(**DINO_WHERE_THE_PAPER_DIFFERS)) == {}
    # Tuples of a run and lists of the table compare as values.
    scales = run_settings(**DINO_WHERE_THE_PAPER_DIFFERS, local_scale=(0.1, 0.4))
    assert dino_differences(scales) == {"local_scale": ((0.1, 0.4), [0.05, 0.4])}


def test_the_card_is_its_sections_in_order_each_a_heading_and_lines_ending_blank(tmp_path):
    weights = tmp_path / "model.safetensors"
    weights.write_bytes(bytes(1000))
    settings = run_settings()
    run = Checkpoint(
        step=40, settings=settings, normalisation={}, tiles=1000, student={}, teacher={},
        optimizer={}, loss={}, torch_rng=None, device="cpu x 1",
    )  # fmt: skip
    sections = {
        f"# run: DINO-pre-trained {settings['architecture']}": title_section(settings, "teacher"),
        "## Files": files_section(weights, "digest"),
        "## Input": input_section(),
        "## Data": data_section(settings, DATA),
        "## Training": training_section(run, None, None),
        "## Evaluation": evaluation_section(None, None),
        "## Limitations": limitations_section(None),
        "## Licences and attribution": licences_section(),
        "## Loading": loading_section(settings),
    }
    for heading, lines in sections.items():
        assert lines[0].startswith(heading) and lines[1] == "" and lines[-1] == "", heading
    card = model_card(run, DATA, "teacher", weights, "digest")
    assert card == "\n".join(line for lines in sections.values() for line in lines)
    assert "No evaluation was run with these weights." in sections["## Evaluation"]
    assert "- Device: cpu x 1." in sections["## Training"]
