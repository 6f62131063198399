"""One suite over both implementations: pinned numbers, agreement, extremes, dtypes and shapes."""

from __future__ import annotations

import inspect
import math
import warnings

import numpy as np
import pytest
import torch

from _impls import IMPLS, as_np
from rmteach import naive
from rmteach import numpy as rmnp
from rmteach import torch as rmtorch


def softplus(x: float) -> float:
    """-log sigma(-x) in plain Python floats, an independent reference for moderate x."""
    return max(x, 0.0) + math.log1p(math.exp(-abs(x)))


# ---------------------------------------------------------------- the same API


def test_both_modules_expose_the_same_names_with_the_same_arguments():
    assert rmnp.__all__ == rmtorch.__all__
    for name in rmnp.__all__:
        np_sig = inspect.signature(getattr(rmnp, name))
        t_sig = inspect.signature(getattr(rmtorch, name))
        assert [(p.name, p.default, p.kind) for p in np_sig.parameters.values()] == [
            (p.name, p.default, p.kind) for p in t_sig.parameters.values()
        ], name


@pytest.mark.parametrize("rm", IMPLS)
def test_every_public_function_documents_formula_and_shapes(rm):
    for name in rm.__all__:
        fn = getattr(rm, name)
        doc = inspect.getdoc(fn) or ""
        assert ":math:" in doc or "math::" in doc, f"{name}: no LaTeX formula in the docstring"
        assert "Shapes" in doc or "shape" in doc, f"{name}: docstring does not state the shapes"
        hints = inspect.get_annotations(fn)
        assert "return" in hints and len(hints) == len(inspect.signature(fn).parameters) + 1, name


# ---------------------------------------------------------------- pinned numbers


@pytest.mark.parametrize("rm", IMPLS)
class TestPinnedNumbers:
    def test_equal_rewards_cost_ln2(self, rm):
        assert float(rm.ranking_loss(0.7, 0.7)) == math.log(2) == 0.6931471805599453

    def test_probability_of_a_one_point_lead(self, rm):
        assert float(rm.preference_probability(2.0, 1.0)) == pytest.approx(1 / (1 + math.exp(-1)), rel=1e-15)
        assert float(rm.preference_probability(2.0, 1.0)) == pytest.approx(0.7310585786300049, rel=1e-15)

    def test_model_a_beats_model_b_by_its_larger_margin(self, rm):
        loss_a = float(rm.ranking_loss(3.2, 1.5))
        loss_b = float(rm.ranking_loss(-0.5, -2.0))
        assert loss_a == pytest.approx(softplus(-1.7), rel=1e-15)
        assert loss_b == pytest.approx(softplus(-1.5), rel=1e-15)
        assert loss_a == pytest.approx(0.16778603, abs=5e-9) and loss_b == pytest.approx(0.20141328, abs=5e-9)
        assert loss_a < loss_b

    def test_gradient_from_two_and_three(self, rm):
        g_pref, g_rej = rm.ranking_loss_grad(2.0, 3.0)
        s = 1 / (1 + math.exp(-1.0))  # sigma(-Delta) with Delta = -1
        assert float(g_pref) == pytest.approx(-s, rel=1e-15) and float(g_rej) == pytest.approx(s, rel=1e-15)
        assert float(g_pref) == -float(g_rej)

    def test_margin_shifts_the_difference(self, rm):
        assert float(rm.ranking_loss(1.0, 0.0, margin=1.0)) == math.log(2)
        assert float(rm.ranking_loss(3.0, 0.0, margin=1.0)) == pytest.approx(softplus(-2.0), rel=1e-15)

    def test_per_pair_margins_and_weights(self, rm):
        a, b, m, w = [2.0, 0.0, 1.0], [1.0, 1.0, 1.0], [0.5, 0.0, 1.0], [1.0, 3.0, 0.0]
        per = [softplus(-(x - y - mm)) for x, y, mm in zip(a, b, m)]
        np.testing.assert_allclose(as_np(rm.ranking_loss(a, b, margin=m, reduction="none", weights=w)),
                                   np.multiply(per, w), rtol=1e-15)
        assert float(rm.ranking_loss(a, b, margin=m, weights=w, reduction="sum")) == pytest.approx(
            per[0] + 3 * per[1], rel=1e-15)
        assert float(rm.ranking_loss(a, b, margin=m, weights=w)) == pytest.approx((per[0] + 3 * per[1]) / 4, rel=1e-15)

    def test_listwise_of_three(self, rm):
        r = [2.0, 1.0, -1.0]
        expected = (softplus(-1.0) + softplus(-3.0) + softplus(-2.0)) / 3
        assert float(rm.listwise_ranking_loss(r)) == pytest.approx(expected, rel=1e-15)

    def test_plackett_luce_of_three(self, rm):
        r = [2.0, 1.0, -1.0]
        expected = -(2.0 - math.log(math.exp(2) + math.exp(1) + math.exp(-1))) - (
            1.0 - math.log(math.exp(1) + math.exp(-1)))
        assert float(rm.plackett_luce_loss(r)) == pytest.approx(expected, rel=1e-14)

    def test_batched_lists_reduce_over_prompts(self, rm):
        r = [[2.0, 1.0, -1.0], [0.0, 0.0, 0.0]]
        per = as_np(rm.listwise_ranking_loss(r, reduction="none"))
        assert per.shape == (2,) and per[1] == math.log(2)
        assert float(rm.listwise_ranking_loss(r)) == pytest.approx(per.mean(), rel=1e-15)
        assert float(rm.plackett_luce_loss(r, reduction="sum")) == pytest.approx(
            as_np(rm.plackett_luce_loss(r, reduction="none")).sum(), rel=1e-15)
        assert as_np(rm.plackett_luce_loss(r, reduction="none"))[1] == pytest.approx(math.log(6), rel=1e-15)

    def test_regularized_loss_adds_the_penalty(self, rm):
        a, b = [2.0, 0.5], [1.0, -0.5]
        base = (softplus(-1.0) + softplus(-1.0)) / 2
        penalty = ((2.0 + 1.0) ** 2 + (0.5 - 0.5) ** 2) / 2
        assert float(rm.regularized_ranking_loss(a, b, 0.01)) == pytest.approx(base + 0.01 * penalty, rel=1e-15)
        assert float(rm.regularized_ranking_loss(a, b, 0.0)) == float(rm.ranking_loss(a, b))

    def test_ties_count_as_wrong(self, rm):
        assert float(rm.ranking_accuracy([1.0, 2.0, 3.0, 0.0], [0.0, 2.0, 1.0, 1.0])) == 0.5
        assert float(rm.ranking_accuracy([1.0, 1.0], [1.0, 1.0])) == 0.0

    def test_soft_label_one_half_is_symmetric(self, rm):
        loss = float(rm.soft_ranking_loss(1.0, 0.0, 0.5))
        assert loss == pytest.approx(0.5 * softplus(-1.0) + 0.5 * softplus(1.0), rel=1e-15)
        g_a, g_b = rm.soft_ranking_loss_grad(1.0, 0.0, 0.5)
        assert float(g_a) == pytest.approx(1 / (1 + math.exp(-1)) - 0.5, rel=1e-14)
        assert float(g_b) == -float(g_a)

    def test_centering_a_ranked_list(self, rm):
        np.testing.assert_array_equal(as_np(rm.center_rewards([3.0, 1.0, 2.0])), [1.0, -1.0, 0.0])
        np.testing.assert_array_equal(as_np(rm.center_rewards([[3.0, 1.0], [-5.0, -7.0]])), [[1.0, -1.0], [1.0, -1.0]])


