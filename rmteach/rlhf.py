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
* :func:`heldout_preference_accuracy`, :func:`human_win_rate`,
  :func:`simulate_kl_regularized_training` and :func:`reward_hacking_onset`: a
  training log in which the reward-model score rises while what people think
  of the policy's outputs falls (reward hacking), and the step where it starts.
* :func:`normalize_rewards`, :func:`reward_drift`, :func:`paired_reward_drift`
  and :func:`recalibrate_rewards`: reward drift after deployment, measured on
  pooled traffic (level and spread) or, for the part that acts on PPO, on a
  fixed paired calibration set (offset and stretch), and undone.
* :func:`ppo_clip_loss` and :func:`clip_fraction`: PPO's clipped surrogate
  objective and how much of a batch its trust region clips.
* :func:`kl_estimates` and :class:`AdaptiveKLController`: the three per-sample
  estimators of :math:`\mathrm{KL}(\pi\,\|\,\pi_{\text{ref}})` (k1, k2, k3) and
  the controller that adapts :math:`\beta` to a KL target (Ziegler et al. 2019).

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
    "human_win_rate",
    "simulate_kl_regularized_training",
    "reward_hacking_onset",
    "normalize_rewards",
    "reward_drift",
    "paired_reward_drift",
    "recalibrate_rewards",
    "ppo_clip_loss",
    "clip_fraction",
    "kl_estimates",
    "AdaptiveKLController",
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

    .. math:: r_\beta(x, y) = r(x, y) - \beta \sum_{t=1}^{T}
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

    .. math:: r_{\beta,t} = -\beta\bigl(\log\pi(y_t\mid\cdot) - \log\pi_{\text{ref}}(y_t\mid\cdot)\bigr)
              + [t = T]\; r(x, y)

    Every token pays its own KL penalty; the reward model's score arrives only
    at the last token.  :math:`\sum_t r_{\beta,t}` equals :func:`kl_penalized_reward`.

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


def human_win_rate(probs: ArrayLike, ref_probs: ArrayLike, true_reward: ArrayLike) -> np.float64:
    r"""How often people prefer the policy's response to the reference policy's (Bradley–Terry).

    Draw :math:`y \sim \pi` and :math:`y' \sim \pi_{\text{ref}}` independently; a
    human labeler prefers :math:`y` with probability :math:`\sigma(r^*(y) - r^*(y'))`:

    .. math:: W(\pi) = \sum_j \pi_j \sum_k \pi_{\text{ref},k}\; \sigma(r^*_j - r^*_k)

    :math:`W(\pi_{\text{ref}}) = \tfrac12` exactly (the terms for :math:`(j, k)` and
    :math:`(k, j)` add to :math:`\pi_j\pi_k`).  Unlike
    :func:`heldout_preference_accuracy` it measures the *policy*, not the reward
    model, against a fixed baseline, so it rises while training helps and falls
    once the policy trades quality for reward-model score: the human signal to
    stop or roll back on.  Shapes: all ``(K,)``; a scalar result in :math:`[0, 1]`.
    """
    pi = _probs("probs", probs)
    ref = _vector_like("ref_probs", _probs("ref_probs", ref_probs), "probs", pi)
    rstar = _vector_like("true_reward", true_reward, "probs", pi)
    wins = _sigmoid(rstar[:, None] - rstar[None, :])
    return np.float64(math.fsum((np.outer(pi, ref) * wins).ravel()))


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

    .. math:: \theta_k \leftarrow \theta_k + \eta\,\pi_k\bigl(r_{\beta,k} - \textstyle\sum_j \pi_j r_{\beta,j}\bigr),
              \qquad r_{\beta,k} = \hat r_k - \beta\log\frac{\pi_k}{\pi_{\text{ref},k}}

    (:math:`r_{\beta,k}` is :func:`kl_penalized_reward` of response :math:`k`; :math:`\eta` =
    ``lr``).  It converges to :func:`kl_regularized_policy`.

    Returns a table as a dict of arrays of shape ``(steps + 1,)``: ``"step"``,
    ``"proxy_reward"`` :math:`E_\pi[\hat r]` (what the training dashboard shows),
    ``"true_reward"`` :math:`E_\pi[r^*]`, ``"kl"``, ``"heldout_accuracy"``
    (:func:`heldout_preference_accuracy`: agreement on pairs of the policy's
    *current* outputs, which falls from the first step once the policy moves
    mass onto a response the reward model over-rates),
    ``"human_win_rate"`` (:func:`human_win_rate` against :math:`\pi_{\text{ref}}`,
    the signal to stop on), and ``"probs"`` ``(steps + 1, K)``.
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
    rows = {"step": [], "proxy_reward": [], "true_reward": [], "kl": [], "heldout_accuracy": [],
            "human_win_rate": [], "probs": []}
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
        rows["human_win_rate"].append(float(human_win_rate(pi, ref, rstar)))
        rows["probs"].append(pi)
        if step < steps:
            r_beta = rhat - b * (logpi - log_ref)
            theta = theta + eta * pi * (r_beta - math.fsum(pi * r_beta))
    out = {k: np.array(v) for k, v in rows.items()}
    out["step"] = out["step"].astype(np.int64)
    return out


