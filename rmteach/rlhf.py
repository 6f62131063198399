r"""The reward model inside RLHF + PPO: the computable cores of the case studies (Q21–Q28).

One pure function per formula, NumPy only (importing this never imports torch):

* :func:`kl_penalized_reward` and :func:`per_token_kl_rewards`: the reward PPO
  actually maximizes, :math:`r(x, y) - \beta \log\frac{\pi(y\mid x)}{\pi_{\text{ref}}(y\mid x)}`,
  per sequence and spread over tokens.
* :func:`categorical_kl` and :func:`kl_regularized_policy`: for a policy over a
  handful of candidate responses, the exact KL and the exact optimum
  :math:`\pi^*(y) \propto \pi_{\text{ref}}(y)\,e^{r(y)/\beta}` of
  :math:`E_\pi[r] - \beta\,\mathrm{KL}(\pi\,\|\,\pi_{\text{ref}})`.
* :func:`beta_tradeoff` and :func:`beta_for_kl_budget`: how :math:`\beta` trades
  reward against drift from the reference policy.
* :func:`heldout_preference_accuracy`, :func:`simulate_kl_regularized_training`
  and :func:`reward_hacking_onset`: a training log in which the reward-model
  score rises while the reward model's agreement with held-out human
  preferences falls (reward hacking), and the step where it starts.
* :func:`normalize_rewards` and :func:`reward_drift`: reward-scale drift after
  deployment, measured against a reference set.

The toy policy is a categorical distribution over :math:`K` fixed responses to
one prompt: small enough to compute every expectation exactly, so each claim
in notebook 6 is a number, not a sample.
"""

from __future__ import annotations

import math
from typing import Optional, Union

import numpy as np
from numpy.typing import ArrayLike

from rmteach import _checks

__all__ = [
    "kl_penalized_reward",
    "per_token_kl_rewards",
    "categorical_kl",
    "kl_regularized_policy",
    "beta_tradeoff",
    "beta_for_kl_budget",
    "heldout_preference_accuracy",
    "simulate_kl_regularized_training",
    "reward_hacking_onset",
    "normalize_rewards",
    "reward_drift",
]

Real = Union[np.ndarray, np.floating]


# --------------------------------------------------------------------------
# argument checks (each names the argument)


def _array(name: str, x: ArrayLike) -> np.ndarray:
    return np.asarray(_checks.as_real_array(name, x), dtype=np.float64)


def _finite_array(name: str, x: ArrayLike) -> np.ndarray:
    a = _array(name, x)
    if not np.all(np.isfinite(a)):
        raise ValueError(f"{name} must be finite, got {_checks.describe(x)}")
    return a


def _beta(beta, name: str = "beta", positive: bool = False) -> float:
    b = _array(name, beta)
    if b.shape != ():
        raise ValueError(f"{name} must be a single number, got shape {b.shape}")
    value = float(b)
    if not math.isfinite(value) or value < 0 or (positive and value == 0):
        need = "> 0" if positive else ">= 0"
        raise ValueError(f"{name} must be a finite number {need}, got {value}")
    return value


def _logprobs(name: str, x: ArrayLike) -> np.ndarray:
    a = _finite_array(name, x)
    if a.ndim not in (1, 2) or a.shape[-1] == 0 or a.size == 0:
        raise ValueError(f"{name} must have shape (T,) or (B, T) with T >= 1, got shape {a.shape}")
    if np.any(a > 0):
        raise ValueError(f"{name} must be log-probabilities (<= 0), got a largest value {a.max()!r}")
    return a


def _token_inputs(reward, logprob_policy, logprob_ref):
    lp = _logprobs("logprob_policy", logprob_policy)
    lr = _logprobs("logprob_ref", logprob_ref)
    if lp.shape != lr.shape:
        raise ValueError(
            f"logprob_policy and logprob_ref must have the same shape, got {lp.shape} and {lr.shape}"
        )
    r = _finite_array("reward", reward)
    want = () if lp.ndim == 1 else (lp.shape[0],)
    if r.shape != want:
        raise ValueError(
            f"reward must have shape {want} (one reward per sequence of logprob_policy {lp.shape}), "
            f"got shape {r.shape}"
        )
    return r, lp, lr


def _probs(name: str, p: ArrayLike) -> np.ndarray:
    a = _finite_array(name, p)
    if a.ndim != 1 or a.size < 2:
        raise ValueError(f"{name} must be a probability vector of shape (K,) with K >= 2, got shape {a.shape}")
    if np.any(a < 0):
        raise ValueError(f"{name} must be >= 0, got {_checks.describe(p)}")
    total = math.fsum(a)
    if abs(total - 1.0) > 1e-9:
        raise ValueError(f"{name} must sum to 1, got {total!r}")
    return a


