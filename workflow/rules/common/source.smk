from sarssl.dataset.bands import aoi_datasets


def datasets(wildcards):
    """geetiles dataset folder names of the S1 and label GeoTIFFs."""
    return aoi_datasets(aoi_config(wildcards.aoi), DATA["year"])


def n_shards(aoi):
    return aoi_config(aoi)["n_shards"]


def source_manifest(source):
    return paths.path(paths.SOURCE_MANIFEST, source=source)


def gee_request_summary(wildcards):
    from sarssl.dataset.gee import export_requests, request_summary

    gee = config["gee"]
    requests = export_requests(
        DATA["year"], gee["orbit_pass"], gee["composite"], datasets(wildcards)
    )
    return request_summary(requests, DATA["tile_px"])
