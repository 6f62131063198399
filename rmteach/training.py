r"""Train a small reward model on synthetic Bradley–Terry preferences (PyTorch).

The pieces of notebook 4, each small enough to read in one sitting:

* :func:`make_preference_data` draws responses with feature vectors, gives each
  a hidden *true* reward :math:`r^*(y) = w^{*\top} f_y + c^*`, and lets a
  simulated labeler compare random pairs by Bradley–Terry:
  :math:`P(y_a \succ y_b) = \sigma(r^*(y_a) - r^*(y_b))`.
* :class:`LinearRewardModel` and :class:`MLPRewardModel` map features to a scalar
  reward.
* :func:`train_reward_model` minimizes :func:`rmteach.torch.ranking_loss` (plus
  the optional centering penalty of
  :func:`rmteach.torch.regularized_ranking_loss`) and returns a
  :class:`TrainingHistory`; a ``callback(step, **metrics)`` (for example
  ``rmteach.widgets.TrainingMonitor(...).update``) sees every evaluation live.
* :func:`align_up_to_shift` compares learned and true rewards after removing the
  one thing preference data cannot reveal: a common constant.
* :func:`pair_weights` gives the weights :math:`\Pr(x)\Pr(\text{pair}\mid x)` of the
  expected loss over a dataset (Q01).
* :func:`linear_score_step`: what one gradient step on the weights does to the
  two scores of a pair (the kernel :math:`K(y, y') = f_y^\top f_{y'}`; Q06).
* :func:`flipped_label_probability`, :func:`label_agreement`,
  :func:`rao_kupper_probabilities` and :func:`davidson_probabilities`: noisy
  labels, the agreement ceiling, and Bradley–Terry with ties.
* :func:`stuck_at_chance_demo`, :func:`overfitting_demo` and
  :func:`drifting_scale_demo` reproduce the training failures, and
  :func:`diagnose_training` names them from a history (Q11, Q12).

Everything is float64 and seeded: the same arguments give the same numbers.
Importing this module imports torch (``rmteach.numpy`` never does).
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Callable, Optional, Sequence

import numpy as np
import torch
from torch import nn

from rmteach import _checks
from rmteach._torch_threads import one_thread
from rmteach import torch as rm

__all__ = [
    "LN2",
    "PreferenceData",
    "make_preference_data",
    "LinearRewardModel",
    "MLPRewardModel",
    "TrainingHistory",
    "train_reward_model",
    "evaluate_reward_model",
    "align_up_to_shift",
    "pair_weights",
    "diagnose_training",
    "linear_score_step",
    "flipped_label_probability",
    "label_agreement",
    "rao_kupper_probabilities",
    "davidson_probabilities",
    "stuck_at_chance_demo",
    "overfitting_demo",
    "drifting_scale_demo",
]

LN2 = math.log(2.0)
"""The loss of a model that cannot tell two responses apart: :math:`-\\log\\sigma(0) = \\ln 2`."""

DTYPE = torch.float64

METRICS = ("train_loss", "val_loss", "train_acc", "val_acc", "reward_mean", "reward_std")


# --------------------------------------------------------------------------
# argument checks (each names the argument)


def _positive_int(name: str, value, minimum: int = 1) -> int:
    return _checks.check_int(name, value, minimum)


def _finite(name: str, value, minimum: Optional[float] = None, strict: bool = False) -> float:
    if isinstance(value, bool) or not isinstance(value, (int, float, np.integer, np.floating)):
        raise TypeError(f"{name} must be a real number, got {_checks.describe(value)}")
    value = float(value)
    if not math.isfinite(value):
        raise ValueError(f"{name} must be finite, got {value}")
    if minimum is not None and (value <= minimum if strict else value < minimum):
        raise ValueError(f"{name} must be {'>' if strict else '>='} {minimum}, got {value}")
    return value


# --------------------------------------------------------------------------
# data


@dataclass(frozen=True)
class PreferenceData:
    r"""Responses, their hidden true rewards, and labelled train/validation pairs.

    Attributes:
        features: ``(n_items, n_features)`` float64, one row per response.
        true_rewards: ``(n_items,)`` the hidden :math:`r^*(y) = w^{*\top}f_y + c^*`.
        true_weights: ``(n_features,)`` the hidden :math:`w^*`.
        true_offset: the hidden constant :math:`c^*` (no preference reveals it).
        train_pairs: ``(n_train, 2)`` int64 item indices, column 0 preferred, column 1 rejected.
        val_pairs: ``(n_val, 2)`` the same for held-out pairs.
    """

    features: torch.Tensor
    true_rewards: torch.Tensor
    true_weights: torch.Tensor
    true_offset: float
    train_pairs: torch.Tensor
    val_pairs: torch.Tensor

    @property
    def n_features(self) -> int:
        return int(self.features.shape[1])

    @property
    def n_items(self) -> int:
        return int(self.features.shape[0])


def make_preference_data(
    n_items: int = 200,
    n_features: int = 5,
    n_train: int = 2000,
    n_val: int = 500,
    *,
    reward_scale: float = 2.0,
    true_offset: float = 3.0,
    feature_mean: float = 0.0,
    labels: str = "bradley_terry",
    flip_prob: float = 0.0,
    seed: int = 0,
) -> PreferenceData:
    r"""Synthetic preference pairs labelled from hidden true rewards.

    Features :math:`f_y \sim \mathcal{N}(\mu, I)` with :math:`\mu` = ``feature_mean``
    in every coordinate; true weights :math:`w^*` with norm ``reward_scale`` in a
    random direction; true rewards :math:`r^*(y) = w^{*\top}f_y + c^*` with
    :math:`c^*` = ``true_offset``.  Each pair :math:`(a, b)` is two distinct
    responses drawn uniformly; the labeler prefers :math:`a` with probability

    .. math:: P(y_a \succ y_b) = \sigma\bigl(r^*(y_a) - r^*(y_b)\bigr)   \quad (\texttt{labels="bradley\_terry"}),

    or always picks the higher true reward (``"deterministic"``: a noiseless
    labeler), or flips a fair coin whatever the features say (``"random"``:
    nothing to learn).  Then each label is flipped with probability
    :math:`\varepsilon` = ``flip_prob`` (a careless labeler or a data-entry error;
    :func:`flipped_label_probability` gives the resulting preference probability).
    The pair is stored as (preferred, rejected).

    Shapes: see :class:`PreferenceData`.  The same ``seed`` gives the same data.
    """
    n_items = _positive_int("n_items", n_items, 2)
    n_features = _positive_int("n_features", n_features)
    n_train = _positive_int("n_train", n_train)
    n_val = _positive_int("n_val", n_val)
    reward_scale = _finite("reward_scale", reward_scale, 0.0)
    true_offset = _finite("true_offset", true_offset)
    feature_mean = _finite("feature_mean", feature_mean)
    if labels not in ("bradley_terry", "deterministic", "random"):
        raise ValueError(
            f"labels must be 'bradley_terry', 'deterministic' or 'random', got {_checks.describe(labels)}"
        )
    flip_prob = _finite("flip_prob", flip_prob, 0.0)
    if flip_prob > 1.0:
        raise ValueError(f"flip_prob must be a probability in [0, 1], got {flip_prob}")
    seed = _positive_int("seed", seed, 0)

    gen = torch.Generator().manual_seed(seed)
    features = feature_mean + torch.randn(n_items, n_features, generator=gen, dtype=DTYPE)
    direction = torch.randn(n_features, generator=gen, dtype=DTYPE)
    true_weights = reward_scale * direction / direction.norm()
    true_rewards = features @ true_weights + true_offset

    n_pairs = n_train + n_val
    a = torch.randint(0, n_items, (n_pairs,), generator=gen)
    # a second item distinct from the first: add an offset in [1, n_items - 1]
    b = (a + torch.randint(1, n_items, (n_pairs,), generator=gen)) % n_items
    u = torch.rand(n_pairs, generator=gen, dtype=DTYPE)
    if labels == "bradley_terry":
        a_wins = u < rm.preference_probability(true_rewards[a], true_rewards[b])
    elif labels == "deterministic":
        a_wins = true_rewards[a] > true_rewards[b]
    else:
        a_wins = u < 0.5
    # drawn after everything else, so flip_prob=0 gives exactly the data of before
    flips = torch.rand(n_pairs, generator=gen, dtype=DTYPE) < flip_prob
    a_wins = a_wins ^ flips
    pairs = torch.stack([torch.where(a_wins, a, b), torch.where(a_wins, b, a)], dim=1)
    return PreferenceData(
        features=features,
        true_rewards=true_rewards,
        true_weights=true_weights,
        true_offset=true_offset,
        train_pairs=pairs[:n_train],
        val_pairs=pairs[n_train:],
    )


# --------------------------------------------------------------------------
# models


class LinearRewardModel(nn.Module):
    r"""A linear reward model :math:`r_\phi(y) = w^\top f_y + b`.

    The bias :math:`b` cancels in every difference :math:`r(y_a) - r(y_b)`, so the
    ranking loss never changes it: it is the free shift of Bradley–Terry.
    ``init="zeros"`` starts from :math:`w = 0, b = 0`.
    Shapes: ``forward`` maps ``(..., n_features)`` to ``(...,)``.
    """

    def __init__(self, n_features: int, *, init: str = "random", seed: int = 0) -> None:
        super().__init__()
        n_features = _positive_int("n_features", n_features)
        if init not in ("random", "zeros"):
            raise ValueError(f"init must be 'random' or 'zeros', got {_checks.describe(init)}")
        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(_positive_int("seed", seed, 0))
            self.linear = nn.Linear(n_features, 1, dtype=DTYPE)
        if init == "zeros":
            with torch.no_grad():
                self.linear.weight.zero_()
                self.linear.bias.zero_()

    def forward(self, features: torch.Tensor) -> torch.Tensor:
        return self.linear(features).squeeze(-1)


class MLPRewardModel(nn.Module):
    r"""A one-hidden-layer reward model :math:`r_\phi(y) = v^\top \tanh(W f_y + c) + b`.

    ``init="zeros"`` sets every parameter to 0: then :math:`\tanh(0) = 0`, every
    gradient is 0, and the model stays at :math:`r \equiv 0` and loss
    :math:`\ln 2` for ever (a symmetric, dead start).
    Shapes: ``forward`` maps ``(..., n_features)`` to ``(...,)``.
    """

    def __init__(self, n_features: int, hidden: int = 32, *, init: str = "random", seed: int = 0) -> None:
        super().__init__()
        n_features = _positive_int("n_features", n_features)
        hidden = _positive_int("hidden", hidden)
        if init not in ("random", "zeros"):
            raise ValueError(f"init must be 'random' or 'zeros', got {_checks.describe(init)}")
        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(_positive_int("seed", seed, 0))
            self.hidden = nn.Linear(n_features, hidden, dtype=DTYPE)
            self.out = nn.Linear(hidden, 1, dtype=DTYPE)
        if init == "zeros":
            with torch.no_grad():
                for p in self.parameters():
                    p.zero_()

    def forward(self, features: torch.Tensor) -> torch.Tensor:
        return self.out(torch.tanh(self.hidden(features))).squeeze(-1)


# --------------------------------------------------------------------------
# training


@dataclass
class TrainingHistory:
    """Metrics at each evaluated step (lists of Python floats, one entry per evaluation).

    ``train_loss``/``val_loss`` are the plain ranking loss (without the centering
    penalty), ``*_acc`` the ranking accuracy (ties wrong), ``reward_mean`` and
    ``reward_std`` the mean and spread of the model's rewards over all responses.
    """

    step: list = field(default_factory=list)
    train_loss: list = field(default_factory=list)
    val_loss: list = field(default_factory=list)
    train_acc: list = field(default_factory=list)
    val_acc: list = field(default_factory=list)
    reward_mean: list = field(default_factory=list)
    reward_std: list = field(default_factory=list)

    def append(self, step: int, metrics: dict) -> None:
        self.step.append(int(step))
        for name in METRICS:
            getattr(self, name).append(float(metrics[name]))

    def final(self) -> dict:
        """The last evaluation, ``{"step": ..., "train_loss": ..., ...}``."""
        if not self.step:
            raise ValueError("the history is empty: no step was evaluated")
        return {"step": self.step[-1], **{name: getattr(self, name)[-1] for name in METRICS}}

    def as_dict(self) -> dict:
        """Every column as a list, for a table or a plot."""
        return {"step": list(self.step), **{name: list(getattr(self, name)) for name in METRICS}}


def _pair_rewards(rewards: torch.Tensor, pairs: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    return rewards[pairs[:, 0]], rewards[pairs[:, 1]]


@torch.no_grad()
def evaluate_reward_model(model: nn.Module, data: PreferenceData) -> dict:
    r"""Ranking loss and accuracy on the train and validation pairs, and the reward level.

    Returns ``{"train_loss", "val_loss", "train_acc", "val_acc", "reward_mean",
    "reward_std"}`` as Python floats; the losses are
    :math:`-\frac{1}{|D|}\sum_D \log\sigma(r_\phi(y_{\text{pref}}) - r_\phi(y_{\text{rej}}))`.
    """
    _check_model_data(model, data)
    rewards = model(data.features)
    out = {}
    for split, pairs in (("train", data.train_pairs), ("val", data.val_pairs)):
        rp, rr = _pair_rewards(rewards, pairs)
        out[f"{split}_loss"] = float(rm.ranking_loss(rp, rr))
        out[f"{split}_acc"] = float(rm.ranking_accuracy(rp, rr))
    out["reward_mean"] = float(rewards.mean())
    out["reward_std"] = float(rewards.std(unbiased=False))
    return out


def _check_model_data(model, data) -> None:
    if not isinstance(model, nn.Module):
        raise TypeError(f"model must be a torch.nn.Module, got {_checks.describe(model)}")
    if not isinstance(data, PreferenceData):
        raise TypeError(
            f"data must be a PreferenceData (see make_preference_data), got {_checks.describe(data)}"
        )


def train_reward_model(
    model: nn.Module,
    data: PreferenceData,
    *,
    steps: int = 300,
    lr: float = 0.05,
    batch_size: int = 64,
    center_coef: float = 0.0,
    weight_decay: float = 0.0,
    label_smoothing: float = 0.0,
    eval_every: int = 10,
    seed: int = 0,
    callback: Optional[Callable[..., object]] = None,
) -> TrainingHistory:
    r"""Fit ``model`` to the training pairs with Adam on the pair-wise ranking loss.

    Each step draws ``batch_size`` training pairs (with replacement; all of them
    in order when ``batch_size`` is at least their number) and minimizes

    .. math:: \mathcal{L} = -\frac{1}{B}\sum_{i=1}^{B} \log\sigma\bigl(r_\phi(y_{\text{pref},i}) - r_\phi(y_{\text{rej},i})\bigr)
              + \lambda\,\frac{1}{B}\sum_{i=1}^{B}\bigl(r_\phi(y_{\text{pref},i}) + r_\phi(y_{\text{rej},i})\bigr)^2

    with :math:`\lambda` = ``center_coef`` (0: :func:`rmteach.torch.ranking_loss`;
    otherwise :func:`rmteach.torch.regularized_ranking_loss`).  ``weight_decay``
    is Adam's L2 penalty.  ``label_smoothing`` :math:`\varepsilon` > 0 replaces the
    ranking part by :func:`rmteach.torch.soft_ranking_loss` with target
    :math:`p = 1 - \varepsilon`: each pair's push stops at the margin
    :math:`\log\frac{1-\varepsilon}{\varepsilon}`, so the scale cannot grow for ever
    (and flipped labels cost a bounded amount).  Before the first step and after every ``eval_every``
    steps (and after the last) :func:`evaluate_reward_model` runs, its metrics
    are appended to the history, and ``callback(step, **metrics)`` is called
    (``step`` = number of updates done, so 0 is the untrained model).

    Returns the :class:`TrainingHistory`; ``model`` is trained in place.  The
    loop runs torch on one thread and restores the caller's thread count after.
    """
    _check_model_data(model, data)
    steps = _positive_int("steps", steps)
    lr = _finite("lr", lr, 0.0, strict=True)
    batch_size = _positive_int("batch_size", batch_size)
    center_coef = _finite("center_coef", center_coef, 0.0)
    weight_decay = _finite("weight_decay", weight_decay, 0.0)
    label_smoothing = _finite("label_smoothing", label_smoothing, 0.0)
    if label_smoothing >= 0.5:
        raise ValueError(f"label_smoothing must be in [0, 0.5) (the target 1 - eps must favour the label), "
                         f"got {label_smoothing}")
    eval_every = _positive_int("eval_every", eval_every)
    seed = _positive_int("seed", seed, 0)
    if callback is not None and not callable(callback):
        raise TypeError(f"callback must be callable or None, got {_checks.describe(callback)}")
    if next(iter(model.parameters()), None) is None:
        raise ValueError("model has no parameters to train")

    with one_thread():
        return _train(model, data, steps, lr, batch_size, center_coef, weight_decay, label_smoothing,
                      eval_every, seed, callback)


def _train(model, data, steps, lr, batch_size, center_coef, weight_decay, label_smoothing, eval_every, seed,
           callback):
    gen = torch.Generator().manual_seed(seed)
    # foreach=False: for these tiny models the per-parameter loop is about twice as fast
    opt = torch.optim.Adam(model.parameters(), lr=lr, weight_decay=weight_decay, foreach=False)
    history = TrainingHistory()
    n_train = data.train_pairs.shape[0]

    def record(step: int) -> None:
        model.eval()
        metrics = evaluate_reward_model(model, data)
        model.train()
        history.append(step, metrics)
        if callback is not None:
            callback(step, **metrics)

    record(0)
    model.train()
    for step in range(1, steps + 1):
        if batch_size >= n_train:
            batch = data.train_pairs
        else:
            batch = data.train_pairs[torch.randint(0, n_train, (batch_size,), generator=gen)]
        rp = model(data.features[batch[:, 0]])
        rr = model(data.features[batch[:, 1]])
        if label_smoothing > 0:
            loss = rm.soft_ranking_loss(rp, rr, torch.full_like(rp, 1.0 - label_smoothing))
            if center_coef > 0:
                loss = loss + center_coef * torch.mean(torch.square(rp + rr))
        elif center_coef > 0:
            loss = rm.regularized_ranking_loss(rp, rr, center_coef)
        else:
            loss = rm.ranking_loss(rp, rr)
        opt.zero_grad()
        loss.backward()
        opt.step()
        if step % eval_every == 0 or step == steps:
            record(step)
    model.eval()
    return history


# --------------------------------------------------------------------------
# reading the result


def align_up_to_shift(learned: Sequence[float], true: Sequence[float]) -> dict:
    r"""Compare two reward vectors after removing the best common shift.

    Bradley–Terry only sees differences, so the best we can hope for is
    :math:`r_\phi(y) \approx r^*(y) + c` for one constant :math:`c`.  The least
    squares shift is the mean difference,

    .. math:: c = \frac{1}{n}\sum_y \bigl(r_\phi(y) - r^*(y)\bigr), \qquad
              \text{rms} = \sqrt{\frac{1}{n}\sum_y \bigl(r_\phi(y) - r^*(y) - c\bigr)^2}

    Returns ``{"shift": c, "rms_error": rms, "true_std": std of r*,
    "correlation": Pearson correlation}`` as floats.  Shapes: both ``(n,)``, n >= 2.
    """
    a = np.asarray(_checks.as_real_array("learned", _to_numpy(learned)), dtype=np.float64)
    b = np.asarray(_checks.as_real_array("true", _to_numpy(true)), dtype=np.float64)
    if a.ndim != 1 or a.size < 2:
        raise ValueError(f"learned must have shape (n,) with n >= 2, got shape {a.shape}")
    if b.shape != a.shape:
        raise ValueError(f"learned and true must have the same shape, got {a.shape} and {b.shape}")
    d = a - b
    shift = float(d.mean())
    return {
        "shift": shift,
        "rms_error": float(np.sqrt(np.mean((d - shift) ** 2))),
        "true_std": float(b.std()),
        "correlation": float(np.corrcoef(a, b)[0, 1]),
    }


def _to_numpy(x):
    if isinstance(x, torch.Tensor):
        return x.detach().cpu().numpy()
    return x


def pair_weights(prompt_ids: Sequence[int], prompt_probs: Optional[dict] = None) -> np.ndarray:
    r"""Weights :math:`\Pr(x)\,\Pr(\text{pair}\mid x)` of each pair in the expected loss (Q01).

    The expected ranking loss over a preference dataset is

    .. math:: \mathcal{L}(\phi) = -\sum_x \Pr(x) \sum_{(y_a, y_b)} \Pr\bigl((y_a, y_b)\mid x\bigr)\,
              \log\sigma\bigl(r_\phi(x, y_a) - r_\phi(x, y_b)\bigr).

    Pairs of one prompt are drawn uniformly, :math:`\Pr(\text{pair}\mid x) = 1/n_x`
    for the :math:`n_x` pairs of prompt :math:`x`; ``prompt_probs`` maps each
    prompt id to :math:`\Pr(x)` (they must sum to 1; default uniform over the
    prompts present).  Pass the result as ``weights=`` to ``ranking_loss`` with
    ``reduction="sum"``.  With uniform prompts *and* the same number of pairs
    per prompt every weight is :math:`1/|D|`, and the loss is the plain mean
    :math:`-\frac{1}{|D|}\sum_D \log\sigma(\cdot)`.

    Shapes: ``prompt_ids`` ``(B,)`` integers (one per pair); result ``(B,)`` float64, summing to 1.
    """
    ids = np.asarray(prompt_ids)
    if ids.ndim != 1 or ids.size == 0 or ids.dtype.kind not in "iu":
        raise ValueError(
            f"prompt_ids must be a non-empty 1-D array of integer prompt ids, got {_checks.describe(prompt_ids)}"
        )
    unique, counts = np.unique(ids, return_counts=True)
    if prompt_probs is None:
        probs = {int(u): 1.0 / unique.size for u in unique}
    else:
        if not isinstance(prompt_probs, dict):
            raise TypeError(f"prompt_probs must be a dict {{prompt id: Pr(x)}}, got {_checks.describe(prompt_probs)}")
        missing = [int(u) for u in unique if int(u) not in prompt_probs]
        if missing:
            raise ValueError(f"prompt_probs has no probability for prompt id(s) {missing[:5]}")
        probs = {int(u): _finite(f"prompt_probs[{int(u)}]", prompt_probs[int(u)], 0.0) for u in unique}
        total = math.fsum(probs.values())
        if abs(total - 1.0) > 1e-9:
            raise ValueError(f"prompt_probs must sum to 1 over the prompts present, got {total!r}")
    n_pairs = dict(zip(unique.tolist(), counts.tolist()))
    return np.array([probs[int(i)] / n_pairs[int(i)] for i in ids], dtype=np.float64)


def diagnose_training(
    history: TrainingHistory,
    *,
    chance_tol: float = 0.01,
    overfit_tol: float = 0.02,
    drift_tol: float = 1.0,
    scale_tol: float = 0.25,
) -> list[str]:
    r"""Name the training problems a history shows (Q11).

    * ``"stuck_at_chance"``: the final train *and* validation losses are within
      ``chance_tol`` of :math:`\ln 2 = -\log\sigma(0)`: the rewards do not separate
      preferred from rejected responses.
    * ``"overfitting"``: the validation loss ended more than ``overfit_tol`` above
      its minimum while the train loss kept falling after that minimum.
    * ``"level_drift"``: the mean reward over all responses moved by more than
      ``drift_tol`` during training, a change no preference asked for.  It is
      harmless for preferences and for a KL-regularized policy; it matters for
      fixed thresholds, numerics and a value head's initialization.  Cure: the
      centering penalty, or subtract a bias after training.
    * ``"scale_growth"``: the spread of the rewards (``reward_std``) grew by more
      than a fraction ``scale_tol`` over the second half of the logged steps:
      the margins are still being stretched after the ranking has settled.
      A reward scale :math:`s` acts on PPO like dividing :math:`\beta` by :math:`s`.
      Cures: weight decay, label smoothing, early stopping, fewer epochs.

    Returns the names found, in that order (an empty list: nothing found).
    """
    if not isinstance(history, TrainingHistory):
        raise TypeError(f"history must be a TrainingHistory, got {_checks.describe(history)}")
    if len(history.step) < 2:
        raise ValueError(f"history must hold at least 2 evaluations, got {len(history.step)}")
    chance_tol = _finite("chance_tol", chance_tol, 0.0, strict=True)
    overfit_tol = _finite("overfit_tol", overfit_tol, 0.0, strict=True)
    drift_tol = _finite("drift_tol", drift_tol, 0.0, strict=True)
    scale_tol = _finite("scale_tol", scale_tol, 0.0, strict=True)
    found = []
    if abs(history.train_loss[-1] - LN2) < chance_tol and abs(history.val_loss[-1] - LN2) < chance_tol:
        found.append("stuck_at_chance")
    best = int(np.argmin(history.val_loss))
    if (
        history.val_loss[-1] - history.val_loss[best] > overfit_tol
        and history.train_loss[-1] < history.train_loss[best]
    ):
        found.append("overfitting")
    if abs(history.reward_mean[-1] - history.reward_mean[0]) > drift_tol:
        found.append("level_drift")
    mid = history.reward_std[(len(history.step) - 1) // 2]
    if history.reward_std[-1] > (1.0 + scale_tol) * mid:
        found.append("scale_growth")
    return found


# --------------------------------------------------------------------------
# one step on the weights, noisy labels, ties (NumPy; no training)


def _real_vector(name: str, x) -> np.ndarray:
    a = np.asarray(_checks.as_real_array(name, _to_numpy(x)), dtype=np.float64)
    if a.ndim != 1 or a.size == 0 or not np.all(np.isfinite(a)):
        raise ValueError(f"{name} must be a finite vector of shape (d,), got {_checks.describe(x)}")
    return a


def linear_score_step(weights, f_pref, f_rej, lr: float) -> dict:
    r"""One gradient step of a linear reward model :math:`r(y) = w^\top f_y + b` on one pair.

    With :math:`\Delta = r_{\text{pref}} - r_{\text{rej}}` the step is
    :math:`w \leftarrow w + \eta\,\sigma(-\Delta)(f_{\text{pref}} - f_{\text{rej}})` (the bias
    gets gradient 0), and with the kernel :math:`K(y, y') = f_y^\top f_{y'}` the
    scores move by

    .. math:: \delta r_{\text{pref}} = \eta\,\sigma(-\Delta)\,(K_{pp} - K_{pr}), \qquad
              \delta r_{\text{rej}} = -\eta\,\sigma(-\Delta)\,(K_{rr} - K_{pr}),

    so the gap grows by :math:`\eta\,\sigma(-\Delta)\,\|f_{\text{pref}} - f_{\text{rej}}\|^2 \ge 0`,
    while the two moves need not be equal, and :math:`r_{\text{rej}}` *rises* when
    :math:`K_{pr} > K_{rr}`.  For a linear model this is exact; for a network it is
    the first order, with :math:`K` the kernel of score gradients
    :math:`\nabla_\phi r(y)^\top \nabla_\phi r(y')`.

    Returns ``{"r_pref", "r_rej"`` (before, bias 0), ``"new_r_pref", "new_r_rej"``
    (after the step, computed from the new weights), ``"d_pref", "d_rej"`` (the
    kernel formula), ``"k_pp", "k_pr", "k_rr", "new_weights"}``.
    Shapes: ``weights``, ``f_pref``, ``f_rej`` all ``(d,)``; ``lr`` > 0.
    """
    from rmteach import numpy as rmnp

    w = _real_vector("weights", weights)
    fp = _real_vector("f_pref", f_pref)
    fr = _real_vector("f_rej", f_rej)
    if fp.shape != w.shape or fr.shape != w.shape:
        raise ValueError(f"weights, f_pref and f_rej must have the same shape, got {w.shape}, {fp.shape}, {fr.shape}")
    lr = _finite("lr", lr, 0.0, strict=True)
    rp, rr = float(w @ fp), float(w @ fr)
    g_pref, _ = rmnp.ranking_loss_grad(rp, rr)  # -sigma(-delta)
    push = -float(g_pref)
    new_w = w + lr * push * (fp - fr)
    k_pp, k_pr, k_rr = float(fp @ fp), float(fp @ fr), float(fr @ fr)
    return {
        "r_pref": rp, "r_rej": rr,
        "new_r_pref": float(new_w @ fp), "new_r_rej": float(new_w @ fr),
        "d_pref": lr * push * (k_pp - k_pr), "d_rej": -lr * push * (k_rr - k_pr),
        "k_pp": k_pp, "k_pr": k_pr, "k_rr": k_rr, "new_weights": new_w,
    }


def _prob(name: str, p) -> float:
    p = _finite(name, p, 0.0)
    if p > 1.0:
        raise ValueError(f"{name} must be a probability in [0, 1], got {p}")
    return p


def flipped_label_probability(delta_true, flip_prob: float) -> np.ndarray:
    r"""The probability that a label says :math:`y_a \succ y_b` when each label is flipped with probability :math:`\varepsilon`.

    .. math:: p(\Delta^*) = (1 - \varepsilon)\,\sigma(\Delta^*) + \varepsilon\,\sigma(-\Delta^*)
              = \varepsilon + (1 - 2\varepsilon)\,\sigma(\Delta^*)

    with :math:`\Delta^* = r^*(y_a) - r^*(y_b)`.  It lies in :math:`[\varepsilon, 1-\varepsilon]`:
    the best reward model under the ranking loss then has
    :math:`\sigma(\Delta) = p`, so flipped labels shrink the learned margins (and
    no margin beyond :math:`\log\frac{1-\varepsilon}{\varepsilon}` pays), but for
    :math:`\varepsilon < \tfrac12` the ranking, the sign of :math:`\Delta`, is unchanged.
    Shapes: ``delta_true`` any; the result has its shape (float64).
    """
    eps = _prob("flip_prob", flip_prob)
    d = np.asarray(_checks.as_real_array("delta_true", _to_numpy(delta_true)), dtype=np.float64)
    from rmteach import numpy as rmnp

    return (eps + (1.0 - 2.0 * eps) * rmnp.preference_probability(d, np.zeros_like(d)))[()]


def label_agreement(delta_true) -> dict:
    r"""Two ceilings set by noisy labelers, for pairs with true gaps :math:`\Delta^*_i` (Bradley–Terry).

    With :math:`p_i = \sigma(\Delta^*_i)` the chance that a labeler prefers :math:`y_a`:

    .. math:: \text{agreement} = \frac{1}{n}\sum_i \bigl(p_i^2 + (1 - p_i)^2\bigr), \qquad
              \text{best\_accuracy} = \frac{1}{n}\sum_i \max(p_i, 1 - p_i)

    ``agreement`` is how often two independent labelers agree (what
    inter-annotator agreement measures; InstructGPT reports about 73%).
    ``best_accuracy`` is the highest expected accuracy *any* reward model can
    reach against one labeler's labels (the true rewards reach it).  It is
    always at least the agreement (:math:`\max(p, 1-p) \ge p^2 + (1-p)^2`): a
    model may beat the agreement rate, but held-out accuracy above
    ``best_accuracy`` is a warning sign (leaked or duplicated pairs).
    Returns both as floats.  Shapes: ``delta_true`` ``(n,)``, n >= 1.
    """
    d = _real_vector("delta_true", delta_true)
    from rmteach import numpy as rmnp

    p = rmnp.preference_probability(np.abs(d), np.zeros_like(d))  # max(p, 1 - p), computed stably
    q = rmnp.preference_probability(-np.abs(d), np.zeros_like(d))
    return {"agreement": math.fsum(p * p + q * q) / d.size, "best_accuracy": math.fsum(p) / d.size}


def rao_kupper_probabilities(delta, log_theta: float) -> dict:
    r"""Bradley–Terry with ties, Rao and Kupper (1967): win, loss and tie for a reward gap :math:`\Delta`.

    With :math:`\theta = e^{\eta} \ge 1` (:math:`\eta` = ``log_theta`` :math:`\ge 0`):

    .. math:: P(y_a \succ y_b) = \frac{e^{r_a}}{e^{r_a} + \theta e^{r_b}} = \sigma(\Delta - \eta), \qquad
              P(y_b \succ y_a) = \sigma(-\Delta - \eta),

    .. math:: P(\text{tie}) = (\theta^2 - 1)\,\sigma(\Delta - \eta)\,\sigma(-\Delta - \eta).

    A tie means "the gap is below a threshold :math:`\eta`"; :math:`\eta = 0` is plain
    Bradley–Terry (no ties).  The tie probability uses ``expm1(2*eta)`` and the
    stable sigmoid, never ``1 - P(win) - P(loss)`` (which cancels).
    Returns ``{"win", "loss", "tie"}`` (float64, the shape of ``delta``), summing to 1.
    """
    eta = _finite("log_theta", log_theta, 0.0)
    d = np.asarray(_checks.as_real_array("delta", _to_numpy(delta)), dtype=np.float64)
    from rmteach import numpy as rmnp

    zero = np.zeros_like(d)
    win = rmnp.preference_probability(d - eta, zero)
    loss = rmnp.preference_probability(-d - eta, zero)
    tie = math.expm1(2.0 * eta) * win * loss
    return {"win": np.asarray(win)[()], "loss": np.asarray(loss)[()], "tie": np.asarray(tie)[()]}


def davidson_probabilities(delta, nu: float) -> dict:
    r"""Bradley–Terry with ties, Davidson (1970): win, loss and tie for a reward gap :math:`\Delta`.

    .. math:: P(y_a \succ y_b) = \frac{e^{r_a}}{e^{r_a} + e^{r_b} + \nu\sqrt{e^{r_a}e^{r_b}}}
              = \frac{e^{\Delta/2}}{e^{\Delta/2} + e^{-\Delta/2} + \nu}, \qquad
              P(\text{tie}) = \frac{\nu}{e^{\Delta/2} + e^{-\Delta/2} + \nu}

    and :math:`P(y_b \succ y_a)` with :math:`-\Delta`.  :math:`\nu \ge 0`; :math:`\nu = 0` is plain
    Bradley–Terry.  Ties are likeliest at :math:`\Delta = 0`, where
    :math:`P(\text{tie}) = \nu/(2 + \nu)`.  Computed as a softmax of
    :math:`(\Delta/2, -\Delta/2, \log\nu)` with the maximum subtracted (no overflow).
    Returns ``{"win", "loss", "tie"}`` (float64, the shape of ``delta``), summing to 1.
    """
    nu = _finite("nu", nu, 0.0)
    d = np.asarray(_checks.as_real_array("delta", _to_numpy(delta)), dtype=np.float64)
    with np.errstate(divide="ignore"):
        log_nu = math.log(nu) if nu > 0 else -math.inf
    logits = np.stack([d / 2, -d / 2, np.full_like(d, log_nu)])
    top = np.max(logits, axis=0)
    e = np.exp(logits - top)
    total = e.sum(axis=0)
    win, loss, tie = e / total
    return {"win": np.asarray(win)[()], "loss": np.asarray(loss)[()], "tie": np.asarray(tie)[()]}


# --------------------------------------------------------------------------
# three failures, ready to run


def stuck_at_chance_demo(
    cause: str = "zero_init", *, steps: int = 200, callback: Optional[Callable[..., object]] = None
) -> TrainingHistory:
    r"""A run whose loss stays at :math:`\ln 2` (chance level, Q11/Q12).

    ``cause="zero_init"``: an :class:`MLPRewardModel` with every weight 0; all
    gradients vanish and the loss is :math:`\ln 2` at every step.
    ``cause="random_labels"``: labels are coin flips, so the features carry no
    signal and the validation loss stays near :math:`\ln 2`.
    """
    if cause == "zero_init":
        data = make_preference_data(n_train=1000, n_val=500, seed=1)
        model: nn.Module = MLPRewardModel(data.n_features, 16, init="zeros")
    elif cause == "random_labels":
        data = make_preference_data(n_train=2000, n_val=500, labels="random", seed=1)
        model = LinearRewardModel(data.n_features, init="zeros")
    else:
        raise ValueError(f"cause must be 'zero_init' or 'random_labels', got {_checks.describe(cause)}")
    return train_reward_model(model, data, steps=steps, lr=0.01, batch_size=64, callback=callback)


def overfitting_demo(
    *, steps: int = 400, center_coef: float = 0.0, weight_decay: float = 0.0,
    callback: Optional[Callable[..., object]] = None,
) -> TrainingHistory:
    r"""A run that overfits: too few noisy pairs for a wide MLP.

    40 training pairs over 10 features, an MLP with 64 hidden units, full-batch
    Adam: the validation loss reaches its minimum within a few dozen steps, then
    rises while the train loss falls towards 0 (the model memorizes the labeler's
    coin flips).  ``weight_decay`` (try 0.05) is the usual remedy, as is stopping
    at the validation minimum.
    """
    data = make_preference_data(
        n_items=100, n_features=10, n_train=40, n_val=500, reward_scale=5.0, seed=2
    )
    model = MLPRewardModel(data.n_features, 64, seed=2)
    return train_reward_model(
        model, data, steps=steps, lr=0.01, batch_size=40, center_coef=center_coef,
        weight_decay=weight_decay, callback=callback,
    )


def drifting_scale_demo(
    *, steps: int = 300, center_coef: float = 0.0, weight_decay: float = 0.0, label_smoothing: float = 0.0,
    callback: Optional[Callable[..., object]] = None,
) -> TrainingHistory:
    r"""A run whose reward scale grows and whose level drifts, although only differences are trained.

    A noiseless labeler (``labels="deterministic"``) makes every pair separable,
    so the loss keeps falling by scaling the weights up: the spread of the
    rewards grows for as long as training runs (``"scale_growth"``).  The
    features have mean 2, so the mean reward :math:`w^\top\bar f + b` drifts with
    the scale (``"level_drift"``).

    Two different cures.  ``center_coef`` > 0 (try 0.01) pins the level: since
    :math:`E[(r_a + r_b)^2] = (E[r_a + r_b])^2 + \mathrm{Var}(r_a + r_b)`, the bias
    cancels the first term, and the second, which grows with :math:`\|w\|^2`,
    also holds the spread back, at a small cost in accuracy.  ``weight_decay``,
    ``label_smoothing`` (:func:`train_reward_model`) or fewer ``steps``
    (early stopping; one epoch is 16 steps of 64 pairs here) limit the scale.
    """
    data = make_preference_data(n_train=1000, n_val=300, feature_mean=2.0, labels="deterministic", seed=3)
    model = LinearRewardModel(data.n_features, init="zeros")
    return train_reward_model(
        model, data, steps=steps, lr=0.05, batch_size=64, center_coef=center_coef,
        weight_decay=weight_decay, label_smoothing=label_smoothing, callback=callback,
    )
