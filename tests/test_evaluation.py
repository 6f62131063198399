"""rmteach.evaluation: calibration (ECE, reliability table), Wilson intervals, length-controlled accuracy.

References are independent of the code under test: hand arithmetic, brute-force
loops over bins, and the textbook Wilson formula evaluated in mpmath at 50 digits.
"""

from __future__ import annotations

import math
import subprocess
import sys
from statistics import NormalDist

import mpmath
import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

import strategies as S
from rmteach import evaluation as ev
from rmteach import numpy as rmnp

mpmath.mp.dps = 50


def test_import_needs_neither_torch_nor_scipy():
    code = ("import sys, rmteach.evaluation; "
            "assert 'torch' not in sys.modules and 'scipy' not in sys.modules, sorted(sys.modules)")
    subprocess.run([sys.executable, "-c", code], check=True)


# ---------------------------------------------------------------- calibration


def _ece_brute_force(p, y, n_bins):
    """Bin by comparing with the edges m / M one by one (the last bin closed), then the weighted gaps."""
    p, y = list(map(float, p)), list(map(float, y))
    total = 0.0
    for m in range(n_bins):
        lo, hi = m / n_bins, (m + 1) / n_bins
        members = [i for i, v in enumerate(p) if lo <= v < hi or (m == n_bins - 1 and v == 1.0)]
        if members:
            mean_p = math.fsum(p[i] for i in members) / len(members)
            freq = math.fsum(y[i] for i in members) / len(members)
            total += len(members) / len(p) * abs(freq - mean_p)
    return total


def test_ece_is_zero_when_every_bin_is_calibrated():
    p = [0.25] * 4 + [0.75] * 4 + [0.5] * 2
    y = [1, 0, 0, 0] + [1, 1, 0, 1] + [0, 1]
    assert ev.expected_calibration_error(p, y) == 0.0
    t = ev.reliability_table(p, y)
    full = t["counts"] > 0
    np.testing.assert_array_equal(t["mean_predicted"][full], t["observed_frequency"][full])


def test_ece_pinned_by_hand():
    p = [0.05, 0.3, 0.35, 0.95, 1.0]
    y = [0, 1, 0, 1, 1]
    # bins [0, .1): {0.05}, gap |0 - 0.05|; [.3, .4): {0.3, 0.35}, |1/2 - 0.325|; [.9, 1]: {0.95, 1.0}, |1 - 0.975|
    expected = 1 / 5 * 0.05 + 2 / 5 * 0.175 + 2 / 5 * 0.025
    assert ev.expected_calibration_error(p, y) == pytest.approx(expected, rel=1e-14)
    assert ev.expected_calibration_error(p, y) == pytest.approx(0.09, rel=1e-14)
    # with two bins, [0, .5) = {0.05, 0.3, 0.35} and [.5, 1] = {0.95, 1.0}
    two = 3 / 5 * abs(1 / 3 - 0.7 / 3) + 2 / 5 * abs(1 - 0.975)
    assert ev.expected_calibration_error(p, y, n_bins=2) == pytest.approx(two, rel=1e-14)
    assert ev.expected_calibration_error(p, y, n_bins=1) == pytest.approx(abs(3 / 5 - 2.65 / 5), rel=1e-14)


def test_reliability_table_pinned():
    t = ev.reliability_table([0.05, 0.3, 0.35, 0.95, 1.0], [False, True, False, True, True], n_bins=10)
    assert set(t) == {"edges", "counts", "mean_predicted", "observed_frequency"}
    np.testing.assert_array_equal(t["edges"], [m / 10 for m in range(11)])
    assert t["edges"][3] == 0.3  # m / M, not 0.30000000000000004 as np.linspace gives
    np.testing.assert_array_equal(t["counts"], [1, 0, 0, 2, 0, 0, 0, 0, 0, 2])
    assert t["counts"].dtype == np.int64
    want_p = [0.05, np.nan, np.nan, 0.325, np.nan, np.nan, np.nan, np.nan, np.nan, 0.975]
    want_y = [0.0, np.nan, np.nan, 0.5, np.nan, np.nan, np.nan, np.nan, np.nan, 1.0]
    np.testing.assert_allclose(t["mean_predicted"], want_p, rtol=1e-15)
    np.testing.assert_array_equal(t["observed_frequency"], want_y)


