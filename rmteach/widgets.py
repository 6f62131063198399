r"""Slider explorers for the course notebooks: move a reward, watch the loss and its gradient.

Every builder returns an explorer object.  Put it last in a cell (or pass it to
``display``) to show it; its root ipywidgets widget is ``.widget``.  From
Python, ``.set(name=value, ...)`` moves sliders exactly as dragging them
would, and ``.readouts`` is a dict of the numbers the explorer shows, so the
explorers can be checked without a browser::

    from rmteach.widgets import loss_explorer
    ex = loss_explorer(r_pref=2.0, r_rej=3.0)
    ex.set(r_pref=2.5)
    ex.readouts["loss"]     # == rmteach.numpy.ranking_loss(2.5, 3.0)

Every number shown comes from :mod:`rmteach.numpy`; no formula is written
again here.  The figures are built once (bqplot, drawn by the browser) and
updated in place: a slider step moves a marker or replaces one curve's ``y``,
it never rebuilds a figure.  Each slider carries the CSS class
``rmteach-slider-NAME`` and each readout ``rmteach-readout-NAME``.

Builders: :func:`loss_explorer` (the main one), :func:`preference_explorer`,
:func:`gradient_step_explorer`, :func:`margin_explorer`,
:func:`soft_label_explorer`, :func:`regularizer_explorer`,
:func:`listwise_explorer`, and :class:`TrainingMonitor` for training loops.
"""

from __future__ import annotations

import math
from contextlib import contextmanager
from typing import Any, Callable

import ipywidgets as W
import numpy as np

from rmteach import numpy as rm
from rmteach._plots import (
    CURVE, MARK, OTHER, PREF, REJ, Panel, Readouts, Slider, move, plots_row, set_y,
)

__all__ = [
    "loss_explorer",
    "preference_explorer",
    "gradient_step_explorer",
    "margin_explorer",
    "soft_label_explorer",
    "regularizer_explorer",
    "listwise_explorer",
    "TrainingMonitor",
]

REWARD_RANGE = (-5.0, 5.0)  # every reward slider; a reward gap lies in [-10, 10]
GAP_RANGE = (-10.0, 10.0)
GAP_GRID = np.linspace(GAP_RANGE[0], GAP_RANGE[1], 401)  # step 0.05: curves against the gap

R_PREF = "r<sub>pref</sub>"
R_REJ = "r<sub>rej</sub>"
DELTA = "\u0394"


def _f(x: Any) -> float:
    return float(x)


class Explorer:
    """Sliders, readouts and live plots; subclasses say what to compute in ``_compute``."""

    title: str = ""

    def __init__(self, sliders: list[Slider], readouts: list[tuple[str, str]], panels: list[Panel],
                 note: str = "") -> None:
        self._sliders = {s.name: s for s in sliders}
        self._readouts = Readouts(readouts)
        self._panels = panels
        self._hold = 0
        header = W.HTML(value=f"<div style='font-size:1.05em'>{self.title}</div>"
                              + (f"<div style='color:#555'>{note}</div>" if note else ""))
        controls = W.Box([s.widget for s in sliders],
                         layout=W.Layout(display="flex", flex_flow="row wrap"))
        parts = [header, controls, self._readouts.widget]
        if panels:
            parts.append(plots_row(panels))
        self.widget = W.VBox(parts)
        self.widget.add_class("rmteach-explorer")
        for s in sliders:
            s.widget.observe(self._on_slider, names="value")

    # -- public API ---------------------------------------------------------
    @property
    def readouts(self) -> dict[str, float]:
        """The numbers the explorer shows now (full precision; the page shows 6 digits)."""
        return dict(self._readouts.values)

    @property
    def values(self) -> dict[str, float]:
        """The sliders' current values."""
        return {name: s.value for name, s in self._sliders.items()}

    def set(self, **values: float) -> "Explorer":
        """Move sliders, as dragging them would; the explorer updates once for all of them."""
        unknown = [k for k in values if k not in self._sliders]
        if unknown:
            raise ValueError(
                f"unknown slider {unknown[0]!r} for {type(self).__name__}; "
                f"its sliders are {', '.join(self._sliders)}"
            )
        checked = {k: self._sliders[k].check(v) for k, v in values.items()}
        with self._held():
            for k, v in checked.items():
                self._sliders[k].widget.value = v
        return self

    def _repr_mimebundle_(self, **kwargs):
        return self.widget._repr_mimebundle_(**kwargs)

    def __repr__(self) -> str:
        sliders = ", ".join(f"{k}={v!r}" for k, v in self.values.items())
        shown = ", ".join(f"{k}={v:.6g}" for k, v in self.readouts.items())
        return f"<{type(self).__name__} {sliders}: {shown}>"

    # -- updating -----------------------------------------------------------
    @contextmanager
    def _held(self):
        self._hold += 1
        try:
            yield
        finally:
            self._hold -= 1
        if self._hold == 0:
            self._refresh()

    def _on_slider(self, change) -> None:
        if self._hold == 0:
            self._refresh()

    def _refresh(self) -> None:
        self._compute(**self.values)

    def _compute(self, **values) -> None:  # pragma: no cover - abstract
        raise NotImplementedError

    def _show(self, **numbers: float) -> None:
        self._readouts.show(**numbers)


