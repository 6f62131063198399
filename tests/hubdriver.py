"""A real JupyterHub + nbgrader deployment for the tests: built, used as its Unix users, removed.

:class:`Deployment` runs ``deploy/jupyterhub/setup.sh`` with its own users, exchange, state
folder and port, starts the hub with ``start.sh`` and removes everything with ``teardown.sh``
(the same scripts ``make hub`` runs).  :meth:`Deployment.run_as` runs a command as one of its
users with the environment the hub gives that user's server (``PATH``, ``JUPYTER_CONFIG_PATH``);
the browser helpers drive the hub's login page and JupyterLab's nbgrader panels in Chromium
(:mod:`labdriver`).  Development tooling, like labdriver: nothing here is installed.
"""

from __future__ import annotations

import json
import os
import secrets
import shutil
import subprocess
import time
from pathlib import Path
from typing import Optional, Sequence

REPO = Path(__file__).resolve().parents[1]
DEPLOY = REPO / "deploy" / "jupyterhub"
TOOLS = ("useradd", "userdel", "chpasswd", "runuser", "bwrap", "npm")


def missing_tools() -> list[str]:
    """What the deployment needs and this machine lacks (Debian's python3 venv, the tools above)."""
    missing = [t for t in TOOLS if shutil.which(t) is None]
    if not os.access("/usr/bin/python3", os.X_OK):
        missing.append("/usr/bin/python3")
    return missing


class Deployment:
    """One deployment (``deploy/jupyterhub``) with a random name; a context manager that always tears down."""

    def __init__(self, students: Sequence[str], instructor: str, port: int, late_penalty: str = "zero") -> None:
        self.tag = secrets.token_hex(3)
        self.name = f"test-{self.tag}"
        self.state = Path("/srv/rmteach-hub") / self.name
        self.exchange = self.state.parent / f"{self.name}-exchange"
        self.instructor = instructor
        self.students = list(students)
        self.port = port
        self.late_penalty = late_penalty
        self.base_url = f"http://127.0.0.1:{port}/"
        self.logins: dict[str, str] = {}
        self.info: dict = {}
        self.log: list[str] = []

    # -- life cycle ---------------------------------------------------------
    def _script(self, name: str, *args: str, env: Optional[dict] = None, timeout: float = 900) -> str:
        proc = subprocess.run(["bash", str(DEPLOY / name), *args], capture_output=True, text=True,
                              env={**os.environ, **(env or {})}, timeout=timeout)
        out = proc.stdout + proc.stderr
        self.log.append(f"$ {name} {' '.join(args)}\n{out}")
        if proc.returncode != 0:
            raise RuntimeError(f"{name} failed (exit {proc.returncode}):\n{out[-4000:]}")
        return out

    def setup(self) -> "Deployment":
        self._script("setup.sh", env={
            "RMTEACH_HUB_NAME": self.name, "RMTEACH_HUB_STATE": str(self.state),
            "RMTEACH_HUB_EXCHANGE": str(self.exchange), "RMTEACH_HUB_INSTRUCTOR": self.instructor,
            "RMTEACH_HUB_STUDENTS": " ".join(self.students), "RMTEACH_HUB_PORT": str(self.port),
            "RMTEACH_HUB_LATE_PENALTY": self.late_penalty,
        })
        self.info = json.loads((self.state / "deployment.json").read_text())
        for line in (self.state / "logins").read_text().splitlines():
            user, password = line.split()
            self.logins[user] = password
        self._script("start.sh", str(self.state), timeout=180)
        return self

    def teardown(self) -> str:
        return self._script("teardown.sh", str(self.state), timeout=300)

    def __enter__(self) -> "Deployment":
        try:
            return self.setup()
        except BaseException:
            self.teardown()
            raise

    def __exit__(self, *exc) -> None:
        self.teardown()

    # -- paths ----------------------------------------------------------------
    @property
    def venv(self) -> Path:
        return Path(self.info["venv"])

    @property
    def course(self) -> Path:
        return Path(self.info["course"])

    @property
    def course_id(self) -> str:
        return self.info["course_id"]

    def home(self, user: str) -> Path:
        return Path("/home") / user

    def hub_log(self) -> str:
        try:
            return (self.state / "hub" / "jupyterhub.log").read_text(errors="replace")[-6000:]
        except OSError:
            return ""

    # -- commands as a user -----------------------------------------------------
    def user_env(self, user: str) -> dict[str, str]:
        """The environment the hub gives ``user``'s server (jupyterhub_config.py), for commands run as ``user``."""
        common = str(self.state / "jupyter" / "common")
        config_path = f"{self.state / 'jupyter' / 'instructor'}{os.pathsep}{common}" if user == self.instructor else common
        return {"HOME": str(self.home(user)), "USER": user, "LOGNAME": user, "LANG": "C.UTF-8",
                "PATH": f"{self.venv / 'bin'}:/usr/local/bin:/usr/bin:/bin", "JUPYTER_CONFIG_PATH": config_path}

    def run_as(self, user: str, args: Sequence[str], cwd: Optional[os.PathLike] = None, check: bool = True,
               timeout: float = 600) -> subprocess.CompletedProcess:
        """Run ``args`` as ``user`` (runuser, a clean environment, umask 022), in ``cwd`` (default: the home)."""
        env = [f"{k}={v}" for k, v in self.user_env(user).items()]
        cmd = ["runuser", "-u", user, "--", "env", "-i", *env, "bash", "-c", 'umask 022; exec "$@"', "bash", *args]
        proc = subprocess.run(cmd, cwd=str(cwd or self.home(user)), capture_output=True, text=True, timeout=timeout)
        if check and proc.returncode != 0:
            raise AssertionError(f"as {user}: {' '.join(args)} failed (exit {proc.returncode}):\n"
                                 f"{(proc.stdout + proc.stderr)[-4000:]}")
        return proc

    def nbgrader(self, user: str, *args: str, cwd: Optional[os.PathLike] = None, check: bool = True):
        return self.run_as(user, [str(self.venv / "bin" / "nbgrader"), *args], cwd=cwd, check=check)

    def chown(self, path: Path, user: str) -> None:
        subprocess.run(["chown", "-R", f"{user}:{user}", str(path)], check=True)


