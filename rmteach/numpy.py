r"""Reference NumPy implementation of reward-model preference losses.

The same public names, with the same arguments, live in :mod:`rmteach.torch`,
so a notebook cell runs under either::

    from rmteach import numpy as rm      # or: from rmteach import torch as rm
    rm.preference_probability(2.0, 1.0)  # sigma(1) = 0.7310585786300049

Inputs are Python numbers, NumPy arrays or lists: a scalar for one pair, shape
``(B,)`` for a batch of ``B`` pairs, and ``(N,)`` or ``(B, N)`` for the
list-wise losses.  float32 and float64 are computed in their own precision,
integers as float64 and float16 as float32.  Scalars in give NumPy scalars out.

**Stable forms.**  Every loss is written with the softplus identity

.. math:: -\log\sigma(\Delta) = \max(-\Delta, 0) + \log\bigl(1 + e^{-|\Delta|}\bigr),

whose ``exp`` never overflows and whose ``log1p`` keeps the tiny losses of
well-separated pairs; float64 results are within 1 ulp of the exact value.
The naive ``-log(sigmoid(x))`` lives only in :mod:`rmteach.naive`, as a bad
example.

**NaN and infinity.**  A NaN reward, margin or soft label gives NaN for that
pair, and so for any mean or sum over it (and for :func:`ranking_accuracy`);
nothing is silently replaced.  Infinite rewards follow IEEE arithmetic
(``r_pref = +inf`` against a finite ``r_rej`` has loss 0; ``inf - inf`` is NaN).
Weights must be finite.

Functions that reduce a batch (``reduction="mean"`` or ``"sum"``) sum per-block
partials with :func:`math.fsum`, so their result does not depend on the number
of threads used (see :mod:`rmteach._blocks`).
"""

from __future__ import annotations

import math
from typing import Optional, Union

import numpy as np
from numpy.typing import ArrayLike

from rmteach import _checks
from rmteach._blocks import map_blocks

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

Real = Union[np.ndarray, np.floating]


# --------------------------------------------------------------------------
# in-place kernels on one block (the only places the formulas are evaluated)


def _neg_log_sigmoid_inplace(d: np.ndarray, tmp: np.ndarray) -> None:
    r"""``d <- -log sigma(d) = max(-d, 0) + log1p(exp(-|d|))``; ``tmp`` is scratch."""
    np.negative(d, out=tmp)
    np.minimum(d, tmp, out=d)  # -|d|
    np.maximum(tmp, 0, out=tmp)  # max(-d, 0)
    np.exp(d, out=d)  # e^{-|d|} in (0, 1]: never overflows
    np.log1p(d, out=d)  # log1p keeps the tiny values log(1 + e) would round to 0
    np.add(d, tmp, out=d)


def _sigmoid_neg_inplace(d: np.ndarray, tmp: np.ndarray) -> None:
    r"""``d <- sigma(-d) = exp(-max(d, 0)) / (1 + exp(-|d|))``; ``tmp`` is scratch.

    That is ``e/(1+e)`` for ``d >= 0`` and ``1/(1+e)`` for ``d < 0`` with
    ``e = exp(-|d|)``: no exponential overflows, and the tiny values of
    ``sigma(-d)`` for large ``d`` keep full relative precision.  (Selecting
    between the two branches with a mask is ~20x slower in NumPy than the
    second ``exp``.)
    """
    np.negative(d, out=tmp)
    np.minimum(tmp, d, out=tmp)  # -|d|
    np.negative(d, out=d)
    np.minimum(d, 0, out=d)  # -max(d, 0)
    np.exp(d, out=d)
    np.exp(tmp, out=tmp)
    np.add(tmp, 1, out=tmp)
    np.divide(d, tmp, out=d)


# --------------------------------------------------------------------------
# argument handling


def _pair(name_a: str, x_a: ArrayLike, name_b: str, x_b: ArrayLike) -> tuple[np.ndarray, np.ndarray]:
    a = _checks.as_real_array(name_a, x_a)
    b = _checks.as_real_array(name_b, x_b)
    _checks.check_pair_shapes(name_a, a.shape, name_b, b.shape)
    dtype = np.result_type(a, b)
    return a.astype(dtype, copy=False), b.astype(dtype, copy=False)


