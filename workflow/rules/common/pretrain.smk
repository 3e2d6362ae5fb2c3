from sarssl.outputs.export_format import read_export


def trained(pretrain):
    return CONFIG.trained(pretrain)


def backbone(pretrain):
    return CONFIG.backbone(pretrain)


# Invalid settings and export folders fail when the DAG is built, naming the run and key.
for _name in PRETRAIN:
    if trained(_name):
        CONFIG.pretrain(_name)
    else:
        read_export(
            backbone(_name), CONFIG.tile_px, f"config pretrain {_name}: weights"
        )


def backbone_files(wildcards):
    """The files of a backbone, for the rules that read it."""
    source = backbone(wildcards.pretrain)
    if trained(wildcards.pretrain):
        return [source]
    return [f"{source}/{name}" for name in (paths.WEIGHTS_NAME, paths.CONFIG_NAME)]


def pretrain_stats(wildcards):
    return [stats(aoi) for aoi in CONFIG.pretrain_aois(wildcards.pretrain)]


def pretrain_resource(key):
    """One of a pre-training's JobResources, for its wildcards."""
    return lambda wildcards: getattr(CONFIG.pretrain_job(wildcards.pretrain), key)


def pretrain_resources():
    """The resources of a pretrain job, the site's settings included. One node: `gpus`
    GPUs (--gpus). Several nodes: --nodes, the GPUs per node as a GRES (--gres=gpu[:model]:N
    applies per node) and one task per node, the torchrun launcher that srun starts there.
    """
    site = {
        key: value for key, value in GPU_SITE_RESOURCES.items() if key != "gpu_model"
    }

    def multi_node(wildcards):
        return CONFIG.pretrain_job(wildcards.pretrain).nodes > 1

    def gres(wildcards):
        if not multi_node(wildcards):
            return ""
        model = GPU_SITE_RESOURCES.get("gpu_model")
        gpus = CONFIG.pretrain_job(wildcards.pretrain).gpus
        return f"gpu:{model}:{gpus}" if model else f"gpu:{gpus}"

    return site | {
        "gpu": lambda wildcards: (
            0 if multi_node(wildcards) else CONFIG.pretrain_job(wildcards.pretrain).gpus
        ),
        "gpu_model": lambda wildcards: (
            "" if multi_node(wildcards) else GPU_SITE_RESOURCES.get("gpu_model", "")
        ),
        "nodes": pretrain_resource("nodes"),
        "gres": gres,
        "slurm_extra": lambda wildcards: (
            "--ntasks-per-node=1" if multi_node(wildcards) else ""
        ),
        "mem_mb": pretrain_resource("mem_mb"),
        "runtime": pretrain_resource("runtime"),
    }


def pretrain_targets():
    """Checkpoints and exports of the runs that train; attention maps of every run."""
    targets = []
    for name in PRETRAIN:
        if trained(name):
            targets += [
                paths.path(pattern, pretrain=name)
                for pattern in (paths.CHECKPOINT, paths.EXPORT_CARD)
            ]
        targets += expand(
            paths.ATTENTION_METADATA, pretrain=name, aoi=CONFIG.pretrain_aois(name)
        )
    return targets
