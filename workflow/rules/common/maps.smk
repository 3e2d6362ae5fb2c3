from sarssl.settings.finetune import run_file


def map_shards(name):
    """The shard COGs of a map (sarssl.settings.config.Config.maps)."""
    return expand(paths.MAP_SHARD, map=name, shard=range(CONFIG.map_shards))


def prediction_map_inputs(name_pattern):
    """The inputs of the shards of the prediction maps named by `name_pattern`: the runs'
    metrics (the choice) and models, and what their models read: the backbone and, for
    frozen attention runs, the stored maps."""
    return lambda wildcards: chosen_run_files(
        CONFIG.prediction_maps()[paths.path(name_pattern, **wildcards)], wildcards
    )


def chosen_run_files(runs, wildcards):
    aoi = CONFIG.finetune_aoi
    return {
        "metrics": [
            run_file(paths.RESULTS, run, paths.FINETUNE_METRICS).as_posix()
            for run in runs
        ],
        "models": [
            run_file(paths.RESULTS, run, paths.FINETUNE_MODEL).as_posix()
            for run in runs
        ],
        "backbone": backbone_files(wildcards),
        "maps": paths.path(
            paths.ATTENTION_METADATA, pretrain=wildcards.pretrain, aoi=aoi
        ),
        "stats": stats(aoi),
    }


def map_page_inputs(wildcards):
    maps = CONFIG.maps()
    return {
        "shards": [shard for name in maps for shard in map_shards(name)],
        "stats": [stats(aoi) for aoi in CONFIG.map_aois()],
        "rejected": [paths.path(paths.REJECTED, aoi=aoi) for aoi in CONFIG.map_aois()],
    }


def maps_targets():
    """The map page, where there is something to map (a pre-training's AOI)."""
    return [paths.MAP_PAGE] if CONFIG.maps() else []
