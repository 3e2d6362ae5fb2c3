from pathlib import Path

import pandas as pd

from sarssl.build import finalise
from sarssl.grid import read_tiles
from sarssl.logs import job_log

with job_log(snakemake.log[0]) as log:
    summary = finalise(
        Path(snakemake.input.store).parent,
        read_tiles(snakemake.input.tiles).identifier.tolist(),
        pd.read_csv(snakemake.input.splits, dtype={"identifier": str}),
        list(snakemake.input.reports),
        snakemake.output.stats,
        snakemake.output.rejected,
    )
    log.info("tiles: %s", summary["tiles"])