def test_bin_edges_belong_to_the_bin_on_their_right_and_one_to_the_last():
    t = ev.reliability_table([0.0, 0.3, 0.5, 0.7, 1.0], [0, 0, 0, 0, 0], n_bins=10)
    np.testing.assert_array_equal(t["counts"], [1, 0, 0, 1, 0, 1, 0, 1, 0, 1])
    assert ev.reliability_table([1.0], [1], n_bins=3)["counts"].tolist() == [0, 0, 1]


@given(data=S.labelled_probs(), n_bins=st.integers(1, 20))
def test_ece_matches_a_brute_force_binning(data, n_bins):
    p, y = data
    assert ev.expected_calibration_error(p, y, n_bins) == pytest.approx(_ece_brute_force(p, y, n_bins),
                                                                        rel=1e-12, abs=1e-15)


@given(data=S.labelled_probs(min_size=2), seed=st.integers(0, 2**32 - 1), n_bins=st.integers(1, 20))
def test_ece_and_the_table_do_not_depend_on_the_order_of_the_pairs(data, seed, n_bins):
    p, y = data
    perm = np.random.default_rng(seed).permutation(p.size)
    assert ev.expected_calibration_error(p[perm], y[perm], n_bins) == ev.expected_calibration_error(p, y, n_bins)
    a, b = ev.reliability_table(p[perm], y[perm], n_bins), ev.reliability_table(p, y, n_bins)
    for key in a:
        np.testing.assert_array_equal(a[key], b[key])


@given(data=S.labelled_probs(), n_bins=st.integers(1, 20))
def test_ece_lies_between_zero_and_the_mean_absolute_error(data, n_bins):
    p, y = data
    ece = ev.expected_calibration_error(p, y, n_bins)
    assert 0.0 <= ece <= np.mean(np.abs(y - p)) + 1e-12
    assert int(ev.reliability_table(p, y, n_bins)["counts"].sum()) == p.size


def test_ece_tells_a_calibrated_model_from_an_overconfident_one():
    rng = np.random.default_rng(12)
    q = rng.uniform(0.02, 0.98, 50_000)  # the true P(y_a preferred)
    y = rng.uniform(size=q.size) < q
    overconfident = 1 / (1 + np.exp(-3 * np.log(q / (1 - q))))  # reward differences three times too large
    assert ev.expected_calibration_error(q, y) < 0.01
    assert ev.expected_calibration_error(overconfident, y) > 0.1
    t = ev.reliability_table(overconfident, y)
    # overconfidence: below 1/2 the observed frequency is above the prediction, above 1/2 below it
    assert np.all(t["observed_frequency"][:4] > t["mean_predicted"][:4])
    assert np.all(t["observed_frequency"][6:] < t["mean_predicted"][6:])


def test_labels_may_be_bool_integer_or_float():
    p = [0.2, 0.6, 0.9]
    values = {ev.expected_calibration_error(p, lab) for lab in
              ([False, True, True], [0, 1, 1], np.array([0.0, 1.0, 1.0]), np.array([0, 1, 1], dtype=np.uint8))}
    assert len(values) == 1


