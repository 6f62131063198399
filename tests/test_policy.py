"""rmteach.policy: the toy policy trained from samples by PPO and by DPO.

References are independent of the code under test where possible: central
differences of rmteach.rlhf.ppo_clip_loss, exact expectations over the K
responses, the closed-form optimum rmteach.rlhf.kl_regularized_policy.
"""

from __future__ import annotations

import math

import numpy as np
import pytest

from rmteach import policy, rlhf
from rmteach import numpy as rm
from rmteach.gradcheck import central_difference

REF = np.array([0.20, 0.30, 0.25, 0.05, 0.20])  # notebook 6's scenario
RM_SCORE = np.array([2.5, 1.0, 0.0, 4.0, -2.0])
HUMAN = np.array([2.5, 1.0, 0.0, -1.5, -2.0])


# ---------------------------------------------------------------- the policy


def test_log_softmax_is_stable_and_normalized():
    lp = policy.log_softmax([1000.0, 0.0, -1000.0])
    assert lp[0] == 0.0 and lp[1] == -1000.0 and np.all(np.isfinite(lp[:2]))
    assert math.isclose(math.fsum(np.exp(policy.log_softmax([0.3, -1.2, 2.0]))), 1.0, rel_tol=1e-15)


def test_entropy_pinned():
    assert policy.entropy([0.25] * 4) == pytest.approx(math.log(4), rel=1e-15)
    assert policy.entropy([1.0, 0.0]) == 0.0


def test_sampling_is_seeded_and_follows_the_policy():
    a = policy.sample_responses(REF, 20000, np.random.default_rng(3))
    b = policy.sample_responses(REF, 20000, np.random.default_rng(3))
    assert np.array_equal(a, b)
    freq = np.bincount(a, minlength=5) / a.size
    assert np.all(np.abs(freq - REF) < 4 * np.sqrt(REF * (1 - REF) / a.size))


# ---------------------------------------------------------------- policy gradient and baseline


def test_score_function_estimates_are_unbiased_with_and_without_a_baseline():
    exact = policy.exact_policy_gradient(REF, RM_SCORE + 10.0)
    n = 20000
    for b in (0.0, float(REF @ (RM_SCORE + 10.0)), -3.0):
        g = policy.score_function_gradients(REF, RM_SCORE + 10.0, n, baseline=b, seed=1)
        se = g.std(axis=0, ddof=1) / math.sqrt(n)
        assert np.all(np.abs(g.mean(axis=0) - exact) < 4.5 * se)
    none = policy.score_function_gradients(REF, RM_SCORE + 10.0, n, baseline=0.0, seed=1).var(axis=0).sum()
    good = policy.score_function_gradients(REF, RM_SCORE + 10.0, n, baseline=float(REF @ (RM_SCORE + 10)), seed=1)
    assert none > 20 * good.var(axis=0).sum()


def test_exact_policy_gradient_is_the_derivative_of_the_expected_reward():
    theta = np.array([0.2, -0.4, 1.0, 0.0, -1.1])
    f = lambda logits: float(np.exp(policy.log_softmax(logits)) @ RM_SCORE)
    num = central_difference(f, {"logits": theta}, "logits")
    p = np.exp(policy.log_softmax(theta))
    np.testing.assert_allclose(policy.exact_policy_gradient(p / p.sum(), RM_SCORE), num, rtol=0, atol=1e-9)


# ---------------------------------------------------------------- KL estimators


def test_kl_estimator_study():
    pi = rlhf.kl_regularized_policy(REF, RM_SCORE, 1.0)
    s = policy.kl_estimator_study(pi, REF, 64, 500, seed=0)
    assert s["exact"] == rlhf.categorical_kl(pi, REF) == pytest.approx(1.0054729525748283, rel=1e-13)
    assert s["expected"]["k1"] == pytest.approx(s["exact"], rel=1e-12)
    assert s["expected"]["k3"] == pytest.approx(s["exact"], rel=1e-12)
    assert s["expected"]["k2"] == pytest.approx(1.2537265198614558, rel=1e-12)  # biased
    assert s["per_sample"]["k1"].shape == (500, 64)
    assert s["negative_fraction"]["k1"] > 0.1 and s["negative_fraction"]["k3"] == 0 == s["negative_fraction"]["k2"]
    for k in ("k1", "k3"):
        assert abs(s["bias"][k]) < 4 * s["std"][k] / math.sqrt(500)
    assert s["bias"]["k2"] > 0.2
    assert math.isnan(policy.kl_estimator_study(pi, REF, 8, 1)["std"]["k1"])


