"""Retrain a reward model as sliders move: label noise, number of pairs, learning rate, centering (notebook 4)."""

from __future__ import annotations

import math

import ipywidgets as W
import numpy as np

from rmteach import numpy as rm
from rmteach.widgets.base import Explorer
from rmteach.widgets.panels import CURVE, GOOD, OTHER, PREF, REJ, Panel, Slider, check_value, move

LN2 = math.log(2.0)
STEPS = 300


class TrainingExplorer(Explorer):
    title = ("<b>Train a reward model</b> &nbsp; a linear model on pairs from a labeler who never errs, "
             "then flips each label with probability \u03b5; Adam on the ranking loss "
             "+ \u03bb (r<sub>pref</sub> + r<sub>rej</sub>)\u00b2")

    def __init__(self, flip_prob: float, n_train: int, lr: float, center_coef: float) -> None:
        sliders = [
            Slider("flip_prob", "label noise \u03b5", flip_prob, 0.0, 0.45, 0.05),
            Slider("n_train", "training pairs", n_train, 50, 2000, 50, integer=True),
            Slider("lr", "learning rate", lr, 0.005, 0.3, 0.005, fmt=".3f"),
            Slider("center_coef", "centering \u03bb", center_coef, 0.0, 0.2, 0.005, fmt=".3f"),
        ]
        for s in sliders:  # one retrain when the slider is released, not one per pixel dragged
            s.widget.continuous_update = False
        readouts = [
            ("val_loss", "val loss"),
            ("val_acc", "val accuracy (labels)"),
            ("true_acc", "accuracy (true ranking)"),
            ("reward_mean", "reward level (mean)"),
            ("reward_std", "reward scale (std)"),
            ("seconds", "retrain (s)"),
        ]
        steps = [0.0, float(STEPS)]
        self._loss_panel = Panel("ranking loss (grey dashes: ln 2, chance)", "step", "loss",
                                 x_range=(0.0, float(STEPS)), y_range=(0.0, 1.0))
        self._chance = self._loss_panel.line(steps, [LN2, LN2], OTHER, dashed=True, width=1.0)
        self._train_line = self._loss_panel.line([], [], PREF, "train")
        self._val_line = self._loss_panel.line([], [], REJ, "validation", dashed=True)
        self._reward_panel = Panel("rewards over all responses", "step", "reward",
                                   x_range=(0.0, float(STEPS)), y_range=(-1.0, 8.0), legend="top-left")
        self._zero = self._reward_panel.line(steps, [0.0, 0.0], OTHER, width=1.0)
        self._mean_line = self._reward_panel.line([], [], CURVE, "level: mean")
        self._std_line = self._reward_panel.line([], [], GOOD, "scale: std")
        self._diagnosis = W.HTML()
        self._diagnosis.add_class("rmteach-diagnosis")
        self.history = None
        self.diagnosis: list[str] = []
        super().__init__(sliders, readouts, [self._loss_panel, self._reward_panel],
                         note="Each slider retrains from scratch (300 Adam steps of 64 pairs, float64; the last "
                              "readout says how long it took). Centering pins the level and also shrinks the scale; label noise "
                              "shrinks the scale too, but leaves the ranking almost untouched.")
        self.widget.children = [*self.widget.children, self._diagnosis]
        self._refresh()

    def _compute(self, flip_prob: float, n_train: int, lr: float, center_coef: float) -> None:
        import time

        from rmteach import training  # imports torch: only when the explorer first trains

        start = time.perf_counter()
        data = training.make_preference_data(
            n_items=200, n_features=5, n_train=int(n_train), n_val=300, feature_mean=2.0,
            labels="deterministic", flip_prob=float(flip_prob), seed=3,
        )
        model = training.LinearRewardModel(data.n_features, init="zeros")
        history = training.train_reward_model(model, data, steps=STEPS, lr=float(lr), batch_size=64,
                                              center_coef=float(center_coef))
        learned = model(data.features).detach().numpy()
        true = data.true_rewards.numpy()
        vp = data.val_pairs.numpy()
        better = np.where(true[vp[:, 0]] >= true[vp[:, 1]], vp[:, 0], vp[:, 1])
        worse = np.where(true[vp[:, 0]] >= true[vp[:, 1]], vp[:, 1], vp[:, 0])
        seconds = time.perf_counter() - start
        self.history, self.model, self.data = history, model, data
        self.diagnosis = training.diagnose_training(history)
        final = history.final()
        self._show(val_loss=final["val_loss"], val_acc=final["val_acc"],
                   true_acc=float(rm.ranking_accuracy(learned[better], learned[worse])),
                   reward_mean=final["reward_mean"], reward_std=final["reward_std"], seconds=seconds)
        steps = np.asarray(history.step, dtype=float)
        with self._loss_panel.figure.hold_sync():
            move(self._train_line, steps, history.train_loss)
            move(self._val_line, steps, history.val_loss)
        top = max(8.0, float(np.max(history.reward_std)), float(np.max(history.reward_mean)))
        with self._reward_panel.figure.hold_sync():
            move(self._mean_line, steps, history.reward_mean)
            move(self._std_line, steps, history.reward_std)
            self._reward_panel.ys.max = math.ceil(top)
            self._reward_panel.ys.min = min(-1.0, math.floor(float(np.min(history.reward_mean))))
        text = ", ".join(self.diagnosis) if self.diagnosis else "nothing found"
        self._diagnosis.value = (f"<div style='padding-left:4px'><code>training.diagnose_training</code>: "
                                 f"<b class='rmteach-readout-diagnosis'>{text}</b></div>")


def training_explorer(flip_prob: float = 0.0, n_train: int = 1000, lr: float = 0.05,
                      center_coef: float = 0.0) -> TrainingExplorer:
    r"""Sliders that retrain a linear reward model, with its loss, level and scale curves (Q09, Q11, Q12).

    The data are :func:`rmteach.training.drifting_scale_demo`'s: 200 responses
    with 5 features of mean 2, a labeler who always prefers the higher true
    reward, then flips each label with probability ``flip_prob``
    :math:`\varepsilon` (in [0, 0.45]); ``n_train`` training pairs (in
    [50, 2000]) and 300 validation pairs.  Each move retrains
    :class:`rmteach.training.LinearRewardModel` from zero weights with
    :func:`rmteach.training.train_reward_model` (300 steps, batch 64, Adam
    learning rate ``lr`` in [0.005, 0.3], centering coefficient ``center_coef``
    :math:`\lambda` in [0, 0.2]).  The defaults reproduce
    ``drifting_scale_demo()`` exactly.

    Readouts: ``val_loss`` and ``val_acc`` (against the validation labels, noisy
    like the training labels), ``true_acc`` (:func:`rmteach.numpy.ranking_accuracy`
    against the true ranking of the validation pairs), ``reward_mean`` and
    ``reward_std`` (level and scale of the rewards over all responses) at the
    last step, and ``seconds`` (the retrain's wall time).  ``.history`` is the
    :class:`rmteach.training.TrainingHistory`, ``.diagnosis`` what
    :func:`rmteach.training.diagnose_training` names.
    """
    flip_prob = check_value("flip_prob", flip_prob, 0.0, 0.45)
    n_train = check_value("n_train", n_train, 50, 2000, integer=True)
    lr = check_value("lr", lr, 0.005, 0.3)
    center_coef = check_value("center_coef", center_coef, 0.0, 0.2)
    return TrainingExplorer(flip_prob, n_train, lr, center_coef)
