"""float64 ranking loss within 1 ulp of the exact value (mpmath at 200 bits)."""

from __future__ import annotations

import mpmath
import numpy as np
import pytest

from _impls import IMPLS, as_np

mpmath.mp.prec = 200


def exact_loss(d: float) -> float:
    """-log sigma(d) = log(1 + e^{-d}), correctly rounded to float64."""
    x = mpmath.mpf(d)
    return float(mpmath.log1p(mpmath.exp(-x)))


def ulps(got: np.ndarray, exact: np.ndarray) -> np.ndarray:
    spacing = np.spacing(np.abs(exact))
    spacing = np.where(spacing > 0, spacing, np.finfo(np.float64).smallest_subnormal)
    return np.abs(got - exact) / spacing


def differences() -> np.ndarray:
    rng = np.random.default_rng(2024)
    return np.concatenate([
        rng.uniform(-700, 700, 4000),
        rng.uniform(-40, 40, 4000),
        rng.uniform(-1, 1, 2000),
        rng.normal(0, 1e-6, 500),
        np.linspace(-700, 700, 1401),  # every integer
        [0.0, -0.0, 5e-324, -5e-324, 1e-300, 36.7368005696771, 37.0, -37.0, 709.0, 700.0, -700.0],
    ])


@pytest.mark.parametrize("rm", IMPLS)
def test_float64_ranking_loss_within_one_ulp_of_mpmath(rm):
    d = differences()
    exact = np.array([exact_loss(x) for x in d])
    # r_pref - r_rej = d exactly when r_rej = 0
    got = as_np(rm.ranking_loss(d, np.zeros_like(d), reduction="none"))
    err = ulps(got, exact)
    worst = int(np.argmax(err))
    assert err.max() <= 1.0, f"{err.max()} ulp at d={d[worst]!r}: got {got[worst]!r}, exact {exact[worst]!r}"
    # and log_sigmoid is its mirror image
    np.testing.assert_array_equal(-as_np(rm.log_sigmoid(d)), got)


@pytest.mark.parametrize("rm", IMPLS)
def test_float64_probability_and_gradient_within_two_ulp_of_mpmath(rm):
    """sigma(d) and d loss / d r_rej = sigma(-d), including the tiny tails (no underflow to 0 early)."""
    d = differences()
    exact_p = np.array([float(1 / (1 + mpmath.exp(-mpmath.mpf(x)))) for x in d])
    exact_g = np.array([float(1 / (1 + mpmath.exp(mpmath.mpf(x)))) for x in d])
    zeros = np.zeros_like(d)
    p = as_np(rm.preference_probability(d, zeros))
    g_pref, g_rej = (as_np(g) for g in rm.ranking_loss_grad(d, zeros, reduction="none"))
    for name, got, exact in (("P", p, exact_p), ("dL/dr_rej", g_rej, exact_g), ("-dL/dr_pref", -g_pref, exact_g)):
        err = ulps(got, exact)
        worst = int(np.argmax(err))
        assert err.max() <= 2.0, f"{name}: {err.max()} ulp at d={d[worst]!r}"
