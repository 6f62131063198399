r"""Reading the gradebook: scores, snapshots, the grade table and its CSV.

nbgrader writes the gradebook (``gradebook.db``, SQLite, or the PostgreSQL database of
``$RMTEACH_GRADEBOOK_URL``: :func:`rmteach.grading.course.gradebook_url`); this module
only reads it, with the same SQL on both.  :func:`grade_rows`
gives one row per (student, assignment) with autograded and manual points apart
and a ``status`` that tells a real 0 from work that could not be graded;
:func:`write_csv` and :func:`format_table` write it out; :func:`gradebook_snapshot`
compares two gradebooks row for row.
"""

from __future__ import annotations

import csv
import datetime
from pathlib import Path
from typing import Mapping, Optional, Sequence, Union

from rmteach.grading.course import (
    GradingError, gradebook_url, mask_secrets, mask_url, read_statuses, submitted_pairs,
)

GRADE_COLUMNS = [
    "student", "assignment", "status", "auto_score", "auto_max",
    "manual_score", "manual_max", "manual_pending", "late_penalty", "score", "max_score", "notes",
]

#: SQLite busy timeout (seconds) on the shared gradebook
DB_BUSY_TIMEOUT = 120


def busy_url(url: str) -> str:
    """``url`` as the graders open it: an SQLite gradebook waits up to :data:`DB_BUSY_TIMEOUT` s for its lock."""
    if url.startswith("sqlite:///") and "timeout=" not in url:
        return f"{url}{'&' if '?' in url else '?'}timeout={DB_BUSY_TIMEOUT}"
    return url


def _sqlite_path(url: str) -> Optional[str]:
    """The file of an ``sqlite:///`` URL (``None`` for any other database)."""
    return url[len("sqlite:///"):].split("?", 1)[0] if url.startswith("sqlite:///") else None


def _engine(url: str):
    """A SQLAlchemy engine on ``url`` that keeps no connection open between uses (``NullPool``).

    A read-only SQLite file for an ``sqlite:///`` URL (nbgrader's writers are never
    blocked by a reader in WAL mode).
    """
    from sqlalchemy import create_engine
    from sqlalchemy.pool import NullPool

    path = _sqlite_path(url)
    if path is not None:
        import sqlite3

        return create_engine("sqlite://", poolclass=NullPool,
                             creator=lambda: sqlite3.connect(f"file:{path}?mode=ro", uri=True, timeout=DB_BUSY_TIMEOUT))
    return create_engine(url, poolclass=NullPool)


def _db_error(url: str, exc: BaseException, doing: str) -> GradingError:
    """A :class:`GradingError` that names the gradebook (password masked) and what went wrong."""
    lines = str(getattr(exc, "orig", None) or exc).strip().splitlines()  # the driver's message, not SQLAlchemy's
    why = mask_secrets(lines[0] if lines else type(exc).__name__, url)
    return GradingError(f"gradebook {mask_url(url)}: cannot {doing}: {why}")


def gradebook_exists(url: str) -> bool:
    """Whether the gradebook at ``url`` has been created (by ``make assignments``).

    SQLite: the file exists.  Any other database (PostgreSQL): it answers and holds
    nbgrader's tables (``alembic_version`` and ``grade``); a database that does not
    answer raises :class:`GradingError` naming it (password masked) and why.
    """
    path = _sqlite_path(url)
    if path is not None:
        return Path(path).exists()
    from sqlalchemy import inspect

    try:
        engine = _engine(url)
        try:
            tables = set(inspect(engine).get_table_names())
        finally:
            engine.dispose()
    except Exception as exc:
        raise _db_error(url, exc, "connect") from None
    return {"alembic_version", "grade"} <= tables


#: nbgrader's ``Grade.score`` summed over one submission's autograded cells, and their maximum
_AUTO_SCORES_SQL = """
    SELECT count(g.id), sum(CASE WHEN g.manual_score IS NOT NULL THEN g.manual_score + coalesce(g.extra_credit, 0)
                                 WHEN g.auto_score IS NOT NULL THEN g.auto_score + coalesce(g.extra_credit, 0)
                                 ELSE 0 END),
           sum(gc.max_score)
    FROM grade g JOIN submitted_notebook sn ON g.notebook_id = sn.id
    JOIN submitted_assignment sa ON sn.assignment_id = sa.id JOIN assignment a ON sa.assignment_id = a.id
    JOIN grade_cells gc ON g.cell_id = gc.id
    WHERE a.name = :assignment AND sa.student_id = :student AND gc.cell_type != 'markdown'"""


