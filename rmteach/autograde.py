r"""The instructor pipeline for the nbgrader course in ``assignments/`` and its CLI.

The Makefile calls::

    python -m rmteach.autograde assignments [--course DIR]   # validate sources, release, validate --invert
    python -m rmteach.autograde autograde   [--course DIR] [--force]
    python -m rmteach.autograde feedback    [--course DIR]
    python -m rmteach.autograde grades      [--course DIR] [--csv FILE]
    python -m rmteach.autograde demo        [--keep DIR]  # three made-up students, whole pipeline

Small composable functions (:func:`copy_course`, :func:`build_submission`,
:func:`run_nbgrader`, :func:`grade_rows`, ...) do the work; nbgrader runs with an
explicit course root (``--CourseDirectory.root``).  The checks that test cells
call, and the nbgrader plug-ins, are in :mod:`rmteach.grading`.
"""

from __future__ import annotations

import argparse
import ast
import copy
import csv
import os
import shutil
import subprocess
import sys
import tempfile
import time
import warnings
from pathlib import Path
from typing import Any, Callable, Mapping, Optional, Sequence

PACKAGE_DIR = Path(__file__).resolve().parent
REPO_COURSE = PACKAGE_DIR.parent / "assignments"

class GradingError(RuntimeError):
    """A pipeline step failed; the message says which and why."""


def _read_nb(path: Path):
    import nbformat

    return nbformat.read(str(path), as_version=4)


def _write_nb(nb, path: Path) -> None:
    import nbformat

    path.parent.mkdir(parents=True, exist_ok=True)
    nbformat.write(nb, str(path))


def _meta(cell) -> dict:
    return cell.get("metadata", {}).get("nbgrader", {})


def course_assignments(course: Path) -> list[str]:
    """The assignment names: folders of ``source/`` that hold a notebook."""
    src = Path(course) / "source"
    if not src.is_dir():
        raise GradingError(f"course: {course} has no source/ folder (is it an nbgrader course directory?)")
    return sorted(p.name for p in src.iterdir() if p.is_dir() and any(p.glob("*.ipynb")))


def _notebooks(course: Path, folder: str, assignment: str, student: Optional[str] = None) -> list[Path]:
    base = Path(course) / folder
    base = base / student / assignment if student else base / assignment
    return sorted(base.glob("*.ipynb"))


def copy_course(src: Path, dst: Path) -> Path:
    """Copy a course's ``nbgrader_config.py`` and ``source/`` (nothing generated) to ``dst``."""
    src, dst = Path(src), Path(dst)
    if not (src / "nbgrader_config.py").is_file():
        raise GradingError(f"src: {src} has no nbgrader_config.py")
    dst.mkdir(parents=True, exist_ok=True)
    shutil.copy2(src / "nbgrader_config.py", dst / "nbgrader_config.py")
    shutil.copytree(src / "source", dst / "source", ignore=shutil.ignore_patterns(".ipynb_checkpoints", "__pycache__"))
    return dst


def _nbgrader_env() -> dict:
    env = dict(os.environ)
    # the kernel runs with the same Python as this process (rmteach importable)
    env["PATH"] = str(Path(sys.executable).parent) + os.pathsep + env.get("PATH", "")
    env.setdefault("PYDEVD_DISABLE_FILE_VALIDATION", "1")
    env["PYTHONWARNINGS"] = "ignore::DeprecationWarning"
    return env


def run_nbgrader(course: Path, *args: str, check: bool = True) -> subprocess.CompletedProcess:
    """Run ``nbgrader ARGS --CourseDirectory.root=COURSE`` in the course folder.

    Output is captured; with ``check`` a non-zero exit raises
    :class:`GradingError` with the end of nbgrader's log.
    """
    course = Path(course).resolve()
    cmd = [sys.executable, "-m", "nbgrader", *args, f"--CourseDirectory.root={course}"]
    proc = subprocess.run(cmd, cwd=course, env=_nbgrader_env(), capture_output=True, text=True)
    if check and proc.returncode != 0:
        tail = "\n".join((proc.stdout + proc.stderr).splitlines()[-40:])
        raise GradingError(f"nbgrader {' '.join(args)} failed (exit {proc.returncode}):\n{tail}")
    return proc


