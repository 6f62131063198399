r"""The course directory: its files, nbgrader run in it, its config and its grading status.

An nbgrader course directory holds ``nbgrader_config.py``, ``source/<assignment>/``
and what nbgrader generates (``release/``, ``submitted/<student>/<assignment>/``,
``autograded/``, ``feedback/``, and the gradebook: ``gradebook.db``, or the PostgreSQL
database of ``$RMTEACH_GRADEBOOK_URL``, see :func:`gradebook_url`); :data:`STATUS_FILE` records the
outcome of the last grading run of each submission.  The course this repository
ships is :data:`REPO_COURSE` (``assignments/``).
"""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import sys
import time
from pathlib import Path
from typing import TYPE_CHECKING, Optional, Sequence

if TYPE_CHECKING:
    from rmteach.grading.pipeline import JobResult

PACKAGE_DIR = Path(__file__).resolve().parents[1]  # rmteach/
REPO_COURSE = PACKAGE_DIR.parent / "assignments"
#: per-submission outcome of the last grading run, read by :func:`rmteach.grading.gradebook.grade_rows`
STATUS_FILE = "autograde_status.json"
#: the course's gradebook when nothing else is configured: ``COURSE/gradebook.db`` (SQLite)
GRADEBOOK_FILE = "gradebook.db"
#: the environment variable that holds the gradebook's URL when it is not the SQLite file (PostgreSQL)
GRADEBOOK_URL_ENV = "RMTEACH_GRADEBOOK_URL"


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
        if os.environ.get(GRADEBOOK_URL_ENV, "").strip():  # never a password in an error
            tail = mask_secrets(tail, os.environ[GRADEBOOK_URL_ENV].strip())
        raise GradingError(f"nbgrader {' '.join(args)} failed (exit {proc.returncode}):\n{tail}")
    return proc


def _course_config(course: Path):
    from traitlets.config.loader import PyFileConfigLoader

    return PyFileConfigLoader("nbgrader_config.py", path=str(Path(course).resolve())).load_config()


def mask_url(url: str) -> str:
    """``url`` fit for a log or an error: its password replaced by ``***``.

    ``postgresql+psycopg://grader:s3cret@db.example/rmteach`` becomes
    ``postgresql+psycopg://grader:***@db.example/rmteach``; a ``password=`` query
    parameter is masked too, and so is a string that is not a valid URL.
    """
    url = str(url)
    if "://" not in url and "@" in url:  # not a URL: whatever stands before the @ may be a password
        return "***@" + url.rsplit("@", 1)[1]
    url = re.sub(r"(://[^/?#@:]*:)[^/?#@]*@", r"\1***@", url)
    return re.sub(r"([?&](?:password|passwd)=)[^&]*", r"\1***", url, flags=re.IGNORECASE)


def mask_secrets(text: str, url: str) -> str:
    """``text`` with ``url`` masked and its password (if any) replaced by ``***`` wherever it appears."""
    text = str(text).replace(str(url), mask_url(url))
    try:
        from sqlalchemy.engine import make_url

        password = make_url(url).password
    except Exception:  # not a URL SQLAlchemy reads: mask_url already did what it can
        password = None
    return text.replace(password, "***") if password else text


def check_gradebook_url(url: str) -> str:
    """``url`` if SQLAlchemy can read it and has its database driver, else :class:`GradingError` naming it (masked)."""
    from sqlalchemy.engine import make_url

    try:
        make_url(url).get_dialect()
    except Exception as exc:
        why = mask_secrets(f"{type(exc).__name__}: {exc}", url)
        raise GradingError(
            f"gradebook URL {mask_url(url)!r} (from ${GRADEBOOK_URL_ENV}) is not usable: {why}. "
            "Expected e.g. postgresql+psycopg://USER:PASSWORD@HOST/DATABASE or sqlite:////path/gradebook.db"
        ) from None
    return url


def gradebook_url(course: Path) -> str:
    """The SQLAlchemy URL of the course's gradebook, the one place it comes from.

    ``$RMTEACH_GRADEBOOK_URL`` (:data:`GRADEBOOK_URL_ENV`) when it is set and not
    empty, e.g. ``postgresql+psycopg://grader:PASSWORD@/rmteach?host=/run/postgresql``;
    else ``sqlite:///COURSE/gradebook.db``.  The course's ``nbgrader_config.py`` sets
    ``c.CourseDirectory.db_url`` from this function, so plain ``nbgrader`` commands
    and the formgrader open the same database as ``make``.  An unreadable URL raises
    :class:`GradingError` naming it with its password masked.
    """
    url = os.environ.get(GRADEBOOK_URL_ENV, "").strip()
    if not url:
        return f"sqlite:///{Path(course).resolve() / GRADEBOOK_FILE}"
    return check_gradebook_url(url)


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
