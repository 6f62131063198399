"""rmteach.grading.pipeline.autograde: parallel workers grade like serial nbgrader, survive dying
workers and hanging jobs, export a status per submission, and sandbox by default.

One temporary course (module fixture) with six submissions of two assignments
(full, untouched, every other answer) is graded twice: serially by the plain
``nbgrader autograde "*"`` and in parallel (2 workers); the gradebooks must hold
the same rows.  Further tests add bad submissions to copies of that course.
Under ``CI=true`` the sandbox must be available.
"""

from __future__ import annotations

import csv
import os
import shutil
import subprocess
import sys
import time
from pathlib import Path

import pytest

from rmteach.grading import course as gcourse, pipeline, demo as gdemo, release, gradebook as gbook
from rmteach.grading import sandbox as sb

A1, A2 = "01_preference_probability", "02_ranking_loss"
NB1 = "preference_probability.ipynb"
STUDENTS = {"ada": lambda nb: (lambda gid: True), "ben": lambda nb: (lambda gid: False), "cy": gdemo.partial_keep}
CELL_TIMEOUT = 5  # seconds per cell in the test copies (the course uses 60)
IN_CI = os.environ.get("CI", "").lower() == "true"
SANDBOXED, SANDBOX_WHY = sb.sandbox_available()


def _submissions(course: Path) -> dict:
    return gdemo.make_demo_submissions(course, {s: ("", keep) for s, keep in STUDENTS.items()}, (A1, A2))


@pytest.fixture(scope="module")
def base(tmp_path_factory):
    """A released course with six good submissions, nothing graded yet."""
    course = gcourse.copy_course(gcourse.REPO_COURSE, tmp_path_factory.mktemp("par") / "base")
    with open(course / "nbgrader_config.py", "a") as fh:
        fh.write(f"\nc.Execute.timeout = {CELL_TIMEOUT}  # test copy only\n")
    release.generate_assignments(course, [A1, A2], validate=False, log=lambda *_: None)
    return course, _submissions(course)


def _copy(base_course: Path, dst: Path) -> Path:
    shutil.copytree(base_course, dst)
    return dst


@pytest.fixture(scope="module")
def both(base, tmp_path_factory):
    """The same six submissions graded serially (nbgrader CLI) and in parallel (2 workers)."""
    course, expected = base
    root = tmp_path_factory.mktemp("both")
    serial, parallel = _copy(course, root / "serial"), _copy(course, root / "parallel")
    mode = "require" if SANDBOXED else "off"
    env_before = os.environ.get(pipeline.SANDBOX_ENV)
    os.environ[pipeline.SANDBOX_ENV] = mode
    try:
        proc = gcourse.run_nbgrader(serial, "autograde", "*", check=False)
    finally:
        if env_before is None:
            os.environ.pop(pipeline.SANDBOX_ENV, None)
        else:
            os.environ[pipeline.SANDBOX_ENV] = env_before
    assert proc.returncode == 0, proc.stdout[-2000:] + proc.stderr[-2000:]
    log: list[str] = []
    results = pipeline.autograde(parallel, workers=2, sandbox=mode, log=log.append)
    return dict(serial=serial, parallel=parallel, results=results, log=log, expected=expected)


def test_parallel_grades_equal_serial_nbgrader_row_for_row(both):
    serial = gbook.gradebook_snapshot(both["serial"] / "gradebook.db")
    parallel = gbook.gradebook_snapshot(both["parallel"] / "gradebook.db")
    assert len(serial["submitted_assignment"]) == 6 and len(serial["grade"]) > 6 * 5
    for table in serial:  # every grade and comment of every cell, no row lost or doubled
        assert parallel[table] == serial[table], table
    rows = {(r["student"], r["assignment"]): r for r in gbook.grade_rows(both["parallel"])}
    for key, want in both["expected"].items():
        assert rows[key]["auto_score"] == want, key
    assert rows[("ada", A2)]["auto_score"] == rows[("ada", A2)]["auto_max"] > 0
    # the autograded notebooks exist for every submission, as nbgrader writes them
    for student, assignment in both["expected"]:
        assert (both["parallel"] / "autograded" / student / assignment).glob("*.ipynb")
        assert sorted(p.name for p in (both["parallel"] / "autograded" / student / assignment).iterdir()) == \
            sorted(p.name for p in (both["serial"] / "autograded" / student / assignment).iterdir())


