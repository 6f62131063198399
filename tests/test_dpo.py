"""DPO: dpo_loss and dpo_implicit_reward, one suite over NumPy and Torch.

References are independent of the code under test: plain-Python softplus on
hand-computed logits, mpmath at 50 digits, torch.autograd for the gradient and
central differences of the NumPy loss.
"""

from __future__ import annotations

import inspect
import math

import mpmath
import numpy as np
import pytest
import torch
from hypothesis import given
from hypothesis import strategies as st

import strategies as S
from _impls import IMPLS, as_np
from rmteach import numpy as rmnp
from rmteach import rlhf
from rmteach import torch as rmtorch
from rmteach.gradcheck import check_gradient

mpmath.mp.dps = 50

NAMES = ("policy_chosen_logps", "policy_rejected_logps", "ref_chosen_logps", "ref_rejected_logps")


def softplus(x: float) -> float:
    """-log sigma(-x) in plain Python floats (an independent reference for moderate x)."""
    return max(x, 0.0) + math.log1p(math.exp(-abs(x)))


def mp_dpo(pc, pr, rc, rr, beta) -> mpmath.mpf:
    """-log sigma(beta * ((pc - rc) - (pr - rr))) exactly, for the exact values of the float inputs."""
    z = mpmath.mpf(float(beta)) * ((mpmath.mpf(float(pc)) - mpmath.mpf(float(rc)))
                                   - (mpmath.mpf(float(pr)) - mpmath.mpf(float(rr))))
    return mpmath.log1p(mpmath.exp(-z))


# ---------------------------------------------------------------- the API


def test_dpo_is_exported_by_both_modules_with_one_signature():
    for name in ("dpo_loss", "dpo_implicit_reward"):
        assert name in rmnp.__all__ and name in rmtorch.__all__
        assert inspect.signature(getattr(rmnp, name)).parameters.keys() == \
            inspect.signature(getattr(rmtorch, name)).parameters.keys()
    params = inspect.signature(rmnp.dpo_loss).parameters
    assert list(params) == [*NAMES, "beta", "reduction"]
    assert params["beta"].default == 0.1 and params["reduction"].default == "mean"
    assert list(inspect.signature(rmnp.dpo_implicit_reward).parameters) == ["policy_logps", "ref_logps", "beta"]


@pytest.mark.parametrize("rm", IMPLS)
def test_docstrings_give_the_formula_the_stable_form_and_why_z_cancels(rm):
    doc = inspect.getdoc(rm.dpo_loss)
    assert "math::" in doc and "Shapes" in doc and "Stable form" in doc
    assert "Z(x)" in doc and "cancels" in doc
    doc = inspect.getdoc(rm.dpo_implicit_reward)
    assert "math::" in doc and "Shapes" in doc and r"\beta\log Z(x)" in doc and "up to the per-prompt" in doc


# ---------------------------------------------------------------- pinned numbers


@pytest.mark.parametrize("rm", IMPLS)
class TestPinnedNumbers:
    def test_zero_logits_cost_ln2(self, rm):
        # the policy moved the same amount away from the reference on both responses
        assert float(rm.dpo_loss(-3.0, -5.0, -3.0, -5.0)) == math.log(2) == 0.6931471805599453
        assert float(rm.dpo_loss(-2.0, -9.0, -4.0, -11.0, beta=3.0)) == math.log(2)

    def test_a_hand_worked_pair(self, rm):
        # implicit rewards 0.1 * (-1 + 1.5) = 0.05 and 0.1 * (-2 + 1) = -0.1, so Delta = 0.15
        loss = float(rm.dpo_loss(-1.0, -2.0, -1.5, -1.0, beta=0.1))
        assert loss == pytest.approx(math.log1p(math.exp(-0.15)), rel=1e-15)
        assert loss == pytest.approx(0.6209570477895321, rel=1e-15)
        assert float(rm.dpo_implicit_reward(-1.0, -1.5, 0.1)) == pytest.approx(0.05, rel=1e-15)
        assert float(rm.dpo_implicit_reward(-2.0, -1.0, 0.1)) == pytest.approx(-0.1, rel=1e-15)

    def test_beta_one_and_a_margin_of_two(self, rm):
        assert float(rm.dpo_loss(-10.0, -12.0, -10.0, -10.0, beta=1.0)) == pytest.approx(0.1269280110429725, rel=1e-15)
        # the wrong way round costs the margin plus the same tail
        assert float(rm.dpo_loss(-12.0, -10.0, -10.0, -10.0, beta=1.0)) == pytest.approx(2.1269280110429727, rel=1e-15)

    def test_a_batch_and_its_reductions(self, rm):
        pc, pr = [-1.0, -3.0, -2.0], [-2.0, -1.0, -2.0]
        rc, rr = [-1.5, -2.0, -2.0], [-1.5, -2.0, -2.0]
        beta = 0.5
        per = [softplus(-beta * ((a - c) - (b - d))) for a, b, c, d in zip(pc, pr, rc, rr)]
        np.testing.assert_allclose(as_np(rm.dpo_loss(pc, pr, rc, rr, beta, "none")), per, rtol=1e-15)
        assert float(rm.dpo_loss(pc, pr, rc, rr, beta, "sum")) == pytest.approx(math.fsum(per), rel=1e-15)
        assert float(rm.dpo_loss(pc, pr, rc, rr, beta)) == pytest.approx(math.fsum(per) / 3, rel=1e-15)
        assert as_np(rm.dpo_loss(pc, pr, rc, rr, beta, "none"))[2] == math.log(2)


