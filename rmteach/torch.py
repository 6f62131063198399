r"""Reference PyTorch implementation of reward-model preference losses.

The same public names, with the same arguments, as :mod:`rmteach.numpy`
(a test checks the signatures), so a notebook cell runs under either::

    from rmteach import torch as rm
    rm.ranking_loss(torch.tensor([2.0, 0.5]), torch.tensor([1.0, 1.5]))

Inputs may be tensors (kept on their device, with their autograd graph, so the
losses train a model), or Python numbers, lists and NumPy arrays, which become
float64 tensors so that ``rm.preference_probability(2.0, 1.0)`` is the same
number under both modules.  float16/bfloat16 tensors are computed in float32,
integer tensors in float64.

**Stable forms.**  Losses use ``torch.nn.functional.logsigmoid``, which is
:math:`\min(x, 0) - \log(1 + e^{-|x|})` (within 1 ulp in float64; the tests
check it against mpmath) and has an exact gradient.  ``softplus`` is *not* used:
its default ``threshold=20`` returns :math:`x` above 20, about :math:`10^5`
ulp off.  Gradients (``*_grad``) come from ``torch.autograd``.

**NaN.**  A NaN reward gives NaN for its pair and any mean over it, as in
:mod:`rmteach.numpy`.
"""

from __future__ import annotations

from typing import Optional, Sequence, Union

import numpy as np
import torch
import torch.nn.functional as F

from rmteach import _checks

__all__ = [
    "log_sigmoid",
    "preference_probability",
    "ranking_loss",
    "ranking_loss_grad",
    "regularized_ranking_loss",
    "listwise_ranking_loss",
    "plackett_luce_loss",
    "ranking_accuracy",
    "center_rewards",
    "soft_ranking_loss",
    "soft_ranking_loss_grad",
    "dpo_implicit_reward",
    "dpo_loss",
]

TensorLike = Union[torch.Tensor, float, int, Sequence[float], np.ndarray]


# --------------------------------------------------------------------------
# argument handling


def _tensor(name: str, x: TensorLike) -> torch.Tensor:
    """``x`` as a float32/float64 tensor; non-tensors go through NumPy's checks."""
    if isinstance(x, torch.Tensor):
        if x.dtype in (torch.float32, torch.float64):
            return x
        if x.dtype in (torch.float16, torch.bfloat16):
            return x.float()
        if x.dtype in (torch.uint8, torch.int8, torch.int16, torch.int32, torch.int64):
            return x.double()
        raise TypeError(
            f"{name} must be a tensor of real numbers (float or integer), got a tensor of dtype {x.dtype}"
        )
    return torch.from_numpy(np.array(_checks.as_real_array(name, x)))


def _pair(name_a: str, x_a: TensorLike, name_b: str, x_b: TensorLike) -> tuple[torch.Tensor, torch.Tensor]:
    a, b = _tensor(name_a, x_a), _tensor(name_b, x_b)
    _checks.check_pair_shapes(name_a, tuple(a.shape), name_b, tuple(b.shape))
    dtype = torch.promote_types(a.dtype, b.dtype)
    return a.to(dtype), b.to(dtype)


def _like(name: str, x: TensorLike, ref_name: str, ref: torch.Tensor) -> torch.Tensor:
    t = _tensor(name, x)
    _checks.check_like(name, tuple(t.shape), ref_name, tuple(ref.shape))
    return t.to(dtype=ref.dtype, device=ref.device)


def _weights(weights: Optional[TensorLike], ref: torch.Tensor) -> Optional[torch.Tensor]:
    if weights is None:
        return None
    w = _tensor("weights", weights)
    _checks.check_weights(w.detach().cpu().numpy(), "r_pref", tuple(ref.shape))
    return w.to(dtype=ref.dtype, device=ref.device)


def _reduce(per_pair: torch.Tensor, w: Optional[torch.Tensor], reduction: str) -> torch.Tensor:
    if w is not None:
        per_pair = per_pair * w
    if reduction == "none":
        return per_pair
    total = per_pair.sum()
    if reduction == "sum":
        return total
    return total / (w.sum() if w is not None else per_pair.numel())


