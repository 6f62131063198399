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
    paths = {_real(sys.base_prefix), _real(sys.prefix), _real(Path(__file__).parent)}
    # The interpreter of the venv may be a symlink into another install (pyenv, uv, conda).
    paths.add(_real(sys.executable).parent.parent)
    usr = Path("/usr")
    return sorted(p for p in paths if p != Path("/") and usr not in p.parents and p != usr)


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
) -> list[str]:
    """The full command line that runs ``argv`` sandboxed, with ``workdir`` as its only writable course folder.

    ``rw_dirs`` are extra writable folders (the kernel's socket folder), mounted at
    the same path.  Raises :class:`SandboxError` when a mount would overlap one of
    ``protected_paths`` or a required tool is missing.  A limit of 0 means no limit.
    """
    bwrap = bwrap or shutil.which("bwrap")
    if not bwrap:
        raise SandboxError(f"bwrap not found; {INSTALL_HINT}")
    prlimit = shutil.which("prlimit", path="/usr/bin:/bin")
    if not prlimit or not prlimit.startswith("/usr/"):
        raise SandboxError("prlimit (util-linux) not found under /usr: cannot bound the kernel's memory")
    timeout = shutil.which("timeout", path="/usr/bin:/bin")
    if wall_seconds and not timeout:
        raise SandboxError("timeout (coreutils) not found: cannot bound the kernel's wall-clock time")

    work = _real(workdir)
    if not work.is_dir():
        raise SandboxError(f"the student's working folder {work} does not exist")
    rws = [work] + [_real(d) for d in rw_dirs]
    ros = python_readonly_paths() + [_real(p) for p in extra_ro_paths]
    protected = [_real(p) for p in protected_paths]
    for mount in rws + ros:
        if mount == Path("/"):
            raise SandboxError("refusing to mount / into the sandbox")
        for p in protected:
            if _overlaps(mount, p):
                raise SandboxError(f"sandbox mount {mount} would expose protected path {p}")

    cmd: list[str] = []
    if wall_seconds:
        cmd += [timeout, "--signal=KILL", f"{int(wall_seconds)}s"]  # type: ignore[list-item]
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
    for p in ros:
        cmd += ["--ro-bind", str(p), str(p)]
    for p in rws:
        cmd += ["--bind", str(p), str(p)]
    for a in anchors:
        cmd += ["--remount-ro", str(a)]
    cmd += ["--remount-ro", "/", "--chdir", str(work), "--clearenv"]
    venv_bin = Path(sys.prefix) / "bin"
    full_env = {
        "PATH": f"{venv_bin}:/usr/local/bin:/usr/bin:/bin",
        "HOME": "/tmp",
        "USER": "student",
        "IPYTHONDIR": "/tmp/.ipython",
        "MPLCONFIGDIR": "/tmp/.matplotlib",
        "JUPYTER_RUNTIME_DIR": "/tmp/.jupyter-runtime",
        "PYTHONDONTWRITEBYTECODE": "1",
        "PYTHONNOUSERSITE": "1",
    }
    for key, value in (env or {}).items():
        if key in ENV_PASS or key.startswith("LC_"):
            full_env[key] = value
    for key, value in sorted(full_env.items()):
        cmd += ["--setenv", key, value]
    cmd += ["--", prlimit]
    if memory_bytes:
        cmd.append(f"--as={int(memory_bytes)}")
    if cpu_seconds:
        cmd.append(f"--cpu={int(cpu_seconds)}")
    if file_size_bytes:
        cmd.append(f"--fsize={int(file_size_bytes)}")
    cmd += ["--core=0", "--"]
    cmd += list(argv)
    return cmd


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
            return False, (
                f"bwrap at {path} cannot start the sandbox (exit {proc.returncode}: "
                f"{err[-1] if err else 'no message'}); user namespaces may be disabled "
                "(sysctl kernel.unprivileged_userns_clone / user.max_user_namespaces)"
            )
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


# --------------------------------------------------------------------------- kernel manager


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

    _sandbox_dir: Optional[str] = None

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

    async def _async_launch_kernel(self, kernel_cmd: list[str], **kw: Any) -> None:  # type: ignore[override]
        cwd = kw.get("cwd") or os.getcwd()
        env = kw.get("env") or {}
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
        )
        # The kernel is in its own session inside the sandbox: a SIGINT to the process
        # group jupyter_client started would hit bwrap, not the kernel.  ipykernel
        # handles interrupt_request on its control thread.
        if self.kernel_spec is not None:
            self.kernel_spec.interrupt_mode = "message"
        kw = dict(kw)
        kw["env"] = {"PATH": "/usr/bin:/bin", "LANG": env.get("LANG", "C.UTF-8")}
        kw["cwd"] = str(_real(cwd))
        self.log.debug("sandboxed kernel command: %s", cmd)
        await super()._async_launch_kernel(cmd, **kw)  # type: ignore[misc]

    async def _async_cleanup_resources(self, restart: bool = False) -> None:  # type: ignore[override]
        await super()._async_cleanup_resources(restart=restart)  # type: ignore[misc]
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
    raise AttributeError(name)


_EXECUTE_NAMES = {"nbgrader.preprocessors.Execute", "nbgrader.preprocessors.execute.Execute"}
SANDBOXED_EXECUTE = "rmteach.sandbox.SandboxedExecute"


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

    ``mode``: ``"require"`` raises :class:`SandboxError` when the sandbox is not
    available; ``"auto"`` then leaves the plain Execute; ``"off"`` does nothing.
    Returns ``(sandboxed, message)``: print the message, it says which it is and why.
    """
    if mode not in ("auto", "require", "off"):
        raise ValueError(f"mode must be 'auto', 'require' or 'off', not {mode!r}")
    if mode == "off":
        return False, "sandbox off: student code runs with the grader's permissions"
    ok, reason = sandbox_available()
    if not ok:
        if mode == "require":
            raise SandboxError(reason)
        return False, f"NOT SANDBOXED: {reason}. Student code runs with the grader's permissions."

    from nbgrader.converters import Autograde

    if "autograde_preprocessors" in c.Autograde:
        current = list(c.Autograde.autograde_preprocessors)
    else:
        current = list(Autograde.class_traits()["autograde_preprocessors"].default())
    names = [p if isinstance(p, str) else f"{p.__module__}.{p.__qualname__}" for p in current]
    names = [p.replace("nbgrader.preprocessors.execute.", "nbgrader.preprocessors.") for p in names]
    if SANDBOXED_EXECUTE not in names:
        if not any(n in _EXECUTE_NAMES for n in names):
            raise SandboxError(f"no nbgrader Execute preprocessor to replace in {names}")
        names = [SANDBOXED_EXECUTE if n in _EXECUTE_NAMES else n for n in names]
    c.Autograde.autograde_preprocessors = names

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
    return True, f"sandboxed: {reason}"