# ---------------------------------------------------------------- NumPy and Torch agree


def _batch(seed: int = 5):
    rng = np.random.default_rng(seed)
    n = 400
    pc, pr = -rng.exponential(40, n), -rng.exponential(40, n)
    rc, rr = pc + rng.normal(0, 3, n), pr + rng.normal(0, 3, n)
    # and a few pairs far out in the tails (|beta * logits| up to ~1000 at beta = 0.1)
    pc[:4], pr[:4], rc[:4], rr[:4] = [-1.0, -5001.0, -3.0, -3.0], [-5001.0, -1.0, -3.0, -3.0], -3.0, -3.0
    return pc, pr, rc, rr


@pytest.mark.parametrize("beta", [0.1, 0.5, 2.0])
@pytest.mark.parametrize("reduction", ["none", "mean", "sum"])
def test_numpy_and_torch_agree_in_float64(beta, reduction):
    args = _batch()
    got_np = as_np(rmnp.dpo_loss(*args, beta, reduction))
    got_t = as_np(rmtorch.dpo_loss(*args, beta, reduction))
    assert got_np.dtype == got_t.dtype == np.float64
    np.testing.assert_allclose(got_np, got_t, rtol=1e-12, atol=1e-300)
    pc, _, rc, _ = args
    np.testing.assert_allclose(as_np(rmnp.dpo_implicit_reward(pc, rc, beta)),
                               as_np(rmtorch.dpo_implicit_reward(pc, rc, beta)), rtol=1e-15, atol=0)


def _torch_grads(args, beta, reduction="mean"):
    ts = [torch.tensor(a, dtype=torch.float64, requires_grad=True) for a in args]
    loss = rmtorch.dpo_loss(*ts, beta=beta, reduction=reduction)
    return [g.numpy() for g in torch.autograd.grad(loss.sum(), ts)]


@pytest.mark.parametrize("reduction", ["mean", "sum"])
def test_torch_gradient_is_the_chain_rule_through_the_ranking_loss(reduction):
    """dL/dpi_c = -beta * sigma(-Delta) / B, and so on: beta times the ranking-loss gradient."""
    args = [a[:50] for a in _batch(8)]
    beta = 0.3
    g = _torch_grads(args, beta, reduction)
    pc, pr, rc, rr = args
    g_c, g_r = rmnp.ranking_loss_grad(rmnp.dpo_implicit_reward(pc, rc, beta), rmnp.dpo_implicit_reward(pr, rr, beta),
                                      reduction=reduction)
    for got, want in zip(g, [beta * g_c, beta * g_r, -beta * g_c, -beta * g_r]):
        np.testing.assert_allclose(got, want, rtol=1e-13, atol=1e-300)
    # a step along -grad makes the chosen response more likely and the rejected one less
    assert np.all(g[0][4:] < 0) and np.all(g[1][4:] > 0)


def test_torch_gradient_matches_central_differences_of_the_numpy_loss():
    rng = np.random.default_rng(2)
    args = dict(zip(NAMES, (-rng.exponential(5, 7) for _ in range(4))))
    check_gradient(
        lambda **kw: rmnp.dpo_loss(**kw, beta=0.7),
        lambda **kw: _torch_grads([kw[n] for n in NAMES], 0.7),
        args,
        rtol=1e-7,
        atol=1e-10,
    )


