r"""The instructor pipeline for the nbgrader course in ``assignments/`` and its CLI.

The Makefile calls::

    python -m rmteach.autograde assignments [--course DIR]   # validate sources, release, validate --invert
    python -m rmteach.autograde autograde   [--course DIR] [--force] [--workers N] [--sandbox auto|require|user|off]
    python -m rmteach.autograde feedback    [--course DIR]
    python -m rmteach.autograde grades      [--course DIR] [--csv FILE]
    python -m rmteach.autograde demo        [--keep DIR]  # three made-up students, whole pipeline

Small composable functions (:func:`copy_course`, :func:`build_submission`,
:func:`run_nbgrader`, :func:`grade_rows`, ...) do the work; nbgrader runs with an
explicit course root (``--CourseDirectory.root``).  The checks that test cells
call, and the nbgrader plug-ins, are in :mod:`rmteach.grading`.

:func:`autograde` grades a class in parallel: one long-lived worker process per
core (``python -m rmteach.autograde _worker``, nbgrader imported once) grades one
``(student, assignment)`` at a time through nbgrader's own ``Autograde`` converter
(``NbGraderAPI.autograde``), so each grade is what ``nbgrader autograde`` gives;
the workers share the course's ``gradebook.db`` (students are registered first by
the parent; SQLite's busy timeout serialises the short write transactions).
nbgrader reads each submission from a working copy in a temporary folder, which
:func:`rmteach.submissions.prepare_submission` checks and repairs first.  The
parent hands out the jobs, so it knows what each worker holds: a worker that dies
or overruns ``job_timeout`` is killed with its kernels and replaced, and only its
job fails.  Student kernels run in the bubblewrap sandbox of
:mod:`rmteach.sandbox` (wired in ``nbgrader_config.py``) when it is available.
"""

from __future__ import annotations

import argparse
import ast
import contextlib
import copy
import csv
import io
import json
import os
import re
import shutil
import subprocess
import sys
import tempfile
import time
import types
import warnings
from dataclasses import dataclass, field
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


# -- grading: parallel workers, one (student, assignment) job at a time -----

#: per-submission outcome of the last grading run, read by :func:`grade_rows`
STATUS_FILE = "autograde_status.json"
#: environment variable the course's nbgrader_config.py reads: "auto", "require" or "off"
SANDBOX_ENV = "RMTEACH_SANDBOX"
SANDBOX_MODES = ("auto", "require", "user", "off")
#: wall-clock seconds one submission may take before its worker is killed (the
#: sandbox kills a kernel after 900 s; nbgrader interrupts a cell after 60 s)
JOB_TIMEOUT = 1200.0
#: SQLite busy timeout (seconds) the workers use on the shared gradebook
DB_BUSY_TIMEOUT = 120


@dataclass
class JobResult:
    """The outcome of grading one ``submitted/<student>/<assignment>/``.

    ``status`` is ``"graded"`` or ``"failed: <reason>"``; ``notes`` holds one line
    per thing found or repaired (from :func:`rmteach.submissions.prepare_submission`)
    or per problem met while grading.
    """

    student: str
    assignment: str
    status: str
    notes: list[str] = field(default_factory=list)
    auto_score: Optional[float] = None
    auto_max: Optional[float] = None
    seconds: float = 0.0
    log: list[str] = field(default_factory=list)  # the end of nbgrader's log for this job

    @property
    def failed(self) -> bool:
        return self.status.startswith("failed")


def submitted_pairs(course: Path) -> list[tuple[str, str]]:
    """(student, assignment) for every submission folder under ``submitted/``."""
    base = Path(course) / "submitted"
    if not base.is_dir():
        return []
    return sorted(
        (s.name, a.name) for s in base.iterdir() if s.is_dir() for a in s.iterdir() if a.is_dir()
    )


def read_statuses(course: Path) -> dict[tuple[str, str], dict]:
    """``{(student, assignment): {"status": ..., "notes": [...], ...}}`` from the status file."""
    path = Path(course) / STATUS_FILE
    if not path.is_file():
        return {}
    try:
        data = json.loads(path.read_text())
    except (OSError, ValueError) as exc:
        raise GradingError(f"{path}: unreadable status file ({exc}); delete it and run make autograde again")
    return {tuple(key.split("/", 1)): value for key, value in data.items() if "/" in key}