def _like(name: str, x: ArrayLike, ref_name: str, ref: np.ndarray) -> np.ndarray:
    arr = _checks.as_real_array(name, x)
    _checks.check_like(name, arr.shape, ref_name, ref.shape)
    return arr.astype(ref.dtype, copy=False)


def _weights(weights: Optional[ArrayLike], ref: np.ndarray) -> Optional[np.ndarray]:
    if weights is None:
        return None
    w = _checks.as_real_array("weights", weights)
    _checks.check_weights(w, "r_pref", ref.shape)
    return w.astype(ref.dtype, copy=False)


def _flat(x: np.ndarray) -> np.ndarray:
    return np.ascontiguousarray(x).reshape(-1)


def _block(x: Optional[np.ndarray], lo: int, hi: int):
    """Elements lo:hi of a flat array; a 0-d array (a shared scalar) as it is."""
    if x is None or x.ndim == 0:
        return x
    return x[lo:hi]


def _scalar_out(x: np.ndarray, shape: tuple) -> Real:
    """Reshape a flat result; a 0-d result becomes a NumPy scalar."""
    return x.reshape(shape)[()]


def _blockwise(
    kernel,
    x: np.ndarray,
    y: Optional[np.ndarray] = None,
    shift: Optional[np.ndarray] = None,
    weights: Optional[np.ndarray] = None,
    total: bool = False,
    finish=None,
):
    """``kernel(x - y - shift) * weights``, evaluated block by block.

    ``y``, ``shift`` and ``weights`` are optional.  Returns the flat per-element
    array, or with ``total=True`` only its sum (a Python float: per-block sums
    added with :func:`math.fsum`), without ever holding the whole array.
    ``finish(block, lo, hi)``, if given, runs last on each block while it is
    still in cache.
    """
    xf = _flat(x)
    yf = None if y is None else _flat(y)
    sf = None if shift is None else (shift if shift.ndim == 0 else _flat(shift))
    wf = None if weights is None else _flat(weights)
    out = None if total else np.empty(xf.size, dtype=x.dtype)

    def run(lo: int, hi: int) -> Optional[float]:
        o = np.empty(hi - lo, dtype=x.dtype) if total else out[lo:hi]
        if yf is None:
            np.copyto(o, xf[lo:hi])
        else:
            np.subtract(xf[lo:hi], yf[lo:hi], out=o)
        if sf is not None:
            np.subtract(o, _block(sf, lo, hi), out=o)
        kernel(o, np.empty_like(o))
        if wf is not None:
            np.multiply(o, wf[lo:hi], out=o)
        if finish is not None:
            finish(o, lo, hi)
        return float(o.sum()) if total else None

    parts = map_blocks(run, xf.size)
    return math.fsum(parts) if total else out


def _nonzero_margin(m: np.ndarray) -> Optional[np.ndarray]:
    return None if (m.ndim == 0 and m == 0) else m


def _weight_sum(w: Optional[np.ndarray], n: int) -> float:
    return float(n) if w is None else float(np.sum(w, dtype=np.float64))


def _reduce_pairs(kernel, a, b, m, w, reduction: str) -> Real:
    """Per-pair ``w * kernel(a - b - m)``, reduced as ``reduction`` says."""
    if reduction == "none":
        return _scalar_out(_blockwise(kernel, a, b, m, w), a.shape)
    total = _blockwise(kernel, a, b, m, w, total=True)
    if reduction == "mean":
        total /= _weight_sum(w, a.size)
    return a.dtype.type(total)


# --------------------------------------------------------------------------
# public API


def log_sigmoid(x: ArrayLike) -> Real:
    r"""Log of the logistic sigmoid, :math:`\log\sigma(x) = -\log(1 + e^{-x})`, elementwise.

    Stable form: :math:`\log\sigma(x) = \min(x, 0) - \log(1 + e^{-|x|})`, so
    :math:`x = -1000` gives ``-1000.0`` (not ``-inf``) and :math:`x = 40` gives
    ``-4.2e-18`` (not ``0``).

    Shapes: any; the result has the shape of ``x``.
    """
    arr = _checks.as_real_array("x", x)
    out = _blockwise(_neg_log_sigmoid_inplace, arr)
    np.negative(out, out=out)
    return _scalar_out(out, arr.shape)


