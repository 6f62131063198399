r"""Grading helpers for the nbgrader course in ``assignments/``: one module, three jobs.

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

3. **The instructor pipeline** and its CLI, which the Makefile calls::

       python -m rmteach.grading assignments [--course DIR]   # validate sources, release, validate --invert
       python -m rmteach.grading autograde   [--course DIR] [--force]
       python -m rmteach.grading feedback    [--course DIR]
       python -m rmteach.grading grades      [--course DIR] [--csv FILE]
       python -m rmteach.grading demo        [--keep DIR]  # three made-up students, whole pipeline

   Small composable functions (:func:`copy_course`, :func:`build_submission`,
   :func:`run_nbgrader`, :func:`grade_rows`, ...) do the work; nbgrader runs as a
   subprocess with an explicit course root (``--CourseDirectory.root``).
"""

from __future__ import annotations

import argparse
import ast
import builtins
import contextlib
import copy
import csv
import importlib.abc
import io
import json
import os
import re
import shutil
import subprocess
import sys
import tempfile
import time
import types
import warnings
from pathlib import Path
from typing import Any, Callable, Iterable, Iterator, Mapping, Optional, Sequence

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


# ==========================================================================
# 3. the instructor pipeline
# ==========================================================================


class GradingError(RuntimeError):
    """A pipeline step failed; the message says which and why."""


def _read_nb(path: Path):
    import nbformat

    return nbformat.read(str(path), as_version=4)


def _write_nb(nb, path: Path) -> None:
    import nbformat

    path.parent.mkdir(parents=True, exist_ok=True)
    nbformat.write(nb, str(path))


def _meta(cell) -> dict:
    return cell.get("metadata", {}).get("nbgrader", {})


def course_assignments(course: Path) -> list[str]:
    """The assignment names: folders of ``source/`` that hold a notebook."""
    src = Path(course) / "source"
    if not src.is_dir():
        raise GradingError(f"course: {course} has no source/ folder (is it an nbgrader course directory?)")
    return sorted(p.name for p in src.iterdir() if p.is_dir() and any(p.glob("*.ipynb")))


def _notebooks(course: Path, folder: str, assignment: str, student: Optional[str] = None) -> list[Path]:
    base = Path(course) / folder
    base = base / student / assignment if student else base / assignment
    return sorted(base.glob("*.ipynb"))


def copy_course(src: Path, dst: Path) -> Path:
    """Copy a course's ``nbgrader_config.py`` and ``source/`` (nothing generated) to ``dst``."""
    src, dst = Path(src), Path(dst)
    if not (src / "nbgrader_config.py").is_file():
        raise GradingError(f"src: {src} has no nbgrader_config.py")
    dst.mkdir(parents=True, exist_ok=True)
    shutil.copy2(src / "nbgrader_config.py", dst / "nbgrader_config.py")
    shutil.copytree(src / "source", dst / "source", ignore=shutil.ignore_patterns(".ipynb_checkpoints", "__pycache__"))
    return dst


def _nbgrader_env() -> dict:
    env = dict(os.environ)
    # the kernel runs with the same Python as this process (rmteach importable)
    env["PATH"] = str(Path(sys.executable).parent) + os.pathsep + env.get("PATH", "")
    env.setdefault("PYDEVD_DISABLE_FILE_VALIDATION", "1")
    env["PYTHONWARNINGS"] = "ignore::DeprecationWarning"
    return env


def run_nbgrader(course: Path, *args: str, check: bool = True) -> subprocess.CompletedProcess:
    """Run ``nbgrader ARGS --CourseDirectory.root=COURSE`` in the course folder.

    Output is captured; with ``check`` a non-zero exit raises
    :class:`GradingError` with the end of nbgrader's log.
    """
    course = Path(course).resolve()
    cmd = [sys.executable, "-m", "nbgrader", *args, f"--CourseDirectory.root={course}"]
    proc = subprocess.run(cmd, cwd=course, env=_nbgrader_env(), capture_output=True, text=True)
    if check and proc.returncode != 0:
        tail = "\n".join((proc.stdout + proc.stderr).splitlines()[-40:])
        raise GradingError(f"nbgrader {' '.join(args)} failed (exit {proc.returncode}):\n{tail}")
    return proc


