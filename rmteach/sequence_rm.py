r"""A small sequence reward model: token embeddings, a tiny transformer encoder, a scalar head.

A course simulation for notebook 7, trained on the text pairs of
:mod:`rmteach.text_preferences`.  The shape of a real reward model in a few
thousand parameters:

* :class:`SequenceRewardModel`: token + position embeddings, a
  ``torch.nn.TransformerEncoder`` (1–2 layers, ``d_model`` about 32) with a
  key-padding mask, and a linear head read at the **last real token** of each
  sequence, :math:`r_\phi(x, y) = w^\top h_{T_i} + b` where :math:`T_i` is the
  position of the last non-padding token (padding is on the right, so neither
  the padding nor how much of it there is changes the score).
* :func:`train_sequence_rm` minimizes :func:`rmteach.torch.ranking_loss` (hard
  labels) or :func:`rmteach.torch.soft_ranking_loss` (``soft=True``, the
  annotators' vote fractions) with Adam, seeded, on one CPU thread.
* :func:`score_pairs` returns the rewards of a pair set's chosen and rejected
  responses; :func:`train_ensemble` and :func:`ensemble_scores` build a small
  ensemble whose disagreement flags unfamiliar inputs.

float32 on the CPU; the same arguments give the same numbers on one machine.
Importing this module imports torch.
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
from rmteach import numpy as rm_np
from rmteach import torch as rm
from rmteach.text_preferences import PAD, VOCAB, TextPreferences, encode_batch

__all__ = [
    "SequenceRewardModel",
    "SequenceTrainingHistory",
    "train_sequence_rm",
    "score_pairs",
    "score_texts",
    "preference_margins",
    "preference_probabilities",
    "train_ensemble",
    "ensemble_scores",
    "ensemble_margins",
]




def _positive(name: str, value) -> float:
    if isinstance(value, bool) or not isinstance(value, (int, float, np.integer, np.floating)):
        raise TypeError(f"{name} must be a real number, got {_checks.describe(value)}")
    v = float(value)
    if not (math.isfinite(v) and v > 0):
        raise ValueError(f"{name} must be a finite number > 0, got {value!r}")
    return v


class SequenceRewardModel(nn.Module):
    r"""Reward of a token sequence (prompt + response): a transformer encoder read at the last real token.

    .. math:: h = \mathrm{Encoder}\bigl(E_\text{tok}[x_{1..T}] + E_\text{pos}[1..T]\bigr), \qquad
              r_\phi(x, y) = w^\top h_{L} + b

    with :math:`L` the number of real (non-:data:`~rmteach.text_preferences.PAD`)
    tokens; attention never looks at padding (``src_key_padding_mask``).  The
    encoder is bidirectional, so the last token's state can see the whole
    sequence.  ``forward(ids, lengths)``: ``ids`` int64 ``(B, T)`` padded on the
    right, ``lengths`` ``(B,)`` in ``[1, T]``; returns ``(B,)`` rewards.
    """

    def __init__(self, *, d_model: int = 32, n_layers: int = 2, n_heads: int = 4, dim_feedforward: int = 32,
                 max_len: int = 16, seed: int = 0) -> None:
        super().__init__()
        d_model = _checks.check_int("d_model", d_model, 1)
        n_layers = _checks.check_int("n_layers", n_layers, 1)
        n_heads = _checks.check_int("n_heads", n_heads, 1)
        if d_model % n_heads:
            raise ValueError(f"d_model must be a multiple of n_heads, got d_model={d_model}, n_heads={n_heads}")
        dim_feedforward = _checks.check_int("dim_feedforward", dim_feedforward, 1)
        self.max_len = _checks.check_int("max_len", max_len, 1)
        seed = _checks.check_int("seed", seed, 0)
        gen_state = torch.random.get_rng_state()
        torch.manual_seed(seed)
        try:
            self.tok = nn.Embedding(len(VOCAB), d_model, padding_idx=PAD)
            self.pos = nn.Embedding(self.max_len, d_model)
            layer = nn.TransformerEncoderLayer(d_model, n_heads, dim_feedforward, dropout=0.0,
                                               batch_first=True, norm_first=True)
            self.encoder = nn.TransformerEncoder(layer, n_layers, enable_nested_tensor=False)
            self.norm = nn.LayerNorm(d_model)
            self.head = nn.Linear(d_model, 1)
        finally:
            torch.random.set_rng_state(gen_state)

    def forward(self, ids: torch.Tensor, lengths: torch.Tensor) -> torch.Tensor:
        if ids.ndim != 2:
            raise ValueError(f"ids must have shape (B, T), got shape {tuple(ids.shape)}")
        b, t = ids.shape
        if t > self.max_len:
            raise ValueError(f"ids has {t} positions but the model has max_len={self.max_len}")
        lengths = torch.as_tensor(lengths, dtype=torch.int64)
        if lengths.shape != (b,) or bool(((lengths < 1) | (lengths > t)).any()):
            raise ValueError(f"lengths must have shape ({b},) with values in [1, {t}]")
        positions = torch.arange(t)
        pad_mask = positions[None, :] >= lengths[:, None]  # True where padding
        h = self.tok(ids) + self.pos(positions)[None]
        h = self.encoder(h, src_key_padding_mask=pad_mask)
        last = h[torch.arange(b), lengths - 1]  # the last real token of each sequence
        return self.head(self.norm(last)).squeeze(-1)


@dataclass
class SequenceTrainingHistory:
    """Training loss (mean over each eval window) and accuracy on held-out pairs, by step."""

    step: list = field(default_factory=list)
    train_loss: list = field(default_factory=list)
    val_acc: list = field(default_factory=list)

    def final(self) -> dict:
        if not self.step:
            raise ValueError("the history is empty: no step was evaluated")
        return {"step": self.step[-1], "train_loss": self.train_loss[-1], "val_acc": self.val_acc[-1]}


def _encoded(data: TextPreferences) -> tuple[torch.Tensor, ...]:
    ids_c, len_c = encode_batch(data.prompts, data.chosen)
    ids_r, len_r = encode_batch(data.prompts, data.rejected)
    t = max(ids_c.shape[1], ids_r.shape[1])  # one width for both, so a batch can hold both
    ids_c, ids_r = (np.pad(x, ((0, 0), (0, t - x.shape[1])), constant_values=PAD) for x in (ids_c, ids_r))
    return (torch.from_numpy(ids_c), torch.from_numpy(len_c), torch.from_numpy(ids_r), torch.from_numpy(len_r))


def _check(model, data, data_name: str = "data") -> None:
    if not isinstance(model, SequenceRewardModel):
        raise TypeError(f"model must be a SequenceRewardModel, got {_checks.describe(model)}")
    if not isinstance(data, TextPreferences):
        raise TypeError(f"{data_name} must be a TextPreferences (see make_text_preferences), "
                        f"got {_checks.describe(data)}")


def score_texts(model: SequenceRewardModel, prompts: Sequence[str], responses: Sequence[str]) -> np.ndarray:
    """Rewards of ``prompt + response`` for each pair of strings, as a float64 ``(B,)`` array."""
    if not isinstance(model, SequenceRewardModel):
        raise TypeError(f"model must be a SequenceRewardModel, got {_checks.describe(model)}")
    ids, lengths = encode_batch(prompts, responses)
    with torch.no_grad(), one_thread():
        was = model.training
        model.eval()
        try:
            r = model(torch.from_numpy(ids), torch.from_numpy(lengths))
        finally:
            model.train(was)
    return r.double().numpy()


def score_pairs(model: SequenceRewardModel, data: TextPreferences) -> tuple[np.ndarray, np.ndarray]:
    """``(r_chosen, r_rejected)``: the model's rewards of every pair's two responses, float64 ``(B,)``."""
    _check(model, data)
    return score_texts(model, data.prompts, data.chosen), score_texts(model, data.prompts, data.rejected)


def preference_margins(model: SequenceRewardModel, data: TextPreferences, *,
                       seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    r"""Held-out ``(margins, labels)`` with each pair in a random order (seeded), for calibration.

    A pair's two responses become :math:`(y_a, y_b)` in a coin-flip order, so
    that "y_a was preferred" is 1 for about half the pairs;
    ``margins`` is :math:`\Delta = r_\phi(x, y_a) - r_\phi(x, y_b)` and ``labels``
    is 1 where :math:`y_a` is the chosen response.  (With every pair as
    (chosen, rejected) the label would be 1 everywhere and say nothing.)
    Both float64 ``(B,)``.
    """
    rc, rr = score_pairs(model, data)
    seed = _checks.check_int("seed", seed, 0)
    a_is_chosen = np.random.default_rng(seed).random(len(data)) < 0.5
    return np.where(a_is_chosen, rc - rr, rr - rc), a_is_chosen.astype(np.float64)


def preference_probabilities(model: SequenceRewardModel, data: TextPreferences, *,
                             seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    r"""``(probs, labels)``: :math:`p = \sigma(\Delta)` of :func:`preference_margins` and its labels.

    ``probs`` from :func:`rmteach.numpy.preference_probability`; feed both to
    :func:`rmteach.evaluation.reliability_table` or
    :func:`~rmteach.evaluation.expected_calibration_error`.
    """
    margins, labels = preference_margins(model, data, seed=seed)
    probs = np.asarray(rm_np.preference_probability(margins, np.zeros_like(margins)), dtype=np.float64)
    return probs, labels


def train_sequence_rm(
    model: SequenceRewardModel,
    data: TextPreferences,
    *,
    steps: int = 150,
    lr: float = 1e-2,
    warmup: int = 20,
    batch_size: int = 128,
    soft: bool = False,
    weight_decay: float = 0.0,
    val: Optional[TextPreferences] = None,
    eval_every: int = 50,
    seed: int = 0,
    callback: Optional[Callable[..., object]] = None,
) -> SequenceTrainingHistory:
    r"""Train ``model`` in place on ``data``'s (chosen, rejected) pairs with AdamW.

    The learning rate rises linearly to ``lr`` over the first ``warmup`` steps,
    then follows a cosine down to 0 at ``steps``.  Each step draws
    ``batch_size`` pairs (with replacement, seeded by ``seed``) and minimizes the
    ranking loss of Bradley–Terry,

    .. math:: \mathcal{L} = -\frac1B\sum_i \log\sigma\bigl(r_\phi(x_i, y_{c,i}) - r_\phi(x_i, y_{r,i})\bigr)

    (:func:`rmteach.torch.ranking_loss`), or with ``soft=True`` the soft-label
    loss :math:`-\frac1B\sum_i [p_i\log\sigma(\Delta_i) + (1-p_i)\log\sigma(-\Delta_i)]`
    with :math:`p_i` = ``data.soft_labels`` (:func:`rmteach.torch.soft_ranking_loss`).
    Every ``eval_every`` steps and after the last, the mean training loss since
    the last record and (with ``val``) the held-out accuracy
    :math:`\frac1N\sum[r_c > r_r]` are recorded and passed to
    ``callback(step, train_loss=..., val_acc=...)``.  Runs on one thread.
    """
    _check(model, data)
    if val is not None:
        _check(model, val, "val")
    steps = _checks.check_int("steps", steps, 1)
    lr = _positive("lr", lr)
    warmup = _checks.check_int("warmup", warmup, 1)
    batch_size = _checks.check_int("batch_size", batch_size, 1)
    if not isinstance(soft, bool):
        raise TypeError(f"soft must be True or False, got {_checks.describe(soft)}")
    if isinstance(weight_decay, bool) or not isinstance(weight_decay, (int, float)) or not weight_decay >= 0:
        raise ValueError(f"weight_decay must be a number >= 0, got {weight_decay!r}")
    eval_every = _checks.check_int("eval_every", eval_every, 1)
    seed = _checks.check_int("seed", seed, 0)
    if callback is not None and not callable(callback):
        raise TypeError(f"callback must be callable or None, got {_checks.describe(callback)}")

    ids_c, len_c, ids_r, len_r = _encoded(data)
    p_soft = torch.from_numpy(data.soft_labels.astype(np.float32))
    gen = torch.Generator().manual_seed(seed)
    opt = torch.optim.AdamW(model.parameters(), lr=lr, weight_decay=float(weight_decay))
    sched = torch.optim.lr_scheduler.LambdaLR(
        opt, lambda s: min(1.0, (s + 1) / warmup) * 0.5 * (1.0 + math.cos(math.pi * s / steps)))
    history = SequenceTrainingHistory()
    window: list[float] = []
    with one_thread():
        model.train()
        for step in range(1, steps + 1):
            idx = torch.randint(0, len(data), (batch_size,), generator=gen)
            # chosen and rejected in one batch: one encoder call per step
            ids = torch.cat([ids_c[idx], ids_r[idx]])
            lengths = torch.cat([len_c[idx], len_r[idx]])
            t = int(lengths.max())
            r = model(ids[:, :t], lengths)
            rc, rr = r[:batch_size], r[batch_size:]
            loss = rm.soft_ranking_loss(rc, rr, p_soft[idx]) if soft else rm.ranking_loss(rc, rr)
            opt.zero_grad()
            loss.backward()
            opt.step()
            sched.step()
            window.append(loss.item())
            if step % eval_every == 0 or step == steps:
                acc = math.nan
                if val is not None:
                    vc, vr = score_pairs(model, val)
                    acc = float(np.mean(vc > vr))
                    model.train()
                history.step.append(step)
                history.train_loss.append(math.fsum(window) / len(window))
                history.val_acc.append(acc)
                window = []
                if callback is not None:
                    callback(step, train_loss=history.train_loss[-1], val_acc=acc)
        model.eval()
    return history


def train_ensemble(data: TextPreferences, n_models: int = 3, *, first_seed: int = 0,
                   model_kwargs: Optional[dict] = None, **train_kwargs) -> list[SequenceRewardModel]:
    """``n_models`` reward models that differ only in their seed (initialization and batches).

    Member ``k`` (seed ``first_seed + k``) is ``SequenceRewardModel(seed=..., **model_kwargs)``
    trained with ``train_sequence_rm(..., seed=..., **train_kwargs)``, so
    ``train_ensemble(data, 2, first_seed=1)`` adds two members to a model trained with seed 0.
    """
    n_models = _checks.check_int("n_models", n_models, 1)
    first_seed = _checks.check_int("first_seed", first_seed, 0)
    if "seed" in train_kwargs or "seed" in (model_kwargs or {}):
        raise ValueError("seed is set per member (first_seed, first_seed + 1, ...): do not pass it to train_ensemble")
    models = []
    for k in range(first_seed, first_seed + n_models):
        model = SequenceRewardModel(seed=k, **(model_kwargs or {}))
        train_sequence_rm(model, data, seed=k, **train_kwargs)
        models.append(model)
    return models


def ensemble_scores(models: Sequence[SequenceRewardModel], prompts: Sequence[str],
                    responses: Sequence[str]) -> np.ndarray:
    r"""Every member's rewards, float64 ``(M, B)``; their spread across members flags unfamiliar inputs.

    Rewards are identified only up to a shift per model, so compare members on
    *differences* (e.g. :math:`r(x, y_c) - r(x, y_r)` of a pair) rather than raw levels.
    """
    if isinstance(models, SequenceRewardModel) or len(models) < 1:
        raise ValueError("models must be a non-empty sequence of SequenceRewardModel")
    return np.stack([score_texts(m, prompts, responses) for m in models])


def ensemble_margins(models: Sequence[SequenceRewardModel], data: TextPreferences) -> np.ndarray:
    r"""Every member's margin :math:`\Delta_{m,i} = r_m(x_i, y_{c,i}) - r_m(x_i, y_{r,i})`, float64 ``(M, B)``.

    Margins, unlike raw rewards, do not depend on each member's arbitrary
    reward level, so their spread across members,
    :math:`s_i = \sqrt{\tfrac1M\sum_m (\Delta_{m,i} - \bar\Delta_i)^2}`
    (``margins.std(axis=0)``), measures how much the members disagree about pair :math:`i`.
    """
    if isinstance(models, SequenceRewardModel) or len(models) < 1:
        raise ValueError("models must be a non-empty sequence of SequenceRewardModel")
    out = []
    for m in models:
        rc, rr = score_pairs(m, data)
        out.append(rc - rr)
    return np.stack(out)
