r"""The parallel grading pipeline: ``make autograde`` grades a class, sandboxed, one worker per core.

:func:`autograde` grades every ``submitted/<student>/<assignment>/`` in parallel:
one long-lived worker process per core (:mod:`rmteach.grading.worker`, forked
from this process once nbgrader is imported, so it is imported once) grades one
``(student, assignment)`` at a time; the workers share the course's gradebook
(students are registered first, by this process; an SQLite gradebook is in WAL
mode).  This process hands out the jobs, so it knows what each worker holds: a
worker that dies or overruns ``job_timeout`` is killed with its kernels and
replaced, and only its job fails.  With each job it names the job the worker
gets next, whose sandboxed kernel the worker starts while the current notebook
runs (:mod:`rmteach.grading.kernel_prestart`).  Student kernels run in the
sandbox of :mod:`rmteach.grading.sandbox` (wired in ``nbgrader_config.py``) when
it is available; :func:`sandbox_state` says which.
"""

from __future__ import annotations

import contextlib
import io
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable, Optional, Sequence

from rmteach.grading.course import (
    GradingError, _course_config, _nbgrader_env, _write_statuses, gradebook_url, read_statuses, submitted_pairs,
)
from rmteach.grading.gradebook import busy_url, gradebook_exists

#: per-submission outcome of the last grading run, read by :func:`grade_rows`
STATUS_FILE = "autograde_status.json"
#: environment variable the course's nbgrader_config.py reads: "auto", "require" or "off"
SANDBOX_ENV = "RMTEACH_SANDBOX"
SANDBOX_MODES = ("auto", "require", "user", "off")
#: wall-clock seconds one submission may take before its worker is killed (the
#: sandbox kills a kernel after 900 s; nbgrader interrupts a cell after 60 s)
JOB_TIMEOUT = 1200.0


@dataclass
class JobResult:
    """The outcome of grading one ``submitted/<student>/<assignment>/``.

    ``status`` is ``"graded"`` or ``"failed: <reason>"``; ``notes`` holds one line
    per thing found or repaired (from :func:`rmteach.grading.repair.prepare_submission`)
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

    Returns ``(True, "sandbox: ...")``, or ``(False, "NOT SANDBOXED: turned off ...")`` when
    the instructor chose ``mode="off"``.  Raises :class:`GradingError` with the reason and
    the fix when no sandbox can start in any other mode: grading then stops before the
    first student, never falls back to running student code unprotected.
    """
    from rmteach.grading import sandbox

    mode = sandbox_mode(mode)
    old = os.environ.get(SANDBOX_ENV)
    os.environ[SANDBOX_ENV] = mode
    try:
        with contextlib.redirect_stderr(io.StringIO()):  # the config's own warning: said below
            cfg = _course_config(course)
    except sandbox.SandboxError as exc:
        raise GradingError(f"sandbox required ({SANDBOX_ENV}=require) but not available: "
                           + sandbox.no_sandbox_message(str(exc)))
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
    if ok:
        why = f"{course / 'nbgrader_config.py'} does not call rmteach.grading.sandbox.configure_nbgrader"
    elif sandbox.REFUSE_UNSANDBOXED in names:
        why = cfg.RefuseUnsandboxed.get("reason", why)
    raise GradingError(sandbox.no_sandbox_message(why))




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
        from rmteach.grading import worker

        self.log_path = log_path
        if worker.can_fork():  # nbgrader imported once, in this process, not once per worker (some 3 s each)
            self.proc = worker.ForkedWorker(args, log_path)
        else:
            self.proc = subprocess.Popen(
                [sys.executable, "-m", "rmteach.grading.worker", *args, str(log_path)],
                stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, env=_nbgrader_env(),
                cwd=str(log_path.parent),
            )
        self.buffer = b""
        self.job: Optional[tuple[str, str]] = None
        self.hint: Optional[tuple[str, str]] = None
        self.started = 0.0
        self.ready = False

    def fileno(self) -> int:
        return self.proc.stdout.fileno()

    def send(self, job: tuple[str, str]) -> None:
        """Hand over ``job``, with :attr:`hint`: the job this worker is meant to get next (it prepares its kernel)."""
        self.job, self.started = job, time.monotonic()
        self.proc.stdin.write((json.dumps(list(job) + list(self.hint or ())) + "\n").encode())
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
                    # the job this worker was told it gets next (its kernel is starting), else the first no
                    # other worker was told about; and, as its next, the first job left no other was told about
                    told = {x.hint for x in pool if x is not w}
                    job = w.hint if w.hint in todo else next((j for j in todo if j not in told), todo[0])
                    todo.remove(job)
                    w.hint = next((j for j in todo if j not in told), None)
                    w.send(job)
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

    with Gradebook(busy_url(gradebook_url(course))) as gb:
        for student in sorted({s for s, _ in jobs}):
            gb.update_or_create_student(student)
        return {a.name for a in gb.assignments}


def autograde(course: Path, force: bool = False, workers: Optional[int] = None, sandbox: Optional[str] = None,
              log=print, job_timeout: float = JOB_TIMEOUT) -> list[JobResult]:
    """``make autograde``: grade every ``submitted/<student>/<assignment>/`` in parallel.

    ``workers`` long-lived worker processes (default: one per core) grade one
    submission at a time, in-process through nbgrader's API, on the shared
    gradebook (students are registered first, by this process; on SQLite workers
    wait up to :data:`rmteach.grading.gradebook.DB_BUSY_TIMEOUT` s for the lock).
    nbgrader grades a *working copy* of each submission (in a temporary folder),
    which :func:`rmteach.grading.repair.prepare_submission` first checks and repairs;
    the student's files in ``submitted/`` are never changed.

    A worker that dies, or a job that runs past ``job_timeout`` seconds, is killed
    with its kernel and replaced; the job is recorded as failed and the others go
    on.  Logs the sandbox state, one progress line per finished job and one line
    per problem; writes every job's status to :data:`STATUS_FILE`.  Submissions
    already autograded (and not submitted again since) are skipped unless
    ``force``.  ``sandbox`` (default ``$RMTEACH_SANDBOX``, else ``"auto"``): ``"auto"``
    and ``"require"`` grade in bubblewrap, else as the unprivileged grader user, and
    raise :class:`GradingError` (reason and fix) before the first student when neither
    can start; ``"user"`` forces the grader user; ``"off"`` grades unsandboxed, as the
    instructor explicitly asked, and says so in the log of every run.  A kernel that
    cannot start in the sandbox fails its job; it is never retried without it.
    """
    course = Path(course).resolve()
    mode = sandbox_mode(sandbox)
    sandboxed, message = sandbox_state(course, mode)
    log(message)
    pairs = submitted_pairs(course)
    if not pairs:
        log(f"nothing to grade: no submissions in {course / 'submitted'}/<student>/<assignment>/")
        return []
    if not gradebook_exists(gradebook_url(course)):
        raise GradingError(f"course: {course} has no gradebook yet (run make assignments first)")
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
