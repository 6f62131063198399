r"""Grading helpers for the nbgrader course in ``assignments/``: one module, two jobs.

1. **Checks that test cells call** (inside the student's kernel).  A test cell does::

       from rmteach import grading as _g
       _g.assert_close(_g.call(ranking_loss, r_pref, r_rej), _rm.ranking_loss(r_pref, r_rej),
                       "ranking_loss on 200 random pairs")

   :func:`call` runs the student's function with every ``rmteach`` function
   turned into a tripwire, after :func:`own_function` has checked statically
   that it is a function defined in the notebook whose code, globals, closures
   and defaults reach no ``rmteach`` object: an implement-it exercise answered
   with ``rmteach``'s own code gets no credit.  :func:`assert_close`,
   :func:`assert_choice` and :func:`assert_choices` compare answers with keys
   that the test cell computes with ``rmteach``; their messages never name the
   right choice.  This half imports only the standard library and NumPy.

2. **nbgrader plug-ins**, named in ``assignments/nbgrader_config.py``:
   ``RestoreDeletedCells`` (autograde: put back every cell the instructor wrote
   that a student deleted, where it belongs) and ``HideHiddenTestTracebacks``
   (feedback: drop the traceback lines that would quote a hidden test).  They
   subclass nbgrader classes, so they are built on first use (module
   ``__getattr__``) and a test cell never pays for importing nbconvert.

The instructor pipeline (release, autograde in parallel, feedback, grades)
lives in :mod:`rmteach.autograde`; the Makefile calls ``python -m rmteach.autograde``.
"""

from __future__ import annotations

import builtins
import contextlib
import copy
import importlib.abc
import io
import json
import os
import re
import sys
import types
import warnings
from pathlib import Path
from typing import Any, Iterable, Iterator, Optional

import numpy as np

__all__ = [
    "NotOwnWork",
    "own_function",
    "call",
    "assert_close",
    "assert_choice",
    "assert_choices",
    "assert_raises",
    "close",
    "choice_is",
    "choices_are",
    "raises",
    "copy_course",
    "course_assignments",
    "validate_notebook",
    "generate_assignments",
    "build_submission",
    "write_submission",
    "expected_auto_score",
    "run_nbgrader",
    "autograde",
    "generate_feedback",
    "grade_rows",
    "write_csv",
    "format_table",
    "demo",
    "main",
]

PACKAGE_DIR = Path(__file__).resolve().parent
REPO_COURSE = PACKAGE_DIR.parent / "assignments"
_RMTEACH_NAME = re.compile(r"^rmteach(\.|$)")


def _is_rmteach_name(name: Any) -> bool:
    return isinstance(name, str) and bool(_RMTEACH_NAME.match(name))


def _describe(value: Any) -> str:
    text = repr(value)
    if len(text) > 70:
        text = text[:67] + "..."
    return f"{type(value).__name__} {text}"


# ==========================================================================
# 1. checks for test cells
# ==========================================================================


# -- tamper checks -------------------------------------------------------------
#
# Student code runs in the same kernel as the tests.  A cell that replaces what
# the tests rely on (``builtins.abs = ...``, ``np.isclose = lambda *a, **k: True``,
# ``rmteach.grading.assert_close = ...``, ``rmteach.numpy.ranking_loss = ...``, an
# IPython input transformer) could make wrong answers pass.  At autograde time the
# ``GuardTestCells`` plug-in adds a first cell that imports this module before any
# student code runs (so the snapshot below holds the originals) and a first line
# to every test cell that calls :func:`untampered`; every check calls it too.  A
# replaced object fails the check with "tampering detected: ...".  The checks use
# the originals captured here, never the module attributes a student can rebind.

_SNAPSHOT_MODULES = ("builtins", "math", "numpy", "numpy.testing", "numpy.linalg", "numpy.random")
_snapshot: dict[str, Any] = {}

# the originals the checks use (captured when this module is first imported)
_np_asarray, _np_isnan, _np_abs, _np_all, _np_argwhere, _np_shape = (
    np.asarray, np.isnan, np.abs, np.all, np.argwhere, np.shape)
