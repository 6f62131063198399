r"""Run each student's notebook kernel inside a bubblewrap sandbox while nbgrader autogrades it.

nbgrader executes a student's notebook in one Jupyter kernel that runs with the
grader's permissions.  :class:`SandboxKernelManager` starts that kernel as::

    timeout -s KILL <wall> bwrap --unshare-all --unshare-user --disable-userns --cap-drop ALL
        --die-with-parent --new-session  <read-only: /usr, a few /etc files, the Python
        install, the venv, the rmteach package>  <read-write: the student's autograded
        folder, the kernel's private socket folder>  --tmpfs /tmp --proc /proc --dev /dev
        --clearenv --setenv ... --chdir <student folder>
        -- prlimit --as=<memory> --cpu=<cpu> --fsize=<file size> --core=0
        -- python -m ipykernel_launcher -f <connection file>

so the student's code

* sees no course files: ``source/`` (solutions, hidden tests), ``release/``,
  ``submitted/``, ``feedback/``, ``gradebook.db`` and the other students' folders are
  simply not in its file system, and the files that are (Python, the venv, the
  ``rmteach`` package) are mounted read-only.  It can write only its own autograded
  copy and a private, size-bounded ``/tmp``;
* has no network: a new network namespace holds only a loopback interface of its
  own.  The grader talks to the kernel over ZeroMQ ``ipc://`` (Unix socket files in
  a private folder bind-mounted into the sandbox), which crosses network namespaces;
* has no capabilities, cannot create user namespaces, gets a fresh PID namespace
  (it sees and can signal only its own processes), a clean environment (the
  grader's environment variables are not passed on) and no controlling terminal;
* is bounded: address space (``RLIMIT_AS``), CPU seconds (``RLIMIT_CPU``), size of
  any file it writes (``RLIMIT_FSIZE``), size of ``/tmp``, and wall-clock time of the
  whole kernel (``timeout -s KILL``; bwrap's ``--die-with-parent`` takes every
  process of the sandbox down with it).  nbgrader's per-cell timeout still applies
  and is the first line: it interrupts a looping cell (by an ``interrupt_request``
  message, since the kernel is in its own session) and grading goes on.

nbgrader integration: :class:`SandboxedExecute` is nbgrader's ``Execute``
preprocessor with this kernel manager; :func:`configure_nbgrader` puts it in place
of ``Execute`` in a traitlets config (``nbgrader_config.py`` or an API config).

:func:`sandbox_available` really starts the sandbox (with the kernel's Python) and
says why not when it cannot.  Nothing here falls back silently: when the sandbox
is unavailable, :func:`configure_nbgrader` leaves nbgrader's plain ``Execute`` only
if asked to (``mode="auto"``) and returns the reason for the caller to print.
"""

from __future__ import annotations

import functools
import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any, Iterable, Optional, Sequence

from jupyter_client.manager import AsyncKernelManager, KernelManager
from traitlets import Integer, List, Unicode

__all__ = [
    "INSTALL_HINT",
    "SandboxError",
    "SandboxKernelManager",
    "SyncSandboxKernelManager",
    "SandboxedExecute",
    "sandbox_available",
    "user_sandbox_available",
    "user_command",
    "choose_mechanism",
    "bwrap_command",
    "configure_nbgrader",
    "course_protected_paths",
    "python_readonly_paths",
]

INSTALL_HINT = "install bubblewrap: `apt-get install -y bubblewrap` (Debian/Ubuntu) or `dnf install bubblewrap`"

GiB = 1 << 30
MiB = 1 << 20

#: Files and folders of /etc a Python kernel may need (those that exist are mounted read-only).
#: Deliberately not /etc as a whole: no shadow, no ssh keys, no machine credentials.
ETC_FILES = (
    "ld.so.cache", "ld.so.conf", "ld.so.conf.d", "localtime", "timezone", "nsswitch.conf",
    "alternatives", "fonts", "mime.types", "os-release", "debian_version",
)

#: Environment variables passed from the grader's kernel environment into the sandbox.
#: Everything else (tokens, credentials, SSH agent sockets, ...) stays outside.
ENV_PASS = (
    "LANG", "LANGUAGE", "TZ", "PYTHONHASHSEED", "MPLBACKEND", "NBGRADER_EXECUTION",
    "OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS", "PYDEVD_DISABLE_FILE_VALIDATION",
    "JPY_SESSION_NAME",
)


class SandboxError(RuntimeError):
    """The sandbox cannot be set up safely (missing tool, or a mount would expose a protected path)."""


# --------------------------------------------------------------------------- paths


def _real(p: os.PathLike | str) -> Path:
    return Path(os.path.realpath(os.fspath(p)))


def _overlaps(a: Path, b: Path) -> bool:
    """True when one path is the other or lies inside it."""
    return a == b or a in b.parents or b in a.parents


def python_readonly_paths() -> list[Path]:
    """What the kernel's Python needs read-only, outside /usr: its install, the venv, the rmteach package.

    The rmteach package (installed editable) is mounted on its own, never the
    repository around it: the repository holds ``assignments/source``.
    """
    paths = {_real(sys.base_prefix), _real(sys.prefix), _real(Path(__file__).parents[1])}
    # The interpreter of the venv may be a symlink into another install (pyenv, uv, conda).
    paths.add(_real(sys.executable).parent.parent)
    usr = Path("/usr")
    return sorted(p for p in paths if p != Path("/") and usr not in p.parents and p != usr)


def _seen(p: os.PathLike | str) -> Path:
    """``p`` made absolute as this process names it: symlinks on the way kept."""
    return Path(os.path.abspath(os.fspath(p)))


