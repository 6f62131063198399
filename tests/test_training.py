"""rmteach.training: synthetic Bradley–Terry data, reward models, the training loop, failures."""

import math

import numpy as np
import pytest
import torch

from rmteach import numpy as rmnp
from rmteach import training as tr


@pytest.fixture(scope="module")
def data():
    return tr.make_preference_data(seed=0)


@pytest.fixture(scope="module")
def trained(data):
    model = tr.LinearRewardModel(data.n_features, seed=0)
    bias0 = model.linear.bias.detach().clone()
    calls = []
    history = tr.train_reward_model(
        model, data, steps=300, lr=0.05, callback=lambda step, **m: calls.append((step, m))
    )
    return model, history, calls, bias0


# --------------------------------------------------------------------------
# data


def test_data_shapes_and_determinism(data):
    assert data.features.shape == (200, 5) and data.features.dtype == torch.float64
    assert data.true_rewards.shape == (200,)
    assert data.train_pairs.shape == (2000, 2) and data.val_pairs.shape == (500, 2)
    assert data.train_pairs.dtype == torch.int64
    assert torch.all(data.train_pairs[:, 0] != data.train_pairs[:, 1])
    assert float(data.true_weights.norm()) == pytest.approx(2.0, rel=1e-14)
    torch.testing.assert_close(data.true_rewards, data.features @ data.true_weights + 3.0, rtol=0, atol=0)
    again = tr.make_preference_data(seed=0)
    assert torch.equal(again.train_pairs, data.train_pairs) and torch.equal(again.features, data.features)
    assert not torch.equal(tr.make_preference_data(seed=1).features, data.features)


def test_bradley_terry_labels_have_the_right_frequencies(data):
    # A labeler drawing by Bradley-Terry prefers the truly better response with probability
    # sigma(|r*_a - r*_b|): the observed count must match the expected count within 4 sd.
    pairs = torch.cat([data.train_pairs, data.val_pairs])
    ra, rb = data.true_rewards[pairs[:, 0]].numpy(), data.true_rewards[pairs[:, 1]].numpy()
    p_better = rmnp.preference_probability(np.abs(ra - rb), 0.0 * ra)
    observed = np.count_nonzero(ra > rb)
    expected = p_better.sum()
    sd = math.sqrt(np.sum(p_better * (1 - p_better)))
    assert abs(observed - expected) < 4 * sd
    assert observed < len(pairs)  # some labels go against the truth: the labeler is noisy


def test_deterministic_and_random_labels():
    det = tr.make_preference_data(n_train=500, n_val=100, labels="deterministic", seed=5)
    pairs = det.train_pairs
    assert torch.all(det.true_rewards[pairs[:, 0]] > det.true_rewards[pairs[:, 1]])
    rnd = tr.make_preference_data(n_train=4000, n_val=100, labels="random", seed=5)
    frac = float((rnd.true_rewards[rnd.train_pairs[:, 0]] > rnd.true_rewards[rnd.train_pairs[:, 1]]).double().mean())
    assert abs(frac - 0.5) < 4 * 0.5 / math.sqrt(4000)


@pytest.mark.parametrize(
    "kwargs, exc, match",
    [
        (dict(n_items=1), ValueError, "n_items"),
        (dict(n_train=0), ValueError, "n_train"),
        (dict(n_features=2.5), TypeError, "n_features"),
        (dict(labels="soft"), ValueError, "labels"),
        (dict(reward_scale=-1.0), ValueError, "reward_scale"),
        (dict(true_offset=float("nan")), ValueError, "true_offset"),
        (dict(seed=-1), ValueError, "seed"),
    ],
)
def test_data_bad_input_names_the_argument(kwargs, exc, match):
    with pytest.raises(exc, match=match):
        tr.make_preference_data(**kwargs)


# --------------------------------------------------------------------------
# models