@pytest.mark.parametrize("name", ["expected_calibration_error", "reliability_table"])
class TestCalibrationBadInput:
    @pytest.mark.parametrize("probs, match", [
        ([0.5, 1.5], r"^probs must be probabilities in \[0, 1\], got 1.5 at index 1"),
        ([-0.1, 0.5], r"^probs must be probabilities in \[0, 1\], got -0.1 at index 0"),
        ([0.5, math.nan], r"^probs must be probabilities in \[0, 1\], got nan at index 1"),
        ([[0.5, 0.5]], r"^probs must have shape \(N,\) with N >= 1, got shape \(1, 2\)"),
        (0.5, r"^probs must have shape \(N,\) with N >= 1, got shape \(\)"),
    ])
    def test_bad_probs(self, name, probs, match):
        with pytest.raises(ValueError, match=match):
            getattr(ev, name)(probs, [1, 0])

    def test_empty(self, name):
        with pytest.raises(ValueError, match=r"^probs must have shape \(N,\) with N >= 1, got shape \(0,\)"):
            getattr(ev, name)([], [])

    @pytest.mark.parametrize("labels, error, match", [
        ([1, 0.5], ValueError, r"^labels must be 0 or 1 \(1: y_a was preferred\), got 0.5 at index 1"),
        ([2, 0], ValueError, r"^labels must be 0 or 1 .*got 2.0 at index 0"),
        ([1, -1], ValueError, r"^labels must be 0 or 1"),
        ([1, math.nan], ValueError, r"^labels must be 0 or 1 .*got nan"),
        ([1, 0, 1], ValueError, r"^labels must have the shape of probs \(2,\), got shape \(3,\)"),
        (["yes", "no"], TypeError, r"^labels must be a real number"),
        (None, TypeError, r"^labels must be a real number"),
    ])
    def test_bad_labels(self, name, labels, error, match):
        with pytest.raises(error, match=match):
            getattr(ev, name)([0.3, 0.7], labels)

    @pytest.mark.parametrize("n_bins, error, match", [
        (0, ValueError, r"^n_bins must be an integer >= 1, got 0"),
        (-3, ValueError, r"^n_bins must be an integer >= 1, got -3"),
        (2.5, TypeError, r"^n_bins must be an integer >= 1, got float 2.5"),
        (True, TypeError, r"^n_bins must be an integer >= 1, got bool True"),
        ("10", TypeError, r"^n_bins must be an integer >= 1, got str '10'"),
    ])
    def test_bad_n_bins(self, name, n_bins, error, match):
        with pytest.raises(error, match=match):
            getattr(ev, name)([0.3, 0.7], [0, 1], n_bins)


# ---------------------------------------------------------------- Wilson interval


def _wilson_mp(s: int, n: int, confidence: float):
    """The textbook formula in 50-digit arithmetic, z from the inverse error function."""
    z = mpmath.sqrt(2) * mpmath.erfinv(mpmath.mpf(confidence))
    s, n = mpmath.mpf(s), mpmath.mpf(n)
    p = s / n
    centre = (p + z**2 / (2 * n)) / (1 + z**2 / n)
    half = z / (1 + z**2 / n) * mpmath.sqrt(p * (1 - p) / n + z**2 / (4 * n**2))
    return float(centre - half), float(centre + half)


def test_wilson_eight_of_ten_at_95_percent():
    lo, hi = ev.wilson_interval(8, 10)
    assert lo == pytest.approx(0.490, abs=5e-4) and hi == pytest.approx(0.943, abs=5e-4)
    want = _wilson_mp(8, 10, 0.95)
    assert lo == pytest.approx(want[0], rel=1e-14) and hi == pytest.approx(want[1], rel=1e-14)
    assert (lo, hi) == pytest.approx((0.4901624715366418, 0.9433178485456247), rel=1e-14)


@pytest.mark.parametrize("s, n, confidence", [(3, 7, 0.95), (830, 1000, 0.95), (1, 10**9, 0.99), (50, 100, 0.5),
                                              (999_999_999, 10**9, 0.95), (2, 3, 0.999)])
def test_wilson_matches_mpmath(s, n, confidence):
    lo, hi = ev.wilson_interval(s, n, confidence)
    want = _wilson_mp(s, n, confidence)
    assert lo == pytest.approx(want[0], rel=1e-13) and hi == pytest.approx(want[1], rel=1e-13)


def test_wilson_edge_cases_zero_and_all():
    z2 = 1.959963984540054**2
    for n in (1, 10, 1000):
        lo, hi = ev.wilson_interval(0, n)
        assert lo == 0.0 and hi == pytest.approx(z2 / (n + z2), rel=1e-14) and hi > 0
        lo, hi = ev.wilson_interval(n, n)
        assert hi == 1.0 and lo == pytest.approx(n / (n + z2), rel=1e-14) and lo < 1
    # the textbook centre -/+ half-width, in floats, leaves [0, 1] (the labelled bad example)
    assert _textbook_float(0, 2)[0] < 0.0 and ev.wilson_interval(0, 2)[0] == 0.0
    assert _textbook_float(9, 9)[1] > 1.0 and ev.wilson_interval(9, 9)[1] == 1.0