def test_progress_one_line_per_job_with_failures_so_far(both):
    lines = [ln for ln in both["log"] if ln.startswith("[")]
    assert len(lines) == 6
    assert [ln.split("]")[0] for ln in lines] == [f"[{i}/6" for i in range(1, 7)]
    assert all(ln.endswith("failures so far: 0") and " graded (" in ln for ln in lines), lines
    assert any(ln.startswith("grading 6 submission(s) with 2 worker process(es)") for ln in both["log"])
    assert {(r.student, r.assignment, r.status) for r in both["results"]} == \
        {(s, a, "graded") for s, a in both["expected"]}


def test_students_files_are_never_changed(base, both):
    for student, assignment in both["expected"]:
        for name in ("timestamp.txt", *(p.name for p in (base[0] / "submitted" / student / assignment).glob("*.ipynb"))):
            a = base[0] / "submitted" / student / assignment / name
            b = both["parallel"] / "submitted" / student / assignment / name
            assert a.read_bytes() == b.read_bytes(), (student, assignment, name)


def test_status_column_in_csv_and_idempotent_rerun(both, tmp_path):
    course = _copy(both["parallel"], tmp_path / "course")
    before = gbook.gradebook_snapshot(course / "gradebook.db")
    log: list[str] = []
    # without force: nothing to do (already graded), grades untouched
    results = pipeline.autograde(course, workers=2, sandbox="auto" if SANDBOXED else "off", log=log.append)
    assert results == [] and any("skipping 6 submission(s) already autograded" in ln for ln in log)
    # with force: everything regraded, the same rows again
    results = pipeline.autograde(course, force=True, workers=2, sandbox="auto" if SANDBOXED else "off", log=lambda *_: None)
    assert len(results) == 6 and not any(r.failed for r in results)
    assert gbook.gradebook_snapshot(course / "gradebook.db") == before
    # a student with no submission of A2: "not submitted"; the CSV carries the status
    (course / "submitted" / "dot" / A1).mkdir(parents=True)
    (course / "submitted" / "dot" / A1 / NB1).write_text("{ not json")
    pipeline.autograde(course, workers=1, sandbox="auto" if SANDBOXED else "off", log=lambda *_: None)
    path = gbook.write_csv(gbook.grade_rows(course), tmp_path / "grades.csv")
    with open(path) as fh:
        rows = {(r["student"], r["assignment"]): r for r in csv.DictReader(fh)}
    assert rows[("ada", A1)]["status"] == "needs manual grading"
    assert rows[("ben", A2)]["status"] == "graded" and float(rows[("ben", A2)]["auto_score"]) == 0
    assert rows[("dot", A1)]["status"].startswith("failed: ") and float(rows[("dot", A1)]["auto_score"]) == 0
    assert rows[("dot", A2)]["status"] == "not submitted"
    # the good students' grades are the same as before the bad one came in
    after = gbook.gradebook_snapshot(course / "gradebook.db")
    assert [r for r in after["grade"] if r[1] != "dot"] == before["grade"]


def _kernel_killer(course: Path) -> None:
    """eve's A1 answer cell ends the kernel's Python process (os._exit)."""
    src = gcourse._read_nb(course / "source" / A1 / NB1)
    nb = gdemo.build_submission(gcourse._read_nb(course / "release" / A1 / NB1), src, lambda gid: True)
    for cell in nb.cells:
        if gcourse._meta(cell).get("grade_id") == "preference_probability_impl":
            cell.source = "import os\nos._exit(3)"
    gdemo.write_submission(course, "eve", A1, {NB1: nb})


def _hanger(course: Path) -> None:
    """hal's A1 answer cell blocks in a way no interrupt stops (signals ignored, sleep in C)."""
    src = gcourse._read_nb(course / "source" / A1 / NB1)
    nb = gdemo.build_submission(gcourse._read_nb(course / "release" / A1 / NB1), src, lambda gid: True)
    for cell in nb.cells:
        if gcourse._meta(cell).get("grade_id") == "preference_probability_impl":
            cell.source = ("import signal, time\nsignal.signal(signal.SIGINT, signal.SIG_IGN)\n"
                           "while True:\n    time.sleep(1000)")
    gdemo.write_submission(course, "hal", A1, {NB1: nb})