# ---------------------------------------------------------------------------
# the main explorer


class LossExplorer(Explorer):
    title = (f"<b>Pair-wise ranking loss</b> &nbsp; L = \u2212log \u03c3({DELTA} \u2212 m), "
             f"&nbsp; {DELTA} = {R_PREF} \u2212 {R_REJ}")

    def __init__(self, r_pref: float, r_rej: float, margin: float) -> None:
        sliders = [
            Slider("r_pref", "r_pref", r_pref, *REWARD_RANGE, 0.1),
            Slider("r_rej", "r_rej", r_rej, *REWARD_RANGE, 0.1),
            Slider("margin", "margin m", margin, 0.0, 3.0, 0.1),
        ]
        readouts = [
            ("delta", f"gap {DELTA}"),
            ("p", "P(y<sub>pref</sub> \u227b y<sub>rej</sub>) = \u03c3(\u0394)"),
            ("loss", "loss L"),
            ("grad_pref", f"\u2202L/\u2202{R_PREF}"),
            ("grad_rej", f"\u2202L/\u2202{R_REJ}"),
        ]
        d = GAP_GRID
        zeros = np.zeros_like(d)
        m0 = sliders[2].value
        g_pref, g_rej = rm.ranking_loss_grad(d, zeros, m0, reduction="none")
        self._loss_panel = Panel(f"loss against the gap {DELTA}", f"{DELTA} = r_pref \u2212 r_rej",
                                 "loss", x_range=GAP_RANGE, y_range=(0.0, 13.0))
        self._curve = self._loss_panel.line(d, rm.ranking_loss(d, zeros, m0, reduction="none"),
                                            CURVE, "\u2212log \u03c3(\u0394 \u2212 m)")
        self._dot = self._loss_panel.points([0.0], [0.0], MARK)
        self._grad_panel = Panel("gradient against the gap", f"{DELTA} = r_pref \u2212 r_rej",
                                 "gradient", x_range=GAP_RANGE, y_range=(-1.05, 1.05))
        self._g_pref = self._grad_panel.line(d, g_pref, PREF, "\u2202L/\u2202r_pref")
        self._g_rej = self._grad_panel.line(d, g_rej, REJ, "\u2202L/\u2202r_rej")
        self._g_dots = self._grad_panel.points([0.0, 0.0], [0.0, 0.0], MARK)
        self._margin_drawn = m0
        super().__init__(sliders, readouts, [self._loss_panel, self._grad_panel],
                         note="Drag the rewards: the loss is large when the rejected response "
                              "scores higher, and the two gradients are always equal and opposite.")
        self._refresh()

    def _compute(self, r_pref: float, r_rej: float, margin: float) -> None:
        loss = _f(rm.ranking_loss(r_pref, r_rej, margin))
        gp, gr = (_f(g) for g in rm.ranking_loss_grad(r_pref, r_rej, margin))
        p = _f(rm.preference_probability(r_pref, r_rej))
        delta = r_pref - r_rej
        if margin != self._margin_drawn:  # the curves depend on the margin only
            d, zeros = GAP_GRID, np.zeros_like(GAP_GRID)
            g_pref, g_rej = rm.ranking_loss_grad(d, zeros, margin, reduction="none")
            set_y(self._curve, rm.ranking_loss(d, zeros, margin, reduction="none"))
            set_y(self._g_pref, g_pref)
            set_y(self._g_rej, g_rej)
            self._margin_drawn = margin
        self._show(delta=delta, p=p, loss=loss, grad_pref=gp, grad_rej=gr)
        move(self._dot, [delta], [loss])
        move(self._g_dots, [delta, delta], [gp, gr])


def loss_explorer(r_pref: float = 2.0, r_rej: float = 3.0, margin: float = 0.0) -> LossExplorer:
    r"""The pair-wise ranking loss and its gradient, live, as the two rewards move.

    Sliders ``r_pref``, ``r_rej`` (rewards of the preferred and the rejected
    response, in [-5, 5]) and ``margin`` :math:`m` (in [0, 3]).  With
    :math:`\Delta = r_{\text{pref}} - r_{\text{rej}}`, the left plot is
    :math:`L = -\log\sigma(\Delta - m)` against :math:`\Delta`, the right plot
    :math:`\partial L/\partial r_{\text{pref}} = -\sigma(m - \Delta)` and
    :math:`\partial L/\partial r_{\text{rej}} = +\sigma(m - \Delta)`; markers show the
    current pair.

    Readouts: ``delta`` (:math:`\Delta`), ``p`` (the model's
    :math:`P(y_{\text{pref}} \succ y_{\text{rej}}) = \sigma(\Delta)`, which the margin does
    not change), ``loss``, ``grad_pref``, ``grad_rej``; from
    :func:`rmteach.numpy.ranking_loss`, :func:`~rmteach.numpy.ranking_loss_grad` and
    :func:`~rmteach.numpy.preference_probability`.
    """
    return LossExplorer(r_pref, r_rej, margin)