def _vector_like(name: str, x: ArrayLike, ref_name: str, ref: np.ndarray) -> np.ndarray:
    a = _finite_array(name, x)
    if a.shape != ref.shape:
        raise ValueError(f"{name} must have the shape of {ref_name} {ref.shape}, got shape {a.shape}")
    return a


def _sigmoid(x: np.ndarray) -> np.ndarray:
    """Stable logistic function (two branches, no overflow)."""
    e = np.exp(-np.abs(x))
    return np.where(x >= 0, 1.0 / (1.0 + e), e / (1.0 + e))


# --------------------------------------------------------------------------
# the KL-penalized reward


def kl_penalized_reward(
    reward: ArrayLike, logprob_policy: ArrayLike, logprob_ref: ArrayLike, beta: float
) -> Real:
    r"""The reward PPO maximizes in RLHF: the reward model's score minus a KL penalty.

    For a response :math:`y = (y_1, \dots, y_T)` sampled from the policy,

    .. math:: R(x, y) = r(x, y) - \beta \sum_{t=1}^{T}
              \Bigl(\log\pi(y_t\mid x, y_{<t}) - \log\pi_{\text{ref}}(y_t\mid x, y_{<t})\Bigr)

    The sum is :math:`\log\frac{\pi(y\mid x)}{\pi_{\text{ref}}(y\mid x)}`, a one-sample
    estimate of :math:`\mathrm{KL}(\pi\,\|\,\pi_{\text{ref}})`; :math:`\beta \ge 0` sets
    how much reward a response must earn to justify moving away from the
    reference model.

    Shapes: ``reward`` a scalar with ``(T,)`` log-probabilities, or ``(B,)``
    with ``(B, T)``; the result has the shape of ``reward``.
    """
    b = _beta(beta)
    r, lp, lr = _token_inputs(reward, logprob_policy, logprob_ref)
    return (r - b * np.sum(lp - lr, axis=-1))[()]


def per_token_kl_rewards(
    reward: ArrayLike, logprob_policy: ArrayLike, logprob_ref: ArrayLike, beta: float
) -> np.ndarray:
    r"""The KL-penalized reward spread over tokens, as PPO implementations feed it.

    .. math:: R_t = -\beta\bigl(\log\pi(y_t\mid\cdot) - \log\pi_{\text{ref}}(y_t\mid\cdot)\bigr)
              + [t = T]\; r(x, y)

    Every token pays its own KL penalty; the reward model's score arrives only
    at the last token.  :math:`\sum_t R_t` equals :func:`kl_penalized_reward`.

    Shapes: as :func:`kl_penalized_reward`; the result has the shape of
    ``logprob_policy``.
    """
    b = _beta(beta)
    r, lp, lr = _token_inputs(reward, logprob_policy, logprob_ref)
    out = -b * (lp - lr)
    out[..., -1] += r
    return out


# --------------------------------------------------------------------------
# a policy over K candidate responses


def categorical_kl(p: ArrayLike, q: ArrayLike) -> np.float64:
    r"""Kullback–Leibler divergence of two distributions over :math:`K` responses.

    .. math:: \mathrm{KL}(p\,\|\,q) = \sum_{k} p_k \log\frac{p_k}{q_k}

    with :math:`0 \log\frac{0}{q} = 0`; ``inf`` if some :math:`p_k > 0 = q_k`.
    Shapes: ``p``, ``q`` both ``(K,)`` probability vectors; a scalar result.
    """
    pa = _probs("p", p)
    qa = _probs("q", q)
    if qa.shape != pa.shape:
        raise ValueError(f"p and q must have the same shape, got {pa.shape} and {qa.shape}")
    pos = pa > 0
    if np.any(qa[pos] == 0):
        return np.float64(np.inf)
    terms = pa[pos] * (np.log(pa[pos]) - np.log(qa[pos]))
    return np.float64(max(math.fsum(terms), 0.0))


