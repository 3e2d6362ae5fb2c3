def datasets(wildcards):
    """geetiles dataset folder names of the S1 and label GeoTIFFs."""
    return CONFIG.datasets(wildcards.aoi)


def n_shards(aoi):
    return CONFIG.n_shards(aoi)


def source_manifest(source):
    return paths.path(paths.SOURCE_MANIFEST, source=source)


def gee_request_summary(wildcards):
    from sarssl.dataset.gee import request_summary

    return request_summary(CONFIG.gee_requests(wildcards.aoi), CONFIG.tile_px)