# ---------------------------------------------------------------- PPO


@pytest.mark.parametrize("seed", range(4))
def test_ppo_clip_grad_matches_central_differences_of_ppo_clip_loss(seed):
    rng = np.random.default_rng(seed)
    old_logits = rng.normal(size=6)
    y = rng.integers(0, 6, 25)
    old = policy.log_softmax(old_logits)[y]
    adv = rng.normal(size=25)
    theta = old_logits + 0.4 * rng.normal(size=6)
    f = lambda logits: rlhf.ppo_clip_loss(np.exp(policy.log_softmax(logits)[y] - old), adv, 0.2)
    rho = np.exp(policy.log_softmax(theta)[y] - old)
    assert 0 < rlhf.clip_fraction(rho, 0.2) < 1  # some samples clipped, some not
    np.testing.assert_allclose(policy.ppo_clip_grad(theta, y, old, adv, 0.2),
                               central_difference(f, {"logits": theta}, "logits"), rtol=0, atol=1e-8)


def test_clipping_switches_off_the_samples_that_left_the_region_in_their_advantage_direction():
    theta = np.log(REF) + np.array([1.0, 0.0, 0.0, 0.0, 0.0])  # response 0 much more likely than when sampled
    old = np.log(REF)[[0, 0]]
    # A > 0 on a ratio far above 1 + eps: clipped, no gradient at all
    assert np.all(policy.ppo_clip_grad(theta, [0, 0], old, [1.0, 2.0], 0.2) == 0.0)
    # A < 0 on the same ratio: moved against its advantage, the full -A rho gradient pulls it back
    g = policy.ppo_clip_grad(theta, [0, 0], old, [-1.0, -2.0], 0.2)
    assert g[0] > 0 and np.any(g != 0)


def test_with_the_widest_region_ppo_is_the_unclipped_surrogate():
    """eps -> 1 (the widest region rlhf allows) and small steps: nothing is clipped, PPO follows -mean(A rho)."""
    rng = np.random.default_rng(0)
    y = rng.integers(0, 5, 40)
    old = np.log(REF)[y]
    adv = rng.normal(size=40)
    theta = np.log(REF) + 0.05 * rng.normal(size=5)
    rho = np.exp(policy.log_softmax(theta)[y] - old)
    assert rlhf.clip_fraction(rho, 0.99) == 0
    p = np.exp(policy.log_softmax(theta))
    unclipped = -np.mean((adv * rho)[:, None] * (np.eye(5)[y] - p), axis=0)
    np.testing.assert_allclose(policy.ppo_clip_grad(theta, y, old, adv, 0.99), unclipped, rtol=1e-13, atol=1e-16)


def test_one_epoch_ppo_is_the_plain_policy_gradient_and_eps_does_not_matter():
    runs = [policy.train_ppo(REF, RM_SCORE, HUMAN, beta=0.5, epochs=1, eps=e, iterations=30, seed=2)
            for e in (0.05, 0.2, 0.99)]
    for run in runs[1:]:
        np.testing.assert_array_equal(run["probs"], runs[0]["probs"])
    assert np.all(runs[0]["clip_fraction"][:-1] == 0)


def test_ppo_is_seeded_and_deterministic():
    a = policy.train_ppo(REF, RM_SCORE, HUMAN, iterations=20, seed=5)
    b = policy.train_ppo(REF, RM_SCORE, HUMAN, iterations=20, seed=5)
    c = policy.train_ppo(REF, RM_SCORE, HUMAN, iterations=20, seed=6)
    assert all(np.array_equal(a[k], b[k], equal_nan=True) for k in a)
    assert not np.array_equal(a["probs"], c["probs"])