def reward_hacking_onset(
    reward: ArrayLike, heldout_accuracy: ArrayLike, *, window: int = 1, tol: float = 0.0
) -> Optional[int]:
    r"""The first log row where the reward rises while a human signal falls.

    Row :math:`t \ge w` (:math:`w` = ``window``) is flagged when

    .. math:: \text{reward}_t > \text{reward}_{t-w} \quad\text{and}\quad
              \text{acc}_t < \text{acc}_{t-w} - \text{tol}

    the signature of reward hacking: the policy earns more reward-model score
    while people think less of it.  ``heldout_accuracy`` is any human signal
    logged per row: the human win rate against the reference
    (:func:`human_win_rate`) is the one to use; on-policy pair agreement
    (:func:`heldout_preference_accuracy`) falls from the first step of any run
    that moves mass onto a response the reward model over-rates, so it flags
    every run early.  Returns the row index, or ``None`` if no row is flagged.
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

    The ranking loss fixes rewards only up to a shift per prompt, so pipelines
    pick the level by convention: InstructGPT, once before RL, adds a bias so that
    labelers' demonstrations score 0 on average; many also divide by the spread
    on such a set.  :math:`s_{\text{ref}}` is the population standard deviation.
    Standardizing a set by its own statistics (``reference`` = ``rewards``) always
    gives mean 0 and std 1 and so erases any real change: to undo drift use
    :func:`paired_reward_drift` and :func:`recalibrate_rewards`.
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

    Pooled over different prompts and responses, these summarize the traffic,
    not the reward model: a shift changes no preference and no KL-regularized
    policy, and a larger spread can come from more varied prompts alone (their
    per-prompt offsets cancel in each prompt's :math:`\pi^*`).  Only a stretch of
    the scores *of the same responses* acts like dividing :math:`\beta` by it:
    measure that with :func:`paired_reward_drift`.
    Returns ``{"shift", "scale_ratio"}`` as floats.  Shapes: both ``(n,)``, n >= 2.
    """
    ref = _finite_array("reference", reference)
    cur = _finite_array("current", current)
    if cur.ndim != 1 or cur.size < 2:
        raise ValueError(f"current must have shape (n,) with n >= 2, got shape {cur.shape}")
    z = normalize_rewards(cur, ref)
    return {"shift": float(np.mean(z)), "scale_ratio": float(cur.std() / ref.std())}


def paired_reward_drift(signed_off: ArrayLike, current: ArrayLike) -> dict:
    r"""Offset and stretch of the reward model's scores on a fixed paired calibration set.

    The same :math:`n` responses were scored at sign-off (:math:`u_i`) and now
    (:math:`v_i`).  The least-squares fit :math:`v_i \approx a + s\,u_i` gives

    .. math:: s = \frac{\sum_i (u_i - \bar u)(v_i - \bar v)}{\sum_i (u_i - \bar u)^2}, \qquad
              a = \bar v - s\,\bar u

    The offset :math:`a` changes no KL-regularized policy; the stretch :math:`s`
    acts exactly like running PPO at :math:`\beta / s` (for one prompt,
    :math:`\pi^*` of :math:`a + s\,\hat r` at :math:`\beta` is :math:`\pi^*` of
    :math:`\hat r` at :math:`\beta/s`).  Returns ``{"offset", "scale"}`` as floats;
    undo them with :func:`recalibrate_rewards`.
    Shapes: both ``(n,)``, n >= 2, ``signed_off`` not all equal.
    """
    u = _finite_array("signed_off", signed_off)
    v = _finite_array("current", current)
    if u.ndim != 1 or u.size < 2:
        raise ValueError(f"signed_off must have shape (n,) with n >= 2, got shape {u.shape}")
    if v.shape != u.shape:
        raise ValueError(
            f"current must hold the scores of the same responses as signed_off {u.shape}, got shape {v.shape}"
        )
    du, dv = u - math.fsum(u) / u.size, v - math.fsum(v) / v.size
    sxx = math.fsum(du * du)
    if sxx == 0:
        raise ValueError("signed_off scores are all equal: no stretch can be measured")
    s = math.fsum(du * dv) / sxx
    return {"offset": math.fsum(v) / v.size - s * math.fsum(u) / u.size, "scale": s}


