"""Bad input raises an error that names the argument and what was wrong; NaN is documented."""

from __future__ import annotations

import math

import numpy as np
import pytest

from _impls import IMPLS, as_np

pytestmark = pytest.mark.parametrize("rm", IMPLS)

PAIR_FUNCTIONS = ["ranking_loss", "ranking_loss_grad", "preference_probability", "ranking_accuracy"]


@pytest.mark.parametrize("name", PAIR_FUNCTIONS)
def test_mismatched_shapes_name_both_arguments_and_shapes(rm, name):
    with pytest.raises(ValueError, match=r"must have the same shape, got r_\w+ \(3,\) and r_\w+ \(2,\)"):
        getattr(rm, name)([1.0, 2.0, 3.0], [1.0, 2.0])


@pytest.mark.parametrize("name", PAIR_FUNCTIONS)
def test_empty_batch(rm, name):
    with pytest.raises(ValueError, match=r"empty batch \(shape \(0,\)\)"):
        getattr(rm, name)([], [])


def test_two_dimensional_pairs_are_refused(rm):
    with pytest.raises(ValueError, match=r"r_pref must be a scalar or a 1-D batch of shape \(B,\), got shape \(2, 2\)"):
        rm.ranking_loss([[1.0, 2.0], [3.0, 4.0]], [[1.0, 2.0], [3.0, 4.0]])


@pytest.mark.parametrize("weights, message", [
    ([1.0, -2.0], r"weights must be >= 0, got negative weight\(s\) \[-2.0\]"),
    ([0.0, 0.0], r"weights are all zero"),
    ([1.0, float("nan")], r"weights must be finite"),
    ([1.0, 2.0, 3.0], r"weights must have the shape of r_pref \(2,\), got shape \(3,\)"),
])
@pytest.mark.parametrize("name", ["ranking_loss", "ranking_loss_grad"])
def test_bad_weights(rm, name, weights, message):
    with pytest.raises(ValueError, match=message):
        getattr(rm, name)([1.0, 2.0], [0.0, 0.0], weights=weights)


@pytest.mark.parametrize("bad", ["abc", None, [1.0, "x"], [[1.0], [2.0, 3.0]], np.array([True, False]), 1 + 2j, object()])
def test_non_numeric_rewards_are_a_type_error_naming_the_argument(rm, bad):
    with pytest.raises(TypeError, match=r"^r_rej must be a real number"):
        rm.ranking_loss([1.0, 2.0], bad)


def test_non_numeric_margin_and_coef(rm):
    with pytest.raises(TypeError, match=r"^margin must be a real number"):
        rm.ranking_loss(1.0, 0.0, margin="big")
    with pytest.raises(TypeError, match=r"^coef must be a real number"):
        rm.regularized_ranking_loss(1.0, 0.0, coef="0.1")
    with pytest.raises(ValueError, match=r"margin must be a scalar or have the shape of r_pref \(2,\), got shape \(3,\)"):
        rm.ranking_loss([1.0, 2.0], [0.0, 0.0], margin=[1.0, 2.0, 3.0])


@pytest.mark.parametrize("reduction", ["avg", "MEAN", None, 1])
@pytest.mark.parametrize("name", ["ranking_loss", "ranking_loss_grad", "listwise_ranking_loss"])
def test_unknown_reduction(rm, name, reduction):
    args = ([1.0, 0.0],) if name == "listwise_ranking_loss" else (1.0, 0.0)
    with pytest.raises(ValueError, match=r"reduction must be one of 'mean', 'sum' or 'none', got"):
        getattr(rm, name)(*args, reduction=reduction)


def test_negative_coef_explains_the_erratum(rm):
    with pytest.raises(ValueError, match=r"coef must be >= 0, got -0.01.*erratum"):
        rm.regularized_ranking_loss([1.0], [0.0], -0.01)
    with pytest.raises(ValueError, match=r"coef must be finite"):
        rm.regularized_ranking_loss([1.0], [0.0], float("inf"))


@pytest.mark.parametrize("p", [1.5, -0.1, float("nan")])
def test_soft_labels_must_be_probabilities(rm, p):
    with pytest.raises(ValueError, match=r"p must be a probability in \[0, 1\]"):
        rm.soft_ranking_loss([1.0, 2.0], [0.0, 0.0], [0.5, p])


@pytest.mark.parametrize("rewards, message", [
    ([1.0], r"at least 2 ranked responses per prompt \(N >= 2\), got shape \(1,\)"),
    (np.zeros((0, 3)), r"empty batch"),
    (np.zeros((2, 2, 2)), r"shape \(N,\) for one prompt or \(B, N\) for a batch, got shape \(2, 2, 2\)"),
    (3.0, r"got shape \(\)"),
])
@pytest.mark.parametrize("name", ["listwise_ranking_loss", "plackett_luce_loss"])
def test_bad_ranked_lists(rm, name, rewards, message):
    with pytest.raises(ValueError, match=message):
        getattr(rm, name)(rewards)


def test_bad_center_rewards(rm):
    with pytest.raises(ValueError, match=r"r must have shape \(N,\) or \(B, N\)"):
        rm.center_rewards(2.0)


def test_nan_rewards_give_nan_never_a_number(rm):
    """Documented: NaN propagates to its pair and to every mean or sum over it."""
    a, b = [1.0, math.nan, 3.0], [0.0, 0.0, 0.0]
    per = as_np(rm.ranking_loss(a, b, reduction="none"))
    assert np.isnan(per[1]) and np.isfinite(per[[0, 2]]).all()
    assert np.isnan(as_np(rm.ranking_loss(a, b)))
    assert all(np.isnan(as_np(g)[1]) for g in rm.ranking_loss_grad(a, b, reduction="none"))
    assert np.isnan(as_np(rm.preference_probability(a, b))[1])
    assert np.isnan(as_np(rm.ranking_accuracy(a, b)))
    assert np.isnan(as_np(rm.listwise_ranking_loss([1.0, math.nan, 0.0])))

