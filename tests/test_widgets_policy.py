"""The PPO and DPO explorers without a kernel or a browser: sliders moved from Python, readouts pinned.

Every readout must be the number rmteach.rlhf / rmteach.policy computes for the
slider values, the figures must be updated in place, and bad arguments must
raise errors that name the argument.
"""

from __future__ import annotations

import math

import bqplot as bq
import numpy as np
import pytest

from rmteach import policy, rlhf, widgets

REF = np.array([0.20, 0.30, 0.25, 0.05, 0.20])
RM_SCORE = np.array([2.5, 1.0, 0.0, 4.0, -2.0])
HUMAN = np.array([2.5, 1.0, 0.0, -1.5, -2.0])


def figures(widget) -> list[bq.Figure]:
    if isinstance(widget, bq.Figure):
        return [widget]
    found = []
    for child in getattr(widget, "children", ()):
        found += figures(child)
    return found


# ---------------------------------------------------------------- the clipped surrogate


def test_ppo_clip_explorer_defaults_pinned():
    ex = widgets.ppo_clip_explorer()
    r = ex.readouts
    assert ex.values == {"eps": 0.2, "ratio": 1.3, "advantage": 1.0}
    assert r["objective_pos"] == -rlhf.ppo_clip_loss([1.3], [1.0], 0.2) == 1.2
    assert r["objective_neg"] == -rlhf.ppo_clip_loss([1.3], [-1.0], 0.2) == -1.3
    assert r["clip_fraction"] == rlhf.clip_fraction([1.3], 0.2) == 1.0
    assert r["lo"] == 0.8 and r["hi"] == 1.2


@pytest.mark.parametrize("eps, ratio, adv", [(0.05, 0.05, 0.1), (0.5, 2.5, 2.0), (0.3, 0.6, 1.5), (0.12, 1.0, 0.7)])
def test_ppo_clip_explorer_curves_are_ppo_clip_loss(eps, ratio, adv):
    ex = widgets.ppo_clip_explorer()
    figs = figures(ex.widget)
    marks = [list(f.marks) for f in figs]
    ex.set(eps=eps, ratio=ratio, advantage=adv)
    assert figures(ex.widget) == figs and [list(f.marks) for f in figs] == marks  # updated in place
    for fig, sign in zip(figs, (1.0, -1.0)):
        raw, curve, edges, dot = fig.marks
        x = np.asarray(curve.x)
        np.testing.assert_array_equal(curve.y, [-rlhf.ppo_clip_loss([r], [sign * adv], eps) for r in x])
        np.testing.assert_array_equal(raw.y, x * sign * adv)
        assert list(edges.x)[0] == 1 - eps and list(edges.x)[3] == 1 + eps
        assert list(dot.y) == [-rlhf.ppo_clip_loss([ratio], [sign * adv], eps)]
    r = ex.readouts
    assert r["objective_pos"] == -rlhf.ppo_clip_loss([ratio], [adv], eps)
    assert r["objective_neg"] == -rlhf.ppo_clip_loss([ratio], [-adv], eps)
    assert r["objective_pos"] <= r["unclipped_pos"] and r["objective_neg"] <= r["unclipped_neg"]  # pessimistic


def test_ppo_clip_explorer_flat_parts_move_with_eps():
    ex = widgets.ppo_clip_explorer(eps=0.1, advantage=1.0)
    pos_curve = figures(ex.widget)[0].marks[1]
    x = np.asarray(pos_curve.x)
    assert np.all(np.asarray(pos_curve.y)[x > 1.1] == 1.1)
    ex.set(eps=0.4)
    assert np.all(np.asarray(pos_curve.y)[x > 1.4] == 1.4)
    assert np.allclose(np.asarray(pos_curve.y)[x <= 1.4], x[x <= 1.4], rtol=0, atol=1e-15)


# ---------------------------------------------------------------- over-optimization


def test_overoptimization_explorer_pinned_to_policy():
    ex = widgets.overoptimization_explorer()
    toy = policy.toy_problem()
    betas = np.geomspace(0.01, 30.0, 80)
    proxy = policy.reward_model_ensemble(toy["ref_probs"], toy["gold_reward"], 3000, 1, seed=0).min(axis=0)
    c = policy.overoptimization_curve(toy["ref_probs"], proxy, toy["gold_reward"], betas)
    r = ex.readouts
    assert r["gold_at_peak"] == c["gold_at_peak"] == pytest.approx(1.360625116355939, rel=1e-9)
    assert r["peak_sqrt_kl"] == c["sqrt_kl"][c["peak"]]
    assert r["gold_at_max_kl"] == c["true_reward"][0] < 0
    fig = figures(ex.widget)[0]
    proxy_line, gold_line, dot = fig.marks
    np.testing.assert_array_equal(gold_line.y, c["true_reward"])
    np.testing.assert_array_equal(proxy_line.x, c["sqrt_kl"])
    ex.set(n_members=3, n_pairs=2000)
    ens = policy.reward_model_ensemble(toy["ref_probs"], toy["gold_reward"], 2000, 3, seed=0)
    c3 = policy.overoptimization_curve(toy["ref_probs"], ens.min(axis=0), toy["gold_reward"], betas)
    assert ex.readouts["gold_at_max_kl"] == c3["true_reward"][0]
    assert figures(ex.widget)[0] is fig and list(fig.marks) == [proxy_line, gold_line, dot]


# ---------------------------------------------------------------- a PPO run