def kl_regularized_policy(ref_probs: ArrayLike, reward: ArrayLike, beta: float) -> np.ndarray:
    r"""The policy that maximizes :math:`E_{y\sim\pi}[r(y)] - \beta\,\mathrm{KL}(\pi\,\|\,\pi_{\text{ref}})`.

    .. math:: \pi^*(y) = \frac{\pi_{\text{ref}}(y)\, e^{r(y)/\beta}}{\sum_{y'} \pi_{\text{ref}}(y')\, e^{r(y')/\beta}}

    Small :math:`\beta`: :math:`\pi^*` piles onto the highest reward; large
    :math:`\beta`: it stays at :math:`\pi_{\text{ref}}`.  Adding a constant to every
    reward changes nothing; multiplying the rewards by :math:`s` is the same as
    dividing :math:`\beta` by :math:`s`.  Computed as a softmax of
    :math:`\log\pi_{\text{ref}} + r/\beta` with the maximum subtracted (no overflow);
    responses with :math:`\pi_{\text{ref}} = 0` keep probability 0.

    Shapes: ``ref_probs`` and ``reward`` ``(K,)``; ``beta`` > 0; result ``(K,)``.
    """
    ref = _probs("ref_probs", ref_probs)
    r = _vector_like("reward", reward, "ref_probs", ref)
    b = _beta(beta, positive=True)
    with np.errstate(divide="ignore"):
        logits = np.log(ref) + r / b
    logits -= logits[ref > 0].max()
    w = np.exp(logits)
    return w / math.fsum(w)


def beta_tradeoff(
    ref_probs: ArrayLike, proxy_reward: ArrayLike, true_reward: ArrayLike, betas: ArrayLike
) -> dict:
    r"""For each :math:`\beta`: the optimal policy's reward-model score, true quality and KL.

    With :math:`\pi^*_\beta` from :func:`kl_regularized_policy` on the
    reward model's score :math:`\hat r` ("proxy"):

    .. math:: \text{proxy} = E_{\pi^*_\beta}[\hat r], \quad
              \text{true} = E_{\pi^*_\beta}[r^*], \quad
              \text{kl} = \mathrm{KL}(\pi^*_\beta\,\|\,\pi_{\text{ref}})

    Returns ``{"beta", "proxy_reward", "true_reward", "kl"}``, arrays of shape
    ``(len(betas),)``.  ``true_reward`` is what humans would say; a reward model
    never sees it.
    """
    ref = _probs("ref_probs", ref_probs)
    rhat = _vector_like("proxy_reward", proxy_reward, "ref_probs", ref)
    rstar = _vector_like("true_reward", true_reward, "ref_probs", ref)
    bs = _finite_array("betas", betas)
    if bs.ndim != 1 or bs.size == 0 or np.any(bs <= 0):
        raise ValueError(f"betas must be a non-empty 1-D array of numbers > 0, got {_checks.describe(betas)}")
    proxy, true, kl = [], [], []
    for b in bs:
        pi = kl_regularized_policy(ref, rhat, b)
        proxy.append(math.fsum(pi * rhat))
        true.append(math.fsum(pi * rstar))
        kl.append(float(categorical_kl(pi, ref)))
    return {"beta": bs.copy(), "proxy_reward": np.array(proxy), "true_reward": np.array(true), "kl": np.array(kl)}


def beta_for_kl_budget(
    ref_probs: ArrayLike, reward: ArrayLike, kl_budget: float, *, tol: float = 1e-10
) -> float:
    r"""The smallest :math:`\beta` whose optimal policy stays within a KL budget.

    :math:`\mathrm{KL}(\pi^*_\beta\,\|\,\pi_{\text{ref}})` falls as :math:`\beta` grows, so

    .. math:: \beta^\dagger = \min\{\beta > 0 : \mathrm{KL}(\pi^*_\beta\,\|\,\pi_{\text{ref}}) \le \varepsilon\}

    is the most reward-seeking setting that keeps the policy within
    :math:`\varepsilon` = ``kl_budget`` nats of the reference (found by bisection
    on :math:`\log\beta`, to relative precision ``tol``).  Returns 0.0 if even
    :math:`\beta \to 0` (all mass on the best responses) is within the budget.
    """
    ref = _probs("ref_probs", ref_probs)
    r = _vector_like("reward", reward, "ref_probs", ref)
    eps = _beta(kl_budget, "kl_budget", positive=True)
    tol = _beta(tol, "tol", positive=True)

    def kl(b: float) -> float:
        return float(categorical_kl(kl_regularized_policy(ref, r, b), ref))

    # beta -> 0 puts all mass on the argmax rewards (among responses ref allows)
    allowed = ref > 0
    best = allowed & (r == r[allowed].max())
    limit = ref * best / math.fsum(ref[best])
    if float(categorical_kl(limit, ref)) <= eps:
        return 0.0
    lo, hi = 1e-3, 1.0
    spread = float(r[allowed].max() - r[allowed].min())
    while kl(hi) > eps:
        hi *= 2.0
        if hi > 1e12 * max(spread, 1.0):  # pragma: no cover - KL -> 0 as beta grows
            raise RuntimeError("beta_for_kl_budget: no beta found")
    while kl(lo) <= eps:
        lo /= 2.0
    while hi / lo > 1.0 + tol:
        mid = math.sqrt(lo * hi)
        if kl(mid) > eps:
            lo = mid
        else:
            hi = mid
    return hi