def _course_config(course: Path):
    from traitlets.config.loader import PyFileConfigLoader

    return PyFileConfigLoader("nbgrader_config.py", path=str(Path(course).resolve())).load_config()


def validate_notebook(path: Path, invert: bool = False, course: Optional[Path] = None) -> list[str]:
    """Run ``nbgrader validate`` (``--invert``) on one notebook; return the problems (empty: OK).

    Without ``invert``: every test cell must pass and no locked cell may have
    changed.  With ``invert`` (a release notebook): every test cell must fail.
    Uses the course's ``nbgrader_config.py`` (timeouts) when ``course`` is given.
    """
    from nbgrader.validator import Validator

    config = _course_config(course) if course else None
    validator = Validator(config=config) if config is not None else Validator()
    validator.invert = invert
    env = _nbgrader_env()
    old = {k: os.environ.get(k) for k in ("PATH", "PYTHONWARNINGS")}
    os.environ.update({k: env[k] for k in old})
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            results = validator.validate(str(path))
    finally:
        for k, v in old.items():
            if v is None:
                os.environ.pop(k, None)
            else:
                os.environ[k] = v
    problems = []
    for kind in ("type_changed", "changed", "failed", "passed"):
        for item in results.get(kind, []):
            first = item.get("source", "").splitlines()[:1]
            detail = item.get("raw_error", "").strip().splitlines()[-1:] if kind == "failed" else []
            problems.append(f"{kind}: {' '.join(first)[:90]!r} {' '.join(detail)}".rstrip())
    return problems


def generate_assignments(course: Path, assignments: Optional[Sequence[str]] = None, validate: bool = True, log=print) -> None:
    """``make assignments``: validate each source notebook, release it, validate --invert the release.

    Raises :class:`GradingError` naming every notebook that failed a check.
    """
    course = Path(course).resolve()
    names = list(assignments or course_assignments(course))
    problems: list[str] = []

    def check(folder: str, invert: bool) -> None:
        for name in names:
            for nb in _notebooks(course, folder, name):
                t0 = time.monotonic()
                bad = validate_notebook(nb, invert=invert, course=course)
                problems.extend(f"{folder}/{name}/{nb.name}: {p}" for p in bad)
                label = "validate --invert" if invert else "validate"
                log(f"{label:17} {folder}/{name}/{nb.name}: {'OK' if not bad else 'FAILED'} ({time.monotonic() - t0:.1f} s)")

    if validate:
        check("source", invert=False)
    # one nbgrader process for all of them (an assignment id may be a glob)
    for pattern in (["*"] if assignments is None else names):
        run_nbgrader(course, "generate_assignment", pattern, "--force")
    log(f"generate          release/<assignment>/ for {', '.join(names)}")
    if validate:
        check("release", invert=True)
    if problems:
        raise GradingError("assignment checks failed:\n  " + "\n  ".join(problems))


# -- sample submissions ----------------------------------------------------


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


def make_demo_submissions(course: Path, students: Mapping[str, tuple] = DEMO_STUDENTS) -> dict:
    """Write the demo students' submissions for every released assignment.

    Returns ``{(student, assignment): expected autograded points}``.
    """
    course = Path(course)
    expected = {}
    for assignment in course_assignments(course):
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


# -- grading ---------------------------------------------------------------


def submitted_pairs(course: Path) -> list[tuple[str, str]]:
    """(student, assignment) for every submission folder under ``submitted/``."""
    base = Path(course) / "submitted"
    if not base.is_dir():
        return []
    return sorted(
        (s.name, a.name) for s in base.iterdir() if s.is_dir() for a in s.iterdir() if a.is_dir()
    )


