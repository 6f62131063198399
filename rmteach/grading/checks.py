r"""The checks that test cells call, inside the student's kernel.

A test cell does::

    from rmteach import grading as _g
    assert _g.close(_g.call(ranking_loss, r_pref, r_rej), _rm.ranking_loss(r_pref, r_rej),
                    "ranking_loss on 200 random pairs")

:func:`call` runs the student's function with every ``rmteach`` function turned
into a tripwire, after :func:`own_function` has checked statically that it is a
function defined in the notebook whose code, globals, closures and defaults reach
no ``rmteach`` object: an implement-it exercise answered with ``rmteach``'s own
code gets no credit.  :func:`assert_close`, :func:`assert_choice` and
:func:`assert_choices` compare answers with keys that the test cell computes with
``rmteach``; their messages never name the right choice.  Each check first asks
:mod:`rmteach.grading.tamper` whether student code replaced what it relies on.

Feedback that teaches: every check takes ``where="notebook 02, section '...'"``,
the place the course teaches it, and the choice checks take
``why={"A": "the misconception option A reflects", ...}``, shown when that wrong
option is chosen.  :func:`agrees` runs the student's function and rmteach's on
the same inputs and names the wrong idea a mismatch shows
(:mod:`rmteach.grading.diagnose`).  A failed check raises an ``AssertionError``
(an exception from the student's code keeps its type) that IPython shows as a few
lines, never as a traceback through this module: what was checked, what came out
(and what was expected, unless it is a numeric answer's key), the misconception,
where to look.

This module imports only the standard library and NumPy (never nbgrader,
nbconvert or torch): a test cell pays for nothing else.
"""

from __future__ import annotations

import builtins
import contextlib
import copy
import importlib.abc
import io
import os
import sys
import types
import warnings
from pathlib import Path
from typing import Any, Iterable, Iterator, Optional

import numpy as np

from rmteach.grading import diagnose as _diagnose
from rmteach.grading.tamper import (
    _float, _frozenset, _int, _isinstance, _len, _list, _np_argwhere, _np_asarray, _np_errstate, _np_float64, _np_ndarray, _set,
    _sorted, _str, _tuple, _type, Tampering, describe, is_rmteach_name, untampered,
)

PACKAGE_DIR = Path(__file__).resolve().parents[1]  # rmteach/
#: the modules of the checks themselves: never turned into tripwires
_CHECK_MODULES = frozenset({"rmteach.grading", "rmteach.grading.checks", "rmteach.grading.tamper",
                            "rmteach.grading.diagnose"})


class NotOwnWork(AssertionError):
    """An implement-it answer that uses ``rmteach``'s own code (no credit)."""


class _ReferenceCalled(BaseException):
    """Raised by a tripwire; a BaseException so ``except Exception`` cannot swallow it."""


def _where_line(where: Optional[str]) -> list[str]:
    return [f"Where to look: {where}."] if where else []


def failure(message: str, *, why: Iterable[str] = (), where: Optional[str] = None,
            exc_type: type = AssertionError) -> BaseException:
    """The exception a failed check raises: ``exc_type(message)`` (an ``AssertionError``
    by default, so test cells, nbgrader and logs see what they always saw).

    ``why``: sentences naming the misconception the wrong result reflects;
    ``where``: the notebook and section that teach it.  Both are added to the
    message on lines of their own.  The exception renders in IPython as these
    lines only (its ``_render_traceback_``), never as a traceback through the
    grading code.
    """
    lines = [message, *(f"Likely misconception: {w}" for w in why), *_where_line(where)]
    exc = exc_type("\n".join(lines))
    _short_render(exc, lines)
    return exc


def _short_render(exc: BaseException, lines: list[str], frames: Iterable[str] = ()) -> BaseException:
    """Make IPython show ``exc`` as ``lines`` (and ``frames``: the student's own code), no traceback."""
    text = [f"Check failed: {lines[0]}", *(f"  {line}" for line in lines[1:])]
    frames = list(frames)
    if frames:
        text += ["  In your code:", *frames]

    def _render_traceback_():
        return list(text)

    exc._render_traceback_ = _render_traceback_
    return exc


