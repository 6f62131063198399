"""The centring penalty that pins the free shift, with the book's sign erratum (Q09)."""

from __future__ import annotations

import numpy as np

from rmteach import numpy as rm
from rmteach.naive import erratum_regularized_ranking_loss
from rmteach.widgets.base import REWARD_RANGE, Explorer
from rmteach.widgets.panels import MARK, OTHER, PREF, REJ, Panel, Slider, move, set_y

SHIFT_GRID = np.linspace(-10.0, 10.0, 161)


class RegularizerExplorer(Explorer):
    title = ("<b>Pinning the free shift</b> &nbsp; L<sub>reg</sub> = L + \u03bb (r<sub>pref</sub> + "
             "r<sub>rej</sub>)\u00b2 &nbsp; <span style='color:#D55E00'>(the book prints \u2212\u03bb: "
             "an erratum)</span>")

    def __init__(self, r_pref: float, r_rej: float, coef: float, shift: float) -> None:
        sliders = [
            Slider("r_pref", "r_pref", r_pref, *REWARD_RANGE, 0.1),
            Slider("r_rej", "r_rej", r_rej, *REWARD_RANGE, 0.1),
            Slider("coef", "\u03bb (coef)", coef, 0.0, 0.2, 0.005, fmt=".3f"),
            Slider("shift", "shift c (both)", shift, -10.0, 10.0, 0.1),
        ]
        readouts = [
            ("ranking_loss", "ranking loss L"),
            ("regularized_loss", "L + \u03bb(r<sub>pref</sub>+r<sub>rej</sub>)\u00b2"),
            ("erratum_loss", "<span style='color:#D55E00'>book: L \u2212 \u03bb(\u2026)\u00b2</span>"),
        ]
        c = SHIFT_GRID
        self._panel = Panel("loss as both rewards are shifted by c", "shift c", "loss",
                            width="620px", height="320px", legend="top")
        self._l_rank = self._panel.line(c, np.zeros_like(c), OTHER, "ranking loss", dashed=True)
        self._l_reg = self._panel.line(c, np.zeros_like(c), PREF, "+ \u03bb penalty (right)")
        self._l_err = self._panel.line(c, np.zeros_like(c), REJ, "\u2212 \u03bb penalty (book)")
        self._dots = self._panel.points([0.0, 0.0, 0.0], [0.0, 0.0, 0.0], MARK)
        self._drawn: tuple = ()
        super().__init__(sliders, readouts, [self._panel],
                         note="The ranking loss is flat in c: it cannot tell where the rewards sit. "
                              "Adding the penalty gives a minimum near centred rewards; subtracting "
                              "it, as printed in the book, makes the loss fall without bound.")
        self._refresh()

    @staticmethod
    def _losses(r_pref: float, r_rej: float, coef: float) -> tuple[float, float, float]:
        ranking = float(rm.ranking_loss(r_pref, r_rej))
        regularized = float(rm.regularized_ranking_loss(r_pref, r_rej, coef))
        # The book's minus sign lives only in rmteach.naive, as a labelled bad example.
        erratum = float(erratum_regularized_ranking_loss(r_pref, r_rej, coef))
        return ranking, regularized, erratum

    def _compute(self, r_pref: float, r_rej: float, coef: float, shift: float) -> None:
        if (r_pref, r_rej, coef) != self._drawn:
            curves = np.array([self._losses(r_pref + c, r_rej + c, coef) for c in SHIFT_GRID])
            set_y(self._l_rank, curves[:, 0])
            set_y(self._l_reg, curves[:, 1])
            set_y(self._l_err, curves[:, 2])
            self._drawn = (r_pref, r_rej, coef)
        ranking, regularized, erratum = self._losses(r_pref + shift, r_rej + shift, coef)
        self._show(ranking_loss=ranking, regularized_loss=regularized, erratum_loss=erratum)
        move(self._dots, [shift] * 3, [ranking, regularized, erratum])


def regularizer_explorer(r_pref: float = 2.0, r_rej: float = 1.0, coef: float = 0.01,
                         shift: float = 0.0) -> RegularizerExplorer:
    r"""The centring penalty against a common shift of both rewards, and the book's sign erratum.

    Sliders ``r_pref``, ``r_rej`` (in [-5, 5]), ``coef`` :math:`\lambda` (in
    [0, 0.2]) and ``shift`` :math:`c` (in [-10, 10], added to both rewards).
    The plot shows, against :math:`c`, the ranking loss (flat), the regularized
    loss :func:`rmteach.numpy.regularized_ranking_loss` (a parabola with its
    minimum where the rewards are centred) and the book's printed version
    :math:`L - \lambda (r_{\text{pref}} + r_{\text{rej}})^2` (falls without bound).
    Readouts ``ranking_loss``, ``regularized_loss`` and ``erratum_loss`` at the
    current shift (Q09).
    """
    return RegularizerExplorer(r_pref, r_rej, coef, shift)