def autograde(course: Path, force: bool = False, log=print) -> list[str]:
    """``make autograde``: autograde every submission under ``submitted/``.

    One nbgrader run for all of them (a failing notebook does not stop the
    others).  Returns the problems: submissions with no autograded notebook
    afterwards, with nbgrader's reason.  Already autograded submissions are
    skipped unless ``force``.
    """
    course = Path(course).resolve()
    pairs = submitted_pairs(course)
    if not pairs:
        log(f"nothing to grade: no submissions in {course / 'submitted'}/<student>/<assignment>/")
        return []
    released = set(course_assignments(course))
    problems = [f"{s}/{a}: no such assignment in source/" for s, a in pairs if a not in released]
    pairs = [(s, a) for s, a in pairs if a in released]
    t0 = time.monotonic()
    # one nbgrader process for every submission (assignment id "*")
    proc = run_nbgrader(course, "autograde", "*", *(["--force"] if force else []), check=False)
    log(f"autograde         {len(pairs)} submission(s) ({time.monotonic() - t0:.1f} s)")
    out = (proc.stdout + proc.stderr).splitlines()
    for student, assignment in pairs:
        want = [p.name for p in _notebooks(course, "submitted", assignment, student)]
        have = {p.name for p in _notebooks(course, "autograded", assignment, student)}
        missing = [n for n in want if n not in have] or ([] if have else ["(no notebook)"])
        if missing:
            reason = [line.strip() for line in out if "ERROR" in line or "Error" in line]
            problems.append(f"{student}/{assignment}: not autograded {missing}" + (f" ({reason[-1]})" if reason else ""))
    return problems


def generate_feedback(course: Path, log=print) -> list[Path]:
    """``make feedback``: HTML feedback for every autograded submission (hidden tests removed)."""
    course = Path(course).resolve()
    if any((course / "autograded").glob("*/*/*.ipynb")):
        run_nbgrader(course, "generate_feedback", "*", "--force")
    files = sorted((course / "feedback").glob("*/*/*.html"))
    log(f"feedback: {len(files)} HTML file(s) in {course / 'feedback'}/<student>/<assignment>/")
    return files


GRADE_COLUMNS = [
    "student", "assignment", "status", "auto_score", "auto_max",
    "manual_score", "manual_max", "manual_pending", "score", "max_score",
]


def grade_rows(course: Path) -> list[dict]:
    """One row per (student, assignment) in the gradebook, with autograded and
    manually graded points apart.

    ``status``: ``graded``, ``needs manual grading``, ``missing`` (nothing
    submitted) or ``not autograded`` (submitted, but no autograded notebook:
    run ``make autograde`` and read its log).  Written answers not graded yet
    count 0 in ``score`` and are listed in ``manual_pending`` (points).
    """
    from nbgrader.api import Gradebook, MissingEntry

    course = Path(course).resolve()
    db = course / "gradebook.db"
    if not db.exists():
        raise GradingError(f"course: {course} has no gradebook.db yet (run make assignments first)")
    submitted = set(submitted_pairs(course))
    rows = []
    with Gradebook(f"sqlite:///{db}") as gb:
        students = sorted(s.id for s in gb.students) or []
        students = sorted(set(students) | {s for s, _ in submitted})
        for assignment in gb.assignments:
            max_auto = max_manual = 0.0
            for nb in assignment.notebooks:
                for cell in nb.grade_cells:
                    if cell.cell_type == "markdown":
                        max_manual += cell.max_score
                    else:
                        max_auto += cell.max_score
            for student in students:
                row = dict(student=student, assignment=assignment.name, auto_max=max_auto, manual_max=max_manual,
                           max_score=max_auto + max_manual, auto_score=0.0, manual_score=0.0, manual_pending=0.0)
                graded = any((course / "autograded" / student / assignment.name).glob("*.ipynb"))
                try:
                    sub = gb.find_submission(assignment.name, student)
                except MissingEntry:
                    sub = None
                if sub is None or not graded:
                    row["status"] = "not autograded" if (student, assignment.name) in submitted else "missing"
                else:
                    for nb in sub.notebooks:
                        for grade in nb.grades:
                            if grade.cell.cell_type == "markdown":
                                if grade.needs_manual_grade and grade.manual_score is None:
                                    row["manual_pending"] += grade.max_score
                                else:
                                    row["manual_score"] += grade.score
                            else:
                                row["auto_score"] += grade.score
                    row["status"] = "needs manual grading" if row["manual_pending"] else "graded"
                row["score"] = row["auto_score"] + row["manual_score"]
                rows.append(row)
    return rows


