"""The class report (make report): its numbers against the gradebook, and the page itself.

One real graded course per module: the demo's three students (``ada`` full solution,
``ben`` the untouched release, ``cy`` every other answer), plus ``dee``, whose notebook is
not JSON (a failed submission), and ``eve``, a full solution with planted answers: wrong
choices, a computed answer, and a ``<script>`` where a letter belongs.  Every number the
report gathers is checked against the gradebook read independently (SQLite and
:func:`grade_rows`), the status file, and the answers written here.
"""

from __future__ import annotations

import html
import json
import math
import sqlite3
import stat
import statistics
import sys
from pathlib import Path

import pytest

pytest.importorskip("nbgrader")

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _sandbox_mode import MODE as SANDBOX_MODE  # noqa: E402

from rmteach.grading import cli  # noqa: E402
from rmteach.grading.course import (  # noqa: E402
    REPO_COURSE, STATUS_FILE, GradingError, _meta, _read_nb, copy_course,
)
from rmteach.grading.demo import build_submission, demo, write_submission  # noqa: E402
from rmteach.grading.gradebook import grade_rows  # noqa: E402
from rmteach.grading.pipeline import autograde  # noqa: E402
from rmteach.grading.report import gather_report, read_answer, render_report, write_report  # noqa: E402

SCRIPT = '<script>alert("eve")</script>'
#: eve's planted answer cells: {assignment: {answer cell grade_id: new source}}
EVE_CELLS = {
    "01_preference_probability": {
        "q04_answer": 'answer_q04 = {"A", "B", "C"}  # A does not belong',
        "q16_answer": f"answer_q16 = '{SCRIPT}'",
    },
    "02_ranking_loss": {
        "q02_answer": 'answer_q02 = "E"',
        "q11_answer": 'answer_q11 = {"run_1": "B", "run_2": "C", "run_3": "B", "run_4": "E", "run_5": "D"}',
        "q14_answer": 'answer_q14 = "c".upper()  # right, but computed',
    },
    "05_rlhf_case_studies": {
        "q23_answer": 'answer_q23 = "B"  # right; the test cell computes the key',
        "q24_answer": 'answer_q24 = "C"',
        "q25_answer": 'answer_q25 = {"A", "B"}',
    },
}
#: the wrong options planted above, as the report must count them: (assignment, question) -> {option: students}
PLANTED_WRONG = {
    ("01_preference_probability", "answer_q04"): {"A": ["eve"]},
    ("02_ranking_loss", "answer_q02"): {"E": ["eve"]},
    ("02_ranking_loss", "answer_q11['run_1']"): {"B": ["eve"]},
    ("05_rlhf_case_studies", "answer_q24"): {"C": ["eve"]},
}
#: the misconception each planted wrong option must be shown with (the test cells' why= texts)
PLANTED_WHY = {
    ("01_preference_probability", "answer_q04", "A"): "A is consistent: sigma(2.0 - 1.0) = 0.73, the printed value.",
    ("02_ranking_loss", "answer_q02", "E"):
        "large rewards are not a large gap: the loss sees only r_pref - r_rej, here 0.2.",
    ("02_ranking_loss", "answer_q11['run_1']", "B"):
        "overfitting needs a validation loss that climbs while the training loss falls; in this run it does not climb.",
    ("05_rlhf_case_studies", "answer_q24", "C"): "beta = 1.0 drifts 0.54 nats, just above the 0.5-nat budget.",
}
DEE_NOTEBOOK = '{"cells": [' + SCRIPT  # not JSON


def _silent(*args, **kwargs):
    pass