def python_mounts() -> list[tuple[Path, Path]]:
    """``(host path, path inside the sandbox)`` for each read-only mount the kernel's Python needs.

    Each of :func:`python_readonly_paths` is mounted at its real path.  Where a
    symlink lies on the way to the interpreter, the environment or the ``rmteach``
    package (a ``.venv`` that is a link to an environment elsewhere, a conda-style
    prefix reached through a link, a repository under a linked folder), the same
    real folder is mounted a second time at the path this process knows it by, so
    the kernel runs by the very path nbgrader gives it (``sys.executable``), finds
    its ``pyvenv.cfg`` next to it, and its editable install finds the package.
    """
    usr = Path("/usr")
    mounts = {(p, p) for p in python_readonly_paths()}
    seen = [sys.base_prefix, sys.prefix, Path(sys.executable).parent, Path(__file__).parents[1]]
    for path in seen:
        alias, real = _seen(path), _real(path)
        if alias != real and alias != usr and usr not in alias.parents:
            mounts.add((real, alias))

    def covered(src: Path, dest: Path) -> bool:  # already visible through a mount of a parent folder
        return any(d in dest.parents and r / dest.relative_to(d) == src for r, d in mounts)

    return sorted((m for m in mounts if not covered(*m)), key=lambda m: (len(m[1].parts), str(m[1])))


def course_protected_paths(course_root: os.PathLike | str) -> list[Path]:
    """The paths of an nbgrader course that no sandbox mount may expose."""
    root = _real(course_root)
    names = ("source", "release", "submitted", "feedback", "gradebook.db", "nbgrader_config.py", "exchange")
    return [root / n for n in names]


def _root_symlinks() -> list[tuple[str, Path]]:
    """Top-level dirs (/bin, /lib, ...) as on the host: a symlink into /usr, or a directory to mount."""
    out = []
    for name in ("bin", "sbin", "lib", "lib32", "lib64", "libx32"):
        p = Path("/") / name
        if p.is_symlink():
            out.append(("symlink", Path(os.readlink(p)), p))  # type: ignore[arg-type]
        elif p.is_dir():
            out.append(("dir", p, p))  # type: ignore[arg-type]
    return out  # type: ignore[return-value]


# --------------------------------------------------------------------------- command


def bwrap_command(
    argv: Sequence[str],
    *,
    workdir: os.PathLike | str,
    rw_dirs: Iterable[os.PathLike | str] = (),
    env: Optional[dict[str, str]] = None,
    memory_bytes: int = 4 * GiB,
    cpu_seconds: int = 900,
    wall_seconds: int = 900,
    file_size_bytes: int = 512 * MiB,
    tmp_size_bytes: int = 512 * MiB,
    extra_ro_paths: Iterable[os.PathLike | str] = (),
    protected_paths: Iterable[os.PathLike | str] = (),
    bwrap: Optional[str] = None,
    uid: int = 1000,
    workdir_source: Optional[os.PathLike | str] = None,
) -> list[str]:
    """The full command line that runs ``argv`` sandboxed, with ``workdir`` as its only writable course folder.

    ``rw_dirs`` are extra writable folders (the kernel's socket folder), mounted at
    the same path.  ``workdir_source``: a host folder to mount *at* ``workdir``
    instead of ``workdir`` itself (a kernel started before nbgrader made its
    folder: :mod:`rmteach.grading.kernel_prestart`).  Raises :class:`SandboxError`
    when a mount would overlap one of ``protected_paths`` or a required tool is
    missing.  A limit of 0 means no limit.
    """
    bwrap = bwrap or shutil.which("bwrap")
    if not bwrap:
        raise SandboxError(f"bwrap not found; {INSTALL_HINT}")
    timeout_prefix, prlimit_prefix = _limits(memory_bytes, cpu_seconds, wall_seconds, file_size_bytes)

    work = _real(workdir)
    work_src = _real(workdir_source) if workdir_source is not None else work
    if not work_src.is_dir():
        raise SandboxError(f"the student's working folder {work_src} does not exist")
    rws = [work] + [_real(d) for d in rw_dirs]
    ro_mounts = python_mounts() + [(_real(p), _real(p)) for p in extra_ro_paths]
    ros = [dest for _, dest in ro_mounts]
    protected = [_real(p) for p in protected_paths]
    for mount in rws + [work_src] + [src for src, _ in ro_mounts] + ros:
        if mount == Path("/"):
            raise SandboxError("refusing to mount / into the sandbox")
        for p in protected:
            if _overlaps(mount, p):
                raise SandboxError(f"sandbox mount {mount} would expose protected path {p}")

    cmd: list[str] = list(timeout_prefix)
    cmd += [
        bwrap,
        "--unshare-all", "--unshare-user", "--disable-userns", "--cap-drop", "ALL",
        "--uid", str(uid), "--gid", str(uid), "--hostname", "sandbox",
        "--die-with-parent", "--new-session",
        "--ro-bind", "/usr", "/usr",
    ]
    for kind, src, dest in _root_symlinks():  # type: ignore[misc]
        if kind == "symlink":
            cmd += ["--symlink", str(src), str(dest)]
        else:
            cmd += ["--ro-bind", str(src), str(dest)]
    for name in ETC_FILES:
        p = Path("/etc") / name
        if p.exists():
            cmd += ["--ro-bind", str(p), str(p)]
    cmd += ["--proc", "/proc", "--dev", "/dev"]
    if tmp_size_bytes:
        cmd += ["--size", str(int(tmp_size_bytes))]
    cmd += ["--tmpfs", "/tmp"]
    # Host folders are mounted at their own paths, so bwrap creates their parent folders
    # ("skeletons") in the sandbox's root or /tmp tmpfs.  Each skeleton gets a tmpfs of
    # its own that is made read-only once the mounts are in, and so is the root: the
    # kernel can write its folder, its socket folder and /tmp, and nothing else.
    anchors: list[Path] = []
    for p in sorted(set(ros + rws), key=lambda q: len(q.parts)):
        top = Path(*p.parts[:3]) if p.parts[1] == "tmp" else Path(*p.parts[:2])
        if top != p and top not in anchors and top not in (Path("/usr"), Path("/etc"), Path("/tmp")):
            anchors.append(top)
    for a in anchors:
        cmd += ["--tmpfs", str(a)]
    # Read-only mounts after /tmp, so that a Python or venv under /tmp still shows through.
    for src, dest in ro_mounts:
        cmd += ["--ro-bind", str(src), str(dest)]
    for p in rws:
        cmd += ["--bind", str(work_src if p == work else p), str(p)]
    for a in anchors:
        cmd += ["--remount-ro", str(a)]
    cmd += ["--remount-ro", "/", "--chdir", str(work), "--clearenv"]
    for key, value in sorted(kernel_env(env, home="/tmp", user="student").items()):
        cmd += ["--setenv", key, value]
    cmd += ["--"] + prlimit_prefix
    cmd += list(argv)
    return cmd


