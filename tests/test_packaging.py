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


def test_every_benchmark_import_is_installed_by_make_install():
    """`make bench` runs on a fresh clone after `make install`: whatever a benchmark imports
    (and `%matplotlib widget`, which needs ipympl) is declared, so it is installed."""
    import ast
    import importlib.util

    needed = set()
    for script in sorted((ROOT / "bench").glob("*.py")):
        text = script.read_text()
        for node in ast.walk(ast.parse(text)):
            if isinstance(node, ast.Import):
                needed.update(a.name.split(".")[0] for a in node.names)
            elif isinstance(node, ast.ImportFrom) and node.module and not node.level:
                needed.add(node.module.split(".")[0])
        if "%matplotlib widget" in text:
            needed.add("ipympl")
    local = {p.stem for p in (ROOT / "tests").glob("*.py")} | {"rmteach"}
    missing = sorted(m for m in needed - local - set(sys.stdlib_module_names) if importlib.util.find_spec(m) is None)
    assert not missing, f"bench/ imports {missing}, which make install does not install: declare them in pyproject.toml"
    declared = pyproject_requirements()
    assert "ipympl" in declared, "bench/latency.py uses %matplotlib widget: ipympl must be declared"


def _what_is_where() -> list[str]:
    """The paths in the first column of the README's "What is where" table."""
    text = (ROOT / "README.md").read_text()
    section = text.split("## What is where", 1)[1].split("\n## ", 1)[0]
    paths = []
    for line in section.splitlines():
        if line.startswith("| `"):
            paths += re.findall(r"`([^`]+)`", line.split("|")[1])
    return paths


def test_readme_what_is_where_matches_the_tree():
    paths = _what_is_where()
    assert paths, "README.md has no 'What is where' table"
    missing = [p for p in paths if not (ROOT / p).exists()]
    assert not missing, f"README's 'What is where' names paths that do not exist: {missing}"
    listed = {p.rstrip("/") for p in paths}
    modules = sorted(p.relative_to(ROOT).as_posix() for p in (ROOT / "rmteach").rglob("*.py"))
    unlisted = [m for m in modules if m not in listed and not any(m.startswith(d + "/") for d in listed
                                                                    if (ROOT / d).is_dir() and d != "rmteach")]
    assert not unlisted, f"modules of rmteach/ missing from README's 'What is where' table: {unlisted}"
    tracked = subprocess.run(["git", "ls-files"], cwd=ROOT, capture_output=True, text=True).stdout.split()
    top = sorted({t.split("/")[0] + ("/" if "/" in t else "") for t in tracked} - {".gitignore", ".gitattributes", "README.md",
                                                                                  "rmteach/"})
    absent = [t for t in top if not any(p == t.rstrip("/") or p.startswith(t) for p in listed)]
    assert not absent, f"top-level entries missing from README's 'What is where' table: {absent}"


def test_no_module_of_the_package_is_development_tooling():
    """The browser harness (Playwright, JupyterLab servers) lives in tests/, not in rmteach/."""
    for path in (ROOT / "rmteach").rglob("*.py"):
        text = path.read_text()
        assert "playwright" not in text.lower(), f"{path.relative_to(ROOT)} holds browser tooling"


def test_the_course_question_fallbacks_match_the_course():
    """Without ../shared/ beside the clone the tests fall back on these lists: they must be the course's."""
    import _course

    if not _course.QUESTIONS.exists():
        pytest.skip(f"{_course.QUESTIONS} is not beside the repository: nothing to compare the fallbacks with")
    assert sorted(set(_course.question_ids())) == _course.ALL_IDS
    assert sorted(_course.written_ids()) == sorted(_course.WRITTEN_IDS)


def test_make_lab_starts_as_root_too():
    """JupyterLab refuses root without --allow-root; `make lab` adds it for root only (still 127.0.0.1 + token)."""
    import os

    out = subprocess.run(["make", "-n", "lab"], cwd=ROOT, capture_output=True, text=True)
    assert out.returncode == 0, out.stderr
    cmd = out.stdout[out.stdout.index("jupyter lab"):]  # the recipe, printed, not run
    assert ("--allow-root" in cmd) == (os.geteuid() == 0), cmd
    assert "--ip=127.0.0.1" in cmd and "IdentityProvider.token" in cmd, cmd