def test_ppo_pinned_and_converges_to_the_kl_regularized_optimum():
    run = policy.train_ppo(REF, RM_SCORE, HUMAN, beta=1.0, lr=1.0, epochs=4, batch_size=64, iterations=60, seed=0)
    optimum = rlhf.kl_regularized_policy(REF, RM_SCORE, 1.0)
    assert np.max(np.abs(run["probs"][-1] - optimum)) < 0.03
    assert run["kl"][-1] == pytest.approx(1.003, abs=5e-4)  # the notebook's number
    assert run["kl"][0] == 0.0 and run["entropy"][0] == pytest.approx(float(policy.entropy(REF)), rel=1e-15)
    assert math.isnan(run["beta"][-1]) and np.all(run["beta"][:-1] == 1.0)
    assert run["loss"][0] == pytest.approx(0.0, abs=1e-12)  # rho = 1 and leave-one-out advantages sum to 0


def test_instability_sawtooth_and_entropy_collapse():
    smooth, saw, big = (policy.train_ppo(REF, RM_SCORE, HUMAN, beta=1.0, lr=lr, iterations=60, seed=0)
                        for lr in (1.0, 3.0, 30.0))
    jumps = {k: np.diff(r["kl"][10:]) for k, r in (("smooth", smooth), ("saw", saw), ("big", big))}
    assert np.max(np.abs(jumps["smooth"])) < 0.05
    assert np.max(np.abs(jumps["saw"])) > 0.2 and np.mean(jumps["saw"][1:] * jumps["saw"][:-1] < 0) > 0.8
    assert np.nanmean(saw["clip_fraction"]) > 5 * np.nanmean(smooth["clip_fraction"])
    assert big["entropy"][-1] < 0.01 and np.max(np.abs(jumps["big"])) < 1e-3


def test_adaptive_kl_controller_holds_the_target():
    for target in (0.3, 0.5):
        run = policy.train_ppo(REF, RM_SCORE, HUMAN, beta=0.1, kl_target=target, horizon=640, iterations=200, seed=0)
        assert abs(np.mean(run["kl"][-40:]) - target) < 0.1 * target
        # the controller's own rule, step by step, from the logged k1
        ctl = rlhf.AdaptiveKLController(0.1, target, 640)
        for t in range(199):
            assert run["beta"][t] == ctl.value
            ctl.update(run["kl_k1"][t], 64)


# ---------------------------------------------------------------- reward models and over-optimization


def test_fit_reward_model_recovers_the_rewards_from_exact_preferences():
    ex = policy.exact_preferences(REF, HUMAN)
    assert ex["weights"].sum() == pytest.approx(1.0, rel=1e-15) and ex["chosen"].size == 20
    r = policy.fit_reward_model(5, ex["chosen"], ex["rejected"], ex["weights"], l2=1e-12)
    np.testing.assert_allclose(r - r.mean(), HUMAN - HUMAN.mean(), rtol=0, atol=1e-6)


def test_fit_reward_model_is_the_minimum_of_the_ranking_loss():
    d = policy.sample_preferences(REF, HUMAN, 300, seed=0)
    r = policy.fit_reward_model(5, d["chosen"], d["rejected"], l2=0.01)
    f = lambda s: float(rm.ranking_loss(s[d["chosen"]], s[d["rejected"]], reduction="sum") + 0.01 * s @ s)
    assert np.max(np.abs(central_difference(f, {"s": r}, "s"))) < 1e-6
    for _ in range(5):
        assert f(r) <= f(r + 0.01 * np.random.default_rng(_).normal(size=5))


def test_overoptimization_gold_peaks_while_proxy_rises():
    toy = policy.toy_problem(40, seed=0)
    proxy = policy.reward_model_ensemble(toy["ref_probs"], toy["gold_reward"], 3000, 1, seed=0)[0]
    c = policy.overoptimization_curve(toy["ref_probs"], proxy, toy["gold_reward"], np.geomspace(0.01, 30, 80))
    order = np.argsort(c["kl"])
    assert np.all(np.diff(c["proxy_reward"][order]) > -1e-12)
    assert 0 < c["peak"] < 79
    assert c["gold_at_peak"] == pytest.approx(1.360625116355939, rel=1e-9)
    assert c["true_reward"][0] == pytest.approx(-0.38935927494138733, rel=1e-9)
    assert 0 < c["true_reward"][-1] < 0.1 and c["kl"][-1] < 0.01  # beta = 30: nearly the reference
    ens = policy.reward_model_ensemble(toy["ref_probs"], toy["gold_reward"], 3000, 3, seed=0)
    c3 = policy.overoptimization_curve(toy["ref_probs"], ens.min(axis=0), toy["gold_reward"], np.geomspace(0.01, 30, 80))
    assert c3["true_reward"][0] > c["gold_at_peak"]