# --------------------------------------------------------------------------
# reward hacking in a training log


def heldout_preference_accuracy(probs: ArrayLike, proxy_reward: ArrayLike, true_reward: ArrayLike) -> np.float64:
    r"""How often the reward model agrees with human labels on the policy's own outputs.

    Draw two different responses :math:`j \ne k` from the policy :math:`\pi`; the
    reward model prefers the one with the higher :math:`\hat r` (a tie counts as
    wrong) and a held-out human labeler prefers :math:`j` with Bradley–Terry
    probability :math:`\sigma(r^*_j - r^*_k)`.  The expected agreement is

    .. math:: \text{acc}(\pi) = \frac{\sum_{j \ne k} \pi_j\pi_k\,[\hat r_j > \hat r_k]\,\sigma(r^*_j - r^*_k)}
              {\sum_{j<k} \pi_j\pi_k}

    As the policy moves onto responses the reward model over-rates, this falls
    even though :math:`E_\pi[\hat r]` rises.
    Shapes: all ``(K,)``; a scalar result (NaN if :math:`\pi` has a single response).
    """
    pi = _probs("probs", probs)
    rhat = _vector_like("proxy_reward", proxy_reward, "probs", pi)
    rstar = _vector_like("true_reward", true_reward, "probs", pi)
    w = np.outer(pi, pi)
    agree = (rhat[:, None] > rhat[None, :]) * _sigmoid(rstar[:, None] - rstar[None, :])
    denom = math.fsum(np.triu(w, 1).ravel())
    if denom == 0:
        return np.float64(np.nan)
    off = ~np.eye(pi.size, dtype=bool)
    return np.float64(math.fsum((w * agree)[off]) / denom)


def simulate_kl_regularized_training(
    ref_probs: ArrayLike,
    proxy_reward: ArrayLike,
    true_reward: ArrayLike,
    beta: float,
    *,
    lr: float = 0.5,
    steps: int = 60,
) -> dict:
    r"""A training log of exact policy-gradient ascent on the KL-regularized objective.

    The policy :math:`\pi_\theta = \mathrm{softmax}(\theta)` starts at
    :math:`\pi_{\text{ref}}` and climbs :math:`J(\theta) = E_{\pi_\theta}[\hat r] - \beta\,\mathrm{KL}(\pi_\theta\,\|\,\pi_{\text{ref}})`:

    .. math:: \theta_k \leftarrow \theta_k + \eta\,\pi_k\bigl(R_k - \textstyle\sum_j \pi_j R_j\bigr),
              \qquad R_k = \hat r_k - \beta\log\frac{\pi_k}{\pi_{\text{ref},k}}

    (:math:`R_k` is :func:`kl_penalized_reward` of response :math:`k`; :math:`\eta` =
    ``lr``).  It converges to :func:`kl_regularized_policy`.

    Returns a table as a dict of arrays of shape ``(steps + 1,)``: ``"step"``,
    ``"proxy_reward"`` :math:`E_\pi[\hat r]` (what the training dashboard shows),
    ``"true_reward"`` :math:`E_\pi[r^*]`, ``"kl"``, ``"heldout_accuracy"``
    (:func:`heldout_preference_accuracy`), and ``"probs"`` ``(steps + 1, K)``.
    """
    ref = _probs("ref_probs", ref_probs)
    rhat = _vector_like("proxy_reward", proxy_reward, "ref_probs", ref)
    rstar = _vector_like("true_reward", true_reward, "ref_probs", ref)
    b = _beta(beta)
    eta = _beta(lr, "lr", positive=True)
    if isinstance(steps, bool) or not isinstance(steps, (int, np.integer)) or steps < 1:
        raise ValueError(f"steps must be an integer >= 1, got {_checks.describe(steps)}")
    if np.any(ref == 0):
        raise ValueError("ref_probs must be > 0 for every response (softmax policies never reach 0)")
    theta = np.log(ref)
    log_ref = np.log(ref)
    rows = {"step": [], "proxy_reward": [], "true_reward": [], "kl": [], "heldout_accuracy": [], "probs": []}
    for step in range(int(steps) + 1):
        z = theta - theta.max()
        logpi = z - np.log(np.sum(np.exp(z)))
        pi = np.exp(logpi)
        pi /= math.fsum(pi)
        rows["step"].append(step)
        rows["proxy_reward"].append(math.fsum(pi * rhat))
        rows["true_reward"].append(math.fsum(pi * rstar))
        rows["kl"].append(float(categorical_kl(pi, ref)))
        rows["heldout_accuracy"].append(float(heldout_preference_accuracy(pi, rhat, rstar)))
        rows["probs"].append(pi)
        if step < steps:
            R = rhat - b * (logpi - log_ref)
            theta = theta + eta * pi * (R - math.fsum(pi * R))
    out = {k: np.array(v) for k, v in rows.items()}
    out["step"] = out["step"].astype(np.int64)
    return out


