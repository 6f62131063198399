"""Pins of statements the course notebooks make: each number here is printed or claimed in a notebook.

If one of these fails, the notebook's prose is wrong, not only the code.
"""

from __future__ import annotations

import math

import numpy as np
import pytest

from rmteach import naive
from rmteach import numpy as rm
from rmteach import rlhf


# --------------------------------------------------------------------------
# notebook 02 "The stable form", rmteach/naive.py: where the typed-in formulas break


@pytest.mark.parametrize("dtype, finite_at, inf_at", [
    (np.float64, -709.78, -709.79),
    (np.float32, -88.72, -88.73),
])
def test_typed_in_loss_is_inf_where_exp_overflows(dtype, finite_at, inf_at):
    zero = dtype(0)
    assert np.isfinite(naive.naive_ranking_loss(dtype(finite_at), zero))
    assert np.isinf(naive.naive_ranking_loss(dtype(inf_at), zero))
    # the threshold is ln(largest float): exp(-d) overflows, not exp(d) underflowing
    assert -finite_at < math.log(np.finfo(dtype).max) < -inf_at
    assert np.isfinite(rm.ranking_loss(dtype(inf_at), zero))


def test_the_often_quoted_745_and_104_are_underflow_of_e_to_the_delta():
    with np.errstate(under="ignore"):
        assert np.exp(-745.2) == 0.0 and np.exp(-745.1) > 0
        assert np.exp(np.float32(-104.0)) == 0.0 and np.exp(np.float32(-103.9)) > 0
    # and the typed-in loss is already inf well before them
    assert np.isinf(naive.naive_ranking_loss(-720.0, 0.0))
    assert np.isinf(naive.naive_ranking_loss(np.float32(-95.0), np.float32(0.0)))


@pytest.mark.parametrize("dtype, nonzero_at, zero_at, bits", [
    (np.float64, 36.73, 36.74, 53),
    (np.float32, 16.63, 16.64, 24),
])
def test_typed_in_loss_is_exactly_zero_past_the_rounding_point(dtype, nonzero_at, zero_at, bits):
    zero = dtype(0)
    assert naive.naive_ranking_loss(dtype(nonzero_at), zero) > 0
    assert naive.naive_ranking_loss(dtype(zero_at), zero) == 0
    assert nonzero_at < bits * math.log(2) < zero_at  # 1 + e^{-d} rounds to 1 once e^{-d} < 2^-bits
    assert rm.ranking_loss(dtype(zero_at), zero) > 0


def test_loss_at_50_typed_in_versus_stable():
    assert naive.naive_ranking_loss(50.0, 0.0) == 0.0
    assert str(naive.naive_ranking_loss(50.0, 0.0)) == "-0.0"
    assert rm.ranking_loss(50.0, 0.0) == pytest.approx(math.exp(-50.0), rel=1e-15)
    assert f"{rm.ranking_loss(50.0, 0.0):.3g}" == "1.93e-22"


def test_typed_in_probability_underflows_to_nan():
    assert np.isnan(naive.naive_preference_probability(-800.0, -801.0))
    assert np.isnan(naive.naive_preference_probability(800.0, 799.0))
    assert naive.naive_preference_probability(-745.13, -746.13) == 1.0  # subnormal: all digits lost
    assert rm.preference_probability(-800.0, -801.0) == rm.preference_probability(1.0, 0.0)


# --------------------------------------------------------------------------
# notebook 02 "Chance level": loss and accuracy come apart


def test_over_confident_model_is_above_ln2_at_90_percent_accuracy():
    d = np.array([1.0] * 9 + [-6.0])
    loss = rm.ranking_loss(d, np.zeros_like(d))
    assert rm.ranking_accuracy(d, np.zeros_like(d)) == 0.9
    assert round(loss, 2) == 0.88 and loss > math.log(2)
    assert loss == pytest.approx((9 * math.log1p(math.exp(-1.0)) + math.log1p(math.exp(6.0))) / 10, rel=1e-15)


# --------------------------------------------------------------------------
# notebook 01: a constant per prompt


def test_a_different_shift_per_prompt_leaves_the_loss_unchanged():
    r_pref = np.array([2.0, 0.5, 1.0, -1.0])
    r_rej = np.array([1.0, 1.5, 0.0, -3.0])
    prompt = np.array([0, 0, 1, 1])
    c = np.where(prompt == 0, 100.0, -7.0)  # c(x): one constant for each prompt
    assert rm.ranking_loss(r_pref + c, r_rej + c) == pytest.approx(rm.ranking_loss(r_pref, r_rej), rel=1e-15)


def test_sigma_10_is_not_1():
    assert f"{rm.preference_probability(10.0, 0.0):.6f}" == "0.999955"


# --------------------------------------------------------------------------
# notebook 05: Plackett-Luce, weights, the common shift


