r"""Evaluating a reward model beyond accuracy: calibration, confidence intervals, length bias.

One pure function per formula, NumPy and the standard library only (importing
this never imports torch or scipy):

* :func:`reliability_table` and :func:`expected_calibration_error`: is the
  Bradley–Terry probability :math:`P(y_a \succ y_b) = \sigma(r_a - r_b)` a
  *probability*?  Among pairs the model gives 0.8, are 80% in fact preferred?
* :func:`wilson_interval`: how sure is an accuracy of 8/10, or of 830/1000?
* :func:`length_controlled_accuracy`: accuracy separately on pairs where the
  human-preferred response is the longer one, the shorter one, or of equal
  length, so a reward model that learned "longer is better" shows.

Probabilities usually come from :func:`rmteach.numpy.preference_probability`
on held-out pairs; a label 1 means :math:`y_a` was the one humans preferred.
"""

from __future__ import annotations

import math
from statistics import NormalDist

import numpy as np
from numpy.typing import ArrayLike

from rmteach import _checks

__all__ = [
    "reliability_table",
    "expected_calibration_error",
    "wilson_interval",
    "length_controlled_accuracy",
]


# --------------------------------------------------------------------------
# argument checks (each names the argument and what it got)


def _vector(name: str, x: ArrayLike) -> np.ndarray:
    a = np.asarray(_checks.as_real_array(name, x), dtype=np.float64)
    if a.ndim != 1 or a.size == 0:
        raise ValueError(f"{name} must have shape (N,) with N >= 1, got shape {a.shape}")
    return a


def _same_length(name: str, a: np.ndarray, ref_name: str, ref: np.ndarray) -> None:
    if a.shape != ref.shape:
        raise ValueError(f"{name} must have the shape of {ref_name} {ref.shape}, got shape {a.shape}")


def _probs(probs: ArrayLike) -> np.ndarray:
    p = _vector("probs", probs)
    bad = ~((p >= 0) & (p <= 1))  # NaN is bad too
    if np.any(bad):
        i = int(np.flatnonzero(bad)[0])
        raise ValueError(f"probs must be probabilities in [0, 1], got {float(p[i])!r} at index {i}")
    return p


def _labels(labels: ArrayLike, ref: np.ndarray) -> np.ndarray:
    """0/1 labels (bool, integer or float 0.0/1.0) as a float64 array."""
    try:
        is_bool = np.asarray(labels).dtype == np.bool_
    except (ValueError, TypeError):  # ragged lists: as_real_array explains
        is_bool = False
    if is_bool:
        y = np.asarray(labels, dtype=np.float64)
    else:
        y = np.asarray(_checks.as_real_array("labels", labels), dtype=np.float64)
    _same_length("labels", y, "probs", ref)
    bad = (y != 0) & (y != 1)
    if np.any(bad):
        i = int(np.flatnonzero(bad)[0])
        raise ValueError(
            f"labels must be 0 or 1 (1: y_a was preferred), got {float(y[i])!r} at index {i}; "
            "for soft labels, threshold or average them per bin first"
        )
    return y


# --------------------------------------------------------------------------
# calibration


