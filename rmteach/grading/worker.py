r"""One grading worker process: grades one submission at a time, in-process through nbgrader.

:func:`rmteach.grading.pipeline.autograde` starts one worker per core as
``python -m rmteach.grading.worker COURSE WORK_ROOT MODE LOG``.  Each imports
nbgrader once and then reads one JSON job per line on stdin (``[student,
assignment]``) and answers one JSON line on its original stdout.  A job copies
``submitted/<student>/<assignment>/`` to a working copy, checks and repairs it
(:mod:`rmteach.grading.repair`), autogrades it with nbgrader's own ``Autograde``
converter (``NbGraderAPI.autograde``), so each grade is what ``nbgrader autograde``
gives, and reads the scores back from the gradebook.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import sys
import time
import types
import warnings
from pathlib import Path
from typing import Optional

from rmteach.grading.course import _course_config, _nbgrader_env, gradebook_url
from rmteach.grading.gradebook import auto_scores, busy_url
from rmteach.grading.pipeline import SANDBOX_ENV

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
    cfg.CourseDirectory.db_url = busy_url(gradebook_url(Path(course)))
    # nbgrader reads submissions from the working copies, never from the course's submitted/
    cfg.CourseDirectory.submitted_directory = work_root
    _WORKER.update(course=Path(course), work_root=Path(work_root), api=NbGraderAPI(config=cfg),
                   db_url=cfg.CourseDirectory.db_url)


def _prepare(source_dir: Path, work_dir: Path, assignment: str):
    try:
        from rmteach.grading.repair import prepare_submission
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
        out["auto_score"], out["auto_max"] = auto_scores(_WORKER["db_url"], student, assignment)
        out["status"] = "graded"
        return out
    except Exception as exc:  # never let one submission take the worker down
        out["status"] = f"failed: {type(exc).__name__}: {exc}"[:300]
        return out
    finally:
        out["seconds"] = time.monotonic() - t0
        shutil.rmtree(work, ignore_errors=True)


def _worker_main(course: str, work_root: str, mode: str, log_path: str) -> int:
    """A worker process (``python -m rmteach.grading.worker ...``): one JSON job per
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


if __name__ == "__main__":
    sys.exit(_worker_main(*sys.argv[1:5]))