def _autograd(loss_fn, x: torch.Tensor, y: torch.Tensor, *args, **kwargs) -> tuple[torch.Tensor, torch.Tensor]:
    """Gradient of ``loss_fn(x, y, ...)`` (summed if unreduced) with respect to x and y."""
    x = x.detach().requires_grad_(True)
    y = y.detach().requires_grad_(True)
    with torch.enable_grad():
        loss = loss_fn(x, y, *args, **kwargs)
        gx, gy = torch.autograd.grad(loss.sum(), (x, y))
    return gx, gy


# --------------------------------------------------------------------------
# public API


def log_sigmoid(x: TensorLike) -> torch.Tensor:
    r"""Log of the logistic sigmoid, :math:`\log\sigma(x) = -\log(1 + e^{-x})`, elementwise.

    Stable form (``F.logsigmoid``): :math:`\min(x, 0) - \log(1 + e^{-|x|})`.
    Shapes: any; the result has the shape of ``x``.
    """
    return F.logsigmoid(_tensor("x", x))


def preference_probability(r_a: TensorLike, r_b: TensorLike) -> torch.Tensor:
    r"""Bradley–Terry probability that :math:`y_a` is preferred to :math:`y_b`.

    .. math:: P(y_a \succ y_b \mid x) = \frac{e^{r(x,y_a)}}{e^{r(x,y_a)} + e^{r(x,y_b)}}
              = \sigma\bigl(r(x,y_a) - r(x,y_b)\bigr)

    Stable form: ``torch.sigmoid`` of the difference (no exponential overflows).
    Shapes: ``r_a``, ``r_b`` both scalars or both ``(B,)``; result the same.
    """
    a, b = _pair("r_a", r_a, "r_b", r_b)
    return torch.sigmoid(a - b)


def ranking_loss(
    r_pref: TensorLike,
    r_rej: TensorLike,
    margin: TensorLike = 0.0,
    weights: Optional[TensorLike] = None,
    reduction: str = "mean",
) -> torch.Tensor:
    r"""Pair-wise ranking loss: the negative log-likelihood of Bradley–Terry.

    Per pair, with :math:`\Delta = r_{\text{pref}} - r_{\text{rej}} - m`,
    :math:`\ell = -\log\sigma(\Delta)`, computed as ``-F.logsigmoid(Delta)``
    (stable: :math:`\max(-\Delta, 0) + \log(1 + e^{-|\Delta|})`).

    Args:
        r_pref: rewards of the preferred responses, scalar or ``(B,)``.
        r_rej: rewards of the rejected responses, same shape.
        margin: :math:`m`, a scalar or ``(B,)`` (Llama 2's preference-strength margin).
        weights: optional ``(B,)`` per-pair weights :math:`w \ge 0`, not all zero.
        reduction: ``"mean"`` gives :math:`\sum w\ell / \sum w` (plain mean without
            weights), ``"sum"`` gives :math:`\sum w\ell`, ``"none"`` the per-pair
            :math:`w\ell` with the shape of ``r_pref``.
    """
    reduction = _checks.check_reduction(reduction)
    a, b = _pair("r_pref", r_pref, "r_rej", r_rej)
    m = _like("margin", margin, "r_pref", a)
    w = _weights(weights, a)
    return _reduce(-F.logsigmoid(a - b - m), w, reduction)


def ranking_loss_grad(
    r_pref: TensorLike,
    r_rej: TensorLike,
    margin: TensorLike = 0.0,
    weights: Optional[TensorLike] = None,
    reduction: str = "mean",
) -> tuple[torch.Tensor, torch.Tensor]:
    r"""Gradient of :func:`ranking_loss` by ``torch.autograd``: ``(dL/dr_pref, dL/dr_rej)``.

    Analytically :math:`\partial\ell/\partial r_{\text{pref}} = -\sigma(-\Delta)` and
    :math:`\partial\ell/\partial r_{\text{rej}} = +\sigma(-\Delta)`, scaled by
    :math:`w_i/\sum w` for ``"mean"`` and :math:`w_i` for ``"sum"``/``"none"``
    (see :func:`rmteach.numpy.ranking_loss_grad`; the tests check they agree).

    Shapes: both results have the shape of ``r_pref``; they carry no graph.
    """
    reduction = _checks.check_reduction(reduction)
    a, b = _pair("r_pref", r_pref, "r_rej", r_rej)
    m = _like("margin", margin, "r_pref", a).detach()
    w = _weights(weights, a)
    w = None if w is None else w.detach()
    return _autograd(ranking_loss, a, b, m, w, reduction)


