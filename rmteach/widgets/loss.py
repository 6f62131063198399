"""The main explorer: the pair-wise ranking loss and its gradient against the reward gap."""

from __future__ import annotations

import numpy as np

from rmteach import numpy as rm
from rmteach.widgets.base import DELTA, GAP_GRID, GAP_RANGE, R_PREF, R_REJ, REWARD_RANGE, Explorer
from rmteach.widgets.panels import CURVE, MARK, PREF, REJ, Panel, Slider, move, set_y


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
            ("grad_pref", f"<span style='color:{PREF}'>\u2202L/\u2202{R_PREF}</span>"),
            ("grad_rej", f"<span style='color:{REJ}'>\u2202L/\u2202{R_REJ}</span>"),
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
        self._grad_panel = Panel("\u2202L/\u2202r_pref (blue), \u2202L/\u2202r_rej (orange)",
                                 f"{DELTA} = r_pref \u2212 r_rej", "gradient",
                                 x_range=GAP_RANGE, y_range=(-1.05, 1.05))
        self._g_pref = self._grad_panel.line(d, g_pref, PREF)
        self._g_rej = self._grad_panel.line(d, g_rej, REJ)
        self._g_dots = self._grad_panel.points([0.0, 0.0], [0.0, 0.0], MARK)
        self._margin_drawn = m0
        super().__init__(sliders, readouts, [self._loss_panel, self._grad_panel],
                         note="Drag the rewards: the loss is large when the rejected response "
                              "scores higher, and the two gradients are always equal and opposite.")
        self._refresh()

    def _compute(self, r_pref: float, r_rej: float, margin: float) -> None:
        loss = float(rm.ranking_loss(r_pref, r_rej, margin))
        gp, gr = (float(g) for g in rm.ranking_loss_grad(r_pref, r_rej, margin))
        p = float(rm.preference_probability(r_pref, r_rej))
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
