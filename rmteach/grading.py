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
        arr = np.asarray(value, dtype=np.float64)
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
    got = _as_float_array(actual, what)
    want = np.asarray(expected, dtype=np.float64)
    if got.shape != want.shape:
        raise AssertionError(f"{what}: expected shape {want.shape}, got shape {got.shape} ({_describe(actual)})")
    both_nan = np.isnan(got) & np.isnan(want)
    same = got == want  # equal infinities (and exact hits)
    with np.errstate(invalid="ignore", over="ignore"):
        near = np.abs(got - want) <= atol + rtol * np.abs(want)
    ok = both_nan | same | near
    if not np.all(ok):
        idx = tuple(int(i) for i in np.argwhere(~ok)[0]) if got.ndim else ()
        where = f" at index {list(idx)}" if idx else ""
        msg = f"{what}{where}: got {float(got[idx])!r}"
        if show_expected:
            msg += f", expected {float(want[idx])!r} (rtol={rtol:g}, atol={atol:g})"
        else:
            msg += ", which is not the right value"
        raise AssertionError(msg)


def _letter(answer: Any, options: Iterable[str], name: str) -> str:
    opts = sorted(options)
    if not isinstance(answer, str) or answer.strip().upper() not in opts:
        raise AssertionError(f"{name} must be one of {', '.join(map(repr, opts))}, got {_describe(answer)}")
    return answer.strip().upper()


def assert_choice(answer: Any, correct: str, options: Iterable[str], name: str) -> None:
    """Assert a single-choice answer (a letter, any case) is ``correct``; never reveals it."""
    if _letter(answer, options, name) != correct:
        raise AssertionError(f"{name} = {answer!r} is not the right choice")


def assert_choices(answer: Any, correct: Iterable[str], options: Iterable[str], name: str) -> None:
    """Assert a select-all-that-apply answer (a set, list or string of letters) equals ``correct``."""
    opts = list(options)
    if isinstance(answer, str):
        items = [c for c in answer if not c.isspace() and c != ","]
    elif isinstance(answer, (set, frozenset, list, tuple)):
        items = list(answer)
    else:
        raise AssertionError(f"{name} must be a set of letters such as {{'A', 'C'}}, got {_describe(answer)}")
    chosen = {_letter(a, opts, name) for a in items}
    if chosen != set(correct):
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


_PLUGINS = {
    "RestoreDeletedCells": _build_restore_deleted_cells,
    "HideHiddenTestTracebacks": _build_hide_hidden_test_tracebacks,
}


def __getattr__(name: str):  # module attribute: nbgrader imports the plug-ins by name
    if name in _PLUGINS:
        cls = _PLUGINS[name]()
        cls.__module__ = __name__
        globals()[name] = cls
        return cls
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