# ---------------------------------------------------------------- DPO


def test_dpo_grad_matches_central_differences_of_dpo_loss():
    d = policy.sample_preferences(REF, HUMAN, 50, seed=1)
    theta = np.array([0.3, -0.1, 0.5, -1.0, 0.2])
    w = np.random.default_rng(0).uniform(0.1, 2.0, 50)
    loss, grad = policy.dpo_grad(theta, REF, d["chosen"], d["rejected"], w, beta=0.3)

    def f(logits):
        lp = policy.log_softmax(logits)
        per = rm.dpo_loss(lp[d["chosen"]], lp[d["rejected"]], np.log(REF)[d["chosen"]], np.log(REF)[d["rejected"]],
                          beta=0.3, reduction="none")
        return math.fsum(w * per) / w.sum()

    assert loss == pytest.approx(f(theta), rel=1e-14)
    np.testing.assert_allclose(grad, central_difference(f, {"logits": theta}, "logits"), rtol=0, atol=1e-9)


@pytest.mark.parametrize("beta", [0.1, 0.5, 1.0, 3.0])
def test_dpo_on_exact_preferences_recovers_the_kl_regularized_optimum(beta):
    ex = policy.exact_preferences(REF, HUMAN)
    run = policy.train_dpo(REF, ex["chosen"], ex["rejected"], ex["weights"], HUMAN, beta=beta, lr=4 / beta**2, steps=300)
    target = rlhf.kl_regularized_policy(REF, HUMAN, beta)
    np.testing.assert_allclose(run["probs"][-1], target, rtol=0, atol=1e-8)
    assert np.array_equal(np.argsort(run["probs"][-1]), np.argsort(target))
    assert np.all(np.diff(run["loss"]) <= 1e-15)  # gradient descent on a convex loss never goes up here


def test_dpo_matches_the_reward_model_route_on_sampled_preferences():
    d = policy.sample_preferences(REF, HUMAN, 2000, seed=0)
    rmodel = policy.fit_reward_model(5, d["chosen"], d["rejected"], l2=1e-10)
    for beta in (0.5, 1.0):
        run = policy.train_dpo(REF, d["chosen"], d["rejected"], beta=beta, lr=4 / beta**2, steps=400)
        np.testing.assert_allclose(run["probs"][-1], rlhf.kl_regularized_policy(REF, rmodel, beta), atol=1e-6)
    # duplicates are merged: the same pairs in another order train to the same policy
    perm = np.random.default_rng(0).permutation(2000)
    a = policy.train_dpo(REF, d["chosen"], d["rejected"], beta=0.5, lr=16, steps=50)
    b = policy.train_dpo(REF, d["chosen"][perm], d["rejected"][perm], beta=0.5, lr=16, steps=50)
    np.testing.assert_allclose(a["probs"], b["probs"], rtol=0, atol=1e-14)


# ---------------------------------------------------------------- bad input