def _inside_package(path: Any) -> bool:
    try:
        p = Path(os.fspath(path)).resolve()
    except (TypeError, ValueError, OSError):
        return False
    return p == PACKAGE_DIR or PACKAGE_DIR in p.parents


def _rmteach_origin(obj: Any) -> Optional[str]:
    """Where ``obj`` comes from if it belongs to rmteach, else None."""
    if isinstance(obj, types.ModuleType):
        name = getattr(obj, "__name__", None)
        return f"the module {name}" if is_rmteach_name(name) else None
    if isinstance(obj, types.CodeType):
        return f"the code of {obj.co_name} in rmteach" if _inside_package(obj.co_filename) else None
    if isinstance(obj, str):
        return f"the name {obj!r}" if is_rmteach_name(obj) else None
    try:
        module = getattr(obj, "__module__", None)
    except Exception:  # an object whose attribute access raises: not rmteach's
        module = None
    if is_rmteach_name(module):
        return f"{module}.{getattr(obj, '__qualname__', getattr(obj, '__name__', type(obj).__name__))}"
    if is_rmteach_name(getattr(type(obj), "__module__", None)):
        return f"an instance of {type(obj).__module__}.{type(obj).__qualname__}"
    return None


def _code_objects(code: types.CodeType) -> Iterator[types.CodeType]:
    yield code
    for const in code.co_consts:
        if isinstance(const, types.CodeType):
            yield from _code_objects(const)


def _rmteach_references(func: types.FunctionType, limit: int = 5000) -> list[str]:
    """Every way ``func`` reaches an rmteach object, found without running it.

    Walks the function's code (nested code objects included), the globals and
    builtins its code names, its closure cells, defaults and ``__wrapped__``;
    follows functions and classes defined in the same notebook, partials, bound
    methods, containers and ad-hoc modules.  Returns human-readable paths.
    """
    found: list[str] = []
    seen: set[int] = set()
    home = func.__globals__
    todo: list[tuple[Any, str]] = [(func, func.__name__)]
    while todo and len(seen) < limit:
        obj, path = todo.pop()
        if id(obj) in seen:
            continue
        seen.add(id(obj))
        origin = _rmteach_origin(obj)
        if origin is not None:
            found.append(f"{path} is {origin}")
            continue
        if isinstance(obj, types.FunctionType):
            if obj.__globals__ is not home and obj is not func:
                continue  # a library function (numpy's, math's): never rmteach's, checked above
            for code in _code_objects(obj.__code__):
                for const in code.co_consts:
                    if isinstance(const, str) and is_rmteach_name(const):
                        found.append(f"{path} uses the string {const!r}")
                for name in code.co_names:
                    if is_rmteach_name(name):
                        found.append(f"{path} imports or names {name!r}")
                    elif name in obj.__globals__:
                        todo.append((obj.__globals__[name], f"{path} -> {name}"))
                    elif name in vars(builtins):
                        todo.append((vars(builtins)[name], f"{path} -> builtins.{name}"))
            for i, cell in enumerate(obj.__closure__ or ()):
                with contextlib.suppress(ValueError):  # an empty cell
                    todo.append((cell.cell_contents, f"{path} -> closure {obj.__code__.co_freevars[i]}"))
            for value in obj.__defaults__ or ():
                todo.append((value, f"{path} -> a default argument"))
            for key, value in (obj.__kwdefaults__ or {}).items():
                todo.append((value, f"{path} -> default {key}"))
            if hasattr(obj, "__wrapped__"):
                todo.append((obj.__wrapped__, f"{path} -> __wrapped__"))
        elif isinstance(obj, types.MethodType):
            todo.append((obj.__func__, path))
            todo.append((obj.__self__, f"{path} -> its object"))
        elif isinstance(obj, (list, tuple, set, frozenset)):
            for i, value in enumerate(list(obj)[:1000]):
                todo.append((value, f"{path}[{i}]"))
        elif isinstance(obj, dict):
            for key, value in list(obj.items())[:1000]:
                todo.append((key, f"{path} key {key!r}"))
                todo.append((value, f"{path}[{key!r}]"))
        elif isinstance(obj, types.ModuleType):
            # a real imported module (numpy, math) is not walked; a home-made one is
            if sys.modules.get(obj.__name__) is not obj:
                for key, value in list(vars(obj).items())[:1000]:
                    todo.append((value, f"{path}.{key}"))
        elif isinstance(obj, type):
            if obj.__module__ == func.__module__:
                for key, value in list(vars(obj).items()):
                    todo.append((value, f"{path}.{key}"))
        elif isinstance(obj, (staticmethod, classmethod)):
            todo.append((obj.__func__, path))
        elif type(obj).__name__ == "partial" and hasattr(obj, "func"):
            todo.append((obj.func, f"{path} -> partial"))
            todo.append((obj.args, f"{path} -> partial args"))
            todo.append((obj.keywords, f"{path} -> partial keywords"))
        elif isinstance(obj, types.SimpleNamespace) or type(obj).__module__ == func.__module__:
            with contextlib.suppress(TypeError):
                for key, value in list(vars(obj).items())[:1000]:
                    todo.append((value, f"{path}.{key}"))
            if type(obj).__module__ == func.__module__:
                todo.append((type(obj), f"{path} -> its class"))
    return found