def regularized_ranking_loss(r_pref: TensorLike, r_rej: TensorLike, coef: float) -> torch.Tensor:
    r"""Ranking loss plus the centering penalty that pins the rewards' free shift.

    .. math:: \mathcal{L}_{\text{reg}} = \frac{1}{B}\sum_i -\log\sigma(r_{\text{pref},i} - r_{\text{rej},i})
              + \lambda \, \frac{1}{B}\sum_i (r_{\text{pref},i} + r_{\text{rej},i})^2

    with :math:`\lambda` = ``coef`` :math:`\ge 0` (TRL's ``center_rewards_coefficient``).

    **Erratum.**  The book prints the penalty with a minus sign, which would
    reward ever larger rewards; it must be *added*.  A negative ``coef`` raises
    ``ValueError``.  Shapes: scalars or ``(B,)``; the result is a scalar.
    """
    c = _checks.check_coef(coef)
    a, b = _pair("r_pref", r_pref, "r_rej", r_rej)
    return ranking_loss(a, b) + c * torch.mean(torch.square(a + b))


def _ranked(name: str, rewards: TensorLike) -> torch.Tensor:
    r = _tensor(name, rewards)
    _checks.check_ranked_rewards(name, tuple(r.shape))
    return r


def _per_prompt(values: torch.Tensor, ndim: int, reduction: str) -> torch.Tensor:
    if ndim == 1:
        return values[0]
    if reduction == "none":
        return values
    return values.sum() if reduction == "sum" else values.mean()


def listwise_ranking_loss(rewards: TensorLike, reduction: str = "mean") -> torch.Tensor:
    r"""List-wise loss from accumulated pair-wise comparisons (InstructGPT's form).

    ``rewards`` holds one prompt's :math:`N` responses in ranked order, best first:

    .. math:: \mathcal{L}_{\text{list}} = \frac{1}{\binom{N}{2}} \sum_{i<j} -\log\sigma(r_i - r_j)

    over the ground-truth direction of each pair (the book's literal
    :math:`\frac{1}{N(N-1)}\sum_{y_a\ne y_b}` over both directions is minimized by
    equal rewards).  Shapes: ``(N,)`` gives a scalar; ``(B, N)`` the mean over
    prompts (``"sum"``: their sum; ``"none"``: per prompt, ``(B,)``).
    """
    reduction = _checks.check_reduction(reduction)
    r = _ranked("rewards", rewards)
    r2 = r.reshape(-1, r.shape[-1])
    i, j = torch.triu_indices(r2.shape[1], r2.shape[1], offset=1, device=r.device)
    per_prompt = -F.logsigmoid(r2[:, i] - r2[:, j]).mean(dim=1)
    return _per_prompt(per_prompt, r.dim(), reduction)


def plackett_luce_loss(rewards: TensorLike, reduction: str = "mean") -> torch.Tensor:
    r"""Negative log-probability of a ranking (best first) under Plackett–Luce.

    .. math:: \mathcal{L}_{\text{PL}} = -\log\prod_{k=1}^{N} \frac{e^{r_k}}{\sum_{m \ge k} e^{r_m}}
              = \sum_{k=1}^{N} \Bigl(\log\sum_{m\ge k} e^{r_m} - r_k\Bigr)

    Stable form: each factor is a Bradley–Terry comparison of response :math:`k`
    against :math:`S_{k+1} = \log\sum_{m>k} e^{r_m}` (``torch.logcumsumexp``),
    :math:`-\log\sigma(r_k - S_{k+1})`, which avoids cancellation and equals the
    pair-wise loss for :math:`N = 2`.  Shapes: ``(N,)`` gives a scalar; ``(B, N)``
    the mean over prompts.
    """
    reduction = _checks.check_reduction(reduction)
    r = _ranked("rewards", rewards)
    r2 = r.reshape(-1, r.shape[-1])
    below = torch.logcumsumexp(r2[:, 1:].flip(-1), dim=-1).flip(-1)  # S_{k+1}, k = 1..N-1
    per_prompt = -F.logsigmoid(r2[:, :-1] - below).sum(dim=1)
    return _per_prompt(per_prompt, r.dim(), reduction)