_np_errstate, _np_float64, _np_ndarray = np.errstate, np.float64, np.ndarray
_str, _set, _sorted, _isinstance, _len, _tuple, _float, _int, _repr, _type = (
    str, set, sorted, isinstance, len, tuple, float, int, repr, type)
_frozenset, _list, _getattr, _vars, _id = frozenset, list, getattr, vars, id


class Tampering(AssertionError):
    """Student code replaced something the tests rely on: the check fails."""


def _ipython_state() -> dict[str, Any]:
    ip_mod = sys.modules.get("IPython")
    get = _getattr(ip_mod, "get_ipython", None) if ip_mod else None
    ip = get() if callable(get) else None
    if ip is None:
        return {}
    state: dict[str, Any] = {"shell": ip}
    for attr in ("input_transformers_cleanup", "input_transformers_post", "ast_transformers"):
        state[attr] = _tuple(_getattr(ip, attr, ()) or ())
    state["custom_exceptions"] = _getattr(ip, "custom_exceptions", ())
    for attr in ("run_cell", "run_cell_async", "run_ast_nodes", "run_code", "transform_cell",
                 "showtraceback", "_showtraceback", "should_run_async"):
        state[f"method {attr}"] = (_vars(ip).get(attr), _vars(_type(ip)).get(attr) if attr in _vars(_type(ip)) else
                                   _getattr(_type(ip), attr, None))
    return state


def _take_snapshot() -> None:
    """Record the objects the tests rely on (modules' attributes, function code,
    ``sys.modules`` entries, the IPython shell's hooks)."""
    mods = {name: sys.modules[name] for name in _SNAPSHOT_MODULES if name in sys.modules}
    mods.update({name: m for name, m in sys.modules.items() if m is not None and _is_rmteach_name(name)})
    attrs = {}
    for modname, module in mods.items():
        for key, value in _list(_vars(module).items()):
            if key.startswith("__") and key.endswith("__") and key not in ("__import__", "__build_class__"):
                continue
            code = value.__code__ if _isinstance(value, types.FunctionType) else None
            defaults = value.__defaults__ if code is not None else None
            attrs[(modname, key)] = (value, code, defaults)
    _snapshot.clear()
    _snapshot.update(modules=mods, attrs=attrs, main=sys.modules.get("__main__"), ipython=_ipython_state(), trace=(sys.gettrace(), sys.getprofile()),
                     builtins=dict(_vars(builtins)))


def arm() -> None:
    """Import everything the tests use and record the originals: the first cell
    the ``GuardTestCells`` plug-in adds at autograde time calls this before any
    student code runs."""
    import importlib

    for name in ("rmteach.numpy", "rmteach.gradcheck", "numpy.testing", "numpy.linalg", "numpy.random"):
        with contextlib.suppress(ImportError):
            importlib.import_module(name)
    _take_snapshot()


