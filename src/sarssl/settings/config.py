"""Checks of a configuration beyond its schema (config/schema.yaml): renamed keys, and
what holds between keys. Every problem is a ConfigError that names the key. Torch-free, so
that the Snakefile is read quickly."""

from collections.abc import Mapping

from ..errors import ConfigError

# Old key -> new key. The schema refuses unknown keys; these get a message naming the new.
RENAMED = {
    ("finetune", "fractions"): "finetune.percents",
    ("finetune", "unet_baselines"): "finetune.unet_baseline",
}


def merge_configs(base: Mapping, overlay: Mapping) -> dict:
    """`overlay` on top of `base` as Snakemake merges several --configfile: mappings merge
    key by key, anything else (lists included) is replaced."""
    merged = dict(base)
    for key, value in overlay.items():
        if isinstance(value, Mapping) and isinstance(merged.get(key), Mapping):
            merged[key] = merge_configs(merged[key], value)
        else:
            merged[key] = value
    return merged


def refuse_renamed(config: Mapping) -> None:
    """Before the schema: an old key fails naming its new name."""
    for (section, key), new in RENAMED.items():
        if key in (config.get(section) or {}):
            raise ConfigError(f"config {section}.{key} is now {new}: rename it")


def check(config: Mapping) -> None:
    """What holds between keys of a config the schema has validated (defaults filled)."""
    names = [aoi["name"] for aoi in config["aois"]]
    if len(set(names)) != len(names):
        raise ConfigError(f"config aois: names repeat in {names}")
    fractions = config["split"]["fractions"]
    if abs(sum(fractions.values()) - 1.0) > 1e-3:
        raise ConfigError(f"config split.fractions must add up to 1, got {dict(fractions)}")
    runs = [run["name"] for run in config["pretrain"]]
    if len(set(runs)) != len(runs):
        raise ConfigError(f"config pretrain: names repeat in {runs}")
    for run in config["pretrain"]:
        unknown = [aoi for aoi in run["aois"] if aoi not in names]
        if unknown:
            raise ConfigError(
                f"config pretrain {run['name']}: aois {unknown} are not in config aois {names}"
            )
        if "weights" in run:
            given = [key for key in ("architecture", "epochs", "batch_size") if key in run]
            if given:
                raise ConfigError(
                    f"config pretrain {run['name']}: weights names an export folder, whose "
                    f"config.json says what it is; remove {given}"
                )
            continue
        processes = run["nodes"] * run["gpus"]
        if run["batch_size"] % processes:
            raise ConfigError(
                f"config pretrain {run['name']}: batch_size {run['batch_size']} is global and "
                f"must be a multiple of nodes x gpus = {processes}"
            )
    finetune = config["finetune"]
    named = finetune["pretrain"] + [p for p in [finetune["unet_baseline"]] if p]
    if not named:
        return
    if finetune["aoi"] not in names:
        raise ConfigError(f"config finetune.aoi: {finetune['aoi']!r} is not in config aois {names}")
    unknown = [name for name in named if name not in runs]
    if unknown:
        raise ConfigError(
            f"config finetune: pretrain runs {unknown} are not in config pretrain {runs}"
        )