def test_a_dead_kernel_and_a_hung_job_fail_alone(both, tmp_path):
    course = _copy(both["parallel"], tmp_path / "course")
    before = gbook.gradebook_snapshot(course / "gradebook.db")
    _kernel_killer(course)
    _hanger(course)
    log: list[str] = []
    t0 = time.monotonic()
    results = pipeline.autograde(course, workers=2, sandbox="auto" if SANDBOXED else "off", log=log.append,
                           job_timeout=40)
    took = time.monotonic() - t0
    by = {(r.student, r.assignment): r for r in results}
    assert set(by) == {("eve", A1), ("hal", A1)}
    assert by[("eve", A1)].failed and "kernel died" in by[("eve", A1)].status, by[("eve", A1)]
    hal = by[("hal", A1)].status
    assert hal.startswith("failed: ") and ("could not be interrupted" in hal or "took longer than 40 s" in hal), hal
    assert took < 150, took  # the hung job was stopped (job_timeout, cell timeout or the kernel's limit)
    assert any(ln.startswith("[2/2]") and "failures so far: 2" in ln for ln in log), log
    rows = {(r["student"], r["assignment"]): r for r in gbook.grade_rows(course)}
    assert rows[("eve", A1)]["status"].startswith("failed: ") and rows[("hal", A1)]["status"].startswith("failed: ")
    after = gbook.gradebook_snapshot(course / "gradebook.db")
    assert [r for r in after["grade"] if r[1] not in ("eve", "hal")] == before["grade"]  # nobody else touched
    # no process of the run is left behind
    assert not [p for p in pipeline._descendants(os.getpid()) if _cmdline(p).find("rmteach.grading") >= 0]


def _cmdline(pid: int) -> str:
    try:
        return Path(f"/proc/{pid}/cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace")
    except OSError:
        return ""


def test_a_killed_worker_is_replaced_and_its_job_recorded_failed(both, tmp_path, monkeypatch):
    """A worker killed from outside mid-job: that job fails, the rest are graded by a new worker."""
    course = _copy(both["parallel"], tmp_path / "course")
    for d in (course / "autograded").iterdir():
        shutil.rmtree(d)
    real_worker = pipeline._Worker
    victims = []

    class Doomed(real_worker):
        def send(self, job):
            super().send(job)
            if not victims and job == ("ben", A1):
                victims.append(job)
                os.kill(self.proc.pid, 9)

    monkeypatch.setattr(pipeline, "_Worker", Doomed)
    log: list[str] = []
    results = pipeline.autograde(course, workers=2, sandbox="auto" if SANDBOXED else "off", log=log.append)
    by = {(r.student, r.assignment): r for r in results}
    assert len(by) == 6
    assert by[("ben", A1)].status.startswith("failed: the grading worker died"), by[("ben", A1)]
    assert all(r.status == "graded" for k, r in by.items() if k != ("ben", A1))
    rows = {(r["student"], r["assignment"]): r for r in gbook.grade_rows(course)}
    assert rows[("ada", A1)]["auto_score"] == both["expected"][("ada", A1)]
    # running again grades the failed one (failed submissions are always retried)
    results = pipeline.autograde(course, workers=2, sandbox="auto" if SANDBOXED else "off", log=log.append)
    assert [(r.student, r.assignment, r.status) for r in results] == [("ben", A1, "graded")]


@pytest.mark.skipif(not SANDBOXED and not IN_CI, reason=f"no sandbox here: {SANDBOX_WHY}")
def test_sandbox_is_on_by_default():
    assert SANDBOXED, f"CI=true requires the sandbox: {SANDBOX_WHY}"
    on, message = pipeline.sandbox_state(gcourse.REPO_COURSE, pipeline.sandbox_mode(None) if not os.environ.get(pipeline.SANDBOX_ENV) else "auto")
    assert on and message.startswith("sandbox: bubblewrap"), message
    cfg = gcourse._course_config(gcourse.REPO_COURSE)
    assert sb.SANDBOXED_EXECUTE in cfg.Autograde.autograde_preprocessors
    assert str(gcourse.REPO_COURSE.resolve() / "source") in cfg.SandboxKernelManager.protected_paths


def test_the_graded_kernels_really_run_in_the_sandbox(both):
    """The autograded run of the parallel fixture used the sandboxed kernel (when available)."""
    assert any(ln.startswith("sandbox: bubblewrap" if SANDBOXED else "NOT SANDBOXED") for ln in both["log"])