def tampering(names: Iterable[str] = (), modules: Optional[dict] = None) -> list[str]:
    """What student code replaced since the snapshot, as readable phrases (empty: nothing).

    ``names`` and ``modules``: the builtin names and module aliases a test cell
    uses; a notebook that rebinds one of those in its globals (``bool = lambda x:
    True``, ``np = fake``) is listed too (the test cell would use the student's).
    """
    modules = modules or {}
    if not _snapshot:
        _take_snapshot()
    found: list[str] = []
    gone = object()
    for modname, module in _snapshot["modules"].items():
        if sys.modules.get(modname) is not module:
            found.append(f"sys.modules[{modname!r}] was replaced")
    for (modname, key), (value, code, defaults) in _snapshot["attrs"].items():
        if modname == "builtins" and key in _IPYTHON_BUILTINS:
            continue
        now = _vars(_snapshot["modules"][modname]).get(key, gone)
        if now is gone:
            found.append(f"{modname}.{key} was deleted")
        elif now is not value:
            found.append(f"{modname}.{key} was replaced")
        elif code is not None and (value.__code__ is not code or value.__defaults__ is not defaults):
            found.append(f"the code of {modname}.{key} was replaced")
        if len(found) >= 3:
            break
    shell_now = _ipython_state() if _snapshot.get("ipython") else {}
    for key, value in _snapshot.get("ipython", {}).items():
        if key != "shell" and shell_now.get(key) != value:
            found.append(f"the IPython shell's {key} changed (cells would not run as written)")
    if (sys.gettrace(), sys.getprofile()) != _snapshot["trace"]:
        found.append("a trace or profile function was installed (sys.settrace/setprofile)")
    main = sys.modules.get("__main__")
    if main is not _snapshot["main"]:
        found.append("sys.modules['__main__'] was replaced")
    namespace = _vars(main) if main is not None else {}
    originals = _snapshot["builtins"]
    for name in names:
        if name in namespace and namespace[name] is not originals.get(name, _MISSING):
            found.append(f"the notebook redefines the builtin {name!r} ({_describe(namespace[name])}), which the tests use")
    for alias, modname in dict(modules).items():
        if alias in namespace and namespace[alias] is not _snapshot["modules"].get(modname, sys.modules.get(modname)):
            found.append(f"the notebook rebinds {alias!r} ({_describe(namespace[alias])}), which the tests use as the module {modname}")
    return found


def untampered(names: Iterable[str] = (), modules: Optional[dict] = None) -> bool:
    """Raise :class:`Tampering` if student code replaced what the tests rely on; else True.

    ``names``: builtin names the calling test cell uses, ``modules``: its module
    aliases (``{"np": "numpy"}``); the notebook must not have rebound them.
    """
    found = tampering(names, modules or {})
    if found:
        raise Tampering(
            "tampering detected: " + "; ".join(found[:3]) + (" ..." if len(found) > 3 else "")
            + ". The tests cannot be trusted in this kernel, so this check gets no points."
        )
    return True


_MISSING = object()
# names IPython and ipykernel (re)bind in builtins around each cell (input: stdin forwarding)
_IPYTHON_BUILTINS = frozenset({"_", "__", "___", "exit", "quit", "get_ipython", "display", "__IPYTHON__", "input",
                               "help", "copyright", "credits", "license", "dreload"})


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
        return f"the module {name}" if _is_rmteach_name(name) else None
    if isinstance(obj, types.CodeType):
        return f"the code of {obj.co_name} in rmteach" if _inside_package(obj.co_filename) else None
    if isinstance(obj, str):
        return f"the name {obj!r}" if _is_rmteach_name(obj) else None
    try:
        module = getattr(obj, "__module__", None)
    except Exception:  # an object whose attribute access raises: not rmteach's
        module = None
    if _is_rmteach_name(module):
        return f"{module}.{getattr(obj, '__qualname__', getattr(obj, '__name__', type(obj).__name__))}"
    if _is_rmteach_name(getattr(type(obj), "__module__", None)):
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
                    if isinstance(const, str) and _is_rmteach_name(const):
                        found.append(f"{path} uses the string {const!r}")
                for name in code.co_names:
                    if _is_rmteach_name(name):
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
            f"{name} must be a function you define with def in this notebook, got {_describe(func)}{why}"
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
        if _is_rmteach_name(fullname):
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
            if module is None or not _is_rmteach_name(modname) or modname == __name__:
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
    raise AssertionError(f"{label} should raise {exc_type.__name__}, but returned {_describe(result)}")


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
        raise AssertionError(f"{what} should be a number or an array of numbers, got {_describe(value)}") from None
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
        raise AssertionError(f"{what}: expected shape {want.shape}, got shape {got.shape} ({_describe(actual)})")
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
        raise AssertionError(f"{name} must be a letter (a str) such as 'A', got {_describe(answer)}")
    letter = _str.upper(_str.strip(answer))
    if letter not in opts:
        raise AssertionError(f"{name} must be one of {', '.join(map(repr, opts))}, got {_describe(answer)}")
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
        raise AssertionError(f"{name} must be a set of letters such as {{'A', 'C'}}, got {_describe(answer)}")
    chosen = {_letter(a, opts, name) for a in items}
    if chosen != _set(_str.__str__(c) for c in correct):
        raise AssertionError(f"{name} = {sorted(chosen)} is not the right set of choices")


