"""The course notebooks: clean in git, every course question taught, and every notebook runs.

Every ``notebooks/*.ipynb`` is executed top to bottom in a fresh ``python3``
kernel with nbclient, several at a time (each in its own process), and the
suite prints how long the collection took.  A failing cell fails the test of
its notebook with the cell's traceback.
"""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import nbformat
import pytest

from _course import question_ids

ROOT = Path(__file__).resolve().parents[1]
NOTEBOOK_DIR = ROOT / "notebooks"
NOTEBOOKS = sorted(NOTEBOOK_DIR.glob("*.ipynb"))
COURSE_NOTEBOOKS = [p for p in NOTEBOOKS if re.match(r"\d\d_", p.name)]
ALLOWED_METADATA = {"kernelspec", "language_info"}
CELL_TIMEOUT = 300  # seconds for one cell; the whole collection takes well under a minute
# A notebook whose run outlives this fails with a message, instead of stalling the suite:
# nbclient's cell timeout does not cover every wait (it missed the Output-widget hang).
NOTEBOOK_TIMEOUT = 900


def _jobs() -> int:
    """Notebooks executed at a time: ``RMTEACH_NOTEBOOK_JOBS`` (an integer >= 1), default 3."""
    text = os.environ.get("RMTEACH_NOTEBOOK_JOBS", "3")
    if not text.isdigit() or int(text) < 1:
        raise ValueError(f"RMTEACH_NOTEBOOK_JOBS must be an integer >= 1, got {text!r}")
    return int(text)


JOBS = _jobs()


def _read(path: Path) -> nbformat.NotebookNode:
    return nbformat.read(path, as_version=nbformat.NO_CONVERT)


def test_the_collection_is_there():
    names = [p.name for p in COURSE_NOTEBOOKS]
    assert [n[:3] for n in names] == ["01_", "02_", "03_", "04_", "05_", "06_", "07_", "08_", "09_"], names


# --------------------------------------------------------------------------
# clean notebooks in git


@pytest.mark.parametrize("path", NOTEBOOKS, ids=lambda p: p.name)
def test_committed_notebook_is_clean(path):
    nb = _read(path)
    nbformat.validate(nb)
    assert nb.nbformat == 4
    extra = set(nb.metadata) - ALLOWED_METADATA
    assert not extra, f"{path.name}: notebook metadata may hold only {sorted(ALLOWED_METADATA)}, found {sorted(extra)}"
    assert nb.metadata.get("kernelspec", {}).get("name") == "python3", f"{path.name}: kernelspec must be python3"
    for i, cell in enumerate(nb.cells):
        if cell.cell_type == "code":
            assert cell.outputs == [], f"{path.name} cell {i}: committed with outputs"
            assert cell.execution_count is None, f"{path.name} cell {i}: committed with an execution count"
        assert "execution" not in cell.get("metadata", {}), f"{path.name} cell {i}: execution timing metadata"


@pytest.mark.parametrize("path", COURSE_NOTEBOOKS, ids=lambda p: p.name)
def test_course_notebook_has_narrative_widgets_and_checks(path):
    nb = _read(path)
    md = [c.source for c in nb.cells if c.cell_type == "markdown"]
    code = "\n".join(c.source for c in nb.cells if c.cell_type == "code")
    assert nb.cells[0].cell_type == "markdown" and nb.cells[0].source.startswith("# "), "a title first"
    assert any("$" in text for text in md), "the narrative states its formulas in LaTeX"
    assert re.search(r"widgets\.\w+\(|W\.interactive\(", code), "at least one interactive widget"
    assert code.count("assert ") >= 3, "checks a student can run"
    assert "you should see" in code, "checks say what the student should see"
    assert "from rmteach" in code, "cells call the package instead of re-implementing it"


def _question_ids() -> list[str]:
    return sorted(set(question_ids()))


