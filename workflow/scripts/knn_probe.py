from sarssl.atomic import write_text_atomic
from sarssl.evaluation.probe import probe_summary, probe_table
from sarssl.logs import job_log
from sarssl.outputs.tables import frame_markdown
from sarssl.settings.probe import ProbeSettings

with job_log(snakemake.log[0]) as log:
    params = snakemake.params
    settings = ProbeSettings(**params.settings)
    table = probe_table(params.backbone, params.store, settings, params.supervised)
    write_text_atomic(snakemake.output.csv, table.to_csv(index=False))
    title = f"k-NN probe of CLS and patch features, {snakemake.wildcards.pretrain}"
    write_text_atomic(snakemake.output.md, frame_markdown(probe_summary(table), title))
    log.info("\n%s", table.to_string())