# ==========================================================================
# 2. nbgrader plug-ins (built on first use: they subclass nbgrader classes)
# ==========================================================================

HIDDEN_BEGIN = "### BEGIN HIDDEN TESTS"
HIDDEN_END = "### END HIDDEN TESTS"
_ANSI = re.compile(r"\x1b\[[0-9;]*[A-Za-z]")


def _build_restore_deleted_cells():
    from nbformat.notebooknode import NotebookNode
    from nbgrader.coursedir import CourseDirectory
    from nbgrader.preprocessors import OverwriteCells

    class RestoreDeletedCells(OverwriteCells):
        """OverwriteCells that puts back *every* cell the instructor wrote.

        nbgrader's own ``add_missing_cells`` re-adds deleted grade cells after
        the previous grade or solution cell and fails (KeyError) when that cell
        is a locked instruction cell or was deleted too.  This version walks
        the source notebook's cells in order and inserts each missing one (test
        cells with their hidden tests, locked set-up cells, answer cells as
        their empty stub) right after the nearest earlier cell still present.
        Answer cells come back with the release stub, never the model answer.
        """

        def _source_order(self, db_names: list[str]) -> list[str]:
            try:
                coursedir = CourseDirectory(config=self.config)
                folder = Path(coursedir.format_path(coursedir.source_directory, ".", self.assignment_id))
                import nbformat

                nb = nbformat.read(folder / f"{self.notebook_id}.ipynb", as_version=4)
                order = [c.metadata["nbgrader"]["grade_id"] for c in nb.cells if "grade_id" in c.metadata.get("nbgrader", {})]
                if set(order) >= set(db_names):
                    return [n for n in order if n in set(db_names)]
            except Exception as exc:  # no source notebook: fall back on the database's order
                self.log.warning("cell order from the database (%s)", exc)
            return db_names

        def _restored_cell(self, source_cell, grade_cell, solution: bool) -> NotebookNode:
            note = self.missing_cell_notification.format(cell_id=source_cell.name)
            meta = {
                "grade": grade_cell is not None,
                "grade_id": source_cell.name,
                "locked": bool(source_cell.locked),
                "schema_version": 3,
                "solution": solution,
                "task": False,
                "checksum": source_cell.checksum,
                "cell_type": source_cell.cell_type,
            }
            if grade_cell is not None:
                meta["points"] = float(grade_cell.max_score)
            cell = {"cell_type": source_cell.cell_type, "metadata": {"nbgrader": meta}, "source": source_cell.source}
            if not solution:
                cell["metadata"].update(deletable=False, editable=False)
            if source_cell.cell_type == "code":
                cell.update(outputs=[], execution_count=None)
                # a comment line: the code below it is the instructor's, unchanged
                cell["source"] = "# " + note.strip() + "\n" + source_cell.source
            elif not solution:
                cell["source"] = note + source_cell.source
            return NotebookNode(cell)

        def add_missing_grade_cells(self, nb, resources):
            source_nb = self.gradebook.find_notebook(self.notebook_id, self.assignment_id)
            sources = {c.name: c for c in source_nb.source_cells}
            grades = {c.name: c for c in source_nb.grade_cells}
            solutions = {c.name for c in source_nb.solution_cells}
            order = self._source_order(list(sources))
            anchor = -1  # insert after this index
            for name in order:
                present = [
                    i for i, c in enumerate(nb.cells)
                    if c.metadata.get("nbgrader", {}).get("grade_id") == name
                ]
                if present:
                    anchor = present[0]
                    continue
                self.log.warning("Cell %s was deleted from the submission: putting it back", name)
                cell = self._restored_cell(sources[name], grades.get(name), name in solutions)
                nb.cells.insert(anchor + 1, cell)
                anchor += 1
            return nb, resources

    return RestoreDeletedCells


