def manifest(wildcards):
    """The shard's manifest, from whichever source the AOI has."""
    source = CONFIG.source(wildcards.aoi)
    return paths.path(paths.SOURCE_MANIFEST, aoi=wildcards.aoi, source=source)


def shard_reports(wildcards):
    return expand(
        paths.BUILD_REPORT, aoi=wildcards.aoi, shard=range(n_shards(wildcards.aoi))
    )


def dataset_targets():
    return expand([paths.STATS, paths.REJECTED, paths.SPLITS], aoi=AOIS)
