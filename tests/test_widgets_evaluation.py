"""The evaluation explorers without a kernel: sliders moved from Python, readouts pinned to rmteach."""

from __future__ import annotations

import numpy as np
import pytest

from rmteach import evaluation as ev
from rmteach import numpy as rm
from rmteach import widgets
from test_widgets import figures, shown_text


@pytest.fixture(scope="module")
def pairs():
    rng = np.random.default_rng(0)
    d = rng.normal(0.0, 3.0, 1500)  # margins three times too large for the labels below
    y = (rng.random(d.size) < 1 / (1 + np.exp(-d / 3))).astype(np.float64)
    return d, y


def test_calibration_explorer_readouts_are_rmteach_numbers(pairs):
    d, y = pairs
    ex = widgets.calibration_explorer(d, y)
    assert ex.values == {"n_bins": 10, "temperature": 1.0}
    for n_bins, t in ((10, 1.0), (5, 2.5), (20, 0.25), (7, 3.0)):
        ex.set(n_bins=n_bins, temperature=t)
        p = rm.preference_probability(d / t, np.zeros_like(d))
        r = ex.readouts
        assert r["ece"] == ev.expected_calibration_error(p, y, n_bins)
        assert r["nll"] == rm.soft_ranking_loss(d / t, np.zeros_like(d), y)
        log_loss = np.mean(y * np.logaddexp(0, -d / t) + (1 - y) * np.logaddexp(0, d / t))
        assert r["nll"] == pytest.approx(log_loss, rel=1e-12)
        assert r["accuracy"] == np.mean(np.where(y == 1, d > 0, d < 0))
        assert r["mean_confidence"] == np.mean(np.maximum(p, 1 - p))
        assert r["n"] == 1500
        assert shown_text(ex, "ece") == f"{r['ece']:.6g}"


def test_temperature_scaling_fixes_this_overconfidence_and_keeps_the_accuracy(pairs):
    d, y = pairs
    ex = widgets.calibration_explorer(d, y)
    before = ex.readouts
    ex.set(temperature=3.0)  # the labels were drawn with sigma(d / 3)
    after = ex.readouts
    assert after["accuracy"] == before["accuracy"]
    assert after["ece"] < 0.04 < 0.1 < before["ece"]
    assert after["nll"] < before["nll"] and after["mean_confidence"] < before["mean_confidence"]


def test_calibration_explorer_updates_its_figures_in_place(pairs):
    d, y = pairs
    ex = widgets.calibration_explorer(d, y)
    figs = figures(ex.widget)
    assert len(figs) == 3
    marks = [list(f.marks) for f in figs]
    ex.set(n_bins=4, temperature=2.0)
    assert figures(ex.widget) == figs and [list(f.marks) for f in figs] == marks
    t = ev.reliability_table(rm.preference_probability(d / 2.0, np.zeros_like(d)), y, 4)
    _, curve, dots = figs[0].marks
    full = t["counts"] > 0
    np.testing.assert_array_equal(curve.x, t["mean_predicted"][full])
    np.testing.assert_array_equal(dots.y, t["observed_frequency"][full])
    bars = figs[1].marks[0]
    np.testing.assert_array_equal(bars.y, t["counts"])
    np.testing.assert_array_equal(bars.x, [0.125, 0.375, 0.625, 0.875])
    ece_curve, t_dot = figs[2].marks
    assert list(t_dot.x) == [2.0] and list(t_dot.y) == [ex.readouts["ece"]]
    i = int(np.flatnonzero(np.asarray(ece_curve.x) == 2.0)[0])
    assert ece_curve.y[i] == ex.readouts["ece"]


def test_an_empty_bin_is_left_out_of_the_diagram():
    d = np.array([-4.0, -3.0, 3.0, 4.0])  # no prediction near 1/2
    ex = widgets.calibration_explorer(d, [0, 0, 1, 1], n_bins=10)
    _, curve, _ = figures(ex.widget)[0].marks
    assert len(curve.x) == 2 and np.all(np.isfinite(curve.y))  # bins 1 and 10 only
    assert list(figures(ex.widget)[1].marks[0].y) == [2, 0, 0, 0, 0, 0, 0, 0, 0, 2]


