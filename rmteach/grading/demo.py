r"""The demo course: made-up students' submissions, and ``make grade-demo``.

:func:`build_submission` fills chosen answer cells of a release notebook with the
model answers; :func:`expected_auto_score` works out, from which answers a
submission holds and which test cells need them (:func:`cell_dependencies`), the
autograded points it must get.  :func:`demo` runs the whole workflow for three
students (:data:`DEMO_STUDENTS`) on a temporary copy of the course and checks
every score.  The tests build their bad submissions with the same helpers.
"""

from __future__ import annotations

import ast
import copy
import os
import tempfile
import time
from pathlib import Path
from typing import Any, Callable, Mapping, Optional, Sequence

from rmteach.grading.course import (
    REPO_COURSE, GradingError, _meta, _notebooks, _read_nb, _write_nb, copy_course, course_assignments,
)
from rmteach.grading.gradebook import format_table, grade_rows, write_csv
from rmteach.grading.pipeline import autograde
from rmteach.grading.release import generate_assignments, generate_feedback


def build_submission(release_nb, source_nb, keep: Callable[[str], bool]):
    """A student notebook: the release with the solution filled into the answer
    cells whose ``grade_id`` ``keep`` accepts (the others stay as released)."""
    solutions = {_meta(c)["grade_id"]: c.source for c in source_nb.cells if _meta(c).get("solution")}
    nb = copy.deepcopy(release_nb)
    for cell in nb.cells:
        gid = _meta(cell).get("grade_id")
        if _meta(cell).get("solution") and gid in solutions and keep(gid):
            cell.source = solutions[gid]
    return nb


def write_submission(course: Path, student: str, assignment: str, notebooks: Mapping[str, Any]) -> Path:
    """Write ``{name: notebook}`` to ``submitted/<student>/<assignment>/`` (with a timestamp)."""
    folder = Path(course) / "submitted" / student / assignment
    folder.mkdir(parents=True, exist_ok=True)
    for name, nb in notebooks.items():
        _write_nb(nb, folder / name)
    (folder / "timestamp.txt").write_text(time.strftime("%Y-%m-%d %H:%M:%S UTC", time.gmtime()) + "\n")
    return folder


_SCOPES = (ast.FunctionDef, ast.AsyncFunctionDef, ast.Lambda, ast.ClassDef,
           ast.ListComp, ast.SetComp, ast.DictComp, ast.GeneratorExp)


def _free_names(source: str) -> tuple[set[str], set[str]]:
    """(names the code loads anywhere, global names it binds at the top level).

    Loads inside function bodies count (a function uses the globals it names);
    binds inside functions and comprehensions do not (they are local).
    """
    try:
        tree = ast.parse(source)
    except SyntaxError:
        return set(), set()
    loads = {n.id for n in ast.walk(tree) if isinstance(n, ast.Name) and isinstance(n.ctx, ast.Load)}
    binds: set[str] = set()
    todo: list[ast.AST] = list(tree.body)
    while todo:
        node = todo.pop()
        if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef)):
            binds.add(node.name)
            continue
        if isinstance(node, (ast.Import, ast.ImportFrom)):
            binds.update((a.asname or a.name).split(".")[0] for a in node.names)
            continue
        if isinstance(node, ast.Name) and not isinstance(node.ctx, ast.Load):
            binds.add(node.id)
        if not isinstance(node, _SCOPES):
            todo.extend(ast.iter_child_nodes(node))
    return loads, binds


def cell_dependencies(source_nb) -> dict[str, set[str]]:
    """For each autograded test cell, the answer cells (grade_ids) it needs, transitively.

    A cell needs the answer cells that bind a name it uses (worked out from the
    code, not declared), and whatever those need in turn.
    """
    definers: dict[str, str] = {}
    needs: dict[str, set[str]] = {}
    tests: dict[str, set[str]] = {}
    for cell in source_nb.cells:
        meta = _meta(cell)
        gid = meta.get("grade_id")
        if cell.cell_type != "code" or not gid:
            continue
        loads, binds = _free_names(cell.source)
        direct = {definers[n] for n in loads if n in definers}
        if meta.get("solution"):
            needs[gid] = direct
            for n in binds:
                definers[n] = gid
        elif meta.get("grade"):
            tests[gid] = {definers[n] for n in loads - binds if n in definers}
    out = {}
    for gid, direct in tests.items():
        closure, todo = set(), list(direct)
        while todo:
            d = todo.pop()
            if d not in closure:
                closure.add(d)
                todo.extend(needs.get(d, ()))
        out[gid] = closure
    return out


def expected_auto_score(source_nb, keep: Callable[[str], bool]) -> float:
    """The autograded points a submission built with ``keep`` must get: the
    points of every test cell all of whose answer cells were kept."""
    deps = cell_dependencies(source_nb)
    points = {_meta(c)["grade_id"]: float(_meta(c).get("points", 0)) for c in source_nb.cells if _meta(c).get("grade")}
    return sum(points[t] for t, d in deps.items() if all(keep(g) for g in d))


