from sarssl.atomic import write_text_atomic
from sarssl.evaluation.emergent import measure
from sarssl.logs import job_log
from sarssl.outputs.figures import emergent_scores
from sarssl.outputs.tables import frame_markdown

with job_log(snakemake.log[0]) as log:
    params = snakemake.params
    table = measure(params.maps, params.store, params.backbone, max_tiles=params.max_tiles)
    write_text_atomic(snakemake.output.csv, table.to_csv(index=False))
    title = f"Emergent segmentation, {snakemake.wildcards.pretrain}"
    write_text_atomic(snakemake.output.md, frame_markdown(table, title))
    emergent_scores(table, snakemake.output.figure, title)
    log.info("\n%s", table.to_string())