def _course_config(course: Path):
    from traitlets.config.loader import PyFileConfigLoader

    return PyFileConfigLoader("nbgrader_config.py", path=str(Path(course).resolve())).load_config()


def validate_notebook(path: Path, invert: bool = False, course: Optional[Path] = None) -> list[str]:
    """Run ``nbgrader validate`` (``--invert``) on one notebook; return the problems (empty: OK).

    Without ``invert``: every test cell must pass and no locked cell may have
    changed.  With ``invert`` (a release notebook): every test cell must fail.
    Uses the course's ``nbgrader_config.py`` (timeouts) when ``course`` is given.
    """
    from nbgrader.validator import Validator

    config = _course_config(course) if course else None
    validator = Validator(config=config) if config is not None else Validator()
    validator.invert = invert
    env = _nbgrader_env()
    old = {k: os.environ.get(k) for k in ("PATH", "PYTHONWARNINGS")}
    os.environ.update({k: env[k] for k in old})
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            results = validator.validate(str(path))
    finally:
        for k, v in old.items():
            if v is None:
                os.environ.pop(k, None)
            else:
                os.environ[k] = v
    problems = []
    for kind in ("type_changed", "changed", "failed", "passed"):
        for item in results.get(kind, []):
            first = item.get("source", "").splitlines()[:1]
            detail = item.get("raw_error", "").strip().splitlines()[-1:] if kind == "failed" else []
            problems.append(f"{kind}: {' '.join(first)[:90]!r} {' '.join(detail)}".rstrip())
    return problems


def generate_assignments(course: Path, assignments: Optional[Sequence[str]] = None, validate: bool = True, log=print) -> None:
    """``make assignments``: validate each source notebook, release it, validate --invert the release.

    Raises :class:`GradingError` naming every notebook that failed a check.
    """
    course = Path(course).resolve()
    names = list(assignments or course_assignments(course))
    problems: list[str] = []

    def check(folder: str, invert: bool) -> None:
        for name in names:
            for nb in _notebooks(course, folder, name):
                t0 = time.monotonic()
                bad = validate_notebook(nb, invert=invert, course=course)
                problems.extend(f"{folder}/{name}/{nb.name}: {p}" for p in bad)
                label = "validate --invert" if invert else "validate"
                log(f"{label:17} {folder}/{name}/{nb.name}: {'OK' if not bad else 'FAILED'} ({time.monotonic() - t0:.1f} s)")

    if validate:
        check("source", invert=False)
    # one nbgrader process for all of them (an assignment id may be a glob)
    for pattern in (["*"] if assignments is None else names):
        run_nbgrader(course, "generate_assignment", pattern, "--force")
    log(f"generate          release/<assignment>/ for {', '.join(names)}")
    if validate:
        check("release", invert=True)
    if problems:
        raise GradingError("assignment checks failed:\n  " + "\n  ".join(problems))


# -- sample submissions ----------------------------------------------------


def build_submission(release_nb, source_nb, keep: Callable[[str], bool]):
    """A student notebook: the release with the solution filled into the answer
    cells whose ``grade_id`` ``keep`` accepts (the others stay as released)."""
    solutions = {_meta(c)["grade_id"]: c.source for c in source_nb.cells if _meta(c).get("solution")}
    nb = copy.deepcopy(release_nb)
    for cell in nb.cells:
        gid = _meta(cell).get("grade_id")
        if _meta(cell).get("solution") and gid in solutions and keep(gid):
            cell.source = solutions[gid]
    return nb


def write_submission(course: Path, student: str, assignment: str, notebooks: Mapping[str, Any]) -> Path:
    """Write ``{name: notebook}`` to ``submitted/<student>/<assignment>/`` (with a timestamp)."""
    folder = Path(course) / "submitted" / student / assignment
    folder.mkdir(parents=True, exist_ok=True)
    for name, nb in notebooks.items():
        _write_nb(nb, folder / name)
    (folder / "timestamp.txt").write_text(time.strftime("%Y-%m-%d %H:%M:%S UTC", time.gmtime()) + "\n")
    return folder