def test_models_map_features_to_one_reward_each(data):
    for model in (tr.LinearRewardModel(5), tr.MLPRewardModel(5, 8)):
        out = model(data.features)
        assert out.shape == (200,) and out.dtype == torch.float64
        assert model(data.features[0]).shape == ()


def test_model_seed_does_not_touch_the_global_rng():
    torch.manual_seed(123)
    expected = torch.rand(3)
    torch.manual_seed(123)
    tr.MLPRewardModel(5, 8, seed=7)
    assert torch.equal(torch.rand(3), expected)
    a, b = tr.MLPRewardModel(5, 8, seed=7), tr.MLPRewardModel(5, 8, seed=7)
    assert all(torch.equal(p, q) for p, q in zip(a.parameters(), b.parameters()))


def test_model_bad_input():
    with pytest.raises(ValueError, match="init"):
        tr.MLPRewardModel(5, init="ones")
    with pytest.raises(ValueError, match="hidden"):
        tr.MLPRewardModel(5, hidden=0)


# --------------------------------------------------------------------------
# training


def test_training_learns_the_true_rewards_up_to_a_shift(data, trained):
    model, history, _, _ = trained
    learned = model(data.features).detach()
    fit = tr.align_up_to_shift(learned, data.true_rewards)
    assert fit["correlation"] > 0.99
    assert fit["rms_error"] < 0.15 * fit["true_std"]
    # the shift is arbitrary: it is nowhere near 0 although the rewards match
    assert abs(fit["shift"]) > 1.0
    # validation loss is close to that of the true rewards themselves (the best possible)
    vp = data.val_pairs
    best = float(rmnp.ranking_loss(data.true_rewards[vp[:, 0]].numpy(), data.true_rewards[vp[:, 1]].numpy()))
    assert best <= history.val_loss[-1] < best + 0.02
    assert history.val_loss[-1] < history.val_loss[0] - 0.2


def test_the_bias_is_never_trained(trained):
    # r = w.x + b: b cancels in every difference, so its gradient is exactly 0
    model, _, _, bias0 = trained
    assert torch.equal(model.linear.bias.detach(), bias0)


def test_history_and_callback(trained):
    _, history, calls, _ = trained
    assert history.step == list(range(0, 301, 10))
    assert [c[0] for c in calls] == history.step
    assert set(calls[-1][1]) == set(tr.METRICS)
    assert history.final() == {"step": 300, **calls[-1][1]}
    d = history.as_dict()
    assert len(d["val_acc"]) == len(d["step"]) == 31
    assert 0.0 <= min(d["val_acc"]) and max(d["val_acc"]) <= 1.0


def test_history_metrics_are_the_rmteach_losses(data, trained):
    model, history, _, _ = trained
    r = model(data.features).detach().numpy()
    tp = data.train_pairs.numpy()
    assert history.train_loss[-1] == pytest.approx(float(rmnp.ranking_loss(r[tp[:, 0]], r[tp[:, 1]])), rel=1e-12)
    assert history.train_acc[-1] == float(rmnp.ranking_accuracy(r[tp[:, 0]], r[tp[:, 1]]))
    assert history.reward_mean[-1] == pytest.approx(float(r.mean()), rel=1e-12)


def test_training_is_reproducible(data):
    runs = []
    for _ in range(2):
        m = tr.MLPRewardModel(5, 8, seed=3)
        runs.append(tr.train_reward_model(m, data, steps=20, batch_size=16, seed=4).val_loss)
    assert runs[0] == runs[1]


def test_training_restores_the_thread_count(data):
    before = torch.get_num_threads()
    seen = []
    tr.train_reward_model(
        tr.LinearRewardModel(5), data, steps=2, callback=lambda step, **m: seen.append(torch.get_num_threads())
    )
    assert seen == [1, 1]
    assert torch.get_num_threads() == before


def test_full_batch_when_batch_size_covers_the_data():
    small = tr.make_preference_data(n_train=30, n_val=30, seed=9)
    h1 = tr.train_reward_model(tr.LinearRewardModel(5), small, steps=5, batch_size=30, seed=1)
    h2 = tr.train_reward_model(tr.LinearRewardModel(5), small, steps=5, batch_size=999, seed=2)
    assert h1.train_loss == h2.train_loss  # no sampling: the seed does not matter


