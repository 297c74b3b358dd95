"""environment.yml names every dependency of pyproject.toml, from conda-forge, and pip installs
only the project (a conda user sees, and gets from conda, everything it pulls in)."""

from __future__ import annotations

import re

import pytest
import yaml

from sics.paths import REPO

tomllib = pytest.importorskip("tomllib")  # Python 3.11+

CONDA_NAMES = {"torch": "pytorch"}  # PyPI name -> conda-forge name, where they differ


def name_of(requirement: str) -> str:
    """The normalized package name of a requirement such as `timm>=1.0` or `pytorch=*=cpu*`."""
    name = re.split(r"[\s<>=!~;\[]", requirement.strip(), maxsplit=1)[0]
    return re.sub(r"[-_.]+", "-", name).lower()


@pytest.fixture(scope="module")
def env() -> dict:
    return yaml.safe_load((REPO / "environment.yml").read_text())


@pytest.fixture(scope="module")
def project() -> dict:
    return tomllib.loads((REPO / "pyproject.toml").read_text())["project"]


def conda_packages(env: dict) -> set[str]:
    return {name_of(d) for d in env["dependencies"] if isinstance(d, str)}


def pip_lines(env: dict) -> list[str]:
    return [line for d in env["dependencies"] if isinstance(d, dict) for line in d.get("pip", [])]


# on PyPI only (no conda-forge package): pip installs them, pinned as in pyproject.toml
PIP_ONLY = {"torch-pruning"}


@pytest.mark.parametrize("group", ["runtime", "dev"])
def test_environment_names_every_dependency(env, project, group):
    reqs = project["dependencies"] if group == "runtime" else project["optional-dependencies"]["dev"]
    wanted = {CONDA_NAMES.get(name_of(r), name_of(r)) for r in reqs}
    missing = wanted - conda_packages(env) - {name_of(line) for line in pip_lines(env) if name_of(line) in PIP_ONLY}
    assert not missing, f"environment.yml lacks the {group} dependencies {sorted(missing)}"


def test_packages_come_from_conda_forge_and_pip_installs_only_the_project(env):
    assert env["channels"] == ["conda-forge"]
    assert {"python", "pip"} <= conda_packages(env)
    assert "torch" not in conda_packages(env)  # conda-forge calls it pytorch
    assert pip_lines(env)[-1] == "-e ." and {name_of(x) for x in pip_lines(env)[:-1]} == PIP_ONLY


def test_python_version_satisfies_the_project(env, project):
    python = next(d for d in env["dependencies"] if isinstance(d, str) and name_of(d) == "python")
    major, minor = (int(x) for x in python.split("=")[-1].split(".")[:2])
    lower = re.search(r">=\s*(\d+)\.(\d+)", project["requires-python"])
    assert (major, minor) >= (int(lower[1]), int(lower[2]))