def _write_statuses(course: Path, results: Sequence[JobResult]) -> Path:
    path = Path(course) / STATUS_FILE
    data = {f"{s}/{a}": v for (s, a), v in read_statuses(course).items()}
    for r in results:
        data[f"{r.student}/{r.assignment}"] = {
            "status": r.status, "notes": list(r.notes), "auto_score": r.auto_score, "auto_max": r.auto_max,
            "seconds": round(r.seconds, 2), "log": list(r.log),
            "when": time.strftime("%Y-%m-%d %H:%M:%S UTC", time.gmtime()),
        }
    tmp = path.with_suffix(".json.tmp")
    tmp.write_text(json.dumps(dict(sorted(data.items())), indent=1) + "\n")
    os.replace(tmp, path)
    return path


def _timestamp(folder: Path):
    from nbgrader.utils import parse_utc

    try:
        text = (folder / "timestamp.txt").read_text().strip()
        return parse_utc(text) if text else None
    except (OSError, ValueError):
        return None


def _needs_grading(course: Path, student: str, assignment: str) -> bool:
    """nbgrader's rule without --force: not autograded yet, or submitted again since."""
    dest = course / "autograded" / student / assignment
    if not dest.is_dir():
        return True
    new, old = _timestamp(course / "submitted" / student / assignment), _timestamp(dest)
    return new is not None and old is not None and new > old


def sandbox_mode(mode: Optional[str] = None) -> str:
    """The sandbox mode: ``mode``, else ``$RMTEACH_SANDBOX``, else ``"auto"``."""
    mode = (mode or os.environ.get(SANDBOX_ENV) or "auto").strip().lower()
    if mode not in SANDBOX_MODES:
        raise GradingError(f"sandbox: {mode!r} is not one of {', '.join(SANDBOX_MODES)}")
    return mode


def sandbox_state(course: Path, mode: str = "auto") -> tuple[bool, str]:
    """Load the course config with sandbox ``mode`` and say whether kernels run sandboxed.

    Returns ``(True, "sandbox: ...")`` or ``(False, "NOT SANDBOXED: ...")``; raises
    :class:`GradingError` when ``mode == "require"`` and the sandbox is unavailable.
    """
    from rmteach import sandbox

    mode = sandbox_mode(mode)
    old = os.environ.get(SANDBOX_ENV)
    os.environ[SANDBOX_ENV] = mode
    try:
        with contextlib.redirect_stderr(io.StringIO()):  # the config's own warning: said below
            cfg = _course_config(course)
    except sandbox.SandboxError as exc:
        raise GradingError(f"sandbox required ({SANDBOX_ENV}=require) but not available: {exc}")
    finally:
        if old is None:
            os.environ.pop(SANDBOX_ENV, None)
        else:
            os.environ[SANDBOX_ENV] = old
    names = [str(p) for p in cfg.Autograde.get("autograde_preprocessors", [])]
    if sandbox.SANDBOXED_EXECUTE in names:
        if cfg.SandboxKernelManager.get("mechanism", "bwrap") == "user":
            ok, why = sandbox.user_sandbox_available()
            return True, f"sandbox: grader user ({why})"
        ok, why = sandbox.sandbox_available()
        return True, f"sandbox: bubblewrap ({why})"
    if mode == "off":
        return False, (f"NOT SANDBOXED: turned off ({SANDBOX_ENV}=off / SANDBOX=off); "
                       "student code runs with the grader's permissions")
    ok, why = sandbox.sandbox_available()
    why = why if not ok else f"{course / 'nbgrader_config.py'} does not call rmteach.sandbox.configure_nbgrader"
    return False, f"NOT SANDBOXED: {why}. Student code runs with the grader's permissions."


# -- the worker side ----------------------------------------------------------

_WORKER: dict = {}


