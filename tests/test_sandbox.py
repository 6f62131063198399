"""rmteach.grading.sandbox: each student's kernel runs in bubblewrap while nbgrader autogrades.

Every protection is proven with a submission that tries to break it:

* one real ``nbgrader autograde`` run over a tiny course made here (one graded
  test cell worth 2 points, a hidden test) with six students: an honest one, one
  reading the solutions in ``source/``, one writing ``gradebook.db`` and other
  students' folders, one opening network connections to a server this test runs
  on the host, one allocating 8 GiB under a 1 GiB bound, one looping forever;
* kernel-level tests of the bounds nbgrader cannot show (a kernel that ignores
  interrupts is killed by the wall-clock and the CPU-time bounds);
* controls: the same attacks run unsandboxed DO succeed, so the tests can fail.

Without bubblewrap the tests skip and say how to install it, except under
``CI=true`` where they fail: CI must prove the sandbox.
"""

from __future__ import annotations

import hashlib
import json
import os
import socket
import subprocess
import sys
import textwrap
import threading
import time
from pathlib import Path

import nbformat
import pytest

from rmteach.grading import sandbox
from rmteach.grading.sandbox import (
    INSTALL_HINT,
    SandboxError,
    SyncSandboxKernelManager,
    bwrap_command,
    configure_nbgrader,
    course_protected_paths,
    sandbox_available,
)

GiB = 1 << 30


@pytest.fixture(scope="module")
def need_sandbox():
    ok, reason = sandbox_available()
    if not ok:
        if os.environ.get("CI") == "true":
            pytest.fail(f"CI=true, so the sandbox must be proven, but it is unavailable: {reason}")
        hint = "" if INSTALL_HINT in reason else f"; to run these tests, {INSTALL_HINT}"
        pytest.skip(f"sandbox unavailable: {reason}{hint}")
    return reason


# --------------------------------------------------------------------------- host-side helpers


class TcpServer:
    """A TCP server on the host's 127.0.0.1 that records every connection it accepts."""

    def __init__(self):
        self.sock = socket.socket()
        self.sock.bind(("127.0.0.1", 0))
        self.sock.listen(16)
        self.sock.settimeout(0.2)
        self.port = self.sock.getsockname()[1]
        self.accepted = 0
        self._stop = False
        self._thread = threading.Thread(target=self._run, daemon=True)
        self._thread.start()

    def _run(self):
        while not self._stop:
            try:
                conn, _ = self.sock.accept()
            except OSError:
                continue
            self.accepted += 1
            conn.close()

    def close(self):
        self._stop = True
        self._thread.join()
        self.sock.close()


class AbstractUnixServer:
    """A Unix socket in the abstract namespace (tied to the network namespace, not the file system)."""

    def __init__(self):
        self.name = f"rmteach-sandbox-test-{os.getpid()}-{time.monotonic_ns()}"
        self.sock = socket.socket(socket.AF_UNIX)
        self.sock.bind("\0" + self.name)
        self.sock.listen(4)

    def close(self):
        self.sock.close()


def write_submissions(course: Path, answers: dict[str, str]) -> None:
    """One submission of ps1 per student: the released notebook with its answer cell replaced."""
    released = nbformat.read(course / "release" / "ps1" / "ps1.ipynb", as_version=4)
    for student, answer in answers.items():
        nb = nbformat.from_dict(json.loads(json.dumps(released)))
        [cell] = [c for c in nb.cells if c.metadata.get("nbgrader", {}).get("grade_id") == "answer"]
        cell.source = answer
        folder = course / "submitted" / student / "ps1"
        folder.mkdir(parents=True)
        nbformat.write(nb, folder / "ps1.ipynb")
        (folder / "timestamp.txt").write_text("2025-01-01 00:00:00.000000 UTC")


