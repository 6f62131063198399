"""The gradebook in PostgreSQL: configured by $RMTEACH_GRADEBOOK_URL, graded in parallel while a
grader writes manual grades, and equal row for row to the same course graded on SQLite.

A real PostgreSQL server (Debian's, ``/usr/lib/postgresql/15/bin``) runs for this module
as a non-root user on a private data folder and Unix socket (``tests/pgserver.py``).
Without its binaries the server tests skip, except under ``CI=true``, where they fail.
The URL tests need no server.
"""

from __future__ import annotations

import csv
import os
import shutil
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest

from rmteach.grading import course as gcourse, demo as gdemo, gradebook as gbook, pipeline, release
from rmteach.grading.course import GRADEBOOK_URL_ENV, GradingError

sys.path.insert(0, str(Path(__file__).resolve().parent))
import pgserver  # noqa: E402
from _sandbox_mode import MODE  # noqa: E402

A1, A2 = "01_preference_probability", "02_ranking_loss"
IN_CI = os.environ.get("CI", "").lower() == "true"
CELL_TIMEOUT = 5  # seconds per cell in the test copies (the course uses 60)
#: student -> which answers the submission holds (full, none, every other, full)
STUDENTS = {"ada": lambda nb: (lambda gid: True), "ben": lambda nb: (lambda gid: False),
            "cy": gdemo.partial_keep, "dee": lambda nb: (lambda gid: True)}
SECRET = "pw-Sekr3t-never-printed"


# --------------------------------------------------------------------------- the URL, no server


def _course(tmp_path: Path) -> Path:
    return gcourse.copy_course(gcourse.REPO_COURSE, tmp_path / "course")


def _config_url(course: Path) -> str:
    """The db_url nbgrader itself ends up with from the course's nbgrader_config.py."""
    from nbgrader.coursedir import CourseDirectory

    return CourseDirectory(config=gcourse._course_config(course)).db_url


def test_default_gradebook_is_the_sqlite_file_for_make_and_plain_nbgrader(tmp_path, monkeypatch):
    monkeypatch.delenv(GRADEBOOK_URL_ENV, raising=False)
    course = _course(tmp_path)
    want = f"sqlite:///{course.resolve() / 'gradebook.db'}"
    assert gcourse.gradebook_url(course) == want
    assert _config_url(course) == want
    monkeypatch.setenv(GRADEBOOK_URL_ENV, "   ")  # set but empty: still the default
    assert gcourse.gradebook_url(course) == _config_url(course) == want


def test_the_variable_switches_make_and_plain_nbgrader_to_the_same_database(tmp_path, monkeypatch):
    course = _course(tmp_path)
    url = f"postgresql+psycopg://grader:{SECRET}@db.example.org:5433/rmteach"
    monkeypatch.setenv(GRADEBOOK_URL_ENV, url)
    assert gcourse.gradebook_url(course) == url
    assert _config_url(course) == url
    # the workers open it with the same URL (busy_url only adds SQLite's lock wait)
    assert gbook.busy_url(url) == url
    assert gbook.busy_url("sqlite:////x/gradebook.db") == "sqlite:////x/gradebook.db?timeout=120"


@pytest.mark.parametrize("url, shown", [
    (f"postgresql+psycopg://grader:{SECRET}@db.example.org/rmteach", "postgresql+psycopg://grader:***@db.example.org/rmteach"),
    (f"postgresql:///rmteach?user=grader&password={SECRET}&host=/run/postgresql",
     "postgresql:///rmteach?user=grader&password=***&host=/run/postgresql"),
    ("postgresql://grader@db.example.org:5432/rmteach", "postgresql://grader@db.example.org:5432/rmteach"),
    (f"grader:{SECRET}@db.example.org", "***@db.example.org"),
])
def test_mask_url_hides_the_password(url, shown):
    assert gcourse.mask_url(url) == shown


@pytest.mark.parametrize("url", [
    f"postgresql+nosuchdriver://grader:{SECRET}@db.example.org/rmteach",
    f"grader:{SECRET}@db.example.org",
])
def test_an_unreadable_url_is_refused_naming_it_masked(tmp_path, monkeypatch, url):
    course = _course(tmp_path)
    monkeypatch.setenv(GRADEBOOK_URL_ENV, url)
    with pytest.raises(GradingError) as err:
        gcourse.gradebook_url(course)
    msg = str(err.value)
    assert SECRET not in msg and gcourse.mask_url(url) in msg and GRADEBOOK_URL_ENV in msg
    # plain nbgrader: the config refuses too, with the same masked message
    proc = gcourse.run_nbgrader(course, "db", "student", "list", check=False)
    out = proc.stdout + proc.stderr
    assert proc.returncode != 0 and SECRET not in out and gcourse.mask_url(url) in out
    assert not (course / "gradebook.db").exists()  # no fall-back on the SQLite default


