"""Bad submissions, built programmatically from a release notebook (test fixtures).

Every builder takes the release and source notebooks of one assignment and
returns a :class:`BadSubmission`: the files a student hands in, the points each
autograded test cell must get (worked out from which answer cells hold working
solution code and which test cells the fault reaches, never typed-in totals),
whether the submission can be graded at all, and a pattern the grading log must
show for it.  :data:`KINDS` lists them all; ``tests/test_bad_submissions.py``
grades them in one batch with two honest students.

The faults go into assignment 03 (14 points, quick to run): its cells are named
below by grade_id.
"""

from __future__ import annotations

import copy
import json
import re
from dataclasses import dataclass, field
from typing import Callable, Iterable, Optional

import nbformat

from rmteach.grading.demo import build_submission, cell_dependencies, partial_keep

ASSIGNMENT = "03_gradients_and_updates"
NOTEBOOK = "gradients_and_updates.ipynb"


@dataclass
class BadSubmission:
    student: str
    what: str
    files: dict[str, bytes]
    cells: dict[str, float] = field(default_factory=dict)
    """grade_id -> points it must get (every autograded test cell of the notebook)."""
    status: str = "graded"
    """"graded", or "failed" (cannot be graded: 0, and told apart from a real 0)."""
    log: str = ""
    """A regex the grading log (or the cell report) must match for this student."""
    needs_sandbox: bool = False

    @property
    def score(self) -> float:
        return sum(self.cells.values()) if self.status == "graded" else 0.0


def _meta(cell) -> dict:
    return cell.get("metadata", {}).get("nbgrader", {})


def test_cell_points(source_nb) -> dict[str, float]:
    return {_meta(c)["grade_id"]: float(_meta(c)["points"]) for c in source_nb.cells
            if _meta(c).get("grade") and c.cell_type == "code" and not _meta(c).get("solution")}


def expected_cells(source_nb, broken: Iterable[str] = (), fail: Iterable[str] = ()) -> dict[str, float]:
    """Points per test cell: 0 for a test cell that needs a ``broken`` answer cell
    (directly or through another answer cell) or is listed in ``fail``; full otherwise."""
    broken, fail = set(broken), set(fail)
    deps = cell_dependencies(source_nb)
    return {gid: (0.0 if gid in fail or deps.get(gid, set()) & broken else pts)
            for gid, pts in test_cell_points(source_nb).items()}


def calls_into(source_nb, impl: str) -> set[str]:
    """Test cells that run (with ``_g.call`` or ``_g.agrees``) a student function defined in ``impl``
    or in an answer cell that needs ``impl``: the ones :func:`rmteach.grading.call`
    refuses when ``impl`` uses rmteach."""
    definers: dict[str, str] = {}
    for c in source_nb.cells:
        if _meta(c).get("solution") and c.cell_type == "code":
            for name in re.findall(r"^def (\w+)", c.source, re.M):
                definers[name] = _meta(c)["grade_id"]
    deps = cell_dependencies(source_nb)
    needs = {g: set() for g in definers.values()}
    for c in source_nb.cells:  # answer cell -> answer cells it needs (by the names it uses)
        g = _meta(c).get("grade_id")
        if g in needs:
            needs[g] = {definers[n] for n in definers if n in re.findall(r"\w+", c.source) and definers[n] != g}
    out = set()
    for c in source_nb.cells:
        if c.cell_type != "code" or not _meta(c).get("grade") or _meta(c).get("solution"):
            continue
        for fn in re.findall(r"_g\.(?:call|agrees|raises|assert_raises)\(\s*(\w+)", c.source):
            g = definers.get(fn)
            if g and (g == impl or impl in needs.get(g, set())):
                out.add(_meta(c)["grade_id"])
    assert all(gid in deps for gid in out)
    return out


def _nb_bytes(nb) -> bytes:
    return nbformat.writes(nb).encode("utf-8")


def _cell(nb, gid: str):
    hits = [c for c in nb.cells if _meta(c).get("grade_id") == gid]
    assert len(hits) == 1, f"{gid}: {len(hits)} cells"
    return hits[0]


def _solution(source_nb, gid: str) -> str:
    """The solution code of an answer cell, without the BEGIN/END SOLUTION markers."""
    text = _cell(source_nb, gid).source
    return "\n".join(l for l in text.splitlines() if "### BEGIN SOLUTION" not in l and "### END SOLUTION" not in l) + "\n"


def solved(release_nb, source_nb, keep: Callable[[str], bool] = lambda gid: True):
    return build_submission(release_nb, source_nb, keep)


def _one(nb) -> dict[str, bytes]:
    return {NOTEBOOK: _nb_bytes(nb)}