# ---------------------------------------------------------------------------
# the hub and JupyterLab in Chromium (Playwright sync API page)

def hub_login(page, hub: Deployment, user: str, timeout: float = 180.0) -> None:
    """Log in on the hub's own login page (as nobody else: cookies cleared first); wait for the user's JupyterLab."""
    page.context.clear_cookies()
    page.goto(f"{hub.base_url}hub/login", timeout=timeout * 1000)
    page.fill("#username_input", user)
    page.fill("#password_input", hub.logins[user])
    page.click("#login_submit")
    page.wait_for_url(f"**/user/{user}/lab**", timeout=timeout * 1000)
    page.wait_for_selector(".jp-LabShell", timeout=timeout * 1000)
    page.wait_for_selector(".lm-MenuBar-itemLabel:has-text('Nbgrader')", timeout=timeout * 1000)


def menu(page, top: str, item: str) -> None:
    """Click ``top`` in JupyterLab's menu bar, then ``item`` in its menu."""
    page.locator(".lm-MenuBar-itemLabel", has_text=top).first.click()
    page.locator(".lm-Menu-itemLabel", has_text=item).first.click()


def wait_until(predicate, timeout: float, what: str, interval: float = 0.5):
    deadline = time.monotonic() + timeout
    last = None
    while time.monotonic() < deadline:
        try:
            last = predicate()
            if last:
                return last
        except Exception as exc:  # noqa: BLE001 - the page may be between states
            last = exc
        time.sleep(interval)
    raise AssertionError(f"timed out after {timeout:.0f} s waiting for {what} (last: {last!r})")
