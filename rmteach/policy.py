r"""The toy policy of notebooks 8 and 9, trained from samples: by PPO against a reward model, or by DPO.

The policy is a categorical distribution :math:`\pi_\theta = \mathrm{softmax}(\theta)`
over :math:`K` fixed responses to one prompt, as in notebook 6; unlike there, it
learns the way real RLHF does, from *samples*: a batch of responses drawn from
the current policy, rewards for those responses only, Monte-Carlo estimates of
the KL.  Because :math:`K` is small, every exact expectation is also at hand, so
each estimate can be compared with the number it estimates.

What is here (NumPy only, seeded, deterministic; every formula that already
lives in :mod:`rmteach.rlhf` or :mod:`rmteach.numpy` is called, not rewritten):

* :func:`log_softmax`, :func:`entropy`, :func:`sample_responses`: the policy.
* :func:`score_function_gradients` and :func:`exact_policy_gradient`: the
  policy gradient from samples, with and without a baseline.
* :func:`kl_estimator_study`: the estimators k1, k2, k3 of
  :func:`rmteach.rlhf.kl_estimates` against the exact
  :func:`rmteach.rlhf.categorical_kl`: bias, spread, negative samples.
* :func:`ppo_clip_grad` and :func:`train_ppo`: PPO with the clipped surrogate
  :func:`rmteach.rlhf.ppo_clip_loss`, the KL-penalized reward
  :func:`rmteach.rlhf.kl_penalized_reward`, leave-one-out advantages and,
  optionally, :class:`rmteach.rlhf.AdaptiveKLController`.
* :func:`toy_problem`, :func:`sample_preferences`, :func:`exact_preferences`,
  :func:`fit_reward_model` and :func:`reward_model_ensemble`: preference data
  labelled by a hidden gold reward, and tabular Bradley–Terry reward models
  fitted to it with :func:`rmteach.numpy.ranking_loss` (the proxy).
* :func:`overoptimization_curve`: proxy and gold reward of the KL-regularized
  optimum against :math:`\sqrt{\mathrm{KL}}` (Gao et al. 2022).
* :func:`dpo_grad` and :func:`train_dpo`: DPO on the same preferences, with
  :func:`rmteach.numpy.dpo_loss`.
"""

from __future__ import annotations

import math
from typing import Optional

import numpy as np
from numpy.typing import ArrayLike

from rmteach import _checks, rlhf
from rmteach import numpy as rm

__all__ = [
    "log_softmax",
    "entropy",
    "sample_responses",
    "score_function_gradients",
    "exact_policy_gradient",
    "kl_estimator_study",
    "ppo_clip_grad",
    "train_ppo",
    "toy_problem",
    "sample_preferences",
    "exact_preferences",
    "fit_reward_model",
    "reward_model_ensemble",
    "overoptimization_curve",
    "dpo_grad",
    "train_dpo",
]


# --------------------------------------------------------------------------
# argument checks (each names the argument)


def _vector(name: str, x: ArrayLike, k: Optional[int] = None) -> np.ndarray:
    a = np.asarray(_checks.as_real_array(name, x), dtype=np.float64)
    if a.ndim != 1 or a.size < 2:
        raise ValueError(f"{name} must have shape (K,) with K >= 2, got shape {a.shape}")
    if k is not None and a.size != k:
        raise ValueError(f"{name} must have shape ({k},) (one entry per response), got shape {a.shape}")
    if not np.all(np.isfinite(a)):
        raise ValueError(f"{name} must be finite, got {_checks.describe(x)}")
    return a


def _probs(name: str, p: ArrayLike) -> np.ndarray:
    a = _vector(name, p)
    if np.any(a <= 0):
        raise ValueError(f"{name} must be > 0 for every response (a softmax policy never reaches 0), "
                         f"got {_checks.describe(p)}")
    total = math.fsum(a)
    if abs(total - 1.0) > 1e-9:
        raise ValueError(f"{name} must sum to 1, got {total!r}")
    return a


def _int(name: str, value, lo: int = 1) -> int:
    return _checks.check_int(name, value, lo)


def _positive(name: str, value, allow_zero: bool = False) -> float:
    if isinstance(value, bool) or not isinstance(value, (int, float, np.integer, np.floating)):
        raise TypeError(f"{name} must be a real number, got {_checks.describe(value)}")
    v = float(value)
    if not math.isfinite(v) or v < 0 or (v == 0 and not allow_zero):
        raise ValueError(f"{name} must be a finite number {'>= 0' if allow_zero else '> 0'}, got {value!r}")
    return v


