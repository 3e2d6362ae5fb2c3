"""Project files that must agree: conda environment vs pyproject, README vs CI."""

import re
import tomllib

import yaml
from conftest import REPO
from packaging.requirements import Requirement


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
