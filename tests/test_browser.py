"""The explorers in a real browser: JupyterLab and Voilà on 127.0.0.1, headless Chromium.

Each test starts its server with a token on a free port and private config,
settings and runtime directories (``tests/labdriver.py``, the same code
``bench/latency.py`` uses), opens a copy of a notebook from a temporary
directory (the committed notebooks are never opened, so never autosaved), moves
sliders with the keyboard, and checks that the readouts show what
:mod:`rmteach.numpy` computes.  Screenshots go to the test's tmp dir; a failure
names the screenshot.

Without Chromium the tests skip and say how to install it; with ``CI=true`` a
missing Chromium (or Playwright) is a failure.
"""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import time
from pathlib import Path

import pytest

import labdriver as lab
from rmteach import numpy as rm

REPO = Path(__file__).resolve().parents[1]
EXPLORE = REPO / "notebooks" / "explore.ipynb"
IN_CI = os.environ.get("CI", "").strip().lower() in ("1", "true", "yes")


def _browser_or_skip() -> str:
    problem = None
    try:
        import playwright.sync_api  # noqa: F401
    except ImportError:
        problem = "the playwright package is missing (pip install -e '.[test]')"
    chromium = lab.find_chromium()
    if problem is None and chromium is None:
        problem = f"no Chromium found: {lab.INSTALL_HINT}"
    if problem is not None:
        if IN_CI:
            pytest.fail(f"CI=true and the browser test cannot run: {problem}", pytrace=False)
        pytest.skip(f"browser test skipped: {problem}")
    return chromium


@pytest.fixture(scope="module")
def chromium():
    path = _browser_or_skip()
    with lab.Chromium(path) as browser:
        yield browser


@contextlib.contextmanager
def screenshot_on_failure(browser: lab.Chromium, path: Path):
    """Save a screenshot at the end (or on failure), and name it in the failure message."""
    try:
        yield
    except BaseException as exc:
        with contextlib.suppress(Exception):
            browser.page.screenshot(path=str(path), full_page=True)
        console = "\n".join(browser.console[-15:])
        raise AssertionError(f"{exc}\nscreenshot: {path}\nbrowser console (last lines):\n{console}") from exc
    browser.page.screenshot(path=str(path), full_page=True)


def shown(x: float) -> float:
    """What a readout shows for ``x``: 6 significant digits."""
    return float(f"{float(x):.6g}")


def press(browser: lab.Chromium, slider: str, key: str, times: int = 1) -> None:
    handle = lab.slider_handle(browser.page, slider)
    handle.focus()
    for _ in range(times):
        handle.press(key)


def test_loss_explorer_in_jupyterlab(chromium, tmp_path):
    shutil.copy(EXPLORE, tmp_path / "explore.ipynb")
    page = chromium.page
    with lab.LabServer(tmp_path, work_dir=tmp_path / "lab") as server, \
            screenshot_on_failure(chromium, tmp_path / "jupyterlab-loss-explorer.png"):
        lab.open_notebook(page, server, "explore.ipynb")
        lab.run_all_cells(page)
        lab.readout(page, "loss").wait_for(state="visible", timeout=30_000)
        assert lab.readout_value(page, "loss") == shown(rm.ranking_loss(2.0, 3.0)) == 1.31326

        press(chromium, "r_pref", "ArrowRight")  # 2.0 -> 2.1, one step
        expected = rm.ranking_loss(2.1, 3.0)
        assert lab.wait_for_readout(page, "loss", shown(expected), rel=0) == shown(expected)
        assert lab.readout_value(page, "grad_pref") == shown(rm.ranking_loss_grad(2.1, 3.0)[0])
        assert lab.readout_value(page, "p") == shown(rm.preference_probability(2.1, 3.0))
        slider_text = page.locator(".rmteach-slider-r_pref .widget-readout").first.inner_text()
        assert lab.parse_number(slider_text) == 2.1

        press(chromium, "r_rej", "ArrowLeft", times=3)  # 3.0 -> 2.7
        press(chromium, "margin", "ArrowRight", times=5)  # 0.0 -> 0.5
        expected = rm.ranking_loss(2.1, 2.7, 0.5)
        lab.wait_for_readout(page, "loss", shown(expected), rel=0)
        assert lab.readout_value(page, "grad_rej") == shown(rm.ranking_loss_grad(2.1, 2.7, 0.5)[1])
        assert lab.readout_value(page, "delta") == shown(2.1 - 2.7)
    assert (tmp_path / "jupyterlab-loss-explorer.png").stat().st_size > 10_000