@pytest.mark.parametrize(
    "kwargs, exc, match",
    [
        (dict(steps=0), ValueError, "steps"),
        (dict(lr=0.0), ValueError, "lr"),
        (dict(lr=float("inf")), ValueError, "lr"),
        (dict(batch_size=1.5), TypeError, "batch_size"),
        (dict(center_coef=-0.01), ValueError, "center_coef"),
        (dict(weight_decay=-1.0), ValueError, "weight_decay"),
        (dict(eval_every=0), ValueError, "eval_every"),
        (dict(callback="print"), TypeError, "callback"),
    ],
)
def test_training_bad_input_names_the_argument(data, kwargs, exc, match):
    with pytest.raises(exc, match=match):
        tr.train_reward_model(tr.LinearRewardModel(5), data, **kwargs)


def test_training_bad_model_or_data(data):
    with pytest.raises(TypeError, match="model"):
        tr.train_reward_model(lambda x: x, data)
    with pytest.raises(TypeError, match="data"):
        tr.train_reward_model(tr.LinearRewardModel(5), {"features": data.features})


# --------------------------------------------------------------------------
# reading the result


def test_align_up_to_shift_pinned():
    true = np.array([0.0, 1.0, 2.0, 3.0])
    fit = tr.align_up_to_shift(true + 5.0 + np.array([0.1, -0.1, 0.1, -0.1]), true)
    assert fit["shift"] == pytest.approx(5.0, rel=1e-15)
    assert fit["rms_error"] == pytest.approx(0.1, rel=1e-12)
    assert fit["true_std"] == pytest.approx(math.sqrt(1.25), rel=1e-15)
    with pytest.raises(ValueError, match="learned and true must have the same shape"):
        tr.align_up_to_shift([1.0, 2.0], [1.0, 2.0, 3.0])


def test_pair_weights_give_the_expected_loss():
    # prompt 0 has two pairs, prompt 1 one pair; Pr(x) uniform
    ids = [0, 0, 1]
    w = tr.pair_weights(ids)
    np.testing.assert_array_equal(w, [0.25, 0.25, 0.5])
    rp, rr = np.array([2.0, 0.5, -1.0]), np.array([1.0, 1.5, 0.0])
    expected = 0.5 * 0.5 * (math.log1p(math.exp(-1.0)) + math.log1p(math.exp(1.0))) + 0.5 * math.log1p(math.exp(1.0))
    got = rmnp.ranking_loss(rp, rr, weights=w, reduction="sum")
    assert got == pytest.approx(expected, rel=1e-15)
    # uniform prompts, equal pair counts: every weight is 1/|D| and the loss is the plain mean
    w2 = tr.pair_weights([3, 3, 7, 7])
    np.testing.assert_array_equal(w2, [0.25] * 4)
    # given Pr(x)
    np.testing.assert_allclose(tr.pair_weights(ids, {0: 0.8, 1: 0.2}), [0.4, 0.4, 0.2], rtol=1e-15)


def test_pair_weights_bad_input():
    with pytest.raises(ValueError, match="prompt_ids"):
        tr.pair_weights([0.5, 1.0])
    with pytest.raises(ValueError, match="no probability for prompt id"):
        tr.pair_weights([0, 1], {0: 1.0})
    with pytest.raises(ValueError, match="sum to 1"):
        tr.pair_weights([0, 1], {0: 0.5, 1: 0.6})


# --------------------------------------------------------------------------
# failures and their diagnosis


def test_zero_init_is_stuck_exactly_at_ln2():
    h = tr.stuck_at_chance_demo("zero_init", steps=50)
    for loss in h.train_loss + h.val_loss:
        assert loss == pytest.approx(math.log(2), rel=1e-15)
    assert h.train_acc[-1] == 0.0  # every pair tied: ties count as wrong
    assert tr.diagnose_training(h) == ["stuck_at_chance"]


