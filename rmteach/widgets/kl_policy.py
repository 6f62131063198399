"""The KL-regularized policy as a bar chart that follows β (notebook 6, Q24, Q26)."""

from __future__ import annotations

import math
from typing import Optional, Sequence

import bqplot as bq
import numpy as np

from rmteach import rlhf
from rmteach.widgets.base import Explorer
from rmteach.widgets.panels import GOOD, MARK, OTHER, PREF, Panel, Slider, check_value, move

BETA = "\u03b2"


class KLPolicyExplorer(Explorer):
    title = ("<b>The KL-regularized policy</b> &nbsp; \u03c0*<sub>\u03b2</sub>(y) \u221d "
             "\u03c0<sub>ref</sub>(y) e<sup>r\u0302(y)/\u03b2</sup> maximizes "
             "E<sub>\u03c0</sub>[r\u0302] \u2212 \u03b2 KL(\u03c0 \u2016 \u03c0<sub>ref</sub>)")

    def __init__(self, ref_probs: np.ndarray, reward: np.ndarray, true_reward: Optional[np.ndarray],
                 names: list[str], log10_beta: float, log10_range: tuple[float, float]) -> None:
        self._ref, self._reward, self._true = ref_probs, reward, true_reward
        sliders = [Slider("log10_beta", "log\u2081\u2080 \u03b2", log10_beta, *log10_range, 0.05)]
        readouts = [
            ("beta", BETA + "<sub>\u200b</sub>"),  # an empty subscript: the same height as its neighbours
            ("expected_reward", "reward-model score E<sub>\u03c0</sub>[r\u0302]"),
            ("kl", "KL(\u03c0 \u2016 \u03c0<sub>ref</sub>)"),
            ("objective", "objective E<sub>\u03c0</sub>[r\u0302] \u2212 \u03b2 KL"),
        ]
        if true_reward is not None:
            readouts.append(("true_reward", "people's score E<sub>\u03c0</sub>[r*]"))
        self._bar_panel = Panel("probability of each response", "response", "probability",
                                y_range=(0.0, 1.0), x_ordinal=True, width="470px", height="320px",
                                legend="top-left")
        self._bars = bq.Bars(
            x=list(names), y=np.vstack([ref_probs, ref_probs]),
            scales={"x": self._bar_panel.xs, "y": self._bar_panel.ys},
            colors=[OTHER, PREF], type="grouped", padding=0.25,
            labels=["\u03c0_ref (before RLHF)", "\u03c0*_\u03b2"], display_legend=True,
        )
        self._bar_panel.figure.marks = [self._bars]
        grid = np.linspace(log10_range[0], log10_range[1], 113)
        curves = [self._numbers(10.0 ** g) for g in grid]
        ys = [c[k] for c in curves for k in ("expected_reward", "true_reward") if k in c]
        lo, hi = min(ys), max(ys)
        pad = 0.05 * (hi - lo) + 1e-9
        # headroom above the curves for the legend, so it never hides a curve or a marker
        self._curve_panel = Panel(f"expected scores against {BETA}", "log\u2081\u2080 \u03b2", "score",
                                  x_range=log10_range, y_range=(lo - pad, hi + 0.45 * (hi - lo) + pad),
                                  width="420px", height="320px", legend="top-right")
        self._curve_panel.line(grid, [c["expected_reward"] for c in curves], PREF, "reward-model score")
        marks_y = ["expected_reward"]
        if true_reward is not None:
            self._curve_panel.line(grid, [c["true_reward"] for c in curves], GOOD, "people's score")
            marks_y.append("true_reward")
        self._marks_y = marks_y
        self._dots = self._curve_panel.points([log10_beta] * len(marks_y), [0.0] * len(marks_y), MARK)
        super().__init__(sliders, readouts, [self._bar_panel, self._curve_panel],
                         note="Small \u03b2 piles the probability onto whatever the reward model rates "
                              "highest, blind spot included; large \u03b2 stays at the reference.")
        self._refresh()

    def _numbers(self, beta: float) -> dict:
        pi = rlhf.kl_regularized_policy(self._ref, self._reward, beta)
        expected = math.fsum(pi * self._reward)
        kl = float(rlhf.categorical_kl(pi, self._ref))
        out = {"beta": beta, "expected_reward": expected, "kl": kl, "objective": expected - beta * kl}
        if self._true is not None:
            out["true_reward"] = math.fsum(pi * self._true)
        return out

    def _compute(self, log10_beta: float) -> None:
        beta = 10.0 ** log10_beta
        numbers = self._numbers(beta)
        self.policy = rlhf.kl_regularized_policy(self._ref, self._reward, beta)
        self._show(**numbers)
        self._bars.y = np.vstack([self._ref, self.policy])
        move(self._dots, [log10_beta] * len(self._marks_y), [numbers[k] for k in self._marks_y])


def kl_policy_explorer(ref_probs: Sequence[float], reward: Sequence[float],
                    true_reward: Optional[Sequence[float]] = None, names: Optional[Sequence[str]] = None,
                    log10_beta: float = 0.0, log10_range: tuple[float, float] = (-1.5, 1.3)) -> KLPolicyExplorer:
    r"""A slider for :math:`\log_{10}\beta` and a live bar chart of :math:`\pi^*_\beta` next to :math:`\pi_{\text{ref}}`.

    ``ref_probs`` :math:`\pi_{\text{ref}}` and ``reward`` :math:`\hat r` (the reward
    model's scores) of shape ``(K,)``, 2 <= K <= 12; ``true_reward`` :math:`r^*`
    (what people think, optional) and ``names`` (bar labels; default
    ``"1"``…``"K"``) of the same length.  The slider ``log10_beta`` moves in
    ``log10_range`` (default [-1.5, 1.3], i.e. :math:`\beta` from 0.032 to 20).

    Readouts, all from :mod:`rmteach.rlhf`: ``beta``; ``expected_reward``
    :math:`E_{\pi^*}[\hat r]`; ``kl`` :func:`rmteach.rlhf.categorical_kl` of
    :math:`\pi^*_\beta` from :math:`\pi_{\text{ref}}`; ``objective``
    :math:`E_{\pi^*}[\hat r] - \beta\,\mathrm{KL}`; and, with ``true_reward``,
    ``true_reward`` :math:`E_{\pi^*}[r^*]`.  ``.policy`` is
    :func:`rmteach.rlhf.kl_regularized_policy` at the current :math:`\beta`.
    The right panel plots both expected scores against :math:`\log_{10}\beta`.
    """
    ref = rlhf._probs("ref_probs", ref_probs)
    if ref.size > 12:
        raise ValueError(f"ref_probs must have at most 12 responses (one bar each), got {ref.size}")
    r = rlhf._vector_like("reward", reward, "ref_probs", ref)
    t = None if true_reward is None else rlhf._vector_like("true_reward", true_reward, "ref_probs", ref)
    if names is None:
        labels = [str(k + 1) for k in range(ref.size)]
    else:
        labels = [str(n) for n in names]
        if len(labels) != ref.size or len(set(labels)) != len(labels):
            raise ValueError(f"names must be {ref.size} distinct labels (one per response), got {list(names)!r}")
    if not (isinstance(log10_range, tuple) and len(log10_range) == 2 and log10_range[0] < log10_range[1]):
        raise ValueError(f"log10_range must be a tuple (lo, hi) with lo < hi, got {log10_range!r}")
    lo, hi = (float(v) for v in log10_range)
    log10_beta = check_value("log10_beta", log10_beta, lo, hi)
    return KLPolicyExplorer(ref, r, t, labels, log10_beta, (lo, hi))
