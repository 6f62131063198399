"""rmteach.grading.sandbox's fallback without bubblewrap: each kernel runs as an unprivileged grader user.

Forced with ``mode="user"``, one real ``nbgrader autograde`` over a tiny course (made
here, as in test_sandbox.py) with students who try: reading ``source/`` and
``gradebook.db``, writing ``gradebook.db`` and other students' folders, allocating
8 GiB under a 1 GiB bound, looping forever, ignoring interrupts (killed at the
wall-clock bound); an honest student gets full marks, and every kernel ran as the
grader user's uid, never root.

Needs root (to switch users) and a kernel Python other users can read.  When the
Python install sits under a 0700 home (pyenv under /root), the tests re-run
themselves in a private mount namespace (``unshare -m``, root only, nothing on the
machine changes) where that home is a 0711 tmpfs showing only the install; when
that is impossible too they skip with the reason (also under ``CI=true``: a CI
container without CAP_SYS_ADMIN and with Python under /root cannot run them).
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import nbformat
import pytest

from rmteach.grading import sandbox

sys.path.insert(0, str(Path(__file__).parent))
from test_sandbox import (  # noqa: E402
    write_submissions,
    GOOD_ANSWER, LOOP_ANSWER, MEM_ATTACK, STUBBORN_ANSWER, _nbgrader, _outputs, _score, _sha, _source_notebook,
    read_attack, write_attack,
)

INNER = "RMTEACH_SANDBOX_USER_INNER"
WALL = 12


def _python_block() -> tuple[str | None, list[Path]]:
    """(why the grader user cannot use this Python, the folders to show in a namespace) or (None, [])."""
    if os.geteuid() != 0:
        return "not root: the grader-user sandbox switches users, which needs root", []
    uid, gid = sandbox._ensure_user(sandbox.GRADER_USER)
    why = sandbox.python_unreachable(uid, gid)
    if not why:
        return None, []
    blocks = set()
    for p in sandbox.python_readonly_paths() + [sandbox._real(sys.executable)]:
        b = sandbox._blocking_ancestor(p, uid, gid)
        if b is not None:
            blocks.add((b, b / p.relative_to(b).parts[0]))
    return why, sorted(blocks)


def test_user_sandbox_in_private_mount_namespace():
    """When the Python install is under a 0700 home, run this file again where that home is 0711 (test only)."""
    if os.environ.get(INNER):
        pytest.skip("already inside the private mount namespace")
    why, blocks = _python_block()
    if why is None:
        pytest.skip("the kernel's Python is usable by the grader user: the tests below run directly")
    if os.geteuid() != 0 or not shutil.which("unshare"):
        pytest.skip(f"grader-user sandbox cannot run here: {why}")
    if len({b for b, _ in blocks}) != 1:
        pytest.skip(f"grader-user sandbox cannot run here: {why} (several private folders: {blocks})")
    home = blocks[0][0]
    script = ["set -e"]
    for i, (_, child) in enumerate(blocks):
        script += [f"mkdir -p /tmp/.rmtns-$$-{i}", f"mount --bind {child} /tmp/.rmtns-$$-{i}"]
    script.append(f"mount -t tmpfs -o mode=0711,size=1m rmteach-test {home}")
    for i, (_, child) in enumerate(blocks):
        script += [f"mkdir -p {child}", f"mount --move /tmp/.rmtns-$$-{i} {child}", f"rmdir /tmp/.rmtns-$$-{i}"]
    script.append('exec "$@"')
    probe = subprocess.run(["unshare", "-m", "--propagation", "private", "true"], capture_output=True, text=True)
    if probe.returncode != 0:
        pytest.skip(f"grader-user sandbox cannot run here: {why}; and no private mount namespace "
                    f"to work around it ({probe.stderr.strip()})")
    cmd = ["unshare", "-m", "--propagation", "private", "sh", "-c", "\n".join(script), "sh",
           sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", __file__]
    env = {**os.environ, INNER: "1", "HOME": "/tmp"}
    proc = subprocess.run(cmd, capture_output=True, text=True, timeout=300, env=env, cwd=Path(__file__).parent.parent)
    print(proc.stdout[-4000:], proc.stderr[-2000:])
    assert proc.returncode == 0, proc.stdout[-6000:] + proc.stderr[-3000:]
    assert " passed" in proc.stdout and "skipped" not in proc.stdout.split("\n")[-2].replace("1 skipped", ""), proc.stdout


@pytest.fixture(scope="module")
def need_user_sandbox():
    ok, why = sandbox.user_sandbox_available()
    if not ok:
        pytest.skip(f"grader-user sandbox unavailable: {why}")
    return why


@pytest.fixture(scope="module")
def graded(need_user_sandbox, tmp_path_factory):
    course = tmp_path_factory.mktemp("usercourse")
    os.chmod(course, 0o700)
    (course / "nbgrader_config.py").write_text(textwrap.dedent(f"""
        c = get_config()
        c.CourseDirectory.course_id = "usersandboxtest"
        c.Autograde.create_student = True
        c.Execute.timeout = 5
        c.Execute.interrupt_on_timeout = True
        from rmteach.grading.sandbox import configure_nbgrader
        OK, MSG = configure_nbgrader(c, course_root={str(course)!r}, mode="user",
                                     memory_limit=1 * 2**30, wall_time_limit={WALL}, cpu_time_limit=60)
        import sys; print("CONFIG:", MSG, file=sys.stderr)
    """))
    (course / "source" / "ps1").mkdir(parents=True)
    nbformat.write(_source_notebook(), course / "source" / "ps1" / "ps1.ipynb")
    _nbgrader(course, "generate_assignment", "ps1")
    whoami = "import os\nprint('UID', os.getuid(), os.getgid(), os.getgroups(), os.geteuid())\n"
    answers = {
        "good": GOOD_ANSWER + whoami,
        "reader": GOOD_ANSWER + read_attack(course),
        "writer": GOOD_ANSWER + write_attack(course),
        "mem": MEM_ATTACK + GOOD_ANSWER,
        "loop": LOOP_ANSWER,
        "stubborn": STUBBORN_ANSWER,
    }
    write_submissions(course, answers)
    protected = [course / "submitted" / s / "ps1" / "ps1.ipynb" for s in answers]
    protected.append(course / "source" / "ps1" / "ps1.ipynb")
    before = {p: _sha(p) for p in protected}
    t0 = time.monotonic()
    proc = _nbgrader(course, "autograde", "ps1", rc=1)  # 1: the stubborn kernel was killed
    import pwd

    return {"course": course, "log": proc.stdout + proc.stderr, "elapsed": time.monotonic() - t0,
            "before": before, "pw": pwd.getpwnam(sandbox.GRADER_USER)}


def test_config_names_the_grader_user(graded):
    log = graded["log"]
    assert "CONFIG: sandboxed: unprivileged user rmteach-grader" in log, log


def test_kernel_runs_as_the_unprivileged_user(graded):
    out = _outputs(graded["course"], "good")
    line = [x for x in out.splitlines() if x.startswith("UID ")][0]
    uid, gid = int(line.split()[1]), int(line.split()[2])
    assert uid != 0 and gid != 0 and "[] " in line + " " and line.endswith(str(uid)), line
    assert uid == graded["pw"].pw_uid or sandbox._user_name(0) in graded["log"] or uid >= 100, line
    assert _score(graded["course"], "good") == 2.0


def test_cannot_read_source_or_gradebook(graded):
    out = _outputs(graded["course"], "reader")
    assert not [x for x in out.splitlines() if x.startswith("ATTACK-READ LEAKED")], out
    assert out.count("ATTACK-READ blocked PermissionError\n") == 2, out
    # not even the course root can be listed
    assert f"Permission denied: '{graded['course']}'" in out, out
    assert _score(graded["course"], "reader") == 2.0


def test_cannot_write_gradebook_or_other_folders(graded):
    course = graded["course"]
    out = _outputs(course, "writer")
    assert "SUCCEEDED" not in out, out
    assert out.count("ATTACK-WRITE blocked") == 6, out
    assert "OWN-WRITE ok" in out, out  # its own (private, staged) working folder is writable
    for path, digest in graded["before"].items():
        assert _sha(path) == digest, f"{path} changed"
    assert not (course / "autograded" / "good" / "ps1" / "planted.txt").exists()
    assert not (course / "source" / "ps1" / "planted.txt").exists()
    assert b"OWNED" not in (course / "gradebook.db").read_bytes()
    assert _score(course, "writer") == 2.0


def test_memory_bound(graded):
    out = _outputs(graded["course"], "mem")
    assert "ALLOCATED" not in out, out
    assert "ATTACK-MEM blocked MemoryError\n" in out and "blocked MemoryError numpy" in out, out
    assert _score(graded["course"], "mem") == 2.0


def test_time_bounds(graded):
    course, log = graded["course"], graded["log"]
    out = _outputs(course, "loop")
    assert "CellTimeoutError" in out or "KeyboardInterrupt" in out, out
    assert _score(course, "loop") == 0.0
    # the kernel ignoring interrupts is killed at the wall-clock bound, and only it fails
    assert "There was an error processing assignment 'ps1' for student 'stubborn'" in log, log
    assert log.count("There was an error processing assignment:") == 1, log
    assert graded["elapsed"] < 80, graded["elapsed"]


def test_no_process_of_the_grader_user_survives(graded):
    uid = graded["pw"].pw_uid
    left = [p for p in os.listdir("/proc") if p.isdigit() and _proc_uid(p) == uid]
    assert left == [], left


def _proc_uid(pid: str):
    try:
        return os.stat(f"/proc/{pid}").st_uid
    except OSError:
        return None


def test_world_accessible_course_root_is_refused(need_user_sandbox, tmp_path):
    course = tmp_path / "open"
    (course / "source").mkdir(parents=True)
    os.chmod(tmp_path, 0o755)
    os.chmod(course, 0o755)
    os.chmod(course / "source", 0o755)
    parents_ok = sandbox._blocking_ancestor(course, *sandbox._ensure_user(sandbox.GRADER_USER)) is None
    mech, why = sandbox.choose_mechanism("user", course)
    if parents_ok:
        assert mech is None and f"chmod o-rwx {course}" in why, why
    os.chmod(course, 0o700)
    assert sandbox.choose_mechanism("user", course)[0] == "user"
