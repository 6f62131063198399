r"""Grades into the LMS: the CSV files Canvas's and Moodle's gradebook imports read.

:func:`read_mapping` reads the instructor's ``lms_students.csv`` (nbgrader student id →
the LMS's ids and logins, :data:`MAPPING_COLUMNS`); :func:`canvas_table` and
:func:`moodle_table` lay :func:`rmteach.grading.gradebook.grade_rows` out as each
LMS's import expects; :func:`write_canvas` and :func:`write_moodle` write them;
:func:`export_lms` is what ``make grades`` runs.

Canvas (*Grades → Import*), following the Canvas Instructor Guide's "How do I import grades
in the Gradebook?" as Ohio State's Canvas guide restates it
(https://teaching.resources.osu.edu/toolsets/carmencanvas/guides/calculating-final-grades/import-csv-file-carmen-grades)
and Canvas's importer (https://github.com/instructure/canvas-lms, ``app/models/gradebook_importer.rb``): a header
``Student, ID, SIS User ID, SIS Login ID, Section`` then one column per assignment
(``Title`` or ``Title (canvas assignment id)``), a ``Points Possible`` row, one row per
student.  Canvas finds the student by ``ID``, else ``SIS User ID``, else ``SIS Login
ID``; an empty cell is "no score" (where Canvas has no grade it changes nothing; where it
has one, its review page shows the change before saving); ``EX`` would excuse (never
written here: excusing is the instructor's decision).

Moodle (*Grades → Import → CSV file*), following MoodleDocs "Grade import"
(https://docs.moodle.org/405/en/Grade_import) and its importer (https://github.com/moodle/moodle,
``grade/import/csv/classes/load_data.php``):
identifier columns (``Username``, ``Email address``, ``ID number``), one of which the
instructor maps in *Identify user by* (*Map from* it, *Map to* ``username``, ``useremail``
or ``useridnumber``), one column per grade
item and a feedback column each (mapped to *Feedback for ...*).  No points row: the
maximum is the grade item's.  ``-`` is Moodle's "no grade" (an empty cell is "no grade"
only for an existing grade item; for a new one ``-`` alone skips the cell), so ``-`` it is.

A real 0 is written ``0``.  Work that has no final grade (``needs manual grading``,
``failed: ...``, ``not autograded``, ``not submitted``) is never written as a number:
Canvas gets an empty cell, Moodle ``-`` and the status in its feedback column, and
:func:`summary` lists every such cell for stdout.
"""

from __future__ import annotations

import csv
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path

from rmteach.grading.course import GradingError

#: the mapping file ``make grades`` looks for in the course directory
MAPPING_FILE = "lms_students.csv"
#: the LMS files ``make grades`` writes in the course directory
CANVAS_FILE, MOODLE_FILE = "grades-canvas.csv", "grades-moodle.csv"

#: Canvas's student columns (its export's, in its order) and the mapping column each is filled from
CANVAS_STUDENT_COLUMNS = {"Student": "name", "ID": "canvas_id", "SIS User ID": "sis_user_id",
                          "SIS Login ID": "sis_login_id", "Section": "section"}
#: the mapping columns Canvas can find a student by (``name`` alone is refused: names repeat)
CANVAS_ID_COLUMNS = ("canvas_id", "sis_user_id", "sis_login_id")
#: Moodle's identifier columns: mapping column → (header written, Moodle's *Map to* field)
MOODLE_ID_COLUMNS = {"moodle_username": ("Username", "username"),
                     "moodle_email": ("Email address", "useremail"),
                     "moodle_idnumber": ("ID number", "useridnumber")}
#: every column ``lms_students.csv`` may have; only ``student`` is required
MAPPING_COLUMNS = ("student", "name", *CANVAS_ID_COLUMNS, "section", *MOODLE_ID_COLUMNS)