# ---------------------------------------------------------------- NumPy and Torch agree


CASES = {
    "log_sigmoid": lambda rm, a, b: rm.log_sigmoid(a - b),
    "preference_probability": lambda rm, a, b: rm.preference_probability(a, b),
    "ranking_loss/none": lambda rm, a, b: rm.ranking_loss(a, b, reduction="none"),
    "ranking_loss/mean+margin+weights": lambda rm, a, b: rm.ranking_loss(a, b, 0.3, np.abs(b) + 0.1),
    "ranking_loss/sum": lambda rm, a, b: rm.ranking_loss(a, b, reduction="sum"),
    "ranking_loss_grad/mean": lambda rm, a, b: rm.ranking_loss_grad(a, b, 0.3, np.abs(a) + 0.5)[0],
    "ranking_loss_grad/none": lambda rm, a, b: rm.ranking_loss_grad(a, b, reduction="none")[1],
    "regularized_ranking_loss": lambda rm, a, b: rm.regularized_ranking_loss(a, b, 0.01),
    "listwise_ranking_loss": lambda rm, a, b: rm.listwise_ranking_loss(np.stack([a, b, a - b], axis=1), "none"),
    "plackett_luce_loss": lambda rm, a, b: rm.plackett_luce_loss(np.stack([a, b, a - b], axis=1), "none"),
    "ranking_accuracy": lambda rm, a, b: rm.ranking_accuracy(a, b),
    "center_rewards": lambda rm, a, b: rm.center_rewards(np.stack([a, b], axis=1)),
    "soft_ranking_loss": lambda rm, a, b: rm.soft_ranking_loss(a, b, np.linspace(0, 1, a.size), "none"),
    "soft_ranking_loss_grad": lambda rm, a, b: rm.soft_ranking_loss_grad(a, b, 0.7)[0],
    "dpo_loss/none": lambda rm, a, b: rm.dpo_loss(a, b, 0.5 * b, 0.5 * a, 0.1, "none"),
    "dpo_loss/mean": lambda rm, a, b: rm.dpo_loss(a, b, 0.5 * b, 0.5 * a, 0.5),
    "dpo_implicit_reward": lambda rm, a, b: rm.dpo_implicit_reward(a, b, 0.1),
}


