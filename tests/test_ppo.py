"""rmteach.rlhf's PPO pieces: the clipped surrogate, clip fraction, KL estimators, adaptive KL.

References are independent of the code under test: hand arithmetic, exact
fractions, mpmath at 50 digits, central differences, and exact expectations
over small categorical distributions for the Monte-Carlo checks.
"""

from __future__ import annotations

import math
from fractions import Fraction

import mpmath
import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st
from hypothesis.extra import numpy as hnp

import strategies as S
from rmteach import rlhf
from rmteach.gradcheck import central_difference

mpmath.mp.dps = 50
EPS64 = float(np.finfo(np.float64).eps)


# ---------------------------------------------------------------- the clipped surrogate


def test_ppo_clip_loss_pinned_by_hand():
    ratio = [0.5, 1.0, 1.5, 0.9, 1.3, 0.7]
    adv = [1.0, 2.0, -1.0, -0.5, 1.0, -2.0]
    # per sample max(-A*rho, -A*clip(rho, 0.8, 1.2)):
    #   -0.5 (A>0 below the region: unclipped, pessimistic), -2 (inside), 1.5 (A<0 above: unclipped),
    #   0.45 (inside), -1.2 (A>0 above 1.2: clipped), 1.6 (A<0 below 0.8: clipped)
    expected = (-0.5 - 2.0 + 1.5 + 0.45 - 1.2 + 1.6) / 6
    assert rlhf.ppo_clip_loss(ratio, adv) == pytest.approx(expected, rel=1e-14)
    assert rlhf.ppo_clip_loss(ratio, adv) == pytest.approx(-0.025, rel=1e-13)
    assert isinstance(rlhf.ppo_clip_loss(ratio, adv), np.float64)
    # a wider region clips nothing here: the plain policy-gradient surrogate -mean(A * rho)
    assert rlhf.ppo_clip_loss(ratio, adv, eps=0.6) == pytest.approx(-np.mean(np.multiply(ratio, adv)), rel=1e-14)


@given(data=st.data(), eps=S.clip_eps)
def test_inside_the_trust_region_it_is_minus_a_rho(data, eps):
    n = data.draw(st.integers(1, 20))
    rho = data.draw(hnp.arrays(np.float64, n, elements=st.floats(1 - eps, 1 + eps)))
    adv = data.draw(hnp.arrays(np.float64, n, elements=S.advantages))
    assert rlhf.ppo_clip_loss(rho, adv, eps) == pytest.approx(math.fsum(-adv * rho) / n, rel=1e-12, abs=1e-300)


@given(data=st.data(), eps=S.clip_eps)
def test_the_clipped_loss_is_the_pessimistic_bound(data, eps):
    n = data.draw(st.integers(1, 20))
    rho = data.draw(hnp.arrays(np.float64, n, elements=S.ratios))
    adv = data.draw(hnp.arrays(np.float64, n, elements=S.advantages))
    loss = rlhf.ppo_clip_loss(rho, adv, eps)
    slack = 1e-12 * (1 + np.abs(adv * rho).sum())
    assert loss >= math.fsum(-adv * rho) / n - slack
    assert loss >= math.fsum(-adv * np.clip(rho, 1 - eps, 1 + eps)) / n - slack


@pytest.mark.parametrize("eps", [0.1, 0.2, 0.3])
def test_the_textbook_shape(eps):
    """One sample: for A > 0 the loss is flat above 1 + eps, for A < 0 flat below 1 - eps, linear elsewhere."""
    grid = np.linspace(0.05, 3.0, 600)
    for a in (1.0, 2.5):
        loss = np.array([rlhf.ppo_clip_loss([r], [a], eps) for r in grid])
        np.testing.assert_allclose(loss, -a * np.minimum(grid, 1 + eps), rtol=1e-15)
        assert np.all(loss[grid > 1 + eps] == -a * (1 + eps))  # flat: nothing to gain by moving further
        assert np.all(np.diff(loss[grid < 1 + eps]) < 0)  # below: raising rho lowers the loss
    for a in (-1.0, -0.3):
        loss = np.array([rlhf.ppo_clip_loss([r], [a], eps) for r in grid])
        np.testing.assert_allclose(loss, -a * np.maximum(grid, 1 - eps), rtol=1e-15)
        assert np.all(loss[grid < 1 - eps] == -a * (1 - eps))
        assert np.all(np.diff(loss[grid > 1 - eps]) > 0)
    assert rlhf.ppo_clip_loss([1.7], [0.0], eps) == 0.0  # no advantage, no signal


