"""Properties of Bradley-Terry and the ranking loss, for both implementations (hypothesis)."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import strategies as S
from _impls import IMPLS, as_np

pytestmark = pytest.mark.parametrize("rm", IMPLS)


@given(pair=S.reward_pairs(elements=S.wide_rewards))
def test_probabilities_of_the_two_orders_sum_to_one(rm, pair):
    a, b = pair
    total = as_np(rm.preference_probability(a, b)) + as_np(rm.preference_probability(b, a))
    np.testing.assert_allclose(total, 1.0, rtol=0, atol=2**-52)


@given(r=S.wide_rewards)
def test_equal_rewards_give_one_half(rm, r):
    assert as_np(rm.preference_probability(r, r)) == 0.5


@given(pair=S.reward_pairs(elements=S.dyadic), c=S.dyadic)
def test_common_shift_changes_nothing_exactly(rm, pair, c):
    """With dyadic rewards the shifted differences are exact, so the results must be identical."""
    a, b = pair
    assert np.array_equal(as_np(rm.preference_probability(a + c, b + c)), as_np(rm.preference_probability(a, b)))
    assert np.array_equal(
        as_np(rm.ranking_loss(a + c, b + c, reduction="none")), as_np(rm.ranking_loss(a, b, reduction="none"))
    )
    assert as_np(rm.ranking_loss(a + c, b + c)) == as_np(rm.ranking_loss(a, b))


@given(pair=S.reward_pairs(), c=S.shifts)
def test_common_shift_changes_nothing_up_to_rounding(rm, pair, c):
    a, b = pair
    # The shifted difference (a+c)-(b+c) differs from a-b by at most a few ulp of |a|+|b|+|c|.
    tol = 4 * np.finfo(np.float64).eps * (np.abs(a) + np.abs(b) + abs(c))
    np.testing.assert_array_less(
        np.abs(as_np(rm.ranking_loss(a + c, b + c, reduction="none")) - as_np(rm.ranking_loss(a, b, reduction="none"))),
        tol + 1e-300,
    )
    np.testing.assert_array_less(
        np.abs(as_np(rm.preference_probability(a + c, b + c)) - as_np(rm.preference_probability(a, b))),
        tol + 1e-300,
    )


@given(pair=S.reward_pairs(elements=S.wide_rewards))
def test_loss_is_nonnegative_and_finite(rm, pair):
    a, b = pair
    per_pair = as_np(rm.ranking_loss(a, b, reduction="none"))
    assert np.all(per_pair >= 0) and np.all(np.isfinite(per_pair))


@given(d1=S.wide_rewards, d2=S.wide_rewards)
def test_loss_decreases_as_the_preferred_reward_pulls_ahead(rm, d1, d2):
    lo, hi = min(d1, d2), max(d1, d2)
    assert as_np(rm.ranking_loss(lo, 0.0)) >= as_np(rm.ranking_loss(hi, 0.0))


@given(d1=st.floats(-30, 30), gap=st.floats(0.01, 30))
def test_loss_decreases_strictly_where_it_is_resolvable(rm, d1, gap):
    assert as_np(rm.ranking_loss(d1, 0.0)) > as_np(rm.ranking_loss(d1 + gap, 0.0))


@given(a=S.wide_rewards, b=S.wide_rewards)
def test_two_element_listwise_loss_is_the_pairwise_loss(rm, a, b):
    assert as_np(rm.listwise_ranking_loss([a, b])) == as_np(rm.ranking_loss(a, b))


@given(a=S.wide_rewards, b=S.wide_rewards)
def test_two_element_plackett_luce_is_the_pairwise_loss(rm, a, b):
    assert as_np(rm.plackett_luce_loss([a, b])) == as_np(rm.ranking_loss(a, b))


@given(r=S.ranked_lists())
def test_listwise_loss_is_the_mean_of_its_pairs(rm, r):
    i, j = np.triu_indices(r.size, k=1)
    expected = as_np(rm.ranking_loss(r[i], r[j]))
    np.testing.assert_allclose(as_np(rm.listwise_ranking_loss(r)), expected, rtol=1e-13)


@given(r=S.ranked_lists(), c=S.shifts)
def test_centering_keeps_every_pairwise_loss(rm, r, c):
    centred = as_np(rm.center_rewards(r + c))
    assert abs(centred.mean()) <= 1e-12 * (1 + np.abs(r).max() + abs(c))
    i, j = np.triu_indices(r.size, k=1)
    np.testing.assert_allclose(
        as_np(rm.ranking_loss(centred[i], centred[j], reduction="none")),
        as_np(rm.ranking_loss(r[i], r[j], reduction="none")),
        rtol=1e-9,
        atol=1e-9,
    )


@given(pair=S.reward_pairs(), data=st.data())
def test_weighted_mean_is_sum_over_weight_total(rm, pair, data):
    a, b = pair
    w = data.draw(S.positive_weights(a.size))
    mean = as_np(rm.ranking_loss(a, b, weights=w))
    total = as_np(rm.ranking_loss(a, b, weights=w, reduction="sum"))
    np.testing.assert_allclose(mean, total / w.sum(), rtol=1e-12)


@given(pair=S.reward_pairs())
def test_soft_label_one_is_the_hard_loss(rm, pair):
    a, b = pair
    np.testing.assert_array_equal(
        as_np(rm.soft_ranking_loss(a, b, 1.0, reduction="none")), as_np(rm.ranking_loss(a, b, reduction="none"))
    )


@given(pair=S.reward_pairs())
def test_accuracy_counts_strict_wins(rm, pair):
    a, b = pair
    assert as_np(rm.ranking_accuracy(a, b)) == np.mean(a > b)
