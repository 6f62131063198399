"""Bad submissions graded in one batch with honest ones (tests/bad_submissions.py).

Builds every kind of bad submission from the release of assignment 03 in a
temporary copy of the course, autogrades them all with two honest students in
ONE batch (``rmteach.grading.pipeline.autograde``), and checks for every kind: the
points of every test cell (from the gradebook), the status (graded, or failed
and told apart from a real 0 in the CSV export), a log line saying why, that
the batch finished, that the honest students got the same grades as when
graded alone, and that a second (forced) run gives the same grades.

Per-cell timeout 5 s and a 1 GiB memory bound (in the copy's
nbgrader_config.py) keep the infinite loops and the memory bomb short.
"""

from __future__ import annotations

import csv
import json
import re
import shutil
import sys
from pathlib import Path

import pytest

pytest.importorskip("nbgrader")

import nbformat  # noqa: E402

sys.path.insert(0, str(Path(__file__).resolve().parent))
import bad_submissions as bad  # noqa: E402

from rmteach.grading import course as gcourse, pipeline, release, gradebook as gbook  # noqa: E402
from rmteach.grading.sandbox import sandbox_available  # noqa: E402
from rmteach.grading.repair import cell_report, prepare_submission  # noqa: E402
from _sandbox_mode import MODE as SANDBOX_MODE  # noqa: E402


TEST_CONFIG = """
# --- tests/test_bad_submissions.py: short bounds so loops and the memory bomb end fast
c.Execute.timeout = 5
c.SandboxKernelManager.memory_limit = 1024 ** 3
"""


def _grades(course: Path, student: str) -> dict[str, float]:
    from nbgrader.api import Gradebook, MissingEntry

    with Gradebook(f"sqlite:///{course / 'gradebook.db'}") as gb:
        try:
            sub = gb.find_submission(bad.ASSIGNMENT, student)
        except MissingEntry:
            return {}
        return {g.name: float(g.score or 0.0) for nb in sub.notebooks for g in nb.grades
                if g.cell.cell_type == "code"}


def _write(course: Path, kind: bad.BadSubmission) -> None:
    folder = course / "submitted" / kind.student / bad.ASSIGNMENT
    folder.mkdir(parents=True, exist_ok=True)
    for name, data in kind.files.items():
        (folder / name).write_bytes(data)
    (folder / "timestamp.txt").write_text("2025-03-01 12:00:00 UTC\n")


@pytest.fixture(scope="module")
def sandboxed() -> bool:
    return sandbox_available()[0]


@pytest.fixture(scope="module")
def released(tmp_path_factory):
    """A course copy with assignment 03 released (config with short bounds)."""
    root = tmp_path_factory.mktemp("bad-subs")
    course = gcourse.copy_course(gcourse.REPO_COURSE, root / "course")
    for other in (course / "source").iterdir():
        if other.name != bad.ASSIGNMENT:
            shutil.rmtree(other)
    with open(course / "nbgrader_config.py", "a") as fh:
        fh.write(TEST_CONFIG)
    release.generate_assignments(course, [bad.ASSIGNMENT], validate=False, log=lambda *a: None)
    release_nb = nbformat.read(course / "release" / bad.ASSIGNMENT / bad.NOTEBOOK, as_version=4)
    source_nb = nbformat.read(course / "source" / bad.ASSIGNMENT / bad.NOTEBOOK, as_version=4)
    return course, release_nb, source_nb


@pytest.fixture(scope="module")
def alone(released, tmp_path_factory):
    """The honest students' grades when graded on their own (a clean copy)."""
    course, rel, src = released
    clean = tmp_path_factory.mktemp("alone") / "course"
    shutil.copytree(course, clean, ignore=shutil.ignore_patterns("submitted", "autograded", "feedback"))
    good = [make(rel, src) for make in bad.GOOD]
    for kind in good:
        _write(clean, kind)
    results = pipeline.autograde(clean, workers=2, log=lambda *a: None, sandbox=SANDBOX_MODE)
    assert all(r.status == "graded" for r in results), [(r.student, r.status) for r in results]
    return {kind.student: _grades(clean, kind.student) for kind in good}