def reliability_table(probs: ArrayLike, labels: ArrayLike, n_bins: int = 10) -> dict:
    r"""Per-bin predicted probability against observed frequency: the data of a reliability diagram.

    The predictions :math:`p_i = P(y_a \succ y_b)` are sorted into :math:`M` =
    ``n_bins`` equal-width bins :math:`B_m = [\tfrac{m}{M}, \tfrac{m+1}{M})` on
    :math:`[0, 1]`, the last one closed at 1 (edges are computed as :math:`m/M`,
    so ``0.3`` is the left edge of the fourth of ten bins).  For each bin

    .. math:: n_m = |B_m|, \qquad
              \bar p_m = \frac{1}{n_m}\sum_{i \in B_m} p_i, \qquad
              \bar y_m = \frac{1}{n_m}\sum_{i \in B_m} y_i

    A calibrated model has :math:`\bar y_m \approx \bar p_m` in every bin (the
    diagram's points lie on the diagonal).  Sums use :func:`math.fsum` over
    each bin's sorted values, so the table does not depend on the input order.

    Returns a dict of arrays: ``"edges"`` ``(M + 1,)``; ``"counts"`` ``(M,)``
    int64 :math:`n_m`; ``"mean_predicted"`` ``(M,)`` :math:`\bar p_m`; and
    ``"observed_frequency"`` ``(M,)`` :math:`\bar y_m`, the fraction of the bin's
    pairs in which :math:`y_a` was in fact preferred (both NaN for an empty bin).

    Shapes: ``probs`` ``(N,)`` in [0, 1]; ``labels`` ``(N,)`` of 0/1 (or bool);
    ``n_bins`` an integer >= 1.
    """
    p = _probs(probs)
    y = _labels(labels, p)
    m = _checks.check_int("n_bins", n_bins, 1)
    edges = np.arange(m + 1, dtype=np.float64) / m
    order = np.lexsort((y, p))
    p, y = p[order], y[order]
    idx = np.minimum(np.searchsorted(edges, p, side="right") - 1, m - 1)
    counts = np.bincount(idx, minlength=m).astype(np.int64)
    bounds = np.concatenate([[0], np.cumsum(counts)])
    mean_p = np.full(m, np.nan)
    freq = np.full(m, np.nan)
    for b in range(m):
        lo, hi = bounds[b], bounds[b + 1]
        if hi > lo:
            mean_p[b] = math.fsum(p[lo:hi]) / (hi - lo)
            freq[b] = math.fsum(y[lo:hi]) / (hi - lo)
    return {"edges": edges, "counts": counts, "mean_predicted": mean_p, "observed_frequency": freq}


def expected_calibration_error(probs: ArrayLike, labels: ArrayLike, n_bins: int = 10) -> float:
    r"""Expected calibration error of predicted preference probabilities.

    With the bins of :func:`reliability_table` (:math:`M` equal-width bins on
    :math:`[0, 1]`, :math:`N` pairs),

    .. math:: \mathrm{ECE} = \sum_{m=1}^{M} \frac{n_m}{N}\,\bigl|\bar y_m - \bar p_m\bigr|

    the gap between how often :math:`y_a` was preferred and how likely the model
    said it was, averaged over pairs; empty bins contribute nothing.  0 means
    every bin is calibrated (not that the model is accurate: predicting 0.5 for
    every pair of a 50/50 set has ECE 0).  The value depends on ``n_bins``, and
    with few pairs per bin it is biased upward by sampling noise alone.

    Shapes: ``probs`` ``(N,)`` in [0, 1]; ``labels`` ``(N,)`` of 0/1 (or bool);
    a float result in [0, 1].  Does not depend on the order of the pairs.
    """
    t = reliability_table(probs, labels, n_bins)
    n = int(t["counts"].sum())
    full = t["counts"] > 0
    gaps = t["counts"][full] / n * np.abs(t["observed_frequency"][full] - t["mean_predicted"][full])
    return math.fsum(gaps)


# --------------------------------------------------------------------------
# uncertainty of an accuracy


def wilson_interval(successes: int, n: int, confidence: float = 0.95) -> tuple[float, float]:
    r"""Wilson score interval for a binomial proportion, e.g. a reward model's accuracy.

    With :math:`\hat p = s/n` and :math:`z = \Phi^{-1}\bigl(\tfrac{1 + c}{2}\bigr)`
    (:math:`c` = ``confidence``; the exact normal quantile from
    :class:`statistics.NormalDist`; :math:`z \approx 1.959964` for 95%):

    .. math:: \frac{\hat p + \frac{z^2}{2n} \pm z\sqrt{\frac{\hat p(1-\hat p)}{n}
              + \frac{z^2}{4n^2}}}{1 + \frac{z^2}{n}}

    Unlike the Wald interval :math:`\hat p \pm z\sqrt{\hat p(1-\hat p)/n}` it
    stays inside :math:`[0, 1]` and does not collapse to a point at
    :math:`s = 0` or :math:`s = n`.  Stable form: with
    :math:`D = z^2 + 4s(n-s)/n`, the upper end is
    :math:`(2s + z^2 + z\sqrt D)/(2(n + z^2))` (a sum of positive terms) and the
    lower end its rationalized twin :math:`2s^2 / \bigl(n(2s + z^2 + z\sqrt D)\bigr)`,
    which has no cancellation near 0 and is exactly 0 at :math:`s = 0`; the upper
    end is exactly 1 at :math:`s = n`.

    Shapes: ``successes`` and ``n`` integers with :math:`0 \le s \le n`,
    :math:`n \ge 1`; ``confidence`` in (0, 1).  Returns ``(lo, hi)`` as floats.
    """
    s = _checks.check_int("successes", successes, 0)
    total = _checks.check_int("n", n, 1)
    if s > total:
        raise ValueError(f"successes must be <= n, got successes={s} and n={total}")
    c = np.asarray(_checks.as_real_array("confidence", confidence), dtype=np.float64)
    if c.shape != () or not (0.0 < float(c) < 1.0):
        raise ValueError(f"confidence must be a single number in (0, 1), got {_checks.describe(confidence)}")
    z = NormalDist().inv_cdf(0.5 + float(c) / 2)
    z2 = z * z
    root = z * math.sqrt(z2 + 4.0 * s * (total - s) / total)
    upper_num = 2.0 * s + z2 + root
    lo = 2.0 * s * s / (total * upper_num)
    hi = 1.0 if s == total else min(upper_num / (2.0 * (total + z2)), 1.0)
    return lo, hi