@pytest.mark.parametrize("call, exc, match", [
    (lambda: policy.log_softmax([1.0]), ValueError, r"logits must have shape \(K,\) with K >= 2"),
    (lambda: policy.log_softmax([1.0, np.nan]), ValueError, r"logits must be finite"),
    (lambda: policy.exact_policy_gradient([0.5, 0.6], [1, 2]), ValueError, r"probs must sum to 1"),
    (lambda: policy.exact_policy_gradient([0.5, 0.5], [1, 2, 3]), ValueError, r"reward must have shape \(2,\)"),
    (lambda: policy.exact_policy_gradient([1.0, 0.0], [1, 2]), ValueError, r"probs must be > 0"),
    (lambda: policy.score_function_gradients(REF, RM_SCORE, 0), ValueError, r"n must be an integer >= 1"),
    (lambda: policy.score_function_gradients(REF, RM_SCORE, 5, seed=-1), ValueError, r"seed must be an integer >= 0"),
    (lambda: policy.kl_estimator_study(REF, [0.5, 0.5], 5), ValueError, r"ref_probs must have the shape of probs"),
    (lambda: policy.ppo_clip_grad([0.0, 0.0], [0, 2], [-1.0, -1.0], [1.0, 1.0]), ValueError, r"actions must hold response indices in \[0, 1\]"),
    (lambda: policy.ppo_clip_grad([0.0, 0.0], [0, 1], [-1.0], [1.0, 1.0]), ValueError, r"old_logp must have the shape of actions"),
    (lambda: policy.ppo_clip_grad([0.0, 0.0], [0.5, 1], [-1.0, -1.0], [1.0, 1.0]), ValueError, r"actions must be a non-empty 1-D array of response indices"),
    (lambda: policy.ppo_clip_grad([0.0, 0.0], [0, 1], [-1.0, -1.0], [1.0, 1.0], eps=1.0), ValueError, r"eps must be a number in \(0, 1\)"),
    (lambda: policy.train_ppo(REF, RM_SCORE, beta=-0.1), ValueError, r"beta must be a finite number >= 0"),
    (lambda: policy.train_ppo(REF, RM_SCORE, beta=0.0, kl_target=0.5), ValueError, r"beta must be a finite number > 0"),
    (lambda: policy.train_ppo(REF, RM_SCORE, kl_target=0.0), ValueError, r"kl_target must be a finite number > 0"),
    (lambda: policy.train_ppo(REF, RM_SCORE, lr=0), ValueError, r"lr must be a finite number > 0"),
    (lambda: policy.train_ppo(REF, RM_SCORE, batch_size=1), ValueError, r"batch_size must be an integer >= 2"),
    (lambda: policy.train_ppo(REF, RM_SCORE, epochs=2.0), TypeError, r"epochs must be an integer >= 1"),  # the kind is wrong
    (lambda: policy.train_ppo(REF, RM_SCORE[:4]), ValueError, r"reward must have shape \(5,\)"),
    (lambda: policy.fit_reward_model(5, [0, 1], [1]), ValueError, r"rejected must have the shape of chosen"),
    (lambda: policy.fit_reward_model(5, [0, 1], [1, 2], [1.0, -1.0]), ValueError, r"weights must be finite, >= 0"),
    (lambda: policy.fit_reward_model(5, [0, 1], [1, 2], l2=0), ValueError, r"l2 must be a finite number > 0"),
    (lambda: policy.sample_preferences(REF, HUMAN, 0), ValueError, r"n_pairs must be an integer >= 1"),
    (lambda: policy.reward_model_ensemble(REF, HUMAN, 10, 0), ValueError, r"n_members must be an integer >= 1"),
    (lambda: policy.overoptimization_curve(REF, RM_SCORE, HUMAN, [0.0]), ValueError, r"betas must be"),
    (lambda: policy.train_dpo(REF, [0], [1], beta=0.0), ValueError, r"beta must be a finite number > 0"),
    (lambda: policy.dpo_grad([0.0] * 4, REF, [0], [1]), ValueError, r"ref_probs must have the shape of logits"),
    (lambda: policy.train_dpo(REF, [0], [1], steps=0), ValueError, r"steps must be an integer >= 1"),
])
def test_bad_input_names_the_argument(call, exc, match):
    with pytest.raises(exc, match=match):
        call()


def test_one_ppo_iteration_by_hand_with_leave_one_out_advantages():
    """Iteration 1 rebuilt from the same samples: A_i = r_i - mean of the others, theta += lr mean(A (e_y - pi))."""
    lr, n, seed = 0.7, 64, 11
    run = policy.train_ppo(REF, RM_SCORE, HUMAN, beta=0.3, lr=lr, epochs=1, batch_size=n, iterations=1, seed=seed)
    y = policy.sample_responses(REF, n, np.random.default_rng(seed))
    shaped = RM_SCORE[y]  # at pi = pi_ref the KL penalty of every sample is 0
    adv = np.array([shaped[i] - (shaped.sum() - shaped[i]) / (n - 1) for i in range(n)])
    theta = np.log(REF) + lr * np.mean(adv[:, None] * (np.eye(5)[y] - REF), axis=0)
    expected = np.exp(theta) / np.exp(theta).sum()
    np.testing.assert_allclose(run["probs"][1], expected, rtol=1e-13, atol=0)
    assert run["kl_k1"][0] == 0.0 and run["clip_fraction"][0] == 0.0