def test_gradient_is_zero_where_clipped_and_minus_a_over_n_elsewhere():
    rng = np.random.default_rng(4)
    eps = 0.2
    rho = rng.uniform(0.3, 2.0, 200)
    rho = rho[np.minimum(np.abs(rho - 0.8), np.abs(rho - 1.2)) > 1e-3]  # away from the two kinks
    adv = rng.normal(0, 1, rho.size)
    numeric = central_difference(lambda ratio, advantages: rlhf.ppo_clip_loss(ratio, advantages, eps),
                                 {"ratio": rho, "advantages": adv}, "ratio", eps=1e-6)
    clipped = ((adv > 0) & (rho > 1 + eps)) | ((adv < 0) & (rho < 1 - eps))
    assert 0 < clipped.sum() < rho.size
    assert np.all(numeric[clipped] == 0.0)
    np.testing.assert_allclose(numeric[~clipped], -adv[~clipped] / rho.size, rtol=1e-6, atol=1e-12)
    # and no sample outside |rho - 1| <= eps escapes clip_fraction's count
    assert clipped.mean() <= rlhf.clip_fraction(rho, eps)


def test_clip_fraction_pinned():
    ratio = [0.5, 0.8, 0.85, 1.0, 1.2, 1.25, 3.0]
    # |rho - 1| = 0.5, 0.2*, 0.15, 0, 0.2*, 0.25, 2 (*: 0.19999999999999996 in float64, on the edge: not counted)
    assert rlhf.clip_fraction(ratio) == 3 / 7
    assert rlhf.clip_fraction(ratio, eps=0.1) == 6 / 7
    assert rlhf.clip_fraction(ratio, eps=0.6) == 1 / 7
    # exactly on the edge (|rho - 1| = eps with no rounding): inside, as clip leaves it unchanged
    assert rlhf.clip_fraction([1.5, 0.5, 1.0, 2.0, 0.25], eps=0.5) == 2 / 5
    assert rlhf.clip_fraction([[1.0, 1.5], [0.5, 1.1]], eps=0.2) == 0.5  # (B, T) token ratios
    assert isinstance(rlhf.clip_fraction(ratio), np.float64)


@given(rho=hnp.arrays(np.float64, st.integers(1, 30), elements=S.ratios), eps=S.clip_eps)
def test_clip_fraction_counts_ratios_outside_the_region(rho, eps):
    outside = (rho < 1 - eps) | (rho > 1 + eps)
    on_edge = np.abs(np.abs(rho - 1) - eps) <= 4 * EPS64  # where rounding of rho - 1 decides
    got = rlhf.clip_fraction(rho, eps) * rho.size
    assert np.count_nonzero(outside & ~on_edge) <= round(got) <= np.count_nonzero(outside | on_edge)


@pytest.mark.parametrize("ratio", [0.0, -0.5, math.nan, math.inf])
def test_bad_ratio_names_the_argument_and_the_value(ratio):
    value = repr(float(ratio))
    with pytest.raises(ValueError, match=rf"^ratio must be finite and > 0 .*got {value} at index 1"):
        rlhf.ppo_clip_loss([1.0, ratio], [1.0, 1.0])
    with pytest.raises(ValueError, match=rf"^ratio must be finite and > 0 .*got {value} at index 1"):
        rlhf.clip_fraction([1.0, ratio])


@pytest.mark.parametrize("eps", [0.0, 1.0, -0.1, 1.5, math.nan, math.inf])
def test_bad_eps(eps):
    with pytest.raises(ValueError, match=r"^eps must be a number in \(0, 1\)"):
        rlhf.ppo_clip_loss([1.0], [1.0], eps)
    with pytest.raises(ValueError, match=r"^eps must be a number in \(0, 1\)"):
        rlhf.clip_fraction([1.0], eps)


