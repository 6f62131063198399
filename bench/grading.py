"""Parallel autograding (``make autograde``) against serial ``nbgrader autograde``.

    .venv/bin/python bench/grading.py [--students 20] [--assignments 01_preference_probability,02_ranking_loss]
                                      [--workers N] [--sandbox auto|require|off]

Builds a temporary copy of the course, releases it, and writes ``--students``
synthetic students' submissions of each assignment (40 by default: 20 students
x 2 assignments), a mix of full solutions, untouched releases and four kinds of
partial solutions.  Then grades the same submissions twice, each on a fresh
copy of that course:

* serial: the plain CLI, ``nbgrader autograde "*"`` (one process, one student
  after another), as an instructor would run it;
* parallel: :func:`rmteach.grading.pipeline.autograde` with the default number of
  workers (one per core) or ``--workers``.

Both use the same sandbox mode (``--sandbox``, default ``auto``: bubblewrap when
available; the mode in effect is printed).  Prints both wall-clock times, the
seconds per submission and their ratio, checks that the two gradebooks hold the
same rows (every grade, comment, notebook and submission) and that every score is
the one the submission must get, and exits 1 when they differ or the ratio is
below the target (2.5x).

First it prints where one submission's time goes (``--breakdown N`` submissions,
graded one after another in this process, 0 to skip), the way nbgrader grades it
and the way a pipeline worker does: the sandboxed kernel's start (launch to
ready), the notebook's first cell (it imports rmteach.grading, and with it numpy),
the other cells, the kernel's stop, the gradebook openings, and the rest
(nbgrader's converter and preprocessors, copies, reading and writing notebooks).
"""

from __future__ import annotations

import argparse
import os
import shutil
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from rmteach.grading import course as gcourse, pipeline, demo as gdemo, release, gradebook as gbook  # noqa: E402

TARGET_RATIO = 2.5
DEFAULT_ASSIGNMENTS = ("01_preference_probability", "02_ranking_loss")


def keep_rules():
    """The synthetic students' kinds: name -> keep(source_nb) -> keep(grade_id)."""

    def nth(k: int, offset: int):
        def make(nb):
            ids = gdemo.answer_cells(nb)
            kept = set(ids[offset::k])
            return lambda gid: gid in kept
        return make

    return {
        "full": lambda nb: (lambda gid: True),
        "untouched": lambda nb: (lambda gid: False),
        "every-other": gdemo.partial_keep,
        "first-of-three": nth(3, 0),
        "second-of-three": nth(3, 1),
        "all-but-every-third": lambda nb: (lambda gid, k=set(gdemo.answer_cells(nb)[2::3]): gid not in k),
    }


def build(root: Path, students: int, assignments: list[str], log=print) -> tuple[Path, dict]:
    course = gcourse.copy_course(gcourse.REPO_COURSE, root / "base")
    release.generate_assignments(course, assignments, validate=False, log=log)
    rules = keep_rules()
    kinds = list(rules)
    chosen = {f"s{i:02d}": (kinds[i % len(kinds)], rules[kinds[i % len(kinds)]]) for i in range(students)}
    return course, gdemo.make_demo_submissions(course, chosen, assignments)


class _Phases:
    """Wall-clock seconds per phase of grading, from hooks on nbclient's and nbgrader's methods (bench only)."""

    def __init__(self) -> None:
        self.seconds: dict[str, float] = {}
        self.count: dict[str, int] = {}

    def add(self, name: str, dt: float) -> None:
        self.seconds[name] = self.seconds.get(name, 0.0) + dt
        self.count[name] = self.count.get(name, 0) + 1

    def timed_async(self, owner, attr: str, name) -> None:
        original = getattr(owner, attr)

        async def hooked(obj, *args, **kwargs):
            t0 = time.monotonic()
            try:
                return await original(obj, *args, **kwargs)
            finally:
                self.add(name(obj, args, kwargs) if callable(name) else name, time.monotonic() - t0)

        setattr(owner, attr, hooked)

    def timed(self, owner, attr: str, name: str) -> None:
        original = getattr(owner, attr)

        def hooked(obj, *args, **kwargs):
            t0 = time.monotonic()
            try:
                return original(obj, *args, **kwargs)
            finally:
                self.add(name, time.monotonic() - t0)

        setattr(owner, attr, hooked)


