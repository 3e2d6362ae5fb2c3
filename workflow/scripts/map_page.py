from sarssl.logs import job_log
from sarssl.maps.site import write_maps_site

with job_log(snakemake.log[0]) as log:
    params = snakemake.params
    page = write_maps_site(
        snakemake.output.page.rsplit("/", 1)[0],
        params.maps,
        params.aois,
        "sarssl maps",
        params.max_px,
    )
    log.info("wrote %s", page)
