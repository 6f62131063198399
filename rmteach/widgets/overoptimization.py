"""Over-optimization: the proxy reward keeps rising with KL while the gold reward peaks and falls (Gao et al. 2022)."""

from __future__ import annotations

import numpy as np

from rmteach import policy
from rmteach.widgets.base import Explorer
from rmteach.widgets.panels import GOOD, MARK, PREF, Panel, Slider, move

BETAS = np.geomspace(0.01, 30.0, 80)  # from nearly unconstrained to nearly the reference
SQRT_KL = "\u221aKL"


class OveroptimizationExplorer(Explorer):
    title = ("<b>Over-optimization</b> &nbsp; the KL-regularized optimum of a learned reward model, "
             f"scored by the reward model (proxy) and by people (gold), against {SQRT_KL}")

    def __init__(self, ref_probs, gold_reward, n_pairs: int, n_members: int, seed: int) -> None:
        self._ref = np.asarray(ref_probs, dtype=float)
        self._gold = np.asarray(gold_reward, dtype=float)
        self._seed = seed
        sliders = [
            Slider("n_pairs", "labels per model", n_pairs, 250, 10000, 250, integer=True),
            Slider("n_members", "ensemble size M", n_members, 1, 8, 1, integer=True),
        ]
        readouts = [
            ("peak_sqrt_kl", f"gold peaks at {SQRT_KL}"),
            ("gold_at_peak", "gold at its peak"),
            ("gold_at_max_kl", "gold at the largest KL"),
            ("proxy_at_max_kl", "proxy at the largest KL"),
            ("max_sqrt_kl", f"largest {SQRT_KL}"),
        ]
        self._panel = Panel("reward gained over the reference policy", f"{SQRT_KL}(\u03c0 \u2016 \u03c0_ref)",
                            "reward \u2212 reward of \u03c0_ref", x_range=(0.0, 3.0), y_range=(-1.5, 3.5),
                            legend="top-left", width="560px", height="330px")
        zeros = np.zeros_like(BETAS)
        self._proxy = self._panel.line(zeros, zeros, PREF, "proxy: the reward model's score")
        self._goldl = self._panel.line(zeros, zeros, GOOD, "gold: what people think")
        self._dot = self._panel.points([0.0], [0.0], MARK)
        super().__init__(sliders, readouts, [self._panel],
                         note="Each curve runs from \u03b2 = 30 (left, at the reference) to \u03b2 = 0.01 "
                              "(right). With M > 1 the policy maximizes the worst member's score "
                              "(min over the ensemble, Coste et al. 2023).")
        self._refresh()

    def curve(self, n_pairs: int, n_members: int) -> dict:
        """The curve for these slider values (:func:`rmteach.policy.overoptimization_curve`)."""
        ens = policy.reward_model_ensemble(self._ref, self._gold, n_pairs, n_members, seed=self._seed)
        proxy = ens.min(axis=0)
        return policy.overoptimization_curve(self._ref, proxy, self._gold, BETAS)

    def _compute(self, n_pairs: int, n_members: int) -> None:
        c = self.curve(n_pairs, n_members)
        x = c["sqrt_kl"]
        move(self._proxy, x, c["proxy_reward"])
        move(self._goldl, x, c["true_reward"])
        move(self._dot, [x[c["peak"]]], [c["gold_at_peak"]])
        self._show(peak_sqrt_kl=x[c["peak"]], gold_at_peak=c["gold_at_peak"],
                   gold_at_max_kl=c["true_reward"][0], proxy_at_max_kl=c["proxy_reward"][0], max_sqrt_kl=x[0])


def overoptimization_explorer(ref_probs=None, gold_reward=None, n_pairs: int = 3000, n_members: int = 1,
                              seed: int = 0) -> OveroptimizationExplorer:
    r"""Proxy and gold reward of :math:`\pi^*_\beta` against :math:`\sqrt{\mathrm{KL}}`, live as the reward model changes.

    Sliders ``n_pairs`` (labels each reward model is fitted to, in [250, 10000]) and
    ``n_members`` :math:`M` (in [1, 8]).  The reward model is
    :func:`rmteach.policy.reward_model_ensemble` (``seed``), aggregated by the minimum
    over members; the curves are :func:`rmteach.policy.overoptimization_curve` over
    80 values of :math:`\beta` from 30 down to 0.01.  The problem defaults to
    :func:`rmteach.policy.toy_problem`.  Readouts ``peak_sqrt_kl``, ``gold_at_peak``,
    ``gold_at_max_kl``, ``proxy_at_max_kl`` (at :math:`\beta = 0.01`) and
    ``max_sqrt_kl``; rewards relative to :math:`\pi_{\text{ref}}`'s.
    """
    if ref_probs is None or gold_reward is None:
        toy = policy.toy_problem()
        ref_probs = toy["ref_probs"] if ref_probs is None else ref_probs
        gold_reward = toy["gold_reward"] if gold_reward is None else gold_reward
    policy._probs("ref_probs", ref_probs)
    policy._vector("gold_reward", gold_reward, np.size(ref_probs))
    policy._rng(seed)
    return OveroptimizationExplorer(ref_probs, gold_reward, n_pairs, n_members, seed)