def _build_hide_hidden_test_tracebacks():
    from nbgrader.preprocessors import NbGraderPreprocessor

    class HideHiddenTestTracebacks(NbGraderPreprocessor):
        """Feedback: in a test cell with hidden tests, drop the traceback frames
        of the cell itself (they quote the hidden code).  The error's name and
        message stay, as do frames in the student's own cells and in libraries.
        Runs before ClearHiddenTests, which removes the hidden code from the
        cell's source.
        """

        def preprocess_cell(self, cell, resources, index):
            if cell.cell_type != "code" or HIDDEN_BEGIN not in cell.source:
                return cell, resources
            own = f"Cell In[{cell.get('execution_count')}]"
            for out in cell.get("outputs", []):
                if out.get("output_type") != "error":
                    continue
                kept = []
                for entry in out.get("traceback", []):
                    plain = _ANSI.sub("", entry)
                    if own in plain or HIDDEN_BEGIN in plain or HIDDEN_END in plain:
                        continue
                    kept.append(entry)
                kept.insert(0, "(lines of this test cell are not shown: it holds hidden tests)")
                out["traceback"] = kept
            return cell, resources

    return HideHiddenTestTracebacks


GUARD_CELL = (
    "import rmteach.grading as _rmteach_guard; _rmteach_guard.arm()"
    "  # added at grading, before any student code: records the originals the tests rely on"
)
GUARD_LINE = (
    "import rmteach.grading as _rmteach_guard; _rmteach_guard.untampered({names!r}, {modules!r})"
    "  # added at grading: nothing the tests use was replaced"
)


def _module_aliases(source: str) -> dict[str, str]:
    """``{alias: module}`` of the ``import X`` / ``import X as Y`` statements of a cell."""
    import ast

    try:
        tree = ast.parse(source)
    except SyntaxError:
        return {}
    out = {}
    for node in tree.body:
        if isinstance(node, ast.Import):
            for a in node.names:
                if a.asname:
                    out[a.asname] = a.name
                else:
                    out[a.name.split(".")[0]] = a.name.split(".")[0]
    return out


def guard_names(source: str, aliases: dict[str, str]) -> tuple[list[str], dict[str, str]]:
    """The builtin names and module aliases a test cell reads without binding them itself."""
    import ast

    try:
        tree = ast.parse(source)
    except SyntaxError:
        return [], {}
    loads = {n.id for n in ast.walk(tree) if isinstance(n, ast.Name) and isinstance(n.ctx, ast.Load)}
    binds = {n.id for n in ast.walk(tree) if isinstance(n, ast.Name) and not isinstance(n.ctx, ast.Load)}
    for node in ast.walk(tree):
        if isinstance(node, (ast.Import, ast.ImportFrom)):
            binds.update((a.asname or a.name).split(".")[0] for a in node.names)
        elif isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef)):
            binds.add(node.name)
        elif isinstance(node, ast.arg):
            binds.add(node.arg)
    free = loads - binds
    names = sorted(n for n in free if n in vars(builtins) and n not in _IPYTHON_BUILTINS)
    modules = {a: m for a, m in sorted(aliases.items()) if a in free}
    return names, modules


