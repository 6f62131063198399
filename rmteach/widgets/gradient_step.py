"""Gradient descent on one pair, step by step (Q06, Q17, Q18)."""

from __future__ import annotations

import numpy as np

from rmteach import numpy as rm
from rmteach.widgets.base import R_PREF, R_REJ, REWARD_RANGE, Explorer
from rmteach.widgets.panels import CURVE, PREF, REJ, Panel, Slider, move


class GradientStepExplorer(Explorer):
    title = ("<b>Gradient descent on one pair</b> &nbsp; r \u2190 r \u2212 lr \u00b7 \u2202L/\u2202r, "
             "&nbsp; L = \u2212log \u03c3(r<sub>pref</sub> \u2212 r<sub>rej</sub>)")

    def __init__(self, r_pref: float, r_rej: float, lr: float, steps: int) -> None:
        sliders = [
            Slider("r_pref", "r_pref (start)", r_pref, *REWARD_RANGE, 0.1),
            Slider("r_rej", "r_rej (start)", r_rej, *REWARD_RANGE, 0.1),
            Slider("lr", "learning rate", lr, 0.0, 5.0, 0.05),
            Slider("steps", "steps", steps, 1, 50, 1, integer=True),
        ]
        readouts = [
            ("r_pref_after", f"{R_PREF} after"),
            ("r_rej_after", f"{R_REJ} after"),
            ("change_pref", f"change of {R_PREF}"),
            ("change_rej", f"change of {R_REJ}"),
            ("loss_before", "loss before"),
            ("loss_after", "loss after"),
        ]
        self._traj_panel = Panel("rewards at each step", "step", "reward", legend="bottom-left")
        self._line_pref = self._traj_panel.line([0.0], [0.0], PREF, "r_pref")
        self._line_rej = self._traj_panel.line([0.0], [0.0], REJ, "r_rej")
        self._loss_panel = Panel("loss at each step", "step", "loss")
        self._line_loss = self._loss_panel.line([0.0], [0.0], CURVE, "loss")
        super().__init__(sliders, readouts, [self._traj_panel, self._loss_panel],
                         note="Each step raises the preferred reward and lowers the rejected one by "
                              "the same amount, lr\u00b7\u03c3(\u2212\u0394): large while the pair is "
                              "ranked wrong, small once it is ranked right.")
        self._refresh()

    @staticmethod
    def trajectory(r_pref: float, r_rej: float, lr: float, steps: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """Rewards and loss before and after each of ``steps`` plain gradient steps, shape ``(steps+1,)``."""
        rp, rr = [float(r_pref)], [float(r_rej)]
        losses = [float(rm.ranking_loss(rp[0], rr[0]))]
        for _ in range(steps):
            gp, gr = rm.ranking_loss_grad(rp[-1], rr[-1])
            rp.append(rp[-1] - lr * float(gp))
            rr.append(rr[-1] - lr * float(gr))
            losses.append(float(rm.ranking_loss(rp[-1], rr[-1])))
        return np.array(rp), np.array(rr), np.array(losses)

    def _compute(self, r_pref: float, r_rej: float, lr: float, steps: int) -> None:
        rp, rr, losses = self.trajectory(r_pref, r_rej, lr, steps)
        t = np.arange(steps + 1, dtype=float)
        self._show(r_pref_after=rp[-1], r_rej_after=rr[-1], change_pref=rp[-1] - rp[0],
                   change_rej=rr[-1] - rr[0], loss_before=losses[0], loss_after=losses[-1])
        move(self._line_pref, t, rp)
        move(self._line_rej, t, rr)
        move(self._line_loss, t, losses)


def gradient_step_explorer(r_pref: float = 2.0, r_rej: float = 3.0, lr: float = 1.0,
                           steps: int = 1) -> GradientStepExplorer:
    r"""Plain gradient descent on one pair's ranking loss, step by step.

    Sliders ``r_pref``, ``r_rej`` (start rewards, in [-5, 5]), ``lr`` (learning
    rate, in [0, 5]) and ``steps`` (1 to 50).  Each step is
    :math:`r \leftarrow r - \text{lr}\,\partial L/\partial r` with the gradient of
    :func:`rmteach.numpy.ranking_loss_grad`; the plots show both rewards and the
    loss at every step.  Readouts ``r_pref_after``, ``r_rej_after``,
    ``change_pref``, ``change_rej`` (equal and opposite), ``loss_before`` and
    ``loss_after``.  From 2.0 and 3.0 with ``lr=1`` one step moves each reward
    by :math:`\sigma(1) = 0.731` (Q06, Q17, Q18).
    """
    return GradientStepExplorer(r_pref, r_rej, lr, steps)