# --------------------------------------------------------------------------
# length bias


def length_controlled_accuracy(
    r_pref: ArrayLike, r_rej: ArrayLike, len_pref: ArrayLike, len_rej: ArrayLike
) -> dict:
    r"""Ranking accuracy split by whether the human-preferred response is longer.

    Pair :math:`i` is correct when :math:`r_{\text{pref},i} > r_{\text{rej},i}`
    (strictly: a tie is wrong, as in :func:`rmteach.numpy.ranking_accuracy`).
    The pairs fall into three groups by length :math:`L`:

    .. math:: G_{\text{longer}} = \{i : L_{\text{pref},i} > L_{\text{rej},i}\},\quad
              G_{\text{shorter}} = \{i : L_{\text{pref},i} < L_{\text{rej},i}\},\quad
              G_{\text{equal}} = \{i : L_{\text{pref},i} = L_{\text{rej},i}\}

    and for each :math:`\mathrm{acc}_G = \frac{1}{|G|}\sum_{i\in G} [r_{\text{pref},i} > r_{\text{rej},i}]`.
    A reward model that scores length rather than quality looks good where the
    preferred response is the longer one and poor where it is the shorter one:
    ``"longer_minus_shorter"`` = :math:`\mathrm{acc}_{\text{longer}} - \mathrm{acc}_{\text{shorter}}`
    is about 0 for a length-blind model and approaches 1 for one that only
    counts tokens (on data where length and preference are unrelated, so each
    group is a fair sample).  ``"equal"`` is accuracy with length held fixed.

    Returns a dict with keys ``"longer"``, ``"shorter"``, ``"equal"`` and ``"all"``,
    each ``{"accuracy": float, "count": int}`` (accuracy NaN for an empty group),
    and ``"longer_minus_shorter"``, a float (NaN if either group is empty).

    Shapes: all four ``(B,)``; rewards real and not NaN (infinities compare as
    usual); lengths finite and >= 0 (tokens, words or characters).
    """
    a = _vector("r_pref", r_pref)
    b = _vector("r_rej", r_rej)
    _same_length("r_rej", b, "r_pref", a)
    for name, r in (("r_pref", a), ("r_rej", b)):
        if np.any(np.isnan(r)):
            raise ValueError(f"{name} contains NaN at index {int(np.flatnonzero(np.isnan(r))[0])}: no ranking")
    lens = []
    for name, x in (("len_pref", len_pref), ("len_rej", len_rej)):
        length = _vector(name, x)
        _same_length(name, length, "r_pref", a)
        bad = ~(np.isfinite(length) & (length >= 0))
        if np.any(bad):
            i = int(np.flatnonzero(bad)[0])
            raise ValueError(f"{name} must be finite lengths >= 0, got {float(length[i])!r} at index {i}")
        lens.append(length)
    lp, lr = lens
    correct = a > b
    out = {}
    for key, mask in (("longer", lp > lr), ("shorter", lp < lr), ("equal", lp == lr), ("all", np.ones_like(correct))):
        n = int(np.count_nonzero(mask))
        acc = np.count_nonzero(correct & mask) / n if n else math.nan
        out[key] = {"accuracy": float(acc), "count": n}
    out["longer_minus_shorter"] = out["longer"]["accuracy"] - out["shorter"]["accuracy"]
    return out