def test_the_gradient_check_can_fail():
    """A wrong gradient (the sign of beta flipped on the reference terms) is caught, naming the argument."""
    rng = np.random.default_rng(3)
    args = dict(zip(NAMES, (-rng.exponential(5, 3) for _ in range(4))))

    def wrong(**kw):
        g = _torch_grads([kw[n] for n in NAMES], 0.7)
        return g[0], g[1], -g[2], -g[3]

    with pytest.raises(AssertionError, match=r"d/dref_chosen_logps\[\d\]"):
        check_gradient(lambda **kw: rmnp.dpo_loss(**kw, beta=0.7), wrong, args)


# ---------------------------------------------------------------- properties


@pytest.mark.parametrize("rm", IMPLS)
class TestProperties:
    @given(batch=S.dpo_batches(), beta=S.betas)
    def test_dpo_is_the_ranking_loss_on_implicit_rewards_bit_for_bit(self, rm, batch, beta):
        pc, pr, rc, rr = batch
        r_c, r_r = rm.dpo_implicit_reward(pc, rc, beta), rm.dpo_implicit_reward(pr, rr, beta)
        np.testing.assert_array_equal(as_np(rm.dpo_loss(pc, pr, rc, rr, beta, "none")),
                                      as_np(rm.ranking_loss(r_c, r_r, reduction="none")))
        assert as_np(rm.dpo_loss(pc, pr, rc, rr, beta)) == as_np(rm.ranking_loss(r_c, r_r))

    @given(batch=S.dpo_batches(elements=S.dyadic_logps), c=S.dyadic, beta=S.dyadic_betas)
    def test_per_prompt_constants_cancel_exactly(self, rm, batch, c, beta):
        """beta log Z(x) is such a constant: added to both rewards of a prompt, it changes nothing."""
        pc, pr, rc, rr = batch
        base = as_np(rm.dpo_loss(pc, pr, rc, rr, beta, "none"))
        for shifted in (
            (pc + c, pr + c, rc, rr),  # both policy logps of the prompt (both implicit rewards move by beta*c)
            (pc, pr, rc + c, rr + c),  # both reference logps of the prompt
            (pc + c, pr, rc + c, rr),  # policy and reference of the chosen response (a common shift)
            (pc, pr + c, rc, rr + c),  # ... of the rejected response
            (pc + c, pr + c, rc + c, rr + c),  # all four
        ):
            np.testing.assert_array_equal(as_np(rm.dpo_loss(*shifted, beta, "none")), base)

    @given(batch=S.dpo_batches(), c=S.shifts, beta=S.betas)
    def test_per_prompt_constants_cancel_up_to_rounding(self, rm, batch, c, beta):
        pc, pr, rc, rr = batch
        base = as_np(rm.dpo_loss(pc, pr, rc, rr, beta, "none"))
        shifted = as_np(rm.dpo_loss(pc + c, pr + c, rc, rr, beta, "none"))
        # |dl/dDelta| <= 1 and Delta moves by a few ulp of beta * (|logps| + |c|)
        tol = 8 * np.finfo(np.float64).eps * beta * (np.abs(pc) + np.abs(pr) + np.abs(rc) + np.abs(rr) + 2 * abs(c))
        assert np.all(np.abs(shifted - base) <= tol + 1e-300)

    @given(batch=S.dpo_batches(elements=S.dyadic_logps), d=S.dyadic, beta=S.betas)
    def test_ln2_whenever_the_logits_vanish(self, rm, batch, d, beta):
        pc, _, rc, _ = batch
        # pi_r - ref_r = pi_c - ref_c, exactly
        np.testing.assert_array_equal(as_np(rm.dpo_loss(pc, pc + d, rc, rc + d, beta, "none")), math.log(2))

    @given(batch=S.dpo_batches(), beta=S.betas, gap=st.floats(0.0, 100.0))
    def test_nonnegative_and_monotone(self, rm, batch, beta, gap):
        pc, pr, rc, rr = batch
        base = as_np(rm.dpo_loss(pc, pr, rc, rr, beta, "none"))
        assert np.all(base >= 0) and np.all(np.isfinite(base))
        # the chosen response more likely under the policy: the loss cannot rise
        assert np.all(as_np(rm.dpo_loss(pc + gap, pr, rc, rr, beta, "none")) <= base)
        # the rejected response more likely: it cannot fall
        assert np.all(as_np(rm.dpo_loss(pc, pr + gap, rc, rr, beta, "none")) >= base)
        # and a reference that already liked the chosen response more leaves less to gain
        assert np.all(as_np(rm.dpo_loss(pc, pr, rc + gap, rr, beta, "none")) >= base)

    @given(batch=S.dpo_batches(elements=S.dyadic_logps), beta=S.dyadic_betas, k=st.integers(-3, 3))
    def test_beta_scales_the_log_ratios(self, rm, batch, beta, k):
        """Only beta * logits matters: beta * s with logps / s is the same loss (exact for s = 2**k)."""
        s = 2.0**k
        pc, pr, rc, rr = batch
        np.testing.assert_array_equal(as_np(rm.dpo_loss(pc / s, pr / s, rc / s, rr / s, beta * s, "none")),
                                      as_np(rm.dpo_loss(pc, pr, rc, rr, beta, "none")))

    @given(batch=S.dpo_batches(), beta=S.betas, factor=st.floats(1.01, 10.0))
    def test_a_larger_beta_sharpens_the_loss(self, rm, batch, beta, factor):
        """Scaling beta moves the loss away from ln 2: down for pairs ranked right, up for pairs ranked wrong."""
        pc, pr, rc, rr = batch
        logits = (pc - rc) - (pr - rr)
        small = as_np(rm.dpo_loss(pc, pr, rc, rr, beta, "none"))
        big = as_np(rm.dpo_loss(pc, pr, rc, rr, beta * factor, "none"))
        right, wrong = logits > 1e-9, logits < -1e-9
        assert np.all(big[right] <= small[right]) and np.all(big[wrong] >= small[wrong])