def breakdown(base: Path, jobs: list, sandboxed: bool, log=print) -> None:
    """Grade ``jobs`` twice in this process (as nbgrader does, then as a worker does) and print the phases."""
    import nbclient.client as ncc
    from jupyter_core.utils import run_sync
    from nbgrader.api import Gradebook
    from nbgrader.apps.api import NbGraderAPI

    from rmteach.grading import worker

    phases = _Phases()
    cell_name = lambda obj, args, kwargs: "first cell (imports rmteach.grading, numpy)" if (  # noqa: E731
        (args[1] if len(args) > 1 else kwargs.get("cell_index")) == 0) else "the other cells"
    phases.timed_async(ncc.NotebookClient, "async_execute_cell", cell_name)
    ncc.NotebookClient.execute_cell = run_sync(ncc.NotebookClient.async_execute_cell)
    phases.timed_async(ncc.NotebookClient, "async_start_new_kernel", "kernel start: launch")
    ncc.NotebookClient.start_new_kernel = run_sync(ncc.NotebookClient.async_start_new_kernel)
    phases.timed_async(ncc.NotebookClient, "async_start_new_kernel_client", "kernel start: wait until ready")
    ncc.NotebookClient.start_new_kernel_client = run_sync(ncc.NotebookClient.async_start_new_kernel_client)
    phases.timed_async(ncc.NotebookClient, "_async_cleanup_kernel", "kernel stop")
    ncc.NotebookClient._cleanup_kernel = run_sync(ncc.NotebookClient._async_cleanup_kernel)

    def report(title: str, total: float) -> None:
        n = len(jobs)
        log(f"  {title}: {total / n:.2f} s per submission")
        known = 0.0
        for name in ("kernel start: launch", "kernel start: wait until ready", "first cell (imports rmteach.grading, numpy)",
                     "the other cells", "kernel stop", "gradebook openings"):
            if name in phases.seconds:
                known += phases.seconds[name]
                log(f"    {name:<46} {phases.seconds[name] / n:6.3f} s  ({phases.count[name] / n:.0f} per submission)")
        log(f"    {'the rest (nbgrader converter, copies, notebooks)':<46} {(total - known) / n:6.3f} s")
        phases.seconds.clear()
        phases.count.clear()

    import warnings

    warnings.simplefilter("ignore")  # nbgrader's in-process API warns (SAWarning) where its CLI is quiet
    mode = "require" if sandboxed else "off"
    old = os.environ.get(pipeline.SANDBOX_ENV)
    os.environ[pipeline.SANDBOX_ENV] = mode
    try:
        course = base.parent / "breakdown-nbgrader"
        shutil.copytree(base, course)
        cfg = gcourse._course_config(course)
        cfg.CourseDirectory.root = str(course)
        api = NbGraderAPI(config=cfg)
        original_init = Gradebook.__init__
        phases.timed(Gradebook, "__init__", "gradebook openings")
        t0 = time.monotonic()
        for student, assignment in jobs:
            api.autograde(assignment, student, force=True, create=True)
        t_nbgrader = time.monotonic() - t0
        Gradebook.__init__ = original_init
        report("nbgrader's way (as `nbgrader autograde`, one after another)", t_nbgrader)

        course = base.parent / "breakdown-worker"
        shutil.copytree(base, course)
        work = base.parent / "breakdown-work"
        work.mkdir()
        pipeline._register(course, jobs)
        worker._worker_setup(str(course), str(work), mode, None)  # installs the worker's shared gradebook engine
        phases.timed(Gradebook, "__init__", "gradebook openings")
        t0 = time.monotonic()
        for i, (student, assignment) in enumerate(jobs):  # each with the next job as its hint, as the pipeline does
            worker._grade_job(student, assignment, jobs[i + 1] if i + 1 < len(jobs) else None)
        t_worker = time.monotonic() - t0
        from rmteach.grading import kernel_prestart

        kernel_prestart.discard()
        report("a pipeline worker's way (one worker)", t_worker)
    finally:
        if old is None:
            os.environ.pop(pipeline.SANDBOX_ENV, None)
        else:
            os.environ[pipeline.SANDBOX_ENV] = old


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--students", type=int, default=20)
    parser.add_argument("--assignments", default=",".join(DEFAULT_ASSIGNMENTS))
    parser.add_argument("--workers", type=int, default=None, help="default: one per core")
    parser.add_argument("--sandbox", choices=pipeline.SANDBOX_MODES, default="auto")
    parser.add_argument("--breakdown", type=int, default=6,
                        help="submissions graded one by one in this process to show where the time goes (0: skip)")
    args = parser.parse_args(argv)
    assignments = [a for a in args.assignments.split(",") if a]
    tmp = Path(tempfile.mkdtemp(prefix="rmteach-bench-grading-"))
    try:
        base, expected = build(tmp, args.students, assignments, log=lambda *_: None)
        n = len(expected)
        sandboxed, message = pipeline.sandbox_state(base, args.sandbox)
        print(f"{n} submissions ({args.students} students x {len(assignments)} assignments), "
              f"{pipeline._cpu_count()} core(s); {message}")
        serial, parallel = tmp / "serial", tmp / "parallel"
        for dst in (serial, parallel):
            shutil.copytree(base, dst)

        old = os.environ.get(pipeline.SANDBOX_ENV)
        os.environ[pipeline.SANDBOX_ENV] = "require" if sandboxed else "off"  # both runs in the same mode
        try:
            t0 = time.monotonic()
            proc = gcourse.run_nbgrader(serial, "autograde", "*", check=False)
            t_serial = time.monotonic() - t0
        finally:
            if old is None:
                os.environ.pop(pipeline.SANDBOX_ENV, None)
            else:
                os.environ[pipeline.SANDBOX_ENV] = old
        print(f"serial   nbgrader autograde \"*\" (one process):       {t_serial:7.1f} s "
              f"({t_serial / n:.2f} s per submission, exit {proc.returncode})")

        t0 = time.monotonic()
        results = pipeline.autograde(parallel, workers=args.workers, sandbox="require" if sandboxed else "off",
                               log=lambda *_: None)
        t_parallel = time.monotonic() - t0
        workers = args.workers or pipeline._cpu_count()
        print(f"parallel rmteach.grading.pipeline.autograde ({workers} workers): {t_parallel:7.1f} s "
              f"({t_parallel / n:.2f} s per submission)")

        problems = []
        failed = [f"{r.student}/{r.assignment}: {r.status}" for r in results if r.failed]
        problems += [f"parallel run failed {x}" for x in failed]
        snap_serial = gbook.gradebook_snapshot(serial / "gradebook.db")
        snap_parallel = gbook.gradebook_snapshot(parallel / "gradebook.db")
        for table in snap_serial:
            if snap_serial[table] != snap_parallel[table]:
                only_s = [r for r in snap_serial[table] if r not in snap_parallel[table]]
                only_p = [r for r in snap_parallel[table] if r not in snap_serial[table]]
                problems.append(f"gradebooks differ in {table}: {len(snap_serial[table])} serial row(s), "
                                f"{len(snap_parallel[table])} parallel; serial only {only_s[:2]}, parallel only {only_p[:2]}")
        rows = {(r["student"], r["assignment"]): r for r in gbook.grade_rows(parallel)}
        wrong = [f"{k}: {rows[k]['auto_score']:g} != {v:g}" for k, v in expected.items() if abs(rows[k]["auto_score"] - v) > 1e-9]
        problems += [f"score not as expected {w}" for w in wrong]
        print(f"gradebooks: {sum(len(v) for v in snap_serial.values())} rows serial, "
              f"{sum(len(v) for v in snap_parallel.values())} parallel, "
              f"{'identical' if snap_serial == snap_parallel else 'DIFFERENT'}; "
              f"{n - len(wrong)}/{n} scores as expected")
        ratio = t_serial / t_parallel
        ok = ratio >= TARGET_RATIO and not problems
        print(f"ratio serial / parallel: {ratio:.2f}x (target >= {TARGET_RATIO}x) "
              f"[{'sandboxed' if sandboxed else 'NOT sandboxed'} both] {'OK' if ok else 'MISSED'}")
        for p in problems:
            print(f"PROBLEM {p}")
        if args.breakdown:  # last: its timing hooks must not reach the runs above
            print(f"where the time goes, over {min(args.breakdown, n)} submission(s) graded one after another:")
            breakdown(base, sorted(expected)[:args.breakdown], sandboxed)
        return 0 if ok else 1
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


if __name__ == "__main__":
    sys.exit(main())
