import json
from pathlib import Path

import pandas as pd
import torch

from sarssl.atomic import write_text_atomic
from sarssl.evaluation.separability import context_row, goal_lines, separability_table
from sarssl.logs import job_log
from sarssl.outputs.realism import compare, realism_figure
from sarssl.outputs.tables import frame_markdown
from sarssl.settings.separability import SeparabilitySettings

with job_log(snakemake.log[0]) as log:
    torch.set_num_threads(snakemake.threads)  # the k-NN's distances
    params, aoi = snakemake.params, snakemake.wildcards.aoi
    table = separability_table(params.store, SeparabilitySettings(**params.settings))
    if hasattr(snakemake.input, "context"):  # the context check's U-Net, if configured
        context = json.loads(Path(snakemake.input.context).read_text())
        table = pd.concat([table, pd.DataFrame([context_row(context)])], ignore_index=True)
    write_text_atomic(snakemake.output.csv, table.to_csv(index=False))
    title = f"Separability of the land cover without context and with it, {aoi} (test split)"
    if table.empty:
        title += ": not measured, the store has no valid train or test tile"
    goals = goal_lines(table)
    if goals:
        goals = ["Goals of the synthetic source (as hard per pixel as real SAR):", *goals, ""]
    write_text_atomic(snakemake.output.md, "\n".join([frame_markdown(table, title), *goals]))
    comparison = compare(params.store, params.reference, params.tiles, params.boxcar_px)
    realism_figure(comparison, table, snakemake.output.figure, f"Realism of the {aoi} data")
    log.info("\n%s\n%s", table.to_string(), comparison.summary().to_string())