def _fast_shared_sqlite() -> None:
    """Every SQLite connection this process opens: write-ahead log, ``synchronous=NORMAL``.

    nbgrader commits some 40 times per submission.  With the default rollback
    journal every commit holds the database lock across an fsync, so two workers
    keep running into each other's lock and SQLite's busy handler sleeps (in
    steps of up to 100 ms).  In WAL mode readers never wait for the writer and a
    commit is an append; with ``synchronous=NORMAL`` a power cut can lose the
    last commits, never corrupt the file (and a rerun regrades what was lost).
    """
    from sqlalchemy import event
    from sqlalchemy.engine import Engine

    if getattr(_fast_shared_sqlite, "done", False):
        return

    @event.listens_for(Engine, "connect")
    def _pragmas(dbapi_connection, _record) -> None:  # pragma: no cover - exercised by every grading test
        if type(dbapi_connection).__module__.startswith("sqlite3"):
            cur = dbapi_connection.cursor()
            cur.execute("PRAGMA journal_mode=WAL")
            cur.execute("PRAGMA synchronous=NORMAL")
            cur.close()

    _fast_shared_sqlite.done = True


def _worker_setup(course: str, work_root: str, mode: str, log_path: Optional[str]) -> None:
    """Once per worker process: quiet output, environment, course config, nbgrader API."""
    if log_path:  # the worker's (and its kernels') stray output goes to a file, not the progress display
        fd = os.open(log_path, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o600)
        os.dup2(fd, 1)
        os.dup2(fd, 2)
        os.close(fd)
    os.environ.update(_nbgrader_env())
    os.environ[SANDBOX_ENV] = mode
    # one process per core already: a kernel's BLAS / OpenMP gets one thread, not one per core
    for var in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS"):
        os.environ.setdefault(var, "1")
    warnings.simplefilter("ignore")
    from nbgrader.apps.api import NbGraderAPI

    _fast_shared_sqlite()

    cfg = _course_config(Path(course))
    cfg.CourseDirectory.root = course
    cfg.CourseDirectory.db_url = f"sqlite:///{Path(course) / 'gradebook.db'}?timeout={DB_BUSY_TIMEOUT}"
    # nbgrader reads submissions from the working copies, never from the course's submitted/
    cfg.CourseDirectory.submitted_directory = work_root
    _WORKER.update(course=Path(course), work_root=Path(work_root), api=NbGraderAPI(config=cfg),
                   db_url=cfg.CourseDirectory.db_url)


def _prepare(source_dir: Path, work_dir: Path, assignment: str):
    try:
        from rmteach.submissions import prepare_submission
    except ImportError:  # pragma: no cover - the module ships with rmteach
        return types.SimpleNamespace(gradable=True, notes=[])
    return prepare_submission(source_dir, work_dir, assignment)


def _log_reason(text: str) -> str:
    """The most telling line of nbgrader's log for a failed job."""
    lines = [ln.strip() for ln in text.splitlines() if ln.strip()]
    checks = [
        (r"DeadKernelError|Kernel died|kernel died", "the kernel died (the student's code ended the Python process)"),
        (r"UnresponsiveKernelError|kernel became unresponsive", "the kernel became unresponsive and could not be interrupted"),
        (r"CellTimeoutError",
         "a cell ran past the time limit and could not be interrupted"),
        (r"database is locked", "the gradebook was locked (try again)"),
        (r"NotJSONError|Notebook does not appear to be JSON|Unreadable Notebook", "a notebook is not valid JSON"),
        (r"SchemaTooNewError|SchemaTooOldError|metadata format", "nbgrader metadata of an unsupported version"),
        (r"No notebooks found|No notebooks were matched", "no notebook of the assignment was submitted"),
    ]
    for pattern, reason in checks:
        if any(re.search(pattern, ln) for ln in lines):
            return reason
    generic = ("There was an error processing", "Please see the", "NbGraderException")
    exceptions = [ln for ln in lines if re.match(r"^[\w.]+(Error|Exception|Exit)\b", ln) and not any(g in ln for g in generic)]
    errors = [ln for ln in lines if ln.startswith("[ERROR]") and not any(g in ln for g in generic)
              and "Traceback" not in ln]
    last = (exceptions or errors or ["nbgrader failed without a message"])[-1]
    return re.sub(r"^\[(ERROR|WARNING|CRITICAL)\]\s*", "", last)[:200]


