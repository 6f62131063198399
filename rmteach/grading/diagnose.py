r"""Misconception diagnosis: what a wrong result says about the idea behind it.

A failed check of :mod:`rmteach.grading.checks` asks this module whether the
wrong value has a recognizable pattern, and names the misconception in one
sentence:

=============================  =====================================================
pattern of the wrong result    misconception named
=============================  =====================================================
inf / nan, answer finite       a typed-in formula overflows (``exp`` of a large number)
exactly 0, answer not 0        a typed-in formula rounds the answer away (no ``log1p``)
B times / 1/B of the answer    a sum where a mean is asked, or the reverse; a
                               gradient not divided by the batch size
minus the answer               a flipped sign or direction
the answer with the two        swapped arguments (or the two results in the wrong
arguments (results) swapped    order)
one number for an array,       a scalar where an array is asked, or the reverse
or the reverse
TypeError / ValueError on      code that works for numbers but not for arrays
arrays
good to ~7 digits only         arithmetic in float32
a text, a number, a set        a description (or a number) where a letter is asked
=============================  =====================================================

The alternatives that need the reference function (swapped arguments) are worked
out by :func:`rmteach.grading.checks.agrees`, which has it and the inputs.  Like
the checks, this module imports only the standard library and NumPy; it runs in
the student's kernel.
"""

from __future__ import annotations

import linecache
import os
from pathlib import Path
from typing import Any, Callable, Iterable, Optional

import numpy as np

from rmteach.grading.tamper import describe

OVERFLOW = ("the formula overflows: typed in as written, exp of a large number is inf "
            "(above 709.78 in float64, 88.72 in float32), and inf/inf or inf - inf is nan; "
            "rearrange it so that exp only ever sees -|gap|.")
ROUNDED_TO_ZERO = ("the formula rounds a tiny, non-zero answer to exactly 0: 1 + e^(-gap) is 1 in "
                   "floating point once e^(-gap) < 1.1e-16, i.e. gap > 36.7 (16.6 in float32), so "
                   "log(1 + e^(-gap)) or 1 - sigmoid(gap) gives 0; use log1p, and compute sigmoid(-gap) directly.")
SIGN = "the value has the right size but the wrong sign: a flipped sign or direction."
SUM_FOR_MEAN = ("the value is B times the answer: a sum over the B pairs where the mean is asked.")
MEAN_FOR_SUM = ("the value is 1/B of the answer: a mean over the B pairs where the sum is asked.")
GRAD_NOT_DIVIDED = ("each derivative is B times the answer: the gradient of the summed loss, not of the "
                    "mean; every pair's derivative of a mean over B pairs carries a factor 1/B.")
GRAD_DIVIDED_TWICE = "each derivative is 1/B of the answer: the 1/B of the mean was applied twice."
SWAPPED_ARGS = ("the value is what the two arguments give the other way round: swapped arguments "
                "(r_pref and r_rej exchanged), or the gap taken as r_rej - r_pref.")
SWAPPED_RESULTS = "the two results are in the wrong order (the pair is returned the other way round)."
SWAPPED_OR_SIGN = ("the two results are exchanged, which here is the same as both signs flipped: the "
                   "direction is reversed (a descent step on the loss must raise the preferred score).")
SCALAR_FOR_ARRAY = ("one number where an array (one value per pair) is asked: the result was "
                    "averaged, summed or converted with float() / math too early.")
ARRAY_FOR_SCALAR = ("an array of per-pair values where one number is asked: reduce them (the mean "
                    "over the pairs, or the sum, as the question says).")
NUMBERS_ONLY = ("the code works for numbers but not for arrays: `if`, the built-in max and min, "
                "math.exp and float() take one number; use np.where, np.maximum, np.minimum, "
                "np.exp and np.asarray.")
FLOAT32 = ("the value agrees only to about 7 digits: the arithmetic ran in float32 (or a float32 "
           "constant); convert the inputs to float64 first.")
DESCRIPTION_FOR_LETTER = "a description where a letter is asked: store only the option's letter, e.g. 'B'."
NUMBER_FOR_LETTER = "a number or True/False where a letter is asked: store the option's letter, e.g. 'B'."
SET_FOR_LETTER = "a set or list where one letter is asked: store a single letter, e.g. 'B'."
LETTER_FOR_SET = "one letter where a set is asked: store every letter that applies, e.g. {'A', 'C'}."
NONE_VALUE = ("None where a value is asked: a function without a `return` (or an answer that was "
              "printed, not stored) gives None.")
TEXT_FOR_NUMBER = "text where a number is asked: store the number itself, not a string."
NOT_IMPLEMENTED = ("the answer cell still raises NotImplementedError: replace it with your solution "
                   "and run that cell before the test.")