def test_other_bad_ppo_input():
    with pytest.raises(ValueError, match=r"^advantages must have the shape of ratio \(2,\), got shape \(3,\)"):
        rlhf.ppo_clip_loss([1.0, 1.1], [1.0, 2.0, 3.0])
    with pytest.raises(ValueError, match=r"^advantages must be finite"):
        rlhf.ppo_clip_loss([1.0, 1.1], [1.0, math.nan])
    with pytest.raises(ValueError, match=r"^eps must be a single number, got shape \(2,\)"):
        rlhf.ppo_clip_loss([1.0], [1.0], [0.1, 0.2])
    with pytest.raises(ValueError, match=r"^ratio is empty"):
        rlhf.ppo_clip_loss([], [])
    with pytest.raises(TypeError, match=r"^ratio must be a real number"):
        rlhf.ppo_clip_loss("1.0", [1.0])
    with pytest.raises(TypeError, match=r"^advantages must be a real number"):
        rlhf.ppo_clip_loss([1.0], None)
    with pytest.raises(TypeError, match=r"^eps must be a real number"):
        rlhf.clip_fraction([1.0], "0.2")


# ---------------------------------------------------------------- KL estimators


P = np.array([0.35, 0.25, 0.15, 0.1, 0.1, 0.05])  # the policy (samples come from here)
Q = np.array([0.1, 0.2, 0.3, 0.15, 0.05, 0.2])  # the reference


def test_kl_estimates_pinned():
    k = rlhf.kl_estimates([-1.0, -2.0], [-2.0, -1.0])  # log ratios -1 and +1
    assert set(k) == {"k1", "k2", "k3"}
    np.testing.assert_array_equal(k["k1"], [1.0, -1.0])
    np.testing.assert_array_equal(k["k2"], [0.5, 0.5])
    np.testing.assert_allclose(k["k3"], [math.exp(-1.0), math.e - 2.0], rtol=2 * EPS64)
    np.testing.assert_allclose(k["k3"], [0.36787944117144233, 0.7182818284590452], rtol=2 * EPS64)
    same = rlhf.kl_estimates([-0.7, -3.0], [-0.7, -3.0])
    assert all(np.all(v == 0.0) for v in same.values())


def test_kl_estimates_keep_the_shape():
    k = rlhf.kl_estimates(np.full((2, 3), -1.0), np.full((2, 3), -2.0))
    assert all(v.shape == (2, 3) and v.dtype == np.float64 for v in k.values())
    k = rlhf.kl_estimates(-1.0, -1.5)
    assert all(np.ndim(v) == 0 for v in k.values())


@pytest.mark.parametrize("lr", [1e-300, 1e-12, -1e-8, 1e-6, -1e-3, 0.1, -0.3, 0.4999, 0.5, -0.5, 0.51, 1.0, -5.0,
                                30.0, -700.0, 700.0])
def test_k3_is_within_a_few_ulp_of_mpmath(lr):
    # lr = logp_ref - logp_policy, with one of the two 0 so that lr is exact
    lp, lq = (0.0, lr) if lr <= 0 else (-lr, 0.0)
    got = float(rlhf.kl_estimates(lp, lq)["k3"])
    x = mpmath.mpf(lr)
    want = float(mpmath.expm1(x) - x)
    assert got == pytest.approx(want, rel=4 * EPS64, abs=1e-320)
    assert got >= 0


def test_expm1_minus_lr_alone_cancels_for_small_ratios():
    """The labelled bad example: expm1(l) - l keeps only ten digits at l = 1e-6 (and exp(l) - 1 - l none)."""
    lr = 1e-6
    want = float(mpmath.expm1(mpmath.mpf(lr)) - mpmath.mpf(lr))
    plain = float(np.expm1(lr) - lr)
    assert abs(plain - want) / want > 1e-12
    assert abs((math.exp(lr) - 1 - lr) - want) / want > 1e-5
    got = float(rlhf.kl_estimates(-lr, 0.0)["k3"])
    assert abs(got - want) / want <= 2 * EPS64


@given(lp=hnp.arrays(np.float64, st.integers(1, 20), elements=S.logps), data=st.data())
def test_k2_and_k3_are_never_negative(lp, data):
    lq = data.draw(hnp.arrays(np.float64, lp.size, elements=S.logps))
    k = rlhf.kl_estimates(lp, lq)
    assert np.all(k["k2"] >= 0) and np.all(k["k3"] >= 0)
    assert np.all(np.isfinite(k["k3"]))  # log ratios here are at most 500: e^500 is finite
    np.testing.assert_array_equal(k["k1"], lp - lq)


def _exact_moments(values: np.ndarray) -> tuple[float, float]:
    """Mean and variance of f(y), y ~ P, from the K per-response values."""
    mean = math.fsum(P * values)
    return mean, math.fsum(P * (values - mean) ** 2)