def _limits(
    memory_bytes: int, cpu_seconds: int, wall_seconds: int, file_size_bytes: int, nproc: int = 0
) -> tuple[list[str], list[str]]:
    """The ``timeout -s KILL`` prefix (wall clock) and the ``prlimit ... --`` prefix (memory, CPU, file size).

    Shared by both sandboxes.  A limit of 0 means no limit.
    """
    prlimit = shutil.which("prlimit", path="/usr/bin:/bin")
    if not prlimit or not prlimit.startswith("/usr/"):
        raise SandboxError("prlimit (util-linux) not found under /usr: cannot bound the kernel's memory")
    timeout = shutil.which("timeout", path="/usr/bin:/bin")
    if wall_seconds and not timeout:
        raise SandboxError("timeout (coreutils) not found: cannot bound the kernel's wall-clock time")
    wall = [timeout, "--signal=KILL", f"{int(wall_seconds)}s"] if wall_seconds else []
    pr = [prlimit]
    if memory_bytes:
        pr.append(f"--as={int(memory_bytes)}")
    if cpu_seconds:
        pr.append(f"--cpu={int(cpu_seconds)}")
    if file_size_bytes:
        pr.append(f"--fsize={int(file_size_bytes)}")
    if nproc:
        pr.append(f"--nproc={int(nproc)}")
    pr += ["--core=0", "--"]
    return wall, pr  # type: ignore[return-value]


def kernel_env(env: Optional[dict[str, str]], *, home: str, user: str) -> dict[str, str]:
    """The kernel's whole environment: a fixed set, plus the harmless variables of ``ENV_PASS`` from ``env``."""
    venv_bin = Path(sys.prefix) / "bin"
    full_env = {
        "PATH": f"{venv_bin}:/usr/local/bin:/usr/bin:/bin",
        "HOME": home,
        "USER": user,
        "IPYTHONDIR": f"{home}/.ipython",
        "MPLCONFIGDIR": f"{home}/.matplotlib",
        "JUPYTER_RUNTIME_DIR": f"{home}/.jupyter-runtime",
        "PYTHONDONTWRITEBYTECODE": "1",
        "PYTHONNOUSERSITE": "1",
    }
    for key, value in (env or {}).items():
        if key in ENV_PASS or key.startswith("LC_"):
            full_env[key] = value
    return full_env


# --------------------------------------------------------------------------- availability


@functools.lru_cache(maxsize=None)
def _probe(bwrap: Optional[str]) -> tuple[bool, str]:
    path = bwrap or shutil.which("bwrap")
    if not path:
        return False, f"bubblewrap (bwrap) is not installed; {INSTALL_HINT}"
    probe_dir = tempfile.mkdtemp(prefix="rmtsbx-probe-")
    try:
        code = (
            "import os, socket, ipykernel_launcher\n"
            "assert os.getcwd() == %r\n"
            "open('ok', 'w').write(str(os.getuid()))\n"
            "s = socket.socket(); s.settimeout(1)\n"
            "try:\n    s.connect(('1.1.1.1', 53)); print('net')\n"
            "except OSError:\n    print('nonet')\n" % os.path.realpath(probe_dir)
        )
        cmd = bwrap_command([sys.executable, "-c", code], workdir=probe_dir, bwrap=path, wall_seconds=60)
        proc = subprocess.run(cmd, capture_output=True, text=True, timeout=90)
        if proc.returncode != 0:
            err = (proc.stderr or proc.stdout).strip().splitlines()
            last = err[-1] if err else "no message"
            hint = ("the kernel's Python cannot be run inside the sandbox" if proc.returncode == 127 else
                    "user namespaces may be disabled (sysctl kernel.unprivileged_userns_clone / "
                    "user.max_user_namespaces)")
            return False, f"bwrap at {path} cannot start the sandbox (exit {proc.returncode}: {last}); {hint}"
        if proc.stdout.strip() != "nonet":
            return False, f"bwrap at {path} started, but the sandbox still has a network: {proc.stdout.strip()!r}"
        if not Path(probe_dir, "ok").exists():
            return False, f"bwrap at {path} started, but the sandbox could not write its working folder"
        version = subprocess.run([path, "--version"], capture_output=True, text=True).stdout.strip()
        return True, f"{version or 'bwrap'} at {path}: kernels run sandboxed (no network, no course files)"
    except (OSError, subprocess.SubprocessError, SandboxError) as exc:
        return False, f"bwrap at {path} cannot start the sandbox: {exc}"
    finally:
        shutil.rmtree(probe_dir, ignore_errors=True)