_SCOPES = (ast.FunctionDef, ast.AsyncFunctionDef, ast.Lambda, ast.ClassDef,
           ast.ListComp, ast.SetComp, ast.DictComp, ast.GeneratorExp)


def _free_names(source: str) -> tuple[set[str], set[str]]:
    """(names the code loads anywhere, global names it binds at the top level).

    Loads inside function bodies count (a function uses the globals it names);
    binds inside functions and comprehensions do not (they are local).
    """
    try:
        tree = ast.parse(source)
    except SyntaxError:
        return set(), set()
    loads = {n.id for n in ast.walk(tree) if isinstance(n, ast.Name) and isinstance(n.ctx, ast.Load)}
    binds: set[str] = set()
    todo: list[ast.AST] = list(tree.body)
    while todo:
        node = todo.pop()
        if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef)):
            binds.add(node.name)
            continue
        if isinstance(node, (ast.Import, ast.ImportFrom)):
            binds.update((a.asname or a.name).split(".")[0] for a in node.names)
            continue
        if isinstance(node, ast.Name) and not isinstance(node.ctx, ast.Load):
            binds.add(node.id)
        if not isinstance(node, _SCOPES):
            todo.extend(ast.iter_child_nodes(node))
    return loads, binds


def cell_dependencies(source_nb) -> dict[str, set[str]]:
    """For each autograded test cell, the answer cells (grade_ids) it needs, transitively.

    A cell needs the answer cells that bind a name it uses (worked out from the
    code, not declared), and whatever those need in turn.
    """
    definers: dict[str, str] = {}
    needs: dict[str, set[str]] = {}
    tests: dict[str, set[str]] = {}
    for cell in source_nb.cells:
        meta = _meta(cell)
        gid = meta.get("grade_id")
        if cell.cell_type != "code" or not gid:
            continue
        loads, binds = _free_names(cell.source)
        direct = {definers[n] for n in loads if n in definers}
        if meta.get("solution"):
            needs[gid] = direct
            for n in binds:
                definers[n] = gid
        elif meta.get("grade"):
            tests[gid] = {definers[n] for n in loads - binds if n in definers}
    out = {}
    for gid, direct in tests.items():
        closure, todo = set(), list(direct)
        while todo:
            d = todo.pop()
            if d not in closure:
                closure.add(d)
                todo.extend(needs.get(d, ()))
        out[gid] = closure
    return out


def expected_auto_score(source_nb, keep: Callable[[str], bool]) -> float:
    """The autograded points a submission built with ``keep`` must get: the
    points of every test cell all of whose answer cells were kept."""
    deps = cell_dependencies(source_nb)
    points = {_meta(c)["grade_id"]: float(_meta(c).get("points", 0)) for c in source_nb.cells if _meta(c).get("grade")}
    return sum(points[t] for t, d in deps.items() if all(keep(g) for g in d))


def answer_cells(source_nb) -> list[str]:
    """grade_ids of the answer cells (code and written), in notebook order."""
    return [_meta(c)["grade_id"] for c in source_nb.cells if _meta(c).get("solution")]


def partial_keep(source_nb) -> Callable[[str], bool]:
    """The demo's "partly correct" student: answers every other code answer cell
    (1st, 3rd, ...) and every other written answer (2nd, 4th, ...)."""
    code = [_meta(c)["grade_id"] for c in source_nb.cells if _meta(c).get("solution") and c.cell_type == "code"]
    written = [_meta(c)["grade_id"] for c in source_nb.cells if _meta(c).get("solution") and c.cell_type != "code"]
    kept = set(code[::2]) | set(written[1::2])
    return lambda gid: gid in kept


DEMO_STUDENTS = {  # id: (what the submission is, keep(source_nb) -> keep function)
    "ada": ("full solution", lambda nb: (lambda gid: True)),
    "ben": ("untouched release", lambda nb: (lambda gid: False)),
    "cy": ("every other answer (partly correct)", partial_keep),
}


