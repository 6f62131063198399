"""Rankings of N responses: the list-wise loss and Plackett-Luce (Q10, Q20)."""

from __future__ import annotations

import numpy as np

from rmteach import numpy as rm
from rmteach.widgets.base import REWARD_RANGE, Explorer
from rmteach.widgets.panels import OTHER, PREF, REJ, Panel, Slider, check_value


class ListwiseExplorer(Explorer):
    title = ("<b>Rankings of N responses</b> &nbsp; list-wise loss = mean of the C(N,2) pair-wise "
             "losses; Plackett\u2013Luce = \u2212log P(ranking)")

    def __init__(self, rewards: tuple[float, ...]) -> None:
        n = len(rewards)
        sliders = [Slider(f"r_{k + 1}", f"r_{k + 1}" + (" (best)" if k == 0 else " (worst)" if k == n - 1 else ""),
                          rewards[k], *REWARD_RANGE, 0.1) for k in range(n)]
        self._pairs = [(i, j) for i in range(n) for j in range(i + 1, n)]
        self._pair_names = [f"pair_{i + 1}_{j + 1}" for i, j in self._pairs]
        readouts = [
            ("listwise_loss", "list-wise loss"),
            ("plackett_luce_loss", "Plackett\u2013Luce loss"),
            ("pairs", "pairs C(N,2)"),
        ] + [(name, f"pair {i + 1}\u227b{j + 1}") for name, (i, j) in zip(self._pair_names, self._pairs)]
        ranks = [str(k + 1) for k in range(n)]
        self._reward_panel = Panel("rewards in ranked order (1 = best)", "rank", "reward",
                                   y_range=(-5.5, 5.5), x_ordinal=True)
        self._reward_line = self._reward_panel.line(ranks, np.zeros(n), OTHER)
        self._reward_line.x = ranks
        self._reward_dots = self._reward_panel.points(ranks, np.zeros(n), PREF)
        self._reward_dots.x = ranks
        self._pair_panel = Panel("loss of each pair i \u227b j", "pair", "\u2212log \u03c3(r_i \u2212 r_j)",
                                 y_range=(0.0, 10.5), x_ordinal=True)
        labels = [f"{i + 1}\u227b{j + 1}" for i, j in self._pairs]
        self._pair_bars = self._pair_panel.bars(labels, np.zeros(len(labels)), [REJ])
        super().__init__(sliders, readouts, [self._reward_panel, self._pair_panel],
                         note="Every pair (i ranked above j) is one Bradley\u2013Terry comparison. "
                              "Drag a lower-ranked reward above a higher one and watch that pair's loss grow.")
        self._refresh()

    def _compute(self, **values: float) -> None:
        r = np.array([values[f"r_{k + 1}"] for k in range(len(values))], dtype=float)
        i, j = (np.array(ix) for ix in zip(*self._pairs))
        per_pair = rm.ranking_loss(r[i], r[j], reduction="none")
        numbers = {
            "listwise_loss": float(rm.listwise_ranking_loss(r)),
            "plackett_luce_loss": float(rm.plackett_luce_loss(r)),
            "pairs": float(len(self._pairs)),
        }
        numbers.update({name: float(x) for name, x in zip(self._pair_names, per_pair)})
        self._show(**numbers)
        with self._reward_line.hold_sync(), self._reward_dots.hold_sync():
            self._reward_line.y = r
            self._reward_dots.y = r
        self._pair_bars.y = np.asarray(per_pair, dtype=float)


def listwise_explorer(rewards: tuple[float, ...] = (2.0, 1.0, 0.5, -1.0)) -> ListwiseExplorer:
    r"""One prompt's ranked responses: the list-wise and Plackett–Luce losses, pair by pair.

    ``rewards``: 2 to 6 rewards in ranked order, best first, each in [-5, 5];
    one slider per response, ``r_1`` (best) to ``r_N``.  Readouts
    ``listwise_loss`` (:func:`rmteach.numpy.listwise_ranking_loss`, the mean over
    the :math:`\binom{N}{2}` pairs), ``plackett_luce_loss``
    (:func:`rmteach.numpy.plackett_luce_loss`), ``pairs`` (:math:`\binom{N}{2}`)
    and ``pair_I_J``, the loss of the pair where response I is ranked above J
    (Q10, Q20).
    """
    if isinstance(rewards, (str, bytes)) or not hasattr(rewards, "__len__"):
        raise TypeError(f"rewards must be a sequence of 2 to 6 numbers, got {type(rewards).__name__} {rewards!r}")
    if not 2 <= len(rewards) <= 6:
        raise ValueError(f"rewards must hold 2 to 6 rewards (best first), got {len(rewards)}")
    checked = tuple(check_value(f"rewards[{k}]", x, *REWARD_RANGE) for k, x in enumerate(rewards))
    return ListwiseExplorer(checked)
