r"""The class report: one self-contained HTML page for the instructor (``make report``).

:func:`gather_report` reads the course (the gradebook through nbgrader's
:class:`~nbgrader.api.Gradebook`, :data:`~rmteach.grading.course.STATUS_FILE`, the
source notebooks' test cells and the students' autograded notebooks) and returns
plain data, dicts and lists of numbers and strings; :func:`render_report` turns
that into HTML; :func:`write_report` writes it, mode 0600, for instructors only.
The page shows

* each assignment's score distribution (a histogram of the total scores of the
  graded submissions, their mean and median; failed and not submitted apart);
* for every grade cell (autograded tests, written answers) the share of the graded
  submissions that got full points, partial credit, nothing, or wait for a grader;
* for every choice question (a test cell calling ``choice_is`` / ``choices_are``)
  how often each wrong option was picked, with the misconception its ``why=``
  text names.  A student's pick is read from the autograded notebook with
  :mod:`ast`, a literal assignment only (``answer_q02 = "C"``, ``answer_q04 =
  {"B", "C"}``): student code is never run here.  Anything else (computed, edited
  later, not a letter) counts as *unreadable*, apart; an unreadable answer whose
  cell got full points counts as right (the check passed);
* the submissions that failed to grade, named, and why;
* the grading time per job, recorded in the status file.

Every string from a notebook, the status file or a folder name is HTML-escaped.
"""

from __future__ import annotations

import ast
import base64
import functools
import html
import io
import json
import math
import os
import re
import statistics
import time
from pathlib import Path
from typing import Any, Iterable, Optional

from rmteach.grading.course import GradingError, _meta, gradebook_url, mask_secrets, mask_url, read_statuses
from rmteach.grading.gradebook import grade_rows, gradebook_exists

#: the page's default name, in the course directory
REPORT_FILE = "report.html"
#: folders of the course that students see or that are copied to them: never the report's home
STUDENT_FOLDERS = ("release", "feedback", "source", "submitted", "autograded")
#: the check functions of :mod:`rmteach.grading.checks` that grade a choice (multi: select all that apply)
CHOICE_CHECKS = {"choice_is": False, "assert_choice": False, "choices_are": True, "assert_choices": True}
#: how many of the slowest grading jobs the page lists
SLOWEST = 5
GRADED = ("graded", "needs manual grading")


def _open_gradebook(course: Path):
    """nbgrader's Gradebook at the course's URL (:func:`rmteach.grading.course.gradebook_url`: SQLite or
    PostgreSQL); a clear :class:`GradingError` when there is none yet or it cannot be opened."""
    from nbgrader.api import Gradebook

    url = gradebook_url(course)
    if not gradebook_exists(url):  # nbgrader would create an empty one: say what is missing instead
        raise GradingError(f"course: {course} has no gradebook yet (run make assignments, then make autograde)")
    try:
        return Gradebook(url)
    except Exception as exc:  # a database that cannot be opened (server down, bad URL): any driver's error
        why = mask_secrets(f"{type(exc).__name__}: {exc}", url)
        raise GradingError(f"course: cannot open the gradebook {mask_url(url)} of {course} ({why})") from None


# -- gathering -------------------------------------------------------------------------------------


def _read_json_nb(path: Path) -> Optional[dict]:
    try:
        nb = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError, UnicodeDecodeError):
        return None
    return nb if isinstance(nb, dict) and isinstance(nb.get("cells"), list) else None


def _cell_source(cell: dict) -> str:
    src = cell.get("source", "")
    return "".join(src) if isinstance(src, list) else str(src)


@functools.lru_cache(maxsize=512)
def _parse(source: str) -> Optional[ast.Module]:
    """The cell's syntax tree (cached: every choice question reads the same cells; never changed), or None."""
    try:
        return ast.parse(source)
    except (SyntaxError, ValueError):
        return None


def _strings(node: ast.AST) -> Optional[list[str]]:
    """The letters an ``options`` argument names: ``"ABCD"`` or a dict literal's keys."""
    if isinstance(node, ast.Constant) and isinstance(node.value, str):
        return [c for c in node.value if not c.isspace()]
    if isinstance(node, ast.Dict) and node.keys and all(isinstance(k, ast.Constant) and isinstance(k.value, str)
                                                          for k in node.keys):
        return [k.value for k in node.keys]
    if isinstance(node, (ast.Set, ast.List, ast.Tuple)) and all(isinstance(e, ast.Constant) and isinstance(e.value, str)
                                                                 for e in node.elts):
        return [e.value for e in node.elts]
    return None


def _why_texts(node: Optional[ast.AST]) -> dict[str, str]:
    """``why={"A": "text", ...}`` as a dict (entries whose text is not a literal are left out)."""
    out = {}
    if isinstance(node, ast.Dict):
        for k, v in zip(node.keys, node.values):
            if isinstance(k, ast.Constant) and isinstance(k.value, str):
                try:
                    text = ast.literal_eval(v)
                except (ValueError, TypeError, SyntaxError, MemoryError, RecursionError):
                    continue
                if isinstance(text, str):
                    out[k.value.strip().upper()] = text
    return out