def make_demo_submissions(course: Path, students: Mapping[str, tuple] = DEMO_STUDENTS) -> dict:
    """Write the demo students' submissions for every released assignment.

    Returns ``{(student, assignment): expected autograded points}``.
    """
    course = Path(course)
    expected = {}
    for assignment in course_assignments(course):
        for student, (_, make_keep) in students.items():
            notebooks, total = {}, 0.0
            for src in _notebooks(course, "source", assignment):
                source_nb = _read_nb(src)
                release_nb = _read_nb(course / "release" / assignment / src.name)
                keep = make_keep(source_nb)
                notebooks[src.name] = build_submission(release_nb, source_nb, keep)
                total += expected_auto_score(source_nb, keep)
            write_submission(course, student, assignment, notebooks)
            expected[(student, assignment)] = total
    return expected


# -- grading ---------------------------------------------------------------


def submitted_pairs(course: Path) -> list[tuple[str, str]]:
    """(student, assignment) for every submission folder under ``submitted/``."""
    base = Path(course) / "submitted"
    if not base.is_dir():
        return []
    return sorted(
        (s.name, a.name) for s in base.iterdir() if s.is_dir() for a in s.iterdir() if a.is_dir()
    )


def autograde(course: Path, force: bool = False, log=print) -> list[str]:
    """``make autograde``: autograde every submission under ``submitted/``.

    One nbgrader run for all of them (a failing notebook does not stop the
    others).  Returns the problems: submissions with no autograded notebook
    afterwards, with nbgrader's reason.  Already autograded submissions are
    skipped unless ``force``.
    """
    course = Path(course).resolve()
    pairs = submitted_pairs(course)
    if not pairs:
        log(f"nothing to grade: no submissions in {course / 'submitted'}/<student>/<assignment>/")
        return []
    released = set(course_assignments(course))
    problems = [f"{s}/{a}: no such assignment in source/" for s, a in pairs if a not in released]
    pairs = [(s, a) for s, a in pairs if a in released]
    t0 = time.monotonic()
    # one nbgrader process for every submission (assignment id "*")
    proc = run_nbgrader(course, "autograde", "*", *(["--force"] if force else []), check=False)
    log(f"autograde         {len(pairs)} submission(s) ({time.monotonic() - t0:.1f} s)")
    out = (proc.stdout + proc.stderr).splitlines()
    for student, assignment in pairs:
        want = [p.name for p in _notebooks(course, "submitted", assignment, student)]
        have = {p.name for p in _notebooks(course, "autograded", assignment, student)}
        missing = [n for n in want if n not in have] or ([] if have else ["(no notebook)"])
        if missing:
            reason = [line.strip() for line in out if "ERROR" in line or "Error" in line]
            problems.append(f"{student}/{assignment}: not autograded {missing}" + (f" ({reason[-1]})" if reason else ""))
    return problems


def generate_feedback(course: Path, log=print) -> list[Path]:
    """``make feedback``: HTML feedback for every autograded submission (hidden tests removed)."""
    course = Path(course).resolve()
    if any((course / "autograded").glob("*/*/*.ipynb")):
        run_nbgrader(course, "generate_feedback", "*", "--force")
    files = sorted((course / "feedback").glob("*/*/*.html"))
    log(f"feedback: {len(files)} HTML file(s) in {course / 'feedback'}/<student>/<assignment>/")
    return files


GRADE_COLUMNS = [
    "student", "assignment", "status", "auto_score", "auto_max",
    "manual_score", "manual_max", "manual_pending", "score", "max_score",
]