@pytest.fixture(scope="module")
def course(tmp_path_factory) -> Path:
    root = tmp_path_factory.mktemp("report") / "course"
    log: list[str] = []
    status = demo(keep=root, log=lambda *a: log.append(" ".join(map(str, a))), sandbox=SANDBOX_MODE)
    assert status == 0, "\n".join(log[-30:])
    for assignment, cells in EVE_CELLS.items():
        notebooks = {}
        for src in sorted((root / "source" / assignment).glob("*.ipynb")):
            nb = build_submission(_read_nb(root / "release" / assignment / src.name), _read_nb(src), lambda gid: True)
            for cell in nb.cells:
                if _meta(cell).get("grade_id") in cells:
                    cell.source = cells[_meta(cell)["grade_id"]]
            notebooks[src.name] = nb
        write_submission(root, "eve", assignment, notebooks)
    dee = root / "submitted" / "dee" / "01_preference_probability"
    dee.mkdir(parents=True)
    (dee / "preference_probability.ipynb").write_text(DEE_NOTEBOOK)
    results = autograde(root, sandbox=SANDBOX_MODE, log=_silent)
    assert sorted((r.student, r.assignment, r.failed) for r in results) == [
        ("dee", "01_preference_probability", True), ("eve", "01_preference_probability", False),
        ("eve", "02_ranking_loss", False), ("eve", "05_rlhf_case_studies", False)]
    return root


@pytest.fixture(scope="module")
def data(course) -> dict:
    return gather_report(course)


@pytest.fixture(scope="module")
def page(course) -> tuple[Path, str]:
    path = write_report(course)
    return path, path.read_text(encoding="utf-8")


def _sqlite_grades(course: Path) -> dict:
    """{(assignment, notebook, cell): {student: (score, max_score, pending)}} straight from gradebook.db."""
    con = sqlite3.connect(f"file:{course / 'gradebook.db'}?mode=ro", uri=True)
    try:
        rows = con.execute(
            """SELECT a.name, n.name, c.name, sa.student_id,
                      coalesce(g.manual_score, g.auto_score, 0) + coalesce(g.extra_credit, 0), gc.max_score,
                      g.needs_manual_grade AND g.manual_score IS NULL AND g.auto_score IS NULL
               FROM grade g JOIN submitted_notebook sn ON g.notebook_id = sn.id
               JOIN submitted_assignment sa ON sn.assignment_id = sa.id JOIN assignment a ON sa.assignment_id = a.id
               JOIN notebook n ON sn.notebook_id = n.id JOIN base_cell c ON g.cell_id = c.id
               JOIN grade_cells gc ON gc.id = c.id""").fetchall()
    finally:
        con.close()
    out: dict = {}
    for a, nb, cell, student, score, top, pending in rows:
        out.setdefault((a, nb, cell), {})[student] = (float(score), float(top), bool(pending))
    return out


def _graded(course: Path) -> dict[str, set[str]]:
    out: dict[str, set[str]] = {}
    for r in grade_rows(course):
        if r["status"] in ("graded", "needs manual grading"):
            out.setdefault(r["assignment"], set()).add(r["student"])
    return out


def test_score_counts_mean_and_median_are_the_gradebooks(course, data):
    rows = grade_rows(course)
    assert [a["name"] for a in data["assignments"]] == sorted({r["assignment"] for r in rows})
    for a in data["assignments"]:
        mine = [r for r in rows if r["assignment"] == a["name"]]
        graded = [r for r in mine if r["status"] in ("graded", "needs manual grading")]
        assert a["counts"]["graded"] + a["counts"]["needs manual grading"] == len(graded)
        assert a["counts"]["failed"] == sum(r["status"].startswith("failed: ") for r in mine)
        assert a["counts"]["not submitted"] == sum(r["status"] == "not submitted" for r in mine)
        assert a["scores"] == {r["student"]: r["score"] for r in graded}
        assert a["mean"] == pytest.approx(statistics.fmean(r["score"] for r in graded))
        assert a["median"] == pytest.approx(statistics.median(r["score"] for r in graded))
        assert sum(a["histogram"]["counts"]) == len(graded)
        assert a["histogram"]["edges"][0] == 0 and a["histogram"]["edges"][-1] == a["max_score"]
    by_name = {a["name"]: a for a in data["assignments"]}
    # the five students: dee failed 01 and submitted nothing else; eve submitted 01, 02 and 05
    assert by_name["01_preference_probability"]["counts"]["failed"] == 1
    assert by_name["01_preference_probability"]["students"] == 5
    assert by_name["03_gradients_and_updates"]["counts"]["not submitted"] == 2
    assert by_name["02_ranking_loss"]["counts"]["not submitted"] == 1
    assert by_name["01_preference_probability"]["scores"]["ada"] == 10 + 0  # written answer not graded yet