CANVAS_POINTS_ROW = "Points Possible"
#: Moodle's "no grade" (its export writes it; its import reads it as no grade)
MOODLE_NO_GRADE = "-"
#: the statuses of :func:`grade_rows` that carry a final grade
FINAL_STATUSES = ("graded",)


@dataclass(frozen=True)
class LmsStudent:
    """One row of ``lms_students.csv``: an nbgrader student and their ids in the LMS."""

    student: str
    line: int
    ids: Mapping[str, str] = field(default_factory=dict)

    def get(self, column: str) -> str:
        """The value of a mapping column ('' when the file has no such column or leaves it empty)."""
        return self.ids.get(column, "")


@dataclass(frozen=True)
class LmsMapping:
    """``lms_students.csv`` read and checked: its path, its columns and one :class:`LmsStudent` per student."""

    path: Path
    columns: tuple[str, ...]
    students: Mapping[str, LmsStudent]


def read_mapping(path: Path) -> LmsMapping:
    """Read and check the instructor's student mapping file.

    A CSV file with a header row; columns from :data:`MAPPING_COLUMNS` in any order,
    ``student`` (the nbgrader student id) required, the rest optional and may be empty.
    Errors (:class:`GradingError`, naming the file and line): no such file, no header,
    an unknown or repeated column, no ``student`` column, an empty or repeated student,
    the same LMS id given to two students.
    """
    path = Path(path)
    if not path.is_file():
        raise GradingError(f"lms map: {path} does not exist (columns: {', '.join(MAPPING_COLUMNS)}; "
                           f"see assignments/README.md)")
    try:
        with open(path, newline="", encoding="utf-8-sig") as fh:
            lines = list(csv.reader(fh))
    except (OSError, UnicodeDecodeError, csv.Error) as exc:
        raise GradingError(f"lms map: {path} cannot be read as UTF-8 CSV ({exc})") from None
    if not lines or not any(cell.strip() for cell in lines[0]):
        raise GradingError(f"{path}: line 1 must be a header row (columns: {', '.join(MAPPING_COLUMNS)})")
    header = [h.strip() for h in lines[0]]
    unknown = [h for h in header if h not in MAPPING_COLUMNS]
    if unknown:
        raise GradingError(f"{path}, line 1: unknown column(s) {unknown}; the columns are {', '.join(MAPPING_COLUMNS)}")
    repeated = sorted({h for h in header if header.count(h) > 1})
    if repeated:
        raise GradingError(f"{path}, line 1: column(s) {repeated} appear more than once")
    if "student" not in header:
        raise GradingError(f"{path}, line 1: no 'student' column (the nbgrader student id)")
    students: dict[str, LmsStudent] = {}
    seen: dict[tuple[str, str], tuple[str, int]] = {}  # (column, id) → (student, line)
    for number, cells in enumerate(lines[1:], start=2):
        if not any(cell.strip() for cell in cells):
            continue  # a blank line
        if len(cells) != len(header):
            raise GradingError(f"{path}, line {number}: {len(cells)} field(s) where the header has {len(header)} "
                               f"(quote a value with a comma in it: \"Lovelace, Ada\")")
        values = {h: cell.strip() for h, cell in zip(header, cells)}
        student = values.pop("student")
        if not student:
            raise GradingError(f"{path}, line {number}: empty 'student' (the nbgrader student id)")
        if student in students:
            raise GradingError(f"{path}, line {number}: student {student!r} again "
                               f"(first on line {students[student].line})")
        for column in (*CANVAS_ID_COLUMNS, *MOODLE_ID_COLUMNS):
            value = values.get(column, "")
            if value and (column, value) in seen:
                other, other_line = seen[(column, value)]
                raise GradingError(f"{path}, line {number}: {column} {value!r} of {student!r} is also given to "
                                   f"{other!r} (line {other_line}): one LMS user would get both students' grades")
            if value:
                seen[(column, value)] = (student, number)
        students[student] = LmsStudent(student=student, line=number, ids=values)
    return LmsMapping(path=path, columns=tuple(header), students=students)