def grade_rows(course: Path) -> list[dict]:
    """One row per (student, assignment) in the gradebook, with autograded and
    manually graded points apart.

    ``status``: ``graded``, ``needs manual grading``, ``missing`` (nothing
    submitted) or ``not autograded`` (submitted, but no autograded notebook:
    run ``make autograde`` and read its log).  Written answers not graded yet
    count 0 in ``score`` and are listed in ``manual_pending`` (points).
    """
    from nbgrader.api import Gradebook, MissingEntry

    course = Path(course).resolve()
    db = course / "gradebook.db"
    if not db.exists():
        raise GradingError(f"course: {course} has no gradebook.db yet (run make assignments first)")
    submitted = set(submitted_pairs(course))
    rows = []
    with Gradebook(f"sqlite:///{db}") as gb:
        students = sorted(s.id for s in gb.students) or []
        students = sorted(set(students) | {s for s, _ in submitted})
        for assignment in gb.assignments:
            max_auto = max_manual = 0.0
            for nb in assignment.notebooks:
                for cell in nb.grade_cells:
                    if cell.cell_type == "markdown":
                        max_manual += cell.max_score
                    else:
                        max_auto += cell.max_score
            for student in students:
                row = dict(student=student, assignment=assignment.name, auto_max=max_auto, manual_max=max_manual,
                           max_score=max_auto + max_manual, auto_score=0.0, manual_score=0.0, manual_pending=0.0)
                graded = any((course / "autograded" / student / assignment.name).glob("*.ipynb"))
                try:
                    sub = gb.find_submission(assignment.name, student)
                except MissingEntry:
                    sub = None
                if sub is None or not graded:
                    row["status"] = "not autograded" if (student, assignment.name) in submitted else "missing"
                else:
                    for nb in sub.notebooks:
                        for grade in nb.grades:
                            if grade.cell.cell_type == "markdown":
                                if grade.needs_manual_grade and grade.manual_score is None:
                                    row["manual_pending"] += grade.max_score
                                else:
                                    row["manual_score"] += grade.score
                            else:
                                row["auto_score"] += grade.score
                    row["status"] = "needs manual grading" if row["manual_pending"] else "graded"
                row["score"] = row["auto_score"] + row["manual_score"]
                rows.append(row)
    return rows