def _answer_path(node: ast.AST) -> Optional[tuple[str, tuple]]:
    """``answer_q02`` -> ("answer_q02", ()); ``answer_q11["run_2"]`` -> ("answer_q11", ("run_2",))."""
    keys: list = []
    while isinstance(node, ast.Subscript):
        if not isinstance(node.slice, ast.Constant):
            return None
        keys.insert(0, node.slice.value)
        node = node.value
    return (node.id, tuple(keys)) if isinstance(node, ast.Name) else None


def _literal(node: ast.AST) -> Any:
    """A literal's value; ``set()``, ``set([...])`` and ``frozenset(...)`` of literals too.  Raises ValueError."""
    if (isinstance(node, ast.Call) and isinstance(node.func, ast.Name) and node.func.id in ("set", "frozenset")
            and not node.keywords and len(node.args) <= 1):
        return set(ast.literal_eval(node.args[0])) if node.args else set()
    return ast.literal_eval(node)


def _binds(node: ast.AST, name: str) -> bool:
    """Whether a statement binds or changes ``name`` (other than by a plain top-level assignment)."""
    for sub in ast.walk(node):
        if isinstance(sub, ast.Name) and sub.id == name and isinstance(sub.ctx, (ast.Store, ast.Del)):
            return True
        if isinstance(sub, (ast.Import, ast.ImportFrom)) and any((a.asname or a.name).split(".")[0] == name
                                                                 for a in sub.names):
            return True
        if isinstance(sub, (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef)) and sub.name == name:
            return True
        if isinstance(sub, ast.Global) and name in sub.names:
            return True
        # answer.add("A"), answer["run_1"] = "B", answer |= {...}: changed after the assignment
        if isinstance(sub, ast.Attribute) and isinstance(sub.value, ast.Name) and sub.value.id == name:
            return True
        if (isinstance(sub, ast.Subscript) and isinstance(sub.value, ast.Name) and sub.value.id == name
                and isinstance(sub.ctx, (ast.Store, ast.Del))):
            return True
    return False


def read_answer(cells: Iterable[str], name: str) -> tuple[Any, str, str]:
    """The value the code cells ``cells`` leave in ``name``, read without running them.

    Returns ``(value, "", line)`` for a literal assignment that nothing later
    changes, ``(None, "no answer", "")`` when no cell binds the name, and
    ``(None, why, line)`` when the value cannot be read safely (computed, changed
    later, a cell that does not parse); ``line`` is the code that last bound it.
    """
    state: tuple[Any, str, str] = (None, "no answer", "")
    for source in cells:
        if name not in source:  # a cell that never names it cannot bind it
            continue
        tree = _parse(source)
        lines = source.splitlines()
        if tree is None:
            binding = [line for line in lines if re.match(rf"\s*{re.escape(name)}\b", line)]
            if binding:
                state = (None, "a cell that binds it does not parse", _first_line(binding[-1]))
            continue
        for stmt in tree.body:
            line = _first_line(lines[stmt.lineno - 1] if 0 < stmt.lineno <= len(lines) else "")
            if (isinstance(stmt, ast.Assign) and len(stmt.targets) == 1 and isinstance(stmt.targets[0], ast.Name)
                    and stmt.targets[0].id == name):
                try:
                    state = (_literal(stmt.value), "", line)
                except (ValueError, TypeError, SyntaxError, MemoryError, RecursionError):
                    state = (None, "computed, not a literal", line)
            elif _binds(stmt, name):
                state = (None, "assigned or changed by code", line)
    return state


def _first_line(text: str, limit: int = 120) -> str:
    line = text.strip().splitlines()[0] if text.strip() else ""
    return line if len(line) <= limit else line[: limit - 3] + "..."


def _normalize(value: Any, multi: bool, options: Optional[list[str]]) -> Optional[Any]:
    """A pick as the check reads it: one upper-case letter, or a frozenset of them; None if not a valid pick."""
    opts = set(options) if options else None

    def letter(x: Any) -> Optional[str]:
        if type(x) is not str:
            return None
        x = x.strip().upper()
        return x if x and (opts is None or x in opts) else None

    if not multi:
        return letter(value)
    if type(value) is str:
        items = [c for c in value if not c.isspace() and c != ","]
    elif type(value) in (set, frozenset, list, tuple):
        items = list(value)
    else:
        return None
    letters = [letter(x) for x in items]
    return None if any(x is None for x in letters) else frozenset(letters)


def _at(value: Any, keys: tuple) -> Any:
    for k in keys:
        if not isinstance(value, dict) or k not in value:
            raise KeyError(k)
        value = value[k]
    return value


def _show(pick: Any) -> str:
    if isinstance(pick, frozenset):
        return "{" + ", ".join(sorted(pick)) + "}" if pick else "{} (none)"
    return str(pick)