def reward_hacking_onset(
    reward: ArrayLike, heldout_accuracy: ArrayLike, *, window: int = 1, tol: float = 0.0
) -> Optional[int]:
    r"""The first log row where the reward rises while held-out preference accuracy falls.

    Row :math:`t \ge w` (:math:`w` = ``window``) is flagged when

    .. math:: \text{reward}_t > \text{reward}_{t-w} \quad\text{and}\quad
              \text{acc}_t < \text{acc}_{t-w} - \text{tol}

    the signature of reward hacking: the policy earns more reward-model score on
    outputs where the reward model no longer agrees with people.  Returns the
    row index, or ``None`` if no row is flagged.
    Shapes: both ``(n,)`` with :math:`n > w`.
    """
    r = _finite_array("reward", reward)
    acc = _finite_array("heldout_accuracy", heldout_accuracy)
    if r.ndim != 1:
        raise ValueError(f"reward must have shape (n,), got shape {r.shape}")
    if acc.shape != r.shape:
        raise ValueError(f"heldout_accuracy must have the shape of reward {r.shape}, got shape {acc.shape}")
    if isinstance(window, bool) or not isinstance(window, (int, np.integer)) or window < 1:
        raise ValueError(f"window must be an integer >= 1, got {_checks.describe(window)}")
    if r.size <= window:
        raise ValueError(f"reward must have more than window={window} rows, got {r.size}")
    tol = _beta(tol, "tol")
    flagged = (r[window:] > r[:-window]) & (acc[window:] < acc[:-window] - tol)
    hits = np.flatnonzero(flagged)
    return None if hits.size == 0 else int(hits[0] + window)


# --------------------------------------------------------------------------
# reward-scale drift


def normalize_rewards(rewards: ArrayLike, reference: ArrayLike) -> np.ndarray:
    r"""Rewards in units of a reference set: :math:`(r - \bar r_{\text{ref}}) / s_{\text{ref}}`.

    The ranking loss fixes rewards only up to a shift (and a reference set fixes
    the scale it was trained at), so RLHF pipelines subtract a bias that makes
    reference responses score 0 on average (InstructGPT) and often divide by their
    spread.  :math:`s_{\text{ref}}` is the population standard deviation.
    Shapes: ``rewards`` any; ``reference`` ``(n,)`` with n >= 2 and spread > 0.
    """
    r = _finite_array("rewards", rewards)
    ref = _finite_array("reference", reference)
    if ref.ndim != 1 or ref.size < 2:
        raise ValueError(f"reference must have shape (n,) with n >= 2, got shape {ref.shape}")
    s = float(ref.std())
    if s == 0:
        raise ValueError("reference rewards are all equal (standard deviation 0): no scale to normalize by")
    return ((r - ref.mean()) / s)[()]


def reward_drift(reference: ArrayLike, current: ArrayLike) -> dict:
    r"""How far the reward model's scores on current traffic have moved from a reference set.

    .. math:: \text{shift} = \frac{\bar r_{\text{cur}} - \bar r_{\text{ref}}}{s_{\text{ref}}}, \qquad
              \text{scale\_ratio} = \frac{s_{\text{cur}}}{s_{\text{ref}}}

    A shift alone changes no preference (Bradley–Terry sees differences) but
    moves every score PPO sees; a scale ratio :math:`s` acts on the KL-regularized
    policy exactly like dividing :math:`\beta` by :math:`s`.
    Returns ``{"shift", "scale_ratio"}`` as floats.  Shapes: both ``(n,)``, n >= 2.
    """
    ref = _finite_array("reference", reference)
    cur = _finite_array("current", current)
    if cur.ndim != 1 or cur.size < 2:
        raise ValueError(f"current must have shape (n,) with n >= 2, got shape {cur.shape}")
    z = normalize_rewards(cur, ref)
    return {"shift": float(np.mean(z)), "scale_ratio": float(cur.std() / ref.std())}
