"""DPO's beta: the policy DPO trains to, against the reward model + KL-regularized optimum, live as beta moves."""

from __future__ import annotations

import math

import numpy as np

from rmteach import policy, rlhf
from rmteach.widgets.base import Explorer
from rmteach.widgets.panels import CURVE, GOOD, MARK, OTHER, PREF, REJ, Panel, Slider, move

LOG10_BETA = (-1.5, 1.0)
BETA_GRID = np.linspace(LOG10_BETA[0], LOG10_BETA[1], 26)  # log10 beta, step 0.1: the curves


class DPOBetaExplorer(Explorer):
    title = ("<b>DPO and \u03b2</b> &nbsp; L<sub>DPO</sub> = \u2212log \u03c3(\u03b2 log \u03c0(y<sub>c</sub>)/\u03c0<sub>ref</sub>(y<sub>c</sub>) "
             "\u2212 \u03b2 log \u03c0(y<sub>r</sub>)/\u03c0<sub>ref</sub>(y<sub>r</sub>)), trained on the same "
             "preferences as the reward model")

    def __init__(self, ref_probs, gold_reward, chosen, rejected, labels, log10_beta: float, steps: int) -> None:
        self._ref = np.asarray(ref_probs, float)
        self._gold = np.asarray(gold_reward, float)
        self._pairs = (np.asarray(chosen), np.asarray(rejected))
        self._steps = steps
        self._reward_model = policy.fit_reward_model(self._ref.size, *self._pairs)
        sliders = [Slider("log10_beta", "log\u2081\u2080 \u03b2", log10_beta, *LOG10_BETA, 0.1, fmt=".1f")]
        readouts = [
            ("beta", "\u03b2"),
            ("dpo_loss", "DPO loss at the end"),
            ("kl_dpo", "KL, DPO"),
            ("kl_rm", "KL, reward model + optimum"),
            ("gold_dpo", "gold reward, DPO"),
            ("gold_rm", "gold reward, reward model + optimum"),
            ("max_prob_gap", "max |\u03c0<sub>DPO</sub> \u2212 \u03c0*<sub>RM</sub>|"),
        ]
        self._labels = [str(x) for x in labels]
        self._policy_panel = Panel("the policies", "response", "probability", y_range=(0.0, 1.45),
                                   x_ordinal=True, width="520px", height="320px", legend="top-right")
        zeros = np.zeros(self._ref.size)
        at = np.arange(self._ref.size)  # placeholders: bqplot marks take the labels once built
        self._ref_line = self._policy_panel.line(at, self._ref, OTHER, "\u03c0_ref", dashed=True)
        self._rm_line = self._policy_panel.line(at, zeros, PREF, "RM + optimum")
        self._dpo_dots = self._policy_panel.points(at, zeros, REJ, size=60, label="DPO")
        for mark in (self._ref_line, self._rm_line, self._dpo_dots):
            mark.x = self._labels
        curves = [self.train(b) for b in BETA_GRID]
        self._curve_panel = Panel("KL and gold reward against \u03b2", "log\u2081\u2080 \u03b2", "nats / reward",
                                  x_range=LOG10_BETA, y_range=(0.0, 2.6), width="420px", height="320px")
        self._curve_panel.line(BETA_GRID, [c["kl"][-1] for c in curves], CURVE, "KL, DPO")
        self._curve_panel.line(BETA_GRID, [c["gold_reward"][-1] for c in curves], GOOD, "gold, DPO")
        self._marks = self._curve_panel.points([0.0, 0.0], [0.0, 0.0], MARK)
        super().__init__(sliders, readouts, [self._policy_panel, self._curve_panel],
                         note="Small \u03b2: DPO piles onto the best-rated response; large \u03b2: it stays at "
                              "\u03c0_ref. At every \u03b2 it lands on the policy that a reward model fitted to "
                              "the same labels, followed by the exact KL-regularized optimum, would give.")
        self._refresh()

    def train(self, log10_beta: float) -> dict:
        """DPO at this beta (:func:`rmteach.policy.train_dpo`, step size 4 / beta^2)."""
        beta = 10.0 ** log10_beta
        return policy.train_dpo(self._ref, *self._pairs, gold_reward=self._gold, beta=beta, lr=4.0 / beta ** 2,
                                steps=self._steps)

    def _compute(self, log10_beta: float) -> None:
        beta = 10.0 ** log10_beta
        log = self.train(log10_beta)
        pi_dpo = log["probs"][-1]
        pi_rm = rlhf.kl_regularized_policy(self._ref, self._reward_model, beta)
        self._rm_line.y = pi_rm
        self._dpo_dots.y = pi_dpo
        move(self._marks, [log10_beta, log10_beta], [log["kl"][-1], log["gold_reward"][-1]])
        self._show(beta=beta, dpo_loss=log["loss"][-1], kl_dpo=log["kl"][-1],
                   kl_rm=float(rlhf.categorical_kl(pi_rm, self._ref)), gold_dpo=log["gold_reward"][-1],
                   gold_rm=math.fsum(pi_rm * self._gold), max_prob_gap=float(np.max(np.abs(pi_dpo - pi_rm))))


def dpo_beta_explorer(ref_probs, gold_reward, chosen, rejected, labels=None, *, log10_beta: float = 0.0,
                      steps: int = 300) -> DPOBetaExplorer:
    r"""DPO trained at the slider's :math:`\beta`, next to the reward-model route on the same labels.

    Slider ``log10_beta`` (:math:`\log_{10}\beta` in [-1.5, 1]).  For each value,
    :func:`rmteach.policy.train_dpo` runs ``steps`` gradient steps from
    :math:`\pi_{\text{ref}}` on the pairs ``chosen``/``rejected``; beside it, the
    reward model :func:`rmteach.policy.fit_reward_model` on the same pairs and its
    KL-regularized optimum :func:`rmteach.rlhf.kl_regularized_policy`.  Left: the
    three policies per response (``labels``); right: DPO's final KL and gold reward
    against :math:`\log_{10}\beta`.  Readouts ``beta``, ``dpo_loss``, ``kl_dpo``,
    ``kl_rm``, ``gold_dpo``, ``gold_rm``, ``max_prob_gap``.
    """
    ref = policy._probs("ref_probs", ref_probs)
    policy._vector("gold_reward", gold_reward, ref.size)
    policy._pairs(ref.size, chosen, rejected, None)
    steps = policy._int("steps", steps)
    if labels is None:
        labels = [str(k) for k in range(ref.size)]
    if len(labels) != ref.size:
        raise ValueError(f"labels must name each of the {ref.size} responses, got {len(labels)}")
    return DPOBetaExplorer(ref, gold_reward, chosen, rejected, labels, log10_beta, steps)
