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
available; the mode in effect is printed).  Prints both wall-clock times and
their ratio, checks that the two gradebooks hold the same rows (every grade,
comment, notebook and submission) and that every score is the one the
submission must get, and exits 1 when they differ or the ratio is below the
target (1.7x).
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

TARGET_RATIO = 1.7
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
    expected = {}
    for assignment in assignments:
        for student, (_, make_keep) in chosen.items():
            notebooks, total = {}, 0.0
            for src in sorted((course / "source" / assignment).glob("*.ipynb")):
                source_nb = gcourse._read_nb(src)
                release_nb = gcourse._read_nb(course / "release" / assignment / src.name)
                keep = make_keep(source_nb)
                notebooks[src.name] = gdemo.build_submission(release_nb, source_nb, keep)
                total += gdemo.expected_auto_score(source_nb, keep)
            gdemo.write_submission(course, student, assignment, notebooks)
            expected[(student, assignment)] = total
    return course, expected


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--students", type=int, default=20)
    parser.add_argument("--assignments", default=",".join(DEFAULT_ASSIGNMENTS))
    parser.add_argument("--workers", type=int, default=None, help="default: one per core")
    parser.add_argument("--sandbox", choices=pipeline.SANDBOX_MODES, default="auto")
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
        return 0 if ok else 1
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


if __name__ == "__main__":
    sys.exit(main())