def answer_cells(source_nb) -> list[str]:
    """grade_ids of the answer cells (code and written), in notebook order."""
    return [_meta(c)["grade_id"] for c in source_nb.cells if _meta(c).get("solution")]


def partial_keep(source_nb) -> Callable[[str], bool]:
    """The demo's "partly correct" student: answers every other code answer cell
    (1st, 3rd, ...) and every other written answer (2nd, 4th, ...)."""
    code = [_meta(c)["grade_id"] for c in source_nb.cells if _meta(c).get("solution") and c.cell_type == "code"]
    written = [_meta(c)["grade_id"] for c in source_nb.cells if _meta(c).get("solution") and c.cell_type != "code"]
    kept = set(code[::2]) | set(written[1::2])
    return lambda gid: gid in kept


DEMO_STUDENTS = {  # id: (what the submission is, keep(source_nb) -> keep function)
    "ada": ("full solution", lambda nb: (lambda gid: True)),
    "ben": ("untouched release", lambda nb: (lambda gid: False)),
    "cy": ("every other answer (partly correct)", partial_keep),
}


def make_demo_submissions(course: Path, students: Mapping[str, tuple] = DEMO_STUDENTS,
                          assignments: Optional[Sequence[str]] = None) -> dict:
    """Write made-up students' submissions of ``assignments`` (default: every assignment; each must be released).

    ``students``: ``{name: (description, make_keep)}``, where ``make_keep(source_nb)``
    says which answer cells (by grade id) the student's notebook keeps.
    Returns ``{(student, assignment): expected autograded points}``.
    """
    course = Path(course)
    expected = {}
    for assignment in assignments or course_assignments(course):
        for student, (_, make_keep) in students.items():
            notebooks, total = {}, 0.0
            for src in _notebooks(course, "source", assignment):
                source_nb = _read_nb(src)
                release_nb = _read_nb(course / "release" / assignment / src.name)
                keep = make_keep(source_nb)
                notebooks[src.name] = build_submission(release_nb, source_nb, keep)
                total += expected_auto_score(source_nb, keep)
            write_submission(course, student, assignment, notebooks)
            expected[(student, assignment)] = total
    return expected


def demo(keep: Optional[Path] = None, log=print, sandbox: Optional[str] = None) -> int:
    """``make grade-demo``: the whole workflow on a temporary copy of the course.

    Releases every assignment, writes three made-up students' submissions (a
    full solution, the untouched release, every other answer), autogrades them
    in one batch, writes feedback and the CSV, and prints the grade table with
    the autograded score each must get (worked out from which answers it holds).
    Returns 0 if every score is the expected one.
    """
    from rmteach.grading.course import GRADEBOOK_URL_ENV

    # the demo's course copy keeps its own SQLite gradebook: never the course database of $RMTEACH_GRADEBOOK_URL
    url = os.environ.pop(GRADEBOOK_URL_ENV, None)
    try:
        return _demo(keep, log, sandbox)
    finally:
        if url is not None:
            os.environ[GRADEBOOK_URL_ENV] = url


def _demo(keep: Optional[Path], log, sandbox: Optional[str]) -> int:
    t0 = time.monotonic()
    tmp = None
    if keep is None:
        tmp = tempfile.TemporaryDirectory(prefix="rmteach-grade-demo-")
        root = Path(tmp.name) / "course"
    else:
        root = Path(keep).resolve()
        if root.exists() and any(root.iterdir()):
            raise GradingError(f"keep: {root} exists and is not empty")
    try:
        course = copy_course(REPO_COURSE, root)
        log(f"course copy: {course}")
        generate_assignments(course, validate=False, log=log)
        expected = make_demo_submissions(course)
        for student, (what, _) in DEMO_STUDENTS.items():
            log(f"submitted/{student}/<assignment>/: {what}")
        problems = [f"{r.student}/{r.assignment}: {r.status}" for r in autograde(course, sandbox=sandbox, log=log) if r.failed]
        generate_feedback(course, log=log)
        rows = [r for r in grade_rows(course) if r["student"] in DEMO_STUDENTS]
        csv_path = write_csv(rows, course / "grades.csv")
        log("")
        log(format_table(rows, expected))
        log("")
        log(f"CSV: {csv_path}" + ("" if tmp is None else " (temporary; use --keep DIR to keep the course)"))
        bad = [r for r in rows if abs(expected.get((r["student"], r["assignment"]), -1) - r["auto_score"]) > 1e-9]
        for p in problems:
            log(f"PROBLEM {p}")
        log(f"{'all autograded scores as expected' if not bad and not problems else f'{len(bad)} score(s) not as expected'}"
            f" ({time.monotonic() - t0:.0f} s)")
        return 0 if not bad and not problems else 1
    finally:
        if tmp is not None:
            tmp.cleanup()


# -- CLI -------------------------------------------------------------------
