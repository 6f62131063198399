r"""The instructor's command line: ``python -m rmteach.grading COMMAND``.

The Makefile calls::

    python -m rmteach.grading assignments [--course DIR]   # validate sources, release, validate --invert
    python -m rmteach.grading autograde   [--course DIR] [--force] [--workers N] [--sandbox auto|require|user|off]
    python -m rmteach.grading feedback    [--course DIR]
    python -m rmteach.grading grades      [--course DIR] [--csv FILE] [--lms-map FILE] [--canvas FILE] [--moodle FILE]
    python -m rmteach.grading report      [--course DIR] [--out FILE]  # the class report, HTML, instructors only
    python -m rmteach.grading demo        [--keep DIR] [--sandbox MODE]  # three made-up students, whole pipeline
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import Optional, Sequence

from rmteach.grading.course import REPO_COURSE, STATUS_FILE, GradingError, course_assignments
from rmteach.grading.demo import demo
from rmteach.grading.gradebook import format_table, grade_rows, write_csv
from rmteach.grading.lms import CANVAS_FILE, MAPPING_FILE, MOODLE_FILE, export_lms
from rmteach.grading.pipeline import JOB_TIMEOUT, SANDBOX_ENV, SANDBOX_MODES, autograde
from rmteach.grading.release import generate_assignments, generate_feedback
from rmteach.grading.report import REPORT_FILE, write_report


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
    parser = argparse.ArgumentParser(prog="python -m rmteach.grading", description=__doc__.split("\n")[0])
    sub = parser.add_subparsers(dest="command", required=True)
    for name, help_ in [
        ("assignments", "validate every source notebook, generate release/, validate --invert the release"),
        ("autograde", "autograde everything under submitted/<student>/<assignment>/"),
        ("feedback", "HTML feedback for every autograded submission (feedback/)"),
        ("grades", "print the grade table, write the CSV (given COURSE/lms_students.csv, also Canvas and Moodle's)"),
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
            p.add_argument("--lms-map", type=Path, default=None,
                           help=f"nbgrader student -> LMS ids (default: COURSE/{MAPPING_FILE}; if it exists, "
                                f"the Canvas and Moodle import files are written too)")
            p.add_argument("--canvas", type=Path, default=None,
                           help=f"Canvas import file (default: COURSE/{CANVAS_FILE})")
            p.add_argument("--moodle", type=Path, default=None,
                           help=f"Moodle import file (default: COURSE/{MOODLE_FILE})")
    p = sub.add_parser("report", help="the class report for instructors: one HTML page (scores, cells, choices, "
                                      "failures, grading time)")
    p.add_argument("--course", type=_course_arg, default=str(REPO_COURSE), help="course directory (default: %(default)s)")
    p.add_argument("--out", type=Path, default=None, help=f"HTML path (default: COURSE/{REPORT_FILE}; mode 0600)")
    p = sub.add_parser("demo", help="the whole workflow for three made-up students, in a temporary course copy")
    p.add_argument("--keep", type=Path, default=None, help="build the course copy here (an empty or new folder) and keep it")
    p.add_argument("--sandbox", choices=SANDBOX_MODES, default=None,
                   help=f"as for autograde (default: ${SANDBOX_ENV}, else auto)")
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
            export_lms(rows, args.lms_map or args.course / MAPPING_FILE, args.canvas or args.course / CANVAS_FILE,
                       args.moodle or args.course / MOODLE_FILE, required=args.lms_map is not None)
        elif args.command == "report":
            path = write_report(args.course, args.out)
            print(f"report: {path} (for instructors only: it names students; mode 0600)")
        elif args.command == "demo":
            return demo(args.keep, sandbox=args.sandbox)
    except GradingError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
    return 0