def ranking_accuracy(r_pref: TensorLike, r_rej: TensorLike) -> torch.Tensor:
    r"""Fraction of pairs with :math:`r_{\text{pref}} > r_{\text{rej}}` strictly (ties are wrong).

    NaN in any pair gives NaN.  Shapes: scalars or ``(B,)``; the result is a
    float64 scalar tensor.
    """
    a, b = _pair("r_pref", r_pref, "r_rej", r_rej)
    a, b = a.detach(), b.detach()
    if torch.isnan(a).any() or torch.isnan(b).any():
        return torch.tensor(float("nan"), dtype=torch.float64)
    return (a > b).to(torch.float64).mean()


def center_rewards(r: TensorLike) -> torch.Tensor:
    r"""Subtract the mean reward per prompt: :math:`r_i - \frac{1}{N}\sum_j r_j`.

    Changes no preference probability and no ranking loss (up to rounding).
    Shapes: ``(N,)`` or ``(B, N)`` (each row centred on its own; stack pairs as
    ``(B, 2)``); the result has the shape of ``r``.
    """
    t = _tensor("r", r)
    if t.dim() not in (1, 2) or t.numel() == 0:
        raise ValueError(
            f"r must have shape (N,) or (B, N) with N >= 1 and B >= 1, got shape {tuple(t.shape)}"
        )
    return t - t.mean(dim=-1, keepdim=True)


def _soft(r_a: TensorLike, r_b: TensorLike, p: TensorLike) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    a, b = _pair("r_a", r_a, "r_b", r_b)
    prob = _like("p", p, "r_a", a)
    _checks.check_probability("p", prob.detach().cpu().numpy())
    return a, b, prob


def soft_ranking_loss(r_a: TensorLike, r_b: TensorLike, p: TensorLike, reduction: str = "mean") -> torch.Tensor:
    r"""Ranking loss with a soft label :math:`p` = probability that :math:`y_a` is preferred.

    .. math:: \ell = -p\log\sigma(\Delta) - (1 - p)\log\sigma(-\Delta), \quad \Delta = r_a - r_b

    Both terms use ``F.logsigmoid``.  Shapes and ``reduction`` as in
    :func:`ranking_loss`; ``p`` a scalar or ``(B,)`` in [0, 1].
    """
    reduction = _checks.check_reduction(reduction)
    a, b, prob = _soft(r_a, r_b, p)
    d = a - b
    return _reduce(-prob * F.logsigmoid(d) - (1 - prob) * F.logsigmoid(-d), None, reduction)


def soft_ranking_loss_grad(
    r_a: TensorLike, r_b: TensorLike, p: TensorLike, reduction: str = "mean"
) -> tuple[torch.Tensor, torch.Tensor]:
    r"""Gradient of :func:`soft_ranking_loss` by ``torch.autograd``: ``(dL/dr_a, dL/dr_b)``.

    Analytically :math:`\sigma(\Delta) - p` and :math:`p - \sigma(\Delta)` per pair
    (divided by :math:`B` for ``"mean"``).  Shapes: both results have the shape of
    ``r_a``; they carry no graph.
    """
    reduction = _checks.check_reduction(reduction)
    a, b, prob = _soft(r_a, r_b, p)
    return _autograd(soft_ranking_loss, a, b, prob.detach(), reduction)


# --------------------------------------------------------------------------
# DPO: the ranking loss on implicit rewards

_DPO_LOGPS = ("policy_chosen_logps", "policy_rejected_logps", "ref_chosen_logps", "ref_rejected_logps")


def _beta_value(beta: float) -> float:
    if isinstance(beta, torch.Tensor):
        beta = beta.detach().cpu().numpy()
    return _checks.check_beta(beta)


def _dpo_logps(values: tuple) -> list[torch.Tensor]:
    """The four log-probabilities of :func:`dpo_loss`: same shape, one dtype, on the first one's device."""
    ts = [_tensor(name, v) for name, v in zip(_DPO_LOGPS, values)]
    for name, t in zip(_DPO_LOGPS[1:], ts[1:]):
        _checks.check_pair_shapes(_DPO_LOGPS[0], tuple(ts[0].shape), name, tuple(t.shape))
    dtype = ts[0].dtype
    for t in ts[1:]:
        dtype = torch.promote_types(dtype, t.dtype)
    return [t.to(dtype=dtype, device=ts[0].device) for t in ts]