def test_the_implicit_reward_of_the_kl_optimum_is_the_reward_minus_beta_log_z():
    """pi* = pi_ref e^{r/beta} / Z: beta log(pi*/pi_ref) = r - beta log Z, so DPO on pi* is the ranking loss on r."""
    ref = np.array([0.2, 0.3, 0.25, 0.05, 0.2])
    r = np.array([2.5, 1.0, 0.0, 4.0, -2.0])
    beta = 0.7
    star = rlhf.kl_regularized_policy(ref, r, beta)
    log_z = mpmath.log(mpmath.fsum(mpmath.mpf(p) * mpmath.exp(mpmath.mpf(x) / beta) for p, x in zip(ref, r)))
    implicit = rmnp.dpo_implicit_reward(np.log(star), np.log(ref), beta)
    np.testing.assert_allclose(implicit - r, -beta * float(log_z), rtol=1e-13)
    i, j = np.triu_indices(5, k=1)
    np.testing.assert_allclose(
        rmnp.dpo_loss(np.log(star[i]), np.log(star[j]), np.log(ref[i]), np.log(ref[j]), beta, "none"),
        rmnp.ranking_loss(r[i], r[j], reduction="none"), rtol=1e-13)


# ---------------------------------------------------------------- extremes


def _extreme_case(dtype):
    """Dyadic logps whose beta * logits are exact: +-1000, +-700, +-80, +-30, +-1e-3-ish, 0."""
    beta = 0.5
    z = np.array([1000.0, -1000.0, 700.0, -700.0, 80.0, -80.0, 30.0, -30.0, 2.0**-10, -(2.0**-10), 0.0])
    half = z / beta / 2  # split the logits evenly between the two log ratios
    pc = np.full(z.size, -1.0) + 0.0
    rc = pc - half
    pr = np.full(z.size, -1.0)
    rr = pr + half
    return [x.astype(dtype) for x in (pc, pr, rc, rr)], beta, z


@pytest.mark.parametrize("rm", IMPLS)
@pytest.mark.parametrize("dtype", [np.float64, np.float32], ids=["f64", "f32"])
def test_extreme_logits_are_finite_and_within_a_few_ulp_of_mpmath(rm, dtype):
    args, beta, z = _extreme_case(dtype)
    got = as_np(rm.dpo_loss(*args, beta, "none"))
    assert got.dtype == dtype and np.all(np.isfinite(got))
    finfo = np.finfo(dtype)
    if dtype == np.float32:
        keep = np.abs(z) != 700.0  # e^-700 is below float32's range; check the rest (and +-1000) in float32
        got, z, args = got[keep], z[keep], [a[keep] for a in args]
    want = np.array([float(mp_dpo(*vals, beta)) for vals in zip(*args)])
    # where the exact value underflows the dtype, 0 (or the smallest subnormal) is the right answer
    np.testing.assert_allclose(got, want.astype(dtype), rtol=4 * float(finfo.eps), atol=float(finfo.smallest_subnormal))
    assert got[1] == 1000.0 and got[0] == 0.0  # wrong by 1000 costs 1000; right by 1000 costs e^-1000
    for reduction in ("mean", "sum"):
        total = as_np(rm.dpo_loss(*args, beta, reduction))
        assert np.isfinite(total) and total.dtype == dtype