def own_function(func: Any, name: str) -> None:
    """Assert that ``func`` is the student's own function (no rmteach inside).

    It must be a plain function defined with ``def`` (or ``lambda``) in the
    notebook, and nothing it can reach without running (its code, the globals
    and builtins it names, closures, defaults) may be an rmteach object.
    Raises :class:`NotOwnWork` (an ``AssertionError``) otherwise.
    """
    if not isinstance(func, types.FunctionType):
        inner = [getattr(func, a, None) for a in ("func", "__func__", "__wrapped__", "__call__")]
        origin = next((o for o in map(_rmteach_origin, [func, *inner]) if o), None)
        why = f": it is {origin}, and rmteach's own code gets no credit" if origin else ""
        raise NotOwnWork(
            f"{name} must be a function you define with def in this notebook, got {describe(func)}{why}"
        )
    if func.__module__ != "__main__" or _inside_package(func.__code__.co_filename):
        raise NotOwnWork(
            f"{name} is {func.__module__}.{func.__qualname__}, not a function defined in this "
            "notebook: an implement-it exercise answered with rmteach's own code gets no credit"
        )
    refs = _rmteach_references(func)
    if refs:
        raise NotOwnWork(
            f"{name} uses rmteach ({refs[0]}): an implement-it exercise answered with rmteach's "
            "own code gets no credit. Write the formula yourself (NumPy and math are fine)."
        )


def _tripwire_template(*args, **kwargs):  # pragma: no cover - only its code object is used
    return __rmteach_grading_tripwire__()  # noqa: F821 - looked up in the patched module's globals


_TRIPWIRE_NAME = "__rmteach_grading_tripwire__"


class _ImportTripwire(importlib.abc.MetaPathFinder):
    def __init__(self, hits: list[str]):
        self.hits = hits

    def find_spec(self, fullname, path=None, target=None):
        if is_rmteach_name(fullname):
            self.hits.append(f"import {fullname}")
            raise _ReferenceCalled(f"import {fullname}")
        return None


