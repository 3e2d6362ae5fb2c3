"""Command line: `sarssl gee-plan` prints what an Earth Engine export would request;
`sarssl plan` the cost plan of a config (tiles, Earth Engine, store, GPU-hours, cores);
`sarssl pretrain` runs DINO pre-training (the entry point torchrun launches per GPU);
`sarssl finetune` one run of the fine-tuning grid; `sarssl tables` the MIoU tables from the
runs finished so far.

Run from the repository root (like snakemake): paths in the config are relative to it.
"""

import argparse
import contextlib
import io
import json
import logging
import sys
import tempfile
from pathlib import Path

import geopandas as gpd

from sarssl import paths
from sarssl.dataset.gee import ENDPOINTS
from sarssl.dataset.grid import (
    apportion,
    build_tile_grid,
    geographic_split,
    read_aoi,
    read_splits,
    read_tiles,
    split_counts,
    tile_bounds,
)
from sarssl.errors import ConfigError, InputError
from sarssl.settings.config import Config

# Half a tile's side around the AOI's representative point: enough for geetiles to place
# one example chip when the AOI's grid is not built yet.
EXAMPLE_BOX_DEG = 0.03


def aoi_tiles(config: Config, aoi_name: str) -> tuple[gpd.GeoDataFrame, int, bool]:
    """Tiles of an AOI's whole grid: the grid when it is built (exact count), else one example
    chip that geetiles places around the AOI's representative point and the count estimated
    from the AOI's area."""
    aoi = config.aoi(aoi_name)
    chip_m = config.chip_size_m()
    tiles_path = Path(config.grid_file(aoi_name))
    if tiles_path.is_file():
        tiles = read_tiles(tiles_path)
        return tiles, len(tiles), True
    geometry = read_aoi(aoi["wkt"])
    area_m2 = gpd.GeoSeries([geometry], crs=4326).to_crs("ESRI:54009").area.iloc[0]
    example = geometry.representative_point().buffer(EXAMPLE_BOX_DEG, cap_style="square")
    with (
        tempfile.TemporaryDirectory() as tmp,
        contextlib.redirect_stdout(io.StringIO()),
        contextlib.redirect_stderr(io.StringIO()),
    ):
        box = Path(tmp) / "example.wkt"
        box.write_text(example.wkt)
        tiles = build_tile_grid(aoi_name, box, chip_m)
    return tiles, round(area_m2 / chip_m**2), False


def grid_split_counts(config: Config, aoi_name: str) -> tuple[dict[str, int], bool]:
    """Tiles per split of an AOI's whole grid, and whether counted: from its splits file, else
    geetiles' split of its grid when built, else the estimate from the AOI's area shared by
    split.fractions."""
    splits_path = Path(config.under(paths.GRID_SPLITS, aoi=aoi_name))
    if splits_path.is_file():
        return split_counts(read_splits(splits_path)), True
    tiles, count, exact = aoi_tiles(config, aoi_name)
    split = config.values["split"]
    if exact:
        splits = geographic_split(tiles, split["nbands"], split["angle"], split["fractions"])
        return split_counts(splits), True
    return apportion(count, split["fractions"]), False


def gee_plan(config: Config, aoi_name: str) -> dict:
    """Tile count of the grid (exact when it exists, else estimated from the AOI's area), the
    tiles exported (max_tiles of them, when set) and, for one tile, the exact requests.
    Makes no network call."""
    aoi = config.aoi(aoi_name)
    tiles, count, exact = aoi_tiles(config, aoi_name)
    requests = config.gee_requests(aoi_name)
    bounds = tuple(tile_bounds(tiles.iloc[:1])[0])
    return {
        "aoi": aoi_name,
        "tiles": count,
        "tiles_exact": exact,
        "tiles_note": None if exact else "estimated from the AOI's area; its grid is not built yet",
        "max_tiles": aoi["max_tiles"],
        "tiles_exported": count if aoi["max_tiles"] is None else min(count, aoi["max_tiles"]),
        "example_tile": str(tiles.identifier.iloc[0]),
        "endpoint": ENDPOINTS[config.values["gee"]["endpoint"]],
        "requests": {r.dataset: r.describe(bounds, config.data["tile_px"]) for r in requests},
    }


