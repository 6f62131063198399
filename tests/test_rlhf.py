"""rmteach.rlhf: the KL-penalized reward, the KL-regularized optimum, reward hacking, drift.

Reference values come from independent computations (mpmath at 50 digits,
scipy, brute-force loops, central differences), never from the code under test.
"""

import math
import subprocess
import sys

import mpmath
import numpy as np
import pytest
from scipy.stats import entropy

from rmteach import rlhf

mpmath.mp.dps = 50

REF = np.array([0.2, 0.3, 0.25, 0.05, 0.2])
PROXY = np.array([2.5, 1.0, 0.0, 4.0, -2.0])  # the reward model over-rates response 3
TRUE = np.array([2.5, 1.0, 0.0, -1.5, -2.0])


def test_import_does_not_import_torch():
    code = "import sys, rmteach.rlhf; assert 'torch' not in sys.modules, 'torch imported'"
    subprocess.run([sys.executable, "-c", code], check=True)


# --------------------------------------------------------------------------
# KL-penalized reward


def test_kl_penalized_reward_pinned():
    # log ratio per token: (-1 + 1.5) + (-2 + 1) = -0.5, so R = 1 - 0.1 * (-0.5) = 1.05
    got = rlhf.kl_penalized_reward(1.0, [-1.0, -2.0], [-1.5, -1.0], 0.1)
    assert got == pytest.approx(1.05, rel=1e-15)
    assert np.ndim(got) == 0


def test_kl_penalized_reward_batch_matches_mpmath():
    rng = np.random.default_rng(0)
    lp = -rng.exponential(size=(4, 7))
    lr = -rng.exponential(size=(4, 7))
    r = rng.normal(size=4)
    got = rlhf.kl_penalized_reward(r, lp, lr, 0.05)
    for i in range(4):
        want = mpmath.mpf(r[i]) - mpmath.mpf(0.05) * mpmath.fsum(
            mpmath.mpf(a) - mpmath.mpf(b) for a, b in zip(lp[i], lr[i])
        )
        assert got[i] == pytest.approx(float(want), rel=1e-14)


def test_beta_zero_is_the_raw_reward_and_equal_logprobs_cost_nothing():
    assert rlhf.kl_penalized_reward(2.5, [-3.0, -0.1], [-1.0, -1.0], 0.0) == 2.5
    assert rlhf.kl_penalized_reward(2.5, [-3.0, -0.1], [-3.0, -0.1], 7.0) == 2.5


def test_per_token_rewards_sum_to_the_sequence_reward():
    rng = np.random.default_rng(1)
    lp = -rng.exponential(size=(3, 5))
    lr = -rng.exponential(size=(3, 5))
    r = np.array([1.0, -2.0, 0.5])
    tok = rlhf.per_token_kl_rewards(r, lp, lr, 0.2)
    assert tok.shape == (3, 5)
    np.testing.assert_allclose(tok.sum(axis=1), rlhf.kl_penalized_reward(r, lp, lr, 0.2), rtol=1e-14)
    # the reward model's score arrives only at the last token
    np.testing.assert_allclose(tok[:, :-1], -0.2 * (lp - lr)[:, :-1], rtol=1e-15)
    np.testing.assert_allclose(tok[:, -1], r - 0.2 * (lp - lr)[:, -1], rtol=1e-15)


@pytest.mark.parametrize(
    "kwargs, match",
    [
        (dict(reward=1.0, logprob_policy=[-1.0], logprob_ref=[-1.0], beta=-0.1), "beta"),
        (dict(reward=1.0, logprob_policy=[0.5], logprob_ref=[-1.0], beta=0.1), "logprob_policy"),
        (dict(reward=1.0, logprob_policy=[-1.0], logprob_ref=[-1.0, -2.0], beta=0.1), "same shape"),
        (dict(reward=[1.0, 2.0], logprob_policy=[-1.0], logprob_ref=[-1.0], beta=0.1), "reward"),
        (dict(reward=1.0, logprob_policy=[-np.inf], logprob_ref=[-1.0], beta=0.1), "logprob_policy"),
        (dict(reward=1.0, logprob_policy=[], logprob_ref=[], beta=0.1), "logprob_policy"),
    ],
)
def test_kl_penalized_reward_bad_input_names_the_argument(kwargs, match):
    with pytest.raises(ValueError, match=match):
        rlhf.kl_penalized_reward(**kwargs)


