"""The Bradley-Terry preference probability, and its invariance to a common shift (Q03, Q05)."""

from __future__ import annotations

import numpy as np

from rmteach import numpy as rm
from rmteach.widgets.base import DELTA, GAP_GRID, GAP_RANGE, REWARD_RANGE, Explorer
from rmteach.widgets.panels import CURVE, MARK, PREF, REJ, Panel, Slider, move


class PreferenceExplorer(Explorer):
    title = ("<b>Bradley\u2013Terry preference probability</b> &nbsp; "
             "P(y<sub>a</sub> \u227b y<sub>b</sub>) = \u03c3(r<sub>a</sub> \u2212 r<sub>b</sub>)")

    def __init__(self, r_a: float, r_b: float, shift: float) -> None:
        sliders = [
            Slider("r_a", "r_a", r_a, *REWARD_RANGE, 0.1),
            Slider("r_b", "r_b", r_b, *REWARD_RANGE, 0.1),
            Slider("shift", "shift c (both)", shift, *REWARD_RANGE, 0.1),
        ]
        readouts = [
            ("reward_a", "r<sub>a</sub> + c"),
            ("reward_b", "r<sub>b</sub> + c"),
            ("delta", f"gap {DELTA} = r<sub>a</sub> \u2212 r<sub>b</sub>"),
            ("p_ab", "P(y<sub>a</sub> \u227b y<sub>b</sub>)"),
            ("p_ba", "P(y<sub>b</sub> \u227b y<sub>a</sub>)"),
        ]
        self._reward_panel = Panel("the two rewards (after the shift)", "response", "reward",
                                   y_range=(-10.0, 10.0), x_ordinal=True)
        self._bars = self._reward_panel.bars(["y_a", "y_b"], [0.0, 0.0], [PREF, REJ])
        self._prob_panel = Panel(f"P(y_a \u227b y_b) against the gap {DELTA}", f"{DELTA} = r_a \u2212 r_b",
                                 "probability", x_range=GAP_RANGE, y_range=(0.0, 1.0), legend="top-left")
        self._prob_panel.line(GAP_GRID, rm.preference_probability(GAP_GRID, np.zeros_like(GAP_GRID)),
                              CURVE, "\u03c3(\u0394)")
        self._dot = self._prob_panel.points([0.0], [0.5], MARK)
        super().__init__(sliders, readouts, [self._reward_panel, self._prob_panel],
                         note="Move the shift: both rewards move together, their gap does not, "
                              "and neither does the probability (rewards are known only up to a shift).")
        self._refresh()

    def _compute(self, r_a: float, r_b: float, shift: float) -> None:
        a, b = r_a + shift, r_b + shift
        p_ab = float(rm.preference_probability(a, b))
        p_ba = float(rm.preference_probability(b, a))
        delta = a - b
        self._show(reward_a=a, reward_b=b, delta=delta, p_ab=p_ab, p_ba=p_ba)
        self._bars.y = np.array([a, b])
        move(self._dot, [delta], [p_ab])


def preference_explorer(r_a: float = 1.0, r_b: float = 0.0, shift: float = 0.0) -> PreferenceExplorer:
    r"""The Bradley–Terry probability :math:`P(y_a \succ y_b) = \sigma(r_a - r_b)`, live.

    Sliders ``r_a``, ``r_b`` (rewards of :math:`y_a`, :math:`y_b`, in [-5, 5]) and
    ``shift`` :math:`c` (added to both).  Left: the two rewards after the shift;
    right: :math:`\sigma(\Delta)` against :math:`\Delta` with a marker at the current
    gap.  Readouts ``reward_a`` (:math:`r_a + c`), ``reward_b``, ``delta``,
    ``p_ab`` and ``p_ba`` (:func:`rmteach.numpy.preference_probability` of the
    shifted rewards).  Moving the shift moves both rewards but not the
    probability (Q05).
    """
    return PreferenceExplorer(r_a, r_b, shift)