def _implicit(p: torch.Tensor, r: torch.Tensor, beta: float) -> torch.Tensor:
    """``beta * (p - r)`` in the dtype of ``p`` (``beta`` rounded to that precision)."""
    return (p - r) * torch.tensor(beta, dtype=p.dtype, device=p.device)


def dpo_implicit_reward(policy_logps: TensorLike, ref_logps: TensorLike, beta: float) -> torch.Tensor:
    r"""DPO's implicit reward: :math:`\hat r(x, y) = \beta \log\frac{\pi_\theta(y\mid x)}{\pi_{\text{ref}}(y\mid x)}`.

    .. math:: \hat r(x, y) = \beta\bigl(\log\pi_\theta(y\mid x) - \log\pi_{\text{ref}}(y\mid x)\bigr)

    Defined **up to the per-prompt constant** :math:`\beta\log Z(x)`: the
    KL-regularized optimum gives :math:`r = \beta\log\frac{\pi^*}{\pi_{\text{ref}}} + \beta\log Z(x)`
    (see :func:`rmteach.numpy.dpo_implicit_reward`).  Computed as written, in the
    inputs' precision; gradients flow to both arguments.

    Shapes: ``policy_logps`` and ``ref_logps`` of the same shape (any); the result
    has that shape.  ``beta`` > 0.
    """
    b = _beta_value(beta)
    p, r = _tensor("policy_logps", policy_logps), _tensor("ref_logps", ref_logps)
    if p.shape != r.shape:
        raise ValueError(
            f"policy_logps and ref_logps must have the same shape, "
            f"got policy_logps {tuple(p.shape)} and ref_logps {tuple(r.shape)}"
        )
    dtype = torch.promote_types(p.dtype, r.dtype)
    return _implicit(p.to(dtype), r.to(dtype=dtype, device=p.device), b)


def dpo_loss(
    policy_chosen_logps: TensorLike,
    policy_rejected_logps: TensorLike,
    ref_chosen_logps: TensorLike,
    ref_rejected_logps: TensorLike,
    beta: float = 0.1,
    reduction: str = "mean",
) -> torch.Tensor:
    r"""Direct Preference Optimization (Rafailov et al. 2023): Bradley–Terry on implicit rewards.

    .. math:: \ell = -\log\sigma\Bigl(\beta\bigl[(\pi_c - \text{ref}_c) - (\pi_r - \text{ref}_r)\bigr]\Bigr)
              = -\log\sigma\bigl(\hat r_c - \hat r_r\bigr)

    with :math:`\pi_{c,r}` the policy's and :math:`\text{ref}_{c,r}` the reference
    model's log-probabilities of the chosen and rejected responses, and
    :math:`\hat r` = :func:`dpo_implicit_reward`.  :math:`Z(x)` **cancels**: the
    true reward is :math:`\hat r + \beta\log Z(x)` and both responses share the
    prompt :math:`x`, so the partition function drops out of the difference.

    Stable form: ``-F.logsigmoid(r_c - r_r)`` on the two implicit rewards,
    :math:`\max(-\Delta, 0) + \log(1 + e^{-|\Delta|})`, finite and within a few
    ulp for :math:`|\Delta|` up to 1000 in float64 and float32, with an exact
    gradient :math:`\partial\ell/\partial\pi_c = -\beta\,\sigma(-\Delta)`.  Pass the
    reference log-probabilities computed under ``torch.no_grad()`` (they are
    constants of the objective); nothing here detaches them.

    Shapes: the four log-probabilities scalars or ``(B,)``, all the same shape;
    ``beta`` > 0; ``reduction`` as in :func:`ranking_loss`.
    """
    reduction = _checks.check_reduction(reduction)
    b = _beta_value(beta)
    pc, pr, rc, rr = _dpo_logps((policy_chosen_logps, policy_rejected_logps, ref_chosen_logps, ref_rejected_logps))
    return _reduce(-F.logsigmoid(_implicit(pc, rc, b) - _implicit(pr, rr, b)), None, reduction)
