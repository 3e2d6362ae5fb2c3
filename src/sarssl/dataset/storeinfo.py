"""What a finished store records of itself, read from its metadata and its small per-tile
coordinates, never its pixels: the one record through which readers learn a store's tile size,
how it holds dB, its train statistics, its S1 files and its tiles per split."""

from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any, cast

import numpy as np
import zarr

from ..errors import SarsslError
from .quantise import ChannelCoding
from .store import channel_coding, check_complete

# The orbit pass recorded for a tile whose S1 bands do not name theirs (a file of one pass).
PASS_AS_IN_FILE = "as in the file"


@dataclass(frozen=True)
class StoreInfo:
    tile_px: int
    n_tiles: int
    channels: tuple[str, ...]
    coding: ChannelCoding
    # Train statistics (sarssl.dataset.build.finalise): channels, mean, std, pixels,
    # computed_on.
    normalisation: dict
    # The kept tiles' S1 files: formats and orbit_pass (tiles of each), pixel counts.
    source_files: dict
    tiles: dict[str, dict[str, int]]  # split -> {"valid": n, "rejected": n}, the store's splits
    # What the pipeline's init_store records (sarssl.settings.config.Config.store_record);
    # None in a store created without them.
    aoi: str | None = None
    year: int | None = None
    pixel_m: float | None = None
    source: str | None = None  # synthetic, gee or geetiles_dir
    gee_export: dict | None = None  # the gee source's orbit_pass and composite
    units: str | None = None  # of the decoded channels (the s1grd array's CF `units`)

    @classmethod
    def read(cls, path: str | Path) -> "StoreInfo":
        """The record of the finished store at `path`; refuses one whose build did not
        finish."""
        check_complete(path)
        group = zarr.open_group(path, mode="r", zarr_format=3)
        s1grd = cast(zarr.Array, group["s1grd"])
        # JSON values, of the types the fields below record.
        attrs: Mapping[str, Any] = group.attrs
        s1grd_attrs: Mapping[str, Any] = s1grd.attrs
        split = cast(np.ndarray, cast(zarr.Array, group["split"])[...])
        valid = cast(np.ndarray, cast(zarr.Array, group["valid"])[...]).astype(bool)
        return cls(
            tile_px=s1grd.shape[-1],
            n_tiles=s1grd.shape[0],
            channels=tuple(attrs["channels"]),
            coding=channel_coding(s1grd),
            normalisation=s1grd_attrs["normalisation"],
            source_files=s1grd_attrs["source_files"],
            tiles={
                str(name): {
                    "valid": int((valid & (split == name)).sum()),
                    "rejected": int((~valid & (split == name)).sum()),
                }
                for name in np.unique(split)
            },
            aoi=attrs.get("aoi"),
            year=attrs.get("year"),
            pixel_m=attrs.get("pixel_m"),
            source=attrs.get("source"),
            gee_export=attrs.get("gee_export"),
            units=s1grd_attrs.get("units"),
        )

    @property
    def formats(self) -> list[str]:
        """The S1 file formats of the kept tiles (sarssl.dataset.s1layout), sorted."""
        return sorted(self.source_files["formats"])

    @property
    def orbit_passes(self) -> list[str]:
        """The orbit passes the kept tiles' S1 bands name, sorted; empty when none does."""
        return sorted(p for p in self.source_files["orbit_pass"] if p != PASS_AS_IN_FILE)


def tile_geometry(path: str | Path) -> tuple[int, float]:
    """The tile side (px) and pixel size (m) the store was created with (init_store):
    readable while its shards are being built, so that they are built to the store's size
    and not to the config's, which may have changed since."""
    group = zarr.open_group(path, mode="r", zarr_format=3)
    if "pixel_m" not in group.attrs:
        raise SarsslError(f"store {path} records no pixel_m: create it with init_store")
    return cast(zarr.Array, group["s1grd"]).shape[-1], cast(float, group.attrs["pixel_m"])