def choice_questions(source_nb: dict) -> list[dict]:
    """The choice questions of a source notebook: one per ``choice_is`` / ``choices_are`` call in a test cell.

    Each: ``grade_id`` (the test cell), ``name`` (as the check names it), ``variable``
    and ``keys`` (where the answer is: ``answer_q11["run_2"]``), ``multi``,
    ``options`` (letters, or None), ``why`` ({letter: misconception}) and ``key``
    (the right pick when the test cell or the source solution states it as a
    literal, else None) and ``key_from`` (which of the two).
    """
    solutions = [_cell_source(c) for c in source_nb["cells"]
                 if c.get("cell_type") == "code" and _meta(c).get("solution")]
    named: dict[str, ast.AST] = {}  # top-level `_x = <literal-ish>` of the test cells so far (why=_q11_why)
    out = []
    for cell in source_nb["cells"]:
        meta = _meta(cell)
        if cell.get("cell_type") != "code" or not meta.get("grade") or meta.get("solution"):
            continue
        tree = _parse(_cell_source(cell))
        if tree is None:
            continue
        for stmt in tree.body:
            if isinstance(stmt, ast.Assign) and len(stmt.targets) == 1 and isinstance(stmt.targets[0], ast.Name):
                named[stmt.targets[0].id] = stmt.value
        for call in ast.walk(tree):
            if not isinstance(call, ast.Call):
                continue
            fname = call.func.attr if isinstance(call.func, ast.Attribute) else getattr(call.func, "id", None)
            if fname not in CHOICE_CHECKS or len(call.args) < 3:
                continue
            path = _answer_path(call.args[0])
            if path is None:
                continue
            kw = {k.arg: k.value for k in call.keywords}
            label = call.args[3] if len(call.args) > 3 else kw.get("name")
            resolve = (lambda n: named.get(n.id, n) if isinstance(n, ast.Name) else n)
            options = _strings(resolve(call.args[2]))
            multi = CHOICE_CHECKS[fname]
            key, key_from = None, None
            try:
                key, key_from = _normalize(_literal(call.args[1]), multi, options), "the test cell"
            except (ValueError, TypeError, SyntaxError, MemoryError, RecursionError):
                pass
            if key is None:
                value, why_not, _ = read_answer(solutions, path[0])
                try:
                    key, key_from = (None if why_not else _normalize(_at(value, path[1]), multi, options),
                                     "the source solution")
                except KeyError:
                    key = None
            out.append(dict(
                grade_id=meta.get("grade_id"), variable=path[0], keys=list(path[1]), multi=multi, options=options,
                name=(label.value if isinstance(label, ast.Constant) and isinstance(label.value, str)
                      else ast.unparse(call.args[0])),
                why=_why_texts(resolve(kw.get("why"))), key=key, key_from=key_from if key is not None else None,
            ))
    return out


def _scores_by_cell(gb, assignment: str, students: list[str]) -> dict:
    """{(student, notebook, cell): (score, max_score, pending)} for the graded submissions."""
    out = {}
    for student in students:
        sub = gb.find_submission(assignment, student)
        for nb in sub.notebooks:
            for grade in nb.grades:
                pending = bool(grade.needs_manual_grade and grade.manual_score is None and grade.auto_score is None)
                out[(student, nb.name, grade.cell.name)] = (float(grade.score or 0.0), float(grade.max_score), pending)
    return out


def _cells(gb_assignment, scores: dict, students: list[str], course: Path) -> list[dict]:
    """Per grade cell: how many of the graded submissions got full points, part, nothing, or wait."""
    cells = []
    for nb in sorted(gb_assignment.notebooks, key=lambda n: n.name):
        solution = {c.name for c in nb.solution_cells}
        src = _read_json_nb(course / "source" / gb_assignment.name / f"{nb.name}.ipynb")
        order = {_meta(c).get("grade_id"): i for i, c in enumerate(src["cells"])} if src else {}
        for gc in sorted(nb.grade_cells, key=lambda c: (order.get(c.name, math.inf), c.name)):
            kind = ("written (graded by hand)" if gc.cell_type == "markdown"
                    else "code (graded by hand)" if gc.name in solution else "autograded test")
            counts = dict(full=0, partial=0, zero=0, pending=0)
            for student in students:
                score, top, pending = scores.get((student, nb.name, gc.name), (0.0, float(gc.max_score), False))
                if pending:
                    counts["pending"] += 1
                elif top > 0 and score >= top - 1e-9:
                    counts["full"] += 1
                elif score > 0:
                    counts["partial"] += 1
                else:
                    counts["zero"] += 1
            n = len(students)
            cells.append(dict(notebook=nb.name, grade_id=gc.name, kind=kind, points=float(gc.max_score), graded=n,
                              **counts, **{f"{k}_share": (v / n if n else None) for k, v in counts.items()}))
    return cells