def has_canvas_ids(mapping: LmsMapping) -> bool:
    """Whether the mapping has a column Canvas can find students by (:data:`CANVAS_ID_COLUMNS`)."""
    return any(c in mapping.columns for c in CANVAS_ID_COLUMNS)


def moodle_id_columns(mapping: LmsMapping) -> list[str]:
    """The mapping's Moodle identifier columns (:data:`MOODLE_ID_COLUMNS`), in that order."""
    return [c for c in MOODLE_ID_COLUMNS if c in mapping.columns]


def _number(x: float) -> str:
    """Points as the LMS reads them: ``12``, ``13.5``, ``0`` (at most 4 decimals, no trailing zeros)."""
    text = f"{float(x):.4f}".rstrip("0").rstrip(".")
    return "0" if text in ("-0", "") else text


def _layout(rows: Sequence[dict], mapping: LmsMapping) -> tuple[list[str], dict[str, float], list[LmsStudent], dict]:
    """(assignments in order, points possible, students to export, {(student, assignment): row}).

    Every student of ``rows`` must have a mapping row (else :class:`GradingError` naming
    them and the file); mapped students with no rows are exported too, as not submitted.
    """
    assignments: list[str] = []
    points: dict[str, float] = {}
    cells: dict[tuple[str, str], dict] = {}
    for row in rows:
        if row["assignment"] not in points:
            assignments.append(row["assignment"])
            points[row["assignment"]] = float(row["max_score"])
        cells[(row["student"], row["assignment"])] = row
    in_rows = sorted({row["student"] for row in rows})
    missing = [s for s in in_rows if s not in mapping.students]
    if missing:
        raise GradingError(f"{mapping.path}: no row for student(s) {', '.join(missing)} of the gradebook; add a line "
                           f"'student,...' for each with their LMS id(s) (no LMS file was written)")
    students = sorted(mapping.students.values(), key=lambda s: s.student)
    return assignments, points, students, cells


def _no_grade_note(row: dict | None) -> str:
    """What the LMS is told instead of a grade, for a row with no final grade (None: no row at all)."""
    if row is None or row["status"] == "not submitted":
        return "not submitted"
    if row["status"] == "needs manual grading":
        return (f"written answers not graded yet ({_number(row['manual_pending'])} pts); "
                f"autograded {_number(row['auto_score'])}/{_number(row['auto_max'])}")
    if row["status"] == "not autograded":
        return "submitted, not graded yet"
    return f"could not be graded ({row['status']}); not a 0"


def _feedback(row: dict | None) -> str:
    """The Moodle feedback text of one cell: the points' breakdown, or why there is no grade."""
    if row is None or row["status"] not in FINAL_STATUSES:
        return _no_grade_note(row)
    text = f"autograded {_number(row['auto_score'])}/{_number(row['auto_max'])}"
    if row["manual_max"]:
        text += f", written {_number(row['manual_score'])}/{_number(row['manual_max'])}"
    if row["late_penalty"]:
        text += f", late penalty -{_number(row['late_penalty'])}"
    return text