@contextlib.contextmanager
def _tripwires() -> Iterator[list[str]]:
    """While active, calling any function of an imported rmteach module (other
    than this one), importing an rmteach module or opening a file of the package
    records a hit and raises :class:`_ReferenceCalled`.

    The functions' ``__code__`` is swapped, so references a student took
    earlier (``from rmteach.numpy import ranking_loss as f``) trip too.
    """
    hits: list[str] = []

    def tripped():
        frame = sys._getframe(1)
        what = f"{frame.f_globals.get('__name__')}.{frame.f_code.co_name}"
        hits.append(what)
        raise _ReferenceCalled(what)

    template = _tripwire_template.__code__
    swapped: list[tuple[types.FunctionType, types.CodeType]] = []
    patched: list[dict] = []
    real_open, real_io_open = builtins.open, io.open

    def guarded_open(file, *args, **kwargs):
        if isinstance(file, (str, bytes, os.PathLike)) and _inside_package(file):
            hits.append(f"open({file!r})")
            raise _ReferenceCalled(f"open {file!r}")
        return real_open(file, *args, **kwargs)

    finder = _ImportTripwire(hits)
    try:
        for modname, module in list(sys.modules.items()):
            if module is None or not is_rmteach_name(modname) or modname in _CHECK_MODULES:
                continue
            namespace = vars(module)
            namespace[_TRIPWIRE_NAME] = tripped
            patched.append(namespace)
            for obj in list(namespace.values()):
                if (
                    isinstance(obj, types.FunctionType)
                    and obj.__globals__ is namespace
                    and not obj.__closure__
                ):
                    code = obj.__code__
                    swapped.append((obj, code))
                    obj.__code__ = template.replace(
                        co_name=code.co_name, co_filename=code.co_filename, co_firstlineno=code.co_firstlineno
                    )
        sys.meta_path.insert(0, finder)
        builtins.open = io.open = guarded_open
        yield hits
    finally:
        builtins.open, io.open = real_open, real_io_open
        with contextlib.suppress(ValueError):
            sys.meta_path.remove(finder)
        for obj, code in reversed(swapped):
            obj.__code__ = code
        for namespace in patched:
            namespace.pop(_TRIPWIRE_NAME, None)


def _copy_arg(x: Any) -> Any:
    return x.copy() if isinstance(x, np.ndarray) else copy.deepcopy(x)


def call(func: Any, *args: Any, name: Optional[str] = None, where: Optional[str] = None, **kwargs: Any) -> Any:
    """Run the student's ``func(*args, **kwargs)`` and return its result, if it is own work.

    Checks :func:`own_function` first, then runs ``func`` on copies of the
    arguments (so it cannot change the test's data) with every rmteach function
    turned into a tripwire.  Raises :class:`NotOwnWork` if ``func`` reaches
    rmteach either way.  Warnings the function emits are listed on stdout (a
    note, not a failure; numerical consequences are what the tests check).

    ``where`` (e.g. ``"notebook 02, section 'The stable form'"``): the notebook
    section that teaches the exercise, shown when the check fails (not own work)
    or when the function raises.  An exception the function raises keeps its
    type (``except ValueError`` still works); IPython shows it as one short
    message plus the lines of the student's own code it came from.
    """
    label = name or getattr(func, "__name__", "the function")
    untampered()
    try:
        own_function(func, label)
    except NotOwnWork as exc:
        raise failure(str(exc), where=where, exc_type=NotOwnWork) from None
    args = tuple(_copy_arg(a) for a in args)
    kwargs = {k: _copy_arg(v) for k, v in kwargs.items()}
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        with _tripwires() as hits:
            try:
                result = func(*args, **kwargs)
            except _ReferenceCalled:
                result = None
            except Exception as exc:
                if not hits:
                    _explain_raise(exc, label, args, kwargs, where)
                    raise
                result = None
    if hits:
        raise failure(
            f"{label} called rmteach ({hits[0]}): an implement-it exercise answered with "
            "rmteach's own code gets no credit. Write the formula yourself (NumPy and math are fine).",
            where=where, exc_type=NotOwnWork,
        )
    untampered()  # the function itself may have patched what the checks rely on
    seen = set()
    for w in caught:
        text = f"{w.category.__name__}: {w.message}"
        if text not in seen:
            seen.add(text)
            print(f"note: {label} emitted {text}")
    return result


