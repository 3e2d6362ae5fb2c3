"""Where each tile's files are: the geetiles folder layout and per-shard manifests.

Every source (synthetic, an existing geetiles download, the Earth Engine export) ends in the
same manifest, one per shard, so the Zarr build never needs to know where data came from.
"""

from pathlib import Path

import geopandas as gpd
import pandas as pd

from ..atomic import atomic_path
from .grid import read_tiles, shard_range

MANIFEST_COLUMNS = ("index", "tile", "s1_path", "label_path")
# Optional column: why the source could not deliver a tile (the build rejects it with that).
ERROR_COLUMN = "error"


def dataset_dir(tiles_file: str | Path, dataset: str) -> Path:
    """geetiles layout: `<tiles file without extension>/<dataset>/`."""
    tiles_file = Path(tiles_file)
    return tiles_file.parent / tiles_file.stem / dataset


def tile_manifest(
    tiles_file: str | Path,
    tile_ids: list[str],
    start: int,
    s1_dataset: str,
    labels_dataset: str,
) -> pd.DataFrame:
    """Paths of the S1 and label GeoTIFFs of tiles `tile_ids`, numbered from `start`."""
    s1_dir = dataset_dir(tiles_file, s1_dataset)
    label_dir = dataset_dir(tiles_file, labels_dataset)
    return pd.DataFrame(
        {
            "index": range(start, start + len(tile_ids)),
            "tile": tile_ids,
            "s1_path": [str(s1_dir / f"{t}.tif") for t in tile_ids],
            "label_path": [str(label_dir / f"{t}.tif") for t in tile_ids],
        }
    )


def write_csv(frame: pd.DataFrame, path: str | Path) -> None:
    with atomic_path(path) as tmp:
        frame.to_csv(tmp, index=False, float_format="%.17g")


def read_manifest(path: str | Path) -> pd.DataFrame:
    frame = pd.read_csv(path, dtype={"tile": str, ERROR_COLUMN: str})
    missing = set(MANIFEST_COLUMNS) - set(frame.columns)
    if missing:
        raise ValueError(f"manifest {path} lacks column(s) {sorted(missing)}")
    if ERROR_COLUMN not in frame:
        frame[ERROR_COLUMN] = ""
    frame[ERROR_COLUMN] = frame[ERROR_COLUMN].fillna("")
    return frame


def shard_manifest(
    tiles_file: str | Path,
    shard: int,
    n_shards: int,
    s1_dataset: str,
    labels_dataset: str,
    layout_file: str | Path | None = None,
) -> tuple[pd.DataFrame, gpd.GeoDataFrame]:
    """The manifest of one shard, and that shard's rows of the tiles file. The GeoTIFFs are
    in the geetiles layout of `layout_file` (a download's own tiles file, of which
    `tiles_file` keeps some tiles), else of `tiles_file`."""
    tiles = read_tiles(tiles_file)
    start, stop = shard_range(len(tiles), n_shards, shard)
    rows = tiles.iloc[start:stop]
    return tile_manifest(
        layout_file or tiles_file, rows.identifier.tolist(), start, s1_dataset, labels_dataset
    ), rows