def sandbox_available(bwrap: Optional[str] = None) -> tuple[bool, str]:
    """``(True, description)`` when a sandboxed Python really starts here, else ``(False, reason)``.

    Runs the kernel's own Python inside the exact sandbox a kernel gets (about a
    quarter of a second, once per process), checking it imports ipykernel, runs in
    and can write its working folder, and has no network.
    """
    return _probe(bwrap)


# --------------------------------------------------------------------------- unprivileged-user fallback
#
# Without bubblewrap, a grader running as root can still start each kernel as a
# dedicated system user with no groups and no capabilities (``setpriv``), under the
# same ``prlimit`` / ``timeout -s KILL`` bounds.  Files are isolated by permissions:
# the kernel works in a private copy of the student's autograded folder, inside its
# own 0700 folder owned by that user; the course root must not be reachable by the
# user (checked, never changed: ``chmod o-rwx <course>`` is the fix).  Every kernel
# gets a user of its own for its lifetime (``rmteach-grader``, ``rmteach-grader1``,
# ... one per concurrent kernel, claimed with a lock), and every process of that user
# is killed before the user is handed to the next kernel, so one student's code never
# shares a uid with another student's files or processes.  Network: cut off by a new
# network namespace when root may create one (``unshare --net``); otherwise the kernel
# HAS the machine's network, and the description says so.

GRADER_USER = "rmteach-grader"
USER_SLOTS = 32
USER_NPROC = 256
_LOCK_DIR = "/run/rmteach-grader"


def _user_name(slot: int) -> str:
    return GRADER_USER if slot == 0 else f"{GRADER_USER}{slot}"


def _ensure_user(name: str) -> tuple[int, int]:
    """uid and gid of system user ``name``, created (no home, no login shell) when missing."""
    import pwd

    try:
        pw = pwd.getpwnam(name)
        return pw.pw_uid, pw.pw_gid
    except KeyError:
        pass
    if os.geteuid() != 0:
        raise SandboxError(f"user {name} does not exist and only root can create it")
    useradd = shutil.which("useradd", path="/usr/sbin:/sbin:/usr/bin:/bin")
    if not useradd:
        raise SandboxError(f"user {name} does not exist and useradd (passwd) is not installed to create it")
    nologin = "/usr/sbin/nologin" if os.path.exists("/usr/sbin/nologin") else "/bin/false"
    proc = subprocess.run(
        [useradd, "--system", "--no-create-home", "--home-dir", "/nonexistent", "--shell", nologin,
         "--user-group", name], capture_output=True, text=True,
    )
    try:
        pw = pwd.getpwnam(name)
    except KeyError:
        raise SandboxError(f"cannot create user {name}: {proc.stderr.strip() or proc.returncode}") from None
    return pw.pw_uid, pw.pw_gid


def _can(uid: int, gid: int, st: os.stat_result, bits: int) -> bool:
    """Whether a process of ``uid``/``gid`` (no supplementary groups) has all ``bits`` (r=4 w=2 x=1) on ``st``."""
    if st.st_uid == uid:
        mode = (st.st_mode >> 6) & 7
    elif st.st_gid == gid:
        mode = (st.st_mode >> 3) & 7
    else:
        mode = st.st_mode & 7
    return mode & bits == bits


def _blocking_ancestor(path: Path, uid: int, gid: int) -> Optional[Path]:
    """The first folder above ``path`` that ``uid`` cannot traverse, or None when all can be."""
    for a in reversed(path.parents):
        try:
            if not _can(uid, gid, os.stat(a), 1):
                return a
        except OSError:
            return a
    return None


def reachable_by(path: os.PathLike | str, uid: int, gid: int) -> bool:
    """Whether ``uid`` can read, write or enter ``path`` (by the mode bits; root's ACL-free machines)."""
    p = _real(path)
    if not p.exists() or _blocking_ancestor(p, uid, gid) is not None:
        return False
    st = os.stat(p)
    return any(_can(uid, gid, st, b) for b in (4, 2, 1))


def python_unreachable(uid: int, gid: int) -> Optional[str]:
    """Why the kernel's Python, venv or rmteach cannot be used by ``uid``; None when they can."""
    for p in python_readonly_paths() + [_real(sys.executable)]:
        block = _blocking_ancestor(p, uid, gid)
        if block is not None:
            st = os.stat(block)
            return (f"the kernel's Python install {p} is not usable by another user: {block} is "
                    f"mode {stat_mode(st)} (owner uid {st.st_uid}); install Python outside a private "
                    "home (e.g. /opt or /usr/local) or use bubblewrap")
        need = 5 if p.is_dir() else 5
        if not _can(uid, gid, os.stat(p), need):
            return f"the kernel's Python install {p} is not readable by another user (mode {stat_mode(os.stat(p))})"
    return None


def stat_mode(st: os.stat_result) -> str:
    return oct(st.st_mode & 0o7777)[2:].rjust(4, "0")


def exposed_paths(course_root: os.PathLike | str, uid: int, gid: int) -> list[Path]:
    """The course's protected paths (and the course root itself) that ``uid`` can reach."""
    root = _real(course_root)
    return [p for p in [root] + course_protected_paths(root) if reachable_by(p, uid, gid)]


def _kill_user(uid: int, gid: int) -> None:
    """Kill every process of ``uid`` (kill(-1) sent as that uid: atomic against forks)."""
    import signal

    for _ in range(3):
        pid = os.fork()
        if pid == 0:  # pragma: no cover - child
            try:
                os.setgroups([])
                os.setresgid(gid, gid, gid)
                os.setresuid(uid, uid, uid)
                os.kill(-1, signal.SIGKILL)
                os._exit(0)
            except ProcessLookupError:
                os._exit(1)  # nothing left to kill
            except BaseException:
                os._exit(2)
        _, status = os.waitpid(pid, 0)
        if os.waitstatus_to_exitcode(status) != 0:
            return
        time.sleep(0.05)


