r"""One grading worker process: grades one submission at a time, in-process through nbgrader.

:func:`rmteach.grading.pipeline.autograde` starts one worker per core: forked
from the pipeline's process (:class:`ForkedWorker`, nbgrader already imported
there: some 3 s of CPU saved per worker) or, when that process runs other threads,
as ``python -m rmteach.grading.worker COURSE WORK_ROOT MODE LOG``.  A worker reads
one JSON job per line on stdin (``[student, assignment]``, optionally followed by
the student and assignment it is meant to get next) and answers one JSON line on
its original stdout.  A job copies ``submitted/<student>/<assignment>/`` to a
working copy, checks and repairs it (:mod:`rmteach.grading.repair`), autogrades
it with nbgrader's own ``Autograde`` converter (``NbGraderAPI.autograde``), so each
grade is what ``nbgrader autograde`` gives, and reads the scores back from the
gradebook.

Where a submission's time goes, and what a worker does about it
(``bench/grading.py`` prints the figures):

* the sandboxed kernel's start: the next notebook's kernel is launched while the
  current one runs (:mod:`rmteach.grading.kernel_prestart`), by a launcher without
  ipykernel's debugger (:mod:`rmteach.grading.grading_kernel`);
* the kernel's stop: once the last cell has run, the sandbox is killed rather than
  asked to shut down and waited for;
* nbgrader opening the gradebook some ten times per submission, and checking cell
  metadata against a schema it re-checks each time: once per worker
  (:mod:`rmteach.grading.worker_cache`).
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
from rmteach.grading import kernel_prestart, sandbox, worker_cache
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
    worker_cache.install()

    cfg = _course_config(Path(course))
    cfg.CourseDirectory.root = course
    cfg.CourseDirectory.db_url = busy_url(gradebook_url(Path(course)))
    # The grade is read off the executed notebook: once its last cell has run, the kernel's
    # sandbox is killed at once rather than asked to shut down (nbclient then polls for
    # its exit, some 0.3 s per submission).  Plain nbgrader keeps its graceful default.
    cfg.Execute.shutdown_kernel = "immediate"
    # bubblewrap kernels: each notebook gets one launched while the previous notebook ran
    steps = [str(x) for x in cfg.Autograde.get("autograde_preprocessors", [])]
    if sandbox.SANDBOXED_EXECUTE in steps and cfg.SandboxKernelManager.get("mechanism", "bwrap") == "bwrap":
        cfg.Autograde.autograde_preprocessors = [
            kernel_prestart.PRESTARTED_EXECUTE if x == sandbox.SANDBOXED_EXECUTE else x for x in steps]
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



def _grade_job(student: str, assignment: str, hint: Optional[tuple[str, str]] = None) -> dict:
    """Grade one submission in this worker: working copy, prepare, nbgrader, scores.

    ``hint``: the (student, assignment) the pipeline means to hand this worker next,
    whose first kernel is launched while this submission's last notebook runs.
    """
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
        upcoming = [str(dest)] * len(list(work.glob("*.ipynb")))
        if hint:
            upcoming.append(str(course / "autograded" / hint[0] / hint[1]))
        kernel_prestart.plan[:] = upcoming
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
        job = json.loads(line)  # [student, assignment] or [student, assignment, next student, next assignment]
        hint = (job[2], job[3]) if len(job) >= 4 and job[2] else None
        proto.write(json.dumps(["done", _grade_job(job[0], job[1], hint)]) + "\n")
    kernel_prestart.discard()
    return 0


# -- the parent side ----------------------------------------------------------

#: what a worker imports before its first job; :func:`fork_worker` imports it once, in the parent
PRELOAD = (
    "nbgrader.apps.api", "nbgrader.converters.autograde", "nbgrader.preprocessors", "nbclient", "nbconvert",
    "jupyter_client.manager", "sqlalchemy", "jsonschema", "rmteach.grading.preprocessors", "rmteach.grading.repair",
)


class ForkedWorker:
    """A worker process forked from this one, spoken to like a ``subprocess.Popen`` with pipes.

    ``pid``, ``stdin`` (binary, write), ``stdout`` (binary, read), ``returncode``,
    ``poll()`` and ``wait(timeout)`` (raising ``subprocess.TimeoutExpired``).
    """

    def __init__(self, args, log_path: Path):
        import importlib

        for name in PRELOAD:  # once, here: every later fork starts with them imported
            importlib.import_module(name)
        job_r, job_w = os.pipe()
        reply_r, reply_w = os.pipe()
        sys.stdout.flush()
        sys.stderr.flush()
        pid = os.fork()
        if pid == 0:  # the worker: stdin = jobs, stdout = replies, nothing else of the parent's
            code = 1
            try:
                import asyncio

                os.dup2(job_r, 0)
                os.dup2(reply_w, 1)
                devnull = os.open(os.devnull, os.O_WRONLY)
                os.dup2(devnull, 2)
                for fd in (job_r, reply_w, job_w, reply_r, devnull):
                    os.close(fd)
                os.chdir(str(log_path.parent))
                sys.stdin = open(0, "r", closefd=False)
                # an event loop of the parent's (its epoll is shared with the parent) is never used here
                asyncio.set_event_loop(asyncio.new_event_loop())
                code = _worker_main(*[str(a) for a in args], str(log_path))
            except BaseException:  # noqa: BLE001 - the parent sees the worker die
                code = 1
            finally:
                os._exit(code)
        os.close(job_r)
        os.close(reply_w)
        self.pid = pid
        self.stdin = os.fdopen(job_w, "wb")
        self.stdout = os.fdopen(reply_r, "rb", buffering=0)
        self.returncode: Optional[int] = None

    def poll(self) -> Optional[int]:
        if self.returncode is None:
            try:
                pid, status = os.waitpid(self.pid, os.WNOHANG)
            except ChildProcessError:
                self.returncode = -1
                return self.returncode
            if pid:
                self.returncode = os.waitstatus_to_exitcode(status)
        return self.returncode

    def wait(self, timeout: Optional[float] = None) -> int:
        import subprocess

        end = None if timeout is None else time.monotonic() + timeout
        while self.poll() is None:
            if end is not None and time.monotonic() > end:
                raise subprocess.TimeoutExpired(f"grading worker {self.pid}", timeout)
            time.sleep(0.02)
        return self.returncode


def can_fork() -> bool:
    """Whether workers may be forked from this process: POSIX, and no other thread running.

    (A fork copies only the calling thread; a lock another thread holds would stay
    locked in the worker.)  Otherwise workers start as ``python -m rmteach.grading.worker``.
    """
    import threading

    return hasattr(os, "fork") and threading.active_count() == 1


if __name__ == "__main__":
    sys.exit(_worker_main(*sys.argv[1:5]))