def close_mask(got: np.ndarray, want: np.ndarray, rtol: float, atol: float) -> np.ndarray:
    """Elementwise: NaN matches NaN, equal infinities match, else within ``atol + rtol*|want|``."""
    got, want = np.broadcast_arrays(got, want)
    both_nan = (got != got) & (want != want)
    same = got == want
    with np.errstate(invalid="ignore", over="ignore"):
        near = np.abs(got - want) <= atol + rtol * np.abs(want)
    return both_nan | same | near


def _matches(got: Any, want: Any, rtol: float, atol: float) -> bool:
    try:
        g = np.asarray(got, dtype=np.float64)
        w = np.asarray(want, dtype=np.float64)
    except (TypeError, ValueError):
        return False
    if g.shape != w.shape or g.size == 0:
        return False
    return bool(close_mask(g, w, rtol, atol).all())


def overflow_mistakes(got: np.ndarray, want: np.ndarray) -> list[str]:
    """inf/nan where the answer is finite; exactly 0 where it is not 0."""
    if got.shape != want.shape:
        return []
    with np.errstate(invalid="ignore"):
        finite_want = np.isfinite(want)
        if np.any(~np.isfinite(got) & finite_want):
            return [OVERFLOW]
        if np.any((got == 0) & (want != 0) & finite_want & (np.abs(want) < 1e-12)):
            return [ROUNDED_TO_ZERO]
    return []


def value_mistakes(got: np.ndarray, want: np.ndarray, *, rtol: float, atol: float,
                   mistakes: Optional[dict] = None, batch: Optional[int] = None,
                   reveal: bool = True) -> list[str]:
    """The misconceptions a wrong value ``got`` (expected ``want``) shows, most specific first.

    ``mistakes``: ``{sentence: wrong value}`` the test cell worked out.  With
    ``reveal=False`` (a numeric answer, whose key must stay hidden) only those and
    the overflow patterns are named.
    """
    found: list[str] = []
    for sentence, value in dict(mistakes or {}).items():
        if _matches(got, value, max(rtol, 1e-12), atol):
            found.append(str(sentence))
    if found:
        return found[:1]
    found += overflow_mistakes(got, want)
    if found or not reveal:
        return found
    if got.shape != want.shape:
        if got.ndim == 0 and want.ndim >= 1:
            return [SCALAR_FOR_ARRAY]
        if got.ndim >= 1 and want.ndim == 0:
            return [ARRAY_FOR_SCALAR]
        return []
    tol = max(rtol, 1e-12)
    if np.any(want != 0) and _matches(got, -want, tol, atol):
        return [SIGN]
    if batch and batch > 1 and np.any(want != 0):
        if _matches(got, want * batch, tol, atol):
            return [GRAD_NOT_DIVIDED if want.ndim else SUM_FOR_MEAN]
        if _matches(got, want / batch, tol, atol):
            return [GRAD_DIVIDED_TWICE if want.ndim else MEAN_FOR_SUM]
    if rtol < 1e-6 and _matches(got, want, 2e-6, atol):
        return [FLOAT32]
    return []


def result_mistakes(got: Any, want: Any, swapped: Any, *, rtol: float, atol: float,
                    batch: Optional[int]) -> list[str]:
    """Misconceptions of a wrong implementation: ``got`` against the reference's ``want`` on the
    same inputs and ``swapped`` (the reference on the inputs with the first two exchanged;
    ``None`` when not applicable).  ``got``/``want`` may be pairs (a gradient)."""
    pair = isinstance(want, tuple)
    if pair and isinstance(got, (tuple, list)) and len(got) == len(want) == 2:
        if _matches(got[0], want[1], rtol, atol) and _matches(got[1], want[0], rtol, atol) \
                and not _matches(got[0], want[0], rtol, atol):
            if _matches(got[0], -np.asarray(want[0], dtype=np.float64), rtol, atol):
                return [SWAPPED_OR_SIGN]
            return [SWAPPED_RESULTS]
    if swapped is not None and _all_match(got, swapped, rtol, atol) and not _all_match(got, want, rtol, atol):
        return [SWAPPED_ARGS]
    parts = list(zip(got, want)) if pair and isinstance(got, (tuple, list)) and len(got) == len(want) else [(got, want)]
    for g, w in parts:
        try:
            ga, wa = np.asarray(g, dtype=np.float64), np.asarray(w, dtype=np.float64)
        except (TypeError, ValueError):
            return not_a_number(g)
        if ga.shape == wa.shape and close_mask(ga, wa, rtol, atol).all():
            continue
        found = value_mistakes(ga, wa, rtol=rtol, atol=atol, batch=batch)
        if found:
            return found
    return []