@pytest.mark.parametrize("case", list(CASES))
def test_numpy_and_torch_agree_in_float64(case):
    rng = np.random.default_rng(7)
    a = np.concatenate([rng.normal(0, 3, 500), rng.uniform(-700, 700, 100), [0.0, 1e-9, -40.0, 40.0]])
    b = np.concatenate([rng.normal(0, 3, 500), rng.uniform(-700, 700, 100), [0.0, 0.0, 0.0, 0.0]])
    got_np = as_np(CASES[case](rmnp, a, b))
    got_t = as_np(CASES[case](rmtorch, a, b))
    assert got_np.dtype == got_t.dtype == np.float64
    np.testing.assert_allclose(got_np, got_t, rtol=1e-12, atol=1e-300)


def test_all_public_functions_are_covered_by_the_agreement_test():
    covered = {case.split("/")[0] for case in CASES}
    assert covered == set(rmnp.__all__)


# ---------------------------------------------------------------- extremes


@pytest.mark.parametrize("rm", IMPLS)
@pytest.mark.parametrize(
    "dtype, big", [(np.float64, 1000.0), (np.float32, 90.0), (np.float32, 100.0)], ids=["f64-1000", "f32-90", "f32-100"]
)
def test_extreme_rewards_give_finite_exact_losses_and_gradients(rm, dtype, big):
    a = np.array([big, -big, big, 0.0], dtype=dtype)
    b = np.array([-big, big, big, 0.0], dtype=dtype)
    per = as_np(rm.ranking_loss(a, b, reduction="none"))
    assert per.dtype == dtype
    assert np.all(np.isfinite(per))
    # Wrong by 2*big: the loss is 2*big (exact to rounding); right by 2*big: about e^{-2*big} >= 0.
    assert per[1] == pytest.approx(2 * big, rel=float(np.finfo(dtype).eps))
    assert 0 <= per[0] <= np.finfo(dtype).eps
    assert per[2] == pytest.approx(math.log(2), rel=float(np.finfo(dtype).eps)) and per[3] == per[2]
    for reduction in ("mean", "sum", "none"):
        assert np.all(np.isfinite(as_np(rm.ranking_loss(a, b, reduction=reduction))))
        for g in rm.ranking_loss_grad(a, b, reduction=reduction):
            assert np.all(np.isfinite(as_np(g))) and as_np(g).dtype == dtype
    g_pref, g_rej = (as_np(g) for g in rm.ranking_loss_grad(a, b, reduction="none"))
    np.testing.assert_array_equal(g_pref, -g_rej)
    assert g_pref[1] == -1.0 and g_pref[0] == 0.0 and g_pref[2] == -0.5
    probs = as_np(rm.preference_probability(a, b))
    assert probs[0] == 1.0 and probs[1] == 0.0 and probs[2] == 0.5
    assert np.all(np.isfinite(as_np(rm.log_sigmoid(np.concatenate([a, -a])))))
    for f in (rm.listwise_ranking_loss, rm.plackett_luce_loss):
        value = as_np(f(np.stack([a, b], axis=1), reduction="none"))
        assert np.all(np.isfinite(value))
    assert np.isfinite(as_np(rm.regularized_ranking_loss(a, b, 0.01)))
    assert np.all(np.isfinite(as_np(rm.soft_ranking_loss(a, b, 0.3, reduction="none"))))


def test_the_naive_formula_is_kept_only_as_a_bad_example():
    """-log(sigmoid(x)) breaks exactly where rmteach does not (and this is why)."""
    a32 = np.array([-100.0, 20.0], dtype=np.float32)
    b32 = np.zeros(2, dtype=np.float32)
    naive32 = naive.naive_ranking_loss(a32, b32)
    assert np.isinf(naive32[0]) and naive32[1] == 0.0  # inf loss, and a lost tiny loss
    stable32 = rmnp.ranking_loss(a32, b32, reduction="none")
    assert stable32[0] == np.float32(100.0) and stable32[1] > 0
    assert np.isinf(naive.naive_ranking_loss(-1000.0, 0.0))
    assert rmnp.ranking_loss(-1000.0, 0.0) == 1000.0
    assert np.isnan(naive.naive_preference_probability(800.0, 799.0))
    assert rmnp.preference_probability(800.0, 799.0) == rmnp.preference_probability(1.0, 0.0)
    # torch's softplus with its default threshold is the other trap: off by ~1e5 ulp near 20.
    x = torch.tensor([-20.5], dtype=torch.float64)
    assert torch.nn.functional.softplus(-x).item() != rmtorch.ranking_loss(x, 0.0 * x).item()