@pytest.mark.parametrize("rm", IMPLS)
@pytest.mark.parametrize("dtype", [np.float64, np.float32], ids=["f64", "f32"])
def test_large_losses_with_beta_one_tenth(rm, dtype):
    """beta = 0.1 and logits +-10000: the loss is |beta * logits| to a few ulp (beta rounded to the dtype)."""
    pc = np.array([-1.0, -5001.0], dtype=dtype)  # log ratios +-5000 on each response
    pr = np.array([-5001.0, -1.0], dtype=dtype)
    rc, rr = pr.copy(), pc.copy()
    got = as_np(rm.dpo_loss(pc, pr, rc, rr, 0.1, "none"))
    beta = float(dtype(0.1))
    want = [float(mp_dpo(*vals, beta)) for vals in zip(pc, pr, rc, rr)]
    assert want[1] == pytest.approx(1000.0, rel=1e-7)
    assert got.dtype == dtype and np.all(np.isfinite(got))
    assert got[0] == 0.0
    assert got[1] == pytest.approx(want[1], rel=4 * float(np.finfo(dtype).eps))


@pytest.mark.parametrize("rm", IMPLS)
def test_the_naive_formula_would_overflow_where_dpo_loss_does_not(rm):
    z = np.array([-1000.0])
    with np.errstate(over="ignore", divide="ignore"):
        naive = -np.log(1.0 / (1.0 + np.exp(-z)))
    assert np.isinf(naive[0])
    assert float(rm.dpo_loss(-1001.0, -1.0, -1.0, -1001.0, beta=0.5)) == 1000.0


# ---------------------------------------------------------------- dtypes, shapes, NaN, autograd


@pytest.mark.parametrize("rm", IMPLS)
def test_dtypes_and_shapes(rm):
    f32 = [np.array([-1.0, -2.0], dtype=np.float32) for _ in range(4)]
    assert as_np(rm.dpo_loss(*f32)).dtype == np.float32
    assert as_np(rm.dpo_loss(*f32, reduction="none")).dtype == np.float32
    assert as_np(rm.dpo_implicit_reward(f32[0], f32[1], 0.1)).dtype == np.float32
    ints = [np.array([-3, -1]), np.array([-2, -2]), np.array([-1, -1]), np.array([-2, -2])]
    assert as_np(rm.dpo_loss(*ints)).dtype == np.float64
    assert as_np(rm.dpo_loss(*f32[:3], np.array([-1.0, -1.0]))).dtype == np.float64  # promoted
    assert as_np(rm.dpo_loss(-1.0, -2.0, -1.0, -1.0)).shape == ()
    assert as_np(rm.dpo_loss(-1.0, -2.0, -1.0, -1.0, reduction="none")).shape == ()
    assert as_np(rm.dpo_loss([-1.0] * 3, [-2.0] * 3, [-1.0] * 3, [-1.0] * 3, reduction="none")).shape == (3,)
    # the implicit reward is elementwise: per-token (B, T) log-probabilities keep their shape
    assert as_np(rm.dpo_implicit_reward(np.zeros((2, 5)) - 1, np.zeros((2, 5)) - 2, 0.1)).shape == (2, 5)


@pytest.mark.parametrize("rm", IMPLS)
def test_nan_propagates_to_its_pair_and_the_mean(rm):
    pc, pr = [-1.0, math.nan, -3.0], [-2.0, -2.0, -2.0]
    ref = [-1.5, -1.5, -1.5]
    per = as_np(rm.dpo_loss(pc, pr, ref, ref, reduction="none"))
    assert np.isnan(per[1]) and np.all(np.isfinite(per[[0, 2]]))
    assert np.isnan(as_np(rm.dpo_loss(pc, pr, ref, ref)))