def _all_match(got: Any, want: Any, rtol: float, atol: float) -> bool:
    if isinstance(want, tuple):
        return isinstance(got, (tuple, list)) and len(got) == len(want) and all(
            _matches(g, w, rtol, atol) for g, w in zip(got, want))
    return _matches(got, want, rtol, atol)


def not_a_number(value: Any) -> list[str]:
    """Why ``value`` is no number or array of numbers."""
    if value is None:
        return [NONE_VALUE]
    if isinstance(value, str):
        return [TEXT_FOR_NUMBER]
    return []


def not_a_letter(answer: Any, options: Iterable[str]) -> list[str]:
    """Why ``answer`` is not one of the letters ``options``."""
    opts = {str(o).upper() for o in options}
    if isinstance(answer, str):
        text = answer.strip()
        if len(text) > 1 and text.upper() not in opts:
            return [DESCRIPTION_FOR_LETTER]
        return []
    if answer is None:
        return [NONE_VALUE]
    if isinstance(answer, (bool, int, float, np.number)):
        return [NUMBER_FOR_LETTER]
    if isinstance(answer, (set, frozenset, list, tuple)):
        return [SET_FOR_LETTER]
    return []


_NUMBERS_ONLY_TEXT = ("truth value of an array", "only length-1 arrays", "only size-1 arrays",
                      "only 0-dimensional", "only one element tensors", "must be real number",
                      "cannot convert the series", "can't convert", "not supported between instances of 'numpy.ndarray'")


def raise_mistakes(exc: BaseException, args: tuple, kwargs: dict) -> list[str]:
    """Why the student's function raised ``exc`` on these arguments, when the pattern is known."""
    if isinstance(exc, NotImplementedError):
        return [NOT_IMPLEMENTED]
    arrays = [a for a in (*args, *kwargs.values()) if isinstance(a, np.ndarray) and a.size > 1]
    text = str(exc)
    if arrays and isinstance(exc, (TypeError, ValueError)) and any(t in text for t in _NUMBERS_ONLY_TEXT):
        return [NUMBERS_ONLY]
    return []


def batch_size(args: Iterable[Any]) -> Optional[int]:
    """B: the length of the longest 1-d array argument (None without one)."""
    sizes = [a.shape[0] for a in args if isinstance(a, np.ndarray) and a.ndim == 1]
    return max(sizes) if sizes else None


def args_text(args: tuple, kwargs: dict) -> str:
    """Short text for the arguments of a call: numbers as written, arrays by shape and dtype."""

    def one(a: Any) -> str:
        if isinstance(a, np.ndarray):
            if a.size <= 4:
                return np.array2string(a, separator=", ", precision=6)
            return f"<array of {a.size} {a.dtype}>"
        if isinstance(a, (float, int, np.number)):
            return repr(a.item() if isinstance(a, np.number) else a)
        return describe(a)

    return ", ".join([*map(one, args), *(f"{k}={one(v)}" for k, v in kwargs.items())])


def own_frames(tb: Any, package_dir: Path, limit: int = 6) -> list[str]:
    """The frames of the student's own code in traceback ``tb``, after it left the checks:
    ``Cell In[5], line 3, in ranking_loss`` and the source line (never a test cell's line,
    never rmteach's or a library's)."""
    started, out = False, []
    package_dir = Path(package_dir)
    lib_dirs = [os.path.dirname(os.__file__), os.path.dirname(os.path.dirname(np.__file__))]
    while tb is not None:
        code = tb.tb_frame.f_code
        filename = code.co_filename
        inside = _inside(filename, package_dir)
        if inside:
            started = True
        elif started and not any(filename.startswith(d) for d in lib_dirs):
            line = linecache.getline(filename, tb.tb_lineno).strip()
            out.append(f"    {_cell_name(filename)}, line {tb.tb_lineno}, in {code.co_name}")
            if line:
                out.append(f"      {line}")
        tb = tb.tb_next
    return out[-2 * limit:]


def _inside(filename: str, package_dir: Path) -> bool:
    try:
        p = Path(filename).resolve()
    except (OSError, ValueError):
        return False
    return p == package_dir or package_dir in p.parents


def _cell_name(filename: str) -> str:
    """IPython's name of a cell's code ("Cell In[5]"), else the file name."""
    import sys

    ip_mod = sys.modules.get("IPython")
    get: Optional[Callable] = getattr(ip_mod, "get_ipython", None) if ip_mod else None
    ip = get() if callable(get) else None
    fmt = getattr(getattr(ip, "compile", None), "format_code_name", None)
    if callable(fmt):
        try:
            name = fmt(filename)
            if name:
                return f"{name[0]} {name[1]}"
        except Exception:
            pass
    return f"File {filename}"
