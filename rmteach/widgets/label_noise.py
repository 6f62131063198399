"""A label-noise explorer: how fallible annotators cap a reward model's measured accuracy."""

from __future__ import annotations

import numpy as np

from rmteach import evaluation as ev
from rmteach import numpy as rm
from rmteach import text_preferences as tp
from rmteach.widgets.base import Explorer
from rmteach.widgets.calibration import _margins
from rmteach.widgets.panels import CURVE, GOOD, MARK, OTHER, PREF, REJ, Panel, Slider, move

NOISE_GRID = np.round(np.arange(0.0, 0.5 + 1e-9, 0.01), 2)  # the slider's own values
INSTRUCTGPT_AGREEMENT = 0.726  # training labelers agreeing with each other (Ouyang et al. 2022)


class LabelNoiseExplorer(Explorer):
    title = ("<b>Label noise and the accuracy ceiling</b> &nbsp; agreement (1\u2212\u03b5)\u00b2 + \u03b5\u00b2, "
             "&nbsp; ceiling 1 \u2212 \u03b5")

    def __init__(self, margins, label_noise: float, seed: int) -> None:
        self._d = _margins(margins)  # r(correct) - r(wrong) per pair
        if isinstance(seed, bool) or not isinstance(seed, (int, np.integer)) or seed < 0:
            raise ValueError(f"seed must be an integer >= 0, got {seed!r}")
        rng = np.random.default_rng(int(seed))
        self._u = rng.random(self._d.size)  # a pair's label flips once eps exceeds u: one draw for every eps
        self._a_is_correct = rng.random(self._d.size) < 0.5  # a random order, for calibration
        self._zeros = np.zeros_like(self._d)
        self._rule_acc = float(rm.ranking_accuracy(self._d, self._zeros))
        sliders = [Slider("label_noise", "error \u03b5", label_noise, 0.0, 0.5, 0.01)]
        readouts = [
            ("agreement", "agreement of two annotators"),
            ("ceiling", "ceiling 1 \u2212 \u03b5"),
            ("accuracy", "accuracy vs these labels"),
            ("expected", "expected a(1\u2212\u03b5) + (1\u2212a)\u03b5"),
            ("flipped", "labels flipped"),
            ("ece", "ECE vs these labels"),
        ]
        rows = [self._evaluate(e) for e in NOISE_GRID]
        self._acc = Panel("accuracy against one annotator's labels", "annotator error \u03b5", "accuracy",
                          x_range=(0.0, 0.5), y_range=(0.25, 1.0), legend="bottom-left",
                          width="470px", height="320px")
        self._acc.line(NOISE_GRID, [tp.annotator_agreement(e) for e in NOISE_GRID], OTHER,
                       "two annotators agree", dashed=True)
        self._acc.line(NOISE_GRID, 1.0 - NOISE_GRID, CURVE, "ceiling 1 \u2212 \u03b5", dashed=True)
        self._acc.line([0.0, 0.5], [INSTRUCTGPT_AGREEMENT] * 2, REJ, "InstructGPT agreement 0.726", width=1.0)
        self._acc.line(NOISE_GRID, [r["accuracy"] for r in rows], PREF, "this model, measured")
        self._acc_dot = self._acc.points([0.0], [0.0], MARK)
        self._cal = Panel("ECE against one annotator's labels", "annotator error \u03b5", "ECE",
                          x_range=(0.0, 0.5), y_range=None, width="360px", height="320px")
        self._cal.line(NOISE_GRID, [r["ece"] for r in rows], GOOD)
        self._cal_dot = self._cal.points([0.0], [0.0], MARK)
        super().__init__(sliders, readouts, [self._acc, self._cal],
                         note="The model is fixed; only the held-out labels change. Each annotator prefers "
                              "the wrong answer with probability \u03b5; no model, however good, beats 1 \u2212 \u03b5 "
                              "on average against such labels.")
        self._refresh()

    def _evaluate(self, label_noise: float) -> dict:
        flipped = self._u < label_noise
        # the labelled winner is the correct response unless the label flipped
        signed = np.where(flipped, -self._d, self._d)  # r(labelled winner) - r(labelled loser)
        accuracy = float(rm.ranking_accuracy(signed, self._zeros))
        margins_a = np.where(self._a_is_correct, self._d, -self._d)  # r(y_a) - r(y_b)
        labels = (self._a_is_correct != flipped).astype(np.float64)  # 1: y_a is the labelled winner
        probs = np.asarray(rm.preference_probability(margins_a, self._zeros), dtype=np.float64)
        return {"accuracy": accuracy, "ece": ev.expected_calibration_error(probs, labels),
                "flipped": float(np.mean(flipped))}

    def _compute(self, label_noise: float) -> None:
        r = self._evaluate(label_noise)
        self._show(agreement=tp.annotator_agreement(label_noise), ceiling=1.0 - label_noise,
                   accuracy=r["accuracy"], expected=tp.expected_noisy_accuracy(self._rule_acc, label_noise),
                   flipped=r["flipped"], ece=r["ece"])
        move(self._acc_dot, [label_noise], [r["accuracy"]])
        move(self._cal_dot, [label_noise], [r["ece"]])


def label_noise_explorer(margins, label_noise: float = 0.16, seed: int = 0) -> LabelNoiseExplorer:
    r"""A fixed reward model judged against held-out labels from annotators who err with probability ε.

    ``margins`` ``(N,)``: the model's :math:`r(x_i, y_\text{correct}) - r(x_i, y_\text{wrong})`
    on held-out pairs (the hidden rule's winner first).  The slider
    ``label_noise`` :math:`\varepsilon` (0 to 0.5) flips each pair's label when
    :math:`u_i < \varepsilon` for one seeded uniform draw :math:`u_i` per pair, so
    raising :math:`\varepsilon` only adds flips and the measured curve is smooth.

    Readouts: ``agreement`` (:func:`rmteach.text_preferences.annotator_agreement`),
    ``ceiling`` :math:`1 - \varepsilon`, ``accuracy`` (measured against the noisy
    labels, :func:`rmteach.numpy.ranking_accuracy`), ``expected``
    (:func:`rmteach.text_preferences.expected_noisy_accuracy` with the model's
    accuracy against the rule), ``flipped`` (fraction of labels flipped) and
    ``ece`` (:func:`rmteach.evaluation.expected_calibration_error`, 10 bins, each
    pair in a seeded random order).  Plots: accuracy against :math:`\varepsilon`
    with the ceiling, the agreement of two annotators and InstructGPT's 0.726;
    the ECE against :math:`\varepsilon`.
    """
    return LabelNoiseExplorer(margins, label_noise, seed)
