from pathlib import Path

from sarssl.dataset.storeinfo import StoreInfo
from sarssl.logs import job_log
from sarssl.outputs.export import export_backbone
from sarssl.outputs.export_format import describe_data

with job_log(snakemake.log[0]) as log:
    params, inputs = snakemake.params, snakemake.input
    # Finished stores: their stats.json, an input, is written after the store is complete.
    stores = {aoi: StoreInfo.read(store) for aoi, store in params.stores.items()}
    export_backbone(
        inputs.checkpoint,
        Path(snakemake.output.weights).parent,
        describe_data(stores, params.split),
        which=params.which,
        metrics=inputs.metrics,
        collapse=inputs.collapse,
        probe=inputs.probe,
        emergent=inputs.emergent,
    )
    log.info("exported the %s of %s", params.which, inputs.checkpoint)