def test_ppo_run_explorer_reruns_train_ppo():
    ex = widgets.ppo_run_explorer(REF, RM_SCORE, HUMAN, beta=1.0)
    run = policy.train_ppo(REF, RM_SCORE, HUMAN, beta=1.0, lr=1.0, epochs=4, eps=0.2, iterations=60, seed=0)
    r = ex.readouts
    assert r["final_kl"] == run["kl"][-1] == pytest.approx(1.003, abs=5e-4)
    assert r["max_kl_jump"] == np.max(np.abs(np.diff(run["kl"][10:])))
    assert r["mean_clip_fraction"] == math.fsum(run["clip_fraction"][:-1]) / 60
    assert r["final_gold"] == run["gold_reward"][-1]
    kl_fig, clip_fig, ent_fig = figures(ex.widget)
    np.testing.assert_array_equal(kl_fig.marks[0].y, run["kl"])
    np.testing.assert_array_equal(ent_fig.marks[0].y, run["entropy"])
    assert kl_fig.axes[1].scale.max == pytest.approx(1.05 * -math.log(0.05))
    ex.set(log10_lr=1.5)  # a step of 31.6: entropy collapse
    assert ex.readouts["final_entropy"] < 0.01 and ex.readouts["lr"] == 10 ** 1.5
    ex.set(log10_lr=0.5, epochs=1)  # one epoch: the ratio is 1 at every gradient, nothing is clipped
    assert ex.readouts["mean_clip_fraction"] == 0.0
    assert figures(ex.widget) == [kl_fig, clip_fig, ent_fig]


# ---------------------------------------------------------------- DPO and beta


@pytest.fixture(scope="module")
def dpo_ex():
    pairs = policy.sample_preferences(REF, HUMAN, 2000, seed=0)
    return widgets.dpo_beta_explorer(REF, HUMAN, pairs["chosen"], pairs["rejected"]), pairs


@pytest.mark.parametrize("log10_beta", [0.0, -1.0, 0.5, 1.0])
def test_dpo_beta_explorer_readouts(dpo_ex, log10_beta):
    ex, pairs = dpo_ex
    ex.set(log10_beta=log10_beta)
    beta = 10.0 ** log10_beta
    run = policy.train_dpo(REF, pairs["chosen"], pairs["rejected"], gold_reward=HUMAN, beta=beta, lr=4 / beta**2,
                           steps=300)
    rmodel = policy.fit_reward_model(5, pairs["chosen"], pairs["rejected"])
    pi_rm = rlhf.kl_regularized_policy(REF, rmodel, beta)
    r = ex.readouts
    assert r["beta"] == beta
    assert r["kl_dpo"] == run["kl"][-1] and r["gold_dpo"] == run["gold_reward"][-1]
    assert r["dpo_loss"] == run["loss"][-1] == pytest.approx(0.36957424394642807, rel=1e-9)  # the same at every beta
    assert r["kl_rm"] == rlhf.categorical_kl(pi_rm, REF)
    assert r["max_prob_gap"] == np.max(np.abs(run["probs"][-1] - pi_rm)) < 0.01
    policy_fig, curve_fig = figures(ex.widget)
    np.testing.assert_array_equal(policy_fig.marks[2].y, run["probs"][-1])
    np.testing.assert_array_equal(policy_fig.marks[1].y, pi_rm)
    assert list(curve_fig.marks[2].x) == [log10_beta, log10_beta]


# ---------------------------------------------------------------- bad input


@pytest.mark.parametrize("build, exc, match", [
    (lambda: widgets.ppo_clip_explorer(eps=0.6), ValueError, r"eps must be a real number in \[0.05, 0.5\]"),
    (lambda: widgets.ppo_clip_explorer(ratio=0.0), ValueError, r"ratio must be a real number in \[0.05, 2.5\]"),
    (lambda: widgets.ppo_clip_explorer(advantage="1"), TypeError, r"advantage must be a real number"),
    (lambda: widgets.overoptimization_explorer(n_members=9), ValueError, r"n_members must be an integer in \[1, 8\]"),
    (lambda: widgets.overoptimization_explorer(REF, HUMAN[:3]), ValueError, r"gold_reward must have shape \(5,\)"),
    (lambda: widgets.ppo_run_explorer(REF, RM_SCORE, lr=1000.0), ValueError, r"lr must be a number in \[0.1, 316\]"),
    (lambda: widgets.ppo_run_explorer(REF, RM_SCORE, epochs=0), ValueError, r"epochs must be an integer in \[1, 16\]"),
    (lambda: widgets.ppo_run_explorer([0.5, 0.6], [1, 2]), ValueError, r"ref_probs must sum to 1"),
    (lambda: widgets.dpo_beta_explorer(REF, HUMAN, [0, 1], [1, 9]), ValueError, r"rejected must hold response indices"),
    (lambda: widgets.dpo_beta_explorer(REF, HUMAN, [0], [1], labels=["a"]), ValueError, r"labels must name each of the 5"),
    (lambda: widgets.dpo_beta_explorer(REF, HUMAN, [0], [1], log10_beta=2.0), ValueError, r"log10_beta must be"),
])
def test_bad_builder_arguments(build, exc, match):
    with pytest.raises(exc, match=match):
        build()


def test_bad_set_names_the_slider():
    ex = widgets.ppo_clip_explorer()
    with pytest.raises(ValueError, match=r"unknown slider 'beta' for PPOClipExplorer; its sliders are eps, ratio, advantage"):
        ex.set(beta=1.0)