def agrees(func: Any, reference: Any, *args: Any, what: Optional[str] = None, rtol: float = 1e-9,
           atol: float = 0.0, where: Optional[str] = None, name: Optional[str] = None,
           parts: Optional[Iterable[str]] = None, mistakes: Optional[dict] = None, **kwargs: Any) -> bool:
    """Assert the student's ``func(*args, **kwargs)`` (run as :func:`call` runs it: own work
    only, tripwires on) equals ``reference(*args, **kwargs)``, rmteach's function; return True.

    ``reference`` runs outside the tripwires, on the same inputs.  On a mismatch
    the check works out, from ``reference`` and the inputs, which known wrong
    idea explains the result (:mod:`rmteach.grading.diagnose`): the arguments
    swapped, a flipped sign, a factor of B (sum vs mean, a gradient not divided
    by the batch size), inf/nan or 0 from a typed-in formula, a scalar for an
    array, float32 arithmetic.  A reference returning a pair (a gradient) is
    compared part by part, ``parts`` naming them (``("dL/dr_pref", "dL/dr_rej")``).
    ``mistakes={"sentence": wrong result}``: wrong ideas the test cell worked out
    itself, named when the result matches one.  ``what`` names the check (default ``func(args)``); ``where``: the notebook
    section that teaches it.
    """
    label = name or getattr(func, "__name__", "the function")
    got = call(func, *args, name=label, where=where, **kwargs)
    want = reference(*args, **kwargs)
    what = what or f"{label}({_args_text(args, kwargs)})"

    def diagnosis() -> list[str]:
        for sentence, value in dict(mistakes or {}).items():
            with contextlib.suppress(Exception):
                if _diagnose._all_match(got, value, max(rtol, 1e-12), atol):
                    return [_str(sentence)]
        swapped = None
        if len(args) >= 2:
            with contextlib.suppress(Exception):
                swapped = reference(args[1], args[0], *args[2:], **kwargs)
        with contextlib.suppress(Exception):
            return _diagnose.result_mistakes(got, want, swapped, rtol=rtol, atol=atol,
                                             batch=_diagnose.batch_size(args))
        return []

    if _type(want) is _tuple:
        names = _list(parts or (f"result[{i}]" for i in range(_len(want))))
        if _type(got) not in (_tuple, _list) or _len(got) != _len(want):
            raise failure(f"{what}: should return a pair ({', '.join(names)}), got {describe(got)}",
                          why=_diagnose.not_a_number(got), where=where)
        pairs = [(g, w, f"{what}, {n}") for g, w, n in zip(got, want, names)]
    else:
        pairs = [(got, want, what)]
    for g, w, label_i in pairs:
        try:
            assert_close(g, w, label_i, rtol=rtol, atol=atol)
        except Tampering:
            raise
        except AssertionError as exc:
            message = _str(exc).split("\n")[0]
            raise failure(message, why=diagnosis(), where=where) from None
    return True


def assert_raises(exc_type: type, func: Any, *args: Any, name: Optional[str] = None, where: Optional[str] = None,
                  **kwargs: Any) -> None:
    """Assert the student's ``func(*args, **kwargs)`` raises ``exc_type`` (run as :func:`call` runs it)."""
    label = name or getattr(func, "__name__", "the function")
    try:
        result = call(func, *args, name=label, where=where, **kwargs)
    except NotOwnWork:
        raise
    except exc_type:
        return
    except Exception as exc:
        raise failure(f"{label} should raise {exc_type.__name__}, but raised {type(exc).__name__}: {exc}",
                      where=where) from None
    raise failure(f"{label}({_args_text(args, kwargs)}) should raise {exc_type.__name__}, but returned {describe(result)}",
                  where=where)


# The same checks as booleans, so that a test cell can end in a plain ``assert``
# (a cell ending in an expression would be read as partial credit): each returns
# True or raises AssertionError with the message above.


def close(actual: Any, expected: Any, what: str, **kwargs: Any) -> bool:
    """:func:`assert_close`, returning True: ``assert _g.close(got, want, "what")``."""
    assert_close(actual, expected, what, **kwargs)
    return True


def choice_is(answer: Any, correct: str, options: Iterable[str], name: str, *, where: Optional[str] = None,
              why: Optional[dict] = None) -> bool:
    """:func:`assert_choice`, returning True."""
    assert_choice(answer, correct, options, name, where=where, why=why)
    return True


def choices_are(answer: Any, correct: Iterable[str], options: Iterable[str], name: str, *,
                where: Optional[str] = None, why: Optional[dict] = None) -> bool:
    """:func:`assert_choices`, returning True."""
    assert_choices(answer, correct, options, name, where=where, why=why)
    return True


def raises(exc_type: type, func: Any, *args: Any, **kwargs: Any) -> bool:
    """:func:`assert_raises`, returning True (``name=`` and ``where=`` as there)."""
    assert_raises(exc_type, func, *args, **kwargs)
    return True