def cost_plan(config: Config) -> str:
    """`sarssl plan`: the cost plan of the config (see sarssl.outputs.plan)."""
    from sarssl.outputs.plan import describe, plan

    counts = {name: grid_split_counts(config, name) for name in config.aoi_names}
    settings = {name: config.pretrain(name) for name in config.pretrain_runs}
    result = plan(
        config.values,
        {name: count for name, (count, _) in counts.items()},
        settings,
        finetune_settings=config.finetune,
    )
    estimated = [name for name, (_, exact) in counts.items() if not exact]
    note = (
        f"\n(tiles of {', '.join(estimated)} estimated from the AOI's area, per split by "
        "split.fractions: the bands' shares are counted once the grid is built)"
        if estimated
        else ""
    )
    return describe(result) + note


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="sarssl", description=__doc__)
    commands = parser.add_subparsers(dest="command", required=True)
    plan = commands.add_parser(
        "gee-plan", help="print, without network, what the export of an AOI requests"
    )
    plan.add_argument("--configfile", type=Path, nargs="+", default=[Path("config/config.yaml")])
    plan.add_argument("--schema", type=Path, default=Path("config/schema.yaml"))
    plan.add_argument("--results", type=Path, default=Path("results"))
    plan.add_argument("--aoi", required=True)
    pretrain = commands.add_parser(
        "pretrain",
        help="DINO pre-training (or its resumption) in a run folder; one process per GPU "
        "under torchrun or srun",
    )
    pretrain.add_argument("--settings", type=Path, required=True, help="settings JSON file")
    pretrain.add_argument("--run-dir", type=Path, required=True)
    finetune = commands.add_parser(
        "finetune", help="one fine-tuning run: train, select on val, write test metrics"
    )
    finetune.add_argument("--settings", type=Path, required=True, help="settings JSON file")
    finetune.add_argument("--metrics", type=Path, required=True, help="metrics.json to write")
    finetune.add_argument(
        "--predictions", type=Path, required=True, help="npz of example test predictions"
    )
    finetune.add_argument(
        "--model", type=Path, required=True, help="the selected epoch's state dict to write"
    )
    finetune.add_argument(
        "--weights",
        type=Path,
        help="an export folder to fine-tune instead of the settings' checkpoint, checked "
        "against the settings' store (channels, units, tile and pixel size)",
    )
    transfer = commands.add_parser(
        "transfer",
        help="the transfer benchmark: an export fine-tuned on a public Sentinel-1 task "
        "(Sen1Floods11, DFC2020-S1) against a U-Net from scratch; MIoU with intervals",
    )
    transfer.add_argument("--weights", type=Path, required=True, help="an export folder")
    transfer.add_argument("--data", type=Path, required=True, help="a folder in the task's layout")
    transfer.add_argument(
        "--out", type=Path, required=True, help="folder of the runs' records (reused)"
    )
    transfer.add_argument(
        "--settings",
        type=Path,
        help="JSON of config transfer's keys (task, runs and training); the defaults without it",
    )
    transfer.add_argument("--table", type=Path, required=True, help="the table's csv to write")
    transfer.add_argument("--markdown", type=Path, help="the table's md to write")
    tables = commands.add_parser(
        "tables", help="write the MIoU tables from the runs finished so far (missing shown)"
    )
    cost = commands.add_parser(
        "plan", help="print the cost plan of a config: tiles, Earth Engine, store, GPU-hours"
    )
    cost.add_argument("--configfile", type=Path, nargs="+", default=[Path("config/config.yaml")])
    cost.add_argument("--schema", type=Path, default=Path("config/schema.yaml"))
    cost.add_argument("--results", type=Path, default=Path("results"))
    tables.add_argument("--configfile", type=Path, nargs="+", default=[Path("config/config.yaml")])
    tables.add_argument("--schema", type=Path, default=Path("config/schema.yaml"))
    tables.add_argument("--results", type=Path, default=Path("results"))
    args = parser.parse_args(argv)
    if args.command in ("pretrain", "finetune", "transfer"):
        logging.basicConfig(
            level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s"
        )
    try:
        # torch and timm are imported only by the commands that train: gee-plan starts
        # without them.
        if args.command == "pretrain":
            from sarssl.settings.pretrain import PretrainSettings
            from sarssl.training.pretrain import train

            settings = PretrainSettings.from_dict(json.loads(args.settings.read_text()))
            train(settings, args.run_dir)
            return 0
        if args.command == "finetune":
            from sarssl.settings.finetune import read_settings
            from sarssl.training.finetune import write_metrics
            from sarssl.weights import with_weights

            settings = read_settings(args.settings)
            if args.weights is not None:
                settings = with_weights(settings, args.weights)
            write_metrics(settings, args.metrics, args.predictions, args.model)
            return 0
        if args.command == "transfer":
            from sarssl.transfer import write_transfer

            section = json.loads(args.settings.read_text()) if args.settings else {}
            write_transfer(args.weights, args.data, args.out, section, args.table, args.markdown)
            return 0
        config = Config.read(args.configfile, args.schema, args.results)
        if args.command == "plan":
            print(cost_plan(config))
            return 0
        if args.command == "tables":
            from sarssl.outputs.tables import write_all_tables

            for path in write_all_tables(args.results, config.finetune_section):
                print(path)
            return 0
        print(json.dumps(gee_plan(config, args.aoi), indent=2))
    except (ConfigError, InputError) as err:
        print(f"sarssl: {err}", file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main())