def test_a_server_that_does_not_answer_is_named_masked_by_every_command(tmp_path, monkeypatch):
    course = _course(tmp_path)
    url = f"postgresql+psycopg://grader:{SECRET}@/rmteach?host={tmp_path / 'no-such-socket-dir'}"
    monkeypatch.setenv(GRADEBOOK_URL_ENV, url)
    calls = {
        "make assignments": lambda: release.generate_assignments(course, [A1], log=lambda *_: None),
        "make grades": lambda: gbook.grade_rows(course),
        "gradebook_exists": lambda: gbook.gradebook_exists(url),
        "snapshot": lambda: gbook.gradebook_snapshot(url),
    }
    for name, call in calls.items():
        t0 = time.monotonic()
        with pytest.raises(GradingError) as err:
            call()
        msg = str(err.value)
        assert SECRET not in msg, name
        assert gcourse.mask_url(url) in msg and ("cannot connect" in msg or "cannot read" in msg), (name, msg)
        assert time.monotonic() - t0 < 30, f"{name}: the error came only after validating ({msg})"
    (course / "submitted" / "ada" / A1).mkdir(parents=True)
    with pytest.raises(GradingError) as err:
        pipeline.autograde(course, workers=1, sandbox="off", log=lambda *_: None)
    assert SECRET not in str(err.value) and gcourse.mask_url(url) in str(err.value)
    proc = subprocess.run([sys.executable, "-m", "rmteach.grading", "grades", "--course", str(course)],
                          capture_output=True, text=True)
    assert proc.returncode != 0 and SECRET not in proc.stdout + proc.stderr
    assert gcourse.mask_url(url) in proc.stdout + proc.stderr


# --------------------------------------------------------------------------- a real server


@pytest.fixture(scope="module")
def pg():
    """A PostgreSQL server for this module (stopped and removed at the end, also on failure)."""
    if pgserver.pg_bin_dir() is None:
        why = "PostgreSQL is not installed (apt-get install -y postgresql: /usr/lib/postgresql/15/bin/initdb)"
        if IN_CI:
            pytest.fail(f"CI must run the PostgreSQL tests: {why}")
        pytest.skip(why)
    server = pgserver.start()
    try:
        yield server
    finally:
        server.stop()


def _set_env(url):
    if url is None:
        os.environ.pop(GRADEBOOK_URL_ENV, None)
    else:
        os.environ[GRADEBOOK_URL_ENV] = url


class _Env:
    """``$RMTEACH_GRADEBOOK_URL`` set (or unset) for a block, restored after."""

    def __init__(self, url):
        self.url, self.old = url, os.environ.get(GRADEBOOK_URL_ENV)

    def __enter__(self):
        _set_env(self.url)

    def __exit__(self, *exc):
        _set_env(self.old)


def _new_course(root: Path) -> Path:
    course = gcourse.copy_course(gcourse.REPO_COURSE, root)
    with open(course / "nbgrader_config.py", "a") as fh:
        fh.write(f"\nc.Execute.timeout = {CELL_TIMEOUT}  # test copy only\n")
    return course


def _write_submissions(course: Path) -> dict:
    return gdemo.make_demo_submissions(course, {s: ("", keep) for s, keep in STUDENTS.items()}, (A1, A2))


def _manual_score(student: str, max_score: float) -> float:
    """The grade the test's grader gives a written answer (a different one per student)."""
    return {"ada": max_score, "ben": 0.0, "cy": max_score / 2, "dee": max_score}[student]


def _grade_written(url: str, course: Path, done: dict) -> int:
    """One pass of a grader in the formgrader: every written answer of every submission
    already autograded that has no manual grade yet gets one.  Returns how many it set."""
    from nbgrader.api import Gradebook, MissingEntry

    finished = [key for key, st in gcourse.read_statuses(course).items()
                if st.get("status") and not str(st["status"]).startswith("failed")]
    count = 0
    with Gradebook(url) as gb:
        for student, assignment in finished:
            try:
                sub = gb.find_submission(assignment, student)
            except MissingEntry:
                continue
            for nb in sub.notebooks:
                for grade in nb.grades:
                    key = (student, assignment, nb.name, grade.name)
                    if grade.cell.cell_type != "markdown" or key in done:
                        continue
                    grade.manual_score = _manual_score(student, grade.max_score)
                    grade.needs_manual_grade = False  # as the formgrader does when a score is entered
                    gb.db.commit()
                    done[key] = grade.manual_score
                    count += 1
    return count


def _apply_manual(url: str, done: dict) -> None:
    from nbgrader.api import Gradebook

    with Gradebook(url) as gb:
        for (student, assignment, notebook, cell), score in sorted(done.items()):
            grade = gb.find_grade(cell, notebook, assignment, student)
            grade.manual_score = score
            grade.needs_manual_grade = False
        gb.db.commit()


