"""Drive a real JupyterLab in headless Chromium: shared by the browser test and the latency bench.

Nothing here is course material; it is the harness that checks the course's
widgets the way a student meets them.  It starts ``jupyter lab`` on
``127.0.0.1`` with a token, a free port and private temporary config, settings
and runtime directories (news and update checks off), launches the system
Chromium through Playwright, opens notebooks, runs their cells, presses keys on
ipywidgets sliders and times how long the page takes to show the result.

Both :class:`LabServer` and :class:`Chromium` are context managers that clean up
their processes even when the code inside fails.  Playwright's own browser
download is never used: :func:`find_chromium` locates a system Chromium
(``RMTEACH_CHROMIUM``, then ``chromium`` / ``chromium-browser`` / ``google-chrome``
on ``PATH``), and :data:`INSTALL_HINT` says how to get one.

Importing this module needs only the standard library; Playwright is imported
when a browser is launched.
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.request
from pathlib import Path
from typing import Any, Optional

INSTALL_HINT = (
    "install Chromium with `sudo apt-get install chromium` (Debian/Ubuntu), or point "
    "RMTEACH_CHROMIUM at a Chromium/Chrome executable"
)

CHROMIUM_ARGS = (
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--disable-default-apps",
    "--no-first-run",
)

# JupyterLab user settings: no news, no update checks, no pop-ups in screenshots.
_LAB_SETTINGS = {
    "@jupyterlab/apputils-extension/notification.jupyterlab-settings": {
        "fetchNews": "false",
        "checkForUpdates": False,
        "doNotDisturbMode": True,
    },
}

# Server-side configuration written to a private JUPYTER_CONFIG_DIR.
_LAB_CONFIG = {
    "LabApp": {
        "news_url": None,
        "check_for_updates_class": "jupyterlab.NeverCheckForUpdate",
        "extension_manager": "readonly",
        "expose_app_in_browser": True,  # window.jupyterapp: run commands by id
    },
    "ServerApp": {"open_browser": False},
}


class LabDriverError(RuntimeError):
    """JupyterLab or the page did not do what the driver waited for."""


def find_chromium() -> Optional[str]:
    """Path of a system Chromium, or ``None`` (see :data:`INSTALL_HINT`)."""
    env = os.environ.get("RMTEACH_CHROMIUM")
    if env:
        return env if os.access(env, os.X_OK) else None
    for name in ("chromium", "chromium-browser", "google-chrome", "google-chrome-stable"):
        path = shutil.which(name)
        if path:
            return path
    return None


def free_port(host: str = "127.0.0.1") -> int:
    """A TCP port on ``host`` that was free a moment ago (bind to port 0)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind((host, 0))
        return s.getsockname()[1]


def parse_number(text: str) -> float:
    """A number as the page shows it: U+2212 minus sign, surrounding text allowed.

    ``"loss = 1.3133"`` and ``"\u22120.7311"`` both parse; the last
    whitespace-separated token that is a number wins.
    """
    cleaned = text.replace("\u2212", "-").replace("=", " ").replace(":", " ")
    for token in reversed(cleaned.split()):
        try:
            return float(token)
        except ValueError:
            continue
    raise ValueError(f"no number in readout text {text!r}")


