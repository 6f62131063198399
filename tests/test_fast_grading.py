"""What makes the pipeline fast keeps every grade and every protection.

* Prestarted kernels (rmteach.grading.kernel_prestart): each notebook still gets a
  fresh kernel that ran nothing before, at its own autograded folder, seeing its
  files and leaving what it writes there, and seeing nothing a previous
  submission left; no kernel or private folder is left after grading, nor after
  a worker is killed.
* The worker's shared gradebook engine and cached metadata validator
  (rmteach.grading.worker_cache): the same errors and the same new gradebook as
  nbgrader's own (checked in a fresh process, since install() patches nbgrader).
* The grading kernel (rmteach.grading.grading_kernel): runs code, has no debugpy.
* Forked workers and, with another thread running, spawned ones grade alike.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest

from rmteach.grading import course as gcourse, demo as gdemo, pipeline, release, worker
from rmteach.grading import sandbox as sb
from rmteach.grading.pipeline import _descendants

A1 = "01_preference_probability"
NB1 = "preference_probability.ipynb"
IN_CI = os.environ.get("CI", "").lower() == "true"
SANDBOXED, SANDBOX_WHY = sb.sandbox_available()
needs_sandbox = pytest.mark.skipif(not SANDBOXED and not IN_CI, reason=f"no sandbox here: {SANDBOX_WHY}")

_PROBE = r'''
import json, os, pathlib
_ip = get_ipython()
probe = {"cwd": os.getcwd(), "count": _ip.execution_count, "history": len(_ip.user_ns.get("In", [])),
         "files": sorted(os.listdir(".")), "debugpy": __import__("sys").modules.get("debugpy") is not None}
pathlib.Path("left_by_{who}.txt").write_text("{who}")
pathlib.Path("probe.json").write_text(json.dumps(probe))
'''


def _probing_submission(course: Path, student: str) -> None:
    src = gcourse._read_nb(course / "source" / A1 / NB1)
    nb = gdemo.build_submission(gcourse._read_nb(course / "release" / A1 / NB1), src, lambda gid: True)
    impl = next(c for c in nb.cells if gcourse._meta(c).get("grade_id") == "preference_probability_impl")
    impl.source = _PROBE.replace("{who}", student) + "\n" + impl.source
    gdemo.write_submission(course, student, A1, {NB1: nb})
    (course / "submitted" / student / A1 / "data.csv").write_text(f"{student}\n")


@pytest.fixture(scope="module")
def graded(tmp_path_factory):
    """Four probing submissions graded by one worker: the 2nd to 4th get prestarted kernels."""
    course = gcourse.copy_course(gcourse.REPO_COURSE, tmp_path_factory.mktemp("fast") / "course")
    release.generate_assignments(course, [A1], validate=False, log=lambda *_: None)
    students = ["s1", "s2", "s3", "s4"]
    for s in students:
        _probing_submission(course, s)
    mode = "require" if SANDBOXED else "off"
    results = pipeline.autograde(course, workers=1, sandbox=mode, log=lambda *_: None)
    return course, students, results


@needs_sandbox
def test_each_notebook_gets_a_fresh_kernel_at_its_own_folder(graded):
    course, students, results = graded
    assert all(r.status == "graded" for r in results), [r.status for r in results]
    first = None
    for s in students:
        here = course / "autograded" / s / A1
        probe = json.loads((here / "probe.json").read_text())
        first = first or probe  # s1's kernel was started the usual way (no kernel was waiting yet)
        assert probe["cwd"] == str(here.resolve())  # the path nbgrader gives, prestarted or not
        # as many cells ran before this one as in a kernel started the usual way: nothing ran before the notebook
        assert (probe["count"], probe["history"]) == (first["count"], first["history"])
        assert "data.csv" in probe["files"]  # the submission's own files are there
        assert [f for f in probe["files"] if f.startswith("left_by_")] == []  # nothing of another submission
        assert (here / f"left_by_{s}.txt").read_text() == s  # what the student's code wrote is kept
        # the 2nd to 4th kernels were prestarted (their launcher leaves debugpy out); the 1st was not
        assert probe["debugpy"] is (s == students[0]), s


@needs_sandbox
def test_no_kernel_or_private_folder_outlives_grading(graded):
    course, _, _ = graded
    leftover = [p for p in _descendants(os.getpid()) if "ipykernel" in _cmdline(p) or "grading_kernel" in _cmdline(p)]
    assert leftover == []
    mine = [p for p in Path("/tmp").glob("rmtwork-*") if p.stat().st_mtime > time.time() - 600]
    assert not any(str(course) in p.name for p in mine)
    for p in mine:  # a private folder is removed with its kernel
        assert not any(p.iterdir()), p


def _cmdline(pid: int) -> str:
    try:
        return Path(f"/proc/{pid}/cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace")
    except OSError:
        return ""


def _kernels_of(course: Path) -> list[int]:
    out = []
    for entry in os.listdir("/proc"):
        if entry.isdigit():
            cmd = _cmdline(int(entry))
            if "bwrap" in cmd and str(course / "autograded") in cmd:
                out.append(int(entry))
    return out


@needs_sandbox
def test_a_killed_worker_takes_its_kernels_with_it(tmp_path):
    """SIGKILL a worker while it runs a notebook (with the next kernel waiting): its sandboxes go too."""
    assert SANDBOXED, f"CI=true requires the sandbox: {SANDBOX_WHY}"
    course = gcourse.copy_course(gcourse.REPO_COURSE, tmp_path / "course")
    release.generate_assignments(course, [A1], validate=False, log=lambda *_: None)
    src = gcourse._read_nb(course / "source" / A1 / NB1)
    for s in ("k1", "k2"):
        nb = gdemo.build_submission(gcourse._read_nb(course / "release" / A1 / NB1), src, lambda gid: True)
        impl = next(c for c in nb.cells if gcourse._meta(c).get("grade_id") == "preference_probability_impl")
        impl.source = "import time\ntime.sleep(30)\n" + impl.source
        gdemo.write_submission(course, s, A1, {NB1: nb})
    done = []
    thread = threading.Thread(target=lambda: done.append(pipeline.autograde(
        course, workers=1, sandbox="require", log=lambda *_: None, job_timeout=600)))
    thread.start()
    try:
        deadline = time.monotonic() + 60
        while len(_kernels_of(course)) < 2 and time.monotonic() < deadline:  # the running one and the waiting one
            time.sleep(0.2)
        kernels = _kernels_of(course)
        assert kernels, "no sandboxed kernel started"
        workers = [p for p in _descendants(os.getpid()) if p not in kernels and "bwrap" not in _cmdline(p)
                   and "timeout" not in _cmdline(p) and any(k in _descendants(p) for k in kernels)]
        assert workers, "no worker found"
        for w in workers:
            os.kill(w, signal.SIGKILL)
        deadline = time.monotonic() + 20
        while any(Path(f"/proc/{k}").exists() and "bwrap" in _cmdline(k) for k in kernels) and time.monotonic() < deadline:
            time.sleep(0.2)
        alive = [k for k in kernels if Path(f"/proc/{k}").exists() and "bwrap" in _cmdline(k)]
        assert alive == [], [(k, _cmdline(k)[:120]) for k in alive]
    finally:
        thread.join(timeout=300)


_CACHE_CHECK = r'''
import json, sys, jsonschema, tempfile
from pathlib import Path
from nbgrader.nbgraderformat import v3, common
from nbgrader.api import Gradebook
from sqlalchemy import create_engine, inspect, text

validator = v3.MetadataValidatorV3()
bad = [{"schema_version": 3, "grade": True, "locked": False, "grade_id": "x"},                  # no "solution"
       {"schema_version": 3, "grade": "yes", "solution": False, "locked": False, "grade_id": "x", "points": 1},
       {"schema_version": 3, "grade": False, "solution": False, "locked": True, "grade_id": 3},
       {"schema_version": 3, "grade": False, "solution": True, "locked": False, "grade_id": "a", "task": 1}]
good = {"schema_version": 3, "grade": True, "solution": False, "locked": True, "grade_id": "t", "points": 2}

def errors():
    out = []
    for meta in bad + [good]:
        try:
            common.jsonschema.validate(meta, validator.schema)
            out.append(None)
        except jsonschema.ValidationError as exc:
            out.append(exc.message)
    return out

def fresh_gradebook(root):
    url = f"sqlite:///{root}/gb.db"
    Gradebook(url, "c").close()
    eng = create_engine(url)
    with eng.connect() as con:
        version = [list(r) for r in con.execute(text("SELECT version_num FROM alembic_version")).fetchall()]
    return sorted(inspect(eng).get_table_names()), version

before = errors()
plain = fresh_gradebook(tempfile.mkdtemp())
from rmteach.grading import worker_cache
worker_cache.install()
after = errors()
cached = fresh_gradebook(tempfile.mkdtemp())
url = f"sqlite:///{tempfile.mkdtemp()}/shared.db"
a = Gradebook(url, "c"); a.update_or_create_student("ada"); a.close()
b = Gradebook(url, "c"); shared = b.engine is a.engine; students = [s.id for s in b.students]; b.close()
print(json.dumps({"before": before, "after": after, "plain": plain, "cached": cached, "shared": shared,
                  "students": students}))
'''


def test_the_worker_cache_validates_and_creates_gradebooks_as_nbgrader_does(tmp_path):
    proc = subprocess.run([sys.executable, "-c", _CACHE_CHECK], capture_output=True, text=True, cwd=tmp_path,
                          env=gcourse._nbgrader_env(),  # nbgrader runs alembic from PATH for a new gradebook
                          timeout=300)
    assert proc.returncode == 0, proc.stderr[-2000:]
    out = json.loads(proc.stdout.strip().splitlines()[-1])
    assert out["before"] == out["after"]
    assert out["before"][-1] is None and all(e for e in out["before"][:-1])
    assert out["plain"] == out["cached"] and out["plain"][1]  # same tables, same alembic version row
    assert out["shared"] is True and out["students"] == ["ada"]


@needs_sandbox
def test_the_grading_kernel_runs_code_without_debugpy(tmp_path):
    from jupyter_core.utils import run_sync

    from rmteach.grading import kernel_prestart

    cfg = gcourse._course_config(gcourse.REPO_COURSE)
    target = tmp_path / "work"
    target.mkdir()
    kernel_prestart.launch(str(target), "python3", cfg, ["--HistoryManager.hist_file=:memory:"])
    km = kernel_prestart.take("python3", str(target))
    assert km is not None
    assert "rmteach.grading.grading_kernel" in km.format_kernel_cmd()
    kc = km.client()
    kc.start_channels()
    try:
        run_sync(kc.wait_for_ready)(timeout=60)
        seen = []
        run_sync(kc.execute_interactive)("import sys, os; print(6 * 7, sys.modules.get('debugpy') is not None, os.getcwd())",
                                         output_hook=lambda m: seen.append(m["content"].get("text", "")), timeout=60)
        assert "".join(seen).split() == ["42", "False", str(target.resolve())]
    finally:
        kc.stop_channels()
        run_sync(km.shutdown_kernel)(now=True)
    assert km.workdir is None  # its private folder went with it


def test_workers_are_forked_only_from_a_single_threaded_process():
    assert worker.can_fork() == (threading.active_count() == 1)
    stop = threading.Event()
    t = threading.Thread(target=stop.wait)
    t.start()
    try:
        assert worker.can_fork() is False
    finally:
        stop.set()
        t.join()