def canvas_table(rows: Sequence[dict], mapping: LmsMapping,
                 canvas_ids: Mapping[str, str] | None = None) -> list[list[str]]:
    """The Canvas import file as rows of cells (header, ``Points Possible``, one row per student).

    ``canvas_ids``: ``{assignment: canvas assignment id}`` for the columns named
    ``"<assignment> (<id>)"`` (Canvas then matches the assignment by id, not by title).
    Each student needs one of ``canvas_id``, ``sis_user_id``, ``sis_login_id``
    (:class:`GradingError` naming the student, the file and the line otherwise); the
    ``Student`` column is ``name``, else the nbgrader id.  A grade only for status
    ``graded`` (a real 0 is ``0``); every other status is an empty cell.
    """
    if not has_canvas_ids(mapping):
        raise GradingError(f"{mapping.path}: no Canvas id column ({', '.join(CANVAS_ID_COLUMNS)}); "
                           f"Canvas finds students by one of them")
    assignments, points, students, cells = _layout(rows, mapping)
    canvas_ids = dict(canvas_ids or {})
    unknown = sorted(set(canvas_ids) - set(assignments))
    if unknown:
        raise GradingError(f"canvas_ids: no such assignment(s) {unknown} in the gradebook")
    titles = [f"{a} ({canvas_ids[a]})" if canvas_ids.get(a) else a for a in assignments]
    table = [[*CANVAS_STUDENT_COLUMNS, *titles],
             [CANVAS_POINTS_ROW, *[""] * (len(CANVAS_STUDENT_COLUMNS) - 1), *[_number(points[a]) for a in assignments]]]
    for s in students:
        if not any(s.get(c) for c in CANVAS_ID_COLUMNS):
            raise GradingError(f"{mapping.path}, line {s.line}: student {s.student!r} has no Canvas id "
                               f"({', '.join(CANVAS_ID_COLUMNS)}: fill one)")
        info = [s.get(c) or (s.student if c == "name" else "") for c in CANVAS_STUDENT_COLUMNS.values()]
        grades = []
        for a in assignments:
            row = cells.get((s.student, a))
            grades.append(_number(row["score"]) if row is not None and row["status"] in FINAL_STATUSES else "")
        table.append(info + grades)
    return table


def moodle_table(rows: Sequence[dict], mapping: LmsMapping) -> list[list[str]]:
    """The Moodle import file as rows of cells (header, one row per student).

    Columns: the mapping's Moodle identifier columns (``Username``, ``Email address``,
    ``ID number``: each must be filled for every student, since Moodle's import gives
    a row with an empty identifier to the row before's student), then per assignment
    ``"<assignment>"`` (the points, or ``-`` for no grade) and ``"<assignment> (feedback)"``.
    """
    id_columns = moodle_id_columns(mapping)
    if not id_columns:
        raise GradingError(f"{mapping.path}: no Moodle identifier column ({', '.join(MOODLE_ID_COLUMNS)})")
    assignments, _, students, cells = _layout(rows, mapping)
    table = [[*(MOODLE_ID_COLUMNS[c][0] for c in id_columns),
              *(h for a in assignments for h in (a, f"{a} (feedback)"))]]
    for s in students:
        empty = [c for c in id_columns if not s.get(c)]
        if empty:
            raise GradingError(f"{mapping.path}, line {s.line}: student {s.student!r} has an empty {', '.join(empty)} "
                               f"(fill it for every student or remove the column: Moodle gives a row with no "
                               f"identifier to the student of the row before)")
        line = [s.get(c) for c in id_columns]
        for a in assignments:
            row = cells.get((s.student, a))
            final = row is not None and row["status"] in FINAL_STATUSES
            line += [_number(row["score"]) if final else MOODLE_NO_GRADE, _feedback(row)]
        table.append(line)
    return table


def _write(table: Sequence[Sequence[str]], path: Path) -> Path:
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(path.name + ".tmp")
    with open(tmp, "w", newline="", encoding="utf-8") as fh:
        csv.writer(fh).writerows(table)
    tmp.replace(path)
    return path


def write_canvas(rows: Sequence[dict], mapping: LmsMapping, path: Path,
                 canvas_ids: Mapping[str, str] | None = None) -> Path:
    """Write :func:`canvas_table` to ``path`` (UTF-8 CSV; nothing written if it raises)."""
    return _write(canvas_table(rows, mapping, canvas_ids), path)


def write_moodle(rows: Sequence[dict], mapping: LmsMapping, path: Path) -> Path:
    """Write :func:`moodle_table` to ``path`` (UTF-8 CSV; nothing written if it raises)."""
    return _write(moodle_table(rows, mapping), path)