def test_bad_type_names_the_argument():
    with pytest.raises(TypeError, match="reward"):
        rlhf.kl_penalized_reward("high", [-1.0], [-1.0], 0.1)


# --------------------------------------------------------------------------
# categorical KL and the KL-regularized optimum


def test_categorical_kl_matches_scipy_and_handles_zeros():
    p = np.array([0.1, 0.6, 0.3])
    q = np.array([0.3, 0.3, 0.4])
    assert rlhf.categorical_kl(p, q) == pytest.approx(entropy(p, q), rel=1e-14)
    assert rlhf.categorical_kl([0.0, 1.0], [0.5, 0.5]) == pytest.approx(math.log(2), rel=1e-15)
    assert rlhf.categorical_kl([0.5, 0.5], [1.0, 0.0]) == np.inf
    assert rlhf.categorical_kl(q, q) == 0.0


def test_categorical_kl_rejects_non_distributions():
    with pytest.raises(ValueError, match="p must sum to 1"):
        rlhf.categorical_kl([0.5, 0.6], [0.5, 0.5])
    with pytest.raises(ValueError, match="q must be >= 0"):
        rlhf.categorical_kl([0.5, 0.5], [1.5, -0.5])


def test_kl_regularized_policy_matches_mpmath():
    beta = 0.7
    got = rlhf.kl_regularized_policy(REF, PROXY, beta)
    w = [mpmath.mpf(p) * mpmath.exp(mpmath.mpf(r) / mpmath.mpf(beta)) for p, r in zip(REF, PROXY)]
    z = mpmath.fsum(w)
    np.testing.assert_allclose(got, [float(x / z) for x in w], rtol=1e-14)


def test_kl_regularized_policy_is_the_maximizer():
    beta = 0.7
    star = rlhf.kl_regularized_policy(REF, PROXY, beta)

    def objective(pi):
        return float(pi @ PROXY) - beta * float(rlhf.categorical_kl(pi, REF))

    best = objective(star)
    rng = np.random.default_rng(2)
    for _ in range(200):
        other = rng.dirichlet(np.ones(5))
        assert objective(other) <= best + 1e-12
        near = star * np.exp(0.01 * rng.normal(size=5))
        assert objective(near / near.sum()) <= best + 1e-12


def test_shift_changes_nothing_and_scale_acts_like_dividing_beta():
    base = rlhf.kl_regularized_policy(REF, PROXY, 0.8)
    np.testing.assert_allclose(rlhf.kl_regularized_policy(REF, PROXY + 100.0, 0.8), base, rtol=1e-12)
    np.testing.assert_allclose(
        rlhf.kl_regularized_policy(REF, 2.0 * PROXY, 0.8), rlhf.kl_regularized_policy(REF, PROXY, 0.4), rtol=1e-14
    )


def test_kl_regularized_policy_limits_and_extremes():
    # large beta stays at the reference, tiny beta puts everything on the best response
    np.testing.assert_allclose(rlhf.kl_regularized_policy(REF, PROXY, 1e9), REF, rtol=1e-8)
    tiny = rlhf.kl_regularized_policy(REF, PROXY, 1e-3)
    assert tiny[3] == pytest.approx(1.0, abs=1e-12)
    assert np.all(np.isfinite(rlhf.kl_regularized_policy(REF, 1000 * PROXY, 1e-3)))
    # a response the reference never produces keeps probability 0
    ref0 = np.array([0.5, 0.5, 0.0])
    assert rlhf.kl_regularized_policy(ref0, [0.0, 1.0, 50.0], 0.1)[2] == 0.0


def test_kl_regularized_policy_bad_beta():
    with pytest.raises(ValueError, match="beta must be a finite number > 0"):
        rlhf.kl_regularized_policy(REF, PROXY, 0.0)
    with pytest.raises(ValueError, match="reward must have the shape of ref_probs"):
        rlhf.kl_regularized_policy(REF, PROXY[:3], 1.0)