def write_csv(rows: Sequence[dict], path: Path) -> Path:
    """Write :func:`grade_rows` as CSV (columns :data:`GRADE_COLUMNS`, points as numbers)."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path, "w", newline="") as fh:
        writer = csv.DictWriter(fh, fieldnames=GRADE_COLUMNS)
        writer.writeheader()
        for row in rows:
            writer.writerow({k: (f"{row[k]:g}" if isinstance(row[k], float) else row[k]) for k in GRADE_COLUMNS})
    return path


def format_table(rows: Sequence[dict], expected: Optional[Mapping[tuple, float]] = None) -> str:
    """The grade table as text; with ``expected`` an extra column says whether
    each autograded score is the one the submission must get."""
    head = ["student", "assignment", "autograded", "written (manual)", "status"]
    if expected is not None:
        head.append("expected auto")
    lines = []
    for r in rows:
        line = [
            r["student"], r["assignment"], f"{r['auto_score']:g} / {r['auto_max']:g}",
            f"{r['manual_pending']:g} pts to grade" if r["manual_pending"] else f"{r['manual_score']:g} / {r['manual_max']:g}",
            r["status"],
        ]
        if expected is not None:
            want = expected.get((r["student"], r["assignment"]))
            line.append("-" if want is None else f"{want:g} {'ok' if abs(want - r['auto_score']) < 1e-9 else 'MISMATCH'}")
        lines.append(line)
    widths = [max(len(str(x)) for x in col) for col in zip(head, *lines)]
    fmt = "  ".join(f"{{:<{w}}}" for w in widths)
    out = [fmt.format(*head), fmt.format(*["-" * w for w in widths])]
    out += [fmt.format(*line) for line in lines]
    return "\n".join(line.rstrip() for line in out)


def demo(keep: Optional[Path] = None, log=print) -> int:
    """``make grade-demo``: the whole workflow on a temporary copy of the course.

    Releases every assignment, writes three made-up students' submissions (a
    full solution, the untouched release, every other answer), autogrades them
    in one batch, writes feedback and the CSV, and prints the grade table with
    the autograded score each must get (worked out from which answers it holds).
    Returns 0 if every score is the expected one.
    """
    t0 = time.monotonic()
    tmp = None
    if keep is None:
        tmp = tempfile.TemporaryDirectory(prefix="rmteach-grade-demo-")
        root = Path(tmp.name) / "course"
    else:
        root = Path(keep).resolve()
        if root.exists() and any(root.iterdir()):
            raise GradingError(f"keep: {root} exists and is not empty")
    try:
        course = copy_course(REPO_COURSE, root)
        log(f"course copy: {course}")
        generate_assignments(course, validate=False, log=log)
        expected = make_demo_submissions(course)
        for student, (what, _) in DEMO_STUDENTS.items():
            log(f"submitted/{student}/<assignment>/: {what}")
        problems = autograde(course, log=log)
        generate_feedback(course, log=log)
        rows = [r for r in grade_rows(course) if r["student"] in DEMO_STUDENTS]
        csv_path = write_csv(rows, course / "grades.csv")
        log("")
        log(format_table(rows, expected))
        log("")
        log(f"CSV: {csv_path}" + ("" if tmp is None else " (temporary; use --keep DIR to keep the course)"))
        bad = [r for r in rows if abs(expected.get((r["student"], r["assignment"]), -1) - r["auto_score"]) > 1e-9]
        for p in problems:
            log(f"PROBLEM {p}")
        log(f"{'all autograded scores as expected' if not bad and not problems else f'{len(bad)} score(s) not as expected'}"
            f" ({time.monotonic() - t0:.0f} s)")
        return 0 if not bad and not problems else 1
    finally:
        if tmp is not None:
            tmp.cleanup()


# -- CLI -------------------------------------------------------------------


def _course_arg(value: str) -> Path:
    path = Path(value).resolve()
    if not (path / "nbgrader_config.py").is_file():
        raise argparse.ArgumentTypeError(f"{path} has no nbgrader_config.py (not an nbgrader course directory)")
    return path


def main(argv: Optional[Sequence[str]] = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m rmteach.grading", description=__doc__.split("\n")[0])
    sub = parser.add_subparsers(dest="command", required=True)
    for name, help_ in [
        ("assignments", "validate every source notebook, generate release/, validate --invert the release"),
        ("autograde", "autograde everything under submitted/<student>/<assignment>/"),
        ("feedback", "HTML feedback for every autograded submission (feedback/)"),
        ("grades", "print the grade table and write the CSV"),
    ]:
        p = sub.add_parser(name, help=help_)
        p.add_argument("--course", type=_course_arg, default=str(REPO_COURSE), help="course directory (default: %(default)s)")
        if name == "assignments":
            p.add_argument("--no-validate", action="store_true", help="skip nbgrader validate")
            p.add_argument("names", nargs="*", help="assignments (default: all in source/)")
        if name == "autograde":
            p.add_argument("--force", action="store_true", help="regrade submissions already autograded")
        if name == "grades":
            p.add_argument("--csv", type=Path, default=None, help="CSV path (default: COURSE/grades.csv)")
    p = sub.add_parser("demo", help="the whole workflow for three made-up students, in a temporary course copy")
    p.add_argument("--keep", type=Path, default=None, help="build the course copy here (an empty or new folder) and keep it")
    args = parser.parse_args(argv)
    try:
        if args.command == "assignments":
            unknown = sorted(set(args.names) - set(course_assignments(args.course)))
            if unknown:
                parser.error(f"names: no such assignment(s) {unknown} in {args.course / 'source'}")
            generate_assignments(args.course, args.names or None, validate=not args.no_validate)
            print(f"release: {args.course / 'release'}/<assignment>/ (give these to students)")
        elif args.command == "autograde":
            problems = autograde(args.course, force=args.force)
            for p in problems:
                print(f"PROBLEM {p}", file=sys.stderr)
            print(format_table(grade_rows(args.course)))
            return 1 if problems else 0
        elif args.command == "feedback":
            generate_feedback(args.course)
        elif args.command == "grades":
            rows = grade_rows(args.course)
            path = write_csv(rows, args.csv or args.course / "grades.csv")
            print(format_table(rows))
            print(f"CSV: {path}")
        elif args.command == "demo":
            return demo(args.keep)
    except GradingError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
