r"""What goes out to students: validated release notebooks, and the feedback after grading.

``make assignments`` calls :func:`generate_assignments` (validate every source
notebook, generate ``release/``, ``validate --invert`` the release: every test must
fail on the untouched student copy); ``make feedback`` calls :func:`generate_feedback`.
"""

from __future__ import annotations

import os
import time
import warnings
from pathlib import Path
from typing import Optional, Sequence

from rmteach.grading.course import (
    GradingError, _course_config, _nbgrader_env, _notebooks, course_assignments, gradebook_url, run_nbgrader,
)


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

    Creates the gradebook (:func:`rmteach.grading.course.gradebook_url`: SQLite, or the
    PostgreSQL database of ``$RMTEACH_GRADEBOOK_URL``, which must exist; nbgrader makes
    its tables) and records every assignment in it.  Raises :class:`GradingError` naming every notebook that failed a check.
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

    url = gradebook_url(course)
    if not url.startswith("sqlite:"):  # a database server: say so now if it does not answer, not after validating
        from rmteach.grading.gradebook import gradebook_exists

        gradebook_exists(url)
    if validate:
        check("source", invert=False)
    # one nbgrader process for all of them (an assignment id may be a glob); it creates the
    # gradebook (its tables, and alembic's version: nbgrader runs `alembic` from PATH, which
    # _nbgrader_env starts with this Python's bin/) in SQLite or PostgreSQL
    for pattern in (["*"] if assignments is None else names):
        run_nbgrader(course, "generate_assignment", pattern, "--force")
    log(f"generate          release/<assignment>/ for {', '.join(names)}")
    if validate:
        check("release", invert=True)
    if problems:
        raise GradingError("assignment checks failed:\n  " + "\n  ".join(problems))



def generate_feedback(course: Path, log=print) -> list[Path]:
    """``make feedback``: HTML feedback for every autograded submission (hidden tests removed)."""
    course = Path(course).resolve()
    if any((course / "autograded").glob("*/*/*.ipynb")):
        run_nbgrader(course, "generate_feedback", "*", "--force")
    files = sorted((course / "feedback").glob("*/*/*.html"))
    log(f"feedback: {len(files)} HTML file(s) in {course / 'feedback'}/<student>/<assignment>/")
    return files