def test_beta_tradeoff_is_monotone_and_agrees_with_the_pieces():
    betas = np.geomspace(0.05, 50, 25)
    t = rlhf.beta_tradeoff(REF, PROXY, TRUE, betas)
    assert np.all(np.diff(t["kl"]) < 0)
    assert np.all(np.diff(t["proxy_reward"]) < 0)
    pi = rlhf.kl_regularized_policy(REF, PROXY, betas[7])
    assert t["true_reward"][7] == pytest.approx(float(pi @ TRUE), rel=1e-13)
    # Goodhart: the true quality peaks at an intermediate beta and falls below the reference at small beta
    peak = int(np.argmax(t["true_reward"]))
    assert 0 < peak < len(betas) - 1
    assert t["true_reward"][0] < float(REF @ TRUE)
    with pytest.raises(ValueError, match="betas"):
        rlhf.beta_tradeoff(REF, PROXY, TRUE, [1.0, -1.0])


def test_beta_for_kl_budget_hits_the_budget():
    for budget in (0.05, 0.3, 1.0, 2.5):
        beta = rlhf.beta_for_kl_budget(REF, PROXY, budget)
        kl = float(rlhf.categorical_kl(rlhf.kl_regularized_policy(REF, PROXY, beta), REF))
        assert kl <= budget
        assert kl == pytest.approx(budget, rel=1e-8)
        smaller = beta * (1 - 1e-6)
        assert float(rlhf.categorical_kl(rlhf.kl_regularized_policy(REF, PROXY, smaller), REF)) > budget
    # the beta -> 0 limit (all mass on response 3) costs log(1/0.05) nats; a larger budget needs no penalty
    assert rlhf.beta_for_kl_budget(REF, PROXY, math.log(20) + 1e-9) == 0.0
    with pytest.raises(ValueError, match="kl_budget"):
        rlhf.beta_for_kl_budget(REF, PROXY, 0.0)


# --------------------------------------------------------------------------
# reward hacking


def _accuracy_brute_force(pi, rhat, rstar):
    num = den = 0.0
    for j in range(len(pi)):
        for k in range(j + 1, len(pi)):
            w = pi[j] * pi[k]
            den += w
            if rhat[j] > rhat[k]:
                num += w / (1 + math.exp(-(rstar[j] - rstar[k])))
            elif rhat[k] > rhat[j]:
                num += w / (1 + math.exp(-(rstar[k] - rstar[j])))
    return num / den


def test_heldout_accuracy_two_responses():
    s2 = 1 / (1 + math.exp(-2.0))
    assert rlhf.heldout_preference_accuracy([0.5, 0.5], [1.0, 0.0], [2.0, 0.0]) == pytest.approx(s2, rel=1e-15)
    assert rlhf.heldout_preference_accuracy([0.5, 0.5], [0.0, 1.0], [2.0, 0.0]) == pytest.approx(1 - s2, rel=1e-14)
    assert rlhf.heldout_preference_accuracy([0.5, 0.5], [1.0, 1.0], [2.0, 0.0]) == 0.0  # a tie is wrong
    assert np.isnan(rlhf.heldout_preference_accuracy([1.0, 0.0], [1.0, 0.0], [2.0, 0.0]))


def test_heldout_accuracy_matches_brute_force():
    rng = np.random.default_rng(3)
    for _ in range(20):
        pi = rng.dirichlet(np.ones(6))
        rhat, rstar = rng.normal(size=6), rng.normal(size=6)
        got = rlhf.heldout_preference_accuracy(pi, rhat, rstar)
        assert got == pytest.approx(_accuracy_brute_force(pi, rhat, rstar), rel=1e-13)


def test_simulated_update_is_the_exact_gradient():
    beta, lr = 0.5, 1e-3
    log = rlhf.simulate_kl_regularized_training(REF, PROXY, TRUE, beta, lr=lr, steps=1)
    np.testing.assert_allclose(log["probs"][0], REF, rtol=1e-14)

    def objective(theta):
        pi = np.exp(theta - theta.max())
        pi /= pi.sum()
        return float(pi @ PROXY) - beta * float(rlhf.categorical_kl(pi, REF))

    theta0 = np.log(REF)
    eps = 1e-6
    grad = np.array(
        [(objective(theta0 + eps * e) - objective(theta0 - eps * e)) / (2 * eps) for e in np.eye(5)]
    )
    theta1 = theta0 + lr * grad
    pi1 = np.exp(theta1 - theta1.max())
    np.testing.assert_allclose(log["probs"][1], pi1 / pi1.sum(), rtol=1e-9)