def test_plackett_luce_penalizes_the_bottom_swap_more_at_equal_gaps():
    r = np.array([3.0, 2.0, 1.0, 0.0])
    base = rm.plackett_luce_loss(r)
    top = rm.plackett_luce_loss(r[[1, 0, 2, 3]])
    bottom = rm.plackett_luce_loss(r[[0, 1, 3, 2]])
    assert (round(top, 2), round(bottom, 2)) == (1.92, 2.16)
    # a swap of adjacent positions k, k+1 across gap g costs log((e^{r_k} + T)/(e^{r_{k+1}} + T)) < g, T the rest
    assert bottom - base == pytest.approx(1.0, rel=1e-14)  # at the bottom T = 0: exactly the gap
    assert top - base == pytest.approx(math.log((math.e**3 + math.e + 1) / (math.e**2 + math.e + 1)), rel=1e-13)
    # the list-wise loss is blind to the position: every adjacent swap costs g / C(N, 2)
    lw = rm.listwise_ranking_loss
    assert lw(r[[1, 0, 2, 3]]) - lw(r) == pytest.approx(1.0 / 6, rel=1e-13)
    assert lw(r[[0, 1, 3, 2]]) - lw(r) == pytest.approx(1.0 / 6, rel=1e-13)


def test_plackett_luce_per_position_versus_listwise():
    r = np.array([2.0, 1.0, 0.5, -1.0])
    assert round(rm.plackett_luce_loss(r), 6) == 1.251552 and round(rm.listwise_ranking_loss(r), 6) == 0.227613
    assert round(rm.plackett_luce_loss(r) / 3, 4) == 0.4172


def test_a_uniform_weight_changes_nothing():
    r_pref, r_rej = np.array([1.0, 0.0]), np.array([0.0, 0.5])
    assert rm.ranking_loss(r_pref, r_rej, weights=np.array([2 / 3, 2 / 3])) == pytest.approx(
        rm.ranking_loss(r_pref, r_rej), rel=1e-15)


def test_best_common_shift_leaves_a_penalty_per_pair_centring_removes_it():
    r_pref, r_rej, coef = np.array([2.0, 0.5]), np.array([1.0, -0.5]), 0.01
    c = -np.mean(r_pref + r_rej) / 2
    assert c == -0.75
    penalty = rm.regularized_ranking_loss(r_pref + c, r_rej + c, coef) - rm.ranking_loss(r_pref + c, r_rej + c)
    assert penalty == pytest.approx(0.0225, rel=1e-12)
    centred = rm.center_rewards(np.stack([r_pref, r_rej], axis=1))
    assert rm.regularized_ranking_loss(centred[:, 0], centred[:, 1], coef) == rm.ranking_loss(centred[:, 0], centred[:, 1])


# --------------------------------------------------------------------------
# notebook 06


REF = np.array([0.20, 0.30, 0.25, 0.05, 0.20])
RM_SCORE = np.array([2.5, 1.0, 0.0, 4.0, -2.0])
HUMAN = np.array([2.5, 1.0, 0.0, -1.5, -2.0])


def test_onpolicy_accuracy_alarm_fires_at_step_5_for_every_beta():
    for b in np.arange(0.0, 3.01, 0.1):
        run = rlhf.simulate_kl_regularized_training(REF, RM_SCORE, HUMAN, beta=float(b), lr=1.0, steps=80)
        assert rlhf.reward_hacking_onset(run["proxy_reward"], run["heldout_accuracy"], window=5, tol=0.02) == 5


def test_a_scale_drift_is_a_change_of_beta_on_the_same_responses():
    np.testing.assert_allclose(rlhf.kl_regularized_policy(REF, 0.8 + 1.5 * RM_SCORE, 1.0),
                               rlhf.kl_regularized_policy(REF, RM_SCORE, 1 / 1.5), rtol=1e-12)


def test_a_loss_below_ln2_at_40_percent_accuracy():
    d = np.array([-0.1] * 6 + [10.0] * 4)
    assert rm.ranking_accuracy(d, 0 * d) == 0.4
    assert round(rm.ranking_loss(d, 0 * d), 4) == 0.4467 < math.log(2)


def test_notebook_03_linear_example_gap():
    from rmteach import training

    step = training.linear_score_step([1.0, 4.0], [2.0, 0.0], [1.0, 0.5], 1.0)
    assert round(step["new_r_pref"] - step["new_r_rej"], 4) == -0.0862
    assert round(step["new_r_pref"] - step["r_pref"], 4) == 1.4621 and round(step["new_r_rej"] - step["r_rej"], 4) == 0.5483


def test_weighted_disputed_pair_share_in_a_batch():
    plain = rm.ranking_loss_grad(np.array([0.0, 1.0]), np.zeros(2))[0][0]
    weighted = rm.ranking_loss_grad(np.array([0.0, 1.0]), np.zeros(2), weights=np.array([2 / 3, 1.0]))[0][0]
    assert weighted == pytest.approx(0.8 * plain, rel=1e-14) and round(weighted, 4) == -0.2


def test_ties_at_zero_gap():
    from rmteach import training

    assert training.rao_kupper_probabilities(0.0, math.log(2.0))["tie"] == pytest.approx(1 / 3, rel=1e-14)
    assert training.davidson_probabilities(0.0, 1.0)["tie"] == pytest.approx(1 / 3, rel=1e-14)
    assert round(float(training.rao_kupper_probabilities(2.0, math.log(2.0))["tie"]), 4) == 0.1496


def test_onpolicy_accuracy_falls_from_step_one_and_its_best_row_is_the_reference():
    for b in np.arange(0.0, 3.01, 0.1):
        acc = rlhf.simulate_kl_regularized_training(REF, RM_SCORE, HUMAN, beta=float(b), lr=1.0, steps=80)["heldout_accuracy"]
        assert acc[1] < acc[0] and int(np.argmax(acc)) == 0