def test_monte_carlo_k1_and_k3_are_unbiased_and_k2_is_biased():
    kl = float(rlhf.categorical_kl(P, Q))
    per_response = rlhf.kl_estimates(np.log(P), np.log(Q))
    n = 400_000
    y = np.random.default_rng(20240611).choice(P.size, size=n, p=P)
    sample = rlhf.kl_estimates(np.log(P)[y], np.log(Q)[y])
    for name in ("k1", "k2", "k3"):
        mean, var = _exact_moments(per_response[name])
        se = math.sqrt(var / n)
        assert abs(float(np.mean(sample[name])) - mean) < 5 * se, name  # the sample agrees with its own expectation
        if name in ("k1", "k3"):
            assert mean == pytest.approx(kl, rel=1e-13), name  # ... which is the KL: unbiased
            assert abs(float(np.mean(sample[name])) - kl) < 5 * se, name
        else:
            assert mean - kl > 50 * se  # k2 is biased, far beyond sampling error
            assert abs(float(np.mean(sample[name])) - kl) > 20 * se
    assert np.any(sample["k1"] < 0)  # one sample of k1 is negative wherever pi_ref(y) > pi(y)
    assert np.all(sample["k3"] >= 0) and np.all(sample["k2"] >= 0)


def test_k2_is_exact_only_to_second_order():
    """Near the reference the three expectations agree: KL ~ E[k2] ~ (1/2) chi^2 for small perturbations."""
    for t in (1e-1, 1e-2, 1e-3):
        p = Q * np.exp(t * np.array([1.0, -1.0, 0.5, 0.0, -0.5, 0.3]))
        p /= p.sum()
        kl = float(rlhf.categorical_kl(p, Q))
        e_k2 = math.fsum(p * rlhf.kl_estimates(np.log(p), np.log(Q))["k2"])
        assert abs(e_k2 - kl) < 5 * t * kl  # relative bias O(t)


@pytest.mark.parametrize("kwargs, error, match", [
    (dict(logp_policy=[-1.0, -2.0], logp_ref=[-1.0]), ValueError,
     r"^logp_policy and logp_ref must have the same shape, got \(2,\) and \(1,\)"),
    (dict(logp_policy=[0.5], logp_ref=[-1.0]), ValueError, r"^logp_policy must be log-probabilities \(<= 0\)"),
    (dict(logp_policy=[-1.0], logp_ref=[0.1]), ValueError, r"^logp_ref must be log-probabilities \(<= 0\)"),
    (dict(logp_policy=[math.nan], logp_ref=[-1.0]), ValueError, r"^logp_policy must be finite"),
    (dict(logp_policy=[-1.0], logp_ref=[-math.inf]), ValueError, r"^logp_ref must be finite"),
    (dict(logp_policy=[], logp_ref=[]), ValueError, r"^logp_policy is empty"),
    (dict(logp_policy="x", logp_ref=[-1.0]), TypeError, r"^logp_policy must be a real number"),
])
def test_kl_estimates_bad_input(kwargs, error, match):
    with pytest.raises(error, match=match):
        rlhf.kl_estimates(**kwargs)


# ---------------------------------------------------------------- the adaptive KL controller


def test_controller_pinned_sequence():
    ctl = rlhf.AdaptiveKLController(init_beta=0.1, target=6.0, horizon=10000)
    assert ctl.value == 0.1
    steps = [(12.0, 256), (6.0, 256), (3.0, 256), (6.6, 1000), (0.0, 5000), (600.0, 0)]
    # the clipped errors by hand: +0.2 (clip of +1), 0, -0.2 (clip of -0.5), +0.1, -0.2 (clip of -1), n = 0
    errors = [Fraction(1, 5), Fraction(0), Fraction(-1, 5), Fraction(1, 10), Fraction(-1, 5), Fraction(1, 5)]
    beta = Fraction(1, 10)
    expected = []
    for (_, n), e in zip(steps, errors):
        beta *= 1 + e * n / 10000
        expected.append(float(beta))
    got = [ctl.update(kl, n) for kl, n in steps]
    np.testing.assert_allclose(got, expected, rtol=1e-14)
    np.testing.assert_allclose(got, [0.100512, 0.100512, 0.09999737856, 0.1009973523456, 0.09089761711104,
                                     0.09089761711104], rtol=1e-14)
    assert ctl.value == got[-1]


