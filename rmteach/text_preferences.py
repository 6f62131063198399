r"""Text preference pairs with a hidden rule: the correct answer to ``"3+4="`` is preferred.

A course simulation for notebook 7.  Every pair has a short arithmetic prompt
``"a+b="`` and two responses: the correct sum and a wrong one (off by 1 to 3).
Simulated annotators prefer the correct answer, except that each one errs with
probability ``label_noise``.  Responses may carry filler tokens (``"7..."``), so
a *length confound* can be switched on: ``length_bias`` is the probability that
the correct response is the longer one of its pair (0.5: length tells nothing;
1.0: the longer response is always the correct one).

* :data:`VOCAB`, :func:`encode`, :func:`decode` and :func:`encode_batch`: the
  character-level tokenizer (one token per character, padding id 0 on the right).
* :func:`make_text_preferences` draws a seeded :class:`TextPreferences` set of
  (prompt, chosen, rejected) pairs, with the hidden truth kept beside the labels.
* :func:`annotator_agreement` and :func:`expected_noisy_accuracy`: what the
  annotators' error rate implies for their agreement and for any model's
  accuracy against their labels (the accuracy ceiling).

NumPy and the standard library only: importing this never imports torch.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Optional, Sequence

import numpy as np

from rmteach import _checks

__all__ = [
    "VOCAB",
    "PAD",
    "FILLER",
    "encode",
    "decode",
    "encode_batch",
    "TextPreferences",
    "make_text_preferences",
    "annotator_agreement",
    "expected_noisy_accuracy",
]

VOCAB = ("<pad>", "0", "1", "2", "3", "4", "5", "6", "7", "8", "9", "+", "=", ".")
"""Token strings by id: padding, the ten digits, ``+``, ``=`` and the filler ``.``."""

PAD = 0
"""The padding id (always on the right of a sequence)."""

FILLER = "."
"""The filler token that makes a response longer without changing its answer."""

_ID = {tok: i for i, tok in enumerate(VOCAB)}

MAX_WRONG_OFFSET = 3  # a wrong answer is the sum +- 1, 2 or 3 (never negative)
DEFAULT_RESPONSE_LENGTHS = (2, 6)  # response lengths in tokens: answer digits + filler


# --------------------------------------------------------------------------
# tokenizer


def encode(text: str) -> list[int]:
    """Token ids of ``text``, one per character (``"3+4=7."`` -> 6 ids)."""
    if not isinstance(text, str):
        raise TypeError(f"text must be a str, got {_checks.describe(text)}")
    if any(ch not in _ID for ch in text):
        raise ValueError(f"text may hold only the characters 0-9, '+', '=' and '.', got {text!r}")
    return [_ID[ch] for ch in text]


def decode(ids: Sequence[int]) -> str:
    """The text of token ids, padding dropped."""
    out = []
    for i in np.asarray(ids).reshape(-1).tolist():
        if not isinstance(i, int) or not 0 <= i < len(VOCAB):
            raise ValueError(f"ids must be token ids in [0, {len(VOCAB) - 1}], got {i!r}")
        if i != PAD:
            out.append(VOCAB[i])
    return "".join(out)


def encode_batch(prompts: Sequence[str], responses: Sequence[str]) -> tuple[np.ndarray, np.ndarray]:
    """Prompt + response as one sequence per pair, padded on the right.

    Returns ``(ids, lengths)``: ``ids`` int64 ``(B, T)`` with ``T`` the longest
    sequence and :data:`PAD` after each sequence's ``lengths[i]`` real tokens;
    ``lengths`` int64 ``(B,)``.
    """
    if isinstance(prompts, str) or isinstance(responses, str):
        raise TypeError("prompts and responses must be sequences of strings, not a single string")
    prompts, responses = list(prompts), list(responses)
    if len(prompts) != len(responses) or not prompts:
        raise ValueError(
            f"prompts and responses must be non-empty and of the same length, got {len(prompts)} and {len(responses)}"
        )
    seqs = [encode(p) + encode(r) for p, r in zip(prompts, responses)]
    lengths = np.array([len(s) for s in seqs], dtype=np.int64)
    ids = np.full((len(seqs), int(lengths.max())), PAD, dtype=np.int64)
    for i, s in enumerate(seqs):
        ids[i, : len(s)] = s
    return ids, lengths


# --------------------------------------------------------------------------
# the data set


@dataclass(frozen=True)
class TextPreferences:
    """Labelled pairs ``(prompt, chosen, rejected)`` and the hidden truth about each.

    ``chosen`` is the response the annotators' majority preferred (the label a
    reward model trains on).  ``chosen_is_correct[i]`` says whether that label
    agrees with the hidden rule (False: the label is flipped, noise).
    ``soft_labels[i]`` is the fraction of the ``n_annotators`` who preferred the
    chosen response (1.0 with one annotator).  ``len_chosen`` / ``len_rejected``
    are response lengths in tokens (answer digits + filler).  ``operands`` is the
    inclusive range the operands ``a`` and ``b`` were drawn from.
    """

    prompts: tuple
    chosen: tuple
    rejected: tuple
    chosen_is_correct: np.ndarray
    soft_labels: np.ndarray
    len_chosen: np.ndarray
    len_rejected: np.ndarray
    operands: tuple
    length_bias: float
    label_noise: float
    n_annotators: int

    def __len__(self) -> int:
        return len(self.prompts)

    @property
    def correct(self) -> tuple:
        """The correct response of every pair (the hidden rule's preferred one)."""
        return tuple(c if ok else r for c, r, ok in zip(self.chosen, self.rejected, self.chosen_is_correct))

    @property
    def wrong(self) -> tuple:
        """The wrong response of every pair."""
        return tuple(r if ok else c for c, r, ok in zip(self.chosen, self.rejected, self.chosen_is_correct))

    @property
    def len_correct(self) -> np.ndarray:
        return np.where(self.chosen_is_correct, self.len_chosen, self.len_rejected)

    @property
    def len_wrong(self) -> np.ndarray:
        return np.where(self.chosen_is_correct, self.len_rejected, self.len_chosen)

    def label_noise_rate(self) -> float:
        """Fraction of pairs whose label contradicts the hidden rule."""
        return float(np.mean(~self.chosen_is_correct))

    def longer_is_correct_rate(self) -> float:
        """Fraction of pairs whose correct response is the longer one (lengths always differ)."""
        return float(np.mean(self.len_correct > self.len_wrong))

    def table(self, n: int = 5) -> str:
        """The first ``n`` pairs as text, for a look at the data."""
        rows = []
        for i in range(min(n, len(self))):
            flag = "" if self.chosen_is_correct[i] else "   <- label flipped"
            rows.append(f"{self.prompts[i]:>7}  chosen {self.chosen[i]:<7} rejected {self.rejected[i]:<7}"
                        f" soft label {self.soft_labels[i]:.2f}{flag}")
        return "\n".join(rows)




def _probability(name: str, value, hi: float = 1.0) -> float:
    if isinstance(value, bool) or not isinstance(value, (int, float, np.integer, np.floating)):
        raise TypeError(f"{name} must be a real number, got {_checks.describe(value)}")
    v = float(value)
    if not (0.0 <= v <= hi):  # NaN too
        raise ValueError(f"{name} must be in [0, {hi:g}], got {value!r}")
    return v


def _range(name: str, value, minimum: int) -> tuple[int, int]:
    if not (isinstance(value, (tuple, list)) and len(value) == 2):
        raise TypeError(f"{name} must be a pair (lo, hi) of integers, got {_checks.describe(value)}")
    lo, hi = (_checks.check_int(f"{name}[{k}]", v, minimum) for k, v in enumerate(value))
    if lo > hi:
        raise ValueError(f"{name} must have lo <= hi, got {tuple(value)!r}")
    return lo, hi


def make_text_preferences(
    n_pairs: int,
    *,
    operands: tuple[int, int] = (0, 6),
    length_bias: float = 0.5,
    label_noise: float = 0.0,
    n_annotators: int = 1,
    response_lengths: tuple[int, int] = DEFAULT_RESPONSE_LENGTHS,
    exclude: Optional["TextPreferences"] = None,
    seed: int = 0,
) -> TextPreferences:
    r"""Draw ``n_pairs`` labelled arithmetic preference pairs (seeded).

    For each pair: operands :math:`a, b` uniform on ``operands`` (inclusive), the
    prompt ``f"{a}+{b}="``, the correct answer :math:`c = a + b` and a wrong one
    :math:`c + k` with :math:`k` uniform on :math:`\{\pm1, \pm2, \pm3\}` among the
    values :math:`\ge 0`.  Each response gets a total length :math:`L` in tokens,
    its digits followed by :math:`L - \text{digits}` filler tokens ``"."``; the two
    lengths of a pair are two distinct values drawn uniformly from
    ``response_lengths`` (inclusive), and the correct response gets the longer
    one with probability ``length_bias``:

    .. math:: \Pr(L_\text{correct} > L_\text{wrong}) = \texttt{length\_bias}

    Labels: each of ``n_annotators`` annotators independently prefers the
    correct response with probability :math:`1 - \varepsilon`
    (:math:`\varepsilon` = ``label_noise``); the *chosen* response is the majority
    vote (``n_annotators`` must be odd) and ``soft_labels`` the fraction of votes
    it got.  With one annotator a fraction :math:`\varepsilon` of the labels is
    flipped, and two annotators agree with probability
    :math:`(1-\varepsilon)^2 + \varepsilon^2`.

    ``exclude``: a :class:`TextPreferences` (the training set) whose pairs must
    not reappear: a drawn pair with the same prompt, correct response and wrong
    response (filler included) as one of ``exclude``'s is dropped and drawing
    continues, so a held-out set holds no copy of a training pair.  Prompts do
    repeat: there are only as many as operand pairs.

    Answers must fit the response: every sum up to ``2 * operands[1] + 3`` needs
    at most ``response_lengths[0]`` digits.  Returns a :class:`TextPreferences`.
    """
    n = _checks.check_int("n_pairs", n_pairs, 1)
    lo, hi = _range("operands", operands, 0)
    bias = _probability("length_bias", length_bias)
    noise = _probability("label_noise", label_noise, 0.5)
    k = _checks.check_int("n_annotators", n_annotators, 1)
    if k % 2 == 0:
        raise ValueError(f"n_annotators must be odd (a majority decides the label), got {k}")
    lmin, lmax = _range("response_lengths", response_lengths, 1)
    if lmax - lmin < 1:
        raise ValueError(f"response_lengths must span at least two lengths (a pair's lengths differ), "
                         f"got {tuple(response_lengths)!r}")
    digits = len(str(2 * hi + MAX_WRONG_OFFSET))
    if digits > lmin:
        raise ValueError(f"response_lengths[0] must be >= {digits}, the digits of the largest answer "
                         f"{2 * hi + MAX_WRONG_OFFSET} for operands up to {hi}; got {lmin}")
    if exclude is not None and not isinstance(exclude, TextPreferences):
        raise TypeError(f"exclude must be a TextPreferences or None, got {_checks.describe(exclude)}")
    seed = _checks.check_int("seed", seed, 0)
    seen = set() if exclude is None else set(zip(exclude.prompts, exclude.correct, exclude.wrong))

    rng = np.random.default_rng(seed)
    parts: list[dict] = []
    have = 0
    for _ in range(1000):
        batch = _draw(rng, n if not seen else 2 * n, lo, hi, bias, noise, k, lmin, lmax)
        if seen:
            keep = np.array([key not in seen for key in zip(batch["prompts"], batch["correct"], batch["wrong"])])
            batch = {key: [v for v, ok in zip(val, keep) if ok] if isinstance(val, list) else val[keep]
                     for key, val in batch.items()}
        parts.append(batch)
        have += len(batch["prompts"])
        if have >= n:
            break
    else:
        raise ValueError(f"exclude leaves too few new pairs to draw {n} (operands {(lo, hi)})")
    cat = {key: (sum((p[key] for p in parts), []) if isinstance(parts[0][key], list)
                 else np.concatenate([p[key] for p in parts]))[:n] for key in parts[0]}
    ok = cat["chosen_ok"]
    return TextPreferences(
        prompts=tuple(cat["prompts"]),
        chosen=tuple(c if o else w for c, w, o in zip(cat["correct"], cat["wrong"], ok)),
        rejected=tuple(w if o else c for c, w, o in zip(cat["correct"], cat["wrong"], ok)),
        chosen_is_correct=ok,
        soft_labels=cat["soft"].astype(np.float64),
        len_chosen=np.where(ok, cat["len_c"], cat["len_w"]).astype(np.int64),
        len_rejected=np.where(ok, cat["len_w"], cat["len_c"]).astype(np.int64),
        operands=(lo, hi),
        length_bias=bias,
        label_noise=noise,
        n_annotators=k,
    )


def _draw(rng, n, lo, hi, bias, noise, k, lmin, lmax) -> dict:
    """One batch of ``n`` pairs: texts of the correct and wrong responses, lengths, votes."""
    a = rng.integers(lo, hi + 1, n)
    b = rng.integers(lo, hi + 1, n)
    c = a + b
    offsets = np.array([k_ for k_ in range(-MAX_WRONG_OFFSET, MAX_WRONG_OFFSET + 1) if k_ != 0])
    wrong = np.empty(n, dtype=np.int64)
    u = rng.random(n)
    for i in range(n):  # uniform over the offsets that keep the answer >= 0
        allowed = offsets[c[i] + offsets >= 0]
        wrong[i] = c[i] + allowed[int(u[i] * allowed.size)]
    # two distinct lengths per pair; the correct response takes the longer with probability length_bias
    first = rng.integers(lmin, lmax + 1, n)
    second = rng.integers(lmin, lmax, n)
    second = second + (second >= first)  # uniform on the other lengths
    longer, shorter = np.maximum(first, second), np.minimum(first, second)
    correct_longer = rng.random(n) < bias
    len_c = np.where(correct_longer, longer, shorter)
    len_w = np.where(correct_longer, shorter, longer)
    votes = (rng.random((n, k)) >= noise).sum(axis=1)  # votes for the correct response
    chosen_ok = votes * 2 > k

    def text(value: int, length: int) -> str:
        s = str(int(value))
        return s + FILLER * (int(length) - len(s))

    return {
        "prompts": [f"{x}+{y}=" for x, y in zip(a.tolist(), b.tolist())],
        "correct": [text(v, L) for v, L in zip(c, len_c)],
        "wrong": [text(v, L) for v, L in zip(wrong, len_w)],
        "len_c": len_c,
        "len_w": len_w,
        "chosen_ok": chosen_ok,
        "soft": np.where(chosen_ok, votes, k - votes) / k,
    }


def annotator_agreement(label_noise: float) -> float:
    r"""Probability that two annotators agree on a pair when each errs independently with :math:`\varepsilon`.

    .. math:: A = (1 - \varepsilon)^2 + \varepsilon^2 = 1 - 2\varepsilon(1 - \varepsilon)

    computed in the second form.  ``label_noise`` in [0, 0.5]; inverse:
    :math:`\varepsilon = \bigl(1 - \sqrt{2A - 1}\bigr)/2`.
    """
    e = _probability("label_noise", label_noise, 0.5)
    return 1.0 - 2.0 * e * (1.0 - e)


def expected_noisy_accuracy(accuracy: float, label_noise: float) -> float:
    r"""Expected accuracy against one fallible annotator's labels of a model with ``accuracy`` against the rule.

    .. math:: \mathbb{E}[\mathrm{acc}_\text{noisy}] = a(1 - \varepsilon) + (1 - a)\,\varepsilon

    (a flipped label turns a right ranking into a wrong one and back).  At
    :math:`a = 1` it is the accuracy ceiling :math:`1 - \varepsilon`.  Both arguments in [0, 1]
    (``label_noise`` in [0, 0.5]).
    """
    a = _probability("accuracy", accuracy)
    e = _probability("label_noise", label_noise, 0.5)
    return a * (1.0 - e) + (1.0 - a) * e