def _rng(seed) -> np.random.Generator:
    if isinstance(seed, bool) or not isinstance(seed, (int, np.integer)) or seed < 0:
        raise ValueError(f"seed must be an integer >= 0, got {_checks.describe(seed)}")
    return np.random.default_rng(int(seed))


def _indices(name: str, x: ArrayLike, k: int) -> np.ndarray:
    a = np.asarray(x)
    if a.ndim != 1 or a.size == 0 or not np.issubdtype(a.dtype, np.integer):
        raise ValueError(f"{name} must be a non-empty 1-D array of response indices (integers), "
                         f"got {_checks.describe(x)}")
    if a.min() < 0 or a.max() >= k:
        raise ValueError(f"{name} must hold response indices in [0, {k - 1}], got values in "
                         f"[{a.min()}, {a.max()}]")
    return a.astype(np.int64)


# --------------------------------------------------------------------------
# the policy


def log_softmax(logits: ArrayLike) -> np.ndarray:
    r"""Log-probabilities of :math:`\pi_\theta = \mathrm{softmax}(\theta)`.

    .. math:: \log\pi_\theta(k) = \theta_k - m - \log\sum_j e^{\theta_j - m}, \qquad m = \max_j \theta_j

    (the maximum is subtracted first, so nothing overflows).
    Shapes: ``logits`` ``(K,)``; result ``(K,)``, every entry <= 0.
    """
    z = _vector("logits", logits)
    z = z - z.max()
    out = z - math.log(math.fsum(np.exp(z)))
    return np.minimum(out, 0.0)


