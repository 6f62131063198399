"""The NumPy analytic gradients against torch.autograd and against central differences."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from _impls import as_np
from rmteach import numpy as rmnp
from rmteach import torch as rmtorch
from rmteach.gradcheck import central_difference, check_gradient

RNG = np.random.default_rng(11)
A = RNG.normal(0, 2, 9)
B = RNG.normal(0, 2, 9)
W = RNG.uniform(0.1, 3, 9)
M = RNG.uniform(0, 1, 9)

VARIANTS = {
    "plain": dict(),
    "margin": dict(margin=0.7),
    "per-pair margin": dict(margin=M),
    "weights": dict(weights=W),
    "margin+weights": dict(margin=M, weights=W),
}


@pytest.mark.parametrize("reduction", ["mean", "sum"])
@pytest.mark.parametrize("variant", list(VARIANTS))
def test_analytic_gradient_matches_central_differences(variant, reduction):
    kw = VARIANTS[variant]
    check_gradient(
        lambda r_pref, r_rej: rmnp.ranking_loss(r_pref, r_rej, reduction=reduction, **kw),
        lambda r_pref, r_rej: rmnp.ranking_loss_grad(r_pref, r_rej, reduction=reduction, **kw),
        {"r_pref": A, "r_rej": B},
    )


@pytest.mark.parametrize("reduction", ["mean", "sum", "none"])
@pytest.mark.parametrize("variant", list(VARIANTS))
def test_analytic_gradient_matches_torch_autograd(variant, reduction):
    kw = VARIANTS[variant]
    for got, want in zip(rmnp.ranking_loss_grad(A, B, reduction=reduction, **kw),
                         rmtorch.ranking_loss_grad(A, B, reduction=reduction, **kw)):
        np.testing.assert_allclose(got, as_np(want), rtol=1e-13, atol=1e-300)


def test_unreduced_gradient_is_each_pairs_own_derivative():
    g_pref, _ = rmnp.ranking_loss_grad(A, B, weights=W, reduction="none")
    for i in range(3):
        def f_i(r_pref, r_rej, i=i):
            return rmnp.ranking_loss(r_pref, r_rej, weights=W, reduction="none")[i]
        numeric = central_difference(f_i, {"r_pref": A, "r_rej": B}, "r_pref")
        np.testing.assert_allclose(numeric[i], g_pref[i], rtol=1e-6)
        assert np.all(np.delete(numeric, i) == 0)


def test_soft_label_gradient_matches_both_references():
    p = RNG.uniform(0, 1, 9)
    check_gradient(
        lambda r_a, r_b: rmnp.soft_ranking_loss(r_a, r_b, p),
        lambda r_a, r_b: rmnp.soft_ranking_loss_grad(r_a, r_b, p),
        {"r_a": A, "r_b": B},
    )
    for got, want in zip(rmnp.soft_ranking_loss_grad(A, B, p, "sum"), rmtorch.soft_ranking_loss_grad(A, B, p, "sum")):
        np.testing.assert_allclose(got, as_np(want), rtol=1e-13)


def test_gradient_at_a_tie_is_one_half():
    # the stable form must not lose the derivative at Delta = 0 (|x| has a kink there)
    for rm in (rmnp, rmtorch):
        g_pref, g_rej = rm.ranking_loss_grad(0.0, 0.0)
        assert float(g_pref) == -0.5 and float(g_rej) == 0.5


def test_torch_losses_backpropagate_like_the_numpy_gradient():
    a = torch.tensor(A, requires_grad=True)
    b = torch.tensor(B, requires_grad=True)
    rmtorch.ranking_loss(a, b, margin=0.2, weights=torch.tensor(W)).backward()
    g_pref, g_rej = rmnp.ranking_loss_grad(A, B, margin=0.2, weights=W)
    np.testing.assert_allclose(a.grad.numpy(), g_pref, rtol=1e-13)
    np.testing.assert_allclose(b.grad.numpy(), g_rej, rtol=1e-13)


@pytest.mark.parametrize("name", ["listwise_ranking_loss", "plackett_luce_loss", "regularized_ranking_loss"])
def test_torch_autograd_of_the_other_losses_matches_central_differences(name):
    r = RNG.normal(0, 1, (3, 4))
    if name == "regularized_ranking_loss":
        def f(x):
            return rmnp.regularized_ranking_loss(x[:, 0], x[:, 1], 0.05)

        def ft(x):
            return rmtorch.regularized_ranking_loss(x[:, 0], x[:, 1], 0.05)
    else:
        def f(x):
            return getattr(rmnp, name)(x)

        def ft(x):
            return getattr(rmtorch, name)(x)
    t = torch.tensor(r, requires_grad=True)
    ft(t).backward()
    numeric = central_difference(f, {"x": r}, "x")
    np.testing.assert_allclose(t.grad.numpy(), numeric, rtol=1e-6, atol=1e-9)


def test_check_gradient_names_the_argument_and_index_when_wrong():
    def wrong_grad(r_pref, r_rej):
        g_pref, g_rej = rmnp.ranking_loss_grad(r_pref, r_rej)
        g_rej = g_rej.copy()
        g_rej[4] *= 1.5
        return g_pref, g_rej

    with pytest.raises(AssertionError, match=r"d/dr_rej\[4\]: analytic"):
        check_gradient(rmnp.ranking_loss, wrong_grad, {"r_pref": A, "r_rej": B})