class LabServer:
    """``jupyter lab`` on ``127.0.0.1`` serving ``root_dir``, stopped on exit.

    Attributes after ``__enter__``: ``port``, ``token``, ``base_url``
    (``http://127.0.0.1:PORT/``), ``log_path`` (server stdout and stderr).
    """

    def __init__(
        self,
        root_dir: os.PathLike | str,
        *,
        work_dir: Optional[os.PathLike | str] = None,
        python: str = sys.executable,
        startup_timeout: float = 120.0,
    ) -> None:
        self.root_dir = Path(root_dir).resolve()
        if not self.root_dir.is_dir():
            raise ValueError(f"root_dir must be an existing directory, got {str(root_dir)!r}")
        self._own_work_dir = work_dir is None
        self.work_dir = Path(tempfile.mkdtemp(prefix="rmteach-lab-") if work_dir is None else work_dir)
        self.python = python
        self.startup_timeout = startup_timeout
        self.token = os.urandom(16).hex()
        self.port: int = 0
        self.base_url = ""
        self.log_path = self.work_dir / "jupyterlab.log"
        self._proc: Optional[subprocess.Popen] = None
        self._log = None

    # -- set-up -----------------------------------------------------------
    def _write_config(self) -> dict[str, str]:
        config_dir = self.work_dir / "config"
        settings_dir = self.work_dir / "lab-settings"
        for rel, data in _LAB_SETTINGS.items():
            path = settings_dir / rel
            path.parent.mkdir(parents=True, exist_ok=True)
            path.write_text(json.dumps(data, indent=1))
        config_dir.mkdir(parents=True, exist_ok=True)
        (config_dir / "jupyter_server_config.json").write_text(json.dumps(_LAB_CONFIG, indent=1))
        for sub in ("runtime", "workspaces", "ipython"):
            (self.work_dir / sub).mkdir(exist_ok=True)
        env = dict(os.environ)
        env.pop("MPLBACKEND", None)  # kernels keep their own (inline) backend
        env.update(
            JUPYTER_CONFIG_DIR=str(config_dir),
            JUPYTER_RUNTIME_DIR=str(self.work_dir / "runtime"),
            JUPYTERLAB_SETTINGS_DIR=str(settings_dir),
            JUPYTERLAB_WORKSPACES_DIR=str(self.work_dir / "workspaces"),
            IPYTHONDIR=str(self.work_dir / "ipython"),
            PYTHONUNBUFFERED="1",
        )
        return env

    def _command(self) -> list[str]:
        cmd = [
            self.python, "-m", "jupyterlab",
            "--no-browser",
            "--ip=127.0.0.1",
            f"--port={self.port}",
            "--port-retries=0",
            f"--ServerApp.root_dir={self.root_dir}",
            f"--IdentityProvider.token={self.token}",
            f"--LabApp.user_settings_dir={self.work_dir / 'lab-settings'}",
            f"--LabApp.workspaces_dir={self.work_dir / 'workspaces'}",
        ]
        if hasattr(os, "geteuid") and os.geteuid() == 0:
            cmd.append("--allow-root")
        return cmd

    def _ready(self) -> bool:
        url = f"{self.base_url}api/status?token={self.token}"
        try:
            with urllib.request.urlopen(url, timeout=2) as resp:
                return resp.status == 200
        except (urllib.error.URLError, ConnectionError, OSError):
            return False

    def start(self) -> "LabServer":
        env = self._write_config()
        self._log = open(self.log_path, "ab")
        for _attempt in range(3):  # another process may take the port between bind and listen
            self.port = free_port()
            self.base_url = f"http://127.0.0.1:{self.port}/"
            self._proc = subprocess.Popen(
                self._command(), cwd=self.root_dir, env=env,
                stdout=self._log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
                start_new_session=True,
            )
            deadline = time.monotonic() + self.startup_timeout
            while time.monotonic() < deadline:
                if self._proc.poll() is not None:
                    break
                if self._ready():
                    return self
                time.sleep(0.25)
            if self._proc.poll() is None:
                self.stop()
                raise LabDriverError(
                    f"JupyterLab did not answer on {self.base_url} within "
                    f"{self.startup_timeout:.0f} s; log: {self.log_path}\n{self.log_tail()}"
                )
        raise LabDriverError(f"JupyterLab exited while starting; log: {self.log_path}\n{self.log_tail()}")

    def log_tail(self, chars: int = 3000) -> str:
        try:
            return self.log_path.read_text(errors="replace")[-chars:]
        except OSError:
            return ""

    def stop(self) -> None:
        """Shut the server (and its kernels) down; kill the process group if it lingers."""
        proc, self._proc = self._proc, None
        if proc is not None and proc.poll() is None:
            try:
                os.killpg(proc.pid, signal.SIGTERM)
            except ProcessLookupError:
                pass
            try:
                proc.wait(timeout=15)
            except subprocess.TimeoutExpired:
                try:
                    os.killpg(proc.pid, signal.SIGKILL)
                except ProcessLookupError:
                    pass
                proc.wait(timeout=10)
        if self._log is not None:
            self._log.close()
            self._log = None

    def __enter__(self) -> "LabServer":
        return self.start()

    def __exit__(self, *exc: Any) -> None:
        self.stop()
        if self._own_work_dir and not any(exc):
            shutil.rmtree(self.work_dir, ignore_errors=True)

    # -- URLs ---------------------------------------------------------------
    def lab_url(self, notebook: str) -> str:
        """URL that opens ``notebook`` (relative to ``root_dir``) in a fresh workspace."""
        return f"{self.base_url}lab/tree/{notebook}?reset&token={self.token}"

    def url(self, path: str) -> str:
        sep = "&" if "?" in path else "?"
        return f"{self.base_url}{path.lstrip('/')}{sep}token={self.token}"