def test_unavailable_sandbox_stops_grading_unless_turned_off(base, tmp_path, monkeypatch):
    """No sandbox: auto and require stop before the first student, with the reason and the fix;
    only an explicit SANDBOX=off grades, and that run says NOT SANDBOXED."""
    course = _copy(base[0], tmp_path / "course")
    monkeypatch.setattr(sb, "_probe", lambda bwrap: (False, "bubblewrap (bwrap) is not installed (simulated)"))
    monkeypatch.setattr(sb, "user_sandbox_available", lambda: (False, "no grader user (simulated)"))
    for mode in ("auto", "require"):
        log: list[str] = []
        with pytest.raises(gcourse.GradingError) as info:
            pipeline.autograde(course, workers=1, sandbox=mode, log=log.append)
        message = str(info.value)
        assert "bubblewrap (bwrap) is not installed (simulated)" in message, message
        assert "NO SANDBOX" in message and "SANDBOX=off" in message and "apt-get install" in message, message
        assert not any(ln.startswith("grading ") for ln in log), log  # stopped before the first student
    assert not (course / "autograded").exists() and not (course / gcourse.STATUS_FILE).exists()
    log = []
    results = pipeline.autograde(course, workers=1, sandbox="off", log=log.append)
    assert log[0].startswith("NOT SANDBOXED: turned off"), log[0]
    assert "permissions" in log[0]
    assert any("NOT sandboxed" in ln for ln in log[-1:]), log[-1]
    assert len(results) == 6 and not any(r.failed for r in results)  # graded unsandboxed, as asked (off)
    off = pipeline.sandbox_state(course, "off")
    assert off[0] is False and off[1].startswith("NOT SANDBOXED: turned off")


@pytest.mark.skipif(not SANDBOXED, reason=f"needs the bubblewrap sandbox: {SANDBOX_WHY}")
def test_a_kernel_that_cannot_start_sandboxed_is_never_graded_without_it(base, tmp_path):
    """bwrap is there, but every sandboxed kernel fails to start: each job fails; none is retried unsandboxed."""
    course = _copy(base[0], tmp_path / "course")
    for d in list((course / "submitted").iterdir()):
        if d.name != "ada":
            shutil.rmtree(d)
    with open(course / "nbgrader_config.py", "a") as fh:
        fh.write('\nc.SandboxKernelManager.bwrap_path = "/bin/false"  # test copy only: the sandbox cannot start\n')
    log: list[str] = []
    results = pipeline.autograde(course, workers=1, sandbox="auto", log=log.append)
    assert log[0].startswith("sandbox: bubblewrap"), log[0]
    assert len(results) == 2 and all(r.failed for r in results), [r.status for r in results]
    assert not list((course / "autograded").glob("*/*/*.ipynb")), "a notebook was graded without its sandbox"
    assert all(r.auto_score is None for r in results)  # failed, not a real 0
    assert all(row["status"].startswith("failed") for row in gbook.grade_rows(course) if row["student"] == "ada")


def test_cli_autograde_exit_status_and_messages(base, tmp_path):
    course = _copy(base[0], tmp_path / "course")
    for d in list((course / "submitted").iterdir()):
        if d.name != "ada":
            shutil.rmtree(d)
    shutil.rmtree(course / "submitted" / "ada" / A2)
    (course / "submitted" / "zed" / A2).mkdir(parents=True)
    (course / "submitted" / "zed" / A2 / "ranking_loss.ipynb").write_text("not a notebook")
    proc = subprocess.run([sys.executable, "-m", "rmteach.grading", "autograde", "--course", str(course),
                           "--workers", "2"], capture_output=True, text=True, timeout=600)
    assert proc.returncode == 1, proc.stdout + proc.stderr  # one submission could not be graded
    assert proc.stdout.splitlines()[0].startswith(("sandbox: bubblewrap", "NOT SANDBOXED"))
    assert f"ada/{A1} graded" in proc.stdout and f"zed/{A2} failed: " in proc.stdout
    assert f"FAILED zed/{A2}: " in proc.stderr
    bad = subprocess.run([sys.executable, "-m", "rmteach.grading", "autograde", "--course", str(course),
                          "--workers", "0"], capture_output=True, text=True)
    assert bad.returncode == 2 and "--workers" in bad.stderr


_ESCAPE = r'''
import json, os, pathlib, socket
here = pathlib.Path.cwd()                      # autograded/<student>/<assignment>/ of this course
root = here.parents[2]
found = {"cwd": str(here)}

def attempt(name, fn):
    try:
        found[name] = "DONE: " + repr(fn())[:80]
    except BaseException as exc:               # noqa - the point is to record what stopped it
        found[name] = f"blocked: {type(exc).__name__}"

attempt("read source", lambda: (root / "source" / "01_preference_probability" / "preference_probability.ipynb").read_text()[:20])
attempt("list course", lambda: sorted(os.listdir(root)))
attempt("write gradebook", lambda: open(root / "gradebook.db", "ab").write(b"x"))
attempt("write other student", lambda: (root / "autograded" / "ada" / "01_preference_probability" / "x.txt").write_text("x"))
attempt("write submitted", lambda: (root / "submitted" / "ada" / "01_preference_probability" / "x.txt").write_text("x"))
attempt("network", lambda: socket.create_connection(("1.1.1.1", 53), timeout=2))
attempt("memory 6 GiB", lambda: len(bytearray(6 << 30)))
attempt("home", lambda: sorted(os.listdir(os.path.expanduser("~")))[:3])
(here / "escape.json").write_text(json.dumps(found))
'''