def test_torch_trains_the_policy_and_keeps_dtype_and_device():
    policy = torch.tensor([-5.0, -7.0], requires_grad=True)  # log pi(y_c), log pi(y_r)
    ref = torch.tensor([-6.0, -6.0])
    before = rmtorch.dpo_loss(policy[0], policy[1], ref[0], ref[1], beta=0.5)
    assert before.requires_grad and before.dtype == torch.float32
    opt = torch.optim.SGD([policy], lr=1.0)
    for _ in range(20):
        opt.zero_grad()
        rmtorch.dpo_loss(policy[0], policy[1], ref[0], ref[1], beta=0.5).backward()
        opt.step()
    after = rmtorch.dpo_loss(policy[0], policy[1], ref[0], ref[1], beta=0.5)
    assert after < before and policy[0] > -5.0 and policy[1] < -7.0
    beta_t = torch.tensor(0.5)
    assert rmtorch.dpo_loss(-1.0, -2.0, -1.0, -1.0, beta=beta_t) == rmtorch.dpo_loss(-1.0, -2.0, -1.0, -1.0, 0.5)


# ---------------------------------------------------------------- bad input


GOOD = dict(policy_chosen_logps=[-1.0, -2.0], policy_rejected_logps=[-2.0, -2.0],
            ref_chosen_logps=[-1.5, -1.5], ref_rejected_logps=[-1.5, -1.5])


@pytest.mark.parametrize("rm", IMPLS)
class TestBadInput:
    @pytest.mark.parametrize("beta", [0.0, -0.1, math.inf, -math.inf, math.nan])
    def test_beta_must_be_finite_and_positive(self, rm, beta):
        with pytest.raises(ValueError, match=r"^beta must be a finite number > 0, got"):
            rm.dpo_loss(**GOOD, beta=beta)
        with pytest.raises(ValueError, match=r"^beta must be a finite number > 0, got"):
            rm.dpo_implicit_reward([-1.0], [-2.0], beta)

    @pytest.mark.parametrize("beta, error, message", [
        ([0.1, 0.2], ValueError, r"^beta must be a single number, got shape \(2,\)"),
        ("0.1", TypeError, r"^beta must be a real number"),
        (None, TypeError, r"^beta must be a real number"),
        (True, TypeError, r"^beta must be a real number"),
    ])
    def test_beta_must_be_one_real_number(self, rm, beta, error, message):
        with pytest.raises(error, match=message):
            rm.dpo_loss(**GOOD, beta=beta)
        with pytest.raises(error, match=message):
            rm.dpo_implicit_reward(-1.0, -2.0, beta)

    @pytest.mark.parametrize("name", NAMES)
    @pytest.mark.parametrize("bad", ["abc", None, [1.0, "x"], np.array([True, False]), 1 + 2j])
    def test_non_numeric_logps_name_the_argument(self, rm, name, bad):
        with pytest.raises(TypeError, match=rf"^{name} must be a real number"):
            rm.dpo_loss(**{**GOOD, name: bad})

    @pytest.mark.parametrize("name", NAMES[1:])
    def test_mismatched_shapes_name_both_arguments(self, rm, name):
        with pytest.raises(ValueError, match=rf"policy_chosen_logps and {name} must have the same shape, "
                                             rf"got policy_chosen_logps \(2,\) and {name} \(3,\)"):
            rm.dpo_loss(**{**GOOD, name: [-1.0, -1.0, -1.0]})

    @pytest.mark.parametrize("name", NAMES)
    def test_two_dimensional_logps_are_refused(self, rm, name):
        message = rf"{name} must be a scalar or a 1-D batch of shape \(B,\), got shape \(2, 1\)"
        with pytest.raises(ValueError, match=message):
            rm.dpo_loss(**{**GOOD, name: [[-1.0], [-2.0]]})

    def test_empty_batch(self, rm):
        with pytest.raises(ValueError, match=r"empty batch"):
            rm.dpo_loss([], [], [], [])

    @pytest.mark.parametrize("reduction", ["avg", "MEAN", None, 1])
    def test_unknown_reduction(self, rm, reduction):
        with pytest.raises(ValueError, match=r"^reduction must be one of 'mean', 'sum' or 'none', got"):
            rm.dpo_loss(**GOOD, reduction=reduction)

    def test_implicit_reward_arguments(self, rm):
        with pytest.raises(TypeError, match=r"^policy_logps must be a real number"):
            rm.dpo_implicit_reward("low", -1.0, 0.1)
        with pytest.raises(TypeError, match=r"^ref_logps must be a real number"):
            rm.dpo_implicit_reward(-1.0, None, 0.1)
        with pytest.raises(ValueError, match=r"^policy_logps and ref_logps must have the same shape, "
                                             r"got policy_logps \(2,\) and ref_logps \(3,\)"):
            rm.dpo_implicit_reward([-1.0, -2.0], [-1.0, -2.0, -3.0], 0.1)