def preference_probability(r_a: ArrayLike, r_b: ArrayLike) -> Real:
    r"""Bradley–Terry probability that response :math:`y_a` is preferred to :math:`y_b`.

    .. math:: P(y_a \succ y_b \mid x) = \frac{e^{r(x,y_a)}}{e^{r(x,y_a)} + e^{r(x,y_b)}}
              = \sigma\bigl(r(x,y_a) - r(x,y_b)\bigr)

    Stable form: with :math:`\Delta = r_a - r_b` and :math:`e = e^{-|\Delta|}`,
    :math:`\sigma(\Delta) = 1/(1+e)` for :math:`\Delta \ge 0` and :math:`e/(1+e)`
    otherwise, so no exponential overflows.

    Shapes: ``r_a`` and ``r_b`` both scalars or both ``(B,)``; result the same.
    """
    a, b = _pair("r_a", r_a, "r_b", r_b)
    # sigma(a - b) = sigma(-(b - a))
    return _scalar_out(_blockwise(_sigmoid_neg_inplace, b, a), a.shape)


def ranking_loss(
    r_pref: ArrayLike,
    r_rej: ArrayLike,
    margin: ArrayLike = 0.0,
    weights: Optional[ArrayLike] = None,
    reduction: str = "mean",
) -> Real:
    r"""Pair-wise ranking loss: the negative log-likelihood of Bradley–Terry.

    Per pair, with :math:`\Delta = r_{\text{pref}} - r_{\text{rej}} - m`,

    .. math:: \ell = -\log\sigma(\Delta) = \max(-\Delta, 0) + \log\bigl(1 + e^{-|\Delta|}\bigr)

    (the right-hand side is the stable form used).  The empirical loss over a
    dataset :math:`D` is the mean,
    :math:`\mathcal{L} = -\frac{1}{|D|}\sum_{D} \log\sigma(r(x,y_a) - r(x,y_b))`.

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
    m = _nonzero_margin(_like("margin", margin, "r_pref", a))
    w = _weights(weights, a)
    return _reduce_pairs(_neg_log_sigmoid_inplace, a, b, m, w, reduction)


def ranking_loss_grad(
    r_pref: ArrayLike,
    r_rej: ArrayLike,
    margin: ArrayLike = 0.0,
    weights: Optional[ArrayLike] = None,
    reduction: str = "mean",
) -> tuple[Real, Real]:
    r"""Analytic gradient of :func:`ranking_loss`: ``(dL/dr_pref, dL/dr_rej)``.

    With :math:`\Delta_i = r_{\text{pref},i} - r_{\text{rej},i} - m_i`,

    .. math:: \frac{\partial \ell_i}{\partial r_{\text{pref},i}} = -\sigma(-\Delta_i)
              = -(1 - \sigma(\Delta_i)), \qquad
              \frac{\partial \ell_i}{\partial r_{\text{rej},i}} = +\sigma(-\Delta_i),

    scaled by :math:`w_i / \sum w` for ``"mean"`` (:math:`1/B` without weights)
    and by :math:`w_i` for ``"sum"`` and ``"none"`` (``"none"`` gives each
    pair's derivative of its own :math:`w_i\ell_i`).  The two parts are equal and
    opposite: a gradient step moves the two rewards apart by the same amount.
    :math:`\sigma(-\Delta)` is computed in the stable two-branch form.

    Shapes: both results have the shape of ``r_pref``.
    """
    reduction = _checks.check_reduction(reduction)
    a, b = _pair("r_pref", r_pref, "r_rej", r_rej)
    m = _nonzero_margin(_like("margin", margin, "r_pref", a))
    w = _weights(weights, a)
    denom = a.dtype.type(_weight_sum(w, a.size)) if reduction == "mean" else None
    g_pref = np.empty(a.size, dtype=a.dtype)

    def finish(g_rej: np.ndarray, lo: int, hi: int) -> None:
        if denom is not None:
            np.divide(g_rej, denom, out=g_rej)
        np.negative(g_rej, out=g_pref[lo:hi])

    g_rej = _blockwise(_sigmoid_neg_inplace, a, b, m, w, finish=finish)  # w * sigma(-Delta), scaled
    return _scalar_out(g_pref, a.shape), _scalar_out(g_rej, a.shape)


def regularized_ranking_loss(r_pref: ArrayLike, r_rej: ArrayLike, coef: float) -> Real:
    r"""Ranking loss plus the centering penalty that pins the rewards' free shift.

    .. math:: \mathcal{L}_{\text{reg}} = \frac{1}{B}\sum_i -\log\sigma(r_{\text{pref},i} - r_{\text{rej},i})
              + \lambda \, \frac{1}{B}\sum_i (r_{\text{pref},i} + r_{\text{rej},i})^2

    with :math:`\lambda` = ``coef`` :math:`\ge 0` (TRL's ``center_rewards_coefficient``,
    recommended 0.01).  The ranking loss only sees differences, so adding a
    constant to every reward leaves it unchanged; the penalty is smallest when
    the rewards of each pair are centred on 0.

    **Erratum.**  The book prints :math:`\mathcal{L}_{\text{pair}} - E[(r_a + r_b)^2]`.
    With that minus sign the loss falls without bound as rewards grow, the
    opposite of the stated purpose; the penalty must be *added*.  A negative
    ``coef`` raises ``ValueError``.

    Shapes: ``r_pref``, ``r_rej`` scalars or ``(B,)``; the result is a scalar.
    """
    c = _checks.check_coef(coef)
    a, b = _pair("r_pref", r_pref, "r_rej", r_rej)
    s = a + b
    penalty = float(np.mean(np.square(s, dtype=np.float64)))
    return a.dtype.type(float(ranking_loss(a, b)) + c * penalty)


def _ranked(name: str, rewards: ArrayLike) -> np.ndarray:
    r = _checks.as_real_array(name, rewards)
    _checks.check_ranked_rewards(name, r.shape)
    return r


def _per_prompt(values: np.ndarray, shape: tuple, reduction: str) -> Real:
    """Reduce per-prompt losses ``(B,)``; ``(N,)`` input gives a scalar."""
    if len(shape) == 1:
        return values[0]
    if reduction == "none":
        return values
    total = math.fsum(values.astype(np.float64))
    return values.dtype.type(total if reduction == "sum" else total / values.size)


def listwise_ranking_loss(rewards: ArrayLike, reduction: str = "mean") -> Real:
    r"""List-wise loss from accumulated pair-wise comparisons (InstructGPT's form).

    ``rewards`` holds one prompt's :math:`N` responses in ranked order, best
    first.  Every pair :math:`i < j` (response :math:`i` ranked above :math:`j`)
    is one Bradley–Terry comparison, and the loss is their mean:

    .. math:: \mathcal{L}_{\text{list}} = \frac{1}{\binom{N}{2}} \sum_{i<j} -\log\sigma(r_i - r_j)

    (the same stable softplus form as :func:`ranking_loss`).  The book writes
    :math:`\frac{1}{N(N-1)}\sum_{y_a \ne y_b}` over ordered pairs; read literally
    (both directions of every pair) that is minimized by equal rewards, so the
    ground-truth direction of each pair is meant.  For :math:`N = 2` this is the
    pair-wise loss.

    Shapes: ``(N,)`` gives a scalar; ``(B, N)`` gives the mean over prompts
    (``"sum"``: their sum; ``"none"``: the ``(B,)`` per-prompt losses).
    """
    reduction = _checks.check_reduction(reduction)
    r = _ranked("rewards", rewards)
    r2 = r.reshape(-1, r.shape[-1])
    i, j = np.triu_indices(r2.shape[1], k=1)
    per_pair = ranking_loss(r2[:, i].ravel(), r2[:, j].ravel(), reduction="none")
    per_prompt = np.asarray(per_pair).reshape(r2.shape[0], -1).mean(axis=1)
    return _per_prompt(per_prompt, r.shape, reduction)


def plackett_luce_loss(rewards: ArrayLike, reduction: str = "mean") -> Real:
    r"""Negative log-probability of a ranking under the Plackett–Luce model.

    ``rewards`` are one prompt's :math:`N` responses in the given order, best
    first.  With :math:`\alpha_k = e^{r_k}`, the ranking is drawn by picking the
    best among all, then the best among the rest, and so on:

    .. math:: P(\text{ranking}) = \prod_{k=1}^{N} \frac{e^{r_k}}{\sum_{m \ge k} e^{r_m}},
              \qquad
              \mathcal{L}_{\text{PL}} = \sum_{k=1}^{N} \Bigl(\log\sum_{m\ge k} e^{r_m} - r_k\Bigr)

    Each factor is itself a Bradley–Terry comparison of response :math:`k`
    against everything ranked below it, :math:`S_{k+1} = \log\sum_{m>k} e^{r_m}`:

    .. math:: \log\sum_{m\ge k} e^{r_m} - r_k = -\log\sigma\bigl(r_k - S_{k+1}\bigr)

    and that stable form is used (``np.logaddexp.accumulate`` for the suffix
    log-sum-exps, then the softplus kernel of :func:`ranking_loss`): it avoids
    the cancellation in the left-hand side, and for :math:`N = 2` it *is* the
    pair-wise loss :math:`-\log\sigma(r_1 - r_2)`, bit for bit.

    Shapes: ``(N,)`` gives a scalar; ``(B, N)`` the mean over prompts
    (``"sum"``, ``"none"`` as in :func:`listwise_ranking_loss`).
    """
    reduction = _checks.check_reduction(reduction)
    r = _ranked("rewards", rewards)
    r2 = r.reshape(-1, r.shape[-1])
    below = np.logaddexp.accumulate(r2[:, :0:-1], axis=1)[:, ::-1]  # S_{k+1}, k = 1..N-1
    per_position = ranking_loss(r2[:, :-1].ravel(), below.ravel(), reduction="none")
    per_prompt = np.asarray(per_position).reshape(r2.shape[0], -1).sum(axis=1)
    return _per_prompt(per_prompt, r.shape, reduction)


def ranking_accuracy(r_pref: ArrayLike, r_rej: ArrayLike) -> np.float64:
    r"""Fraction of pairs the rewards rank correctly: :math:`\frac{1}{B}\sum_i [r_{\text{pref},i} > r_{\text{rej},i}]`.

    Strictly greater: a tie counts as wrong (a model that scores everything
    equal has accuracy 0, not 0.5).  NaN in any pair gives NaN.

    Shapes: scalars or ``(B,)``; the result is a float64 scalar.
    """
    a, b = _pair("r_pref", r_pref, "r_rej", r_rej)
    if np.isnan(a).any() or np.isnan(b).any():
        return np.float64(np.nan)
    return np.float64(np.count_nonzero(a > b) / a.size)


def center_rewards(r: ArrayLike) -> np.ndarray:
    r"""Subtract the mean reward: :math:`r_i - \frac{1}{N}\sum_j r_j`, per prompt.

    Bradley–Terry sees only differences of rewards for the same prompt, so
    centring changes no preference probability and no ranking loss (up to
    rounding): rewards are identified only up to a shift.

    Shapes: ``(N,)``, one prompt's rewards, or ``(B, N)``, where each row is
    centred on its own (for pairs, stack them as ``(B, 2)``).  The result has
    the shape of ``r``.
    """
    arr = _checks.as_real_array("r", r)
    if arr.ndim not in (1, 2) or arr.shape[-1] == 0 or arr.size == 0:
        raise ValueError(
            f"r must have shape (N,) or (B, N) with N >= 1 and B >= 1, got shape {arr.shape}"
        )
    return arr - arr.mean(axis=-1, keepdims=True)


def _soft(r_a: ArrayLike, r_b: ArrayLike, p: ArrayLike) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    a, b = _pair("r_a", r_a, "r_b", r_b)
    prob = _like("p", p, "r_a", a)
    _checks.check_probability("p", prob)
    return a, b, prob


def soft_ranking_loss(r_a: ArrayLike, r_b: ArrayLike, p: ArrayLike, reduction: str = "mean") -> Real:
    r"""Ranking loss with a soft label: labelers prefer :math:`y_a` with probability :math:`p`.

    The cross-entropy between the label and Bradley–Terry, per pair with
    :math:`\Delta = r_a - r_b`:

    .. math:: \ell = -p\log\sigma(\Delta) - (1 - p)\log\sigma(-\Delta)

    Both terms use the stable softplus form.  ``p = 1`` is :func:`ranking_loss`;
    ``p = 0.5`` (a tie) pulls the two rewards together.  The minimum over
    :math:`\Delta` is the entropy of :math:`p`, reached at
    :math:`\sigma(\Delta) = p`.

    Shapes: ``r_a``, ``r_b`` scalars or ``(B,)``; ``p`` a scalar or ``(B,)``;
    ``reduction`` as in :func:`ranking_loss`.
    """
    reduction = _checks.check_reduction(reduction)
    a, b, prob = _soft(r_a, r_b, p)
    # Two non-negative terms, -p log sigma(Delta) and -(1-p) log sigma(-Delta): no cancellation.
    p_b = np.broadcast_to(prob, a.shape)
    per_pair = _blockwise(_neg_log_sigmoid_inplace, a, b, weights=p_b)
    per_pair += _blockwise(_neg_log_sigmoid_inplace, b, a, weights=1 - p_b)
    if reduction == "none":
        return _scalar_out(per_pair, a.shape)
    total = math.fsum(per_pair.astype(np.float64))
    return a.dtype.type(total / per_pair.size if reduction == "mean" else total)


def soft_ranking_loss_grad(
    r_a: ArrayLike, r_b: ArrayLike, p: ArrayLike, reduction: str = "mean"
) -> tuple[Real, Real]:
    r"""Analytic gradient of :func:`soft_ranking_loss`: ``(dL/dr_a, dL/dr_b)``.

    .. math:: \frac{\partial \ell}{\partial r_a} = \sigma(\Delta) - p, \qquad
              \frac{\partial \ell}{\partial r_b} = p - \sigma(\Delta)

    The push stops where the model's probability equals the label; divided by
    :math:`B` for ``"mean"``.  Shapes: both results have the shape of ``r_a``.
    """
    reduction = _checks.check_reduction(reduction)
    a, b, prob = _soft(r_a, r_b, p)
    g = _blockwise(_sigmoid_neg_inplace, b, a)  # sigma(Delta)
    g -= prob if prob.ndim == 0 else _flat(prob)
    if reduction == "mean":
        g /= g.dtype.type(g.size)
    return _scalar_out(g, a.shape), _scalar_out(-g, a.shape)


# --------------------------------------------------------------------------
# DPO: the ranking loss on implicit rewards

_DPO_LOGPS = ("policy_chosen_logps", "policy_rejected_logps", "ref_chosen_logps", "ref_rejected_logps")


def _same_shape(name_a: str, a: np.ndarray, name_b: str, b: np.ndarray) -> None:
    if a.shape != b.shape:
        raise ValueError(
            f"{name_a} and {name_b} must have the same shape, got {name_a} {a.shape} and {name_b} {b.shape}"
        )


def _dpo_logps(values: tuple) -> list[np.ndarray]:
    """The four log-probabilities of :func:`dpo_loss`: same shape, scalar or ``(B,)``, one dtype."""
    arrs = [_checks.as_real_array(name, v) for name, v in zip(_DPO_LOGPS, values)]
    for name, arr in zip(_DPO_LOGPS[1:], arrs[1:]):
        _checks.check_pair_shapes(_DPO_LOGPS[0], arrs[0].shape, name, arr.shape)
    dtype = np.result_type(*arrs)
    return [arr.astype(dtype, copy=False) for arr in arrs]


def _implicit(p: np.ndarray, r: np.ndarray, beta: float) -> np.ndarray:
    """``beta * (p - r)`` in the dtype of ``p`` (``beta`` rounded to that precision)."""
    return np.asarray(np.multiply(np.subtract(p, r), p.dtype.type(beta)))


def dpo_implicit_reward(policy_logps: ArrayLike, ref_logps: ArrayLike, beta: float) -> Real:
    r"""DPO's implicit reward: :math:`\hat r(x, y) = \beta \log\frac{\pi_\theta(y\mid x)}{\pi_{\text{ref}}(y\mid x)}`.

    .. math:: \hat r(x, y) = \beta\bigl(\log\pi_\theta(y\mid x) - \log\pi_{\text{ref}}(y\mid x)\bigr)

    The KL-regularized optimum :math:`\pi^*(y\mid x) = \pi_{\text{ref}}(y\mid x)\,e^{r(x,y)/\beta}/Z(x)`
    inverts to :math:`r(x, y) = \beta\log\frac{\pi^*(y\mid x)}{\pi_{\text{ref}}(y\mid x)} + \beta\log Z(x)`,
    so this implicit reward is the reward **up to the per-prompt constant**
    :math:`\beta\log Z(x)`: differences between two responses to the same
    prompt are meaningful, its absolute value across prompts is not.

    Computed as written (one subtraction, one multiplication, in the inputs'
    precision; no exponential, nothing to overflow).

    Shapes: ``policy_logps`` and ``ref_logps`` of the same shape (any: a scalar,
    ``(B,)`` sequence log-probabilities, or ``(B, T)`` per token); the result has
    that shape.  ``beta`` > 0.
    """
    b = _checks.check_beta(beta)
    p = _checks.as_real_array("policy_logps", policy_logps)
    r = _checks.as_real_array("ref_logps", ref_logps)
    _same_shape("policy_logps", p, "ref_logps", r)
    dtype = np.result_type(p, r)
    return _implicit(p.astype(dtype, copy=False), r.astype(dtype, copy=False), b)[()]


def dpo_loss(
    policy_chosen_logps: ArrayLike,
    policy_rejected_logps: ArrayLike,
    ref_chosen_logps: ArrayLike,
    ref_rejected_logps: ArrayLike,
    beta: float = 0.1,
    reduction: str = "mean",
) -> Real:
    r"""Direct Preference Optimization (Rafailov et al. 2023): Bradley–Terry on implicit rewards.

    Per pair, with :math:`\pi_c = \log\pi_\theta(y_c\mid x)` and
    :math:`\pi_r = \log\pi_\theta(y_r\mid x)` the policy's log-probabilities of the
    chosen and rejected responses and :math:`\text{ref}_c, \text{ref}_r` the
    reference model's,

    .. math:: \ell = -\log\sigma\Bigl(\beta\bigl[(\pi_c - \text{ref}_c) - (\pi_r - \text{ref}_r)\bigr]\Bigr)
              = -\log\sigma\bigl(\hat r_c - \hat r_r\bigr)

    where :math:`\hat r = \beta(\log\pi_\theta - \log\pi_{\text{ref}})` is
    :func:`dpo_implicit_reward`: DPO *is* :func:`ranking_loss` with the policy
    itself as the reward model.  **Why** :math:`Z(x)` **cancels**: the true
    reward is :math:`\hat r + \beta\log Z(x)`, and both responses answer the same
    prompt, so :math:`\beta\log Z(x)` appears in both rewards and drops out of
    their difference; the intractable partition function is never needed.

    Stable form: the two implicit rewards are formed first (so this equals
    ``ranking_loss(dpo_implicit_reward(pi_c, ref_c, beta), dpo_implicit_reward(pi_r, ref_r, beta))``
    bit for bit), then the softplus kernel of :func:`ranking_loss`,
    :math:`-\log\sigma(\Delta) = \max(-\Delta, 0) + \log(1 + e^{-|\Delta|})`, block
    by block: finite and within a few ulp for :math:`|\Delta|` up to 1000 and beyond,
    in float64 and float32.  NaN log-probabilities give NaN, as in :func:`ranking_loss`.

    Args:
        policy_chosen_logps: :math:`\log\pi_\theta(y_c\mid x)`, summed over the
            response's tokens; a scalar or ``(B,)``.
        policy_rejected_logps: :math:`\log\pi_\theta(y_r\mid x)`, same shape.
        ref_chosen_logps: :math:`\log\pi_{\text{ref}}(y_c\mid x)`, same shape.
        ref_rejected_logps: :math:`\log\pi_{\text{ref}}(y_r\mid x)`, same shape.
        beta: :math:`\beta > 0`, the strength of the KL constraint to the reference.
        reduction: ``"mean"``, ``"sum"`` or ``"none"`` (per pair, the shape of
            ``policy_chosen_logps``), as in :func:`ranking_loss`.

    Shapes: the four log-probabilities scalars or ``(B,)``, all the same shape;
    a scalar result, or ``(B,)`` for ``reduction="none"``.
    """
    reduction = _checks.check_reduction(reduction)
    b = _checks.check_beta(beta)
    pc, pr, rc, rr = _dpo_logps((policy_chosen_logps, policy_rejected_logps, ref_chosen_logps, ref_rejected_logps))
    return _reduce_pairs(_neg_log_sigmoid_inplace, _implicit(pc, rc, b), _implicit(pr, rr, b), None, None, reduction)