def _as_float_array(value: Any, what: str, where: Optional[str] = None) -> np.ndarray:
    if value is None:  # numpy would read it as nan
        raise failure(f"{what} should be a number or an array of numbers, got None", why=_diagnose.not_a_number(value),
                      where=where)
    try:
        arr = _np_asarray(value, dtype=_np_float64)
    except (TypeError, ValueError):
        raise failure(f"{what} should be a number or an array of numbers, got {describe(value)}",
                      why=_diagnose.not_a_number(value), where=where) from None
    return arr


def assert_close(
    actual: Any,
    expected: Any,
    what: str,
    rtol: float = 1e-9,
    atol: float = 0.0,
    show_expected: bool = True,
    *,
    where: Optional[str] = None,
    mistakes: Optional[dict] = None,
    batch: Optional[int] = None,
) -> None:
    """Assert ``actual`` equals ``expected`` elementwise within ``atol + rtol*|expected|``.

    Shapes must match (a scalar for a scalar, ``(B,)`` for ``(B,)``); NaN
    matches NaN and an infinity matches the same infinity.  The message names
    ``what``, the first bad index and the value got; the expected value too
    unless ``show_expected=False`` (for numeric answers, where it is the key).

    On failure it names the misconception when the wrong value has a known
    pattern (:mod:`rmteach.grading.diagnose`): ``inf``/``nan`` or exactly 0 where
    the answer is finite and non-zero, a flipped sign, a factor of ``batch``
    (a sum for a mean, a gradient not divided by B), a scalar for an array.
    ``mistakes={"sentence": wrong_value}`` adds wrong answers worked out by the
    test cell (e.g. the loss summed instead of averaged): a value matching one
    (within the same tolerance) is named by its sentence.  With
    ``show_expected=False`` only ``mistakes`` and the overflow patterns are
    named, so nothing tells the key.  ``where``: the notebook section to read.
    """
    untampered()
    # only the originals captured at import, ndarray methods and operators from here on
    got = _as_float_array(actual, what, where)
    want = _np_asarray(expected, dtype=_np_float64)
    if _type(got) is not _np_ndarray or _type(want) is not _np_ndarray:
        raise Tampering("tampering detected: numpy.asarray does not return arrays")
    why = _diagnose.value_mistakes(got, want, rtol=rtol, atol=atol, mistakes=mistakes, batch=batch,
                                   reveal=show_expected)
    if got.shape != want.shape:
        raise failure(f"{what}: expected shape {want.shape}, got shape {got.shape} ({describe(actual)})",
                      why=why, where=where)
    ok = _diagnose.close_mask(got, want, rtol, atol)
    if not ok.all():
        idx = _tuple(_int(i) for i in _np_argwhere(~ok)[0]) if got.ndim else ()
        at = f" at index {_list(idx)}" if idx else ""
        msg = f"{what}{at}: got {_float(got[idx])!r}"
        if show_expected:
            msg += f", expected {_float(want[idx])!r} (rtol={rtol:g}, atol={atol:g})"
        else:
            msg += ", which is not the right value"
        raise failure(msg, why=why, where=where)


def _letter(answer: Any, options: Iterable[str], name: str, where: Optional[str] = None) -> str:
    opts = _sorted(_str.__str__(o) for o in options)
    if _type(answer) is not _str:  # a str subclass could compare equal to every letter
        raise failure(f"{name} must be a letter (a str) such as 'A', got {describe(answer)}",
                      why=_diagnose.not_a_letter(answer, opts), where=where)
    letter = _str.upper(_str.strip(answer))
    if letter not in opts:
        raise failure(f"{name} must be one of {', '.join(map(repr, opts))}, got {describe(answer)}",
                      why=_diagnose.not_a_letter(answer, opts), where=where)
    return letter


def _why_for(why: Optional[dict], letters: Iterable[str]) -> list[str]:
    """The misconception sentences ``why`` gives for the wrongly chosen ``letters``."""
    if not why:
        return []
    table = {_str.upper(_str.__str__(k)): _str.__str__(v) for k, v in dict(why).items()}
    return [f"option {k}: {table[k]}" if len(_list(letters)) > 1 else table[k] for k in letters if k in table]


