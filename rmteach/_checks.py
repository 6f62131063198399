"""Argument checks shared by :mod:`rmteach.numpy` and :mod:`rmteach.torch`.

Every check raises ``TypeError`` (wrong kind of value) or ``ValueError``
(right kind, wrong shape or value) with a message that names the argument and
says what it got, so a student sees *which* input is wrong instead of a silent
wrong number.  This module needs only NumPy: importing it never imports torch.
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np

REDUCTIONS = ("mean", "sum", "none")


def describe(value: Any) -> str:
    """A short description of ``value`` for an error message."""
    text = repr(value)
    if len(text) > 60:
        text = text[:57] + "..."
    return f"{type(value).__name__} {text}"


def float_dtype(name: str, dtype: np.dtype, value: Any) -> np.dtype:
    """The floating dtype a computation on ``value`` (of ``dtype``) uses.

    float32 and float64 are kept; integers become float64 and float16 becomes
    float32.  Booleans, complex numbers, strings and objects are refused.
    """
    if dtype == np.float64 or dtype == np.float32:
        return dtype
    if dtype == np.float16:
        return np.dtype(np.float32)
    if dtype.kind in "iu":
        return np.dtype(np.float64)
    raise TypeError(
        f"{name} must be a real number or an array of real numbers "
        f"(float32, float64 or integer), got {describe(value)} of dtype {dtype}"
    )


def as_real_array(name: str, value: Any) -> np.ndarray:
    """``value`` as a NumPy array of float32 or float64, or a ``TypeError``."""
    if isinstance(value, (str, bytes)) or value is None:
        raise TypeError(
            f"{name} must be a real number or an array of real numbers, got {describe(value)}"
        )
    try:
        arr = np.asarray(value)
    except (ValueError, TypeError) as exc:  # ragged lists and the like
        raise TypeError(
            f"{name} must be a real number or an array of real numbers, "
            f"got {describe(value)} ({exc})"
        ) from None
    return arr.astype(float_dtype(name, arr.dtype, value), copy=False)


def check_reduction(reduction: Any) -> str:
    if not isinstance(reduction, str) or reduction not in REDUCTIONS:
        raise ValueError(
            f"reduction must be one of 'mean', 'sum' or 'none', got {describe(reduction)}"
        )
    return reduction


def check_pair_shapes(name_a: str, shape_a: tuple, name_b: str, shape_b: tuple) -> None:
    """Rewards of a pair: equal shapes, a scalar or a non-empty batch ``(B,)``."""
    for name, shape in ((name_a, shape_a), (name_b, shape_b)):
        if len(shape) > 1:
            raise ValueError(
                f"{name} must be a scalar or a 1-D batch of shape (B,), got shape {shape}"
            )
    if shape_a != shape_b:
        raise ValueError(
            f"{name_a} and {name_b} must have the same shape, "
            f"got {name_a} {shape_a} and {name_b} {shape_b}"
        )
    if shape_a == (0,):
        raise ValueError(
            f"{name_a} and {name_b} are an empty batch (shape (0,)); need at least one pair"
        )


def check_like(name: str, shape: tuple, ref_name: str, ref_shape: tuple) -> None:
    """An argument that is a scalar or has the shape of ``ref_name``."""
    if shape not in ((), ref_shape):
        raise ValueError(
            f"{name} must be a scalar or have the shape of {ref_name} {ref_shape}, "
            f"got shape {shape}"
        )


def check_weights(weights: np.ndarray, ref_name: str, ref_shape: tuple) -> None:
    """Per-pair weights: shape of the rewards, finite, >= 0, not all zero."""
    if weights.shape != ref_shape:
        raise ValueError(
            f"weights must have the shape of {ref_name} {ref_shape}, got shape {weights.shape}"
        )
    if not np.all(np.isfinite(weights)):
        raise ValueError(f"weights must be finite, got {describe(weights)}")
    if np.any(weights < 0):
        bad = weights[weights < 0] if weights.ndim else weights
        raise ValueError(
            f"weights must be >= 0, got negative weight(s) {np.atleast_1d(bad)[:5].tolist()}"
        )
    if not np.any(weights > 0):
        raise ValueError(
            "weights are all zero: the weighted loss sum(w * loss) / sum(w) is undefined; "
            "give at least one pair a positive weight"
        )


def check_probability(name: str, p: np.ndarray) -> None:
    """Soft labels: every value in [0, 1] (NaN is refused too)."""
    if not np.all((p >= 0) & (p <= 1)):
        bad = np.atleast_1d(p)[~((np.atleast_1d(p) >= 0) & (np.atleast_1d(p) <= 1))]
        raise ValueError(f"{name} must be a probability in [0, 1], got {bad[:5].tolist()}")


def check_coef(coef: Any) -> float:
    """The centering coefficient: a finite number >= 0 (the book's minus sign is an erratum)."""
    arr = as_real_array("coef", coef)
    if arr.shape != ():
        raise ValueError(f"coef must be a single number, got shape {arr.shape}")
    value = float(arr)
    if not np.isfinite(value):
        raise ValueError(f"coef must be finite, got {value}")
    if value < 0:
        raise ValueError(
            f"coef must be >= 0, got {value}: the centering penalty coef*mean((r_pref + r_rej)**2) "
            "is added to the loss. (The book prints it with a minus sign; that is an erratum: "
            "subtracting it would reward ever larger rewards.)"
        )
    return value


def check_ranked_rewards(name: str, shape: tuple) -> None:
    """List-wise rewards: ``(N,)`` or ``(B, N)`` with ``N >= 2`` and ``B >= 1``."""
    if len(shape) not in (1, 2):
        raise ValueError(
            f"{name} must have shape (N,) for one prompt or (B, N) for a batch, got shape {shape}"
        )
    if shape[-1] < 2:
        raise ValueError(
            f"{name} must hold at least 2 ranked responses per prompt (N >= 2), got shape {shape}"
        )
    if shape[0] == 0:
        raise ValueError(f"{name} is an empty batch (shape {shape}); need at least one prompt")


def check_beta(beta: Any) -> float:
    """DPO's ``beta``: one finite number > 0."""
    arr = as_real_array("beta", beta)
    if arr.shape != ():
        raise ValueError(f"beta must be a single number, got shape {arr.shape}")
    value = float(arr)
    if not math.isfinite(value) or value <= 0:
        raise ValueError(
            f"beta must be a finite number > 0, got {value}: beta is the strength of the KL "
            "constraint that keeps the policy near the reference model, and the implicit "
            "reward beta * log(pi / pi_ref) is meaningless for beta <= 0"
        )
    return value


def check_int(name: str, value: Any, minimum: int) -> int:
    """A whole number ``>= minimum`` (a bool, a float or a string is refused, with its type named)."""
    if isinstance(value, bool) or not isinstance(value, (int, np.integer)):
        raise TypeError(f"{name} must be an integer >= {minimum}, got {describe(value)}")
    if value < minimum:
        raise ValueError(f"{name} must be an integer >= {minimum}, got {int(value)}")
    return int(value)