def _read_manual(url: str) -> dict:
    from nbgrader.api import Gradebook

    out = {}
    with Gradebook(url) as gb:
        for assignment in gb.assignments:
            for sub in assignment.submissions:
                for nb in sub.notebooks:
                    for grade in nb.grades:
                        if grade.cell.cell_type == "markdown" and grade.manual_score is not None:
                            out[(sub.student.id, assignment.name, nb.name, grade.name)] = grade.manual_score
    return out


@pytest.fixture(scope="module")
def graded(pg, tmp_path_factory):
    """The same submissions released and autograded (2 workers) with the gradebook in
    PostgreSQL while a grader thread writes manual grades, and again on SQLite."""
    root = tmp_path_factory.mktemp("pg")
    url, password = pg.create_database("rmteach_gradebook")
    pg_course, sqlite_course = _new_course(root / "pg"), _new_course(root / "sqlite")
    timings = {}
    with _Env(url):
        t0 = time.monotonic()
        release.generate_assignments(pg_course, [A1, A2], validate=False, log=lambda *_: None)
        timings["release"] = time.monotonic() - t0
        assert not (pg_course / "gradebook.db").exists()
        assert gbook.gradebook_exists(url)
    with _Env(None):
        release.generate_assignments(sqlite_course, [A1, A2], validate=False, log=lambda *_: None)
    expected = _write_submissions(pg_course)
    shutil.copytree(pg_course / "submitted", sqlite_course / "submitted")  # the same files, same timestamps

    done: dict = {}
    during = []
    errors: list[BaseException] = []
    stop = threading.Event()

    def grader() -> None:
        try:
            while not stop.is_set():
                n = _grade_written(url, pg_course, done)
                if n:
                    during.append(n)
                time.sleep(0.1)
        except BaseException as exc:  # reported by the test, not lost in the thread
            errors.append(exc)

    log: list[str] = []
    with _Env(url):
        thread = threading.Thread(target=grader, daemon=True)
        thread.start()
        t0 = time.monotonic()
        try:
            results = pipeline.autograde(pg_course, workers=2, sandbox=MODE, log=log.append)
        finally:
            stop.set()
            thread.join(timeout=120)
        timings["autograde_pg"] = time.monotonic() - t0
        _grade_written(url, pg_course, done)  # what finished after the thread's last pass
    with _Env(None):
        t0 = time.monotonic()
        sqlite_results = pipeline.autograde(sqlite_course, workers=2, sandbox=MODE, log=lambda *_: None)
        timings["autograde_sqlite"] = time.monotonic() - t0
        _apply_manual(gcourse.gradebook_url(sqlite_course), done)
    print(f"\n{pg.version()}; timings (s): " + ", ".join(f"{k} {v:.1f}" for k, v in timings.items()))
    return dict(url=url, password=password, pg_course=pg_course, sqlite_course=sqlite_course, results=results,
                sqlite_results=sqlite_results, log=log, expected=expected, done=done, during=during,
                errors=errors, server=pg)


def test_the_server_runs_as_a_non_root_user_on_a_private_socket(pg):
    assert pg.uid != 0
    assert (pg.socket_dir / f".s.PGSQL.{pgserver.PORT}").is_socket()
    assert os.stat(pg.data).st_uid == pg.uid
    assert pg.version().startswith("postgres (PostgreSQL) ")


def test_make_assignments_creates_the_schema_in_postgresql(graded):
    from sqlalchemy import create_engine, inspect

    engine = create_engine(graded["url"])
    try:
        tables = set(inspect(engine).get_table_names())
    finally:
        engine.dispose()
    assert {"assignment", "notebook", "grade_cells", "grade", "student", "alembic_version"} <= tables
    assert not (graded["pg_course"] / "gradebook.db").exists()


def test_parallel_autograde_on_postgresql_grades_everyone(graded):
    results = graded["results"]
    assert len(results) == len(graded["expected"]) == 8
    bad = [(r.student, r.assignment, r.status) for r in results if r.failed]
    assert not bad, graded["log"]
    assert {(r.student, r.assignment): r.auto_score for r in results} == graded["expected"]
    assert any("8 graded, 0 failed" in line for line in graded["log"]), graded["log"]


def test_manual_grades_written_during_autograding_are_all_kept(graded):
    assert not graded["errors"], graded["errors"]
    done = graded["done"]
    # every submission has written answers (Q13 in 01, Q19 in 02): all got a grade
    assert {(s, a) for s, a, _, _ in done} == set(graded["expected"])
    assert graded["during"], "the grader thread set no manual grade while autograding ran"
    assert _read_manual(graded["url"]) == done