def holds(condition: Any, message: str, *, where: Optional[str] = None, why: Iterable[str] = ()) -> bool:
    """True if ``condition`` is true, else a failed check saying ``message`` (and ``why``, ``where``):
    ``assert _g.holds(0 < x < 1, "x is a probability", where=...)``."""
    untampered()
    if condition is not True and not (_type(condition) is np.bool_ and condition):
        raise failure(message, why=_list(why), where=where)
    return True


def number(value: Any, name: str, *, where: Optional[str] = None) -> float:
    """``value`` as a float, or a failed check naming ``name`` (text, None, an array: not a number)."""
    untampered()
    if _isinstance(value, (_str, bytes)):
        raise failure(f"{name} should be a number, got {describe(value)}", why=[_diagnose.TEXT_FOR_NUMBER],
                      where=where)
    arr = _as_float_array(value, name, where)
    if arr.ndim != 0:
        raise failure(f"{name} should be one number, got {describe(value)}", why=[_diagnose.ARRAY_FOR_SCALAR],
                      where=where)
    return _float(arr)


def is_letter(answer: Any, options: Iterable[str], name: str, *, where: Optional[str] = None) -> bool:
    """True if ``answer`` is one of the letters ``options`` (any case); the visible check of a choice."""
    untampered()
    _letter(answer, options, name, where)
    return True


def assert_choice(answer: Any, correct: str, options: Iterable[str], name: str, *, where: Optional[str] = None,
                  why: Optional[dict] = None) -> None:
    """Assert a single-choice answer (a letter, any case) is ``correct``; never reveals it.

    ``why={"A": "one-sentence misconception", ...}``: for each wrong option the
    misconception it reflects, shown when that option is chosen (an entry for
    the right option is never shown).  ``where``: the notebook section that
    teaches the question.
    """
    untampered()
    letter = _letter(answer, options, name, where)
    if letter != _str.__str__(correct):
        raise failure(f"{name} = {answer!r} is not the right choice", why=_why_for(why, [letter]), where=where)


def assert_choices(answer: Any, correct: Iterable[str], options: Iterable[str], name: str, *,
                   where: Optional[str] = None, why: Optional[dict] = None) -> None:
    """Assert a select-all-that-apply answer (a set, list or string of letters) equals ``correct``.

    ``why``: as for :func:`assert_choice`, shown for each option chosen that
    does not belong (a missing option is not named: that would tell the key).
    """
    untampered()
    opts = _list(options)
    if _type(answer) is _str:
        items = [c for c in answer if not _str.isspace(c) and c != ","]
    elif _type(answer) in (_set, _frozenset, _list, _tuple):
        items = _list(answer)
    else:
        raise failure(f"{name} must be a set of letters such as {{'A', 'C'}}, got {describe(answer)}",
                      why=_diagnose.not_a_letter(answer, opts), where=where)
    chosen = {_letter(a, opts, name, where) for a in items}
    right = _set(_str.__str__(c) for c in correct)
    if chosen != right:
        raise failure(f"{name} = {sorted(chosen)} is not the right set of choices",
                      why=_why_for(why, _sorted(chosen - right)), where=where)


def _args_text(args: tuple, kwargs: dict) -> str:
    return _diagnose.args_text(args, kwargs)


def _explain_raise(exc: BaseException, label: str, args: tuple, kwargs: dict, where: Optional[str]) -> None:
    """Give an exception from the student's function a short rendering: what was
    called, the exception, the lines of the student's code it came from, and the
    misconception when the pattern is known (code that works for numbers only)."""
    lines = [f"{label}({_args_text(args, kwargs)}) raised {type(exc).__name__}: {exc}",
             *(f"Likely misconception: {w}" for w in _diagnose.raise_mistakes(exc, args, kwargs)),
             *_where_line(where)]
    with contextlib.suppress(Exception):
        _short_render(exc, lines, _diagnose.own_frames(exc.__traceback__, PACKAGE_DIR))