def _choices(course: Path, assignment: str, students: list[str], scores: dict) -> list[dict]:
    """Per choice question: the picks of the graded submissions, read from their autograded notebooks."""
    out = []
    for src_path in sorted((course / "source" / assignment).glob("*.ipynb")):
        source_nb = _read_json_nb(src_path)
        if source_nb is None:
            continue
        questions = choice_questions(source_nb)
        if not questions:
            continue
        cells_of = {}
        for student in students:
            nb = _read_json_nb(course / "autograded" / student / assignment / src_path.name)
            cells_of[student] = None if nb is None else [_cell_source(c) for c in nb["cells"]
                                                         if c.get("cell_type") == "code"]
        for q in questions:
            picks: dict[str, Any] = {}
            unreadable: list[dict] = []
            no_answer: list[str] = []
            full: set[str] = set()
            for student in students:
                score, top, _ = scores.get((student, src_path.stem, q["grade_id"]), (0.0, 0.0, False))
                if top > 0 and score >= top - 1e-9:
                    full.add(student)
                cells = cells_of[student]
                if cells is None:
                    unreadable.append(dict(student=student, why="autograded notebook unreadable", text=""))
                    continue
                value, why_not, line = read_answer(cells, q["variable"])
                if why_not == "no answer":
                    no_answer.append(student)
                    continue
                pick = None
                if not why_not:
                    try:
                        pick = _normalize(_at(value, tuple(q["keys"])), q["multi"], q["options"])
                        why_not = "" if pick is not None else "not a valid pick"
                    except KeyError:
                        why_not = "the answer has no entry " + ", ".join(map(repr, q["keys"]))
                if pick is None:
                    unreadable.append(dict(student=student, why=why_not, text=line))
                else:
                    picks[student] = pick
            key, key_from = q["key"], q["key_from"]
            if key is None:  # computed in the test cell: a readable pick whose cell got full points is the key
                right = {picks[s] for s in picks if s in full}
                if len(right) == 1:
                    key, key_from = right.pop(), "the picks that got full points"
            wrong: dict[str, list[str]] = {}
            missed: dict[str, list[str]] = {}
            wrong_sets: list[dict] = []  # select-all picks that are wrong, with no key to tell which option is
            picked: dict[str, int] = {}
            right_students = []
            for student, pick in sorted(picks.items()):
                for letter in (sorted(pick) if q["multi"] else [pick]):
                    picked[letter] = picked.get(letter, 0) + 1
                if pick == key or (key is None and student in full):
                    right_students.append(student)
                elif key is None and q["multi"]:
                    wrong_sets.append(dict(student=student, pick=_show(pick)))
                else:  # a single pick that is not the key (or, with no key known, that did not get the points)
                    for letter in (sorted(pick - key) if q["multi"] else [pick]):
                        wrong.setdefault(letter, []).append(student)
                    for letter in (sorted(key - pick) if q["multi"] else []):
                        missed.setdefault(letter, []).append(student)
            if key is None:
                key_from = "unknown: computed in the test cell" + (" (wrong picks judged by the cell's score)"
                                                                   if wrong else "")
            passed_unreadable = sorted(u["student"] for u in unreadable if u["student"] in full)
            out.append(dict(
                notebook=src_path.stem, grade_id=q["grade_id"], name=q["name"], multi=q["multi"],
                options=q["options"] or sorted(set(q["why"]) | set(picked)), key=None if key is None else _show(key),
                key_from=key_from, graded=len(students), readable=len(picks),
                right=len(right_students) + len(passed_unreadable), right_students=right_students + passed_unreadable,
                right_unreadable=len(passed_unreadable), picked=picked,
                wrong=[dict(option=k, count=len(v), students=v, why=q["why"].get(k, ""))
                       for k, v in sorted(wrong.items())],
                missed=[dict(option=k, count=len(v), students=v) for k, v in sorted(missed.items())],
                wrong_sets=wrong_sets, unreadable=unreadable, no_answer=no_answer,
            ))
    return out


def _histogram(scores: list[float], top: float) -> dict:
    bins = max(1, min(20, int(math.ceil(top)))) if top > 0 else 1
    edges = [top * i / bins for i in range(bins + 1)] if top > 0 else [0.0, 1.0]
    counts = [0] * bins
    for s in scores:
        i = min(bins - 1, max(0, int((s - edges[0]) / (edges[-1] - edges[0]) * bins)))
        counts[i] += 1
    return dict(edges=edges, counts=counts)


def _timing(statuses: dict) -> dict:
    jobs = [dict(student=s, assignment=a, seconds=float(v["seconds"]), status=str(v.get("status", "")))
            for (s, a), v in sorted(statuses.items())
            if isinstance(v, dict) and isinstance(v.get("seconds"), (int, float)) and math.isfinite(v["seconds"])]
    per: dict[str, list[float]] = {}
    for j in jobs:
        per.setdefault(j["assignment"], []).append(j["seconds"])
    total = math.fsum(j["seconds"] for j in jobs)
    return dict(
        jobs=len(jobs), total=total, mean=total / len(jobs) if jobs else None,
        median=statistics.median(j["seconds"] for j in jobs) if jobs else None,
        slowest=sorted(jobs, key=lambda j: (-j["seconds"], j["student"], j["assignment"]))[:SLOWEST],
        per_assignment=[dict(assignment=a, jobs=len(v), total=math.fsum(v), mean=math.fsum(v) / len(v), max=max(v))
                        for a, v in sorted(per.items())],
    )