def write_csv(rows: Sequence[dict], path: Path) -> Path:
    """Write :func:`grade_rows` as CSV (columns :data:`GRADE_COLUMNS`, points as numbers)."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path, "w", newline="") as fh:
        writer = csv.DictWriter(fh, fieldnames=GRADE_COLUMNS)
        writer.writeheader()
        for row in rows:
            writer.writerow({k: (f"{row[k]:g}" if isinstance(row[k], float) else row[k]) for k in GRADE_COLUMNS})
    return path


def format_table(rows: Sequence[dict], expected: Optional[Mapping[tuple, float]] = None) -> str:
    """The grade table as text; with ``expected`` an extra column says whether
    each autograded score is the one the submission must get."""
    head = ["student", "assignment", "autograded", "written (manual)", "status"]
    if expected is not None:
        head.append("expected auto")
    lines = []
    for r in rows:
        line = [
            r["student"], r["assignment"], f"{r['auto_score']:g} / {r['auto_max']:g}",
            f"{r['manual_pending']:g} pts to grade" if r["manual_pending"] else f"{r['manual_score']:g} / {r['manual_max']:g}",
            r["status"],
        ]
        if expected is not None:
            want = expected.get((r["student"], r["assignment"]))
            line.append("-" if want is None else f"{want:g} {'ok' if abs(want - r['auto_score']) < 1e-9 else 'MISMATCH'}")
        lines.append(line)
    widths = [max(len(str(x)) for x in col) for col in zip(head, *lines)]
    fmt = "  ".join(f"{{:<{w}}}" for w in widths)
    out = [fmt.format(*head), fmt.format(*["-" * w for w in widths])]
    out += [fmt.format(*line) for line in lines]
    return "\n".join(line.rstrip() for line in out)


def demo(keep: Optional[Path] = None, log=print) -> int:
    """``make grade-demo``: the whole workflow on a temporary copy of the course.

    Releases every assignment, writes three made-up students' submissions (a
    full solution, the untouched release, every other answer), autogrades them
    in one batch, writes feedback and the CSV, and prints the grade table with
    the autograded score each must get (worked out from which answers it holds).
    Returns 0 if every score is the expected one.
    """
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
        problems = autograde(course, log=log)
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


def _course_arg(value: str) -> Path:
    path = Path(value).resolve()
    if not (path / "nbgrader_config.py").is_file():
        raise argparse.ArgumentTypeError(f"{path} has no nbgrader_config.py (not an nbgrader course directory)")
    return path


def main(argv: Optional[Sequence[str]] = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m rmteach.autograde", description=__doc__.split("\n")[0])
    sub = parser.add_subparsers(dest="command", required=True)
    for name, help_ in [
        ("assignments", "validate every source notebook, generate release/, validate --invert the release"),
        ("autograde", "autograde everything under submitted/<student>/<assignment>/"),
        ("feedback", "HTML feedback for every autograded submission (feedback/)"),
        ("grades", "print the grade table and write the CSV"),
    ]:
        p = sub.add_parser(name, help=help_)
        p.add_argument("--course", type=_course_arg, default=str(REPO_COURSE), help="course directory (default: %(default)s)")
        if name == "assignments":
            p.add_argument("--no-validate", action="store_true", help="skip nbgrader validate")
            p.add_argument("names", nargs="*", help="assignments (default: all in source/)")
        if name == "autograde":
            p.add_argument("--force", action="store_true", help="regrade submissions already autograded")
        if name == "grades":
            p.add_argument("--csv", type=Path, default=None, help="CSV path (default: COURSE/grades.csv)")
    p = sub.add_parser("demo", help="the whole workflow for three made-up students, in a temporary course copy")
    p.add_argument("--keep", type=Path, default=None, help="build the course copy here (an empty or new folder) and keep it")
    args = parser.parse_args(argv)
    try:
        if args.command == "assignments":
            unknown = sorted(set(args.names) - set(course_assignments(args.course)))
            if unknown:
                parser.error(f"names: no such assignment(s) {unknown} in {args.course / 'source'}")
            generate_assignments(args.course, args.names or None, validate=not args.no_validate)
            print(f"release: {args.course / 'release'}/<assignment>/ (give these to students)")
        elif args.command == "autograde":
            problems = autograde(args.course, force=args.force)
            for p in problems:
                print(f"PROBLEM {p}", file=sys.stderr)
            print(format_table(grade_rows(args.course)))
            return 1 if problems else 0
        elif args.command == "feedback":
            generate_feedback(args.course)
        elif args.command == "grades":
            rows = grade_rows(args.course)
            path = write_csv(rows, args.csv or args.course / "grades.csv")
            print(format_table(rows))
            print(f"CSV: {path}")
        elif args.command == "demo":
            return demo(args.keep)
    except GradingError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
