"""Land cover predicted by a finished fine-tuning run over every tile of a map, for the
prediction mosaics: the run chosen among a table's runs, and its saved model (the selected
epoch) applied to the valid tiles of one shard, tile by tile."""

import json
from collections.abc import Sequence
from pathlib import Path

import numpy as np
import torch

from sarssl.tiles.loader import TileRef
from sarssl.training.finetune import build_model, predict_item, run_tiles

from .. import paths
from ..devices import default_device
from ..errors import SarsslError
from ..settings.finetune import read_settings
from .grid import TileFootprints
from .products import class_codes, write_class_mosaic
from .shards import shard_part

# The names of a run folder's files (sarssl.paths.RUN_FILES).
METRICS_NAME, CONFIG_NAME, MODEL_NAME = (
    Path(pattern).name
    for pattern in (paths.FINETUNE_METRICS, paths.FINETUNE_CONFIG, paths.FINETUNE_MODEL)
)


def best_run(metrics_files: Sequence[str | Path]) -> Path:
    """The folder of the run of the highest validation MIoU (the runs' own selection
    criterion: the test split never chooses); the first listed of a tie."""
    scored = []
    for path in metrics_files:
        val_miou = json.loads(Path(path).read_text())["val_miou"]
        if val_miou is not None:
            scored.append((val_miou, -len(scored), Path(path).parent))
    if not scored:
        raise SarsslError(f"no run with a validation MIoU among {list(map(str, metrics_files))}")
    return max(scored)[2]


@torch.no_grad()
def write_prediction_shard(
    path: str | Path,
    metrics_files: Sequence[str | Path],
    splits: Sequence[str],
    shard: int,
    n_shards: int,
) -> Path:
    """Shard of the land-cover mosaic of the best of the runs (best_run) over the tiles
    of `splits`; returns the run's folder."""
    run = best_run(metrics_files)
    settings = read_settings(run / CONFIG_NAME)
    footprints = TileFootprints.of_store(settings.store)
    part, positions = shard_part(footprints, splits, shard, n_shards)
    device = default_device()
    model, normalisation = build_model(settings)
    model.load_state_dict(torch.load(run / MODEL_NAME, map_location="cpu"))
    model = model.to(device, memory_format=torch.channels_last).eval()
    tiles = run_tiles(settings, [TileRef(settings.store, int(p)) for p in positions], normalisation)
    item_of = {int(p): i for i, p in enumerate(positions)}

    def predicted(position: int) -> np.ndarray:
        item = tiles[item_of[position]]
        return class_codes(predict_item(model, item, device, settings.precision))

    metrics = json.loads((run / METRICS_NAME).read_text())
    write_class_mosaic(
        path,
        part,
        footprints.tiles(positions, predicted),
        description=f"land cover predicted by {settings.name} (ESA WorldCover code)",
        tags={"run": settings.name, "val_miou": str(metrics["val_miou"])},
    )
    return run