def test_pass_shares_per_cell_are_the_gradebooks(course, data):
    grades, graded = _sqlite_grades(course), _graded(course)
    seen = 0
    for a in data["assignments"]:
        students = graded[a["name"]]
        cells = {(c["notebook"], c["grade_id"]): c for c in a["cells"]}
        assert set(cells) == {(nb, cell) for (name, nb, cell) in grades if name == a["name"]}
        for (nb, cell), c in cells.items():
            got = {s: v for s, v in grades[(a["name"], nb, cell)].items() if s in students}
            assert c["graded"] == len(students) == len(got)
            full = sum(not p and top > 0 and score == top for score, top, p in got.values())
            partial = sum(not p and 0 < score < top for score, top, p in got.values())
            pending = sum(p for _, _, p in got.values())
            assert (c["full"], c["partial"], c["pending"]) == (full, partial, pending), (a["name"], cell)
            assert c["zero"] == len(got) - full - partial - pending
            assert c["full_share"] == pytest.approx(full / len(got))
            assert c["points"] == next(iter(got.values()))[1]
            seen += 1
    assert seen > 60  # every grade cell of the six assignments
    q04 = next(c for c in data["assignments"][0]["cells"] if c["grade_id"] == "q04_inconsistent_report")
    assert (q04["full"], q04["graded"]) == (2, 4)  # ada and cy; ben unanswered, eve picked A too
    written = next(c for c in data["assignments"][0]["cells"] if c["grade_id"] == "q13_written")
    assert written["kind"].startswith("written") and written["pending"] >= 1


def test_wrong_options_are_the_planted_ones_with_their_misconceptions(data):
    wrong = {}
    for a in data["assignments"]:
        for q in a["choices"]:
            for w in q["wrong"]:
                wrong.setdefault((a["name"], q["name"]), {})[w["option"]] = w["students"]
                assert w["count"] == len(w["students"])
                if (a["name"], q["name"], w["option"]) in PLANTED_WHY:
                    assert w["why"] == PLANTED_WHY[(a["name"], q["name"], w["option"])]
    assert wrong == PLANTED_WRONG  # ada, ben and cy picked nothing wrong: they answered right or not at all


def test_each_choice_is_counted_once_right_wrong_unreadable_or_unanswered(data):
    questions = {(a["name"], q["name"]): q for a in data["assignments"] for q in a["choices"]}
    assert len(questions) >= 30
    for (assignment, name), q in questions.items():
        wrong = {s for w in q["wrong"] for s in w["students"]} | {w["student"] for w in q["wrong_sets"]}
        unreadable = {u["student"] for u in q["unreadable"]} - set(q["right_students"])
        assert q["right"] == len(q["right_students"])
        assert q["right"] + len(wrong) + len(unreadable) + len(q["no_answer"]) == q["graded"], name
    q16 = questions[("01_preference_probability", "answer_q16")]
    assert [(u["student"], u["why"], u["text"]) for u in q16["unreadable"]] == [
        ("eve", "not a valid pick", f"answer_q16 = '{SCRIPT}'")]
    q14 = questions[("02_ranking_loss", "answer_q14")]  # computed but right: its cell got the points
    assert (q14["key"], q14["right"], q14["right_unreadable"]) == ("C", 2, 1)
    assert sorted(q14["right_students"]) == ["ada", "eve"]
    assert sorted(q14["no_answer"]) == ["ben", "cy"]
    q04 = questions[("01_preference_probability", "answer_q04")]
    assert (q04["key"], q04["key_from"], q04["missed"]) == ("{B, C}", "the source solution", [])
    q22 = questions[("05_rlhf_case_studies", "answer_q22")]
    assert (q22["key"], q22["key_from"]) == ("B", "the test cell")
    q24 = questions[("05_rlhf_case_studies", "answer_q24")]  # key computed in the test cell, never a literal
    assert q24["key"] is None and q24["key_from"].startswith("unknown")
    assert [u["student"] for u in q24["unreadable"]] == ["ada"] and q24["right_students"] == ["ada"]
    q23 = questions[("05_rlhf_case_studies", "answer_q23")]  # computed key, told by eve's pick that got the points
    assert (q23["key"], q23["key_from"], q23["right"], q23["graded"]) == ("B", "the picks that got full points", 3, 4)
    q25 = questions[("05_rlhf_case_studies", "answer_q25")]  # computed key: a wrong set, options unknown
    assert q25["key"] is None and q25["wrong"] == [] and q25["wrong_sets"] == [dict(student="eve", pick="{A, B}")]
    run_2 = questions[("02_ranking_loss", "answer_q11['run_2']")]
    assert (run_2["key"], sorted(run_2["right_students"])) == ("C", ["ada", "eve"])