# -- the kinds ----------------------------------------------------------------


def edited_test_cell(rel, src) -> BadSubmission:
    nb = solved(rel, src)
    _cell(nb, "q17_answers").source = _solution(src, "q17_answers").replace(
        "loss_q17 = float(np.log1p(np.exp(-(0.5 - 2.5))))", "loss_q17 = 1.0")
    assert "loss_q17 = 1.0" in _cell(nb, "q17_answers").source
    _cell(nb, "q17_loss_check").source = "assert True  # my answer is right, trust me"
    return BadSubmission("edited_test_cell", "a test cell edited to pass (and a wrong loss_q17)", _one(nb),
                         expected_cells(src, fail={"q17_loss_check"}), log=r"locked cell\(s\) were edited \(q17_loss_check\)")


def deleted_test_cell(rel, src) -> BadSubmission:
    nb = solved(rel, src)
    nb.cells.remove(_cell(nb, "q17_outcome"))
    return BadSubmission("deleted_test_cell", "a test cell deleted (the answer is right)", _one(nb),
                         expected_cells(src), log=r"not in the submission \(q17_outcome\)")


def metadata_stripped(rel, src) -> BadSubmission:
    nb = solved(rel, src)
    for c in nb.cells:
        c.metadata.pop("nbgrader", None)
    return BadSubmission("metadata_stripped", "every cell's nbgrader metadata stripped", _one(nb),
                         expected_cells(src), log=r"lost their nbgrader metadata: put back")


def extra_metadata_keys(rel, src) -> BadSubmission:
    nb = solved(rel, src)
    for c in nb.cells:
        if "nbgrader" in c.metadata:
            c.metadata.nbgrader["my_note"] = "looked at this"
            c.metadata["tags"] = ["done"]
            c.metadata["collapsed"] = False
    return BadSubmission("extra_metadata_keys", "extra keys in the nbgrader metadata", _one(nb),
                         expected_cells(src), log=r"changed nbgrader metadata \(my_note\)")


def duplicate_grade_id(rel, src) -> BadSubmission:
    nb = solved(rel, src)
    test = copy.deepcopy(_cell(nb, "gradient_step_tests"))
    test["id"] = "pasted-copy"
    nb.cells.insert(nb.cells.index(_cell(nb, "gradient_step_impl")), test)  # above the function it tests
    return BadSubmission("duplicate_grade_id", "a test cell copy-pasted above its answer cell", _one(nb),
                         expected_cells(src), log=r"'gradient_step_tests' appears 2 times")


def changed_schema_version(rel, src) -> BadSubmission:
    nb = solved(rel, src)
    for c in nb.cells:
        if "nbgrader" in c.metadata:
            c.metadata.nbgrader["schema_version"] = 4
    return BadSubmission("changed_schema_version", "schema_version 4 in every cell", _one(nb),
                         expected_cells(src), log=r"changed nbgrader metadata \(schema_version\)")


def infinite_loop_top_level(rel, src) -> BadSubmission:
    nb = solved(rel, src)
    _cell(nb, "q17_answers").source = "while True:\n    pass\n" + _solution(src, "q17_answers")
    return BadSubmission("loop_top_level", "an infinite loop at the top of an answer cell", _one(nb),
                         expected_cells(src, broken={"q17_answers"}), log=r"q17_answers \(answer cell\): stopped with .*(Timeout|Interrupt)")


def infinite_loop_in_function(rel, src) -> BadSubmission:
    nb = solved(rel, src)
    _cell(nb, "gradient_step_impl").source = (
        "def gradient_step(r_pref, r_rej, lr):\n    while True:\n        pass\n")
    return BadSubmission("loop_in_function", "an infinite loop inside the graded function", _one(nb),
                         expected_cells(src, broken={"gradient_step_impl"}),
                         log=r"gradient_step_tests: 0 / 2 \(.*(Timeout|Interrupt)")


def os_exit(rel, src) -> BadSubmission:
    nb = solved(rel, src)
    _cell(nb, "q17_answers").source = "import os\nos._exit(1)\n" + _solution(src, "q17_answers")
    return BadSubmission("os_exit", "os._exit(1) in an answer cell (the kernel dies)", _one(nb),
                         status="failed", log=r"(?i)kernel|died|dead")


def system_exit(rel, src) -> BadSubmission:
    nb = solved(rel, src)
    _cell(nb, "q17_answers").source = 'raise SystemExit("done for today")\n' + _solution(src, "q17_answers")
    return BadSubmission("system_exit", "raise SystemExit at the top of an answer cell", _one(nb),
                         expected_cells(src, broken={"q17_answers"}), log=r"q17_answers \(answer cell\): stopped with SystemExit")