def test_simulation_converges_to_the_closed_form():
    log = rlhf.simulate_kl_regularized_training(REF, PROXY, TRUE, 2.0, lr=1.0, steps=400)
    np.testing.assert_allclose(log["probs"][-1], rlhf.kl_regularized_policy(REF, PROXY, 2.0), atol=1e-8)
    assert set(log) == {"step", "proxy_reward", "true_reward", "kl", "heldout_accuracy", "human_win_rate", "probs"}
    assert log["step"].tolist() == list(range(401))


def test_reward_hacking_shows_in_the_log_without_a_kl_penalty():
    log = rlhf.simulate_kl_regularized_training(REF, PROXY, TRUE, 0.0, lr=1.0, steps=80)
    proxy, true, acc = log["proxy_reward"], log["true_reward"], log["heldout_accuracy"]
    assert proxy[-1] > 3.9 and proxy[-1] > proxy[0]  # the dashboard looks great
    assert true[-1] < true[0]  # people like the outputs less than before training
    assert acc[-1] < 0.1 < 0.7 < acc[0]
    # on-policy agreement falls from step 1, so it flags at step 5 whatever beta is: a useless alarm
    assert rlhf.reward_hacking_onset(proxy, acc, window=5, tol=0.02) == 5
    # a strong KL penalty keeps the policy near the reference and the quality above it
    safe = rlhf.simulate_kl_regularized_training(REF, PROXY, TRUE, 2.0, lr=1.0, steps=80)
    assert safe["kl"][-1] < 0.5 and safe["true_reward"][-1] > true[0]


def test_human_win_rate_against_brute_force_and_at_the_reference():
    rng = np.random.default_rng(3)
    for _ in range(5):
        pi, ref = rng.dirichlet(np.ones(4)), rng.dirichlet(np.ones(4))
        rstar = rng.normal(size=4) * 3
        brute = sum(float(pi[j] * ref[k] / (1 + mpmath.exp(-(rstar[j] - rstar[k])))) for j in range(4) for k in range(4))
        assert rlhf.human_win_rate(pi, ref, rstar) == pytest.approx(brute, rel=1e-13)
        assert rlhf.human_win_rate(ref, ref, rstar) == pytest.approx(0.5, abs=1e-15)
    assert rlhf.human_win_rate([0.0, 1.0], [1.0, 0.0], [0.0, 800.0]) == 1.0
    with pytest.raises(ValueError, match="ref_probs must have the shape of probs"):
        rlhf.human_win_rate([0.5, 0.5], [0.2, 0.3, 0.5], [1.0, 0.0])


def test_human_win_rate_peaks_where_people_s_score_peaks_and_the_alarm_follows():
    peaks, onsets = [], []
    for beta in (0.0, 0.5, 1.0, 2.0, 3.0):
        log = rlhf.simulate_kl_regularized_training(REF, PROXY, TRUE, beta, lr=1.0, steps=80)
        w = log["human_win_rate"]
        assert w[0] == pytest.approx(0.5, abs=1e-15)
        peak = int(np.argmax(w))
        assert peak == int(np.argmax(log["true_reward"]))
        peaks.append(peak)
        onsets.append(rlhf.reward_hacking_onset(log["proxy_reward"], w, window=5, tol=0.02))
    assert peaks == [13, 7, 5, 4, 3]
    assert onsets == [20, 10, 9, 9, None]  # after people's score turns; beta = 3 never flagged
    # the beta = 0 run stopped at its peak beats every converged beta
    best_converged = max(rlhf.kl_regularized_policy(REF, PROXY, b) @ TRUE for b in np.linspace(0.05, 10, 400))
    log0 = rlhf.simulate_kl_regularized_training(REF, PROXY, TRUE, 0.0, lr=1.0, steps=80)
    assert round(float(log0["true_reward"][13]), 3) == 2.172 > best_converged
    assert round(float(best_converged), 3) == 0.816