class VoilaServer(LabServer):
    """Voilà serving one notebook as an app (no code cells) on ``127.0.0.1``, with a token.

    ``app_url`` opens it; the kernel starts when the page is requested.
    """

    def __init__(self, notebook: os.PathLike | str, **kwargs: Any) -> None:
        path = Path(notebook).resolve()
        if not path.is_file():
            raise ValueError(f"notebook must be an existing .ipynb file, got {str(notebook)!r}")
        super().__init__(path.parent, **kwargs)
        self.notebook = path
        self.log_path = self.work_dir / "voila.log"

    def _command(self) -> list[str]:
        return [
            self.python, "-m", "voila", str(self.notebook),
            "--no-browser",
            "--Voila.ip=127.0.0.1",
            f"--port={self.port}",
            f"--token={self.token}",
        ]

    def _ready(self) -> bool:
        try:
            with socket.create_connection(("127.0.0.1", self.port), timeout=1):
                return True
        except OSError:
            return False

    @property
    def app_url(self) -> str:
        return f"{self.base_url}?token={self.token}"


class Chromium:
    """Headless system Chromium through Playwright; ``.page`` is a fresh page.

    Raises :class:`LabDriverError` (with :data:`INSTALL_HINT`) when no Chromium
    is found.  Browser console errors are collected in ``.console``.
    """

    def __init__(self, executable: Optional[str] = None, viewport=(1400, 1000)) -> None:
        self.executable = executable or find_chromium()
        if self.executable is None:
            raise LabDriverError(f"no Chromium found: {INSTALL_HINT}")
        self.viewport = viewport
        self.console: list[str] = []
        self._pw = None
        self._browser = None
        self.page = None

    def __enter__(self) -> "Chromium":
        from playwright.sync_api import sync_playwright

        self._pw = sync_playwright().start()
        try:
            self._browser = self._pw.chromium.launch(
                executable_path=self.executable, headless=True, args=list(CHROMIUM_ARGS)
            )
            w, h = self.viewport
            self.page = self._browser.new_page(viewport={"width": w, "height": h})
            self.page.on("console", lambda m: self.console.append(f"{m.type}: {m.text}"))
            self.page.on("pageerror", lambda e: self.console.append(f"pageerror: {e}"))
        except BaseException:
            self.__exit__(None, None, None)
            raise
        return self

    def __exit__(self, *exc: Any) -> None:
        try:
            if self._browser is not None:
                self._browser.close()
        finally:
            self._browser = None
            if self._pw is not None:
                self._pw.stop()
                self._pw = None


# ---------------------------------------------------------------------------
# JupyterLab page actions (Playwright sync API page)

_JS_NOTEBOOK_STATE = """
() => {
  const app = window.jupyterapp;
  if (!app || !app.shell) return 'no-app';
  const w = app.shell.currentWidget;
  if (!w || !w.sessionContext || !w.content) return 'no-notebook';
  const s = w.sessionContext;
  if (!s.session || !s.session.kernel) return 'no-kernel';
  return s.session.kernel.status;
}
"""

