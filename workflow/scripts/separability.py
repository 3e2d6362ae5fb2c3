import torch

from sarssl.atomic import write_text_atomic
from sarssl.logs import job_log
from sarssl.realism import compare, realism_figure
from sarssl.results import frame_markdown
from sarssl.separability import SeparabilitySettings, separability_table

with job_log(snakemake.log[0]) as log:
    torch.set_num_threads(snakemake.threads)  # the k-NN's distances
    params, aoi = snakemake.params, snakemake.wildcards.aoi
    table = separability_table(params.store, SeparabilitySettings(**params.settings))
    write_text_atomic(snakemake.output.csv, table.to_csv(index=False))
    title = f"Separability of the land cover without context, {aoi} (test split)"
    if table.empty:
        title += ": not measured, the store has no valid train or test tile"
    write_text_atomic(snakemake.output.md, frame_markdown(table, title))
    comparison = compare(params.store, params.reference, params.tiles, params.boxcar_px)
    realism_figure(comparison, table, snakemake.output.figure, f"Realism of the {aoi} data")
    log.info("\n%s\n%s", table.to_string(), comparison.summary().to_string())
