"""PPO's clipped surrogate against the probability ratio, for a positive and a negative advantage (Q22, Q23)."""

from __future__ import annotations

import numpy as np

from rmteach import rlhf
from rmteach.widgets.base import Explorer
from rmteach.widgets.panels import CURVE, MARK, OTHER, PREF, REJ, Panel, Slider, move, set_y

RATIO_RANGE = (0.0, 2.5)
RATIO_GRID = np.linspace(0.01, 2.5, 250)  # ratio > 0; step 0.01
RHO = "\u03c1"
EPS = "\u03b5"


def clipped_objective(ratio: float, advantage: float, eps: float) -> float:
    """One sample's PPO objective min(rho A, clip(rho) A) = -rmteach.rlhf.ppo_clip_loss([rho], [A], eps)."""
    return -float(rlhf.ppo_clip_loss([ratio], [advantage], eps))


def _curve(advantage: float, eps: float) -> np.ndarray:
    return np.array([clipped_objective(r, advantage, eps) for r in RATIO_GRID])


class PPOClipExplorer(Explorer):
    title = (f"<b>PPO's clipped surrogate</b> &nbsp; L<sup>CLIP</sup>({RHO}) = min({RHO}A, "
             f"clip({RHO}, 1\u2212{EPS}, 1+{EPS})A), &nbsp; {RHO} = \u03c0<sub>\u03b8</sub>(y)/\u03c0<sub>old</sub>(y)")

    def __init__(self, eps: float, ratio: float, advantage: float) -> None:
        sliders = [
            Slider("eps", f"clip range {EPS}", eps, 0.05, 0.5, 0.01),
            Slider("ratio", f"ratio {RHO}", ratio, 0.05, 2.5, 0.01),
            Slider("advantage", "|A|", advantage, 0.1, 2.0, 0.1, fmt=".1f"),
        ]
        readouts = [
            ("objective_pos", f"<span style='color:{PREF}'>objective, A = +|A|</span>"),
            ("objective_neg", f"<span style='color:{REJ}'>objective, A = \u2212|A|</span>"),
            ("unclipped_pos", f"{RHO}A, A = +|A|"),
            ("unclipped_neg", f"{RHO}A, A = \u2212|A|"),
            ("clip_fraction", f"clipped? (|{RHO} \u2212 1| > {EPS})"),
            ("lo", f"1 \u2212 {EPS}"),
            ("hi", f"1 + {EPS}"),
        ]
        self._panels = []
        self._curves, self._raw, self._dots, self._edges = {}, {}, {}, {}
        for sign, color, name in ((1.0, PREF, "A > 0: the response was better than expected"),
                                  (-1.0, REJ, "A < 0: the response was worse than expected")):
            panel = Panel(name, f"ratio {RHO}", "objective (to maximize)", x_range=RATIO_RANGE,
                          y_range=(-5.2, 5.2), legend="top-left", width="460px")
            self._raw[sign] = panel.line(RATIO_GRID, np.zeros_like(RATIO_GRID), OTHER, f"{RHO}A (no clip)",
                                         dashed=True, width=1.5)
            self._curves[sign] = panel.line(RATIO_GRID, np.zeros_like(RATIO_GRID), color, "clipped objective")
            self._edges[sign] = panel.line([1.0, 1.0, np.nan, 1.0, 1.0], [-5.2, 5.2, np.nan, -5.2, 5.2],
                                           CURVE, width=0.8, dashed=True)
            self._dots[sign] = panel.points([1.0], [0.0], MARK)
            self._panels.append(panel)
        self._drawn: tuple = ()
        super().__init__(sliders, readouts, self._panels,
                         note=f"Thin dashed lines: the trust region 1 \u00b1 {EPS}. Where the clipped curve is "
                              "flat the sample gives no gradient: PPO has nothing to gain by moving the ratio "
                              "further in the direction its advantage pushes.")
        self._refresh()

    def _compute(self, eps: float, ratio: float, advantage: float) -> None:
        if (eps, advantage) != self._drawn:
            for sign in (1.0, -1.0):
                a = sign * advantage
                set_y(self._curves[sign], _curve(a, eps))
                set_y(self._raw[sign], RATIO_GRID * a)
                self._edges[sign].x = np.array([1 - eps, 1 - eps, np.nan, 1 + eps, 1 + eps])
            self._drawn = (eps, advantage)
        pos = clipped_objective(ratio, advantage, eps)
        neg = clipped_objective(ratio, -advantage, eps)
        move(self._dots[1.0], [ratio], [pos])
        move(self._dots[-1.0], [ratio], [neg])
        self._show(objective_pos=pos, objective_neg=neg, unclipped_pos=ratio * advantage,
                   unclipped_neg=-ratio * advantage, clip_fraction=float(rlhf.clip_fraction([ratio], eps)),
                   lo=1.0 - eps, hi=1.0 + eps)


def ppo_clip_explorer(eps: float = 0.2, ratio: float = 1.3, advantage: float = 1.0) -> PPOClipExplorer:
    r"""The textbook figure of PPO's clipped objective, live as :math:`\varepsilon` moves.

    Sliders ``eps`` :math:`\varepsilon` (in [0.05, 0.5]), ``ratio`` :math:`\rho` (in
    [0.05, 2.5]) and ``advantage`` :math:`|A|` (in [0.1, 2]).  Two panels plot one
    sample's objective :math:`\min(\rho A, \mathrm{clip}(\rho, 1-\varepsilon, 1+\varepsilon)A)`
    against :math:`\rho` for :math:`A = +|A|` and :math:`A = -|A|`, each point
    :math:`-` :func:`rmteach.rlhf.ppo_clip_loss` of that one sample, with the
    unclipped :math:`\rho A` dashed.  Readouts ``objective_pos``, ``objective_neg``
    (the markers), ``unclipped_pos``, ``unclipped_neg``, ``clip_fraction``
    (:func:`rmteach.rlhf.clip_fraction` of the one ratio: 1 outside the region) and
    the region's edges ``lo``, ``hi``.
    """
    return PPOClipExplorer(eps, ratio, advantage)
