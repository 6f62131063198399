r"""BAD EXAMPLES: the textbook formulas typed in as written.  Do not use them.

They are here so the notebooks and tests can show *why* :mod:`rmteach.numpy`
uses the stable forms.  Each is correct on paper and wrong in floating point
(thresholds pinned in ``tests/test_content.py``):

* :func:`naive_ranking_loss` computes ``-log(1 / (1 + exp(-d)))``.  ``exp(-d)``
  overflows to ``inf`` once :math:`-d` passes :math:`\ln(\text{max float})`, so for
  ``d`` below about -709.78 (float64) or -88.72 (float32) ``sigmoid(d)`` is 0, the
  loss is ``inf`` and its gradient NaN.  (The -745 / -104 often quoted are where
  ``exp(d)`` *underflows*, which matters for the other form,
  ``exp(d) / (1 + exp(d))``.)  On the other side, ``1 + exp(-d)`` rounds to 1
  once :math:`e^{-d} < 2^{-53}` (float64) or :math:`2^{-24}` (float32), i.e. for ``d``
  above about 36.74 (float64) or 16.64 (float32): the loss is then exactly 0
  (printed ``-0.0``) instead of about :math:`e^{-d}`.
* :func:`naive_preference_probability` computes
  ``exp(r_a) / (exp(r_a) + exp(r_b))``, which is ``inf / inf = nan`` once both
  rewards pass about 88.72 (float32) or 709.78 (float64), and ``0 / 0 = nan``
  once both fall below about -103.97 (float32) or -745.13 (float64), where
  both exponentials underflow to 0 (and wrong a little before that, where they
  are subnormal and have lost their digits: ``(-745.13, -746.13)`` gives 1.0).

Reported as real bugs (infinite losses, NaN gradients) in open RLHF code.
"""

from __future__ import annotations

import numpy as np
from numpy.typing import ArrayLike


def naive_sigmoid(x: ArrayLike) -> np.ndarray:
    """BAD EXAMPLE: ``1 / (1 + exp(-x))``; ``exp`` overflows (with a warning) for large ``-x``."""
    x = np.asarray(x)
    with np.errstate(over="ignore"):
        return 1 / (1 + np.exp(-x))


def naive_ranking_loss(r_pref: ArrayLike, r_rej: ArrayLike) -> np.ndarray:
    """BAD EXAMPLE: per-pair ``-log(sigmoid(r_pref - r_rej))``, unreduced."""
    d = np.asarray(r_pref) - np.asarray(r_rej)
    with np.errstate(divide="ignore"):
        return -np.log(naive_sigmoid(d))


def naive_preference_probability(r_a: ArrayLike, r_b: ArrayLike) -> np.ndarray:
    """BAD EXAMPLE: ``exp(r_a) / (exp(r_a) + exp(r_b))`` straight from the definition."""
    with np.errstate(over="ignore", invalid="ignore"):
        ea, eb = np.exp(np.asarray(r_a)), np.exp(np.asarray(r_b))
        return ea / (ea + eb)


def erratum_regularized_ranking_loss(r_pref: ArrayLike, r_rej: ArrayLike, coef: float) -> np.float64:
    r"""BAD EXAMPLE: the centring regularizer with the book's sign erratum.

    .. math:: \mathcal{L}_{\text{pair}} - \lambda\,\frac{1}{B}\sum_i (r_{\text{pref},i} + r_{\text{rej},i})^2

    Subtracting the penalty rewards ever larger rewards: move both rewards of a
    pair up together and the ranking part stays put while this falls without
    bound.  The correct form *adds* it:
    :func:`rmteach.numpy.regularized_ranking_loss`, which refuses ``coef < 0``.
    """
    from rmteach import numpy as rm

    a = np.asarray(r_pref, dtype=np.float64)
    b = np.asarray(r_rej, dtype=np.float64)
    return np.float64(rm.ranking_loss(a, b)) - coef * np.mean(np.square(a + b))
