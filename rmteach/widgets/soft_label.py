"""Soft labels and per-pair weights for labeler disagreement (Q07, Q08)."""

from __future__ import annotations

import math

import numpy as np

from rmteach import numpy as rm
from rmteach.widgets.base import DELTA, GAP_GRID, GAP_RANGE, REWARD_RANGE, Explorer
from rmteach.widgets.panels import CURVE, MARK, OTHER, PREF, Panel, Slider, move, set_y


class SoftLabelExplorer(Explorer):
    title = ("<b>Soft labels and per-pair weights</b> &nbsp; w\u00b7\u2113, &nbsp; \u2113 = \u2212p log "
             "\u03c3(\u0394) \u2212 (1\u2212p) log \u03c3(\u2212\u0394)")

    def __init__(self, r_a: float, r_b: float, p: float, weight: float) -> None:
        sliders = [
            Slider("r_a", "r_a", r_a, *REWARD_RANGE, 0.1),
            Slider("r_b", "r_b", r_b, *REWARD_RANGE, 0.1),
            Slider("p", "label p", p, 0.0, 1.0, 0.01),
            Slider("weight", "weight w", weight, 0.0, 3.0, 0.05),
        ]
        readouts = [
            ("delta", f"gap {DELTA} = r<sub>a</sub> \u2212 r<sub>b</sub>"),
            ("p_model", "model's \u03c3(\u0394)"),
            ("loss", "weighted loss w\u00b7\u2113"),
            ("grad_a", "\u2202(w\u2113)/\u2202r<sub>a</sub>"),
            ("grad_b", "\u2202(w\u2113)/\u2202r<sub>b</sub>"),
        ]
        d = GAP_GRID
        self._loss_panel = Panel(f"weighted loss against the gap {DELTA}", f"{DELTA} = r_a \u2212 r_b",
                                 "loss", x_range=GAP_RANGE, y_range=(0.0, 12.0), legend="top")
        self._hard = self._loss_panel.line(d, np.zeros_like(d), OTHER, "hard label (p = 1)", dashed=True)
        self._soft = self._loss_panel.line(d, np.zeros_like(d), CURVE, "label p")
        self._dot = self._loss_panel.points([0.0], [0.0], MARK)
        self._grad_panel = Panel("\u2202(w\u2113)/\u2202r_a against the gap", f"{DELTA} = r_a \u2212 r_b",
                                 "gradient", x_range=GAP_RANGE, y_range=(-2.05, 2.05), legend="top-left")
        self._g_soft = self._grad_panel.line(d, np.zeros_like(d), PREF, "label p")
        self._g_dot = self._grad_panel.points([0.0], [0.0], MARK)
        self._drawn = (math.nan, math.nan)
        super().__init__(sliders, readouts, [self._loss_panel, self._grad_panel],
                         note="With a soft label the push stops where the model's probability equals "
                              "p (the gradient crosses zero there); a weight w scales the pair's loss "
                              "and gradient, so in a batch it counts w times as much.")
        self._refresh()

    def _compute(self, r_a: float, r_b: float, p: float, weight: float) -> None:
        loss = weight * float(rm.soft_ranking_loss(r_a, r_b, p))
        ga, gb = (weight * float(g) for g in rm.soft_ranking_loss_grad(r_a, r_b, p))
        p_model = float(rm.preference_probability(r_a, r_b))
        delta = r_a - r_b
        if (p, weight) != self._drawn:
            d, zeros = GAP_GRID, np.zeros_like(GAP_GRID)
            set_y(self._hard, weight * rm.ranking_loss(d, zeros, reduction="none"))
            set_y(self._soft, weight * rm.soft_ranking_loss(d, zeros, p, reduction="none"))
            set_y(self._g_soft, weight * rm.soft_ranking_loss_grad(d, zeros, p, reduction="none")[0])
            self._drawn = (p, weight)
        self._show(delta=delta, p_model=p_model, loss=loss, grad_a=ga, grad_b=gb)
        move(self._dot, [delta], [loss])
        move(self._g_dot, [delta], [ga])


def soft_label_explorer(r_a: float = 1.0, r_b: float = 0.0, p: float = 0.8,
                        weight: float = 1.0) -> SoftLabelExplorer:
    r"""The soft-label ranking loss of one pair, and what a per-pair weight does.

    Sliders ``r_a``, ``r_b`` (in [-5, 5]), ``p`` (the label: the fraction of
    labelers preferring :math:`y_a`, in [0, 1]) and ``weight`` :math:`w` (in
    [0, 3]).  Shown is the pair's weighted contribution :math:`w\,\ell` to a
    summed loss, with :math:`\ell` from :func:`rmteach.numpy.soft_ranking_loss`
    (``p = 1`` is the ordinary ranking loss, drawn dashed) and its gradient from
    :func:`~rmteach.numpy.soft_ranking_loss_grad`, which is zero where
    :math:`\sigma(\Delta) = p`.  Readouts ``delta``, ``p_model``
    (:math:`\sigma(\Delta)`), ``loss``, ``grad_a`` and ``grad_b`` (Q07, Q08).
    """
    return SoftLabelExplorer(r_a, r_b, p, weight)