def test_failed_submissions_and_reasons_are_the_status_files(course, data):
    status = json.loads((course / STATUS_FILE).read_text())
    failed = {k: v for k, v in status.items() if v["status"].startswith("failed: ")}
    assert list(failed) == ["dee/01_preference_probability"]
    assert [(f["student"], f["assignment"], f["reason"]) for f in data["failed"]] == [
        ("dee", "01_preference_probability", failed["dee/01_preference_probability"]["status"][len("failed: "):])]
    assert "not valid JSON" in data["failed"][0]["reason"]


def test_grading_time_is_the_status_files(course, data):
    status = json.loads((course / STATUS_FILE).read_text())
    seconds = {tuple(k.split("/")): v["seconds"] for k, v in status.items()}
    t = data["timing"]
    assert t["jobs"] == len(seconds) == 18 + 4
    assert t["total"] == pytest.approx(math.fsum(seconds.values()))
    assert t["mean"] == pytest.approx(t["total"] / t["jobs"])
    top = sorted(seconds.values(), reverse=True)[:5]
    assert [j["seconds"] for j in t["slowest"]] == top
    per = {p["assignment"]: p for p in t["per_assignment"]}
    for assignment in per:
        mine = [s for (_, a), s in seconds.items() if a == assignment]
        assert (per[assignment]["jobs"], per[assignment]["total"]) == (len(mine), pytest.approx(math.fsum(mine)))
        assert per[assignment]["max"] == max(mine)


def test_page_shows_the_numbers_and_the_misconceptions(data, page):
    _, text = page
    assert "For instructors only" in text
    for a in data["assignments"]:
        c = a["counts"]
        graded = c["graded"] + c["needs manual grading"]
        assert f"<td>{a['name']}</td><td class=n>{a['students']}</td><td class=n>{graded}</td>" in text
        for cell in a["cells"]:
            assert f"{cell['full']}/{cell['graded']} ({100 * cell['full_share']:.0f}%)" in text
    for why in PLANTED_WHY.values():
        assert html.escape(why) in text
    assert "wrong (the key is computed, so the wrong options are not known): eve {A, B}" in text
    t = data["timing"]
    assert f"{t['total']:.1f} s of grading in all" in text
    assert f"<td>dee</td><td>01_preference_probability</td><td>{html.escape(data['failed'][0]['reason'])}</td>" in text
    assert text.count("data:image/png;base64,") == 1 + len(data["assignments"]) + 1  # scores, cells, time


def test_page_escapes_what_students_wrote(page):
    _, text = page
    assert "<script" not in text.lower()  # the page has no script of its own, and none of eve's
    assert html.escape(f"answer_q16 = '{SCRIPT}'") in text


def test_page_is_private_to_its_owner(course, page):
    path, _ = page
    assert path == course / "report.html"
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    again = write_report(course)  # an existing page is replaced, still 0600
    assert again == path and stat.S_IMODE(path.stat().st_mode) == 0o600
    for folder in ("release", "feedback", "source", "submitted"):
        with pytest.raises(GradingError, match="students see"):
            write_report(course, course / folder / "report.html")
    assert not list((course / "release").rglob("*.html")) and not (course / "feedback" / "report.html").exists()