def recalibrate_rewards(rewards: ArrayLike, offset: float, scale: float) -> Real:
    r"""Map current scores back to the signed-off scale: :math:`r \mapsto (r - a)/s`.

    With :math:`a, s` from :func:`paired_reward_drift`, the calibration set's
    current scores come back to their signed-off values (exactly, when the
    drift is exactly affine), and PPO at the signed-off :math:`\beta` again
    targets the signed-off policy.  Shapes: ``rewards`` any; ``offset`` a finite
    number; ``scale`` a finite number > 0.
    """
    r = _finite_array("rewards", rewards)
    a = _finite_array("offset", offset)
    if a.shape != ():
        raise ValueError(f"offset must be a single number, got shape {a.shape}")
    s = _beta(scale, "scale", positive=True)
    return ((r - float(a)) / s)[()]



# --------------------------------------------------------------------------
# PPO's clipped surrogate


def _ratio(ratio: ArrayLike) -> np.ndarray:
    r = _array("ratio", ratio)
    if r.size == 0:
        raise ValueError("ratio is empty (shape (0,)); need at least one sample")
    bad = ~(np.isfinite(r) & (r > 0))
    if np.any(bad):
        i = tuple(int(k) for k in np.argwhere(bad)[0])
        where = f" at index {i[0] if len(i) == 1 else i}" if i else ""
        raise ValueError(
            f"ratio must be finite and > 0 (it is pi_new(a|s) / pi_old(a|s) = exp(logp_new - logp_old)), "
            f"got {float(r[i])!r}{where}"
        )
    return r


def _eps(eps: float) -> float:
    e = _array("eps", eps)
    if e.shape != ():
        raise ValueError(f"eps must be a single number, got shape {e.shape}")
    value = float(e)
    if not (0.0 < value < 1.0):
        raise ValueError(f"eps must be a number in (0, 1) (the trust region is [1 - eps, 1 + eps]), got {value}")
    return value


def ppo_clip_loss(ratio: ArrayLike, advantages: ArrayLike, eps: float = 0.2) -> np.float64:
    r"""PPO's clipped surrogate (Schulman et al. 2017), as a loss to minimize.

    With the probability ratio :math:`\rho_i = \pi_\theta(a_i\mid s_i)/\pi_{\text{old}}(a_i\mid s_i)`
    and advantage :math:`A_i`,

    .. math:: \mathcal{L}^{\text{CLIP}} = \frac{1}{N}\sum_i \max\bigl(-A_i\rho_i,\;
              -A_i\,\mathrm{clip}(\rho_i, 1-\varepsilon, 1+\varepsilon)\bigr)

    the negative of :math:`E[\min(\rho A, \mathrm{clip}(\rho)A)]`: the pessimistic
    bound.  A sample whose ratio has left the trust region *in the direction
    its advantage pushes* (:math:`A > 0` and :math:`\rho > 1+\varepsilon`, or
    :math:`A < 0` and :math:`\rho < 1-\varepsilon`) contributes the constant
    :math:`-A(1\pm\varepsilon)` and so no gradient; inside the region, and where
    the ratio moved against its advantage, the loss is :math:`-A\rho`, whose
    gradient :math:`-A/N` pulls it back.

    Computed as written in float64 (the mean by :func:`math.fsum`); nothing
    overflows.  Shapes: ``ratio`` and ``advantages`` of the same shape (any,
    non-empty: ``(N,)`` samples or ``(B, T)`` tokens); a scalar result.
    ``ratio`` finite and > 0, ``advantages`` finite, ``eps`` in (0, 1).
    """
    rho = _ratio(ratio)
    adv = _finite_array("advantages", advantages)
    if adv.shape != rho.shape:
        raise ValueError(f"advantages must have the shape of ratio {rho.shape}, got shape {adv.shape}")
    e = _eps(eps)
    per_sample = np.maximum(-adv * rho, -adv * np.clip(rho, 1.0 - e, 1.0 + e))
    return np.float64(math.fsum(per_sample.ravel()) / per_sample.size)