def _textbook_float(s, n):
    z = NormalDist().inv_cdf(0.975)
    p = s / n
    centre = (p + z * z / (2 * n)) / (1 + z * z / n)
    half = z / (1 + z * z / n) * math.sqrt(p * (1 - p) / n + z * z / (4 * n * n))
    return centre - half, centre + half


@given(n=st.integers(1, 10**6), data=st.data(), confidence=st.floats(0.5, 0.999))
def test_wilson_properties(n, data, confidence):
    s = data.draw(st.integers(0, n))
    lo, hi = ev.wilson_interval(s, n, confidence)
    p = s / n
    assert 0.0 <= lo <= p <= hi <= 1.0
    assert lo < hi
    if 0 < s < n:
        assert lo < p < hi
    # mirror image: the interval for the failures is one minus the interval for the successes
    lo_f, hi_f = ev.wilson_interval(n - s, n, confidence)
    assert lo == pytest.approx(1 - hi_f, abs=1e-14) and hi == pytest.approx(1 - lo_f, abs=1e-14)
    # more confidence, a wider interval
    lo_w, hi_w = ev.wilson_interval(s, n, min(confidence + 0.0005, 0.9999))
    assert lo_w <= lo and hi_w >= hi


@given(n=st.integers(1, 10**5), data=st.data(), k=st.integers(2, 100))
def test_wilson_shrinks_with_more_data_at_the_same_proportion(n, data, k):
    s = data.draw(st.integers(0, n))
    lo, hi = ev.wilson_interval(s, n)
    lo_k, hi_k = ev.wilson_interval(k * s, k * n)
    assert hi_k - lo_k < hi - lo


@pytest.mark.parametrize("args, error, match", [
    ((11, 10), ValueError, r"^successes must be <= n, got successes=11 and n=10"),
    ((-1, 10), ValueError, r"^successes must be an integer >= 0, got -1"),
    ((0, 0), ValueError, r"^n must be an integer >= 1, got 0"),
    ((8.0, 10), TypeError, r"^successes must be an integer >= 0, got float 8.0"),
    ((8, 10.0), TypeError, r"^n must be an integer >= 1, got float 10.0"),
    ((True, 10), TypeError, r"^successes must be an integer >= 0, got bool True"),
    ((8, 10, 0.0), ValueError, r"^confidence must be a single number in \(0, 1\), got float 0.0"),
    ((8, 10, 1.0), ValueError, r"^confidence must be a single number in \(0, 1\)"),
    ((8, 10, 95), ValueError, r"^confidence must be a single number in \(0, 1\), got int 95"),
    ((8, 10, math.nan), ValueError, r"^confidence must be a single number in \(0, 1\)"),
    ((8, 10, "0.95"), TypeError, r"^confidence must be a real number"),
])
def test_wilson_bad_input(args, error, match):
    with pytest.raises(error, match=match):
        ev.wilson_interval(*args)


def test_wilson_accepts_numpy_integers():
    assert ev.wilson_interval(np.int64(8), np.int32(10)) == ev.wilson_interval(8, 10)


# ---------------------------------------------------------------- length-controlled accuracy


def test_length_controlled_accuracy_pinned():
    r_pref, r_rej = [1.0, 2.0, 3.0, 0.0, 5.0], [0.0, 3.0, 1.0, 1.0, 5.0]
    len_pref, len_rej = [10, 5, 7, 7, 40], [5, 9, 7, 3, 20]
    # pairs: 0 longer & right, 1 shorter & wrong, 2 equal & right, 3 longer & wrong, 4 longer & a tie (wrong)
    got = ev.length_controlled_accuracy(r_pref, r_rej, len_pref, len_rej)
    assert got["longer"] == {"accuracy": 1 / 3, "count": 3}
    assert got["shorter"] == {"accuracy": 0.0, "count": 1}
    assert got["equal"] == {"accuracy": 1.0, "count": 1}
    assert got["all"] == {"accuracy": 2 / 5, "count": 5}
    assert got["longer_minus_shorter"] == 1 / 3
    assert set(got) == {"longer", "shorter", "equal", "all", "longer_minus_shorter"}
    assert isinstance(got["longer"]["count"], int) and isinstance(got["all"]["accuracy"], float)