def test_random_labels_stay_near_ln2():
    h = tr.stuck_at_chance_demo("random_labels")
    assert abs(h.val_loss[-1] - math.log(2)) < 0.01
    assert abs(h.val_acc[-1] - 0.5) < 0.1
    assert tr.diagnose_training(h) == ["stuck_at_chance"]
    with pytest.raises(ValueError, match="cause"):
        tr.stuck_at_chance_demo("bad_luck")


def test_overfitting_demo_and_its_remedy():
    h = tr.overfitting_demo()
    best = int(np.argmin(h.val_loss))
    assert h.val_loss[best] < 0.5  # it did learn something first
    assert h.val_loss[-1] > h.val_loss[best] + 0.2
    assert h.train_loss[-1] < 0.01 and h.train_acc[-1] == 1.0
    assert "overfitting" in tr.diagnose_training(h)
    fixed = tr.overfitting_demo(weight_decay=0.05)
    assert "overfitting" not in tr.diagnose_training(fixed)
    assert fixed.val_loss[-1] < h.val_loss[-1] - 0.2


def test_drift_demo_and_centering():
    h = tr.drifting_scale_demo()
    assert h.reward_mean[0] == 0.0  # zero init
    assert h.reward_mean[-1] > 3.0
    assert tr.diagnose_training(h) == ["level_drift", "scale_growth"]
    c = tr.drifting_scale_demo(center_coef=0.01)
    assert abs(c.reward_mean[-1]) < 0.5
    assert tr.diagnose_training(c) == []
    # E[(r_a + r_b)^2] = mean^2 + variance: the penalty also holds the spread back, at a small accuracy cost
    assert round(h.reward_std[-1], 3) == 6.118 and round(c.reward_std[-1], 3) == 2.153
    assert c.val_acc[-1] < h.val_acc[-1]
    assert round(h.val_acc[-1], 4) == 0.9967 and round(c.val_acc[-1], 4) == 0.9867
    strong = tr.drifting_scale_demo(center_coef=0.1)
    assert strong.reward_std[-1] < 0.75 and strong.val_acc[-1] == pytest.approx(0.98, abs=1e-12)


def test_scale_growth_cures_leave_the_level_alone():
    # weight decay and label smoothing stop the scale growing; the level (features of mean 2) still drifts
    for kw in ({"weight_decay": 0.05}, {"label_smoothing": 0.05}):
        h = tr.drifting_scale_demo(**kw)
        assert tr.diagnose_training(h) == ["level_drift"], kw
        assert h.reward_std[-1] < 3.0
    early = tr.drifting_scale_demo()
    assert early.reward_std[early.step.index(20)] < 0.4 * early.reward_std[-1]  # early stopping: a smaller scale


def test_diagnose_names_level_and_scale_separately():
    def hist(mean, std):
        h = tr.TrainingHistory()
        for i, (m, s) in enumerate(zip(mean, std)):
            h.append(10 * i, dict(train_loss=0.3, val_loss=0.3, train_acc=0.9, val_acc=0.9, reward_mean=m,
                                  reward_std=s))
        return h
    assert tr.diagnose_training(hist([0, 1, 2, 3, 4], [1, 1, 1, 1, 1])) == ["level_drift"]
    assert tr.diagnose_training(hist([0, 0, 0, 0, 0], [1, 1, 1, 1.2, 1.3])) == ["scale_growth"]
    assert tr.diagnose_training(hist([0, 0, 0, 0, 0], [1, 1, 1, 1.2, 1.24])) == []
    assert tr.diagnose_training(hist([0, 0, 0, 0, 0], [1, 1, 1, 1.2, 1.24]), scale_tol=0.2) == ["scale_growth"]


def test_a_healthy_run_has_no_diagnosis(trained):
    assert tr.diagnose_training(trained[1]) == []