class _UserSlot:
    """A grader user held by one kernel (flock on its lock file) until released."""

    def __init__(self) -> None:
        import fcntl

        if os.geteuid() != 0:
            raise SandboxError("the unprivileged-user sandbox needs the grader to run as root")
        os.makedirs(_LOCK_DIR, mode=0o700, exist_ok=True)
        for slot in range(USER_SLOTS):
            fd = os.open(os.path.join(_LOCK_DIR, f"slot-{slot}.lock"), os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o600)
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except OSError:
                os.close(fd)
                continue
            try:
                self.name = _user_name(slot)
                self.uid, self.gid = _ensure_user(self.name)
            except BaseException:
                os.close(fd)
                raise
            self._fd: Optional[int] = fd
            _kill_user(self.uid, self.gid)  # leftovers of an earlier holder that died
            return
        raise SandboxError(f"all {USER_SLOTS} grader users are busy")

    def release(self) -> None:
        if self._fd is not None:
            _kill_user(self.uid, self.gid)
            os.close(self._fd)
            self._fd = None


@functools.lru_cache(maxsize=None)
def _netns_ok() -> bool:
    unshare = shutil.which("unshare", path="/usr/bin:/bin")
    if not unshare:
        return False
    try:
        return subprocess.run([unshare, "--net", "--", "true"], capture_output=True, timeout=20).returncode == 0
    except (OSError, subprocess.SubprocessError):
        return False


def user_command(
    argv: Sequence[str],
    *,
    uid: int,
    gid: int,
    memory_bytes: int = 4 * GiB,
    cpu_seconds: int = 900,
    wall_seconds: int = 900,
    file_size_bytes: int = 512 * MiB,
    nproc: int = USER_NPROC,
    isolate_network: Optional[bool] = None,
) -> list[str]:
    """``argv`` as user ``uid``/``gid``: no groups, no capabilities, no new privileges, same bounds as bwrap."""
    setpriv = shutil.which("setpriv", path="/usr/bin:/bin")
    if not setpriv:
        raise SandboxError("setpriv (util-linux) not found: cannot drop to the grader user")
    if uid == 0 or gid == 0:
        raise SandboxError("refusing to run a student kernel as root")
    timeout_prefix, prlimit_prefix = _limits(memory_bytes, cpu_seconds, wall_seconds, file_size_bytes, nproc)
    net = _netns_ok() if isolate_network is None else isolate_network
    cmd = list(timeout_prefix)
    if net:
        cmd += [shutil.which("unshare", path="/usr/bin:/bin") or "unshare", "--net", "--"]
    cmd += [setpriv, f"--reuid={uid}", f"--regid={gid}", "--clear-groups", "--inh-caps=-all",
            "--bounding-set=-all", "--no-new-privs", "--"]
    return cmd + prlimit_prefix + list(argv)


def _stage(slot: _UserSlot, base: str, cwd: Optional[str]) -> tuple[str, str]:
    """Give ``base`` (the kernel's private folder) to the slot's user, with a copy of ``cwd`` and a home."""
    work, home = os.path.join(base, "work"), os.path.join(base, "home")
    if cwd:
        # symlinks stay links (never followed by root): a planted link to source/ stays unreadable.
        shutil.copytree(cwd, work, symlinks=True, ignore=shutil.ignore_patterns(".ipynb_checkpoints"))
    else:
        os.mkdir(work)
    os.mkdir(home, 0o700)
    for dirpath, dirnames, filenames in os.walk(base):
        os.lchown(dirpath, slot.uid, slot.gid)
        for n in dirnames + filenames:
            os.lchown(os.path.join(dirpath, n), slot.uid, slot.gid)
    os.chmod(base, 0o700)
    return work, home


@functools.lru_cache(maxsize=None)
def _probe_user() -> tuple[bool, str]:
    if os.geteuid() != 0:
        return False, "the unprivileged-user sandbox needs the grader to run as root (it starts kernels as another user)"
    for tool in ("setpriv", "prlimit", "timeout"):
        if not shutil.which(tool, path="/usr/bin:/bin"):
            return False, f"{tool} is not installed: cannot start kernels as the grader user"
    try:
        slot = _UserSlot()
    except (OSError, SandboxError) as exc:
        return False, f"no grader user: {exc}"
    base = tempfile.mkdtemp(prefix="rmtusr-probe-", dir="/tmp")
    try:
        why = python_unreachable(slot.uid, slot.gid)
        if why:
            return False, why
        work, home = _stage(slot, base, None)
        code = (
            "import os, socket, ipykernel_launcher, rmteach\n"
            "open('ok', 'w').write(str(os.getuid()))\n"
            "s = socket.socket(); s.settimeout(1)\n"
            "try:\n    s.connect(('1.1.1.1', 53)); print('net')\n"
            "except OSError:\n    print('nonet')\n"
        )
        cmd = user_command([sys.executable, "-c", code], uid=slot.uid, gid=slot.gid, wall_seconds=60)
        proc = subprocess.run(cmd, capture_output=True, text=True, timeout=90, cwd=work,
                              env=kernel_env(None, home=home, user=slot.name))
        if proc.returncode != 0:
            err = (proc.stderr or proc.stdout).strip().splitlines()
            return False, f"cannot start Python as user {slot.name} (exit {proc.returncode}: {err[-1] if err else 'no message'})"
        if Path(work, "ok").read_text() != str(slot.uid):
            return False, f"the probe did not run as user {slot.name}"
        net = "no network (own network namespace)" if _netns_ok() else (
            "BUT WITH NETWORK ACCESS (no network namespace possible here)")
        return True, (f"unprivileged user {slot.name} (uid {slot.uid}, via setpriv; bubblewrap unavailable): "
                      f"kernels run without course files, bounded in memory and time, {net}")
    except (OSError, subprocess.SubprocessError, SandboxError) as exc:
        return False, f"cannot start Python as the grader user: {exc}"
    finally:
        slot.release()
        shutil.rmtree(base, ignore_errors=True)


