"""Packaging: the dependency lists agree, torch is pinned, and light imports stay light."""

from __future__ import annotations

import re
import subprocess
import sys
import tomllib
from pathlib import Path

import pytest
import yaml
from packaging.requirements import Requirement

ROOT = Path(__file__).resolve().parents[1]


def pyproject() -> dict:
    return tomllib.loads((ROOT / "pyproject.toml").read_text())


def pyproject_requirements() -> dict[str, str]:
    project = pyproject()["project"]
    reqs = list(project["dependencies"])
    for extra in project.get("optional-dependencies", {}).values():
        reqs += extra
    out = {}
    for text in reqs:
        req = Requirement(text)
        out[req.name.lower()] = str(req.specifier)
    return out


def environment_requirements() -> dict[str, str]:
    env = yaml.safe_load((ROOT / "environment.yml").read_text())
    out = {}
    for dep in env["dependencies"]:
        items = dep["pip"] if isinstance(dep, dict) else [dep]
        for text in items:
            name = re.split(r"[<>=!~ ]", text, maxsplit=1)[0].lower()
            if name in ("python", "pip"):
                continue
            # conda match specs use the same operators as pip here
            out[name] = str(Requirement(text).specifier)
    return out


def test_environment_yml_lists_the_same_packages_as_pyproject():
    assert environment_requirements() == pyproject_requirements()


def test_the_course_packages_are_all_declared():
    declared = {Requirement(r).name.lower() for r in pyproject()["project"]["dependencies"]}
    assert {"jupyterlab", "numpy", "matplotlib", "ipywidgets", "torch", "nbgrader"} <= declared


def test_torch_is_pinned_so_no_newer_cuda_release_can_be_installed():
    reqs = [Requirement(r) for r in pyproject()["project"]["dependencies"]]
    torch_req = next(r for r in reqs if r.name == "torch")
    assert str(torch_req.specifier) == "==2.13.0"
    assert torch_req.specifier.contains("2.13.0+cpu")  # the CPU wheel on disk
    for newer in ("2.13.1", "2.14.0", "3.0.0"):
        assert not torch_req.specifier.contains(newer)
    assert "torch==2.13.0" in (ROOT / "environment.yml").read_text()


@pytest.mark.parametrize("module", ["rmteach", "rmteach.numpy", "rmteach.gradcheck", "rmteach.naive"])
def test_light_imports_never_import_torch(module):
    code = f"import sys, {module}; print('torch' in sys.modules)"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "False", f"import {module} pulled in torch"


def test_the_two_commands_are_in_the_makefile_readme_and_ci():
    makefile = (ROOT / "Makefile").read_text()
    assert re.search(r"^lab:", makefile, re.M) and re.search(r"^test:", makefile, re.M)
    assert "--ip=$(HOST)" in makefile and "HOST   ?= 127.0.0.1" in makefile and "IdentityProvider.token" in makefile
    assert "make test" in (ROOT / ".ci" / "run").read_text()
    head = "\n".join((ROOT / "README.md").read_text().splitlines()[:30])
    assert "make lab" in head and "make test" in head, "README: the two commands come first"
