def transfer_export(pretrain):
    """The export folder a pre-training's transfer reads: its export_weights output, or the
    folder its weights entry names."""
    if trained(pretrain):
        return paths.path(paths.EXPORT, pretrain=pretrain)
    return backbone(pretrain)


def transfer_inputs(wildcards):
    export = transfer_export(wildcards.pretrain)
    inputs = {
        "weights": [
            f"{export}/{name}" for name in (paths.WEIGHTS_NAME, paths.CONFIG_NAME)
        ]
    }
    if CONFIG.transfer_crops:
        inputs["crops"] = paths.TRANSFER_CROPS
    return inputs


def transfer_targets():
    return [
        paths.path(paths.TRANSFER_TABLE, pretrain=name, format="md")
        for name in CONFIG.transfer_pretrains()
    ]