_JS_CELLS_DONE = """
() => {
  const prompts = [...document.querySelectorAll('.jp-Notebook .jp-CodeCell .jp-InputPrompt')];
  if (prompts.length === 0) return false;
  return prompts.every(p => /\\[\\d+\\]/.test(p.textContent));
}
"""


def notebook_state(page) -> str:
    """The current notebook's kernel status (``idle``, ``busy``...) or why there is none."""
    return page.evaluate(_JS_NOTEBOOK_STATE)


def open_notebook(page, server: LabServer, notebook: str, timeout: float = 90.0) -> None:
    """Open ``notebook`` in JupyterLab and wait until its kernel is idle."""
    page.goto(server.lab_url(notebook), timeout=timeout * 1000)
    deadline = time.monotonic() + timeout
    state = "not loaded"
    while time.monotonic() < deadline:
        try:
            state = notebook_state(page)
        except Exception as exc:  # page still navigating
            state = f"page not ready ({type(exc).__name__})"
        if state == "idle":
            return
        time.sleep(0.25)
    raise LabDriverError(
        f"notebook {notebook!r} did not reach an idle kernel within {timeout:.0f} s "
        f"(last state: {state}); server log:\n{server.log_tail()}"
    )


def run_all_cells(page, timeout: float = 180.0) -> None:
    """Run every cell (command ``notebook:run-all-cells``); wait for all prompts and an idle kernel."""
    page.evaluate("() => window.jupyterapp.commands.execute('notebook:run-all-cells')")
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if page.evaluate(_JS_CELLS_DONE) and notebook_state(page) == "idle":
            tracebacks = page.locator(".jp-OutputArea-output pre:has-text('Traceback')")
            if tracebacks.count():
                raise LabDriverError(
                    "a cell raised an error:\n" + tracebacks.first.inner_text()[-3000:]
                )
            return
        time.sleep(0.25)
    raise LabDriverError(f"cells still running after {timeout:.0f} s")


def slider_handle(page, name: str):
    """Locator of the handle of the slider with CSS class ``rmteach-slider-NAME``."""
    return page.locator(f".rmteach-slider-{name} .noUi-handle").first


def readout(page, name: str):
    """Locator of the readout with CSS class ``rmteach-readout-NAME``."""
    return page.locator(f".rmteach-readout-{name}").first


def readout_value(page, name: str) -> float:
    return parse_number(readout(page, name).inner_text())


def wait_for_readout(page, name: str, expected: float, rel: float = 1e-4, timeout: float = 20.0) -> float:
    """Wait until readout ``name`` shows ``expected`` (to relative ``rel``); return what it shows."""
    deadline = time.monotonic() + timeout
    shown: Any = None
    while time.monotonic() < deadline:
        try:
            shown = readout_value(page, name)
            if abs(shown - expected) <= rel * max(1.0, abs(expected)):
                return shown
        except ValueError:
            pass
        time.sleep(0.05)
    raise LabDriverError(f"readout {name!r} shows {shown!r}, expected {expected!r} (waited {timeout:.0f} s)")


# ---------------------------------------------------------------------------
# latency: key press -> readout text and plot both changed -> next frame

