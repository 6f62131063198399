"""rmteach.grading.lms: the Canvas and Moodle gradebook import files ``make grades`` writes.

The layout tests feed hand-made :func:`grade_rows`-shaped rows to the writers; one
end-to-end test grades a real course (the ``make grade-demo`` three and ``dee``, whose
only submission is a corrupt notebook) and runs ``python -m rmteach.grading grades``.
"""

from __future__ import annotations

import csv
from pathlib import Path

import pytest
from _sandbox_mode import MODE as SANDBOX_MODE

from rmteach.grading import lms
from rmteach.grading.course import GradingError

A1, A2, A3 = "01_preference_probability", "02_ranking_loss", "03_gradients_and_updates"
CANVAS_HEAD = ["Student", "ID", "SIS User ID", "SIS Login ID", "Section"]


def row(student: str, assignment: str, status: str = "graded", auto: float = 0.0, auto_max: float = 10.0,
        manual: float = 0.0, manual_max: float = 2.0, pending: float = 0.0, late: float = 0.0) -> dict:
    """One :func:`grade_rows` row, ``score`` computed as grade_rows does."""
    return {"student": student, "assignment": assignment, "status": status, "auto_score": auto,
            "auto_max": auto_max, "manual_score": manual, "manual_max": manual_max, "manual_pending": pending,
            "late_penalty": late, "score": max(0.0, auto + manual - late), "max_score": auto_max + manual_max,
            "notes": ""}


#: every status once: ada graded (7.5 + 1.5 written), ben a real 0, cy failed, dee not submitted,
#: eve written answers pending, fay not autograded; A2 all graded, with ada's late penalty
ROWS = [
    row("ada", A1, auto=7.5, manual=1.5), row("ben", A1, auto=0.0),
    row("cy", A1, status="failed: preference_probability.ipynb is not valid JSON (line 1)"),
    row("dee", A1, status="not submitted"), row("eve", A1, status="needs manual grading", auto=10.0, pending=2.0),
    row("fay", A1, status="not autograded"),
    *[row(s, A2, auto=20.0, auto_max=27.0, late=(3.0 if s == "ada" else 0.0))
      for s in ("ada", "ben", "cy", "dee", "eve", "fay")],
]

MAPPING = """student,name,canvas_id,sis_user_id,sis_login_id,section,moodle_username,moodle_email
ada,"Lovelace, Ada",101,S001,ada.l,Section A,alovelace,ada@example.org
ben,"Chevy ""The Man"" Chase",102,,ben.c,Section A,bchase,ben@example.org
cy,Cy Young,,S003,,Section B,cyoung,cy@example.org
dee,Dee,,,dee.d,,ddee,dee@example.org
eve,Eve,105,,,,eve,eve@example.org
fay,Fay,106,,,,fay,fay@example.org
"""


@pytest.fixture
def mapping(tmp_path: Path) -> lms.LmsMapping:
    path = tmp_path / lms.MAPPING_FILE
    path.write_text(MAPPING, encoding="utf-8")
    return lms.read_mapping(path)