def gather_report(course: Path) -> dict:
    """The class numbers of ``course``, as plain data (what :func:`render_report` shows).

    ``{"course", "generated", "assignments": [...], "failed": [...], "timing": {...}}``;
    each assignment has ``counts`` (graded, needs manual grading, failed, not
    autograded, not submitted), ``scores`` (total score of each graded
    submission, by student), ``mean``, ``median``, ``histogram``, ``cells`` (per
    grade cell) and ``choices`` (per choice question).  Raises
    :class:`GradingError` for a folder that is not a course, a course with no
    gradebook, or a gradebook with no assignments.
    """
    course = Path(course).resolve()
    if not (course / "nbgrader_config.py").is_file():
        raise GradingError(f"course: {course} has no nbgrader_config.py (not an nbgrader course directory)")
    gb = _open_gradebook(course)
    try:
        names = [a.name for a in gb.assignments]
    finally:
        gb.close()
    if not names:
        raise GradingError(f"course: the gradebook of {course} lists no assignments (run make assignments first)")
    rows = grade_rows(course)
    statuses = read_statuses(course)
    assignments, failed = [], []
    gb = _open_gradebook(course)
    try:
        for gb_assignment in sorted(gb.assignments, key=lambda a: a.name):
            name = gb_assignment.name
            mine = [r for r in rows if r["assignment"] == name]
            graded = sorted(r["student"] for r in mine if r["status"] in GRADED)
            counts = {k: sum(r["status"] == k for r in mine) for k in (*GRADED, "not autograded", "not submitted")}
            counts["failed"] = sum(r["status"].startswith("failed") for r in mine)
            scores = {r["student"]: r["score"] for r in mine if r["status"] in GRADED}
            top = max((r["max_score"] for r in mine), default=0.0)
            by_cell = _scores_by_cell(gb, name, graded)
            values = [scores[s] for s in graded]
            assignments.append(dict(
                name=name, max_score=top, auto_max=max((r["auto_max"] for r in mine), default=0.0),
                students=len(mine), counts=counts, scores=scores,
                mean=statistics.fmean(values) if values else None, median=statistics.median(values) if values else None,
                histogram=_histogram(values, top), cells=_cells(gb_assignment, by_cell, graded, course),
                choices=_choices(course, name, graded, by_cell),
            ))
            for r in mine:
                if r["status"].startswith("failed"):
                    state = statuses.get((r["student"], name), {})
                    log = state.get("log") if isinstance(state.get("log"), list) else []
                    failed.append(dict(student=r["student"], assignment=name, reason=r["status"][len("failed: "):],
                                       when=str(state.get("when", "")), notes=r["notes"],
                                       log_tail=[str(x) for x in log[-5:]]))
    finally:
        gb.close()
    return dict(course=str(course), generated=time.strftime("%Y-%m-%d %H:%M:%S UTC", time.gmtime()),
                assignments=assignments, failed=failed, timing=_timing(statuses))


# -- rendering -------------------------------------------------------------------------------------

_CSS = """
body{font:14px/1.45 system-ui,-apple-system,"Segoe UI",Roboto,sans-serif;margin:24px auto;max-width:1120px;
color:#222;padding:0 16px}
h1{font-size:24px;margin-bottom:4px} h2{margin-top:36px;border-bottom:2px solid #ddd;padding-bottom:4px}
h3{margin:22px 0 6px}
.private{background:#fff3cd;border:1px solid #e0c36a;padding:10px 14px;border-radius:6px}
table{border-collapse:collapse;margin:8px 0 14px;font-size:13px}
th,td{border:1px solid #ddd;padding:3px 8px;vertical-align:top;text-align:left}
th{background:#f4f4f4} td.n{text-align:right;font-variant-numeric:tabular-nums;white-space:nowrap}
.bar{display:inline-block;height:10px;background:#d9534f;vertical-align:middle;margin-right:6px}
.muted{color:#666} img{max-width:100%;height:auto} code{font-size:12px;background:#f6f6f6;padding:0 3px}
.why{max-width:520px}
"""


def _e(text: Any) -> str:
    return html.escape(str(text), quote=True)


def _num(x: Optional[float], digits: int = 1) -> str:
    if x is None:
        return "–"
    return f"{x:.{digits}f}".rstrip("0").rstrip(".") if digits else f"{x:.0f}"


def _pct(x: Optional[float]) -> str:
    return "–" if x is None else f"{100 * x:.0f}%"


