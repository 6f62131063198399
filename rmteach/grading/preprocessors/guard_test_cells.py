"""Autograde: add the tamper checks of :mod:`rmteach.grading.tamper` around student code."""

from __future__ import annotations

import ast
import builtins

from nbformat.notebooknode import NotebookNode
from nbgrader.preprocessors import NbGraderPreprocessor

from rmteach.grading.tamper import _IPYTHON_BUILTINS

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
