"""A PPO run from samples, live as the step size moves: KL, clip fraction and entropy per iteration (Q22)."""

from __future__ import annotations

import math

import numpy as np

from rmteach import policy
from rmteach.widgets.base import Explorer
from rmteach.widgets.panels import CURVE, PREF, REJ, Panel, Slider, move


class PPORunExplorer(Explorer):
    title = ("<b>A PPO run from samples</b> &nbsp; KL to the reference, clip fraction and entropy "
             "after every iteration")

    def __init__(self, ref_probs, reward, gold_reward, lr: float, epochs: int, eps: float, beta: float,
                 iterations: int, seed: int) -> None:
        self._problem = (np.asarray(ref_probs, float), np.asarray(reward, float),
                         None if gold_reward is None else np.asarray(gold_reward, float))
        self._iterations, self._seed = iterations, seed
        sliders = [
            Slider("log10_lr", "log\u2081\u2080 step size", math.log10(lr), -1.0, 2.5, 0.1, fmt=".1f"),
            Slider("epochs", "epochs/batch", epochs, 1, 16, 1, integer=True),
            Slider("eps", "clip range \u03b5", eps, 0.05, 0.5, 0.05),
            Slider("beta", "KL coefficient \u03b2", beta, 0.0, 2.0, 0.05),
        ]
        readouts = [
            ("lr", "step size \u03b7"),
            ("final_kl", "final KL"),
            ("max_kl_jump", "largest |\u0394KL| per iteration (after 10)"),
            ("mean_clip_fraction", "mean clip fraction"),
            ("final_entropy", "final entropy (nats)"),
            ("final_gold", "final gold reward"),
        ]
        x = np.arange(iterations + 1, dtype=float)
        ref = self._problem[0]
        kl_top = 1.05 * float(-np.log(ref.min()))  # no policy is further from pi_ref than all mass on its rarest response
        size = dict(width="295px", height="270px")
        self._kl_panel = Panel("KL(\u03c0 \u2016 \u03c0_ref), exact", "iteration", "nats",
                               x_range=(0, iterations), y_range=(0.0, kl_top), **size)
        self._kl = self._kl_panel.line(x, np.zeros_like(x), CURVE)
        self._clip_panel = Panel("clip fraction", "iteration", "fraction of the batch",
                                 x_range=(0, iterations), y_range=(0.0, 1.0), **size)
        self._clip = self._clip_panel.line(x[:-1], np.zeros(iterations), REJ)
        self._ent_panel = Panel("entropy of \u03c0", "iteration", "nats", x_range=(0, iterations),
                                y_range=(0.0, 1.05 * float(np.log(ref.size))), **size)
        self._ent = self._ent_panel.line(x, np.zeros_like(x), PREF)
        super().__init__(sliders, readouts, [self._kl_panel, self._clip_panel, self._ent_panel],
                         note="Raise the step size (or the epochs per batch): the KL saw-tooths, the clip "
                              "fraction stays high, and the entropy collapses onto one response.")
        self._refresh()

    def run(self, log10_lr: float, epochs: int, eps: float, beta: float) -> dict:
        """The training log for these slider values (:func:`rmteach.policy.train_ppo`)."""
        ref, reward, gold = self._problem
        return policy.train_ppo(ref, reward, gold, beta=beta, lr=10.0 ** log10_lr, eps=eps, epochs=epochs,
                                iterations=self._iterations, seed=self._seed)

    def _compute(self, log10_lr: float, epochs: int, eps: float, beta: float) -> None:
        log = self.run(log10_lr, epochs, eps, beta)
        x = log["iteration"].astype(float)
        move(self._kl, x, log["kl"])
        move(self._clip, x[:-1], log["clip_fraction"][:-1])
        move(self._ent, x, log["entropy"])
        self._show(lr=10.0 ** log10_lr, final_kl=log["kl"][-1],
                   max_kl_jump=float(np.max(np.abs(np.diff(log["kl"][10:])))),
                   mean_clip_fraction=math.fsum(log["clip_fraction"][:-1]) / self._iterations,
                   final_entropy=log["entropy"][-1], final_gold=log["gold_reward"][-1])


def ppo_run_explorer(ref_probs, reward, gold_reward=None, *, lr: float = 1.0, epochs: int = 4, eps: float = 0.2,
                     beta: float = 0.1, iterations: int = 60, seed: int = 0) -> PPORunExplorer:
    r"""One :func:`rmteach.policy.train_ppo` run, re-run and re-drawn whenever a slider moves.

    Sliders ``log10_lr`` (:math:`\log_{10}\eta` in [-1, 2.5]), ``epochs`` (gradient steps
    per batch, in [1, 16]), ``eps`` (:math:`\varepsilon` in [0.05, 0.5]) and ``beta``
    (fixed KL coefficient in [0, 2]).  Three panels against the iteration: the exact
    KL to the reference (up to :math:`-\log\min\pi_{\text{ref}}`, the largest any policy can
    have), the clip fraction, and the entropy (up to :math:`\log K`).  Readouts ``lr``, ``final_kl``,
    ``max_kl_jump`` (largest step-to-step KL change after iteration 10),
    ``mean_clip_fraction``, ``final_entropy``, ``final_gold`` (NaN without ``gold_reward``).
    """
    ref = policy._probs("ref_probs", ref_probs)
    policy._vector("reward", reward, ref.size)
    if gold_reward is not None:
        policy._vector("gold_reward", gold_reward, ref.size)
    iterations = policy._int("iterations", iterations, lo=11)
    policy._rng(seed)
    if not (isinstance(lr, (int, float)) and not isinstance(lr, bool) and 0.1 <= lr <= 10 ** 2.5):
        raise ValueError(f"lr must be a number in [0.1, 316] (the slider's range), got {lr!r}")
    return PPORunExplorer(ref, reward, gold_reward, lr, epochs, eps, beta, iterations, seed)