def test_postgresql_and_sqlite_gradebooks_are_equal_row_for_row(graded, monkeypatch):
    pg_snap = gbook.gradebook_snapshot(graded["url"])
    sqlite_snap = gbook.gradebook_snapshot(graded["sqlite_course"] / "gradebook.db")
    assert len(pg_snap["submitted_assignment"]) == 8 and len(pg_snap["grade"]) > 8 * 5
    manual = [row for row in pg_snap["grade"] if row[5] is not None]
    assert len(manual) == len(graded["done"])
    for table in pg_snap:
        assert pg_snap[table] == sqlite_snap[table], table
    # the URL form of the SQLite gradebook gives the same snapshot as its path
    assert gbook.gradebook_snapshot(f"sqlite:///{graded['sqlite_course'] / 'gradebook.db'}") == sqlite_snap

    monkeypatch.setenv(GRADEBOOK_URL_ENV, graded["url"])
    pg_rows = gbook.grade_rows(graded["pg_course"])
    monkeypatch.delenv(GRADEBOOK_URL_ENV)
    sqlite_rows = gbook.grade_rows(graded["sqlite_course"])
    assert pg_rows == sqlite_rows
    assert {r["status"] for r in pg_rows} == {"graded"}
    assert sum(r["manual_score"] for r in pg_rows) == sum(graded["done"].values()) > 0


def test_auto_scores_read_the_same_from_postgresql_and_sqlite(graded):
    sqlite_url = f"sqlite:///{graded['sqlite_course'].resolve() / 'gradebook.db'}"
    for (student, assignment), want in graded["expected"].items():
        pg_auto = gbook.auto_scores(graded["url"], student, assignment)
        assert pg_auto == gbook.auto_scores(sqlite_url, student, assignment)
        assert pg_auto[0] == want
    assert gbook.auto_scores(graded["url"], "nobody", A1) == (None, None)


def test_make_grades_and_plain_nbgrader_use_the_postgresql_gradebook(graded, monkeypatch):
    env = dict(os.environ, **{GRADEBOOK_URL_ENV: graded["url"]})
    csvs = {}
    for name, course, run_env in (("pg", graded["pg_course"], env),
                                  ("sqlite", graded["sqlite_course"],
                                   {k: v for k, v in env.items() if k != GRADEBOOK_URL_ENV})):
        out = course / f"grades-{name}.csv"
        proc = subprocess.run([sys.executable, "-m", "rmteach.grading", "grades", "--course", str(course),
                               "--csv", str(out)], capture_output=True, text=True, env=run_env)
        assert proc.returncode == 0, proc.stdout[-2000:] + proc.stderr[-2000:]
        assert graded["password"] not in proc.stdout + proc.stderr
        with open(out) as fh:
            csvs[name] = list(csv.DictReader(fh))
    assert csvs["pg"] == csvs["sqlite"] and len(csvs["pg"]) == 8
    # the formgrader's nbgrader, run in the course folder, sees the same students
    monkeypatch.setenv(GRADEBOOK_URL_ENV, graded["url"])
    proc = gcourse.run_nbgrader(graded["pg_course"], "db", "student", "list")
    for student in STUDENTS:
        assert student in proc.stdout + proc.stderr
    assert not (graded["pg_course"] / "gradebook.db").exists()


def test_cell_report_reads_the_postgresql_gradebook(graded, monkeypatch):
    from rmteach.grading.repair import cell_report

    monkeypatch.setenv(GRADEBOOK_URL_ENV, graded["url"])
    lines = cell_report(graded["pg_course"], "ada", A1)
    assert lines and all("not in the gradebook" not in line for line in lines)
    monkeypatch.delenv(GRADEBOOK_URL_ENV)
    assert cell_report(graded["sqlite_course"], "ada", A1) == lines


def test_a_wrong_password_is_named_masked(graded):
    url = graded["server"].url("rmteach_gradebook", SECRET, "rmteach_gradebook")
    with pytest.raises(GradingError) as err:
        gbook.gradebook_exists(url)
    msg = str(err.value)
    assert SECRET not in msg and gcourse.mask_url(url) in msg and "password authentication failed" in msg


def test_the_password_can_stay_in_pgpass_so_the_url_holds_none(graded, tmp_path, monkeypatch):
    """The set-up assignments/README.md gives graders: the password in ~/.pgpass (here $PGPASSFILE)."""
    pgpass = tmp_path / "pgpass"
    pgpass.write_text(f"*:*:rmteach_gradebook:rmteach_gradebook:{graded['password']}\n")
    pgpass.chmod(0o600)
    monkeypatch.setenv("PGPASSFILE", str(pgpass))
    url = graded["url"].replace(f":{graded['password']}@", "@")
    assert graded["password"] not in url and gbook.gradebook_exists(url)
    assert gbook.gradebook_snapshot(url) == gbook.gradebook_snapshot(graded["url"])