@pytest.mark.skipif(not SANDBOXED and not IN_CI, reason=f"no sandbox here: {SANDBOX_WHY}")
def test_student_code_cannot_reach_course_files_network_or_unbounded_memory(both, tmp_path):
    """A submission that tries: read source/, list the course, write gradebook.db, another
    student's folder and submitted/, open a network connection, allocate 6 GiB.  Its own
    autograded folder is the one place it can write, so it reports there."""
    assert SANDBOXED, f"CI=true requires the sandbox: {SANDBOX_WHY}"
    course = _copy(both["parallel"], tmp_path / "course")
    db_before = (course / "gradebook.db").read_bytes()
    src = gcourse._read_nb(course / "source" / A1 / NB1)
    nb = gdemo.build_submission(gcourse._read_nb(course / "release" / A1 / NB1), src, lambda gid: True)
    for cell in nb.cells:
        if gcourse._meta(cell).get("grade_id") == "preference_probability_impl":
            cell.source = _ESCAPE + "\n" + cell.source
    gdemo.write_submission(course, "mal", A1, {NB1: nb})
    (r,) = pipeline.autograde(course, workers=1, sandbox="require", log=lambda *_: None)
    assert r.status == "graded", r
    import json

    found = json.loads((course / "autograded" / "mal" / A1 / "escape.json").read_text())
    for what in ("read source", "write gradebook", "write other student", "write submitted", "network",
                 "memory 6 GiB"):
        assert found[what].startswith("blocked: "), (what, found[what])
    # the course folder shows only the path down to the student's own folder
    assert found["list course"] in ("DONE: ['autograded']", "blocked: FileNotFoundError"), found["list course"]
    assert not (course / "autograded" / "ada" / A1 / "x.txt").exists()
    assert not (course / "submitted" / "ada" / A1 / "x.txt").exists()
    # the gradebook changed only by the grader's own rows for mal, never by the student's code
    assert not (course / "gradebook.db").read_bytes().endswith(b"x") or db_before.endswith(b"x")
    rows = {(x["student"], x["assignment"]): x for x in gbook.grade_rows(course)}
    assert rows[("mal", A1)]["auto_score"] == rows[("mal", A1)]["auto_max"]  # the real answer still graded
    assert rows[("ada", A1)]["auto_score"] == both["expected"][("ada", A1)]


def test_a_job_past_its_time_limit_is_killed_with_its_kernel(base, tmp_path):
    """With a generous cell timeout, a sleeping cell outlasts job_timeout: the parent kills
    the worker and everything under it (kernel, sandbox) and records the job failed."""
    course = _copy(base[0], tmp_path / "course")
    shutil.rmtree(course / "submitted")
    with open(course / "nbgrader_config.py", "a") as fh:
        fh.write("\nc.Execute.timeout = 300  # this test only\n")
    src = gcourse._read_nb(course / "source" / A1 / NB1)
    nb = gdemo.build_submission(gcourse._read_nb(course / "release" / A1 / NB1), src, lambda gid: True)
    for cell in nb.cells:
        if gcourse._meta(cell).get("grade_id") == "preference_probability_impl":
            cell.source = "import time\ntime.sleep(600)"
    gdemo.write_submission(course, "sam", A1, {NB1: nb})
    log: list[str] = []
    t0 = time.monotonic()
    (r,) = pipeline.autograde(course, workers=1, sandbox="auto" if SANDBOXED else "off", log=log.append, job_timeout=20)
    assert time.monotonic() - t0 < 90
    assert r.status == "failed: took longer than 20 s (its worker and kernel were killed)", r.status
    assert any(ln.startswith("[1/1] sam/") and "failures so far: 1" in ln for ln in log), log
    time.sleep(1)
    left = [pid for pid in map(int, filter(str.isdigit, os.listdir("/proc"))) if str(course) in _cmdline(pid)]
    assert not left, [_cmdline(p) for p in left]  # no worker, sandbox or kernel of the course left running
    assert gbook.grade_rows(course)[0]["status"].startswith("failed: took longer")