def _log_lines(text: str, n: int = 40) -> list[str]:
    """The lines of nbgrader's log worth keeping: warnings, errors and exception lines."""
    keep = [ln.rstrip() for ln in text.splitlines()
            if ln.startswith(("[ERROR]", "[WARNING]", "[CRITICAL]")) or re.match(r"^\s*[\w.]+(Error|Exception|Exit)\b: ", ln)]
    return keep[-n:]


def _scores(db: Path, student: str, assignment: str) -> tuple[Optional[float], Optional[float]]:
    """(autograded points, autograded maximum) of one submission, read straight from SQLite."""
    import sqlite3

    con = sqlite3.connect(f"file:{db}?mode=ro", uri=True, timeout=DB_BUSY_TIMEOUT)
    try:
        row = con.execute(
            """SELECT count(g.id), sum(CASE WHEN g.manual_score IS NOT NULL THEN g.manual_score + coalesce(g.extra_credit, 0)
                                 WHEN g.auto_score IS NOT NULL THEN g.auto_score + coalesce(g.extra_credit, 0)
                                 ELSE 0 END),  -- nbgrader's Grade.score
                      sum(gc.max_score)
               FROM grade g JOIN submitted_notebook sn ON g.notebook_id = sn.id
               JOIN submitted_assignment sa ON sn.assignment_id = sa.id JOIN assignment a ON sa.assignment_id = a.id
               JOIN grade_cells gc ON g.cell_id = gc.id
               WHERE a.name = ? AND sa.student_id = ? AND gc.cell_type != 'markdown'""",
            (assignment, student),
        ).fetchone()
    finally:
        con.close()
    return (None, None) if not row or not row[0] else (float(row[1]), float(row[2]))


def _grade_job(student: str, assignment: str) -> dict:
    """Grade one submission in this worker: working copy, prepare, nbgrader, scores."""
    t0 = time.monotonic()
    course, work_root, api = _WORKER["course"], _WORKER["work_root"], _WORKER["api"]
    out = dict(student=student, assignment=assignment, notes=[], log=[])
    src = course / "submitted" / student / assignment
    work = work_root / student / assignment
    dest = course / "autograded" / student / assignment
    if work.exists():
        shutil.rmtree(work)
    try:
        shutil.copytree(src, work, symlinks=False, ignore=shutil.ignore_patterns(".ipynb_checkpoints", "__pycache__"))
    except (OSError, shutil.Error) as exc:
        out.update(status=f"failed: cannot copy the submission ({type(exc).__name__}: {exc})"[:300])
        return out
    try:
        prep = _prepare(course / "source" / assignment, work, assignment)
        out["notes"] = [str(n) for n in prep.notes]
        if not prep.gradable:
            reason = prep.notes[0] if prep.notes else "the submission cannot be graded"
            out["status"] = f"failed: {reason}"
            if dest.exists():  # the autograded copy of an older submission no longer stands
                shutil.rmtree(dest)
            return out
        result = api.autograde(assignment, student, force=True, create=True)
        text = (result.get("log") or "") + "\n" + (result.get("error") or "")
        out["log"] = _log_lines(text)
        if not result.get("success"):
            out["status"] = f"failed: {_log_reason(text)}"
            return out
        want = sorted(p.name for p in work.glob("*.ipynb"))
        have = {p.name for p in dest.glob("*.ipynb")}
        lost = [n for n in want if n not in have]
        if lost:
            out["status"] = f"failed: nbgrader wrote no autograded copy of {', '.join(lost)}"
            return out
        for line in text.splitlines():
            if "No submitted file" in line:
                out["notes"].append(f"missing notebook {Path(line.split(':', 1)[-1].strip()).name}: 0 points for it")
        out["auto_score"], out["auto_max"] = _scores(course / "gradebook.db", student, assignment)
        out["status"] = "graded"
        return out
    except Exception as exc:  # never let one submission take the worker down
        out["status"] = f"failed: {type(exc).__name__}: {exc}"[:300]
        return out
    finally:
        out["seconds"] = time.monotonic() - t0
        shutil.rmtree(work, ignore_errors=True)