def huge_output(rel, src) -> BadSubmission:
    nb = solved(rel, src)
    _cell(nb, "q06_answer").source = 'print(("x" * 99 + "\\n") * 500_000)  # 50 MB\n' + _solution(src, "q06_answer")
    return BadSubmission("huge_output", "50 MB printed by an answer cell (correct answers)", _one(nb),
                         expected_cells(src), log=r"printed 50\.0 MB of output")


def malformed_json(rel, src) -> BadSubmission:
    text = _nb_bytes(solved(rel, src))
    return BadSubmission("malformed_json", "the notebook file cut in half (not JSON)", {NOTEBOOK: text[: len(text) // 2]},
                         status="failed", log=r"not valid JSON")


def renamed_notebook(rel, src) -> BadSubmission:
    return BadSubmission("renamed_notebook", "the notebook saved as 'gradients_and_updates (1).ipynb'",
                         {"gradients_and_updates (1).ipynb": _nb_bytes(solved(rel, src))},
                         expected_cells(src), log=r"renamed notebook 'gradients_and_updates \(1\)\.ipynb'")


def missing_notebook(rel, src) -> BadSubmission:
    return BadSubmission("missing_notebook", "no notebook in the submission folder",
                         {"answers.txt": b"I did it all in my head.\n"}, status="failed",
                         log=r"missing notebook gradients_and_updates\.ipynb")


def warnings_on_stderr(rel, src) -> BadSubmission:
    nb = solved(rel, src)
    body = _solution(src, "ranking_loss_grad_impl").replace(
        '    """(dL/dr_pref, dL/dr_rej) of the mean ranking loss over the pairs."""\n',
        '    """(dL/dr_pref, dL/dr_rej) of the mean ranking loss over the pairs."""\n'
        '    print("Warning: ranking_loss_grad computes in float64", file=sys.stderr)\n'
        '    warnings.warn("this is the slow version", RuntimeWarning)\n')
    assert "sys.stderr" in body
    _cell(nb, "ranking_loss_grad_impl").source = (
        "import sys\nimport warnings\nwarnings.warn('my notebook is a draft', UserWarning)\n" + body)
    return BadSubmission("warnings_on_stderr", "correct code writing warnings to stderr", _one(nb),
                         expected_cells(src), log=r"ranking_loss_grad_tests: 3 / 3")


def shadow_builtins(rel, src) -> BadSubmission:
    nb = solved(rel, src)
    _cell(nb, "q18_numbers").source = _solution(src, "q18_numbers").replace('answer_q18 = "B"', 'answer_q18 = "A"') + (
        "bool = lambda *args: True            # every property 'holds': the key would be A\n"
        "isinstance = lambda *args: True\n"
        "import builtins\n"
        "builtins.abs = lambda x: 0.0          # every difference 'is' zero\n")
    return BadSubmission("shadow_builtins", "bool/isinstance shadowed, builtins.abs replaced, a wrong answer_q18", _one(nb),
                         expected_cells(src, broken={"q18_numbers"}), log=r"q18_principle: 0 / 2 \(Tampering: tampering detected")


def monkeypatch_numpy(rel, src) -> BadSubmission:
    nb = solved(rel, src)
    _cell(nb, "q18_numbers").source = (
        "q18_steps = np.ones(5)   # wrong\nq18_ratio = 2.0   # wrong\nanswer_q18 = 'A'   # wrong\n"
        "np.isclose = lambda *a, **k: True\n"
        "np.allclose = lambda *a, **k: True\n"
        "np.testing.assert_allclose = lambda *a, **k: None\n"
        "np.all = lambda *a, **k: True\n")
    return BadSubmission("monkeypatch_numpy", "np.isclose/allclose/all/testing patched to pass, wrong answers", _one(nb),
                         expected_cells(src, broken={"q18_numbers"}),
                         log=r"q18_steps_check: 0 / 2 \(Tampering: tampering detected: numpy\.")


def patch_grading(rel, src) -> BadSubmission:
    nb = solved(rel, src)
    _cell(nb, "q18_numbers").source = (
        "q18_steps = np.ones(5)\nq18_ratio = 2.0\nanswer_q18 = 'A'\n"
        "import rmteach.grading as G, rmteach.numpy as R\n"
        "G.assert_close = lambda *a, **k: None\nG.close = lambda *a, **k: True\n"
        "G.choice_is = lambda *a, **k: True\n"
        "R.ranking_loss_grad = lambda *a, **k: (-1.0, 1.0)\n")
    return BadSubmission("patch_grading", "rmteach.grading's checks and rmteach.numpy replaced, wrong answers", _one(nb),
                         expected_cells(src, broken={"q18_numbers"}),
                         log=r"q18_ratio_check: 0 / 1 \(Tampering: tampering detected: rmteach\.")


def import_reference(rel, src) -> BadSubmission:
    nb = solved(rel, src)
    _cell(nb, "ranking_loss_grad_impl").source = "from rmteach.numpy import ranking_loss_grad\n"
    cheated = calls_into(src, "ranking_loss_grad_impl")
    assert cheated == {"ranking_loss_grad_tests", "gradient_step_tests"}, cheated
    return BadSubmission("import_reference", "ranking_loss_grad imported from rmteach.numpy", _one(nb),
                         expected_cells(src, fail=cheated), log=r"ranking_loss_grad_tests: 0 / 3 \(NotOwnWork")


def returns_nan(rel, src) -> BadSubmission:
    nb = solved(rel, src)
    _cell(nb, "gradient_step_impl").source = (
        "def gradient_step(r_pref, r_rej, lr):\n    return np.nan, np.nan\n")
    return BadSubmission("returns_nan", "gradient_step returns (nan, nan)", _one(nb),
                         expected_cells(src, broken={"gradient_step_impl"}), log=r"gradient_step_tests: 0 / 2 \(AssertionError: .*nan")


def wrong_type(rel, src) -> BadSubmission:
    nb = solved(rel, src)
    _cell(nb, "ranking_loss_grad_impl").source = (
        "def ranking_loss_grad(r_pref, r_rej):\n"
        "    d = np.asarray(r_pref, dtype=float) - np.asarray(r_rej, dtype=float)\n"
        "    s = 1.0 / (1.0 + np.exp(d)) / max(d.size, 1)\n"
        "    return {'pref': -s, 'rej': s}   # a dict, not a pair\n")
    _cell(nb, "q17_answers").source = _solution(src, "q17_answers").replace('answer_q17 = "B"', (
        "class _Letter(str):                  # a str that equals every letter\n"
        "    __eq__ = lambda self, other: True\n"
        "    __ne__ = lambda self, other: False\n"
        "    __hash__ = str.__hash__\n"
        "    strip = upper = lambda self: self\n"
        "answer_q17 = _Letter('A')"))
    return BadSubmission("wrong_type", "ranking_loss_grad returns a dict; answer_q17 a str subclass equal to everything",
                         _one(nb), expected_cells(src, broken={"ranking_loss_grad_impl"}, fail={"q17_outcome"}),
                         log=r"q17_outcome: 0 / 1 \(AssertionError: answer_q17 must be a letter")


def memory_bomb(rel, src) -> BadSubmission:
    nb = solved(rel, src)
    _cell(nb, "gradient_step_impl").source = (
        "def gradient_step(r_pref, r_rej, lr):\n    hog = []\n    while True:\n"
        "        hog.append(b'x' * 100_000_000)   # 100 MB more, forever\n")
    return BadSubmission("memory_bomb", "gradient_step allocates memory until the bound", _one(nb),
                         expected_cells(src, broken={"gradient_step_impl"}), log=r"gradient_step_tests: 0 / 2 \(MemoryError",
                         needs_sandbox=True)


def full_solution(rel, src) -> BadSubmission:
    return BadSubmission("good_full", "honest: full solution", _one(solved(rel, src)), expected_cells(src),
                         log=r"q18_principle: 2 / 2")


def partial_solution(rel, src) -> BadSubmission:
    keep = partial_keep(src)
    broken = {_meta(c)["grade_id"] for c in src.cells if _meta(c).get("solution") and not keep(_meta(c)["grade_id"])}
    return BadSubmission("good_partial", "honest: every other answer", _one(solved(rel, src, keep)),
                         expected_cells(src, broken=broken), log=r"NotImplementedError")


KINDS: list[Callable] = [
    edited_test_cell, deleted_test_cell, metadata_stripped, extra_metadata_keys, duplicate_grade_id,
    changed_schema_version, infinite_loop_top_level, infinite_loop_in_function, os_exit, system_exit,
    huge_output, malformed_json, renamed_notebook, missing_notebook, warnings_on_stderr, shadow_builtins,
    monkeypatch_numpy, patch_grading, import_reference, returns_nan, wrong_type, memory_bomb,
]
GOOD: list[Callable] = [full_solution, partial_solution]


def build_all(release_nb, source_nb, include: Optional[Iterable[Callable]] = None) -> list[BadSubmission]:
    return [make(release_nb, source_nb) for make in (include or KINDS + GOOD)]