def user_sandbox_available() -> tuple[bool, str]:
    """``(True, description)`` when kernels can run as the unprivileged grader user here, else ``(False, reason)``.

    Needs root (to switch users and create the user), setpriv/prlimit/timeout, and a
    kernel Python every user may read (not under a 0700 home such as /root).
    Really starts that Python as the user (once per process).
    """
    return _probe_user()


# --------------------------------------------------------------------------- kernel manager


def _die_with_parent_setup():
    """A ``preexec_fn`` that has the kernel's first process killed when the process that started it dies.

    bwrap's ``--die-with-parent`` ties the sandbox to that first process (``timeout``);
    this ties ``timeout`` to the grading process, so a grading worker that is killed
    takes its kernels' sandboxes with it.  (Linux ``prctl(PR_SET_PDEATHSIG)``; elsewhere
    nothing.)  The C function is looked up here, before the fork.
    """
    import ctypes
    import signal

    try:
        prctl = ctypes.CDLL(None, use_errno=True).prctl
    except (OSError, AttributeError):
        return None
    sig = int(signal.SIGKILL)

    def set_pdeathsig() -> None:
        prctl(1, sig)  # PR_SET_PDEATHSIG

    return set_pdeathsig


class _SandboxMixin(KernelManager):
    """Launches the kernel inside bwrap; ZeroMQ over ipc:// sockets in a private folder."""

    memory_limit = Integer(4 * GiB, help="Address-space limit of the kernel in bytes (RLIMIT_AS); 0: none.").tag(config=True)
    cpu_time_limit = Integer(900, help="CPU-seconds limit of the kernel (RLIMIT_CPU); 0: none.").tag(config=True)
    wall_time_limit = Integer(
        900, help="Wall-clock seconds after which the whole kernel is killed (on top of per-cell timeouts); 0: none."
    ).tag(config=True)
    file_size_limit = Integer(512 * MiB, help="Largest file the kernel may write, in bytes (RLIMIT_FSIZE); 0: none.").tag(config=True)
    tmp_size = Integer(512 * MiB, help="Size of the kernel's private /tmp (tmpfs) in bytes.").tag(config=True)
    extra_ro_paths = List(Unicode(), help="More host paths to mount read-only (at the same place).").tag(config=True)
    protected_paths = List(
        Unicode(), help="Host paths no mount may overlap (refuse to start otherwise): the course's source/, gradebook.db, ..."
    ).tag(config=True)
    bwrap_path = Unicode("", help="bwrap executable; empty: looked up on PATH.").tag(config=True)
    mechanism = Unicode(
        "bwrap", help="'bwrap' (bubblewrap) or 'user' (the unprivileged grader user fallback, needs root)."
    ).tag(config=True)

    _sandbox_dir: Optional[str] = None
    _slot: Optional[_UserSlot] = None
    #: a host folder mounted at the kernel's working folder instead of that folder (see bwrap_command)
    workdir_source: Optional[str] = None

    def _make_sandbox_dir(self) -> None:
        # Short path: a Unix socket path must stay under 108 bytes.
        self._sandbox_dir = tempfile.mkdtemp(prefix="rmtsbx-", dir="/tmp")
        self.transport = "ipc"
        self.connection_file = os.path.join(self._sandbox_dir, "kernel.json")
        self.ip = os.path.join(self._sandbox_dir, "k")

    async def _async_pre_start_kernel(self, **kw: Any):  # type: ignore[override]
        if self._sandbox_dir is None:
            self._make_sandbox_dir()
        return await super()._async_pre_start_kernel(**kw)  # type: ignore[misc]

    def _user_launch(self, kernel_cmd: list[str], cwd: str, env: dict, kw: dict) -> tuple[list[str], dict]:
        """The kernel as the grader user: checks, private staged copy of ``cwd``, command and Popen arguments."""
        if not self._sandbox_dir:
            raise SandboxError("no private kernel folder")
        roots = {_real(p).parent for p in self.protected_paths}
        slot = self._slot = _UserSlot()
        why = python_unreachable(slot.uid, slot.gid)
        if why:
            raise SandboxError(why)
        for root in sorted(roots):
            exposed = exposed_paths(root, slot.uid, slot.gid)
            if exposed:
                raise SandboxError(
                    f"user {slot.name} could reach {', '.join(map(str, exposed))}: "
                    f"run `chmod o-rwx {root}` (and keep the course root not world-accessible)"
                )
        work, home = _stage(slot, self._sandbox_dir, cwd)
        cmd = user_command(
            kernel_cmd, uid=slot.uid, gid=slot.gid, memory_bytes=self.memory_limit,
            cpu_seconds=self.cpu_time_limit, wall_seconds=self.wall_time_limit,
            file_size_bytes=self.file_size_limit,
        )
        kw = dict(kw)
        kw["env"] = {**kernel_env(env, home=home, user=slot.name), "TMPDIR": home}
        kw["cwd"] = work
        return cmd, kw

    async def _async_launch_kernel(self, kernel_cmd: list[str], **kw: Any) -> None:  # type: ignore[override]
        cwd = kw.get("cwd") or os.getcwd()
        env = kw.get("env") or {}
        if self.mechanism == "user":
            cmd, kw = self._user_launch(kernel_cmd, cwd, env, kw)
            if self.kernel_spec is not None:
                self.kernel_spec.interrupt_mode = "message"
            self.log.debug("kernel command (grader user %s): %s", self._slot and self._slot.name, cmd)
            await super()._async_launch_kernel(cmd, **kw)  # type: ignore[misc]
            return
        if self.mechanism != "bwrap":
            raise SandboxError(f"unknown sandbox mechanism {self.mechanism!r}")
        cmd = bwrap_command(
            kernel_cmd,
            workdir=cwd,
            rw_dirs=[self._sandbox_dir] if self._sandbox_dir else [],
            env=env,
            memory_bytes=self.memory_limit,
            cpu_seconds=self.cpu_time_limit,
            wall_seconds=self.wall_time_limit,
            file_size_bytes=self.file_size_limit,
            tmp_size_bytes=self.tmp_size,
            extra_ro_paths=self.extra_ro_paths,
            protected_paths=self.protected_paths,
            bwrap=self.bwrap_path or None,
            workdir_source=self.workdir_source,
        )
        # The kernel is in its own session inside the sandbox: a SIGINT to the process
        # group jupyter_client started would hit bwrap, not the kernel.  ipykernel
        # handles interrupt_request on its control thread.
        if self.kernel_spec is not None:
            self.kernel_spec.interrupt_mode = "message"
        kw = dict(kw)
        kw["env"] = {"PATH": "/usr/bin:/bin", "LANG": env.get("LANG", "C.UTF-8")}
        kw["cwd"] = str(_real(self.workdir_source or cwd))
        kw["preexec_fn"] = _die_with_parent_setup()
        self.log.debug("sandboxed kernel command: %s", cmd)
        await super()._async_launch_kernel(cmd, **kw)  # type: ignore[misc]

    async def _async_cleanup_resources(self, restart: bool = False) -> None:  # type: ignore[override]
        await super()._async_cleanup_resources(restart=restart)  # type: ignore[misc]
        if self._slot is not None:  # every process the student started goes with the kernel
            self._slot.release()
            self._slot = None
        if not restart and self._sandbox_dir:
            shutil.rmtree(self._sandbox_dir, ignore_errors=True)
            self._sandbox_dir = None


