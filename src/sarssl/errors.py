"""Errors that name what is wrong: the tile, the file or the config key."""


class SarsslError(Exception):
    """Base class of the project's own errors."""


class TileError(SarsslError):
    """A tile cannot be used; `reason` says why, `tile` which one. `details` holds what was
    learnt of the tile before it failed (its S1 layout, the counts at the cast's extremes),
    for the rejection report."""

    def __init__(self, tile: str, reason: str, details: dict | None = None):
        super().__init__(f"tile {tile}: {reason}")
        self.tile = tile
        self.reason = reason
        self.details = details or {}


class IncompleteStoreError(SarsslError):
    """A Zarr store was opened before its build finished."""


class ConfigError(SarsslError):
    """A configuration value is invalid; the message names the key."""


class InputError(SarsslError):
    """An input that does not meet an export's contract (sarssl.weights); the message names
    the band, file or store and the expected value."""
