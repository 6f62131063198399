r"""The next notebook's sandboxed kernel, started while the current one runs.

A sandboxed kernel takes some 0.6 s to start (bubblewrap, Python, ipykernel,
IPython), during which a worker of :mod:`rmteach.grading.worker` would only wait.
:class:`PrestartedExecute` (the worker's ``Execute`` step, in place of
:class:`rmteach.grading.sandbox.SandboxedExecute`) hands each notebook a kernel
that was launched while the previous notebook executed, and launches the next one
as soon as it has taken it.  The worker says which folders its next notebooks
run in (:data:`plan`: the notebooks of its job, then the job the pipeline means
to give it next).

Each kernel still belongs to one notebook only: it is launched fresh, in a
bubblewrap sandbox of its own (the same limits and mounts as any sandboxed
kernel), runs no code before it is handed out, and is killed with its sandbox
once its notebook has run.  It sees its working folder at the path nbgrader
gives it (``autograded/<student>/<assignment>/``); since nbgrader only makes that
folder once grading starts, the sandbox mounts a private folder there, the
folder's files are copied in when the kernel is handed out, and what the
student's code wrote is copied back to it when the kernel stops: the student's
code sees and leaves what it would with a kernel started the usual way.  A kernel
that died, is older than :data:`MAX_AGE` seconds, or waits for another folder or
kernel name is killed, and the notebook gets a new kernel the usual way.  Only
the bubblewrap sandbox is prestarted; the grader-user fallback and
``SANDBOX=off`` start kernels as nbgrader does.
"""

from __future__ import annotations

import functools
import os
import shutil
import time
from pathlib import Path
from typing import Any, Optional

#: seconds a prestarted kernel may wait to be handed out (the sandbox's wall-clock
#: limit counts from its launch); an older one is killed and a fresh one started
MAX_AGE = 120.0
#: the step that takes ``SandboxedExecute``'s place in the workers' configuration
PRESTARTED_EXECUTE = "rmteach.grading.kernel_prestart.PrestartedExecute"


class _Waiting:
    """One launched kernel that no notebook has taken yet."""

    def __init__(self, km: Any, kernel_name: str, target: str) -> None:
        self.km, self.kernel_name, self.target = km, kernel_name, target
        self.launched = time.monotonic()


_waiting: Optional[_Waiting] = None
#: the working folders of the notebooks this worker grades next, in order (set by the worker per job)
plan: list[str] = []


def _same(a: Optional[str], b: Optional[str]) -> bool:
    return bool(a and b) and os.path.realpath(a) == os.path.realpath(b)


def _run(coro_fn, *args: Any, **kwargs: Any) -> Any:
    from jupyter_core.utils import run_sync

    return run_sync(coro_fn)(*args, **kwargs)


def _kill(km: Any) -> None:
    try:
        _run(km.shutdown_kernel, now=True)
    except Exception:  # noqa: BLE001 - already dead: its resources still go
        try:
            _run(km.cleanup_resources)
        except Exception:  # noqa: BLE001
            pass


@functools.lru_cache(maxsize=None)
def _manager_class():
    """The kernel manager class (built on first use, once: importing this module imports no jupyter_client)."""
    from rmteach.grading.sandbox import SandboxKernelManager

    class PrestartedKernelManager(SandboxKernelManager):
        """A sandboxed kernel whose working folder is a private folder mounted at ``target``.

        When the kernel stops, what its code left in that folder is copied back to
        ``target`` on the host, and the private folder is removed.
        """

        workdir: Optional[str] = None
        target: Optional[str] = None

        async def _async_cleanup_resources(self, restart: bool = False) -> None:  # type: ignore[override]
            await super()._async_cleanup_resources(restart=restart)
            if not restart and self.workdir:
                if self.target and os.path.isdir(self.target):
                    _copy_entries(Path(self.workdir), Path(self.target))
                shutil.rmtree(self.workdir, ignore_errors=True)
                self.workdir = None

        cleanup_resources = _async_cleanup_resources  # type: ignore[assignment]

        def format_kernel_cmd(self, extra_arguments=None):  # type: ignore[override]
            cmd = super().format_kernel_cmd(extra_arguments)
            for i in range(len(cmd) - 1):  # ipykernel's launcher -> the same without debugpy
                if cmd[i] == "-m" and cmd[i + 1] == "ipykernel_launcher":
                    cmd[i + 1] = "rmteach.grading.grading_kernel"
                    break
            return cmd

    return PrestartedKernelManager