class SandboxKernelManager(_SandboxMixin, AsyncKernelManager):
    """Async kernel manager (what nbclient and nbgrader use) whose kernel runs in bubblewrap."""

    pre_start_kernel = _SandboxMixin._async_pre_start_kernel  # type: ignore[assignment]
    _launch_kernel = _SandboxMixin._async_launch_kernel  # type: ignore[assignment]
    cleanup_resources = _SandboxMixin._async_cleanup_resources  # type: ignore[assignment]


class SyncSandboxKernelManager(_SandboxMixin, KernelManager):
    """Blocking variant (``KernelManager`` API) of :class:`SandboxKernelManager`."""

    from jupyter_client.utils import run_sync as _run_sync

    pre_start_kernel = _run_sync(_SandboxMixin._async_pre_start_kernel)
    _launch_kernel = _run_sync(_SandboxMixin._async_launch_kernel)
    cleanup_resources = _run_sync(_SandboxMixin._async_cleanup_resources)
    del _run_sync


# --------------------------------------------------------------------------- nbgrader


def __getattr__(name: str) -> Any:
    # SandboxedExecute subclasses nbgrader's Execute: built on first use so that
    # importing this module does not import nbgrader/nbconvert.
    if name == "SandboxedExecute":
        from nbgrader.preprocessors import Execute

        class SandboxedExecute(Execute):
            """nbgrader's Execute preprocessor, with every kernel in the bubblewrap sandbox.

            nbgrader's Execute passes ``kernel_manager_class=AsyncKernelManager`` to
            its constructor, which beats ``c.Execute.kernel_manager_class`` in a
            config file: hence this subclass.  ``c.Execute.*`` settings (timeout,
            ...) still apply, and the limits are ``c.SandboxKernelManager.*``.
            """

            def __init__(self, *args: Any, **kwargs: Any) -> None:
                kwargs.setdefault("kernel_manager_class", SandboxKernelManager)
                super().__init__(*args, **kwargs)

        SandboxedExecute.__module__ = __name__
        globals()["SandboxedExecute"] = SandboxedExecute
        return SandboxedExecute
    if name == "RefuseUnsandboxed":
        from nbgrader.preprocessors import NbGraderPreprocessor

        class RefuseUnsandboxed(NbGraderPreprocessor):
            """Stands where ``Execute`` stood when no sandbox can start: executes nothing, fails the autograde.

            So even a plain ``nbgrader autograde`` run with this course's config never
            runs a student's code with the grader's permissions unless the instructor
            turned the sandbox off (``RMTEACH_SANDBOX=off``).
            """

            reason = Unicode("no sandbox is available", help="Why no sandbox could start.").tag(config=True)

            def preprocess(self, nb: Any, resources: dict) -> tuple[Any, dict]:
                raise SandboxError(no_sandbox_message(self.reason))

        RefuseUnsandboxed.__module__ = __name__
        globals()["RefuseUnsandboxed"] = RefuseUnsandboxed
        return RefuseUnsandboxed
    raise AttributeError(name)