def _worker_main(course: str, work_root: str, mode: str, log_path: str) -> int:
    """A worker process (``python -m rmteach.autograde _worker ...``): one JSON job per
    line on stdin (``[student, assignment]``), one JSON reply per line on its
    original stdout; everything else it (or a kernel) prints goes to ``log_path``."""
    proto = os.fdopen(os.dup(1), "w", buffering=1)
    try:
        _worker_setup(course, work_root, mode, log_path)
    except BaseException as exc:  # noqa: BLE001 - reported to the parent
        proto.write(json.dumps(["setup-error", f"{type(exc).__name__}: {exc}"]) + "\n")
        return 1
    proto.write(json.dumps(["ready", os.getpid()]) + "\n")
    for line in sys.stdin:
        if not line.strip():
            break
        student, assignment = json.loads(line)
        proto.write(json.dumps(["done", _grade_job(student, assignment)]) + "\n")
    return 0


# -- the parent side ----------------------------------------------------------


def _descendants(pid: int) -> list[int]:
    """Every live process below ``pid`` (children, grandchildren, ...), from /proc."""
    children: dict[int, list[int]] = {}
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            with open(f"/proc/{entry}/stat") as fh:
                stat = fh.read()
        except OSError:
            continue
        ppid = int(stat.rsplit(")", 1)[1].split()[1])
        children.setdefault(ppid, []).append(int(entry))
    out, todo = [], list(children.get(pid, []))
    while todo:
        p = todo.pop()
        out.append(p)
        todo.extend(children.get(p, []))
    return out


def _kill_tree(proc) -> None:
    """Kill a worker process and everything it started (its kernels, sandboxes)."""
    import signal

    pids = _descendants(proc.pid) if proc.pid else []
    for pid in [proc.pid, *pids]:
        try:
            os.kill(pid, signal.SIGKILL)
        except (ProcessLookupError, PermissionError, TypeError):
            pass
    try:
        proc.wait(timeout=10)
    except Exception:  # noqa: BLE001 - best effort
        pass


class _Worker:
    """One worker process, spoken to over its stdin/stdout (JSON lines)."""

    def __init__(self, args: Sequence[str], log_path: Path):
        self.log_path = log_path
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "rmteach.autograde", "_worker", *args, str(log_path)],
            stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, env=_nbgrader_env(),
            cwd=str(log_path.parent),
        )
        self.buffer = b""
        self.job: Optional[tuple[str, str]] = None
        self.started = 0.0
        self.ready = False

    def fileno(self) -> int:
        return self.proc.stdout.fileno()

    def send(self, job: tuple[str, str]) -> None:
        self.job, self.started = job, time.monotonic()
        self.proc.stdin.write((json.dumps(list(job)) + "\n").encode())
        self.proc.stdin.flush()

    def messages(self) -> list:
        """The complete messages readable now; ``[["died", None]]`` at end of file."""
        chunk = os.read(self.fileno(), 1 << 16)
        if not chunk:
            return [["died", None]]
        self.buffer += chunk
        *lines, self.buffer = self.buffer.split(b"\n")
        return [json.loads(line) for line in lines if line.strip()]

    def log_tail(self, n: int = 20) -> list[str]:
        try:
            return self.log_path.read_text(errors="replace").splitlines()[-n:]
        except OSError:
            return []

    def close(self) -> None:
        for f in (self.proc.stdin, self.proc.stdout):
            try:
                f.close()
            except OSError:
                pass


