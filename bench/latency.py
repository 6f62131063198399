"""Slider-to-screen latency of the loss explorer in JupyterLab, headless Chromium.

    .venv/bin/python bench/latency.py [--presses 40] [--variants interact,rmteach,ipympl]

For each variant a notebook is written to a temporary directory, a real
JupyterLab is started on 127.0.0.1 (``tests/labdriver.py``, the same code the
browser test uses), the notebook is opened in headless Chromium and run, and
the ``r_pref`` slider's handle gets ``--presses`` key presses (right, left,
...).  Each latency runs from the page's ``keydown`` event to the first
animation frame after both the ``loss`` readout shows new text and the plot
has changed on the page (see ``labdriver.measure_key_latency`` in ``tests/``).

Variants (the same two-panel figure: loss and gradient against the reward gap):

* ``interact``: the usual ``ipywidgets.interact`` with inline matplotlib, a full
  redraw (new figure, Agg, PNG) per slider step: the baseline.
* ``ipympl``: a matplotlib figure built once with ``%matplotlib widget``; a
  slider step moves the markers with ``set_data`` and calls ``draw_idle``
  (Agg still renders the whole figure and ships the changed pixels).
* ``rmteach``: ``rmteach.widgets.loss_explorer()``, what the course uses.

Prints median and p95 per variant and the ratio of each median to the
baseline's, and checks the target (rmteach median <= 50 ms); the exit status
is 1 when the target is missed.
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests"))  # the browser harness

import labdriver as lab  # noqa: E402

TARGET_MS = 50.0

_COMMON = """\
import numpy as np
from ipywidgets import FloatSlider, HTML, HBox, VBox, interactive
from IPython.display import display
from rmteach import numpy as rm
d = np.linspace(-10.0, 10.0, 401)
curve = rm.ranking_loss(d, np.zeros_like(d), reduction="none")
g_pref, g_rej = rm.ranking_loss_grad(d, np.zeros_like(d), reduction="none")
"""

VARIANTS = {
    "interact": _COMMON + """\
%matplotlib inline
import matplotlib.pyplot as plt
from IPython.display import HTML as RichHTML

def show(r_pref=2.0, r_rej=3.0):
    loss = float(rm.ranking_loss(r_pref, r_rej))
    gp, gr = (float(g) for g in rm.ranking_loss_grad(r_pref, r_rej))
    delta = r_pref - r_rej
    display(RichHTML(f'<div class="rmteach-readout-loss">loss = {loss:.6g}</div>'))
    fig, (ax1, ax2) = plt.subplots(1, 2, figsize=(9, 3.2))
    ax1.plot(d, curve)
    ax1.plot([delta], [loss], "o")
    ax1.set_xlabel("reward gap"); ax1.set_ylabel("loss")
    ax2.plot(d, g_pref, d, g_rej)
    ax2.plot([delta, delta], [gp, gr], "o")
    ax2.set_xlabel("reward gap"); ax2.set_ylabel("gradient")
    plt.show()

w = interactive(show, r_pref=FloatSlider(value=2.0, min=-5, max=5, step=0.1),
                r_rej=FloatSlider(value=3.0, min=-5, max=5, step=0.1))
w.children[0].add_class("rmteach-slider-r_pref")
w.children[-1].add_class("rmteach-plot")
display(w)
""",
    "ipympl": _COMMON + """\
%matplotlib widget
import matplotlib.pyplot as plt
plt.ioff()
fig, (ax1, ax2) = plt.subplots(1, 2, figsize=(9, 3.2))
fig.canvas.header_visible = False
fig.canvas.toolbar_visible = False
ax1.plot(d, curve)
m1, = ax1.plot([-1.0], [float(rm.ranking_loss(2.0, 3.0))], "o")
ax2.plot(d, g_pref, d, g_rej)
m2, = ax2.plot([-1.0, -1.0], [0.0, 0.0], "o")
ax1.set_xlabel("reward gap"); ax1.set_ylabel("loss")
ax2.set_xlabel("reward gap"); ax2.set_ylabel("gradient")
s_pref = FloatSlider(value=2.0, min=-5, max=5, step=0.1, description="r_pref")
s_rej = FloatSlider(value=3.0, min=-5, max=5, step=0.1, description="r_rej")
s_pref.add_class("rmteach-slider-r_pref")
out = HTML()
out.add_class("rmteach-readout-loss")
fig.canvas.add_class("rmteach-plot")

def update(_=None):
    loss = float(rm.ranking_loss(s_pref.value, s_rej.value))
    gp, gr = (float(g) for g in rm.ranking_loss_grad(s_pref.value, s_rej.value))
    delta = s_pref.value - s_rej.value
    m1.set_data([delta], [loss])
    m2.set_data([delta, delta], [gp, gr])
    fig.canvas.draw_idle()
    out.value = f"loss = {loss:.6g}"