def test_diagnose_bad_input(trained):
    with pytest.raises(TypeError, match="history"):
        tr.diagnose_training({"train_loss": [0.7]})
    with pytest.raises(ValueError, match="chance_tol"):
        tr.diagnose_training(trained[1], chance_tol=0)
    with pytest.raises(ValueError, match="scale_tol"):
        tr.diagnose_training(trained[1], scale_tol=-1)


# --------------------------------------------------------------------------
# noisy labels, label smoothing, ties, one step on the weights


def test_flip_prob_zero_gives_the_same_data_and_flips_flip():
    a, b = tr.make_preference_data(seed=0), tr.make_preference_data(seed=0, flip_prob=0.0)
    assert torch.equal(a.train_pairs, b.train_pairs) and torch.equal(a.val_pairs, b.val_pairs)
    flipped = tr.make_preference_data(seed=0, flip_prob=1.0)
    assert torch.equal(flipped.train_pairs, a.train_pairs.flip(1))
    noisy = tr.make_preference_data(seed=0, flip_prob=0.2)
    changed = (noisy.train_pairs != a.train_pairs).any(1).double().mean().item()
    assert abs(changed - 0.2) < 0.03
    with pytest.raises(ValueError, match="flip_prob"):
        tr.make_preference_data(flip_prob=1.5)


def test_flipped_label_probability():
    eps = 0.1
    np.testing.assert_allclose(tr.flipped_label_probability([0.0, 2.0, -2.0], eps),
                               [0.5, 0.9 * rmnp.preference_probability(2.0, 0.0) + 0.1 * rmnp.preference_probability(0.0, 2.0),
                                0.9 * rmnp.preference_probability(0.0, 2.0) + 0.1 * rmnp.preference_probability(2.0, 0.0)],
                               rtol=1e-15)
    assert tr.flipped_label_probability(800.0, eps) == 0.9  # saturates at 1 - eps
    assert tr.flipped_label_probability(1.3, 0.0) == rmnp.preference_probability(1.3, 0.0)
    with pytest.raises(ValueError, match="flip_prob"):
        tr.flipped_label_probability(1.0, -0.1)


def test_label_smoothing_bounds_the_scale():
    d = tr.make_preference_data(n_items=60, n_features=3, n_train=400, n_val=50, labels="deterministic", seed=5)

    def norm(steps, eps):
        m = tr.LinearRewardModel(d.n_features, init="zeros")
        tr.train_reward_model(m, d, steps=steps, lr=0.1, batch_size=400, label_smoothing=eps)
        return m.linear.weight.norm().item()

    # separable pairs: the plain loss keeps stretching the weights, the smoothed one stops
    assert norm(1200, 0.0) > 1.5 * norm(400, 0.0)
    assert norm(1200, 0.1) == pytest.approx(norm(400, 0.1), rel=1e-6)
    with pytest.raises(ValueError, match="label_smoothing"):
        tr.train_reward_model(tr.LinearRewardModel(3), d, steps=1, label_smoothing=0.5)


def test_label_agreement_ceilings():
    d = np.array([0.0, 1.0, -3.0])
    p = np.array([0.5, rmnp.preference_probability(1.0, 0.0), rmnp.preference_probability(3.0, 0.0)])
    got = tr.label_agreement(d)
    assert got["agreement"] == pytest.approx(np.mean(p**2 + (1 - p) ** 2), rel=1e-15)
    assert got["best_accuracy"] == pytest.approx(np.mean(p), rel=1e-15)
    assert got["best_accuracy"] >= got["agreement"]
    # one difficulty for every pair: 73% agreement means p = (1 + sqrt(0.46)) / 2, the ceiling is 0.839
    p73 = (1 + math.sqrt(2 * 0.73 - 1)) / 2
    dd = math.log(p73 / (1 - p73))
    one = tr.label_agreement([dd])
    assert one["agreement"] == pytest.approx(0.73, rel=1e-12) and round(one["best_accuracy"], 3) == 0.839


