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

from rmteach.grading.tamper import (
    _float, _frozenset, _int, _list, _np_argwhere, _np_asarray, _np_errstate, _np_float64, _np_ndarray, _set,
    _sorted, _str, _tuple, _type, Tampering, describe, is_rmteach_name, untampered,
)

PACKAGE_DIR = Path(__file__).resolve().parents[1]  # rmteach/
#: the modules of the checks themselves: never turned into tripwires
_CHECK_MODULES = frozenset({"rmteach.grading", "rmteach.grading.checks", "rmteach.grading.tamper"})


class NotOwnWork(AssertionError):
    """An implement-it answer that uses ``rmteach``'s own code (no credit)."""


class _ReferenceCalled(BaseException):
    """Raised by a tripwire; a BaseException so ``except Exception`` cannot swallow it."""


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


def call(func: Any, *args: Any, name: Optional[str] = None, **kwargs: Any) -> Any:
    """Run the student's ``func(*args, **kwargs)`` and return its result, if it is own work.

    Checks :func:`own_function` first, then runs ``func`` on copies of the
    arguments (so it cannot change the test's data) with every rmteach function
    turned into a tripwire.  Raises :class:`NotOwnWork` if ``func`` reaches
    rmteach either way.  Warnings the function emits are listed on stdout (a
    note, not a failure; numerical consequences are what the tests check).
    """
    label = name or getattr(func, "__name__", "the function")
    untampered()
    own_function(func, label)
    args = tuple(_copy_arg(a) for a in args)
    kwargs = {k: _copy_arg(v) for k, v in kwargs.items()}
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        with _tripwires() as hits:
            try:
                result = func(*args, **kwargs)
            except _ReferenceCalled:
                result = None
    if hits:
        raise NotOwnWork(
            f"{label} called rmteach ({hits[0]}): an implement-it exercise answered with "
            "rmteach's own code gets no credit. Write the formula yourself (NumPy and math are fine)."
        )
    untampered()  # the function itself may have patched what the checks rely on
    seen = set()
    for w in caught:
        text = f"{w.category.__name__}: {w.message}"
        if text not in seen:
            seen.add(text)
            print(f"note: {label} emitted {text}")
    return result


def assert_raises(exc_type: type, func: Any, *args: Any, name: Optional[str] = None, **kwargs: Any) -> None:
    """Assert the student's ``func(*args, **kwargs)`` raises ``exc_type`` (run as :func:`call` runs it)."""
    label = name or getattr(func, "__name__", "the function")
    try:
        result = call(func, *args, name=label, **kwargs)
    except NotOwnWork:
        raise
    except exc_type:
        return
    except Exception as exc:
        raise AssertionError(f"{label} should raise {exc_type.__name__}, but raised {type(exc).__name__}: {exc}") from None
    raise AssertionError(f"{label} should raise {exc_type.__name__}, but returned {describe(result)}")


# The same checks as booleans, so that a test cell can end in a plain ``assert``
# (a cell ending in an expression would be read as partial credit): each returns
# True or raises AssertionError with the message above.


def close(actual: Any, expected: Any, what: str, **kwargs: Any) -> bool:
    """:func:`assert_close`, returning True: ``assert _g.close(got, want, "what")``."""
    assert_close(actual, expected, what, **kwargs)
    return True


def choice_is(answer: Any, correct: str, options: Iterable[str], name: str) -> bool:
    """:func:`assert_choice`, returning True."""
    assert_choice(answer, correct, options, name)
    return True


def choices_are(answer: Any, correct: Iterable[str], options: Iterable[str], name: str) -> bool:
    """:func:`assert_choices`, returning True."""
    assert_choices(answer, correct, options, name)
    return True


def raises(exc_type: type, func: Any, *args: Any, **kwargs: Any) -> bool:
    """:func:`assert_raises`, returning True."""
    assert_raises(exc_type, func, *args, **kwargs)
    return True


def _as_float_array(value: Any, what: str) -> np.ndarray:
    try:
        arr = _np_asarray(value, dtype=_np_float64)
    except (TypeError, ValueError):
        raise AssertionError(f"{what} should be a number or an array of numbers, got {describe(value)}") from None
    return arr


def assert_close(
    actual: Any,
    expected: Any,
    what: str,
    rtol: float = 1e-9,
    atol: float = 0.0,
    show_expected: bool = True,
) -> None:
    """Assert ``actual`` equals ``expected`` elementwise within ``atol + rtol*|expected|``.

    Shapes must match (a scalar for a scalar, ``(B,)`` for ``(B,)``); NaN
    matches NaN and an infinity matches the same infinity.  The message names
    ``what``, the first bad index and the value got; the expected value too
    unless ``show_expected=False`` (for numeric answers, where it is the key).
    """
    untampered()
    # only the originals captured at import, ndarray methods and operators from here on
    got = _as_float_array(actual, what)
    want = _np_asarray(expected, dtype=_np_float64)
    if _type(got) is not _np_ndarray or _type(want) is not _np_ndarray:
        raise Tampering("tampering detected: numpy.asarray does not return arrays")
    if got.shape != want.shape:
        raise AssertionError(f"{what}: expected shape {want.shape}, got shape {got.shape} ({describe(actual)})")
    both_nan = (got != got) & (want != want)
    same = got == want  # equal infinities (and exact hits)
    with _np_errstate(invalid="ignore", over="ignore"):
        near = (got - want).__abs__() <= atol + rtol * want.__abs__()
    ok = both_nan | same | near
    if not ok.all():
        idx = _tuple(_int(i) for i in _np_argwhere(~ok)[0]) if got.ndim else ()
        where = f" at index {_list(idx)}" if idx else ""
        msg = f"{what}{where}: got {_float(got[idx])!r}"
        if show_expected:
            msg += f", expected {_float(want[idx])!r} (rtol={rtol:g}, atol={atol:g})"
        else:
            msg += ", which is not the right value"
        raise AssertionError(msg)


def _letter(answer: Any, options: Iterable[str], name: str) -> str:
    opts = _sorted(_str.__str__(o) for o in options)
    if _type(answer) is not _str:  # a str subclass could compare equal to every letter
        raise AssertionError(f"{name} must be a letter (a str) such as 'A', got {describe(answer)}")
    letter = _str.upper(_str.strip(answer))
    if letter not in opts:
        raise AssertionError(f"{name} must be one of {', '.join(map(repr, opts))}, got {describe(answer)}")
    return letter


def assert_choice(answer: Any, correct: str, options: Iterable[str], name: str) -> None:
    """Assert a single-choice answer (a letter, any case) is ``correct``; never reveals it."""
    untampered()
    if _letter(answer, options, name) != _str.__str__(correct):
        raise AssertionError(f"{name} = {answer!r} is not the right choice")


def assert_choices(answer: Any, correct: Iterable[str], options: Iterable[str], name: str) -> None:
    """Assert a select-all-that-apply answer (a set, list or string of letters) equals ``correct``."""
    untampered()
    opts = _list(options)
    if _type(answer) is _str:
        items = [c for c in answer if not _str.isspace(c) and c != ","]
    elif _type(answer) in (_set, _frozenset, _list, _tuple):
        items = _list(answer)
    else:
        raise AssertionError(f"{name} must be a set of letters such as {{'A', 'C'}}, got {describe(answer)}")
    chosen = {_letter(a, opts, name) for a in items}
    if chosen != _set(_str.__str__(c) for c in correct):
        raise AssertionError(f"{name} = {sorted(chosen)} is not the right set of choices")