# ---------------------------------------------------------------- dtypes and shapes


@pytest.mark.parametrize("rm", IMPLS)
def test_scalars_in_scalars_out_and_batches_keep_their_shape(rm):
    assert as_np(rm.ranking_loss(1.0, 2.0)).shape == ()
    assert as_np(rm.ranking_loss(1.0, 2.0, reduction="none")).shape == ()
    assert as_np(rm.preference_probability([1.0, 2.0, 3.0], [0.0, 0.0, 0.0])).shape == (3,)
    g = rm.ranking_loss_grad([1.0, 2.0], [0.0, 0.0])
    assert len(g) == 2 and as_np(g[0]).shape == (2,)
    assert as_np(rm.ranking_loss_grad(1.0, 2.0)[0]).shape == ()


@pytest.mark.parametrize("rm", IMPLS)
def test_float32_stays_float32_and_integers_become_float64(rm):
    a32 = np.array([1.0, 2.0], dtype=np.float32)
    assert as_np(rm.ranking_loss(a32, a32[::-1].copy())).dtype == np.float32
    assert as_np(rm.ranking_loss(a32, a32[::-1].copy(), reduction="none")).dtype == np.float32
    assert as_np(rm.preference_probability(np.array([3, 1]), np.array([1, 1]))).dtype == np.float64
    assert as_np(rm.ranking_loss(a32, np.array([1.0, 1.0]))).dtype == np.float64  # promoted


def test_torch_keeps_the_autograd_graph_and_device():
    a = torch.tensor([1.0, 2.0], requires_grad=True)
    b = torch.tensor([0.5, 2.5])
    loss = rmtorch.regularized_ranking_loss(a, b, 0.1)
    loss.backward()
    assert a.grad is not None and a.grad.shape == (2,)
    assert rmtorch.listwise_ranking_loss(torch.zeros(3, requires_grad=True)).requires_grad


def test_numpy_reductions_do_not_depend_on_the_thread_count(monkeypatch):
    rng = np.random.default_rng(3)
    a, b = rng.normal(size=300_001), rng.normal(size=300_001)
    w = rng.uniform(size=a.size)
    results = {}
    for threads in ("1", "2", "3"):
        monkeypatch.setenv("RMTEACH_NUM_THREADS", threads)
        results[threads] = (rmnp.ranking_loss(a, b, weights=w), rmnp.ranking_loss(a, b, reduction="none"),
                            rmnp.ranking_loss_grad(a, b)[0])
    for threads in ("2", "3"):
        assert results[threads][0] == results["1"][0]
        np.testing.assert_array_equal(results[threads][1], results["1"][1])
        np.testing.assert_array_equal(results[threads][2], results["1"][2])
    # and the blocked sum is the exact sum of the per-pair losses to a few ulp
    per = results["1"][1].astype(np.float64)
    assert results["1"][0] == pytest.approx(math.fsum(per * w) / math.fsum(w), rel=1e-14)


def test_no_warnings_on_extreme_inputs():
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        rmnp.ranking_loss([-1e300, 1e300], [1e300, -1e300], reduction="none")
        rmnp.preference_probability([-1e300, 1e300], [1e300, -1e300])
        rmnp.ranking_loss_grad([-1e300, 1e300], [1e300, -1e300])


def test_torch_rejects_bool_tensors_naming_the_argument():
    with pytest.raises(TypeError, match=r"r_pref must be a tensor of real numbers .* got a tensor of dtype torch.bool"):
        rmtorch.ranking_loss(torch.tensor([True]), torch.tensor([1.0]))


def test_the_books_sign_erratum_is_a_labelled_bad_example():
    """L_pair - lambda*mean((r_pref + r_rej)^2) falls without bound as both rewards grow."""
    values = [naive.erratum_regularized_ranking_loss([2.0 + c], [1.0 + c], 0.01) for c in (0.0, 10.0, 100.0, 1000.0)]
    assert all(x > y for x, y in zip(values, values[1:])) and values[-1] < -1e4
    assert values[0] == pytest.approx(float(rmnp.ranking_loss(2.0, 1.0)) - 0.01 * 9.0, rel=1e-15)
    assert rmnp.regularized_ranking_loss([1002.0], [1001.0], 0.01) > rmnp.regularized_ranking_loss([2.0], [1.0], 0.01)