def _build_guard_test_cells():
    from nbformat.notebooknode import NotebookNode
    from nbgrader.preprocessors import NbGraderPreprocessor

    class GuardTestCells(NbGraderPreprocessor):
        """Autograde (after the cells are restored): tamper checks around student code.

        Adds a first code cell that imports :mod:`rmteach.grading` before any
        student code runs (:func:`arm` records the originals of builtins,
        NumPy, math and rmteach), and a first line to every autograded test
        cell that calls :func:`untampered` with the builtin names and module
        aliases (``np``) the cell reads: a notebook that replaced or rebound
        one of them fails that test cell with "tampering detected: ...".
        """

        def preprocess(self, nb, resources):
            def meta(cell):
                return cell.metadata.get("nbgrader", {})

            aliases: dict[str, str] = {}
            for cell in nb.cells:
                m = meta(cell)
                if cell.cell_type == "code" and m.get("locked") and not m.get("grade") and not m.get("solution"):
                    aliases.update(_module_aliases(cell.source))
            guarded = 0
            for cell in nb.cells:
                m = meta(cell)
                if cell.cell_type == "code" and m.get("grade") and not m.get("solution"):
                    names, modules = guard_names(cell.source, aliases)
                    cell.source = GUARD_LINE.format(names=tuple(names), modules=modules) + "\n" + cell.source
                    guarded += 1
            guard = {"cell_type": "code", "metadata": {"rmteach": {"guard": True}}, "source": GUARD_CELL,
                     "outputs": [], "execution_count": None}
            if any("id" in c for c in nb.cells):
                guard["id"] = "rmteach-tamper-guard"
            nb.cells.insert(0, NotebookNode(guard))
            self.log.debug("tamper checks added to %d test cell(s)", guarded)
            return nb, resources

    return GuardTestCells


def _build_limit_output_size():
    from nbgrader.preprocessors import LimitOutput
    from traitlets import Integer

    class LimitOutputSize(LimitOutput):
        """nbgrader's ``LimitOutput`` (at most ``max_lines`` lines per cell) plus
        at most ``max_chars`` characters of text output per cell, so one giant
        line (or 50 MB of print) cannot bloat the graded notebook, the feedback
        and the gradebook.  Logs a warning naming the cell and the size."""

        max_chars = Integer(100_000, help="maximum characters of text output per cell (-1: no limit)").tag(config=True)

        def preprocess_cell(self, cell, resources, index):
            before = _output_chars(cell)
            cell, resources = super().preprocess_cell(cell, resources, index)
            if cell.cell_type == "code" and self.max_chars >= 0:
                budget = self.max_chars
                for out in cell.get("outputs", []):
                    texts = [("text", out)] if "text" in out else []
                    texts += [(k, out["data"]) for k in out.get("data", {}) if isinstance(out["data"][k], str)]
                    for key, holder in texts:
                        text = holder[key] if isinstance(holder[key], str) else "".join(holder[key])
                        if len(text) > budget:
                            holder[key] = text[: max(budget, 0)] + "\n... output truncated (rmteach: too many characters) ..."
                        budget -= min(len(text), budget)
            if before > self.max_chars >= 0:
                # rmteach.submissions.cell_report reads this back for the grading log
                cell.metadata["rmteach"] = {"output_chars": before, "max_lines": self.max_lines,
                                            "max_chars": self.max_chars}
                info = resources.get("nbgrader", {})
                gid = cell.metadata.get("nbgrader", {}).get("grade_id", f"cell {index + 1}")
                self.log.warning(
                    "%s/%s: %s printed %.1f MB of output: kept the first %d lines / %d characters",
                    info.get("student", "?"), info.get("notebook", "?"), gid, before / 1e6,
                    self.max_lines, self.max_chars,
                )
            return cell, resources

    return LimitOutputSize


def _output_chars(cell) -> int:
    total = 0
    for out in cell.get("outputs", []) if cell.get("cell_type") == "code" else []:
        if "text" in out:
            total += len(out["text"]) if isinstance(out["text"], str) else sum(map(len, out["text"]))
        for value in out.get("data", {}).values():
            if isinstance(value, str):
                total += len(value)
    return total


_PLUGINS = {
    "RestoreDeletedCells": _build_restore_deleted_cells,
    "HideHiddenTestTracebacks": _build_hide_hidden_test_tracebacks,
    "GuardTestCells": _build_guard_test_cells,
    "LimitOutputSize": _build_limit_output_size,
}


def __getattr__(name: str):  # module attribute: nbgrader imports the plug-ins by name
    if name in _PLUGINS:
        cls = _PLUGINS[name]()
        cls.__module__ = __name__
        globals()[name] = cls
        return cls
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


_take_snapshot()  # last: every function of this module is defined (see "tamper checks")