@pytest.fixture(scope="module")
def batch(released, sandboxed, request):
    """Every kind and the honest students, graded in one batch, twice (prints each kind's score)."""
    course, rel, src = released
    kinds = [k for k in bad.build_all(rel, src) if sandboxed or not k.needs_sandbox]
    for kind in kinds:
        _write(course, kind)
    lines: list[str] = []
    first = pipeline.autograde(course, workers=2, log=lines.append, sandbox=SANDBOX_MODE)
    grades1 = {k.student: _grades(course, k.student) for k in kinds}
    rows = gbook.grade_rows(course)
    csv_path = gbook.write_csv(rows, course / "grades.csv")
    reports = {k.student: cell_report(course, k.student, bad.ASSIGNMENT) for k in kinds}
    second = pipeline.autograde(course, force=True, workers=2, log=lines.append, sandbox=SANDBOX_MODE)
    grades2 = {k.student: _grades(course, k.student) for k in kinds}
    by_student = {r.student: r for r in first}
    table = [f"bad submissions of {bad.ASSIGNMENT}, first run (score, status):"]
    for k in kinds:
        r = by_student.get(k.student)
        score = "-" if r is None or r.auto_score is None else f"{r.auto_score:g}/{r.auto_max:g}"
        table.append(f"  {k.student:24s} {score:>7s}  {r.status if r else 'not graded'}")
    capture = request.config.pluginmanager.getplugin("capturemanager")
    with capture.global_and_fixture_disabled():  # past pytest's capture, like the notebook timings
        print("\n" + "\n".join(table), flush=True)
    return dict(course=course, kinds={k.student: k for k in kinds}, first=first, second=second, lines=lines,
                grades1=grades1, grades2=grades2, csv=csv_path, reports=reports)


def test_every_kind_has_a_builder():
    assert len(bad.KINDS) >= 21 and len({k.__name__ for k in bad.KINDS}) == len(bad.KINDS)


def test_the_batch_completes_with_one_result_per_submission(batch):
    for run in ("first", "second"):
        results = batch[run]
        assert sorted(r.student for r in results) == sorted(batch["kinds"]), run
    assert any("grading" in line for line in batch["lines"])


@pytest.mark.parametrize("make", bad.KINDS + bad.GOOD, ids=lambda m: m.__name__)
def test_kind_gets_its_expected_grade_status_and_log_line(batch, make):
    student = make.__name__
    kinds = batch["kinds"]
    kind = next((k for k in kinds.values() if k.student == make(*_nbs(batch)).student), None)
    if kind is None:
        pytest.skip("needs the sandbox (bubblewrap) to bound memory")
    result = {r.student: r for r in batch["first"]}[kind.student]
    got = batch["grades1"][kind.student]
    text = "\n".join(batch["lines"] + result.notes + list(result.log) + batch["reports"][kind.student])
    if kind.status == "failed":
        assert result.status.startswith("failed: "), (student, result.status, result.notes)
        assert sum(got.values()) == 0.0
    else:
        assert result.status == "graded", (student, result.status, result.notes)
        assert got == kind.cells, (student, batch["reports"][kind.student])
    assert re.search(kind.log, text), (student, kind.log, result.notes, batch["reports"][kind.student])
    row = next(r for r in csv.DictReader(open(batch["csv"])) if r["student"] == kind.student)
    assert float(row["auto_score"]) == kind.score
    if kind.status == "failed":
        assert row["status"].startswith("failed"), row
    else:
        assert not row["status"].startswith("failed"), row


def _nbs(batch):
    course = batch["course"]
    return (nbformat.read(course / "release" / bad.ASSIGNMENT / bad.NOTEBOOK, as_version=4),
            nbformat.read(course / "source" / bad.ASSIGNMENT / bad.NOTEBOOK, as_version=4))


def test_a_failed_submission_is_told_apart_from_a_real_zero(batch):
    rows = {r["student"]: r for r in csv.DictReader(open(batch["csv"]))}
    assert rows["malformed_json"]["status"].startswith("failed") and float(rows["malformed_json"]["auto_score"]) == 0
    # a real zero (a graded notebook that earned nothing) would say graded; the partial student is graded
    assert rows["good_partial"]["status"] in ("graded", "needs manual grading")


def test_honest_students_get_the_grades_they_get_alone(batch, alone):
    for student, grades in alone.items():
        assert batch["grades1"][student] == grades, student
        assert grades == batch["kinds"][student].cells, student


def test_a_second_run_gives_the_same_grades(batch):
    assert batch["grades2"] == batch["grades1"]
    assert {r.student: r.status for r in batch["second"]} == {r.student: r.status for r in batch["first"]}


def test_the_students_files_are_untouched(batch):
    for kind in batch["kinds"].values():
        folder = batch["course"] / "submitted" / kind.student / bad.ASSIGNMENT
        for name, data in kind.files.items():
            assert (folder / name).read_bytes() == data, (kind.student, name)


def test_prepare_submission_never_raises(tmp_path, released):
    course, rel, src = released
    work = tmp_path / "work"
    for payload in (b"", b"\x00\xff\xfe", b"[]", b'{"cells": 3}', b'{"cells": [], "nbformat": 3}',
                    json.dumps({"cells": [{"cell_type": "code"}], "nbformat": 4, "nbformat_minor": 5,
                                "metadata": {}}).encode()):
        shutil.rmtree(work, ignore_errors=True)
        work.mkdir()
        (work / bad.NOTEBOOK).write_bytes(payload)
        prep = prepare_submission(course / "source" / bad.ASSIGNMENT, work, bad.ASSIGNMENT)
        assert not prep.gradable and prep.notes and bad.NOTEBOOK in prep.notes[0], (payload, prep)
    prep = prepare_submission(course / "source" / "no_such_assignment", work, "no_such_assignment")
    assert not prep.gradable and prep.notes