def test_a_length_only_reward_model_shows_its_bias():
    """On data where preference has nothing to do with length, a model that counts tokens wins only when the
    preferred response happens to be longer; a model that sees quality does equally well in both groups."""
    rng = np.random.default_rng(7)
    n = 4000
    quality_pref, quality_rej = rng.normal(1.0, 1.0, n), rng.normal(0.0, 1.0, n)
    len_pref, len_rej = rng.integers(20, 400, n), rng.integers(20, 400, n)
    by_length = ev.length_controlled_accuracy(len_pref.astype(float), len_rej.astype(float), len_pref, len_rej)
    assert by_length["longer"]["accuracy"] == 1.0 and by_length["shorter"]["accuracy"] == 0.0
    assert by_length["equal"]["accuracy"] == 0.0  # equal lengths: equal scores, ties count as wrong
    assert by_length["longer_minus_shorter"] == 1.0
    assert 0.45 < by_length["all"]["accuracy"] < 0.55  # the overall accuracy alone hides it
    by_quality = ev.length_controlled_accuracy(quality_pref, quality_rej, len_pref, len_rej)
    assert abs(by_quality["longer_minus_shorter"]) < 0.05
    assert by_quality["all"]["accuracy"] == float(rmnp.ranking_accuracy(quality_pref, quality_rej))
    counts = [by_quality[k]["count"] for k in ("longer", "shorter", "equal")]
    assert sum(counts) == by_quality["all"]["count"] == n


def test_an_empty_group_has_nan_accuracy():
    got = ev.length_controlled_accuracy([1.0, 2.0], [0.0, 3.0], [10, 12], [5, 6])
    assert got["longer"] == {"accuracy": 0.5, "count": 2}
    assert got["shorter"]["count"] == 0 and math.isnan(got["shorter"]["accuracy"])
    assert got["equal"]["count"] == 0 and math.isnan(got["equal"]["accuracy"])
    assert math.isnan(got["longer_minus_shorter"])


@pytest.mark.parametrize("kwargs, error, match", [
    (dict(r_rej=[0.0]), ValueError, r"^r_rej must have the shape of r_pref \(2,\), got shape \(1,\)"),
    (dict(len_pref=[1, 2, 3]), ValueError, r"^len_pref must have the shape of r_pref \(2,\), got shape \(3,\)"),
    (dict(len_rej=[1]), ValueError, r"^len_rej must have the shape of r_pref \(2,\), got shape \(1,\)"),
    (dict(r_pref=[1.0, math.nan]), ValueError, r"^r_pref contains NaN at index 1"),
    (dict(r_rej=[math.nan, 0.0]), ValueError, r"^r_rej contains NaN at index 0"),
    (dict(len_pref=[-1, 3]), ValueError, r"^len_pref must be finite lengths >= 0, got -1.0 at index 0"),
    (dict(len_rej=[4, math.inf]), ValueError, r"^len_rej must be finite lengths >= 0, got inf at index 1"),
    (dict(r_pref="good"), TypeError, r"^r_pref must be a real number"),
    (dict(len_rej=None), TypeError, r"^len_rej must be a real number"),
    (dict(r_pref=[[1.0, 2.0]]), ValueError, r"^r_pref must have shape \(N,\) with N >= 1, got shape \(1, 2\)"),
])
def test_length_controlled_accuracy_bad_input(kwargs, error, match):
    args = dict(r_pref=[1.0, 2.0], r_rej=[0.0, 3.0], len_pref=[10, 5], len_rej=[5, 9])
    with pytest.raises(error, match=match):
        ev.length_controlled_accuracy(**{**args, **kwargs})