def test_explore_app_in_voila(chromium, tmp_path):
    """``make explore``: the main explorer alone, no code on the page, sliders live."""
    shutil.copy(EXPLORE, tmp_path / "explore.ipynb")
    page = chromium.page
    with lab.VoilaServer(tmp_path / "explore.ipynb", work_dir=tmp_path / "voila") as server, \
            screenshot_on_failure(chromium, tmp_path / "voila-explore.png"):
        page.goto(server.app_url, timeout=90_000)
        lab.readout(page, "loss").wait_for(state="visible", timeout=90_000)
        assert lab.readout_value(page, "loss") == shown(rm.ranking_loss(2.0, 3.0))
        assert page.locator(".rmteach-plot svg").count() >= 2
        assert "loss_explorer" not in page.locator("body").inner_text()  # no code cells

        press(chromium, "r_rej", "ArrowRight", times=2)  # 3.0 -> 3.2
        lab.wait_for_readout(page, "loss", shown(rm.ranking_loss(2.0, 3.2)), rel=0)


BUILDERS = {
    # builder call -> (first slider, readout to watch)
    "loss_explorer()": ("r_pref", "loss"),
    "preference_explorer()": ("r_a", "p_ab"),
    "gradient_step_explorer()": ("lr", "r_pref_after"),
    "margin_explorer()": ("margin", "loss"),
    "soft_label_explorer()": ("p", "loss"),
    "regularizer_explorer()": ("coef", "regularized_loss"),
    "listwise_explorer()": ("r_4", "listwise_loss"),
}


def test_every_explorer_responds_in_jupyterlab(chromium, tmp_path):
    """Each builder renders in JupyterLab and its readout follows a key press; the monitor fills."""
    cells = ["import rmteach.widgets as w"] + [f"w.{call}" for call in BUILDERS] + [
        "m = w.TrainingMonitor(20)\nm",
        "for s in range(21):\n    m.update(s, train_loss=1 / (1 + s), val_loss=1.0, train_acc=s / 20, val_acc=0.5)",
    ]
    nb = {
        "cells": [{"cell_type": "code", "execution_count": None, "id": f"c{i}", "metadata": {},
                   "outputs": [], "source": src} for i, src in enumerate(cells)],
        "metadata": {"kernelspec": {"display_name": "Python 3", "language": "python", "name": "python3"},
                     "language_info": {"name": "python"}},
        "nbformat": 4, "nbformat_minor": 5,
    }
    (tmp_path / "all.ipynb").write_text(json.dumps(nb))
    page = chromium.page
    with lab.LabServer(tmp_path, work_dir=tmp_path / "lab") as server, \
            screenshot_on_failure(chromium, tmp_path / "jupyterlab-all-explorers.png"):
        lab.open_notebook(page, server, "all.ipynb")
        lab.run_all_cells(page)
        explorers = page.locator(".rmteach-explorer")
        explorers.nth(len(BUILDERS) - 1).wait_for(state="visible", timeout=60_000)
        assert explorers.count() == len(BUILDERS)
        for i, (call, (slider, name)) in enumerate(BUILDERS.items()):
            root = explorers.nth(i)
            root.scroll_into_view_if_needed()
            value = root.locator(f".rmteach-readout-{name}").first
            before = value.inner_text()
            handle = root.locator(f".rmteach-slider-{slider} .noUi-handle").first
            handle.focus()
            handle.press("ArrowRight")
            deadline = time.monotonic() + 20
            while value.inner_text() == before and time.monotonic() < deadline:
                time.sleep(0.05)
            assert value.inner_text() != before, f"{call}: readout {name!r} did not change after ArrowRight on {slider!r}"
        monitor = page.locator(".rmteach-training-monitor").first
        monitor.scroll_into_view_if_needed()
        step = monitor.locator(".rmteach-readout-step").first
        deadline = time.monotonic() + 20
        while step.inner_text() != "20" and time.monotonic() < deadline:
            time.sleep(0.05)
        assert step.inner_text() == "20"
        assert lab.parse_number(monitor.locator(".rmteach-readout-train_loss").first.inner_text()) == shown(1 / 21)