def _png(fig) -> str:
    """A matplotlib Figure as an inline ``<img>`` (PNG, base64), drawn by Agg without touching pyplot's backend."""
    from matplotlib.backends.backend_agg import FigureCanvasAgg

    FigureCanvasAgg(fig)
    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=100, bbox_inches="tight")
    return base64.b64encode(buf.getvalue()).decode("ascii")


def _img(fig, alt: str) -> str:
    return f'<img alt="{_e(alt)}" src="data:image/png;base64,{_png(fig)}">'


def _score_figure(assignments: list[dict]) -> str:
    from matplotlib.figure import Figure

    n = len(assignments)
    cols = min(3, n)
    rows = math.ceil(n / cols)
    fig = Figure(figsize=(3.7 * cols, 2.7 * rows), layout="constrained")
    for i, a in enumerate(assignments):
        ax = fig.add_subplot(rows, cols, i + 1)
        edges, counts = a["histogram"]["edges"], a["histogram"]["counts"]
        widths = [edges[j + 1] - edges[j] for j in range(len(counts))]
        ax.bar(edges[:-1], counts, width=widths, align="edge", color="#4a7ebb", edgecolor="white")
        ax.set_xlim(0, edges[-1])
        ax.set_ylim(0, max(counts + [1]) * 1.35)
        ax.yaxis.get_major_locator().set_params(integer=True)
        c = a["counts"]
        ax.set_title(f"{a['name']}\n{c['graded'] + c['needs manual grading']} graded · {c['failed']} failed · "
                     f"{c['not submitted']} not submitted", fontsize=9)
        ax.set_xlabel(f"total score (of {_num(a['max_score'])})", fontsize=9)
        ax.set_ylabel("submissions", fontsize=9)
        if a["mean"] is not None:
            ax.axvline(a["mean"], color="#d9534f", lw=1.5, label=f"mean {_num(a['mean'])}")
            ax.axvline(a["median"], color="#333", lw=1.2, ls="--", label=f"median {_num(a['median'])}")
            ax.legend(fontsize=7, loc="upper right", frameon=False)
        ax.tick_params(labelsize=8)
    return _img(fig, "histogram of total scores per assignment")


def _cells_figure(a: dict) -> str:
    from matplotlib.figure import Figure

    cells = a["cells"]
    fig = Figure(figsize=(9.5, 0.6 + 0.24 * len(cells)), layout="constrained")
    ax = fig.add_subplot()
    labels = [f"{c['grade_id']} ({_num(c['points'])} pt)" for c in cells]
    y = list(range(len(cells)))[::-1]
    left = [0.0] * len(cells)
    for key, color, label in (("full", "#5cb85c", "full points"), ("partial", "#f0ad4e", "partial credit"),
                              ("zero", "#d9534f", "no points"), ("pending", "#bbbbbb", "to grade by hand")):
        share = [c[f"{key}_share"] or 0.0 for c in cells]
        ax.barh(y, share, left=left, color=color, label=label, height=0.75)
        left = [l + s for l, s in zip(left, share)]
    ax.set_yticks(y, labels, fontsize=7.5)
    ax.set_xlim(0, 1)
    ax.xaxis.set_major_formatter(lambda v, _: f"{100 * v:.0f}%")
    ax.set_xlabel(f"share of the {cells[0]['graded'] if cells else 0} graded submission(s)", fontsize=9)
    ax.tick_params(axis="x", labelsize=8)
    ax.legend(fontsize=8, ncols=4, loc="lower center", bbox_to_anchor=(0.5, 1.0), frameon=False)
    return _img(fig, f"share of full points per graded cell of {a['name']}")


def _timing_figure(t: dict) -> str:
    from matplotlib.figure import Figure

    per = t["per_assignment"]
    fig = Figure(figsize=(8, 0.8 + 0.35 * len(per)), layout="constrained")
    ax = fig.add_subplot()
    y = list(range(len(per)))[::-1]
    ax.barh(y, [p["mean"] for p in per], color="#4a7ebb", height=0.6)
    for yi, p in zip(y, per):
        ax.text(p["mean"], yi, f" {p['mean']:.1f} s (max {p['max']:.1f} s, {p['jobs']} jobs)", va="center", fontsize=8)
    ax.set_yticks(y, [p["assignment"] for p in per], fontsize=8)
    ax.set_xlim(0, max([p["max"] for p in per] + [1.0]) * 1.6)
    ax.set_xlabel("mean seconds per grading job", fontsize=9)
    ax.tick_params(axis="x", labelsize=8)
    return _img(fig, "mean grading seconds per assignment")


def _students(names: Iterable[str]) -> str:
    return ", ".join(_e(n) for n in names)


def render_report(data: dict) -> str:
    """The HTML page of :func:`gather_report`'s data: self-contained (inline CSS and PNG plots), every string escaped.

    Plot labels are drawn as plain text (no mathtext: a ``$`` in a name is a dollar sign).
    """
    import matplotlib

    with matplotlib.rc_context({"text.parse_math": False}):
        return _render(data)