def _heading_ids() -> dict[str, list[str]]:
    found: dict[str, list[str]] = {}
    for path in NOTEBOOKS:
        for cell in _read(path).cells:
            if cell.cell_type != "markdown":
                continue
            for line in cell.source.splitlines():
                if line.startswith("#"):
                    for qid in re.findall(r"\bQ\d\d\b", line):
                        found.setdefault(qid, []).append(path.name)
    return found


def test_every_course_question_is_taught_in_a_heading():
    ids = _question_ids()
    assert len(ids) >= 28
    taught = _heading_ids()
    missing = [q for q in ids if q not in taught]
    assert not missing, f"no notebook section heading names {missing}"


# --------------------------------------------------------------------------
# execution


_RUNNER = r"""
import json, re, sys, time
import nbformat
from nbclient import NotebookClient
path, timeout = sys.argv[1], int(sys.argv[2])
nb = nbformat.read(path, as_version=4)
start = time.perf_counter()
error = None
try:
    NotebookClient(nb, timeout=timeout, kernel_name="python3",
                   resources={"metadata": {"path": str(__import__("pathlib").Path(path).parent)}}).execute()
except Exception as exc:  # a failing cell: report its traceback
    error = re.sub(r"\x1b\[[0-9;]*m", "", f"{type(exc).__name__}: {exc}")  # no terminal colours
print(json.dumps({"seconds": time.perf_counter() - start, "error": error}))
"""


def _execute(path: Path) -> dict:
    start = time.perf_counter()
    try:
        proc = subprocess.run(
            [sys.executable, "-c", _RUNNER, str(path), str(CELL_TIMEOUT)],
            capture_output=True, text=True, cwd=path.parent, timeout=NOTEBOOK_TIMEOUT,
        )
    except subprocess.TimeoutExpired as exc:
        return {"seconds": time.perf_counter() - start,
                "error": f"still running after {NOTEBOOK_TIMEOUT} s (killed); last output:\n"
                         f"{(exc.stdout or b'')[-2000:]!r}\n{(exc.stderr or b'')[-2000:]!r}"}
    lines = proc.stdout.strip().splitlines()
    if proc.returncode != 0 or not lines:
        return {"seconds": time.perf_counter() - start,
                "error": f"runner exited with {proc.returncode}:\n{proc.stdout[-3000:]}\n{proc.stderr[-3000:]}"}
    return json.loads(lines[-1])


@pytest.fixture(scope="module")
def executed(request):
    start = time.perf_counter()
    with ThreadPoolExecutor(max_workers=JOBS) as pool:
        results = dict(zip(NOTEBOOKS, pool.map(_execute, NOTEBOOKS)))
    total = time.perf_counter() - start
    lines = [f"notebooks: executed {len(NOTEBOOKS)} in {total:.1f} s wall time ({JOBS} at a time)"]
    lines += [f"  {p.name}: {r['seconds']:.1f} s{'  FAILED' if r['error'] else ''}" for p, r in results.items()]
    capture = request.config.pluginmanager.getplugin("capturemanager")
    with capture.global_and_fixture_disabled():  # print past pytest's output capture
        print("\n" + "\n".join(lines), flush=True)
    return results


@pytest.mark.parametrize("path", NOTEBOOKS, ids=lambda p: p.name)
def test_notebook_runs_top_to_bottom(executed, path):
    result = executed[path]
    assert result["error"] is None, f"{path.name} failed:\n{result['error']}"


@pytest.mark.parametrize("path", NOTEBOOKS, ids=lambda p: p.name)
def test_no_output_widgets_in_notebooks(path):
    """interact/interactive/Output capture prints in an Output widget, and a cell with one can
    block headless execution for minutes (nbclient issue 312): use rmteach.widgets builders."""
    code = "\n".join(c.source for c in nbformat.read(path, as_version=4).cells if c.cell_type == "code")
    for banned in ("interactive(", "interact(", "interact_manual(", "Output("):
        assert banned not in code, f"{path.name} uses {banned[:-1]}: use rmteach.widgets (text_explorer, ...)"