def write_map(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "map.csv"
    path.write_text(text, encoding="utf-8")
    return path


def read_back(path: Path) -> list[list[str]]:
    with open(path, newline="", encoding="utf-8") as fh:
        return list(csv.reader(fh))


def by_student(table: list[list[str]], column: int = 0) -> dict[str, list[str]]:
    return {line[column]: line for line in table}


# ---------------------------------------------------------------- the mapping file

def test_the_mapping_gives_each_student_their_ids(mapping):
    assert sorted(mapping.students) == ["ada", "ben", "cy", "dee", "eve", "fay"]
    ada = mapping.students["ada"]
    assert (ada.get("name"), ada.get("canvas_id"), ada.get("sis_user_id"), ada.get("sis_login_id")) == \
        ("Lovelace, Ada", "101", "S001", "ada.l")
    assert mapping.students["ben"].get("name") == 'Chevy "The Man" Chase'
    assert mapping.students["cy"].get("canvas_id") == "" and mapping.students["cy"].line == 4
    assert mapping.students["ada"].get("moodle_idnumber") == ""  # a column the file does not have
    assert lms.moodle_id_columns(mapping) == ["moodle_username", "moodle_email"] and lms.has_canvas_ids(mapping)


def test_a_byte_order_mark_and_blank_lines_are_fine(tmp_path):
    m = lms.read_mapping(write_map(tmp_path, "\ufeffstudent,canvas_id\n\nada,1\n,\n"))
    assert list(m.students) == ["ada"] and m.columns == ("student", "canvas_id")


@pytest.mark.parametrize("text, message", [
    ("student,canvas_id,email\nada,1,a@x\n", "line 1: unknown column(s) ['email']; the columns are student, name"),
    ("name,canvas_id\nAda,1\n", "line 1: no 'student' column"),
    ("student,canvas_id,canvas_id\nada,1,1\n", "line 1: column(s) ['canvas_id'] appear more than once"),
    ("", "line 1 must be a header row"),
    ("student,canvas_id\nada,1\n ,2\n", "line 3: empty 'student'"),
    ("student,canvas_id\nada,1\nben,2\nada,3\n", "line 4: student 'ada' again (first on line 2)"),
    ("student,canvas_id\nada,1\nben,1\n", "line 3: canvas_id '1' of 'ben' is also given to 'ada' (line 2)"),
    ("student,moodle_email\nada,a@x\nben,a@x\n", "line 3: moodle_email 'a@x' of 'ben' is also given to 'ada' (line 2)"),
    ("student,name,canvas_id\nada,Lovelace, Ada,1\n", "line 2: 4 field(s) where the header has 3"),
])
def test_a_bad_mapping_file_is_an_error_naming_the_file_and_line(tmp_path, text, message):
    path = write_map(tmp_path, text)
    with pytest.raises(GradingError) as info:
        lms.read_mapping(path)
    assert str(path) in str(info.value) and message in str(info.value)


def test_a_missing_mapping_file_is_an_error(tmp_path):
    with pytest.raises(GradingError, match=r"nope\.csv does not exist \(columns: student, name"):
        lms.read_mapping(tmp_path / "nope.csv")


def test_a_student_of_the_gradebook_without_a_mapping_row_is_an_error_naming_them_and_the_file(tmp_path):
    path = write_map(tmp_path, "student,canvas_id,moodle_username\nada,1,ada\n")
    m = lms.read_mapping(path)
    rows = [row("ada", A1, auto=3.0), row("ben", A1), row("zoe", A1)]
    for build in (lms.canvas_table, lms.moodle_table):
        with pytest.raises(GradingError) as info:
            build(rows, m)
        assert f"{path}: no row for student(s) ben, zoe of the gradebook" in str(info.value)


def test_canvas_needs_an_id_for_every_student(tmp_path):
    path = write_map(tmp_path, "student,name,canvas_id,sis_login_id\nada,Ada,1,\nben,Ben,,\n")
    with pytest.raises(GradingError, match=r"line 3: student 'ben' has no Canvas id"):
        lms.canvas_table([row("ada", A1), row("ben", A1)], lms.read_mapping(path))
    no_ids = lms.read_mapping(write_map(tmp_path, "student,name,moodle_username\nada,Ada,ada\n"))
    with pytest.raises(GradingError, match=r"no Canvas id column"):
        lms.canvas_table([row("ada", A1)], no_ids)


def test_moodle_needs_every_identifier_filled_since_a_blank_one_means_the_row_before(tmp_path):
    path = write_map(tmp_path, "student,moodle_username,moodle_email\nada,ada,ada@x\nben,ben,\n")
    with pytest.raises(GradingError, match=r"line 3: student 'ben' has an empty moodle_email"):
        lms.moodle_table([row("ada", A1), row("ben", A1)], lms.read_mapping(path))
    with pytest.raises(GradingError, match=r"no Moodle identifier column"):
        lms.moodle_table([row("ada", A1)], lms.read_mapping(write_map(tmp_path, "student,canvas_id\nada,1\n")))


# ---------------------------------------------------------------- Canvas

def test_canvas_layout_header_points_possible_and_one_row_per_student(mapping):
    table = lms.canvas_table(ROWS, mapping)
    assert table[0] == [*CANVAS_HEAD, A1, A2]
    assert table[1] == ["Points Possible", "", "", "", "", "12", "29"]
    names = [line[0] for line in table[2:]]
    assert names == ["Lovelace, Ada", 'Chevy "The Man" Chase', "Cy Young", "Dee", "Eve", "Fay"]
    assert all(len(line) == len(table[0]) for line in table)
    rows = by_student(table[2:])
    assert rows["Lovelace, Ada"][:5] == ["Lovelace, Ada", "101", "S001", "ada.l", "Section A"]
    assert rows["Cy Young"][:5] == ["Cy Young", "", "S003", "", "Section B"]


def test_canvas_a_real_zero_is_0_and_no_final_grade_is_an_empty_cell(mapping):
    rows = by_student(lms.canvas_table(ROWS, mapping)[2:])
    a1 = {name: line[5] for name, line in rows.items()}
    assert a1 == {"Lovelace, Ada": "9", 'Chevy "The Man" Chase': "0", "Cy Young": "",  # graded, real 0, failed
                  "Dee": "", "Eve": "", "Fay": ""}  # not submitted, needs manual grading, not autograded
    assert rows["Lovelace, Ada"][6] == "17"  # 20 less the 3-point late penalty
    assert all(line[6] == "20" for name, line in rows.items() if name != "Lovelace, Ada")
    assert "EX" not in {cell for line in rows.values() for cell in line}  # excusing is the instructor's call


def test_canvas_assignment_columns_can_carry_the_canvas_assignment_id(mapping):
    table = lms.canvas_table(ROWS, mapping, canvas_ids={A2: "7148451"})
    assert table[0][5:] == [A1, f"{A2} (7148451)"]
    with pytest.raises(GradingError, match=r"canvas_ids: no such assignment\(s\) \['09_nope'\]"):
        lms.canvas_table(ROWS, mapping, canvas_ids={"09_nope": "1"})


def test_canvas_the_student_column_falls_back_on_the_nbgrader_id(tmp_path):
    m = lms.read_mapping(write_map(tmp_path, "student,canvas_id\nada,1\n"))
    assert lms.canvas_table([row("ada", A1, auto=2.25)], m)[2] == ["ada", "1", "", "", "", "2.25"]


def test_canvas_file_quotes_names_with_commas_and_quotes_and_parses_back(mapping, tmp_path):
    path = lms.write_canvas(ROWS, mapping, tmp_path / "out" / "grades-canvas.csv")
    text = path.read_bytes().decode("utf-8")
    assert '"Lovelace, Ada",101,S001,ada.l,Section A,9,17\r\n' in text
    assert '"Chevy ""The Man"" Chase",102,,ben.c,Section A,0,20\r\n' in text
    assert text.startswith("Student,ID,SIS User ID,SIS Login ID,Section,01_preference_probability,02_ranking_loss\r\n"
                           "Points Possible,,,,,12,29\r\n")
    assert read_back(path) == lms.canvas_table(ROWS, mapping)


# ---------------------------------------------------------------- Moodle

def test_moodle_layout_identifier_columns_then_a_grade_and_a_feedback_column_per_assignment(mapping):
    table = lms.moodle_table(ROWS, mapping)
    assert table[0] == ["Username", "Email address", A1, f"{A1} (feedback)", A2, f"{A2} (feedback)"]
    assert [line[0] for line in table[1:]] == ["alovelace", "bchase", "cyoung", "ddee", "eve", "fay"]
    assert all(len(line) == len(table[0]) for line in table)
    assert "Points Possible" not in {line[0] for line in table}  # Moodle's maximum is the grade item's


def test_moodle_a_real_zero_is_0_and_no_final_grade_is_a_dash_with_the_reason_as_feedback(mapping):
    rows = by_student(lms.moodle_table(ROWS, mapping)[1:])
    assert rows["alovelace"][2:] == ["9", "autograded 7.5/10, written 1.5/2",
                                     "17", "autograded 20/27, written 0/2, late penalty -3"]
    assert rows["bchase"][2:4] == ["0", "autograded 0/10, written 0/2"]
    failed = "could not be graded (failed: preference_probability.ipynb is not valid JSON (line 1)); not a 0"
    assert rows["cyoung"][2:4] == ["-", failed]
    assert rows["ddee"][2:4] == ["-", "not submitted"]
    assert rows["eve"][2:4] == ["-", "written answers not graded yet (2 pts); autograded 10/10"]
    assert rows["fay"][2:4] == ["-", "submitted, not graded yet"]


def test_moodle_file_parses_back(mapping, tmp_path):
    path = lms.write_moodle(ROWS, mapping, tmp_path / "grades-moodle.csv")
    assert read_back(path) == lms.moodle_table(ROWS, mapping)
    assert '"autograded 7.5/10, written 1.5/2"' in path.read_text(encoding="utf-8")


def test_moodle_writes_the_idnumber_column_when_the_mapping_has_it(tmp_path):
    m = lms.read_mapping(write_map(tmp_path, "student,moodle_idnumber\nada,2026-0042\n"))
    assert lms.moodle_table([row("ada", A1, auto=4.0)], m) == [
        ["ID number", A1, f"{A1} (feedback)"], ["2026-0042", "4", "autograded 4/10, written 0/2"]]


# ---------------------------------------------------------------- both

def test_a_mapped_student_the_gradebook_does_not_know_is_exported_as_not_submitted(tmp_path):
    m = lms.read_mapping(write_map(tmp_path, "student,canvas_id,moodle_username\nada,1,ada\nnew,2,new\n"))
    rows = [row("ada", A1, auto=5.0), row("ada", A2, auto=0.0)]
    assert lms.canvas_table(rows, m)[3] == ["new", "2", "", "", "", "", ""]
    assert lms.moodle_table(rows, m)[2] == ["new", "-", "not submitted", "-", "not submitted"]
    assert "mapped but not in the gradebook (exported as not submitted): new" in lms.summary(rows, m)[-1]


def test_the_summary_names_every_cell_without_a_grade_and_why(mapping):
    lines = lms.summary(ROWS, mapping)
    assert lines[0] == ("LMS export: 8 of 12 cell(s) carry a grade; the others are left empty in Canvas "
                        "and '-' (no grade) in Moodle:")
    assert set(lines[1:]) == {f"  1 failed: cy/{A1}", f"  1 not submitted: dee/{A1}",
                              f"  1 needs manual grading: eve/{A1}", f"  1 not autograded: fay/{A1}"}


def test_export_without_a_mapping_file_writes_nothing_and_says_how(tmp_path):
    log: list[str] = []
    out = lms.export_lms(ROWS, tmp_path / lms.MAPPING_FILE, tmp_path / "c.csv", tmp_path / "m.csv", log=log.append)
    assert out == [] and not (tmp_path / "c.csv").exists() and not (tmp_path / "m.csv").exists()
    assert len(log) == 1 and log[0].startswith(f"LMS files: not written (no {tmp_path / lms.MAPPING_FILE}")
    with pytest.raises(GradingError, match="does not exist"):
        lms.export_lms(ROWS, tmp_path / lms.MAPPING_FILE, tmp_path / "c.csv", None, required=True)


def test_export_writes_only_the_lms_the_mapping_has_ids_for(tmp_path):
    students = ["ada", "ben", "cy", "dee", "eve", "fay"]
    path = write_map(tmp_path, "student,canvas_id\n" + "".join(f"{s},{i}\n" for i, s in enumerate(students)))
    log: list[str] = []
    out = lms.export_lms(ROWS, path, tmp_path / "c.csv", tmp_path / "m.csv", log=log.append)
    assert out == [tmp_path / "c.csv"] and not (tmp_path / "m.csv").exists()
    assert f"Moodle: not written ({path} has no moodle_username/moodle_email/moodle_idnumber column)" in log


def test_an_export_error_leaves_no_old_file_behind_to_upload(mapping, tmp_path):
    canvas, moodle = tmp_path / "c.csv", tmp_path / "m.csv"
    lms.export_lms(ROWS, mapping.path, canvas, moodle, log=lambda line: None)
    assert canvas.exists() and moodle.exists()
    with pytest.raises(GradingError, match=r"no row for student\(s\) zoe"):
        lms.export_lms([*ROWS, row("zoe", A1)], mapping.path, canvas, moodle, log=lambda line: None)
    assert not canvas.exists() and not moodle.exists()


# ---------------------------------------------------------------- end to end, on a graded course

@pytest.fixture(scope="module")
def graded_course(tmp_path_factory) -> Path:
    """The ``make grade-demo`` course (ada, ben, cy; 6 assignments) plus ``dee``, whose
    one submission (assignment 03) is a corrupt notebook: failed, and not submitted elsewhere."""
    from rmteach.grading import pipeline
    from rmteach.grading.demo import demo

    course = tmp_path_factory.mktemp("lms") / "course"
    assert demo(keep=course, log=lambda *a: None, sandbox=SANDBOX_MODE) == 0
    folder = course / "submitted" / "dee" / A3
    folder.mkdir(parents=True)
    (folder / "gradients_and_updates.ipynb").write_text('{"cells": [ this is not JSON')
    results = pipeline.autograde(course, log=lambda *a: None, sandbox=SANDBOX_MODE)
    assert [(r.student, r.assignment) for r in results if r.failed] == [("dee", A3)]
    return course


def test_make_grades_writes_both_lms_files_from_a_real_gradebook(graded_course, capsys):
    from rmteach.grading.cli import main
    from rmteach.grading.gradebook import grade_rows

    course = graded_course
    for name in ("grades-canvas.csv", "grades-moodle.csv", lms.MAPPING_FILE):
        (course / name).unlink(missing_ok=True)
    assert main(["grades", "--course", str(course)]) == 0
    out = capsys.readouterr().out
    assert "LMS files: not written (no " in out and not (course / "grades-canvas.csv").exists()

    (course / lms.MAPPING_FILE).write_text(
        "student,name,canvas_id,sis_login_id,moodle_username\n"
        "ada,\"Lovelace, Ada\",101,ada.l,alovelace\nben,\"Franklin, Ben\",102,,bfranklin\n"
        "cy,Cy,103,cy.y,cyoung\ndee,Dee,,dee.d,ddee\n", encoding="utf-8")
    assert main(["grades", "--course", str(course)]) == 0
    out = capsys.readouterr().out
    assert f"Canvas: {course / 'grades-canvas.csv'}" in out and f"Moodle: {course / 'grades-moodle.csv'}" in out
    assert f"  1 failed: dee/{A3}" in out and "not submitted: dee/01_preference_probability" in out
    assert f"needs manual grading: ada/{A1}" in out

    rows = {(r["student"], r["assignment"]): r for r in grade_rows(course)}
    assignments = sorted({a for _, a in rows})
    assert len(assignments) == 6
    canvas = read_back(course / "grades-canvas.csv")
    assert canvas[0] == [*CANVAS_HEAD, *assignments]
    points = [lms._number(rows[("ada", a)]["max_score"]) for a in assignments]
    assert canvas[1] == ["Points Possible", "", "", "", "", *points]
    assert canvas[1][5:] == ["12", "29", "16", "33", "40", "25"]  # the course's points (autograded + written)
    c = by_student(canvas[2:], column=1)
    assert c["102"][0] == "Franklin, Ben" and c["102"][5:] == ["0"] * 6  # the untouched release: real zeros
    assert c[""][0] == "Dee" and c[""][5:] == [""] * 6  # failed (03) and not submitted: no grade, not 0
    assert c["103"][5:] == [("" if rows[("cy", a)]["status"] != "graded" else lms._number(rows[("cy", a)]["score"]))
                            for a in assignments]
    assert c["103"][5:8] == ["5", "12", "10"]
    assert c["101"][7] == "16" and c["101"][5] == ""  # ada: 03 has no written part; 01's written answer is pending

    moodle = read_back(course / "grades-moodle.csv")
    assert moodle[0] == ["Username", *(h for a in assignments for h in (a, f"{a} (feedback)"))]
    m = by_student(moodle[1:])
    assert m["bfranklin"][1::2] == ["0"] * 6
    assert m["ddee"][1::2] == ["-"] * 6
    assert m["ddee"][6].startswith("could not be graded (failed: ") and m["ddee"][2] == "not submitted"
    assert m["alovelace"][1] == "-" and m["alovelace"][2] == "written answers not graded yet (2 pts); autograded 10/10"

    with pytest.raises(SystemExit):
        main(["grades", "--course", str(course), "--bogus"])
    assert main(["grades", "--course", str(course), "--lms-map", str(course / "nope.csv")]) == 1
    assert "nope.csv does not exist" in capsys.readouterr().err