s_pref.observe(update, "value")
s_rej.observe(update, "value")
update()
display(VBox([HBox([s_pref, s_rej]), out, fig.canvas]))
""",
    "rmteach": """\
from rmteach.widgets import loss_explorer
loss_explorer()
""",
}

PLOT_SELECTOR = {
    "interact": ".rmteach-plot",
    "ipympl": ".rmteach-plot",
    "rmteach": ".rmteach-plot",
}


def _notebook(code: str) -> dict:
    return {
        "cells": [{"cell_type": "code", "execution_count": None, "id": "bench", "metadata": {},
                   "outputs": [], "source": code}],
        "metadata": {"kernelspec": {"display_name": "Python 3", "language": "python", "name": "python3"},
                     "language_info": {"name": "python"}},
        "nbformat": 4,
        "nbformat_minor": 5,
    }


def p95(xs: list[float]) -> float:
    s = sorted(xs)
    return s[min(len(s) - 1, int(round(0.95 * (len(s) - 1))))]


def measure(variants: list[str], presses: int, warmup: int, shots: Path | None) -> dict[str, list[float]]:
    results: dict[str, list[float]] = {}
    with tempfile.TemporaryDirectory(prefix="rmteach-bench-") as tmp:
        root = Path(tmp)
        for name in variants:
            (root / f"{name}.ipynb").write_text(json.dumps(_notebook(VARIANTS[name])))
        with lab.LabServer(root) as server, lab.Chromium() as browser:
            page = browser.page
            for name in variants:
                lab.open_notebook(page, server, f"{name}.ipynb")
                lab.run_all_cells(page)
                lab.slider_handle(page, "r_pref").wait_for(state="visible", timeout=30_000)
                lab.readout(page, "loss").wait_for(state="visible", timeout=30_000)
                page.locator(PLOT_SELECTOR[name]).first.wait_for(state="visible", timeout=30_000)
                time.sleep(1.0)  # let the first render settle
                if warmup:
                    lab.measure_key_latency(page, slider="r_pref", readout_name="loss",
                                            plot_selector=PLOT_SELECTOR[name], presses=warmup)
                times = lab.measure_key_latency(page, slider="r_pref", readout_name="loss",
                                                plot_selector=PLOT_SELECTOR[name], presses=presses)
                results[name] = times
                if shots is not None:
                    page.screenshot(path=str(shots / f"latency-{name}.png"))
                print(f"  {name:<9} measured ({presses} presses)", file=sys.stderr, flush=True)
                page.evaluate("() => window.jupyterapp.commands.execute('kernelmenu:shutdown')")
    return results


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--presses", type=int, default=40, help="measured key presses per variant")
    ap.add_argument("--warmup", type=int, default=4, help="unmeasured key presses first")
    ap.add_argument("--variants", default="interact,ipympl,rmteach",
                    help="comma-separated, from: " + ", ".join(VARIANTS))
    ap.add_argument("--screenshots", type=Path, default=None, help="directory for a PNG per variant")
    args = ap.parse_args(argv)
    variants = [v.strip() for v in args.variants.split(",") if v.strip()]
    unknown = [v for v in variants if v not in VARIANTS]
    if unknown:
        ap.error(f"--variants: unknown {unknown}; choose from {list(VARIANTS)}")
    if args.presses < 1:
        ap.error(f"--presses must be >= 1, got {args.presses}")
    if lab.find_chromium() is None:
        print(f"latency bench: no Chromium: {lab.INSTALL_HINT}", file=sys.stderr)
        return 2
    if args.screenshots is not None:
        args.screenshots.mkdir(parents=True, exist_ok=True)

    results = measure(variants, args.presses, args.warmup, args.screenshots)
    base = statistics.median(results["interact"]) if "interact" in results else None
    print(f"slider-to-screen latency, JupyterLab + headless Chromium, {args.presses} key presses each")
    print(f"{'variant':<10} {'median ms':>10} {'p95 ms':>8} {'vs interact':>12}")
    for name, times in results.items():
        med = statistics.median(times)
        ratio = f"{med / base:.2f}x" if base else "-"
        print(f"{name:<10} {med:>10.1f} {p95(times):>8.1f} {ratio:>12}")
    if "rmteach" in results:
        med = statistics.median(results["rmteach"])
        ok = med <= TARGET_MS
        print(f"target: rmteach median <= {TARGET_MS:.0f} ms: {'met' if ok else 'MISSED'} ({med:.1f} ms)")
        return 0 if ok else 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