@pytest.mark.parametrize("args, kwargs, exc, match", [
    (([1.0, np.nan], [0, 1]), {}, ValueError, r"margins must be finite, got nan at index 1"),
    (([[1.0]], [1]), {}, ValueError, r"margins must have shape \(N,\)"),
    (([1.0, 2.0], [0, 2]), {}, ValueError, r"labels must be 0 or 1"),
    (([1.0, 2.0], [0, 1, 1]), {}, ValueError, r"labels must have the shape of margins \(2,\), got shape \(3,\)"),
    (([1.0], [1]), {"n_bins": 1}, ValueError, r"n_bins must be an integer in \[2, 20\]"),
    (([1.0], [1]), {"temperature": 0.0}, ValueError, r"temperature must be a real number in \[0.25, 4\]"),
    (("12", [1]), {}, TypeError, r"margins must be a real number"),
])
def test_bad_calibration_explorer_arguments(args, kwargs, exc, match):
    with pytest.raises(exc, match=match):
        widgets.calibration_explorer(*args, **kwargs)


# ---------------------------------------------------------------------------
# the label-noise explorer


@pytest.fixture(scope="module")
def rule_margins():
    return np.random.default_rng(1).normal(3.0, 2.0, 2000)  # r(correct) - r(wrong): mostly right


def test_label_noise_explorer_readouts(rule_margins):
    from rmteach import text_preferences as tp

    d = rule_margins
    ex = widgets.label_noise_explorer(d)
    assert ex.values == {"label_noise": 0.16}
    a = np.mean(d > 0)
    for eps in (0.0, 0.16, 0.3, 0.5):
        ex.set(label_noise=eps)
        r = ex.readouts
        assert r["agreement"] == tp.annotator_agreement(eps) == pytest.approx((1 - eps) ** 2 + eps ** 2, abs=1e-15)
        assert r["ceiling"] == 1 - eps
        assert r["expected"] == tp.expected_noisy_accuracy(a, eps) == pytest.approx(a * (1 - eps) + (1 - a) * eps)
        assert abs(r["flipped"] - eps) < 4 * np.sqrt(max(eps * (1 - eps), 1e-9) / d.size)
        assert abs(r["accuracy"] - r["expected"]) < 0.04  # sampling error only
    ex.set(label_noise=0.0)
    assert ex.readouts["accuracy"] == a and ex.readouts["flipped"] == 0.0
    assert tp.annotator_agreement(0.5) == 0.5 and tp.expected_noisy_accuracy(1.0, 0.16) == 0.84


def test_label_noise_explorer_measures_the_labels_it_flips(rule_margins):
    d = rule_margins
    ex = widgets.label_noise_explorer(d, label_noise=0.2, seed=3)
    rng = np.random.default_rng(3)
    u, a_first = rng.random(d.size), rng.random(d.size) < 0.5
    flipped = u < 0.2
    assert ex.readouts["flipped"] == np.mean(flipped)
    assert ex.readouts["accuracy"] == np.mean(np.where(flipped, d < 0, d > 0))
    p = rm.preference_probability(np.where(a_first, d, -d), np.zeros_like(d))
    assert ex.readouts["ece"] == ev.expected_calibration_error(p, (a_first != flipped).astype(float))
    acc_fig, ece_fig = figures(ex.widget)
    measured, dot = acc_fig.marks[3], acc_fig.marks[4]
    i = int(np.flatnonzero(np.asarray(measured.x) == 0.2)[0])
    assert measured.y[i] == ex.readouts["accuracy"] and list(dot.y) == [ex.readouts["accuracy"]]
    # more noise only adds flips: the measured accuracy of a mostly-right model never rises
    assert np.all(np.diff(np.asarray(measured.y)) <= 1 / d.size + 1e-12)


@pytest.mark.parametrize("kwargs, exc, match", [
    ({"label_noise": 0.6}, ValueError, r"label_noise must be a real number in \[0, 0.5\]"),
    ({"seed": -1}, ValueError, r"seed must be an integer >= 0"),
])
def test_bad_label_noise_explorer_arguments(kwargs, exc, match):
    with pytest.raises(exc, match=match):
        widgets.label_noise_explorer([1.0, 2.0], **kwargs)


@pytest.mark.parametrize("call, match", [
    (lambda tp: tp.annotator_agreement(0.7), r"label_noise must be in \[0, 0.5\], got 0.7"),
    (lambda tp: tp.expected_noisy_accuracy(1.2, 0.1), r"accuracy must be in \[0, 1\], got 1.2"),
])
def test_bad_noise_formula_arguments(call, match):
    from rmteach import text_preferences as tp

    with pytest.raises(ValueError, match=match):
        call(tp)