def _run_jobs(course: Path, jobs: Sequence[tuple[str, str]], workers: int, mode: str, work_root: Path,
              job_timeout: float, on_done: Callable[[JobResult], None]) -> None:
    """Grade ``jobs`` on ``workers`` worker processes; call ``on_done`` once per job, in the order they finish.

    The parent hands each worker one job at a time, so it always knows which job
    a worker holds: a worker that dies, or holds a job past ``job_timeout``, is
    killed with every process it started, its job is reported failed, and a new
    worker takes its place.
    """
    from multiprocessing.connection import wait

    logs = work_root.parent / "workers"
    logs.mkdir(exist_ok=True)
    todo = list(jobs)
    pool: list[_Worker] = []
    retried: set[tuple[str, str]] = set()
    started = setup_failures = 0

    def new_worker() -> None:
        nonlocal started
        started += 1
        pool.append(_Worker((str(course), str(work_root), mode), logs / f"worker-{started}.log"))

    def retire(w: _Worker, why: Optional[str]) -> None:
        """Kill ``w`` (and its kernels); report its job failed with ``why``; start a new worker if work is left."""
        nonlocal setup_failures
        job = w.job
        _kill_tree(w.proc)
        pool.remove(w)
        w.close()
        if job is not None:
            on_done(JobResult(job[0], job[1], f"failed: {why}", seconds=time.monotonic() - w.started,
                              log=w.log_tail()))
        elif not w.ready:
            setup_failures += 1
            if setup_failures >= 3:
                raise GradingError(f"grading workers cannot start: {why}; worker log: " + " | ".join(w.log_tail(5)))
        if todo and len(pool) < workers:
            new_worker()

    try:
        for _ in range(min(workers, len(todo))):
            new_worker()
        while pool and (todo or any(w.job for w in pool)):
            for w in pool:
                if w.ready and w.job is None and todo:
                    w.send(todo.pop(0))
            ready = wait(pool, timeout=1.0)
            for w in list(pool):
                if w not in ready:
                    if w.job is not None and time.monotonic() - w.started > job_timeout:
                        retire(w, f"took longer than {job_timeout:g} s (its worker and kernel were killed)")
                    continue
                for message in w.messages():
                    if message[0] == "ready":
                        w.ready = True
                    elif message[0] == "done":
                        d, w.job = message[1], None
                        key = (d["student"], d["assignment"])
                        if d["status"].startswith("failed: the gradebook was locked") and key not in retried:
                            retried.add(key)  # another worker held the lock too long: once more, at the end
                            todo.append(key)
                        else:
                            on_done(JobResult(**d))
                    elif message[0] == "setup-error":
                        retire(w, message[1])
                        break
                    else:  # end of file: the worker process died
                        try:
                            w.proc.wait(timeout=5)
                        except subprocess.TimeoutExpired:
                            pass
                        retire(w, f"the grading worker died (exit code {w.proc.returncode})")
                        break
        for student, assignment in todo:  # only when no worker could be started
            on_done(JobResult(student, assignment, "failed: no grading worker left"))
    finally:
        for w in pool:
            try:
                w.proc.stdin.write(b"\n")
                w.proc.stdin.flush()
            except (OSError, ValueError):
                pass
        for w in pool:
            try:
                w.proc.wait(timeout=10)
            except subprocess.TimeoutExpired:
                _kill_tree(w.proc)
            w.close()


def _register(course: Path, jobs: Sequence[tuple[str, str]]) -> set[str]:
    """Add every student to the gradebook (one writer, before the workers start);
    return the assignments the gradebook knows (released ones)."""
    from nbgrader.api import Gradebook

    with Gradebook(f"sqlite:///{course / 'gradebook.db'}?timeout={DB_BUSY_TIMEOUT}") as gb:
        for student in sorted({s for s, _ in jobs}):
            gb.update_or_create_student(student)
        return {a.name for a in gb.assignments}