@pytest.mark.parametrize("fn, param", [(tr.rao_kupper_probabilities, "log_theta"), (tr.davidson_probabilities, "nu")])
def test_ties_models_sum_to_one_and_reduce_to_bradley_terry(fn, param):
    d = np.array([-800.0, -3.0, 0.0, 0.7, 5.0, 800.0])
    for v in (0.0, 0.3, 2.0):
        p = fn(d, v)
        np.testing.assert_allclose(p["win"] + p["loss"] + p["tie"], 1.0, rtol=1e-14)
        np.testing.assert_allclose(fn(-d, v)["win"], p["loss"], rtol=1e-14)  # symmetric
        assert np.all(np.isfinite(p["tie"])) and np.all(p["tie"] >= 0)
    bt = fn(d, 0.0)
    np.testing.assert_allclose(bt["win"], rmnp.preference_probability(d, 0 * d), rtol=1e-14)
    assert np.all(bt["tie"] == 0.0)
    with pytest.raises(ValueError, match=param):
        fn(d, -1.0)


def test_ties_pinned():
    rk = tr.rao_kupper_probabilities(0.0, math.log(2.0))  # theta = 2: win = loss = 1/3, tie = 1/3
    assert rk["win"] == pytest.approx(1 / 3, rel=1e-15) and rk["tie"] == pytest.approx(1 / 3, rel=1e-15)
    dv = tr.davidson_probabilities(0.0, 1.0)  # nu/(2 + nu)
    assert dv["tie"] == pytest.approx(1 / 3, rel=1e-15)
    tiny = tr.rao_kupper_probabilities(0.0, 1e-12)  # no cancellation for a tiny threshold
    assert tiny["tie"] == pytest.approx(0.5 * 1e-12, rel=1e-9)


def test_linear_score_step_rejected_score_can_rise():
    out = tr.linear_score_step([1.0, 4.0], [2.0, 0.0], [1.0, 0.5], 1.0)
    s1 = rmnp.preference_probability(1.0, 0.0)  # sigma(-delta) with delta = -1
    assert (out["r_pref"], out["r_rej"]) == (2.0, 3.0)  # the Q06 pair
    assert (out["k_pp"], out["k_pr"], out["k_rr"]) == (4.0, 2.0, 1.25)
    assert out["d_pref"] == pytest.approx(2 * s1, rel=1e-15) and out["d_rej"] == pytest.approx(0.75 * s1, rel=1e-15)
    assert out["new_r_rej"] > out["r_rej"]  # the rejected score ROSE
    assert out["new_r_pref"] - out["r_pref"] == pytest.approx(out["d_pref"], rel=1e-14)  # exact for a linear model
    assert out["new_r_rej"] - out["r_rej"] == pytest.approx(out["d_rej"], rel=1e-14)
    gap_growth = (out["new_r_pref"] - out["new_r_rej"]) - (out["r_pref"] - out["r_rej"])
    assert gap_growth == pytest.approx(s1 * (4.0 - 2 * 2.0 + 1.25), rel=1e-14)  # sigma * |f_p - f_r|^2
    assert round(out["new_r_pref"], 4) == 3.4621 and round(out["new_r_rej"], 4) == 3.5483


def test_linear_score_step_matches_torch_autograd():
    w = torch.tensor([0.3, -1.2, 0.8], dtype=torch.float64, requires_grad=True)
    fp = torch.tensor([1.0, 0.5, -2.0], dtype=torch.float64)
    fr = torch.tensor([0.2, 1.5, 1.0], dtype=torch.float64)
    loss = -torch.nn.functional.logsigmoid(w @ fp - w @ fr)
    loss.backward()
    new_w = (w - 0.5 * w.grad).detach()
    out = tr.linear_score_step(w.detach(), fp, fr, 0.5)
    np.testing.assert_allclose(out["new_weights"], new_w.numpy(), rtol=1e-14)
    with pytest.raises(ValueError, match="same shape"):
        tr.linear_score_step([1.0], [1.0, 2.0], [1.0, 2.0], 1.0)