def summary(rows: Sequence[dict], mapping: LmsMapping) -> list[str]:
    """Lines for stdout: how many cells carry a grade, and every cell left without one, and why."""
    assignments, _, students, cells = _layout(rows, mapping)
    by_reason: dict[str, list[str]] = {}
    graded = 0
    for s in students:
        for a in assignments:
            row = cells.get((s.student, a))
            status = "not submitted" if row is None else row["status"]
            if status in FINAL_STATUSES:
                graded += 1
                continue
            reason = "failed" if status.startswith("failed") else status
            by_reason.setdefault(reason, []).append(f"{s.student}/{a}")
    out = [f"LMS export: {graded} of {len(students) * len(assignments)} cell(s) carry a grade"
           + ("" if not by_reason else "; the others are left empty in Canvas and '-' (no grade) in Moodle:")]
    for reason, pairs in by_reason.items():
        shown = ", ".join(pairs[:8]) + (f", ... ({len(pairs) - 8} more)" if len(pairs) > 8 else "")
        out.append(f"  {len(pairs)} {reason}: {shown}")
    extra = sorted(set(mapping.students) - {row["student"] for row in rows})
    if extra:
        out.append(f"  mapped but not in the gradebook (exported as not submitted): {', '.join(extra)}")
    return out


def export_lms(rows: Sequence[dict], mapping_path: Path, canvas: Path | None, moodle: Path | None,
               log: Callable[[str], None] = print, required: bool = False) -> list[Path]:
    """``make grades``' LMS step: write the Canvas and Moodle files ``rows`` and the mapping give.

    With no mapping file: one line saying how to get the files (or, ``required``, an
    error).  Otherwise the old ``canvas`` and ``moodle`` files are removed first (so an
    error never leaves a stale file to upload), and a file is written for each LMS whose
    id columns the mapping has (``canvas`` / ``moodle`` None: that LMS skipped).
    Returns the paths written.
    """
    mapping_path = Path(mapping_path)
    if not mapping_path.is_file() and not required:
        log(f"LMS files: not written (no {mapping_path}: write it to get Canvas and Moodle import files, "
            f"see 'Grades into Canvas or Moodle' in assignments/README.md)")
        return []
    for old in (canvas, moodle):  # an error below must not leave last run's file behind to be uploaded
        if old is not None:
            Path(old).unlink(missing_ok=True)
    mapping = read_mapping(mapping_path)
    tables: list[tuple[str, Path, list[list[str]]]] = []
    skipped = []
    if canvas is not None:
        if has_canvas_ids(mapping):
            tables.append(("Canvas", Path(canvas), canvas_table(rows, mapping)))
        else:
            skipped.append(f"Canvas: not written ({mapping_path} has no {'/'.join(CANVAS_ID_COLUMNS)} column)")
    if moodle is not None:
        if moodle_id_columns(mapping):
            tables.append(("Moodle", Path(moodle), moodle_table(rows, mapping)))
        else:
            skipped.append(f"Moodle: not written ({mapping_path} has no {'/'.join(MOODLE_ID_COLUMNS)} column)")
    if not tables:
        raise GradingError(f"{mapping_path}: no LMS id column; add {', '.join(CANVAS_ID_COLUMNS)} (Canvas) "
                           f"or {', '.join(MOODLE_ID_COLUMNS)} (Moodle)")
    written = [_write(table, path) for _, path, table in tables]
    for (lms, path, _), _path in zip(tables, written):
        id_headers = ", ".join(MOODLE_ID_COLUMNS[c][0] for c in moodle_id_columns(mapping))
        how = "Grades > Import" if lms == "Canvas" else f"Grades > Import > CSV file; Map from {id_headers}"
        log(f"{lms}: {path} ({how})")
    for line in skipped:
        log(line)
    for line in summary(rows, mapping):
        log(line)
    return written
