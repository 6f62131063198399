"""A reliability-diagram explorer: bins and temperature against a reward model's held-out pairs."""

from __future__ import annotations

import numpy as np

from rmteach import evaluation as ev
from rmteach import numpy as rm
from rmteach._checks import as_real_array
from rmteach.widgets.base import Explorer
from rmteach.widgets.panels import CURVE, GOOD, MARK, OTHER, PREF, Panel, Slider, move, set_y

TEMPERATURE_RANGE = (0.25, 4.0)
TEMPERATURE_GRID = np.round(np.arange(0.25, 4.0 + 1e-9, 0.05), 2)  # the slider's own values
BINS_RANGE = (2, 20)


def _margins(margins) -> np.ndarray:
    d = np.asarray(as_real_array("margins", margins), dtype=np.float64)
    if d.ndim != 1 or d.size == 0:
        raise ValueError(f"margins must have shape (N,) with N >= 1, got shape {d.shape}")
    if not np.all(np.isfinite(d)):
        i = int(np.flatnonzero(~np.isfinite(d))[0])
        raise ValueError(f"margins must be finite, got {float(d[i])!r} at index {i}")
    return d


class CalibrationExplorer(Explorer):
    title = ("<b>Calibration of a reward model</b> &nbsp; p = \u03c3(\u0394 / T), &nbsp; "
             "ECE = \u03a3<sub>b</sub> (n<sub>b</sub>/N) |freq<sub>b</sub> \u2212 mean p<sub>b</sub>|")

    def __init__(self, margins, labels, n_bins: int, temperature: float) -> None:
        self._d = _margins(margins)
        sliders = [
            Slider("n_bins", "bins", n_bins, *BINS_RANGE, 1, integer=True),
            Slider("temperature", "temperature T", temperature, *TEMPERATURE_RANGE, 0.05),
        ]
        zeros = np.zeros_like(self._d)
        self._zeros = zeros
        shape = np.shape(labels) if not isinstance(labels, str) else None
        if shape != self._d.shape:
            raise ValueError(f"labels must have the shape of margins {self._d.shape}, got "
                             f"{'a str' if shape is None else f'shape {shape}'}")
        # checks the labels are 0/1 and names them in any error
        ev.expected_calibration_error(np.asarray(rm.preference_probability(self._d, zeros)), labels, 2)
        self._y = np.asarray(labels, dtype=np.float64)
        readouts = [
            ("ece", "ECE"),
            ("accuracy", "accuracy"),
            ("nll", "log loss"),
            ("mean_confidence", "mean confidence max(p, 1\u2212p)"),
            ("n", "pairs N"),
        ]
        self._rel = Panel("reliability diagram", "mean predicted P(y_a \u227b y_b) in the bin",
                          "fraction where y_a was preferred", x_range=(0.0, 1.0), y_range=(0.0, 1.0),
                          legend="top-left", width="320px", height="300px")
        self._rel.line([0.0, 1.0], [0.0, 1.0], OTHER, "calibrated", dashed=True)
        self._curve = self._rel.line([0.0], [0.0], PREF, "model")
        self._dots = self._rel.points([0.0], [0.0], PREF, size=40)
        self._hist = Panel("pairs per bin", "predicted P(y_a \u227b y_b)", "pairs",
                           x_range=(0.0, 1.0), width="290px", height="300px")
        self._bars = self._hist.bars([0.5], [0.0], [GOOD])
        self._temp = Panel("ECE against the temperature", "temperature T", "ECE",
                           x_range=TEMPERATURE_RANGE, y_range=None, width="320px", height="300px")
        self._ece_curve = self._temp.line(TEMPERATURE_GRID, np.zeros_like(TEMPERATURE_GRID), CURVE)
        self._t_dot = self._temp.points([1.0], [0.0], MARK)
        self._bins_drawn = -1
        super().__init__(sliders, readouts, [self._rel, self._hist, self._temp],
                         note="Each point is one bin: its mean predicted probability against how often "
                              "y<sub>a</sub> was in fact preferred. Points below the diagonal on the right "
                              "mean over-confidence. T &gt; 1 shrinks every margin, T &lt; 1 sharpens it; "
                              "the accuracy never changes.")
        self._refresh()

    def _probs(self, temperature: float) -> np.ndarray:
        return np.asarray(rm.preference_probability(self._d / temperature, self._zeros), dtype=np.float64)

    def _nll(self, temperature: float) -> float:
        # the log loss of a 0/1 label is the soft-label loss with p = label (stable form)
        return float(rm.soft_ranking_loss(self._d / temperature, self._zeros, self._y))

    def _compute(self, n_bins: int, temperature: float) -> None:
        p = self._probs(temperature)
        t = ev.reliability_table(p, self._y, n_bins)
        ece = ev.expected_calibration_error(p, self._y, n_bins)
        full = t["counts"] > 0
        move(self._curve, t["mean_predicted"][full], t["observed_frequency"][full])
        move(self._dots, t["mean_predicted"][full], t["observed_frequency"][full])
        centers = (t["edges"][:-1] + t["edges"][1:]) / 2
        move(self._bars, centers, t["counts"])
        if n_bins != self._bins_drawn:  # the ECE curve depends on the bins only
            set_y(self._ece_curve, [ev.expected_calibration_error(self._probs(x), self._y, n_bins)
                                    for x in TEMPERATURE_GRID])
            self._bins_drawn = n_bins
        nll = self._nll(temperature)
        move(self._t_dot, [temperature], [ece])
        signed = np.where(self._y == 1, self._d, -self._d)  # r_pref - r_rej as the labels say
        accuracy = float(rm.ranking_accuracy(signed, self._zeros))  # a zero margin counts as wrong
        self._show(ece=ece, accuracy=accuracy, nll=nll,
                   mean_confidence=float(np.mean(np.maximum(p, 1.0 - p))), n=float(self._d.size))


def calibration_explorer(margins, labels, n_bins: int = 10, temperature: float = 1.0) -> CalibrationExplorer:
    r"""A reliability diagram, the ECE and the log loss of held-out pairs, live as bins and T move.

    ``margins`` ``(N,)``: a reward model's :math:`\Delta_i = r(x_i, y_{a,i}) - r(x_i, y_{b,i})`
    on held-out pairs; ``labels`` ``(N,)``: 1 where :math:`y_a` was preferred, else 0.
    Sliders ``n_bins`` (2 to 20 equal-width bins) and ``temperature`` :math:`T`
    (0.25 to 4): the predicted probabilities are
    :math:`p_i = \sigma(\Delta_i / T)` (:func:`rmteach.numpy.preference_probability`),
    temperature scaling, which changes confidence but never a ranking.

    Plots: the reliability diagram (:func:`rmteach.evaluation.reliability_table`:
    each bin's mean :math:`p` against its observed frequency, with the diagonal),
    the number of pairs per bin, and the ECE
    (:func:`rmteach.evaluation.expected_calibration_error`) against :math:`T`.  Readouts ``ece``, ``accuracy`` (fraction ranked the way the label
    says; a zero margin counts as wrong), ``nll`` (mean
    :math:`-[y\log p + (1-y)\log(1-p)]`, from
    :func:`rmteach.numpy.soft_ranking_loss` with the label as :math:`p`),
    ``mean_confidence`` (mean :math:`\max(p, 1-p)`) and ``n``.
    """
    return CalibrationExplorer(margins, labels, n_bins, temperature)
