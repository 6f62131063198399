"""The ranking loss with a margin (Llama 2)."""

from __future__ import annotations

import math

import numpy as np

from rmteach import numpy as rm
from rmteach.widgets.base import DELTA, GAP_GRID, GAP_RANGE, R_PREF, REWARD_RANGE, Explorer
from rmteach.widgets.panels import CURVE, MARK, OTHER, PREF, Panel, Slider, move, set_y


class MarginExplorer(Explorer):
    title = ("<b>Ranking loss with a margin</b> &nbsp; L<sub>m</sub> = \u2212log \u03c3(r<sub>pref</sub> "
             "\u2212 r<sub>rej</sub> \u2212 m) &nbsp; (Llama 2)")

    def __init__(self, r_pref: float, r_rej: float, margin: float) -> None:
        sliders = [
            Slider("r_pref", "r_pref", r_pref, *REWARD_RANGE, 0.1),
            Slider("r_rej", "r_rej", r_rej, *REWARD_RANGE, 0.1),
            Slider("margin", "margin m", margin, 0.0, 5.0, 0.1),
        ]
        readouts = [
            ("delta", f"gap {DELTA}"),
            ("loss", "loss with margin"),
            ("loss_no_margin", "loss without margin"),
            ("grad_pref", f"\u2202L<sub>m</sub>/\u2202{R_PREF}"),
            ("grad_pref_no_margin", f"\u2202L/\u2202{R_PREF} without margin"),
        ]
        d, zeros = GAP_GRID, np.zeros_like(GAP_GRID)
        self._loss_panel = Panel(f"loss against the gap {DELTA}", f"{DELTA} = r_pref \u2212 r_rej", "loss",
                                 x_range=GAP_RANGE, y_range=(0.0, 15.0))
        self._plain = self._loss_panel.line(d, rm.ranking_loss(d, zeros, reduction="none"), OTHER,
                                            "no margin", dashed=True)
        self._with = self._loss_panel.line(d, zeros, CURVE, "margin m")
        self._dots = self._loss_panel.points([0.0, 0.0], [0.0, 0.0], MARK)
        self._grad_panel = Panel("\u2202L/\u2202r_pref against the gap", f"{DELTA} = r_pref \u2212 r_rej",
                                 "gradient", x_range=GAP_RANGE, y_range=(-1.05, 0.05), legend="bottom-right")
        self._g_plain = self._grad_panel.line(d, rm.ranking_loss_grad(d, zeros, reduction="none")[0],
                                              OTHER, "no margin", dashed=True)
        self._g_with = self._grad_panel.line(d, zeros, PREF, "margin m")
        self._g_dots = self._grad_panel.points([0.0, 0.0], [0.0, 0.0], MARK)
        self._margin_drawn = math.nan
        super().__init__(sliders, readouts, [self._loss_panel, self._grad_panel],
                         note="A margin asks for a gap of at least m: a pair ranked right by less than "
                              "m still has a sizeable loss and gradient.")
        self._refresh()

    def _compute(self, r_pref: float, r_rej: float, margin: float) -> None:
        loss = float(rm.ranking_loss(r_pref, r_rej, margin))
        plain = float(rm.ranking_loss(r_pref, r_rej))
        gp = float(rm.ranking_loss_grad(r_pref, r_rej, margin)[0])
        gp0 = float(rm.ranking_loss_grad(r_pref, r_rej)[0])
        delta = r_pref - r_rej
        if margin != self._margin_drawn:
            d, zeros = GAP_GRID, np.zeros_like(GAP_GRID)
            set_y(self._with, rm.ranking_loss(d, zeros, margin, reduction="none"))
            set_y(self._g_with, rm.ranking_loss_grad(d, zeros, margin, reduction="none")[0])
            self._margin_drawn = margin
        self._show(delta=delta, loss=loss, loss_no_margin=plain, grad_pref=gp, grad_pref_no_margin=gp0)
        move(self._dots, [delta, delta], [loss, plain])
        move(self._g_dots, [delta, delta], [gp, gp0])


def margin_explorer(r_pref: float = 1.0, r_rej: float = 0.0, margin: float = 1.0) -> MarginExplorer:
    r"""The ranking loss with and without a margin :math:`m`, against the gap.

    Sliders ``r_pref``, ``r_rej`` (in [-5, 5]) and ``margin`` (in [0, 5]).  Plots
    :math:`-\log\sigma(\Delta - m)` and :math:`-\log\sigma(\Delta)`, and their
    :math:`\partial/\partial r_{\text{pref}}`.  Readouts ``delta``, ``loss``
    (with the margin), ``loss_no_margin``, ``grad_pref`` (with the margin) and
    ``grad_pref_no_margin``, from :func:`rmteach.numpy.ranking_loss` and
    :func:`~rmteach.numpy.ranking_loss_grad`.
    """
    return MarginExplorer(r_pref, r_rej, margin)