def _policy(logits: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    logp = log_softmax(logits)
    p = np.exp(logp)
    return logp, p / math.fsum(p)


def entropy(probs: ArrayLike) -> np.float64:
    r"""Entropy :math:`H(\pi) = -\sum_k \pi_k\log\pi_k` in nats (:math:`0\log 0 = 0`).

    :math:`\log K` for the uniform policy, 0 for a policy on one response.
    Shapes: ``probs`` ``(K,)``; a scalar result.
    """
    p = _vector("probs", probs)
    if np.any(p < 0) or abs(math.fsum(p) - 1.0) > 1e-9:
        raise ValueError(f"probs must be a probability vector (>= 0, sum 1), got {_checks.describe(probs)}")
    pos = p > 0
    return np.float64(max(-math.fsum(p[pos] * np.log(p[pos])), 0.0))


def sample_responses(probs: ArrayLike, n: int, rng: np.random.Generator) -> np.ndarray:
    r"""``n`` responses :math:`y_i \sim \pi` (indices in :math:`[0, K)`), by inverse CDF.

    One uniform draw per sample from ``rng`` (so a seed fixes the batch).
    Shapes: ``probs`` ``(K,)``; result ``(n,)`` int64.
    """
    p = _vector("probs", probs)
    n = _int("n", n)
    cdf = np.cumsum(p)
    cdf /= cdf[-1]
    return np.minimum(np.searchsorted(cdf, rng.random(n), side="right"), p.size - 1).astype(np.int64)


# --------------------------------------------------------------------------
# the policy gradient from samples


def exact_policy_gradient(probs: ArrayLike, reward: ArrayLike) -> np.ndarray:
    r"""The exact gradient of :math:`J(\theta) = E_{y\sim\pi_\theta}[R(y)]` for a softmax policy.

    .. math:: \nabla_\theta J = \sum_y \pi(y)\,R(y)\,\nabla_\theta\log\pi(y)
              = \pi \odot \bigl(R - E_\pi[R]\bigr)

    (as :math:`\nabla_\theta\log\pi(y) = e_y - \pi`).  Shapes: both ``(K,)``; result ``(K,)``.
    """
    p = _probs("probs", probs)
    r = _vector("reward", reward, p.size)
    return p * (r - math.fsum(p * r))


def score_function_gradients(
    probs: ArrayLike, reward: ArrayLike, n: int, *, baseline: float = 0.0, seed: int = 0
) -> np.ndarray:
    r"""``n`` one-sample estimates of :math:`\nabla_\theta E_\pi[R]` (REINFORCE), with a baseline :math:`b`.

    .. math:: \hat g_i = \bigl(R(y_i) - b\bigr)\,\nabla_\theta\log\pi(y_i)
              = \bigl(R(y_i) - b\bigr)\,(e_{y_i} - \pi), \qquad y_i \sim \pi

    Every :math:`\hat g_i` is unbiased for any constant :math:`b`, because
    :math:`E_\pi[\nabla_\theta\log\pi(y)] = \sum_y \nabla_\theta\pi(y) = \nabla_\theta 1 = 0`;
    :math:`b` changes only the variance (the advantage :math:`R - b` is what
    PPO multiplies the ratio by).  Shapes: ``probs``, ``reward`` ``(K,)``; result
    ``(n, K)``, one row per sample.
    """
    p = _probs("probs", probs)
    r = _vector("reward", reward, p.size)
    b = float(_checks.as_real_array("baseline", baseline))
    if not math.isfinite(b):
        raise ValueError(f"baseline must be a finite number, got {baseline!r}")
    y = sample_responses(p, n, _rng(seed))
    g = -np.broadcast_to(p, (y.size, p.size)).copy()
    g[np.arange(y.size), y] += 1.0
    return (r[y] - b)[:, None] * g


# --------------------------------------------------------------------------
# KL estimators from samples


def kl_estimator_study(
    probs: ArrayLike, ref_probs: ArrayLike, n_samples: int, n_repeats: int = 1, *, seed: int = 0
) -> dict:
    r"""k1, k2, k3 of :func:`rmteach.rlhf.kl_estimates` on samples :math:`y \sim \pi`, against the exact KL.

    Draws ``n_repeats`` batches of ``n_samples`` responses from ``probs``
    (the policy :math:`\pi`) and averages each estimator over each batch.
    Returns a dict:

    * ``"exact"``: :math:`\mathrm{KL}(\pi\,\|\,\pi_{\text{ref}})` from :func:`rmteach.rlhf.categorical_kl`;
    * ``"expected"``: ``{"k1", "k2", "k3"}``, each estimator's exact expectation
      :math:`\sum_y \pi(y)\,k(y)` (k1 and k3 equal the KL, k2 does not);
    * ``"per_sample"``: ``{"k1", "k2", "k3"}``, the ``(n_repeats, n_samples)`` values;
    * ``"batch_means"``: ``{"k1", "k2", "k3"}``, the ``(n_repeats,)`` batch estimates;
    * ``"bias"``, ``"std"``: the batch means' average minus the KL, and their
      standard deviation (over repeats; NaN for one repeat);
    * ``"negative_fraction"``: the fraction of single samples below 0 per estimator.
    """
    p = _probs("probs", probs)
    q = _probs("ref_probs", ref_probs)
    if q.size != p.size:
        raise ValueError(f"ref_probs must have the shape of probs {p.shape}, got shape {q.shape}")
    n_samples = _int("n_samples", n_samples)
    n_repeats = _int("n_repeats", n_repeats)
    rng = _rng(seed)
    lp, lq = np.log(p), np.log(q)
    y = sample_responses(p, n_samples * n_repeats, rng).reshape(n_repeats, n_samples)
    per = rlhf.kl_estimates(lp[y], lq[y])
    every = rlhf.kl_estimates(lp, lq)
    exact = float(rlhf.categorical_kl(p, q))
    out = {"exact": exact, "expected": {}, "per_sample": {}, "batch_means": {}, "bias": {}, "std": {},
           "negative_fraction": {}}
    for name, v in per.items():
        means = np.array([math.fsum(row) / n_samples for row in v])
        out["expected"][name] = math.fsum(p * every[name])
        out["per_sample"][name] = v
        out["batch_means"][name] = means
        out["bias"][name] = math.fsum(means) / n_repeats - exact
        out["std"][name] = float(np.std(means, ddof=1)) if n_repeats > 1 else math.nan
        out["negative_fraction"][name] = float(np.count_nonzero(v < 0) / v.size)
    return out


# --------------------------------------------------------------------------
# PPO


def ppo_clip_grad(
    logits: ArrayLike, actions: ArrayLike, old_logp: ArrayLike, advantages: ArrayLike, eps: float = 0.2
) -> np.ndarray:
    r"""Gradient with respect to the logits :math:`\theta` of :func:`rmteach.rlhf.ppo_clip_loss`.

    With :math:`\rho_i = \pi_\theta(y_i)/\pi_{\text{old}}(y_i)` and
    :math:`\partial\rho_i/\partial\theta = \rho_i\,(e_{y_i} - \pi_\theta)`,

    .. math:: \nabla_\theta\mathcal{L}^{\text{CLIP}} = -\frac{1}{N}\sum_i
              [\,i \text{ not clipped}\,]\;A_i\,\rho_i\,(e_{y_i} - \pi_\theta)

    where sample :math:`i` is clipped (contributes a constant) when
    :math:`A_i > 0,\ \rho_i > 1+\varepsilon` or :math:`A_i < 0,\ \rho_i < 1-\varepsilon`
    (at the edges the inside derivative is used).  Shapes: ``logits`` ``(K,)``;
    ``actions`` (response indices), ``old_logp`` (:math:`\log\pi_{\text{old}}(y_i)`)
    and ``advantages`` ``(N,)``; result ``(K,)``.
    """
    theta = _vector("logits", logits)
    y = _indices("actions", actions, theta.size)
    old = np.asarray(_checks.as_real_array("old_logp", old_logp), dtype=np.float64)
    adv = np.asarray(_checks.as_real_array("advantages", advantages), dtype=np.float64)
    for name, a in (("old_logp", old), ("advantages", adv)):
        if a.shape != y.shape:
            raise ValueError(f"{name} must have the shape of actions {y.shape}, got shape {a.shape}")
        if not np.all(np.isfinite(a)):
            raise ValueError(f"{name} must be finite")
    e = float(rlhf._eps(eps))
    logp, p = _policy(theta)
    rho = np.exp(logp[y] - old)
    clipped = ((adv > 0) & (rho > 1.0 + e)) | ((adv < 0) & (rho < 1.0 - e))
    w = np.where(clipped, 0.0, -adv * rho) / y.size
    grad = np.bincount(y, weights=w, minlength=theta.size) - math.fsum(w) * p
    return grad


def _leave_one_out(x: np.ndarray) -> np.ndarray:
    """x_i minus the mean of the other samples (an unbiased baseline: it does not depend on y_i)."""
    n = x.size
    return (x - (math.fsum(x) - x) / (n - 1)) if n > 1 else np.zeros_like(x)


def train_ppo(
    ref_probs: ArrayLike,
    reward: ArrayLike,
    gold_reward: Optional[ArrayLike] = None,
    *,
    beta: float = 0.1,
    kl_target: Optional[float] = None,
    horizon: float = 1000.0,
    lr: float = 1.0,
    eps: float = 0.2,
    epochs: int = 4,
    batch_size: int = 64,
    iterations: int = 100,
    seed: int = 0,
) -> dict:
    r"""PPO from samples on the KL-penalized reward; the log of every iteration.

    Each iteration (one "PPO step" of TRL):

    1. draw ``batch_size`` responses :math:`y_i \sim \pi_{\text{old}}` (the current policy);
    2. score them: :math:`\tilde r_i = R(y_i) - \beta\log\frac{\pi_{\text{old}}(y_i)}{\pi_{\text{ref}}(y_i)}`
       (:func:`rmteach.rlhf.kl_penalized_reward`; :math:`R` = ``reward``, the reward
       model's score);
    3. advantages against a leave-one-out baseline,
       :math:`A_i = \tilde r_i - \frac{1}{N-1}\sum_{j\ne i}\tilde r_j` (no bias: the
       baseline of sample :math:`i` does not depend on :math:`y_i`);
    4. ``epochs`` full-batch gradient steps :math:`\theta \leftarrow \theta - \eta\nabla_\theta\mathcal{L}^{\text{CLIP}}`
       (:func:`ppo_clip_grad`) on the same batch, so the ratio
       :math:`\rho = \pi_\theta/\pi_{\text{old}}` leaves 1 after the first;
    5. with ``kl_target`` set, :class:`rmteach.rlhf.AdaptiveKLController`
       (``init_beta=beta``, ``horizon``) updates :math:`\beta` from the batch's mean k1,
       with :math:`n` = ``batch_size``.

    Returns a dict of arrays of shape ``(iterations + 1,)`` (row :math:`t` is the
    policy after :math:`t` iterations; the per-batch numbers of the last row are NaN):
    ``"kl"`` (exact :math:`\mathrm{KL}(\pi\,\|\,\pi_{\text{ref}})`), ``"kl_k1"`` and
    ``"kl_k3"`` (batch means of the estimators), ``"beta"`` (used in the iteration),
    ``"proxy_reward"`` :math:`E_\pi[R]`, ``"gold_reward"`` :math:`E_\pi[r^*]` (NaN
    without ``gold_reward``), ``"entropy"``, ``"clip_fraction"``
    (:func:`rmteach.rlhf.clip_fraction` averaged over the epochs, each measured
    before its step: Stable-Baselines3's ``clip_fraction``, ratio outside the region,
    not TRL's ``pg_clipfrac``, which counts only samples whose clipped term is
    active; the first epoch's is always 0), ``"loss"`` (the first epoch's
    :func:`rmteach.rlhf.ppo_clip_loss`); and ``"probs"`` ``(iterations + 1, K)``.
    """
    ref = _probs("ref_probs", ref_probs)
    r = _vector("reward", reward, ref.size)
    gold = None if gold_reward is None else _vector("gold_reward", gold_reward, ref.size)
    b0 = _positive("beta", beta, allow_zero=kl_target is None)
    controller = None
    if kl_target is not None:
        controller = rlhf.AdaptiveKLController(b0, _positive("kl_target", kl_target),
                                               _positive("horizon", horizon))
    eta = _positive("lr", lr)
    e = float(rlhf._eps(eps))
    epochs = _int("epochs", epochs)
    n = _int("batch_size", batch_size, lo=2)
    iterations = _int("iterations", iterations)
    rng = _rng(seed)
    log_ref = np.log(ref)
    theta = log_ref.copy()
    keys = ("kl", "kl_k1", "kl_k3", "beta", "proxy_reward", "gold_reward", "entropy", "clip_fraction", "loss")
    rows = {k: np.full(iterations + 1, np.nan) for k in keys}
    probs = np.empty((iterations + 1, ref.size))
    for t in range(iterations + 1):
        logp, p = _policy(theta)
        probs[t] = p
        rows["kl"][t] = rlhf.categorical_kl(p, ref)
        rows["proxy_reward"][t] = math.fsum(p * r)
        if gold is not None:
            rows["gold_reward"][t] = math.fsum(p * gold)
        rows["entropy"][t] = entropy(p)
        if t == iterations:
            break
        b = controller.value if controller is not None else b0
        rows["beta"][t] = b
        y = sample_responses(p, n, rng)
        old = logp[y]
        kl = rlhf.kl_estimates(old, log_ref[y])
        rows["kl_k1"][t] = math.fsum(kl["k1"]) / n
        rows["kl_k3"][t] = math.fsum(kl["k3"]) / n
        shaped = rlhf.kl_penalized_reward(r[y], old[:, None], log_ref[y][:, None], b)
        adv = _leave_one_out(shaped)
        fractions = []
        for epoch in range(epochs):
            rho = np.exp(log_softmax(theta)[y] - old)
            fractions.append(float(rlhf.clip_fraction(rho, e)))
            if epoch == 0:
                rows["loss"][t] = rlhf.ppo_clip_loss(rho, adv, e)
            theta = theta - eta * ppo_clip_grad(theta, y, old, adv, e)
        rows["clip_fraction"][t] = math.fsum(fractions) / epochs
        if controller is not None:
            controller.update(rows["kl_k1"][t], n)
    out = dict(rows)
    out["iteration"] = np.arange(iterations + 1)
    out["probs"] = probs
    return out


# --------------------------------------------------------------------------
# preferences labelled by a hidden gold reward, and reward models fitted to them


def toy_problem(n_responses: int = 40, seed: int = 0) -> dict:
    r"""The course's standing example for notebooks 8 and 9: one prompt, ``n_responses`` candidates.

    :math:`\pi_{\text{ref}} = \mathrm{softmax}(z)` with :math:`z_k \sim N(0, 1.5^2)` (a few
    common responses and a long tail of rare ones), and a hidden gold reward
    :math:`r^*_k \sim N(0, 1)`, what people would say.  Returns
    ``{"ref_probs", "gold_reward"}``, both ``(K,)``.
    """
    k = _int("n_responses", n_responses, lo=2)
    rng = _rng(seed)
    z = rng.normal(0.0, 1.5, size=k)
    gold = rng.normal(0.0, 1.0, size=k)
    _, ref = _policy(z)
    return {"ref_probs": ref, "gold_reward": gold}


def sample_preferences(ref_probs: ArrayLike, gold_reward: ArrayLike, n_pairs: int, *, seed: int = 0) -> dict:
    r"""``n_pairs`` human labels: two responses from :math:`\pi_{\text{ref}}`, the winner by Bradley–Terry on :math:`r^*`.

    For each pair, :math:`y_a, y_b \sim \pi_{\text{ref}}` independently (redrawn until
    they differ) and :math:`y_a` is preferred with probability
    :math:`\sigma(r^*_a - r^*_b)` (:func:`rmteach.numpy.preference_probability`).
    Returns ``{"chosen", "rejected"}``, int64 arrays ``(n_pairs,)``.  Rare responses
    appear in few pairs: the reward model learns them badly, and that is where
    optimization will push.
    """
    ref = _probs("ref_probs", ref_probs)
    gold = _vector("gold_reward", gold_reward, ref.size)
    n = _int("n_pairs", n_pairs)
    rng = _rng(seed)
    a = sample_responses(ref, n, rng)
    b = sample_responses(ref, n, rng)
    same = a == b
    while np.any(same):
        b[same] = sample_responses(ref, int(same.sum()), rng)
        same = a == b
    p_a = rm.preference_probability(gold[a], gold[b])
    a_wins = rng.random(n) < p_a
    return {"chosen": np.where(a_wins, a, b), "rejected": np.where(a_wins, b, a)}


def exact_preferences(ref_probs: ArrayLike, gold_reward: ArrayLike) -> dict:
    r"""Infinitely many labels, as weights: every ordered pair :math:`(j, k)`, :math:`j \ne k`.

    Pair :math:`y_j \succ y_k` gets weight
    :math:`\pi_{\text{ref}}(j)\,\pi_{\text{ref}}(k)\,\sigma(r^*_j - r^*_k)`, the probability
    that a labelled pair drawn as in :func:`sample_preferences` comes out that way
    (up to the normalization).  Returns ``{"chosen", "rejected", "weights"}`` of
    shape ``(K(K-1),)``.
    """
    ref = _probs("ref_probs", ref_probs)
    gold = _vector("gold_reward", gold_reward, ref.size)
    j, k = np.nonzero(~np.eye(ref.size, dtype=bool))
    w = ref[j] * ref[k] * rm.preference_probability(gold[j], gold[k])
    return {"chosen": j.astype(np.int64), "rejected": k.astype(np.int64), "weights": w / math.fsum(w)}


def _pairs(n_items: int, chosen, rejected, weights):
    c = _indices("chosen", chosen, n_items)
    r = _indices("rejected", rejected, n_items)
    if r.shape != c.shape:
        raise ValueError(f"rejected must have the shape of chosen {c.shape}, got shape {r.shape}")
    if weights is None:
        w = np.ones(c.size)
    else:
        w = np.asarray(_checks.as_real_array("weights", weights), dtype=np.float64)
        if w.shape != c.shape:
            raise ValueError(f"weights must have the shape of chosen {c.shape}, got shape {w.shape}")
        if not np.all(np.isfinite(w)) or np.any(w < 0) or w.sum() == 0:
            raise ValueError("weights must be finite, >= 0 and not all 0")
    return c, r, w


def fit_reward_model(
    n_responses: int, chosen: ArrayLike, rejected: ArrayLike, weights: Optional[ArrayLike] = None,
    *, l2: float = 1e-2, tol: float = 1e-10, max_iter: int = 100,
) -> np.ndarray:
    r"""A tabular Bradley–Terry reward model: one score per response, fitted by Newton's method.

    Minimizes the weighted *sum* of ranking losses (:func:`rmteach.numpy.ranking_loss`,
    gradient :func:`rmteach.numpy.ranking_loss_grad`) plus a ridge term that pins the free
    shift and keeps a response that never lost finite:

    .. math:: \mathcal{L}(r) = \sum_i w_i\,\bigl(-\log\sigma(r_{c_i} - r_{r_i})\bigr) + \lambda\,\lVert r\rVert^2

    With a sum, :math:`\lambda` (``l2``) weighs like a fixed number of labels, so a
    response seen in only a few pairs is estimated from those few (and over-rated
    if it won them by luck) however many labels the others have.  For
    :func:`exact_preferences`, whose weights sum to 1, pass a tiny ``l2``.
    Convex; Newton's method with the Hessian
    :math:`\sum_i w_i\sigma(\Delta_i)\sigma(-\Delta_i)(e_{c_i} - e_{r_i})(e_{c_i} - e_{r_i})^\top + 2\lambda I`
    on the :math:`K\times K` table of summed weights; stops when the step is below ``tol``.
    Shapes: ``chosen``, ``rejected`` (response indices) and ``weights`` ``(N,)``;
    result ``(K,)`` with ``K = n_responses``.
    """
    k = _int("n_responses", n_responses, lo=2)
    c, r, w = _pairs(k, chosen, rejected, weights)
    lam = _positive("l2", l2)
    tol = _positive("tol", tol)
    max_iter = _int("max_iter", max_iter)
    # identical pairs add up: Newton works on the K x K table of weights, not on N pairs
    table = np.zeros((k, k))
    np.add.at(table, (c, r), w)
    jc, jr = np.nonzero(table)
    wt = table[jc, jr]
    scores = np.zeros(k)
    for _ in range(max_iter):
        g_c, g_r = rm.ranking_loss_grad(scores[jc], scores[jr], reduction="none")
        grad = np.bincount(jc, wt * g_c, k) + np.bincount(jr, wt * g_r, k) + 2 * lam * scores
        s = -g_c  # sigma(-Delta); sigma(Delta) sigma(-Delta) = s (1 - s)
        h = wt * s * (1.0 - s)
        hess = np.zeros((k, k))
        np.add.at(hess, (jc, jr), -h)
        np.add.at(hess, (jr, jc), -h)
        hess[np.diag_indices(k)] = -hess.sum(axis=1) + 2 * lam
        step = np.linalg.solve(hess, grad)
        scores -= step
        if np.max(np.abs(step)) < tol:
            break
    return scores


def reward_model_ensemble(
    ref_probs: ArrayLike, gold_reward: ArrayLike, n_pairs: int, n_members: int = 1, *,
    l2: float = 1e-2, seed: int = 0,
) -> np.ndarray:
    r"""``n_members`` reward models, each fitted (:func:`fit_reward_model`) to its own ``n_pairs`` labels.

    Member :math:`m` gets the labels of :func:`sample_preferences` with seed
    ``seed + m``: a different labelled sample of the same size, as an ensemble
    trained on independent data.  Their mean is a better reward model; their
    disagreement is largest on rare responses.  Returns ``(n_members, K)``.
    """
    ref = _probs("ref_probs", ref_probs)
    gold = _vector("gold_reward", gold_reward, ref.size)
    m = _int("n_members", n_members)
    _rng(seed)  # checks seed
    members = []
    for i in range(m):
        data = sample_preferences(ref, gold, n_pairs, seed=seed + i)
        members.append(fit_reward_model(ref.size, data["chosen"], data["rejected"], l2=l2))
    return np.array(members)


def overoptimization_curve(
    ref_probs: ArrayLike, proxy_reward: ArrayLike, gold_reward: ArrayLike, betas: ArrayLike
) -> dict:
    r"""Proxy and gold reward of the KL-regularized optimum, against :math:`\sqrt{\mathrm{KL}}` (Gao et al. 2022).

    For each :math:`\beta`, :math:`\pi^*_\beta \propto \pi_{\text{ref}}\,e^{\hat r/\beta}` is the best
    any optimizer of the KL-penalized proxy can reach
    (:func:`rmteach.rlhf.beta_tradeoff`); as :math:`\beta` falls, the KL grows.  Both
    rewards are reported relative to the reference policy's.  Returns the dict of
    :func:`rmteach.rlhf.beta_tradeoff` with the rewards shifted, plus ``"sqrt_kl"``,
    ``"peak"`` (the index where the gold reward is largest) and ``"gold_at_peak"``.
    """
    ref = _probs("ref_probs", ref_probs)
    proxy = _vector("proxy_reward", proxy_reward, ref.size)
    gold = _vector("gold_reward", gold_reward, ref.size)
    out = rlhf.beta_tradeoff(ref, proxy, gold, betas)
    out["proxy_reward"] = out["proxy_reward"] - math.fsum(ref * proxy)
    out["true_reward"] = out["true_reward"] - math.fsum(ref * gold)
    out["sqrt_kl"] = np.sqrt(out["kl"])
    out["peak"] = int(np.argmax(out["true_reward"]))
    out["gold_at_peak"] = float(out["true_reward"][out["peak"]])
    return out


# --------------------------------------------------------------------------
# DPO


def dpo_grad(
    logits: ArrayLike, ref_probs: ArrayLike, chosen: ArrayLike, rejected: ArrayLike,
    weights: Optional[ArrayLike] = None, *, beta: float = 0.1,
) -> tuple[float, np.ndarray]:
    r"""The weighted mean DPO loss of the softmax policy and its gradient with respect to the logits.

    Per pair, :func:`rmteach.numpy.dpo_loss` with :math:`\hat r = \beta\log\frac{\pi_\theta}{\pi_{\text{ref}}}`
    (:func:`rmteach.numpy.dpo_implicit_reward`); by the chain rule through
    :func:`rmteach.numpy.ranking_loss_grad`,

    .. math:: \nabla_\theta\ell_i = \beta\Bigl(\frac{\partial\ell_i}{\partial\hat r_c}(e_{c_i} - \pi_\theta)
              + \frac{\partial\ell_i}{\partial\hat r_r}(e_{r_i} - \pi_\theta)\Bigr)
              = -\beta\,\sigma(\hat r_r - \hat r_c)\,(e_{c_i} - e_{r_i})

    Returns ``(loss, grad)``: a float and ``(K,)``.
    """
    theta = _vector("logits", logits)
    ref = _probs("ref_probs", ref_probs)
    if ref.size != theta.size:
        raise ValueError(f"ref_probs must have the shape of logits {theta.shape}, got shape {ref.shape}")
    c, r, w = _pairs(theta.size, chosen, rejected, weights)
    b = _checks.check_beta(beta)
    return _dpo_grad(theta, np.log(ref), c, r, w, b)


def _dpo_grad(theta, log_ref, c, r, w, b):
    logp, p = _policy(theta)
    per_pair = rm.dpo_loss(logp[c], logp[r], log_ref[c], log_ref[r], beta=b, reduction="none")
    total = w.sum()
    loss = math.fsum(w * per_pair) / total
    rc = rm.dpo_implicit_reward(logp[c], log_ref[c], b)
    rr = rm.dpo_implicit_reward(logp[r], log_ref[r], b)
    g_c, g_r = rm.ranking_loss_grad(rc, rr, reduction="none")
    wc, wr = b * w * g_c / total, b * w * g_r / total
    k = theta.size
    grad = np.bincount(c, wc, k) + np.bincount(r, wr, k) - (math.fsum(wc) + math.fsum(wr)) * p
    return loss, grad


def train_dpo(
    ref_probs: ArrayLike, chosen: ArrayLike, rejected: ArrayLike, weights: Optional[ArrayLike] = None,
    gold_reward: Optional[ArrayLike] = None, *, beta: float = 0.1, lr: float = 1.0, steps: int = 200,
) -> dict:
    r"""DPO by full-batch gradient descent on the logits, starting at :math:`\pi_{\text{ref}}`.

    :math:`\theta \leftarrow \theta - \eta\,\nabla_\theta\mathcal{L}_{\text{DPO}}` (:func:`dpo_grad`), no
    reward model and no sampling.  Returns a dict of arrays of shape
    ``(steps + 1,)``: ``"loss"``, ``"kl"`` (exact, to :math:`\pi_{\text{ref}}`),
    ``"gold_reward"`` :math:`E_\pi[r^*]` (NaN without ``gold_reward``), ``"entropy"``;
    ``"probs"`` ``(steps + 1, K)`` and ``"logits"`` ``(K,)`` at the end.
    """
    ref = _probs("ref_probs", ref_probs)
    gold = None if gold_reward is None else _vector("gold_reward", gold_reward, ref.size)
    eta = _positive("lr", lr)
    steps = _int("steps", steps)
    # identical pairs add up: train on the distinct (chosen, rejected) pairs, weighted by their counts
    c, r, w = _pairs(ref.size, chosen, rejected, weights)
    key, inverse = np.unique(c * ref.size + r, return_inverse=True)
    chosen, rejected = key // ref.size, key % ref.size
    weights = np.bincount(inverse, weights=w, minlength=key.size)
    theta = np.log(ref)
    rows = {k: np.full(steps + 1, np.nan) for k in ("loss", "kl", "gold_reward", "entropy")}
    probs = np.empty((steps + 1, ref.size))
    b = _checks.check_beta(beta)
    log_ref = np.log(ref)
    for t in range(steps + 1):
        loss, grad = _dpo_grad(theta, log_ref, chosen, rejected, weights, b)
        _, p = _policy(theta)
        probs[t] = p
        rows["loss"][t] = loss
        rows["kl"][t] = rlhf.categorical_kl(p, ref)
        rows["entropy"][t] = entropy(p)
        if gold is not None:
            rows["gold_reward"][t] = math.fsum(p * gold)
        if t < steps:
            theta = theta - eta * grad
    out = dict(rows)
    out["step"] = np.arange(steps + 1)
    out["probs"] = probs
    out["logits"] = theta
    return out