def _copy_entries(src: Path, dst: Path) -> None:
    """Copy every file and folder of ``src`` into ``dst`` (links as links), replacing what is there."""
    for entry in sorted(src.iterdir()):
        target = dst / entry.name
        try:
            if entry.is_dir() and not entry.is_symlink():
                shutil.copytree(entry, target, symlinks=True, dirs_exist_ok=True)
            else:
                if target.is_symlink() or target.is_file():
                    target.unlink()
                shutil.copy2(entry, target, follow_symlinks=False)
        except OSError:  # a file the student's code made unreadable: it stays behind, as any unreadable file
            pass


def launch(target: str, kernel_name: str, config: Any, extra_arguments: list[str]) -> None:
    """Launch the kernel of the next notebook, whose working folder will be ``target`` (killing one still waiting)."""
    import tempfile

    global _waiting
    discard()
    km = _manager_class()(kernel_name=kernel_name, config=config)
    km.workdir = tempfile.mkdtemp(prefix="rmtwork-", dir="/tmp")
    km.workdir_source, km.target = km.workdir, target
    try:
        _run(km.start_kernel, extra_arguments=list(extra_arguments), cwd=target)
    except Exception:
        _kill(km)
        raise
    _waiting = _Waiting(km, kernel_name, target)
    _kill_at_exit()


def _kill_at_exit() -> None:
    import atexit

    if not getattr(_kill_at_exit, "done", False):
        atexit.register(discard)  # a worker that ends without calling discard() leaves no kernel behind
        _kill_at_exit.done = True


def take(kernel_name: str, path: Optional[str]) -> Optional[Any]:
    """The waiting kernel for a notebook in folder ``path``, its files copied in; None if there is none fit to use."""
    global _waiting
    waiting, _waiting = _waiting, None
    if waiting is None:
        return None
    fit = (waiting.kernel_name == kernel_name and _same(waiting.target, path)
           and time.monotonic() - waiting.launched < MAX_AGE and _run(waiting.km.is_alive))
    if not fit:
        _kill(waiting.km)
        return None
    _copy_entries(Path(path), Path(waiting.km.workdir))
    return waiting.km


def next_target(path: Optional[str]) -> Optional[str]:
    """Step :data:`plan` past the notebook in ``path``; the folder of the notebook after it, if known."""
    if plan and _same(plan[0], path):
        plan.pop(0)
    return plan[0] if plan else None


def discard() -> None:
    """Kill the kernel still waiting, if any (the worker calls this before it exits)."""
    global _waiting
    waiting, _waiting = _waiting, None
    if waiting is not None:
        _kill(waiting.km)


def __getattr__(name: str) -> Any:
    # built on first use, like SandboxedExecute: importing this module imports no nbgrader
    if name == "PrestartedExecute":
        from rmteach.grading.sandbox import SandboxedExecute

        class PrestartedExecute(SandboxedExecute):
            """``SandboxedExecute`` whose kernel was launched while the previous notebook executed."""

            def create_kernel_manager(self):  # type: ignore[override]
                name = self.kernel_name or self.nb.metadata.get("kernelspec", {}).get("name") or "python3"
                path = (self.resources or {}).get("metadata", {}).get("path") or None
                km = take(name, path)
                if km is None:
                    km = super().create_kernel_manager()
                self.km = km
                upcoming = next_target(path)
                if upcoming:
                    try:
                        launch(upcoming, name, self.config, self.extra_arguments)
                    except Exception as exc:  # noqa: BLE001 - the next notebook starts its kernel itself
                        self.log.warning("could not prestart the next kernel: %s", exc)
                return km

        PrestartedExecute.__module__ = __name__
        globals()["PrestartedExecute"] = PrestartedExecute
        return PrestartedExecute
    raise AttributeError(name)