_JS_INSTALL_PROBE = """
(sel) => {
  const plot = document.querySelector(sel.plot);
  if (!plot) throw new Error('plot element not found: ' + sel.plot);
  if (!document.querySelector(sel.readout)) throw new Error('readout element not found: ' + sel.readout);
  const readText = () => { const r = document.querySelector(sel.readout); return r ? r.textContent : null; };
  const P = window.__rmProbe = {t0: null, tRead: null, tPlot: null, tEnd: null,
                                  text: readText(), sig: null, done: null};
  const canvasSig = () => {
    let s = 0;
    for (const c of plot.querySelectorAll('canvas')) {
      if (!c.width || !c.height) continue;
      let data;
      try { data = c.getContext('2d').getImageData(0, 0, c.width, c.height).data; }
      catch (e) { continue; }
      for (let i = 0; i < data.length; i += 7) s = (s * 31 + data[i]) | 0;
    }
    return s;
  };
  P.arm = () => { P.t0 = P.tRead = P.tPlot = P.tEnd = null; P.done = null; P.text = readText(); };
  const finish = () => {
    if (P.tRead === null || P.tPlot === null || P.tEnd !== null) return;
    requestAnimationFrame(() => { P.tEnd = performance.now(); if (P.done) P.done(); });
  };
  const markPlot = () => { if (P.t0 !== null && P.tPlot === null) { P.tPlot = performance.now(); finish(); } };
  document.addEventListener('keydown', () => {
    if (P.t0 !== null) return;
    P.t0 = performance.now();
    P.sig = canvasSig();
    const poll = () => {
      if (P.t0 === null || P.tEnd !== null) return;
      if (P.tPlot === null && plot.querySelector('canvas') && canvasSig() !== P.sig) markPlot();
      requestAnimationFrame(poll);
    };
    requestAnimationFrame(poll);
  }, true);
  new MutationObserver(() => {
    if (P.t0 !== null && P.tRead === null && readText() !== P.text) { P.tRead = performance.now(); finish(); }
  }).observe(document.body, {subtree: true, childList: true, characterData: true});
  new MutationObserver((records) => {
    if (P.t0 === null || P.tPlot !== null) return;
    const imgs = [];
    let svg = false;
    for (const r of records) {
      const t = r.target;
      if (t.closest && t.closest('svg')) svg = true;
      if (t.nodeType === 3 && t.parentElement && t.parentElement.closest('svg')) svg = true;
      for (const n of r.addedNodes) {
        if (n.nodeName === 'IMG') imgs.push(n);
        else if (n.querySelectorAll) { imgs.push(...n.querySelectorAll('img')); if (n.closest && n.closest('svg')) svg = true; }
      }
    }
    if (svg) markPlot();
    else if (imgs.length) Promise.all(imgs.map(i => i.decode().catch(() => null))).then(markPlot);
  }).observe(plot, {subtree: true, childList: true, attributes: true, characterData: true});
  return true;
}
"""

_JS_RESULT = """
(timeoutMs) => new Promise((resolve) => {
  const P = window.__rmProbe;
  const out = () => resolve({t0: P.t0, read: P.tRead, plot: P.tPlot, end: P.tEnd});
  if (P.tEnd !== null) return out();
  P.done = out;
  setTimeout(out, timeoutMs);
})
"""


def measure_key_latency(
    page,
    *,
    slider: str,
    readout_name: str,
    plot_selector: str,
    presses: int = 30,
    keys: tuple[str, ...] = ("ArrowRight", "ArrowLeft"),
    settle: float = 0.15,
    timeout: float = 5.0,
    detail: Optional[list] = None,
) -> list[float]:
    """Milliseconds from each key press on a slider until the readout text and the plot changed.

    The clock starts in the page's ``keydown`` listener and stops at the first
    animation frame after *both* the readout element
    (``.rmteach-readout-READOUT_NAME``) has new text *and* the plot (the first
    element matching ``plot_selector``) has changed: a DOM mutation inside it
    (SVG attributes, a new ``<img>``, decoded), or new pixels on one of its
    canvases.  Keys cycle through ``keys``; between presses the page is left
    ``settle`` seconds to finish any trailing work.  If ``detail`` is a list,
    ``(ms to readout change, ms to plot change)`` is appended to it per press.
    """
    handle = slider_handle(page, slider)
    handle.focus()
    page.evaluate(_JS_INSTALL_PROBE, {"plot": plot_selector, "readout": f".rmteach-readout-{readout_name}"})
    times = []
    for i in range(presses):
        page.evaluate("() => window.__rmProbe.arm()")
        handle.press(keys[i % len(keys)])
        r = page.evaluate(_JS_RESULT, timeout * 1000)
        if r["end"] is None:
            raise LabDriverError(
                f"press {i + 1}: page did not finish updating within {timeout} s "
                f"(readout changed: {r['read'] is not None}, plot changed: {r['plot'] is not None})"
            )
        times.append(r["end"] - r["t0"])
        if detail is not None:
            detail.append((r["read"] - r["t0"], r["plot"] - r["t0"]))
        time.sleep(settle)
    return times