def test_render_escapes_every_string_it_is_given():
    evil = "<img src=x onerror=alert(1)>"
    data = dict(course=evil, generated=evil, failed=[dict(student=evil, assignment=evil, reason=evil, when=evil,
                                                          notes=evil, log_tail=[evil])],
                timing=dict(jobs=1, total=1.0, mean=1.0, median=1.0,
                            slowest=[dict(student=evil, assignment=evil, seconds=1.0, status=evil)],
                            per_assignment=[dict(assignment=evil, jobs=1, total=1.0, mean=1.0, max=1.0)]),
                assignments=[dict(name=evil, max_score=1.0, students=1, scores={}, mean=None, median=None,
                                  counts={"graded": 0, "needs manual grading": 0, "failed": 1, "not autograded": 0,
                                          "not submitted": 0},
                                  histogram=dict(edges=[0.0, 1.0], counts=[0]), cells=[],
                                  choices=[dict(notebook=evil, grade_id=evil, name=evil, multi=True, options=["A"],
                                                key=evil, key_from=evil, graded=1, readable=1, right=0,
                                                right_students=[], right_unreadable=0, picked={},
                                                wrong=[dict(option=evil, count=1, students=[evil], why=evil)],
                                                missed=[dict(option=evil, count=1, students=[evil])],
                                                wrong_sets=[dict(student=evil, pick=evil)],
                                                unreadable=[dict(student=evil, why=evil, text=evil)],
                                                no_answer=[evil])])])
    text = render_report(data)
    assert "<img src=x" not in text and html.escape(evil) in text


def test_reading_an_answer_never_runs_it(tmp_path):
    marker = tmp_path / "ran"
    cells = ["x = 1", f"answer = __import__('pathlib').Path({str(marker)!r}).touch()"]
    assert read_answer(cells, "answer")[:2] == (None, "computed, not a literal")
    assert not marker.exists()
    assert read_answer(['answer = "B"', "answer = 'c'  # changed my mind"], "answer")[:2] == ("c", "")
    assert read_answer(["answer = set()"], "answer")[:2] == (set(), "")
    assert read_answer(['answer = {"A"}', 'answer.add("B")'], "answer")[:2] == (None, "assigned or changed by code")
    assert read_answer(['if True:\n    answer = "A"'], "answer")[:2] == (None, "assigned or changed by code")
    broken = read_answer(['answer = "A"', "answer = (", "y = 2"], "answer")
    assert broken[:2] == (None, "a cell that binds it does not parse")
    assert read_answer(["# YOUR CODE HERE\nraise NotImplementedError()"], "answer")[:2] == (None, "no answer")


def test_course_without_a_gradebook_is_a_clear_error(tmp_path):
    course = copy_course(REPO_COURSE, tmp_path / "course")
    with pytest.raises(GradingError, match="no gradebook yet"):
        gather_report(course)
    assert not (course / "gradebook.db").exists()  # nbgrader did not create an empty one
    with pytest.raises(GradingError, match="not an nbgrader course"):
        gather_report(tmp_path)


def test_cli_report_writes_the_page(course, tmp_path, capsys):
    out = tmp_path / "class.html"
    assert cli.main(["report", "--course", str(course), "--out", str(out)]) == 0
    assert str(out) in capsys.readouterr().out
    assert stat.S_IMODE(out.stat().st_mode) == 0o600 and "For instructors only" in out.read_text()
    assert cli.main(["report", "--course", str(course), "--out", str(course / "feedback" / "r.html")]) == 1
    assert "students see" in capsys.readouterr().err


def test_unreachable_gradebook_is_a_clear_error_with_the_password_masked(tmp_path, monkeypatch):
    course = copy_course(REPO_COURSE, tmp_path / "course")
    monkeypatch.setenv("RMTEACH_GRADEBOOK_URL", "postgresql+psycopg://grader:s3cret@127.0.0.1:9/rmteach")
    with pytest.raises(GradingError) as err:
        gather_report(course)
    assert "s3cret" not in str(err.value) and "***" in str(err.value)