def auto_scores(url: str, student: str, assignment: str) -> tuple[Optional[float], Optional[float]]:
    """(autograded points, autograded maximum) of one submission, read straight from the gradebook.

    SQLite read-only through ``sqlite3``; any other database (PostgreSQL) through
    SQLAlchemy, with the same SQL.  ``(None, None)`` when the submission has no grade.
    """
    params = {"assignment": assignment, "student": student}
    path = _sqlite_path(url)
    if path is not None:
        import sqlite3

        con = sqlite3.connect(f"file:{path}?mode=ro", uri=True, timeout=DB_BUSY_TIMEOUT)
        try:
            row = con.execute(_AUTO_SCORES_SQL, params).fetchone()
        finally:
            con.close()
    else:
        from sqlalchemy import text

        engine = _engine(url)
        try:
            with engine.connect() as con:
                row = con.execute(text(_AUTO_SCORES_SQL), params).fetchone()
        except Exception as exc:
            raise _db_error(url, exc, f"read the scores of {student}/{assignment}") from None
        finally:
            engine.dispose()
    return (None, None) if not row or not row[0] else (float(row[1]), float(row[2]))


_SNAPSHOT_SQL = {
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


def _typed(query: str):
    """``query`` as SQLAlchemy text whose columns come back as the same Python types on every database.

    nbgrader's columns are ``DateTime``, ``Interval``, ``Boolean`` and ``Float``;
    SQLite stores them as text and integers, PostgreSQL natively.  Declaring them
    makes both drivers return ``datetime``, ``timedelta``, ``bool`` and ``float``.
    """
    from sqlalchemy import Boolean, DateTime, Float, Interval, text

    types = {"timestamp": DateTime(), "extension": Interval(), "flagged": Boolean(),
             "needs_manual_grade": Boolean(), "late_submission_penalty": Float(), "auto_score": Float(),
             "manual_score": Float(), "extra_credit": Float()}
    names = [part.strip().split(".")[-1].split()[-1]
             for part in query.split("SELECT", 1)[1].split("FROM", 1)[0].split(",")]
    return text(query).columns(**{name: types[name] for name in names if name in types})


def _plain(value):
    """One snapshot value, the same whatever the driver: numbers as ``float``, times as ``datetime``."""
    if isinstance(value, bool) or value is None or isinstance(value, (str, datetime.datetime, datetime.timedelta)):
        return value
    if isinstance(value, (int, float)) or type(value).__name__ == "Decimal":
        return float(value)
    return value


def gradebook_snapshot(db: Union[Path, str]) -> dict[str, list[tuple]]:
    """Every submission row of a gradebook, by natural keys (no database ids), sorted.

    ``db``: the path of an SQLite gradebook (``course / "gradebook.db"``) or a
    SQLAlchemy URL (``sqlite:///...``, ``postgresql+psycopg://...``).  Tables
    ``student``, ``submitted_assignment``, ``submitted_notebook``, ``grade`` and
    ``comment``; lists, not sets, so a doubled row shows.  Two gradebooks that hold
    the same grades give equal snapshots (timestamps included), on SQLite and
    PostgreSQL alike: timestamps come back as ``datetime``, intervals as
    ``timedelta``, flags as ``bool`` and points as ``float`` from either.
    """
    from sqlalchemy import text

    url = db if isinstance(db, str) and "://" in db else f"sqlite:///{Path(db).resolve()}"
    if _sqlite_path(url) is not None and not Path(_sqlite_path(url)).is_file():
        raise GradingError(f"gradebook {mask_url(url)}: no such file")
    engine = _engine(url)
    try:
        with engine.connect() as con:
            out = {}
            for table, query in _SNAPSHOT_SQL.items():
                rows = sorted((tuple(_plain(v) for v in row) for row in con.execute(_typed(query))), key=repr)
                count = con.execute(text(f"SELECT count(*) FROM {table}")).scalar_one()
                if count != len(rows):
                    raise GradingError(f"{mask_url(url)}: {count - len(rows)} row(s) of {table} point at no submission")
                out[table] = rows
            return out
    except GradingError:
        raise
    except Exception as exc:
        raise _db_error(url, exc, "read it") from None
    finally:
        engine.dispose()


def _open_gradebook(url: str):
    """nbgrader's ``Gradebook(url)``; a database that does not answer raises :class:`GradingError` naming it (masked)."""
    from nbgrader.api import Gradebook

    try:
        return Gradebook(url)
    except Exception as exc:
        raise _db_error(url, exc, "open it") from None


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

    ``late_penalty``: the points nbgrader's late-submission policy took off (``AssignLatePenalties``,
    recorded per notebook); ``score`` is autograded + manual points minus it, never below 0, as
    nbgrader's own grade export computes it.

    ``notes``: what :func:`autograde` found or repaired in the submission ("; "-separated).
    """
    from nbgrader.api import MissingEntry

    course = Path(course).resolve()
    url = gradebook_url(course)
    if not gradebook_exists(url):
        raise GradingError(f"course: {course} has no gradebook yet ({mask_url(url)}; run make assignments first)")
    submitted = set(submitted_pairs(course))
    statuses = read_statuses(course)
    rows = []
    with _open_gradebook(url) as gb:
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
                           max_score=max_auto + max_manual, auto_score=0.0, manual_score=0.0, manual_pending=0.0,
                           late_penalty=0.0)
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
                    # nbgrader's AssignLatePenalties records it per notebook; its own export subtracts it too
                    row["late_penalty"] = float(sum(nb.late_submission_penalty or 0.0 for nb in sub.notebooks))
                row["score"] = max(0.0, row["auto_score"] + row["manual_score"] - row["late_penalty"])
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