def autograde(course: Path, force: bool = False, workers: Optional[int] = None, sandbox: str = "auto",
              log=print, job_timeout: float = JOB_TIMEOUT) -> list[JobResult]:
    """``make autograde``: grade every ``submitted/<student>/<assignment>/`` in parallel.

    ``workers`` long-lived worker processes (default: one per core) each import
    nbgrader once and grade one submission at a time, in-process through
    nbgrader's API, on the shared ``gradebook.db`` (students are registered first,
    by this process; workers wait up to :data:`DB_BUSY_TIMEOUT` s for the lock).
    nbgrader grades a *working copy* of each submission (in a temporary folder),
    which :func:`rmteach.submissions.prepare_submission` first checks and repairs;
    the student's files in ``submitted/`` are never changed.

    A worker that dies, or a job that runs past ``job_timeout`` seconds, is killed
    with its kernel and replaced; the job is recorded as failed and the others go
    on.  Logs the sandbox state, one progress line per finished job and one line
    per problem; writes every job's status to :data:`STATUS_FILE`.  Submissions
    already autograded (and not submitted again since) are skipped unless
    ``force``.  ``sandbox``: ``"auto"`` (sandbox when available, say loudly when
    not), ``"require"`` (raise :class:`GradingError` when unavailable), ``"off"``.
    """
    course = Path(course).resolve()
    mode = sandbox_mode(sandbox)
    sandboxed, message = sandbox_state(course, mode)
    log(message)
    pairs = submitted_pairs(course)
    if not pairs:
        log(f"nothing to grade: no submissions in {course / 'submitted'}/<student>/<assignment>/")
        return []
    if not (course / "gradebook.db").exists():
        raise GradingError(f"course: {course} has no gradebook.db yet (run make assignments first)")
    known = _register(course, pairs)
    results: list[JobResult] = []
    jobs: list[tuple[str, str]] = []
    previous = read_statuses(course)
    for student, assignment in pairs:
        if assignment not in known:
            results.append(JobResult(student, assignment, f"failed: no released assignment {assignment!r} "
                                     "(not in the gradebook: run make assignments, or rename the folder)"))
        elif force or _needs_grading(course, student, assignment) or previous.get((student, assignment), {}).get(
                "status", "graded").startswith("failed"):
            jobs.append((student, assignment))
    skipped = len(pairs) - len(jobs) - len(results)
    n_workers = max(1, min(workers or _cpu_count(), len(jobs) or 1))
    t0 = time.monotonic()
    total = len(jobs) + len(results)
    if skipped:
        log(f"skipping {skipped} submission(s) already autograded (--force / FORCE=1 regrades them)")
    log(f"grading {len(jobs)} submission(s) with {n_workers} worker process(es)")
    failures = 0

    def progress(r: JobResult) -> None:
        nonlocal failures
        results.append(r)
        failures += r.failed
        score = f" ({r.auto_score:g}/{r.auto_max:g})" if r.auto_score is not None and r.auto_max is not None else ""
        _write_statuses(course, [r])  # at once: a run stopped half-way keeps what it found
        log(f"[{len(results)}/{total}] {r.student}/{r.assignment} {r.status}{score} — failures so far: {failures}")
        for note in r.notes:
            log(f"    {r.student}/{r.assignment}: {note}")

    early, results = results, []
    for r in early:
        progress(r)
    if jobs:
        tmp = Path(tempfile.mkdtemp(prefix="rmteach-autograde-"))
        try:
            work_root = tmp / "submitted"
            work_root.mkdir()
            _run_jobs(course, jobs, n_workers, ("user" if mode == "user" else "require") if sandboxed else "off", work_root, job_timeout, progress)
        finally:
            shutil.rmtree(tmp, ignore_errors=True)
    _write_statuses(course, results)
    log(f"autograde         {len(results) - failures} graded, {failures} failed, {skipped} skipped "
        f"({time.monotonic() - t0:.1f} s, {n_workers} worker(s), {'sandboxed' if sandboxed else 'NOT sandboxed'})")
    return results


def _cpu_count() -> int:
    try:
        return len(os.sched_getaffinity(0))
    except (AttributeError, OSError):
        return os.cpu_count() or 1


def gradebook_snapshot(db: Path) -> dict[str, list[tuple]]:
    """Every submission row of a gradebook, by natural keys (no database ids), sorted.

    Tables ``student``, ``submitted_assignment``, ``submitted_notebook``, ``grade``
    and ``comment``; lists, not sets, so a doubled row shows.  Two gradebooks
    that hold the same grades give equal snapshots (timestamps included).
    """
    import sqlite3

    queries = {
        "student": "SELECT id FROM student",
        "submitted_assignment": """SELECT a.name, sa.student_id, sa.timestamp, sa.extension
            FROM submitted_assignment sa JOIN assignment a ON sa.assignment_id = a.id""",
        "submitted_notebook": """SELECT a.name, sa.student_id, n.name, sn.flagged, sn.late_submission_penalty
            FROM submitted_notebook sn JOIN submitted_assignment sa ON sn.assignment_id = sa.id
            JOIN assignment a ON sa.assignment_id = a.id JOIN notebook n ON sn.notebook_id = n.id""",
        "grade": """SELECT a.name, sa.student_id, n.name, c.name, g.auto_score, g.manual_score, g.extra_credit,
                   g.needs_manual_grade
            FROM grade g JOIN submitted_notebook sn ON g.notebook_id = sn.id
            JOIN submitted_assignment sa ON sn.assignment_id = sa.id JOIN assignment a ON sa.assignment_id = a.id
            JOIN notebook n ON sn.notebook_id = n.id JOIN base_cell c ON g.cell_id = c.id""",
        "comment": """SELECT a.name, sa.student_id, n.name, c.name, m.auto_comment, m.manual_comment
            FROM comment m JOIN submitted_notebook sn ON m.notebook_id = sn.id
            JOIN submitted_assignment sa ON sn.assignment_id = sa.id JOIN assignment a ON sa.assignment_id = a.id
            JOIN notebook n ON sn.notebook_id = n.id JOIN base_cell c ON m.cell_id = c.id""",
    }
    con = sqlite3.connect(f"file:{Path(db)}?mode=ro", uri=True)
    try:
        out = {}
        for table, query in queries.items():
            rows = sorted(con.execute(query).fetchall(), key=repr)
            (count,) = con.execute(f"SELECT count(*) FROM {table}").fetchone()
            if count != len(rows):
                raise GradingError(f"{db}: {count - len(rows)} row(s) of {table} point at no submission")
            out[table] = rows
        return out
    finally:
        con.close()


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
    "manual_score", "manual_max", "manual_pending", "score", "max_score", "notes",
]