@pytest.mark.parametrize("kl", [7.2001, 12.0, 1e6])
def test_controller_clips_a_large_kl_at_plus_one_fifth(kl):
    ctl = rlhf.AdaptiveKLController(1.0, 6.0, 1000)
    assert ctl.update(kl, 100) == pytest.approx(1.0 + 0.2 * 100 / 1000, rel=1e-15)


@pytest.mark.parametrize("kl", [4.7999, 1.0, 0.0, -0.5])
def test_controller_clips_a_small_kl_at_minus_one_fifth(kl):
    ctl = rlhf.AdaptiveKLController(1.0, 6.0, 1000)
    assert ctl.update(kl, 100) == pytest.approx(1.0 - 0.2 * 100 / 1000, rel=1e-15)


@pytest.mark.parametrize("kl, error", [(6.6, 0.1), (5.4, -0.1), (6.0, 0.0), (7.0, 1 / 6)])
def test_controller_step_is_proportional_inside_the_band(kl, error):
    ctl = rlhf.AdaptiveKLController(1.0, 6.0, 1000)
    assert ctl.update(kl, 100) == pytest.approx(1.0 + error * 0.1, rel=1e-14)


def test_controller_steers_kl_toward_the_target():
    """A toy policy whose KL falls as 1/beta: the controller's beta settles where the KL hits the target."""
    ctl = rlhf.AdaptiveKLController(0.01, target=2.0, horizon=500)
    for _ in range(3000):
        ctl.update(0.05 / ctl.value, 64)  # KL(beta) = 0.05 / beta, so the target needs beta = 0.025
    assert ctl.value == pytest.approx(0.025, rel=1e-3)


@pytest.mark.parametrize("kwargs, match", [
    (dict(init_beta=0.0, target=6.0, horizon=10000), r"^init_beta must be a finite number > 0, got 0.0"),
    (dict(init_beta=-0.1, target=6.0, horizon=10000), r"^init_beta must be a finite number > 0, got -0.1"),
    (dict(init_beta=math.nan, target=6.0, horizon=10000), r"^init_beta must be a finite number > 0, got nan"),
    (dict(init_beta=0.1, target=0.0, horizon=10000), r"^target must be a finite number > 0, got 0.0"),
    (dict(init_beta=0.1, target=-6.0, horizon=10000), r"^target must be a finite number > 0, got -6.0"),
    (dict(init_beta=0.1, target=6.0, horizon=0), r"^horizon must be a finite number > 0, got 0.0"),
    (dict(init_beta=0.1, target=6.0, horizon=-5), r"^horizon must be a finite number > 0, got -5.0"),
    (dict(init_beta=0.1, target=math.inf, horizon=5), r"^target must be a finite number > 0, got inf"),
])
def test_controller_bad_construction(kwargs, match):
    with pytest.raises(ValueError, match=match):
        rlhf.AdaptiveKLController(**kwargs)


@pytest.mark.parametrize("args, match", [
    ((6.0, -1), r"^n_steps must be an integer >= 0, got int -1"),
    ((6.0, 1.5), r"^n_steps must be an integer >= 0, got float 1.5"),
    ((6.0, True), r"^n_steps must be an integer >= 0, got bool True"),
    ((math.nan, 10), r"^current_kl must be a single finite number, got float nan"),
    ((math.inf, 10), r"^current_kl must be a single finite number, got float inf"),
    (([1.0, 2.0], 10), r"^current_kl must be a single finite number"),
    ((0.0, 50000), r"^n_steps=50000 with horizon=10000.0 would scale beta by 0.0 <= 0"),
])
def test_controller_bad_update(args, match):
    ctl = rlhf.AdaptiveKLController(0.1, 6.0, 10000)
    with pytest.raises(ValueError, match=match):
        ctl.update(*args)
    assert ctl.value == 0.1  # a refused update changes nothing


@pytest.mark.parametrize("eps", [0.1, 0.2, 0.3, 0.7])
def test_clip_fraction_does_not_count_a_ratio_exactly_on_the_edge(eps):
    """rho = 1 +- eps as computed is where np.clip leaves it alone: not clipped (|1.3 - 1| > 0.3 in floats)."""
    edges = np.array([1.0 - eps, 1.0 + eps])
    assert rlhf.clip_fraction(edges, eps) == 0.0
    assert rlhf.clip_fraction(np.nextafter(edges, [0.0, 2.0]), eps) == 1.0
    # the same samples ppo_clip_loss treats as unclipped: its value is -A*rho there
    assert rlhf.ppo_clip_loss(edges, np.array([1.0, 1.0]), eps) == -edges.mean()