def _render(data: dict) -> str:
    out = [
        "<!DOCTYPE html>", '<html lang="en"><head><meta charset="utf-8">',
        '<meta name="robots" content="noindex">', "<title>Class report (instructors only)</title>",
        f"<style>{_CSS}</style></head><body>",
        "<h1>Class report</h1>",
        '<p class="private"><strong>For instructors only.</strong> This page names students and shows every '
        "student's results: do not share it with students or put it where they can read it.</p>",
        f'<p class="muted">Course <code>{_e(data["course"])}</code>, generated {_e(data["generated"])}.</p>',
    ]
    assignments = data["assignments"]
    out.append("<h2>Scores per assignment</h2>")
    out.append("<table><tr><th>assignment</th><th>students</th><th>graded</th><th>of which written answers "
               "to grade</th><th>failed</th><th>not autograded</th><th>not submitted</th><th>max</th><th>mean</th>"
               "<th>median</th></tr>")
    for a in assignments:
        c = a["counts"]
        out.append(f"<tr><td>{_e(a['name'])}</td><td class=n>{a['students']}</td>"
                   f"<td class=n>{c['graded'] + c['needs manual grading']}</td>"
                   f"<td class=n>{c['needs manual grading']}</td><td class=n>{c['failed']}</td>"
                   f"<td class=n>{c['not autograded']}</td><td class=n>{c['not submitted']}</td>"
                   f"<td class=n>{_num(a['max_score'])}</td><td class=n>{_num(a['mean'], 2)}</td>"
                   f"<td class=n>{_num(a['median'], 2)}</td></tr>")
    out.append("</table>")
    out.append('<p class="muted">Mean and median are of the graded submissions only (score = autograded + written '
               "points − late penalty; written answers not graded yet count 0); failed and not submitted ones are "
               "counted apart, not as 0.</p>")
    if assignments:
        out.append(_score_figure(assignments))

    out.append("<h2>Graded cells: who got the points</h2>")
    out.append('<p class="muted">For every grade cell, the share of the graded submissions with full points, partial '
               "credit, none, or a written answer not graded yet.</p>")
    for a in assignments:
        out.append(f"<h3>{_e(a['name'])}</h3>")
        if not a["cells"] or not a["cells"][0]["graded"]:
            out.append('<p class="muted">No graded submission yet.</p>')
            continue
        out.append(_cells_figure(a))
        out.append("<details><summary>the numbers</summary>")
        out.append("<table><tr><th>cell</th><th>notebook</th><th>kind</th><th>points</th><th>full points</th>"
                   "<th>partial</th><th>none</th><th>to grade</th></tr>")
        for c in a["cells"]:
            out.append(f"<tr><td><code>{_e(c['grade_id'])}</code></td><td>{_e(c['notebook'])}</td>"
                       f"<td>{_e(c['kind'])}</td>"
                       f"<td class=n>{_num(c['points'])}</td>"
                       f"<td class=n>{c['full']}/{c['graded']} ({_pct(c['full_share'])})</td>"
                       f"<td class=n>{c['partial']}</td><td class=n>{c['zero']}</td>"
                       f"<td class=n>{c['pending']}</td></tr>")
        out.append("</table></details>")

    out.append("<h2>Choice questions: the wrong options picked</h2>")
    out.append('<p class="muted">Picks are read from each graded submission\'s autograded notebook (a literal '
               "assignment such as <code>answer_q02 = \"C\"</code>; student code is never run). <em>Unreadable</em>: "
               "computed, changed later, or not a valid pick; counted apart (one whose cell got full points "
               "counts as right). For select-all questions a wrong option is one included that does not belong.</p>")
    for a in assignments:
        if not a["choices"]:
            continue
        out.append(f"<h3>{_e(a['name'])}</h3>")
        out.append("<table><tr><th>question</th><th>key</th><th>right</th><th>wrong option picked</th><th>times</th>"
                   "<th>by</th><th>misconception (the test cell's why=)</th></tr>")
        for q in a["choices"]:
            wrong = q["wrong"] or [None]
            extra = []
            if q["missed"]:
                extra.append("missed: " + "; ".join(f"{_e(m['option'])} ×{m['count']} ({_students(m['students'])})"
                                                    for m in q["missed"]))
            if q["unreadable"]:
                extra.append(f"unreadable: {len(q['unreadable'])} (" + "; ".join(
                    f"{_e(u['student'])}: {_e(u['why'])}" + (f" <code>{_e(u['text'])}</code>" if u["text"] else "")
                    + (" – got the points, counted right" if u["student"] in q["right_students"] else "")
                    for u in q["unreadable"]) + ")")
            if q["wrong_sets"]:
                extra.append("wrong (the key is computed, so the wrong options are not known): " + "; ".join(
                    f"{_e(w['student'])} {_e(w['pick'])}" for w in q["wrong_sets"]))
            if q["no_answer"]:
                extra.append(f"no answer: {len(q['no_answer'])} ({_students(q['no_answer'])})")
            span = len(wrong) + (1 if extra else 0)
            head = (f'<td rowspan="{span}"><code>{_e(q["name"])}</code><br><span class="muted">{_e(q["grade_id"])}'
                    f'{" (select all)" if q["multi"] else ""}</span></td>'
                    f'<td rowspan="{span}">{_e(q["key"]) if q["key"] is not None else "?"}'
                    f'<br><span class="muted">{_e(q["key_from"])}</span></td>'
                    f'<td rowspan="{span}" class=n>{q["right"]}/{q["graded"]}</td>')
            for i, w in enumerate(wrong):
                row = head if i == 0 else ""
                if w is None:
                    row += '<td colspan="4" class="muted">no wrong option picked</td>'
                else:
                    width = int(round(120 * w["count"] / max(1, q["graded"])))
                    row += (f"<td>{_e(w['option'])}</td><td class=n><span class=bar style=\"width:{width}px\"></span>"
                            f"{w['count']}</td><td>{_students(w['students'])}</td>"
                            "<td class=why>"
                            f"{_e(w['why']) if w['why'] else '<span class=muted>(no why= text)</span>'}</td>")
                out.append(f"<tr>{row}</tr>")
            if extra:
                out.append(f'<tr><td colspan="4" class="muted">{"<br>".join(extra)}</td></tr>')
        out.append("</table>")

    out.append("<h2>Submissions that failed to grade</h2>")
    if not data["failed"]:
        out.append("<p>None: every submitted notebook was graded.</p>")
    else:
        out.append(f"<p>{len(data['failed'])} submission(s) could not be graded (score 0 in the export, not a real 0; "
                   "the next <code>make autograde</code> tries them again).</p>")
        out.append("<table><tr><th>student</th><th>assignment</th><th>why</th><th>when</th>"
                   "<th>end of the log</th></tr>")
        for f in data["failed"]:
            log = f"<code>{'<br>'.join(_e(line) for line in f['log_tail'])}</code>" if f["log_tail"] else "–"
            out.append(f"<tr><td>{_e(f['student'])}</td><td>{_e(f['assignment'])}</td><td>{_e(f['reason'])}</td>"
                       f"<td>{_e(f['when'])}</td><td>{log}</td></tr>")
        out.append("</table>")

    t = data["timing"]
    out.append("<h2>Grading time</h2>")
    if not t["jobs"]:
        out.append("<p>No grading job recorded yet.</p>")
    else:
        out.append(f"<p>{t['jobs']} job(s) in the status file, {t['total']:.1f} s of grading in all "
                   f"(mean {t['mean']:.1f} s, median {t['median']:.1f} s per job; the workers run in parallel, "
                   "so the wall time is shorter). The status file keeps each submission's last run.</p>")
        out.append(_timing_figure(t))
        out.append("<table><tr><th>slowest jobs</th><th>assignment</th><th>seconds</th><th>status</th></tr>")
        for j in t["slowest"]:
            out.append(f"<tr><td>{_e(j['student'])}</td><td>{_e(j['assignment'])}</td>"
                       f"<td class=n>{j['seconds']:.2f}</td><td>{_e(j['status'])}</td></tr>")
        out.append("</table>")
        out.append("<table><tr><th>assignment</th><th>jobs</th><th>total s</th><th>mean s</th><th>max s</th></tr>")
        for p in t["per_assignment"]:
            out.append(f"<tr><td>{_e(p['assignment'])}</td><td class=n>{p['jobs']}</td>"
                       f"<td class=n>{p['total']:.1f}</td>"
                       f"<td class=n>{p['mean']:.1f}</td><td class=n>{p['max']:.1f}</td></tr>")
        out.append("</table>")
    out.append("</body></html>")
    return "\n".join(out) + "\n"


def _inside(path: Path, folder: Path) -> bool:
    return path == folder or folder in path.parents


def write_report(course: Path, out: Optional[Path] = None) -> Path:
    """``make report``: gather the class numbers and write the page (default ``COURSE/report.html``), mode 0600.

    Refuses a path in a folder students see or that is copied to them
    (``release/``, ``feedback/``, ``source/``, ``submitted/``, ``autograded/``).
    """
    course = Path(course).resolve()
    path = Path(out).resolve() if out is not None else course / REPORT_FILE
    for folder in STUDENT_FOLDERS:
        if _inside(path, course / folder):
            raise GradingError(f"out: {path} is under {folder}/, which students see or which is copied to them; "
                               f"the report names students: write it elsewhere (default {course / REPORT_FILE})")
    if path.is_dir():
        raise GradingError(f"out: {path} is a folder; give a file name")
    page = render_report(gather_report(course))
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    try:
        os.fchmod(fd, 0o600)
        with os.fdopen(fd, "w", encoding="utf-8") as fh:
            fh.write(page)
        os.replace(tmp, path)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise
    os.chmod(path, 0o600)
    return path