def clip_fraction(ratio: ArrayLike, eps: float = 0.2) -> np.float64:
    r"""Fraction of samples whose ratio lies outside PPO's trust region.

    .. math:: \text{clip\_fraction} = \frac{1}{N}\sum_i \bigl[\,\rho_i < 1 - \varepsilon
              \ \text{or}\ \rho_i > 1 + \varepsilon\,\bigr]

    (what Stable-Baselines3 logs as ``clip_fraction``).  A ratio exactly on an edge
    :math:`1 \pm \varepsilon` is not counted: ``np.clip`` does not move it, and
    :func:`ppo_clip_loss` treats it as unclipped (the edges are compared as
    computed, ``1 - eps`` and ``1 + eps``, not through ``|rho - 1|``, whose rounding
    would count ``rho = 1.3`` at ``eps = 0.3``).  Counted whatever the sign of the
    advantage, so it is an upper bound on the fraction whose gradient
    :func:`ppo_clip_loss` switches off (TRL's ``pg_clipfrac`` counts only those).
    A large value means the policy moved far from the one that collected the batch.

    Shapes: ``ratio`` any non-empty shape, finite and > 0; a scalar result.
    """
    rho = _ratio(ratio)
    e = _eps(eps)
    outside = (rho < 1.0 - e) | (rho > 1.0 + e)
    return np.float64(np.count_nonzero(outside) / rho.size)


# --------------------------------------------------------------------------
# Monte-Carlo KL estimators and the adaptive KL coefficient


# e^x - 1 - x = (x^2 / 2) * sum_{n>=0} x^n * 2 / (n+2)!  (|x| < 1/2: the first omitted term is < 1e-20)
_K3_SERIES = tuple(2.0 / math.factorial(n + 2) for n in range(16))


def _expm1_minus_x(x: np.ndarray) -> np.ndarray:
    r""":math:`e^x - 1 - x \ge 0` to a few ulp for every float64 :math:`x`.

    ``expm1(x) - x`` cancels for small :math:`|x|` (at :math:`x = 10^{-6}` it keeps
    only ten of the sixteen digits); below :math:`|x| < 1/2` the Taylor series,
    whose terms are all of one sign, is summed instead.  ``inf`` above
    :math:`x > 709.78`, where the value exceeds the float64 range.
    """
    with np.errstate(over="ignore"):
        out = np.expm1(x) - x
    small = np.abs(x) < 0.5
    if np.any(small):
        xs = x[small]
        s = np.full_like(xs, _K3_SERIES[-1])
        for c in reversed(_K3_SERIES[:-1]):
            s = s * xs + c
        out[small] = 0.5 * xs * xs * s
    return out


def _sample_logprobs(name: str, x: ArrayLike) -> np.ndarray:
    a = _finite_array(name, x)
    if a.size == 0:
        raise ValueError(f"{name} is empty (shape {a.shape}); need at least one sample")
    if np.any(a > 0):
        raise ValueError(f"{name} must be log-probabilities (<= 0), got a largest value {float(a.max())!r}")
    return a


def kl_estimates(logp_policy: ArrayLike, logp_ref: ArrayLike) -> dict:
    r"""Three per-sample estimators of :math:`\mathrm{KL}(\pi\,\|\,\pi_{\text{ref}})` (Schulman 2020).

    For samples :math:`y \sim \pi` (the policy, *not* the reference) and the log
    ratio :math:`\ell = \log\pi_{\text{ref}}(y) - \log\pi(y)`:

    .. math:: k_1 = -\ell, \qquad k_2 = \tfrac{1}{2}\ell^2, \qquad k_3 = (e^{\ell} - 1) - \ell

    * :math:`k_1` is unbiased, :math:`E_\pi[k_1] = \mathrm{KL}`, but a single
      sample is negative whenever :math:`\pi_{\text{ref}}(y) > \pi(y)`, and its
      variance is high.
    * :math:`k_2 \ge 0` with low variance, but biased: :math:`E_\pi[k_2] \ne \mathrm{KL}`
      in general (it is exact only to second order as :math:`\pi \to \pi_{\text{ref}}`).
    * :math:`k_3 \ge 0` (as :math:`e^\ell \ge 1 + \ell`) *and* unbiased, because
      :math:`E_\pi[e^\ell - 1] = \sum_y \pi_{\text{ref}}(y) - 1 = 0` adds a
      zero-mean control variate to :math:`k_1`.

    Stable form: :math:`k_3` is ``expm1(l) - l`` (never ``exp(l) - 1 - l``, which
    loses every digit as :math:`\ell \to 0`), and for :math:`|\ell| < 1/2`, where
    even that subtraction cancels, the Taylor series
    :math:`\tfrac{\ell^2}{2}\sum_{n\ge0} \tfrac{2\ell^n}{(n+2)!}`; accurate to a
    few ulp, and exactly :math:`\ge 0`.

    Returns ``{"k1", "k2", "k3"}``: float64 arrays of the per-sample values, each
    of the inputs' shape (NumPy scalars for scalar inputs); average them for the
    estimate.
    Shapes: ``logp_policy`` and ``logp_ref`` the same shape (any, non-empty),
    finite log-probabilities (<= 0).
    """
    lp = _sample_logprobs("logp_policy", logp_policy)
    lq = _sample_logprobs("logp_ref", logp_ref)
    if lq.shape != lp.shape:
        raise ValueError(
            f"logp_policy and logp_ref must have the same shape, got {lp.shape} and {lq.shape}"
        )
    lr = np.atleast_1d(lq - lp)
    k = {"k1": -lr, "k2": 0.5 * np.square(lr), "k3": _expm1_minus_x(lr)}
    return {name: v.reshape(lp.shape)[()] for name, v in k.items()}