_EXECUTE_NAMES = {"nbgrader.preprocessors.Execute", "nbgrader.preprocessors.execute.Execute"}
SANDBOXED_EXECUTE = "rmteach.grading.sandbox.SandboxedExecute"
#: what runs instead of ``Execute`` when no sandbox can start: it runs nothing and fails the autograde
REFUSE_UNSANDBOXED = "rmteach.grading.sandbox.RefuseUnsandboxed"
#: how an instructor grades unsandboxed on purpose
OFF_HINT = "make autograde SANDBOX=off (RMTEACH_SANDBOX=off)"


def no_sandbox_message(reason: str) -> str:
    """What grading says when no sandbox can start: the reason, the fix, and how to opt out."""
    return (f"NO SANDBOX: {reason}. Grading refused: no student code runs with the grader's permissions. "
            f"Fix: {INSTALL_HINT} (and allow user namespaces), or grade unsandboxed on purpose: {OFF_HINT}.")


def _replace_execute(c: Any, replacement: str) -> None:
    """Put ``replacement`` where nbgrader's ``Execute`` is in ``c.Autograde.autograde_preprocessors``."""
    from nbgrader.converters import Autograde

    if "autograde_preprocessors" in c.Autograde:
        current = list(c.Autograde.autograde_preprocessors)
    else:
        current = list(Autograde.class_traits()["autograde_preprocessors"].default())
    names = [p if isinstance(p, str) else f"{p.__module__}.{p.__qualname__}" for p in current]
    names = [p.replace("nbgrader.preprocessors.execute.", "nbgrader.preprocessors.") for p in names]
    ours = {SANDBOXED_EXECUTE, REFUSE_UNSANDBOXED}
    if not any(n in _EXECUTE_NAMES or n in ours for n in names):
        raise SandboxError(f"no nbgrader Execute preprocessor to replace in {names}")
    c.Autograde.autograde_preprocessors = [replacement if n in _EXECUTE_NAMES or n in ours else n for n in names]


def configure_nbgrader(
    c: Any,
    *,
    course_root: Optional[os.PathLike | str] = None,
    mode: str = "auto",
    memory_limit: Optional[int] = None,
    cpu_time_limit: Optional[int] = None,
    wall_time_limit: Optional[int] = None,
    extra_ro_paths: Sequence[os.PathLike | str] = (),
) -> tuple[bool, str]:
    """Make nbgrader autograde every notebook with its kernel in the sandbox.

    ``c`` is a traitlets ``Config`` (``get_config()`` in ``nbgrader_config.py``, or the
    config given to ``NbGraderAPI``).  Replaces ``Execute`` by ``SandboxedExecute`` in
    ``c.Autograde.autograde_preprocessors`` (keeping any other entries), and sets
    ``c.SandboxKernelManager`` limits and the protected paths of ``course_root``.

    ``mode``: ``"auto"`` uses bubblewrap, else the unprivileged grader user (root
    only; see ``user_sandbox_available``), else it *fails closed*: ``Execute`` is
    replaced by :data:`REFUSE_UNSANDBOXED`, which fails every autograde with the
    reason and the fix before any student code runs; ``"require"`` accepts either
    sandbox (the message says which) and raises :class:`SandboxError` when neither is
    available; ``"user"`` forces the grader-user fallback (or raises); ``"off"`` (the
    instructor's explicit choice) leaves nbgrader's plain ``Execute``.
    Returns ``(sandboxed, message)``: print the message, it says which it is and why.
    """
    if mode not in MODES:
        raise ValueError(f"mode must be one of {', '.join(map(repr, MODES))}, not {mode!r}")
    if mode == "off":
        return False, "sandbox off: student code runs with the grader's permissions"
    mechanism, reason = choose_mechanism(mode, course_root)
    if mechanism is None:
        if mode in ("require", "user"):
            raise SandboxError(reason)
        _replace_execute(c, REFUSE_UNSANDBOXED)
        c.RefuseUnsandboxed.reason = reason
        return False, no_sandbox_message(reason)
    _replace_execute(c, SANDBOXED_EXECUTE)

    km = c.SandboxKernelManager
    if memory_limit is not None:
        km.memory_limit = int(memory_limit)
    if cpu_time_limit is not None:
        km.cpu_time_limit = int(cpu_time_limit)
    if wall_time_limit is not None:
        km.wall_time_limit = int(wall_time_limit)
    if extra_ro_paths:
        km.extra_ro_paths = [str(p) for p in extra_ro_paths]
    if course_root is not None:
        km.protected_paths = [str(p) for p in course_protected_paths(course_root)]
    km.mechanism = mechanism
    return True, f"sandboxed: {reason}"


#: ``configure_nbgrader`` modes.  "auto": bubblewrap, else the grader user, else grading is refused
#: (before any student code runs); "require": the same, refused already when the config loads;
#: "user": the grader user or refuse; "off": no sandbox, the instructor's explicit choice.
MODES = ("auto", "require", "user", "off")


def choose_mechanism(mode: str, course_root: Optional[os.PathLike | str] = None) -> tuple[Optional[str], str]:
    """``("bwrap" | "user", description)`` for ``mode``, or ``(None, why neither can be used)``."""
    reasons = []
    if mode in ("auto", "require"):
        ok, why = sandbox_available()
        if ok:
            return "bwrap", why
        reasons.append(f"bubblewrap: {why}")
    ok, why = user_sandbox_available()
    if ok and course_root is not None and Path(course_root).exists():
        import pwd

        pw = pwd.getpwnam(GRADER_USER)
        exposed = exposed_paths(course_root, pw.pw_uid, pw.pw_gid)
        if exposed:
            ok, why = False, (f"user {GRADER_USER} could reach {', '.join(map(str, exposed))}: "
                              f"run `chmod o-rwx {_real(course_root)}` to use the grader-user sandbox")
    if ok:
        return "user", why
    reasons.append(f"grader-user fallback: {why}")
    return None, "; ".join(reasons)
