import json
from pathlib import Path

from sarssl.export import describe_data, export_backbone
from sarssl.logs import job_log

with job_log(snakemake.log[0]) as log:
    params, inputs = snakemake.params, snakemake.input
    aoi_stats = zip(params.aois, inputs.stats, strict=True)
    stats = {aoi: json.loads(Path(path).read_text()) for aoi, path in aoi_stats}
    export_backbone(
        inputs.checkpoint,
        Path(snakemake.output.weights).parent,
        describe_data(params.aois, params.config, stats),
        which=params.which,
        metrics=inputs.metrics,
        collapse=inputs.collapse,
        probe=inputs.probe,
        emergent=inputs.emergent,
    )
    log.info("exported the %s of %s", params.which, inputs.checkpoint)