def test_reward_hacking_onset_on_a_table():
    reward = [1.0, 1.2, 1.5, 1.9, 2.4]
    acc = [0.70, 0.71, 0.71, 0.65, 0.55]
    assert rlhf.reward_hacking_onset(reward, acc) == 3
    assert rlhf.reward_hacking_onset(reward, acc, tol=0.07) == 4
    assert rlhf.reward_hacking_onset(reward, acc, window=3) == 3
    assert rlhf.reward_hacking_onset(reward, [0.7, 0.72, 0.74, 0.75, 0.8]) is None
    with pytest.raises(ValueError, match="heldout_accuracy must have the shape"):
        rlhf.reward_hacking_onset(reward, acc[:3])
    with pytest.raises(ValueError, match="window"):
        rlhf.reward_hacking_onset(reward, acc, window=0)


# --------------------------------------------------------------------------
# drift


def test_normalize_rewards_and_drift_pinned():
    ref = [1.0, 3.0]  # mean 2, population std 1
    np.testing.assert_array_equal(rlhf.normalize_rewards([2.0, 4.0, 0.0], ref), [0.0, 2.0, -2.0])
    d = rlhf.reward_drift(ref, [4.0, 8.0])  # mean 6 -> shift 4 std; std 2 -> ratio 2
    assert d == {"shift": 4.0, "scale_ratio": 2.0}
    with pytest.raises(ValueError, match="reference rewards are all equal"):
        rlhf.normalize_rewards([1.0], [2.0, 2.0])
    with pytest.raises(ValueError, match="current"):
        rlhf.reward_drift(ref, [1.0])


def test_drift_scale_is_a_silent_change_of_beta():
    rng = np.random.default_rng(4)
    ref_scores = rng.normal(size=500)
    drifted = 3.0 + 2.0 * ref_scores
    d = rlhf.reward_drift(ref_scores, drifted)
    # mean(3 + 2x) - mean(x) = 3 + mean(x), in units of std(x)
    assert d["shift"] == pytest.approx((3.0 + ref_scores.mean()) / ref_scores.std(), rel=1e-12)
    assert d["scale_ratio"] == pytest.approx(2.0, rel=1e-14)
    pi_drift = rlhf.kl_regularized_policy(REF, 3.0 + 2.0 * PROXY, 0.5)
    np.testing.assert_allclose(pi_drift, rlhf.kl_regularized_policy(REF, PROXY, 0.25), rtol=1e-12)


def test_pooled_spread_grows_with_prompt_offsets_alone():
    # the same five scores on two prompts offset by +-1.5: pooled std 2.06 -> 2.55, every per-prompt policy unchanged
    pooled_before = np.r_[PROXY, PROXY]
    pooled_after = np.r_[PROXY + 1.5, PROXY - 1.5]
    d = rlhf.reward_drift(pooled_before, pooled_after)
    assert round(PROXY.std(), 2) == 2.06 and round(pooled_after.std(), 2) == 2.55
    assert round(d["scale_ratio"], 2) == 1.24
    for offset in (1.5, -1.5):
        np.testing.assert_allclose(rlhf.kl_regularized_policy(REF, PROXY + offset, 1.0),
                                   rlhf.kl_regularized_policy(REF, PROXY, 1.0), rtol=1e-14)


def test_paired_drift_recovers_offset_and_stretch_and_recalibration_undoes_it():
    now = 0.8 + 1.5 * PROXY
    fit = rlhf.paired_reward_drift(PROXY, now)
    assert fit["offset"] == pytest.approx(0.8, rel=1e-14) and fit["scale"] == pytest.approx(1.5, rel=1e-14)
    back = rlhf.recalibrate_rewards(now, fit["offset"], fit["scale"])
    np.testing.assert_allclose(back, PROXY, rtol=1e-14, atol=1e-15)
    np.testing.assert_allclose(rlhf.kl_regularized_policy(REF, back, 1.0), rlhf.kl_regularized_policy(REF, PROXY, 1.0),
                               rtol=1e-13)
    np.testing.assert_allclose(rlhf.kl_regularized_policy(REF, now, 1.0),
                               rlhf.kl_regularized_policy(REF, PROXY, 1.0 / 1.5), rtol=1e-12)
    with pytest.raises(ValueError, match="same responses"):
        rlhf.paired_reward_drift(PROXY, now[:3])
    with pytest.raises(ValueError, match="all equal"):
        rlhf.paired_reward_drift([1.0, 1.0], [2.0, 3.0])
    with pytest.raises(ValueError, match="scale"):
        rlhf.recalibrate_rewards(now, 0.0, 0.0)
