r"""Tamper detection: has student code replaced what the checks rely on?

Student code runs in the same kernel as the tests.  A cell that replaces what
the tests rely on (``builtins.abs = ...``, ``np.isclose = lambda *a, **k: True``,
``rmteach.grading.assert_close = ...``, ``rmteach.numpy.ranking_loss = ...``, an
IPython input transformer) could make wrong answers pass.  At autograde time the
``GuardTestCells`` plug-in (:mod:`rmteach.grading.preprocessors.guard_test_cells`)
adds a first cell that imports :mod:`rmteach.grading` before any student code runs
(:func:`arm` records the originals) and a first line to every test cell that calls
:func:`untampered`; every check of :mod:`rmteach.grading.checks` calls it too.  A
replaced object fails the check with "tampering detected: ...".

The checks use the originals captured here when this module is first imported
(``_np_asarray``, ``_str``, ...), never the module attributes a student can rebind.
These checks run in the student's kernel, so they raise the bar; they are not a
security boundary (that is :mod:`rmteach.grading.sandbox`).
"""

from __future__ import annotations

import builtins
import contextlib
import re
import sys
import types
from typing import Any, Iterable, Optional

import numpy as np

_RMTEACH_NAME = re.compile(r"^rmteach(\.|$)")


def is_rmteach_name(name: Any) -> bool:
    """Whether ``name`` is ``rmteach`` or a name under it (``rmteach.numpy.ranking_loss``)."""
    return isinstance(name, str) and bool(_RMTEACH_NAME.match(name))


def describe(value: Any) -> str:
    """A short description of ``value`` for a check's message."""
    text = repr(value)
    if len(text) > 70:
        text = text[:67] + "..."
    return f"{type(value).__name__} {text}"


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
    mods.update({name: m for name, m in sys.modules.items() if m is not None and is_rmteach_name(name)})
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
            found.append(f"the notebook redefines the builtin {name!r} ({describe(namespace[name])}), which the tests use")
    for alias, modname in dict(modules).items():
        if alias in namespace and namespace[alias] is not _snapshot["modules"].get(modname, sys.modules.get(modname)):
            found.append(f"the notebook rebinds {alias!r} ({describe(namespace[alias])}), which the tests use as the module {modname}")
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
