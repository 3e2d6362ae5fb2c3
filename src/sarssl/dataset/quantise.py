"""How the dB channels are stored: as floats, or as integers packed the CF way.

`data.store_dtype: uint8 | uint16` stores code = round((dB - add_offset) / scale_factor) with
the array attributes `scale_factor`, `add_offset` and `_FillValue` (CF conventions 1.11,
section 8.1 "Packed data"), so that `xr.open_zarr` decodes dB by itself. Training reads the
codes and decodes them on its device (sarssl.tiles.loader.Standardiser): a loader worker ships a
quarter of the bytes of float32, half of float16.

One scale and one offset for all 12 channels: CF packs a variable with scalar attributes, and
xarray's decoder takes them as scalars, so per-channel ranges would not decode. The range
must then hold VV, VH and VV-VH of real seasonal means together. On the real Sentinel-1 chip
in `tests/data/sen1floods11` (Sen1Floods11, Murcia) after a 5 x 5 boxcar (about a seasonal mean's
speckle) VV spans -27.6..+21.0 dB, VH -40.4..+0.7 dB and VV-VH -3.6..+35.4 dB; the IW noise
floor lies near -22 to -25 dB before thermal-noise removal and well below after it. Hence
-45 dB to about +40 dB:

- uint8: 1/3 dB steps, codes 0..254 (255 is the fill), -45..+39.67 dB. Uniform rounding
  error has RMS step / sqrt(12) = 0.096 dB, a sixth of a seasonal mean's speckle (about 0.6
  dB std): the per-pixel noise std grows by 1.3 % (sqrt(0.6^2 + 0.096^2) / 0.6). A tenth of
  the speckle would need steps of 0.21 dB, i.e. a 53 dB range in 254 codes, which cannot
  hold the chip's VH and VV-VH at once.
- uint16: 1/500 dB steps, codes 0..65534, -45..+86.07 dB; RMS 0.0006 dB.

With steps of 1/n dB, whole dB values (geetiles' 2023 uint16 exports) are stored exactly.
Values beyond the range are clipped to the end codes, never wrapped, and counted per tile
(`clipped_pixels` in the shard reports and the store, their sum in stats.json).
"""

from collections.abc import Mapping
from dataclasses import dataclass

import numpy as np

FLOAT_DTYPES = ("float16", "float32")
LOWEST_DB = -45.0
# dtype -> codes per dB. The fill is the dtype's largest code; data use all below it.
PACKING: dict[str, int] = {"uint8": 3, "uint16": 500}
STORE_DTYPES = (*FLOAT_DTYPES, *PACKING)


@dataclass(frozen=True)
class ChannelCoding:
    """Stored value -> dB: value * scale_factor + add_offset (1 and 0 for float stores),
    fill_value where no tile was written."""

    dtype: str
    scale_factor: float = 1.0
    add_offset: float = 0.0
    fill_value: float = float("nan")

    @classmethod
    def of_dtype(cls, dtype: str) -> "ChannelCoding":
        if dtype in FLOAT_DTYPES:
            return cls(dtype)
        if dtype not in PACKING:
            raise ValueError(f"store dtype {dtype!r}, not one of {list(STORE_DTYPES)}")
        return cls(dtype, 1.0 / PACKING[dtype], LOWEST_DB, int(np.iinfo(dtype).max))

    @classmethod
    def of_attributes(cls, dtype: str, attributes: Mapping) -> "ChannelCoding":
        """The coding of a stored array from its dtype and CF attributes."""
        if str(dtype) in FLOAT_DTYPES:
            return cls(str(dtype))
        return cls(
            str(dtype),
            float(attributes["scale_factor"]),
            float(attributes["add_offset"]),
            attributes["_FillValue"],
        )

    @property
    def packed(self) -> bool:
        return self.dtype in PACKING

    @property
    def highest_db(self) -> float:
        """The largest dB a packed store holds (its code below the fill)."""
        if not self.packed:
            return np.inf
        return self.add_offset + (self.fill_value - 1) * self.scale_factor

    def attributes(self) -> dict:
        """The CF attributes of the stored array (none for floats: they hold dB)."""
        if not self.packed:
            return {}
        return {
            "scale_factor": self.scale_factor,
            "add_offset": self.add_offset,
            "_FillValue": self.fill_value,
        }

    def encode(self, db: np.ndarray) -> tuple[np.ndarray, int]:
        """Finite dB (channel, row, col) -> stored values, and the number of pixels where
        some channel lay beyond the packed range by more than half a step (clipped)."""
        if not self.packed:
            return db.astype(self.dtype), 0
        position = (db - self.add_offset) / self.scale_factor
        top = self.fill_value - 1
        clipped = ((position < -0.5) | (position > top + 0.5)).any(axis=0)
        codes = np.clip(np.rint(position), 0, top).astype(self.dtype)
        return codes, int(clipped.sum())

    def decode(self, stored: np.ndarray) -> np.ndarray:
        """Stored values -> float32 dB, NaN at the fill value."""
        if not self.packed:
            return stored.astype(np.float32)
        db = stored.astype(np.float32) * np.float32(self.scale_factor) + np.float32(self.add_offset)
        return np.where(stored == self.fill_value, np.float32(np.nan), db)