def _sha(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


# --------------------------------------------------------------------------- attack code


def read_attack(course: Path) -> str:
    return textwrap.dedent(
        f"""
        import os
        for target in [{str(course / 'source' / 'ps1' / 'ps1.ipynb')!r}, {str(course / 'gradebook.db')!r}]:
            try:
                data = open(target, 'rb').read()
                print('ATTACK-READ LEAKED', target, len(data), b'BEGIN HIDDEN TESTS' in data)
            except Exception as exc:
                print('ATTACK-READ blocked', type(exc).__name__)
        for folder in [{str(course)!r}, {str(course / 'autograded')!r}]:
            print('ATTACK-LIST', sorted(os.listdir(folder)))
        """
    )


def write_attack(course: Path) -> str:
    targets = [
        course / "gradebook.db",
        course / "submitted" / "good" / "ps1" / "ps1.ipynb",
        course / "submitted" / "writer" / "ps1" / "ps1.ipynb",
        course / "autograded" / "good" / "ps1" / "ps1.ipynb",
        course / "autograded" / "good" / "ps1" / "planted.txt",
        course / "source" / "ps1" / "planted.txt",
    ]
    return textwrap.dedent(
        f"""
        for target in {[str(t) for t in targets]!r}:
            try:
                with open(target, 'ab') as f:
                    f.write(b'OWNED')
                print('ATTACK-WRITE SUCCEEDED', target)
            except Exception as exc:
                print('ATTACK-WRITE blocked', type(exc).__name__, target)
        open('own_file.txt', 'w').write('a student may write its own folder')
        print('OWN-WRITE ok')
        """
    )


def net_attack(port: int, abstract_name: str) -> str:
    return textwrap.dedent(
        f"""
        import socket
        for addr in [('127.0.0.1', {port}), ('1.1.1.1', 53)]:
            try:
                socket.create_connection(addr, timeout=2).close()
                print('ATTACK-NET CONNECTED', addr)
            except OSError as exc:
                print('ATTACK-NET blocked', type(exc).__name__, addr)
        s = socket.socket(socket.AF_UNIX)
        try:
            s.connect('\\0' + {abstract_name!r})
            print('ATTACK-NET CONNECTED abstract')
        except OSError as exc:
            print('ATTACK-NET blocked', type(exc).__name__, 'abstract')
        """
    )


MEM_ATTACK = textwrap.dedent(
    """
    try:
        hog = bytearray(8 * 2**30)
        print('ATTACK-MEM ALLOCATED', len(hog))
    except MemoryError:
        print('ATTACK-MEM blocked MemoryError')
    import numpy as np
    try:
        hog = np.ones(2**30)  # 8 GiB of float64
        print('ATTACK-MEM ALLOCATED numpy', hog.nbytes)
    except MemoryError:
        print('ATTACK-MEM blocked MemoryError numpy')
    """
)

GOOD_ANSWER = "def add(a, b):\n    return a + b\n"
LOOP_ANSWER = "while True:\n    pass\n" + GOOD_ANSWER


# --------------------------------------------------------------------------- a tiny nbgrader course


def _cell(kind, source, **nbgrader):
    make = nbformat.v4.new_code_cell if kind == "code" else nbformat.v4.new_markdown_cell
    cell = make(source)
    if nbgrader:
        cell.metadata["nbgrader"] = {"schema_version": 3, **nbgrader}
    return cell


def _source_notebook():
    nb = nbformat.v4.new_notebook()
    nb.metadata["kernelspec"] = {"name": "python3", "display_name": "Python 3", "language": "python"}
    nb.cells = [
        _cell("markdown", "Write `add(a, b)`."),
        _cell(
            "code",
            "def add(a, b):\n    ### BEGIN SOLUTION\n    return a + b\n    ### END SOLUTION",
            grade=False, solution=True, locked=False, grade_id="answer",
        ),
        _cell(
            "code",
            "assert add(1, 2) == 3\n### BEGIN HIDDEN TESTS\nassert add(-1, 1) == 0\n### END HIDDEN TESTS",
            grade=True, solution=False, locked=True, points=2, grade_id="test_add",
        ),
    ]
    return nb


def _nbgrader(course: Path, *args: str, timeout: float = 300, rc: int = 0) -> subprocess.CompletedProcess:
    cmd = [sys.executable, "-m", "nbgrader", *args, f"--CourseDirectory.root={course}"]
    # nbgrader runs `alembic` from PATH: put the venv's bin first, as `make` does.
    env = {**os.environ, "PATH": f"{Path(sys.executable).parent}{os.pathsep}{os.environ.get('PATH', '')}"}
    proc = subprocess.run(cmd, cwd=course, env=env, capture_output=True, text=True, timeout=timeout)
    assert proc.returncode == rc, f"{cmd} exit {proc.returncode}, not {rc}:\n{proc.stdout}\n{proc.stderr}"
    return proc


STUDENTS = ("good", "reader", "writer", "net", "mem", "loop")  # all graded; "stubborn" is killed
STUBBORN_ANSWER = "import signal\nsignal.signal(signal.SIGINT, signal.SIG_IGN)\nwhile True:\n    pass\n"
WALL = 15


@pytest.fixture(scope="module")
def graded_course(need_sandbox, tmp_path_factory):
    """Build the course, submit six notebooks, run `nbgrader autograde` sandboxed once."""
    course = tmp_path_factory.mktemp("course")
    (course / "nbgrader_config.py").write_text(
        textwrap.dedent(
            f"""
            c = get_config()
            c.CourseDirectory.course_id = "sandboxtest"
            c.Autograde.create_student = True
            c.Execute.timeout = 5
            c.Execute.interrupt_on_timeout = True
            from rmteach.grading.sandbox import configure_nbgrader
            SANDBOX = configure_nbgrader(c, course_root={str(course)!r}, mode="require",
                                         memory_limit=1 * 2**30, wall_time_limit={WALL}, cpu_time_limit=60)
            """
        )
    )
    (course / "source" / "ps1").mkdir(parents=True)
    nbformat.write(_source_notebook(), course / "source" / "ps1" / "ps1.ipynb")
    _nbgrader(course, "generate_assignment", "ps1")

    server, abstract = TcpServer(), AbstractUnixServer()
    answers = {
        "good": GOOD_ANSWER,
        "reader": GOOD_ANSWER + read_attack(course),
        "writer": GOOD_ANSWER + write_attack(course),
        "net": GOOD_ANSWER + net_attack(server.port, abstract.name),
        "mem": MEM_ATTACK + GOOD_ANSWER,
        "loop": LOOP_ANSWER,
        "stubborn": STUBBORN_ANSWER,
    }
    write_submissions(course, answers)

    # Snapshots of what the writer attacks (autograde creates gradebook rows, so the
    # gradebook is checked by its contents, below, not by its bytes).
    protected = [course / "submitted" / s / "ps1" / "ps1.ipynb" for s in STUDENTS]
    protected.append(course / "source" / "ps1" / "ps1.ipynb")
    before = {p: _sha(p) for p in protected}

    t0 = time.monotonic()
    try:
        # Exit 1: the stubborn student's kernel was killed, so its autograde failed.
        proc = _nbgrader(course, "autograde", "ps1", rc=1)
    finally:
        server.close()
        abstract.close()
    elapsed = time.monotonic() - t0
    return {
        "course": course, "log": proc.stdout + proc.stderr, "elapsed": elapsed,
        "server": server, "before": before,
    }


def _score(course: Path, student: str) -> float:
    from nbgrader.api import Gradebook

    with Gradebook(f"sqlite:///{course / 'gradebook.db'}") as gb:
        return gb.find_submission("ps1", student).score


def _outputs(course: Path, student: str) -> str:
    nb = nbformat.read(course / "autograded" / student / "ps1" / "ps1.ipynb", as_version=4)
    texts = []
    for cell in nb.cells:
        for out in cell.get("outputs", []):
            texts.append(out.get("text", "") or "\n".join(out.get("traceback", [])) or out.get("ename", ""))
    return "\n".join(texts)


# --------------------------------------------------------------------------- end to end through nbgrader


def test_nbgrader_uses_the_sandbox(graded_course):
    log = graded_course["log"]
    # Each autograded notebook's kernel ran inside bwrap: the kernel saw itself as uid 1000
    # in the writer's output, and nothing outside its folder (the reader's listing failed).
    assert "Autograding" in log
    for student in STUDENTS:
        assert (graded_course["course"] / "autograded" / student / "ps1" / "ps1.ipynb").exists(), log


def test_correct_submission_gets_full_grade_in_the_sandbox(graded_course):
    course = graded_course["course"]
    assert _score(course, "good") == 2.0
    # Attacks that fail do not cost a correct answer its points: the kernel goes on.
    for student in ("reader", "writer", "net", "mem"):
        assert _score(course, student) == 2.0, _outputs(course, student)


def test_student_cannot_read_solutions_or_gradebook(graded_course):
    out = _outputs(graded_course["course"], "reader")
    assert "LEAKED" not in out
    assert out.count("ATTACK-READ blocked FileNotFoundError") == 2, out
    # The course folder holds only the mount point of the student's own autograded copy.
    assert "ATTACK-LIST ['autograded']\nATTACK-LIST ['reader']\n" in out, out


def test_student_cannot_write_gradebook_or_other_folders(graded_course):
    course = graded_course["course"]
    out = _outputs(course, "writer")
    assert "SUCCEEDED" not in out, out
    assert out.count("ATTACK-WRITE blocked") == 6, out
    assert "OWN-WRITE ok" in out, out
    assert (course / "autograded" / "writer" / "ps1" / "own_file.txt").exists()
    for path, digest in graded_course["before"].items():
        assert _sha(path) == digest, f"{path} changed"
    assert not (course / "autograded" / "good" / "ps1" / "planted.txt").exists()
    assert not (course / "source" / "ps1" / "planted.txt").exists()
    assert b"OWNED" not in (course / "gradebook.db").read_bytes()
    assert _score(course, "good") == 2.0


def test_student_has_no_network(graded_course):
    out = _outputs(graded_course["course"], "net")
    assert "CONNECTED" not in out, out
    assert "ATTACK-NET blocked ConnectionRefusedError ('127.0.0.1'" in out, out
    assert out.count("ATTACK-NET blocked") == 3, out
    assert graded_course["server"].accepted == 0


def test_memory_bound_raises_memory_error_and_grading_goes_on(graded_course):
    out = _outputs(graded_course["course"], "mem")
    assert "ALLOCATED" not in out, out
    assert "ATTACK-MEM blocked MemoryError\n" in out and "blocked MemoryError numpy" in out, out


def test_infinite_loop_is_stopped_and_the_run_goes_on(graded_course):
    course = graded_course["course"]
    out = _outputs(course, "loop")
    assert "CellTimeoutError" in out or "KeyboardInterrupt" in out, out
    assert _score(course, "loop") == 0.0
    # Seven students, a 5-second cell timeout and a 15-second kernel: nothing held up the run.
    assert graded_course["elapsed"] < 150, graded_course["elapsed"]


def test_kernel_ignoring_interrupts_is_killed_at_the_wall_clock_bound(graded_course):
    """The per-cell timeout's interrupt is ignored; the kernel's wall-clock bound kills it."""
    course, log = graded_course["course"], graded_course["log"]
    assert "Interrupting kernel" in log
    assert "There was an error processing assignment 'ps1' for student 'stubborn'" in log, log
    assert not (course / "autograded" / "stubborn" / "ps1").exists()  # nbgrader removes a failed autograde
    # Only the stubborn student failed; the others after it were graded.
    assert log.count("There was an error processing assignment:") == 1, log
    assert _score(course, "good") == 2.0


# --------------------------------------------------------------------------- controls: the attacks are real


def test_controls_the_same_attacks_succeed_without_the_sandbox(graded_course, tmp_path):
    """Run unsandboxed (plain Python, grader's permissions), the attacks work: the tests above can fail."""
    course = graded_course["course"]
    server, abstract = TcpServer(), AbstractUnixServer()
    try:
        code = read_attack(course) + net_attack(server.port, abstract.name)
        proc = subprocess.run([sys.executable, "-c", code], cwd=tmp_path, capture_output=True, text=True, timeout=60)
    finally:
        server.close()
        abstract.close()
    assert "ATTACK-READ LEAKED" in proc.stdout and "True" in proc.stdout, proc.stdout + proc.stderr
    assert "'gradebook.db'" in proc.stdout and "'source'" in proc.stdout and "'good', 'loop'" in proc.stdout
    assert "ATTACK-NET CONNECTED ('127.0.0.1'" in proc.stdout and "CONNECTED abstract" in proc.stdout
    assert server.accepted == 1
    victim = tmp_path / "gradebook.db"
    victim.write_bytes(b"")
    proc = subprocess.run(
        [sys.executable, "-c", f"open({str(victim)!r}, 'ab').write(b'OWNED')"], capture_output=True, timeout=60
    )
    assert victim.read_bytes() == b"OWNED"


# --------------------------------------------------------------------------- kernel-level bounds


class SandboxedKernel:
    def __init__(self, workdir: Path, **limits):
        self.km = SyncSandboxKernelManager(kernel_name="python3", **limits)
        self.km.start_kernel(cwd=str(workdir))
        self.kc = self.km.client()
        self.kc.start_channels()
        self.kc.wait_for_ready(timeout=60)

    def run(self, code: str, timeout: float = 30) -> tuple[str, str]:
        out: list[str] = []

        def hook(msg):
            c = msg["content"]
            out.append(c.get("text") or c.get("ename") or "")

        reply = self.kc.execute_interactive(code, timeout=timeout, output_hook=hook)
        return reply["content"]["status"], "".join(out)

    def close(self):
        self.kc.stop_channels()
        if self.km.has_kernel:
            self.km.shutdown_kernel(now=True)
        else:
            self.km.cleanup_resources()


def test_kernel_sees_only_its_folder_and_runs_unprivileged(need_sandbox, tmp_path):
    k = SandboxedKernel(tmp_path)
    try:
        status, out = k.run(
            "import os, pathlib\n"
            "print(os.getcwd())\n"
            "print(os.getuid(), open('/proc/self/status').read().split('CapEff:')[1].split()[0])\n"
            "print(sorted(p.name for p in pathlib.Path('/').iterdir()))\n"
            "print(sorted(os.environ))\n"
            "print(len([p for p in os.listdir('/proc') if p.isdigit()]))\n"
        )
        assert status == "ok", out
        lines = out.splitlines()
        assert lines[0] == os.path.realpath(tmp_path)
        assert lines[1] == "1000 0000000000000000"  # no capabilities at all
        top = set(eval(lines[2]))
        allowed = {"usr", "bin", "sbin", "lib", "lib32", "lib64", "libx32", "etc", "proc", "dev", "tmp"}
        allowed |= {p.parts[1] for p in sandbox.python_readonly_paths() + [Path(os.path.realpath(tmp_path))]}
        assert top <= allowed, top - allowed
        assert not any(k in lines[3] for k in ("SSH_AUTH_SOCK", "GITHUB_TOKEN", "AWS_", "OPENAI"))
        assert int(lines[4]) <= 4, "the kernel sees host processes"  # bwrap's init, the kernel (and children)
        # The user namespace is sealed: no nested namespaces to regain privileges in.
        status, out = k.run(
            "import ctypes\nlibc = ctypes.CDLL(None, use_errno=True)\n"
            "print(libc.unshare(0x10000000), ctypes.get_errno())"
        )
        assert out.split()[0] == "-1", out
    finally:
        k.close()


def test_wall_clock_bound_kills_a_kernel_that_ignores_interrupts(need_sandbox, tmp_path):
    k = SandboxedKernel(tmp_path, wall_time_limit=6, cpu_time_limit=0)
    try:
        t0 = time.monotonic()
        k.kc.execute("import signal\nsignal.signal(signal.SIGINT, signal.SIG_IGN)\nwhile True:\n    pass\n")
        time.sleep(1.5)
        k.km.interrupt_kernel()  # what nbgrader does on a cell timeout: ignored by this code
        time.sleep(1.0)
        assert k.km.is_alive()
        while k.km.is_alive() and time.monotonic() - t0 < 30:
            time.sleep(0.2)
        assert not k.km.is_alive()
        assert time.monotonic() - t0 < 15
    finally:
        k.close()


def test_cpu_time_bound_kills_a_spinning_kernel(need_sandbox, tmp_path):
    k = SandboxedKernel(tmp_path, wall_time_limit=0, cpu_time_limit=3)
    try:
        t0 = time.monotonic()
        k.kc.execute("import signal\nsignal.signal(signal.SIGINT, signal.SIG_IGN)\nwhile True:\n    pass\n")
        while k.km.is_alive() and time.monotonic() - t0 < 30:
            time.sleep(0.2)
        assert not k.km.is_alive()
        assert time.monotonic() - t0 < 15
    finally:
        k.close()


def test_interrupt_reaches_the_sandboxed_kernel(need_sandbox, tmp_path):
    k = SandboxedKernel(tmp_path)
    try:
        msg_id = k.kc.execute("while True:\n    pass\n")
        time.sleep(1.0)
        k.km.interrupt_kernel()
        reply = k.kc.get_shell_msg(timeout=10)
        while reply["parent_header"].get("msg_id") != msg_id:  # skip kernel_info replies from start-up
            reply = k.kc.get_shell_msg(timeout=10)
        assert reply["content"]["status"] == "error" and reply["content"]["ename"] == "KeyboardInterrupt"
        assert k.run("print(6 * 7)") == ("ok", "42\n")
    finally:
        k.close()


def test_private_tmp_and_file_size_bounds(need_sandbox, tmp_path):
    marker = Path("/tmp") / f"rmteach-host-marker-{os.getpid()}"
    marker.write_text("host")
    k = SandboxedKernel(tmp_path, file_size_limit=4 << 20, tmp_size=8 << 20)
    try:
        status, out = k.run(
            "import os\n"
            "print(sorted(os.listdir('/tmp')))\n"
            "open('/tmp/scratch.txt', 'w').write('private scratch'); print('SCRATCH ok')\n"
            "for p in ['/x', '/usr/x', '/etc/x', os.path.dirname(os.getcwd()) + '/x']:\n"
            "    try:\n        open(p, 'w'); print('WROTE', p)\n"
            "    except OSError as exc:\n        print('blocked', exc.errno)\n"
            "try:\n    open('big.bin', 'wb').write(b'x' * (16 << 20)); print('BIG WRITTEN')\n"
            "except OSError as exc:\n    print('blocked', exc.errno)\n"
        )
        assert "BIG WRITTEN" not in out and "blocked 27" in out, out  # EFBIG
        assert "SCRATCH ok" in out and "WROTE" not in out and out.count("blocked 30") == 4, out  # EROFS
        assert marker.name not in out, out  # a fresh /tmp, not the host's
    finally:
        k.close()
        marker.unlink()
    assert (tmp_path / "big.bin").stat().st_size <= 4 << 20
    assert not Path("/tmp/scratch.txt").exists()


# --------------------------------------------------------------------------- configuration and refusals


def test_mounts_never_expose_protected_course_paths(tmp_path):
    course = tmp_path / "course"
    work = course / "autograded" / "alice" / "ps1"
    work.mkdir(parents=True)
    protected = course_protected_paths(course)
    cmd = bwrap_command(["python"], workdir=work, protected_paths=protected, bwrap="/bin/true")
    assert str(course / "source") not in " ".join(cmd)
    # The course root itself, or anything holding source/, as the working folder or an extra mount: refused.
    with pytest.raises(SandboxError, match="would expose"):
        bwrap_command(["python"], workdir=course, protected_paths=protected, bwrap="/bin/true")
    with pytest.raises(SandboxError, match="would expose"):
        bwrap_command(["python"], workdir=work, extra_ro_paths=[course], protected_paths=protected, bwrap="/bin/true")
    (course / "source").mkdir()
    with pytest.raises(SandboxError, match="would expose"):
        bwrap_command(["python"], workdir=course / "source", protected_paths=protected, bwrap="/bin/true")


def test_kernel_command_shape(tmp_path):
    cmd = bwrap_command(
        ["python", "-m", "ipykernel_launcher"], workdir=tmp_path, env={"SECRET_TOKEN": "x", "NBGRADER_EXECUTION": "autograde"},
        memory_bytes=GiB, cpu_seconds=10, wall_seconds=20, bwrap="/usr/bin/bwrap",
    )
    joined = " ".join(cmd)
    for flag in ("--unshare-all", "--unshare-user", "--disable-userns", "--die-with-parent", "--new-session",
                 "--clearenv", f"--as={GiB}", "--cpu=10", "20s"):
        assert flag in cmd or flag in joined
    assert cmd[cmd.index("--cap-drop") + 1] == "ALL"
    assert "SECRET_TOKEN" not in joined and "NBGRADER_EXECUTION autograde" in joined
    assert ["--bind", os.path.realpath(tmp_path), os.path.realpath(tmp_path)] == cmd[
        cmd.index("--bind"): cmd.index("--bind") + 3
    ]
    assert cmd.count("--bind") == 1  # the student's folder is the only writable host path here
    sources = [cmd[i + 1] for i, a in enumerate(cmd) if a in ("--ro-bind", "--bind")]
    assert not set(sources) & {"/", "/root", "/home", "/work", "/work/main", "/etc", "/tmp"}, sources
    assert cmd[cmd.index("--chdir") - 2:cmd.index("--chdir")] == ["--remount-ro", "/"]


def test_configure_nbgrader_replaces_execute_only(need_sandbox, tmp_path):
    from traitlets.config import Config

    c = Config()
    c.Autograde.autograde_preprocessors = ["nbgrader.preprocessors.Execute", "nbgrader.preprocessors.LimitOutput"]
    ok, message = configure_nbgrader(c, course_root=tmp_path, mode="require", memory_limit=GiB)
    assert ok and message.startswith("sandboxed")
    assert c.Autograde.autograde_preprocessors == ["rmteach.grading.sandbox.SandboxedExecute", "nbgrader.preprocessors.LimitOutput"]
    assert c.SandboxKernelManager.memory_limit == GiB
    assert str(Path(os.path.realpath(tmp_path)) / "source") in c.SandboxKernelManager.protected_paths

    c2 = Config()
    configure_nbgrader(c2, mode="require")
    names = c2.Autograde.autograde_preprocessors
    assert "rmteach.grading.sandbox.SandboxedExecute" in names and "nbgrader.preprocessors.Execute" not in names
    assert len(names) == 7

    from nbgrader.preprocessors import Execute

    ex = sandbox.SandboxedExecute(config=c)
    assert isinstance(ex, Execute) and ex.kernel_manager_class is sandbox.SandboxKernelManager
    assert configure_nbgrader(Config(), mode="off")[0] is False


def test_unavailable_sandbox_fails_closed(monkeypatch):
    from traitlets.config import Config

    missing = "/nonexistent/bwrap"
    ok, reason = sandbox_available(missing)
    assert not ok and missing in reason
    monkeypatch.setattr(sandbox, "sandbox_available", lambda: (False, "bubblewrap (bwrap) is not installed"))
    monkeypatch.setattr(sandbox, "user_sandbox_available", lambda: (False, "no grader user"))
    c = Config()
    ok, message = configure_nbgrader(c, mode="auto")
    assert not ok and message.startswith("NO SANDBOX") and "not installed" in message
    assert "SANDBOX=off" in message and "apt-get install" in message  # the fix, and the explicit way out
    names = c.Autograde.autograde_preprocessors
    assert sandbox.REFUSE_UNSANDBOXED in names and not any(n.endswith(".Execute") for n in names), names
    refuse = sandbox.RefuseUnsandboxed(config=c)
    with pytest.raises(SandboxError, match="NO SANDBOX: bubblewrap"):
        refuse.preprocess(nbformat.v4.new_notebook(), {})
    with pytest.raises(SandboxError, match="not installed"):
        configure_nbgrader(Config(), mode="require")
    off = Config()
    assert configure_nbgrader(off, mode="off")[0] is False and "autograde_preprocessors" not in off.Autograde


def test_plain_nbgrader_autograde_runs_no_student_code_without_a_sandbox(tmp_path):
    """The course config in auto mode with no sandbox: `nbgrader autograde` itself refuses, nothing runs."""
    course = tmp_path / "course"
    marker = tmp_path / "student-code-ran"
    (course / "source" / "ps1").mkdir(parents=True)
    (course / "nbgrader_config.py").write_text(textwrap.dedent(f"""
        c = get_config()
        c.CourseDirectory.course_id = "failclosed"
        c.Autograde.create_student = True
        import rmteach.grading.sandbox as _s
        _s.sandbox_available = lambda *a: (False, "bubblewrap (bwrap) is not installed (simulated)")
        _s.user_sandbox_available = lambda: (False, "no grader user (simulated)")
        _s.configure_nbgrader(c, course_root={str(course)!r}, mode="auto")
        """))
    nbformat.write(_source_notebook(), course / "source" / "ps1" / "ps1.ipynb")
    _nbgrader(course, "generate_assignment", "ps1")
    write_submissions(course, {"eve": f"open({str(marker)!r}, 'w').write('ran')\n" + GOOD_ANSWER})
    proc = _nbgrader(course, "autograde", "ps1", rc=1)
    log = proc.stdout + proc.stderr
    assert "NO SANDBOX: bubblewrap: bubblewrap (bwrap) is not installed (simulated)" in log, log
    assert not marker.exists(), "the student's code ran without a sandbox"
    assert not (course / "autograded" / "eve" / "ps1" / "ps1.ipynb").exists()


def _linked_layouts(tmp: Path, venv: Path) -> dict[str, Path]:
    """Three ways an instructor's environment is reached through symlinks; each maps to the python to run."""
    (tmp / "course").mkdir()
    (tmp / "course" / ".venv").symlink_to(venv)  # a course .venv linked to an environment elsewhere
    (tmp / "b").symlink_to(venv)
    (tmp / "a").symlink_to(tmp / "b")  # a link to a link
    (tmp / "envs").symlink_to(venv.parent)  # the folder holding the venv is a link (venv outside the course)
    return {"linked .venv": tmp / "course" / ".venv" / "bin" / "python",
            "link to a link": tmp / "a" / "bin" / "python",
            "linked parent folder": tmp / "envs" / venv.name / "bin" / "python"}


@pytest.mark.parametrize("layout", ["linked .venv", "link to a link", "linked parent folder"])
def test_sandbox_works_whatever_symlinks_lie_on_the_environment_path(need_sandbox, tmp_path, layout):
    venv = Path(sys.prefix).resolve()
    if venv == Path(sys.base_prefix).resolve():
        pytest.skip("the tests do not run in a virtual environment")
    python = _linked_layouts(tmp_path, venv)[layout]
    code = textwrap.dedent("""
        import json, subprocess, sys, tempfile
        from rmteach.grading import sandbox
        ok, why = sandbox.sandbox_available()
        work = tempfile.mkdtemp()
        cmd = sandbox.bwrap_command([sys.executable, "-c", "import sys, numpy, ipykernel, rmteach.grading; print(sys.prefix)"],
                                    workdir=work)
        run = subprocess.run(cmd, capture_output=True, text=True, timeout=120)
        print(json.dumps({"ok": ok, "why": why, "prefix": sys.prefix, "rc": run.returncode,
                          "out": run.stdout.strip(), "err": run.stderr.strip()[-500:]}))
        """)
    proc = subprocess.run([str(python), "-c", code], capture_output=True, text=True, timeout=300, cwd=tmp_path)
    assert proc.returncode == 0, proc.stderr
    got = json.loads(proc.stdout.strip().splitlines()[-1])
    assert got["ok"], got["why"]
    assert got["rc"] == 0 and got["out"] == got["prefix"], got  # the kernel's Python ran by the linked path, as a venv