class AdaptiveKLController:
    r"""The adaptive KL coefficient of Ziegler et al. (2019), "Fine-Tuning Language Models from Human Preferences".

    PPO maximizes :math:`r - \beta\,\mathrm{KL}`; rather than fix :math:`\beta`,
    the controller steers the measured KL toward a target
    :math:`\mathrm{KL}_{\text{target}}` with a clipped proportional update after
    each batch of :math:`n` samples:

    .. math:: e = \mathrm{clip}\Bigl(\frac{\mathrm{KL}_{\text{current}}}{\mathrm{KL}_{\text{target}}} - 1,\,
              -0.2,\, 0.2\Bigr), \qquad
              \beta \leftarrow \beta\,\Bigl(1 + e\,\frac{n}{H}\Bigr)

    KL above the target raises :math:`\beta` (pull back toward the reference),
    below it lowers :math:`\beta`; the clip at :math:`\pm 0.2` bounds the step,
    and the horizon :math:`H` sets how fast :math:`\beta` moves (at most by a
    factor :math:`1 \pm 0.2n/H` per update).

    Args (shapes: all single numbers):
        init_beta: the starting :math:`\beta > 0`.
        target: :math:`\mathrm{KL}_{\text{target}} > 0` in nats (Ziegler et al.: 6 per prompt).
        horizon: :math:`H > 0` in samples (Ziegler et al.: 10000).

    The current coefficient is :attr:`value`.
    """

    def __init__(self, init_beta: float, target: float, horizon: float) -> None:
        self.value = _beta(init_beta, "init_beta", positive=True)
        self.target = _beta(target, "target", positive=True)
        self.horizon = _beta(horizon, "horizon", positive=True)

    def update(self, current_kl: float, n_steps: int) -> float:
        r"""One controller step; returns the new :math:`\beta` (also kept in :attr:`value`).

        .. math:: \beta \leftarrow \beta\Bigl(1 + \mathrm{clip}\bigl(\mathrm{KL}/\mathrm{KL}_{\text{target}} - 1,
                  -0.2, 0.2\bigr)\,\frac{n}{H}\Bigr)

        ``current_kl`` is the KL measured on the last batch (a finite number;
        a Monte-Carlo estimate may be slightly negative), ``n_steps`` the
        integer number of samples :math:`n \ge 0` it covered.  An update that would
        make :math:`\beta \le 0` (only possible with :math:`n \ge 5H`) raises
        ``ValueError``.  Shapes: single numbers in, a float out.
        """
        kl = _array("current_kl", current_kl)
        if kl.shape != () or not math.isfinite(float(kl)):
            raise ValueError(f"current_kl must be a single finite number, got {_checks.describe(current_kl)}")
        if isinstance(n_steps, bool) or not isinstance(n_steps, (int, np.integer)) or n_steps < 0:
            raise ValueError(f"n_steps must be an integer >= 0, got {_checks.describe(n_steps)}")
        error = min(max(float(kl) / self.target - 1.0, -0.2), 0.2)
        multiplier = 1.0 + error * int(n_steps) / self.horizon
        if multiplier <= 0:
            raise ValueError(
                f"n_steps={int(n_steps)} with horizon={self.horizon} would scale beta by {multiplier} <= 0; "
                "use n_steps < 5 * horizon"
            )
        self.value *= multiplier
        return self.value
