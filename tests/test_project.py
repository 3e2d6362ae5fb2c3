"""Project files that must agree: conda environment vs pyproject, README vs CI, the config
schema vs the settings dataclasses."""

import dataclasses
import re
import tomllib

import yaml
from conftest import REPO
from packaging.requirements import Requirement

from sarssl.settings import finetune as runs
from sarssl.settings import pretrain as pretrain_settings
from sarssl.settings.probe import ProbeSettings
from sarssl.settings.separability import SeparabilitySettings


def pyproject_requirements() -> dict[str, str]:
    project = tomllib.loads((REPO / "pyproject.toml").read_text())["project"]
    return {Requirement(r).name: str(Requirement(r).specifier) for r in project["dependencies"]}


def conda_requirements() -> dict[str, str]:
    env = yaml.safe_load((REPO / "envs" / "sarssl.yaml").read_text())
    specs = []
    for dep in env["dependencies"]:
        if isinstance(dep, dict):
            specs += [p for p in dep["pip"] if not p.startswith("-e")]
        elif not re.match(r"^(python|pip)(=|$)", dep):
            specs.append(dep)
    return {Requirement(s).name: str(Requirement(s).specifier) for s in specs}


def test_conda_environment_has_the_packages_and_pins_of_pyproject():
    assert conda_requirements() == pyproject_requirements()


def test_conda_environment_installs_the_project_itself():
    env = yaml.safe_load((REPO / "envs" / "sarssl.yaml").read_text())
    pip = next(d["pip"] for d in env["dependencies"] if isinstance(d, dict))
    assert "-e .." in pip


def test_ci_runs_exactly_the_readme_test_command():
    readme = (REPO / "README.md").read_text()
    commands = re.findall(r"```(?:bash|sh)\n(.*?)```", readme, flags=re.S)
    test_command = next(c.strip() for c in commands if "pytest" in c)
    assert test_command in (REPO / ".ci" / "run").read_text()


def test_each_default_of_a_dataclass_backed_key_lives_in_its_dataclass_only():
    """A schema default beside the dataclass's would drift (as dino.loader_workers did):
    keys the dataclasses define take their defaults from there."""
    schema = yaml.safe_load((REPO / "config" / "schema.yaml").read_text())["properties"]
    pretrain = pretrain_settings.PretrainSettings
    # Each section's keys that set a dataclass field (not the per-run keys).
    homes = {
        "dino": (pretrain, pretrain_settings.RUN_KEYS),
        "probe": (ProbeSettings, set()),
        "finetune": (runs.FinetuneSettings, runs.RUN_KEYS),
        "realism": (SeparabilitySettings, set()),
    }
    for section, (home, run_keys) in homes.items():
        fields = {f.name for f in dataclasses.fields(home)} - run_keys
        if section == "probe":  # the run's probe_* fields, e.g. probe_every
            fields |= {f.name.removeprefix("probe_") for f in dataclasses.fields(pretrain)}
        properties = schema[section]["properties"]
        both = sorted(k for k in properties if k in fields and "default" in properties[k])
        assert not both, f"config/schema.yaml {section}: defaults also in {home.__name__}: {both}"
        assert set(properties) & fields, f"{section}: no key of {home.__name__} in the schema"


LITERAL = r"-?[\d.]+(e-?\d+)?|\"[^\"]*\"|'[^']*'|True|False|None"


def test_no_code_gives_a_settings_key_a_default_of_its_own():
    """A `.get("key", default)` on a config section, in the workflow or the library, for a
    key a settings dataclass defines: the default must be the dataclass's (`Home.key`),
    never a second literal that can drift."""
    homes = [
        pretrain_settings.PretrainSettings,
        ProbeSettings,
        runs.FinetuneSettings,
        SeparabilitySettings,
    ]
    keys = {f.name for home in homes for f in dataclasses.fields(home)}
    sources = [*(REPO / "workflow").rglob("*.smk"), *(REPO / "src").rglob("*.py")]
    found = [
        f"{path.relative_to(REPO)}: .get({key!r}, {default})"
        for path in sources
        for key, default in re.findall(r"\.get\(\s*\"(\w+)\",\s*([^)]+)\)", path.read_text())
        if key in keys and re.fullmatch(LITERAL, default.strip())
    ]
    assert not found, f"second homes of a settings default: {found}"


# A read of the config that bypasses Config: Snakemake's `config` dict, or a mapping Config
# holds, subscripted or asked with .get, or an AOI entry subscripted.
RAW_CONFIG_READ = re.compile(
    r"\bconfig\s*(\[|\.get\b)"
    r"|\bCONFIG\.(values|data|finetune_section|pretrain_runs)\b"
    r"|\bCONFIG\.aoi\([^)]*\)\s*\["
    r"|\bsnakemake\.config\b"
)


def raw_config_reads(text: str) -> list[str]:
    return [line.strip() for line in text.splitlines() if RAW_CONFIG_READ.search(line)]


def test_the_raw_config_reads_are_recognised():
    """The pattern of the next test, on reads that bypass Config and on reads through it."""
    raw = [
        'nbands=config["split"]["nbands"],',
        'seed=config.get("seed", 0)',
        'aoi=CONFIG.finetune_section["aoi"]',
        'wkt=CONFIG.aoi(wildcards.aoi)["wkt"]',
        'threads = snakemake.config["data"]["threads"]',
    ]
    through_config = [
        "CONFIG = Config.checked(config, workflow.source_path(SCHEMA))",
        "**CONFIG.split_bands(),",
        'threads: CONFIG.job("probe").threads',
        'configfile: "config/config.yaml"',
    ]
    assert raw_config_reads("\n".join(raw)) == raw
    assert raw_config_reads("\n".join(through_config)) == []


def test_the_workflow_reads_the_config_only_through_config():
    """Rules, their helpers and scripts ask Config (sarssl.settings.config), which
    translates each key in one place; a raw read would be a second translation."""
    sources = [REPO / "Snakefile", *(REPO / "workflow").rglob("*.smk")]
    sources += (REPO / "workflow" / "scripts").glob("*.py")
    found = {
        str(path.relative_to(REPO)): reads
        for path in sources
        if (reads := raw_config_reads(path.read_text()))
    }
    assert not found, f"raw config reads: {found}"


SCHEMA_KEYWORDS = {
    "$schema", "description", "type", "default", "enum", "const", "properties",
    "additionalProperties", "required", "items", "minItems", "maxItems", "uniqueItems",
    "minimum", "maximum", "exclusiveMinimum", "exclusiveMaximum", "multipleOf", "pattern",
    "minLength", "maxLength", "oneOf", "anyOf", "allOf", "not", "if", "then", "else",
}  # fmt: skip


def test_every_key_of_the_config_schema_is_a_json_schema_keyword():
    """An unquoted description with a comma in YAML's flow style splits into stray keys,
    which JSON Schema ignores: the description is lost without an error."""
    schema = yaml.safe_load((REPO / "config" / "schema.yaml").read_text())
    stray = []

    def walk(node: dict, where: str) -> None:
        stray.extend(f"{where}: {key!r}" for key in node if key not in SCHEMA_KEYWORDS)
        for key, child in node.get("properties", {}).items():
            walk(child, f"{where}.{key}")
        for key in ("items", "additionalProperties"):
            if isinstance(node.get(key), dict):
                walk(node[key], f"{where}[{key}]")
        for key in ("oneOf", "anyOf", "allOf"):
            for index, child in enumerate(node.get(key, [])):
                walk(child, f"{where}.{key}[{index}]")

    walk(schema, "schema")
    assert not stray, stray