def grade_rows(course: Path) -> list[dict]:
    """One row per (student, assignment) in the gradebook, with autograded and
    manually graded points apart.

    ``status`` tells a real 0 apart from work that could not be graded:

    * ``graded`` / ``needs manual grading``: autograded (written answers not graded
      yet count 0 in ``score`` and are listed in ``manual_pending``, in points);
    * ``failed: <reason>``: submitted, but the last ``make autograde`` could not
      grade it (unreadable notebook, kernel died, ...): scores 0, not a real 0;
    * ``not autograded``: submitted, not graded yet (run ``make autograde``);
    * ``not submitted``: nothing under ``submitted/<student>/<assignment>/``.

    ``notes``: what :func:`autograde` found or repaired in the submission ("; "-separated).
    """
    from nbgrader.api import Gradebook, MissingEntry

    course = Path(course).resolve()
    db = course / "gradebook.db"
    if not db.exists():
        raise GradingError(f"course: {course} has no gradebook.db yet (run make assignments first)")
    submitted = set(submitted_pairs(course))
    statuses = read_statuses(course)
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
                state = statuses.get((student, assignment.name), {})
                row["notes"] = "; ".join(state.get("notes", []))
                if (student, assignment.name) not in submitted:
                    row["status"], row["notes"] = "not submitted", ""
                elif str(state.get("status", "")).startswith("failed"):
                    row["status"] = state["status"]
                elif sub is None or not graded:
                    row["status"] = "not autograded"
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
            r["status"] if len(r["status"]) <= 70 else r["status"][:67] + "...",
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
        problems = [f"{r.student}/{r.assignment}: {r.status}" for r in autograde(course, log=log) if r.failed]
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


def _positive_int(value: str) -> int:
    try:
        n = int(value)
    except ValueError:
        n = 0
    if n < 1:
        raise argparse.ArgumentTypeError(f"{value!r} is not a whole number >= 1")
    return n


def main(argv: Optional[Sequence[str]] = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    if argv[:1] == ["_worker"]:  # a grading worker started by autograde() (internal)
        return _worker_main(*argv[1:5])
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
            p.add_argument("--workers", type=_positive_int, default=None,
                           help="worker processes grading in parallel (default: one per core)")
            p.add_argument("--sandbox", choices=SANDBOX_MODES, default=None,
                           help=f"run student kernels sandboxed: auto (default, or ${SANDBOX_ENV}), require, user, off")
            p.add_argument("--job-timeout", type=float, default=JOB_TIMEOUT,
                           help="seconds one submission may take before it is stopped and recorded as failed")
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
            results = autograde(args.course, force=args.force, workers=args.workers, sandbox=args.sandbox,
                                job_timeout=args.job_timeout)
            print(format_table(grade_rows(args.course)))
            failed = [r for r in results if r.failed]
            for r in failed:
                print(f"FAILED {r.student}/{r.assignment}: {r.status[len('failed: '):]}", file=sys.stderr)
            if failed:
                print(f"{len(failed)} submission(s) could not be graded: status 'failed: ...' in the grade export "
                      f"(details: {args.course / STATUS_FILE})", file=sys.stderr)
            return 1 if failed else 0
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
