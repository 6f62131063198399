"""rmteach.grading (the checks test cells call) and the rest of rmteach.grading (the whole nbgrader pipeline).

The pipeline tests work on a temporary copy of ``assignments/`` (never on the
repo's folder) and run nbgrader once per step for every student together:
validate + release, one autograde batch, one feedback run.  Students:

* ``ada`` full solution, ``ben`` untouched release, ``cy`` every other answer
  (the ``make grade-demo`` three);
* ``dee`` answers two implement exercises by calling rmteach (no credit there);
* ``eve`` full solution with test cells, a locked set-up cell, a data cell and a
  written answer cell deleted (all put back; tests graded);
* ``fay`` full solution that emits warnings (inside and outside the graded calls);
* ``gus`` a corrupt notebook (status ``failed: ...``, reported, others unaffected);
* ``hal`` an infinite loop in one function (that cell times out, the rest is graded).
"""

from __future__ import annotations

import csv
import html
import json
import re
import subprocess
import sys
import types
import warnings
from pathlib import Path

import nbformat
import numpy as np
import pytest

from rmteach.grading import course as gcourse, pipeline, demo as gdemo, release, gradebook as gbook
from rmteach import grading as g
from rmteach import numpy as rm
from _sandbox_mode import MODE as SANDBOX_MODE  # noqa: E402

REPO = Path(__file__).resolve().parents[1]
COURSE = REPO / "assignments"
A1, A2, A3 = "01_preference_probability", "02_ranking_loss", "03_gradients_and_updates"


# --------------------------------------------------------------------------
# checks for test cells (in-process, fast)


def notebook_namespace(code: str) -> dict:
    """Run ``code`` as a notebook cell would: functions get ``__module__ == '__main__'``."""
    ns = {"__name__": "__main__", "np": np}
    exec(compile(code, "<cell>", "exec"), ns)
    return ns


OWN = """
def ranking_loss(r_pref, r_rej):
    d = np.asarray(r_pref, dtype=float) - np.asarray(r_rej, dtype=float)
    return float(np.mean(np.maximum(-d, 0) + np.log1p(np.exp(-np.abs(d)))))
"""

CHEATS = {
    "alias imported at the top": "from rmteach.numpy import ranking_loss as f\ndef ranking_loss(a, b):\n    return f(a, b)",
    "module attribute": "import rmteach.numpy as rm\ndef ranking_loss(a, b):\n    return rm.ranking_loss(a, b)",
    "the reference itself": "from rmteach.numpy import ranking_loss",
    "import inside the body": "def ranking_loss(a, b):\n    from rmteach import numpy\n    return numpy.ranking_loss(a, b)",
    "a helper function": "import rmteach.numpy as rm\ndef _h(a, b):\n    return rm.ranking_loss(a, b)\ndef ranking_loss(a, b):\n    return _h(a, b)",
    "a default argument": "from rmteach.numpy import ranking_loss as f\ndef ranking_loss(a, b, _f=f):\n    return _f(a, b)",
    "a closure": "from rmteach import numpy\ndef make():\n    f = numpy.ranking_loss\n    def ranking_loss(a, b):\n        return f(a, b)\n    return ranking_loss\nranking_loss = make()\ndel numpy",
    "a lambda": "from rmteach.numpy import ranking_loss as f\nranking_loss = lambda a, b: f(a, b)",
    "a partial": "import functools\nfrom rmteach.numpy import ranking_loss as f\nranking_loss = functools.partial(f)",
    "a container": "from rmteach.numpy import ranking_loss as f\nT = {'f': [f]}\ndel f\ndef ranking_loss(a, b):\n    return T['f'][0](a, b)",
    "a class": "from rmteach.numpy import ranking_loss as f\nclass K:\n    g = staticmethod(f)\ndel f\ndef ranking_loss(a, b):\n    return K.g(a, b)",
    "a string import": "import importlib\ndef ranking_loss(a, b):\n    return importlib.import_module('rmteach.numpy').ranking_loss(a, b)",
    "a built-in replaced": "import builtins\nfrom rmteach.numpy import ranking_loss as f\nbuiltins.sneaky_loss = f\ndel f\ndef ranking_loss(a, b):\n    return sneaky_loss(a, b)",
}

# reach rmteach only at run time, through names the static check cannot see
DYNAMIC_CHEATS = {
    "sys.modules with a computed name": (
        "import sys\ndef ranking_loss(a, b):\n"
        "    m = sys.modules[''.join(['rm', 'teach', '.numpy'])]\n"
        "    return getattr(m, 'ranking' + '_loss')(a, b)"
    ),
    "swallowing the tripwire": (
        "import sys\ndef ranking_loss(a, b):\n"
        "    try:\n"
        "        return getattr(sys.modules[''.join(['rm', 'teach.numpy'])], 'ranking_loss')(a, b)\n"
        "    except BaseException:\n"
        "        d = np.asarray(a) - np.asarray(b)\n"
        "        return float(np.mean(np.logaddexp(0, -d)))"
    ),
    "a fresh import by computed name": (
        "import importlib\ndef ranking_loss(a, b):\n"
        "    return importlib.import_module(''.join(['rm', 'teach', '.private_copy']))"
    ),
    "reading the package source": (
        "def ranking_loss(a, b):\n"
        "    exec(open(PATH).read(), {})\n"
        "    return 0.0"
    ),
}


def test_own_function_accepts_own_numpy_code():
    ns = notebook_namespace(OWN)
    assert g.call(ns["ranking_loss"], [1.0, 2.0], [0.0, 3.0]) == pytest.approx(float(rm.ranking_loss([1.0, 2.0], [0.0, 3.0])))


@pytest.mark.parametrize("how", sorted(CHEATS))
def test_calling_rmteach_gets_no_credit(how):
    ns = notebook_namespace(CHEATS[how])
    with pytest.raises(g.NotOwnWork, match="rmteach"):
        g.call(ns["ranking_loss"], 1.0, 0.0)


@pytest.mark.parametrize("how", sorted(DYNAMIC_CHEATS))
def test_tripwires_catch_calls_the_static_check_cannot_see(how):
    ns = notebook_namespace(DYNAMIC_CHEATS[how])
    ns["PATH"] = str(Path(rm.__file__))
    g.own_function(ns["ranking_loss"], "ranking_loss")  # statically clean ...
    with pytest.raises(g.NotOwnWork, match="called rmteach"):  # ... caught at run time
        g.call(ns["ranking_loss"], 1.0, 0.0)


def test_reference_functions_work_again_after_a_tripwire():
    want = float(rm.ranking_loss(1.0, 0.0))
    ns = notebook_namespace(DYNAMIC_CHEATS["swallowing the tripwire"])
    with pytest.raises(g.NotOwnWork):
        g.call(ns["ranking_loss"], 1.0, 0.0)
    assert float(rm.ranking_loss(1.0, 0.0)) == want
    assert open(rm.__file__).read(10)  # open() is restored
    import rmteach.gradcheck  # noqa: F401 - imports work again


def test_call_passes_copies_and_reports_warnings(capsys):
    ns = notebook_namespace("def f(x):\n    x[0] = 99.0\n    return np.exp(np.array([1000.0]))[0]")
    x = np.array([1.0])
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # a warning escaping call() would fail this test
        assert g.call(ns["f"], x) == np.inf
    assert x[0] == 1.0
    assert "note: f emitted RuntimeWarning: overflow" in capsys.readouterr().out


def test_own_function_refuses_non_functions_with_the_argument_name():
    with pytest.raises(g.NotOwnWork, match="ranking_loss must be a function you define"):
        g.own_function(np.mean, "ranking_loss")
    with pytest.raises(g.NotOwnWork, match="rmteach.numpy.ranking_loss, not a function defined in this notebook"):
        g.own_function(rm.ranking_loss, "ranking_loss")


def test_assert_close_shapes_nan_inf_and_hidden_keys():
    g.assert_close(np.array([1.0, np.nan, np.inf]), [1.0 + 1e-12, np.nan, np.inf], "x")
    with pytest.raises(AssertionError, match=r"x: expected shape \(2,\), got shape \(\)"):
        g.assert_close(1.0, [1.0, 1.0], "x")
    with pytest.raises(AssertionError, match=r"x at index \[1\]: got 3.0, expected 2.0"):
        g.assert_close([1.0, 3.0], [1.0, 2.0], "x")
    with pytest.raises(AssertionError) as info:
        g.assert_close(0.5, 0.7310585786300049, "p_q03", show_expected=False)
    assert "0.731" not in str(info.value)
    with pytest.raises(AssertionError, match="should be a number"):
        g.assert_close("abc", 1.0, "x")


def test_choice_checks_never_reveal_the_key():
    g.assert_choice(" c ", "C", "ABCD", "answer_q02")
    with pytest.raises(AssertionError) as info:
        g.assert_choice("A", "C", "ABCD", "answer_q02")
    assert str(info.value) == "answer_q02 = 'A' is not the right choice"
    with pytest.raises(AssertionError, match="must be one of 'A', 'B'"):
        g.assert_choice("E", "A", "AB", "answer_q23")
    g.assert_choices({"a", "C"}, {"A", "C"}, "ABCDE", "answer_q16")
    with pytest.raises(AssertionError, match=r"answer_q16 = \['A'\] is not the right set"):
        g.assert_choices(["A"], {"A", "C"}, "ABCDE", "answer_q16")


def test_assert_raises():
    ns = notebook_namespace("def f(c):\n    if c < 0:\n        raise ValueError('coef must be >= 0')\n    return c")
    g.assert_raises(ValueError, ns["f"], -1.0)
    with pytest.raises(AssertionError, match="should raise ValueError, but returned"):
        g.assert_raises(ValueError, ns["f"], 1.0)


WHERE = "notebook 02, paragraph 'The stable form'"


def _shown(exc) -> list:
    """What IPython shows for ``exc``: the lines of its ``_render_traceback_``."""
    return exc._render_traceback_()


def test_where_and_why_keep_the_default_messages_and_add_lines_of_their_own():
    # without where=/why= the message is what it always was; IPython shows it as one short line
    with pytest.raises(AssertionError) as info:
        g.assert_close([1.0, 3.0], [1.0, 2.0], "x")
    assert str(info.value) == "x at index [1]: got 3.0, expected 2.0 (rtol=1e-09, atol=0)"
    assert _shown(info.value) == ["Check failed: x at index [1]: got 3.0, expected 2.0 (rtol=1e-09, atol=0)"]
    with pytest.raises(AssertionError) as info:
        g.close(0.5, 0.7, "p_q03", show_expected=False, where=WHERE)
    assert str(info.value) == f"p_q03: got 0.5, which is not the right value\nWhere to look: {WHERE}."
    assert _shown(info.value)[-1] == f"  Where to look: {WHERE}."
    with pytest.raises(AssertionError) as info:
        g.assert_choice("A", "C", "ABCD", "answer_q02", where=WHERE, why={"A": "a low score is not a gap.", "C": "never shown"})
    assert _shown(info.value) == ["Check failed: answer_q02 = 'A' is not the right choice",
                                  "  Likely misconception: a low score is not a gap.", f"  Where to look: {WHERE}."]
    assert "never shown" not in str(info.value)


def test_where_on_call_and_raises_and_the_exception_type_is_kept():
    ns = notebook_namespace("def f(c):\n    if c < 0:\n        raise ValueError('coef must be >= 0')\n    return c")
    with pytest.raises(AssertionError) as info:
        g.raises(ValueError, ns["f"], 1.0, where=WHERE)
    assert "f(1.0) should raise ValueError, but returned float 1.0" in str(info.value)
    assert _shown(info.value)[-1] == f"  Where to look: {WHERE}."
    ns = notebook_namespace("def f(x):\n    raise KeyError('no such key')")
    with pytest.raises(KeyError) as info:
        g.call(ns["f"], 1.0, where=WHERE)
    assert _shown(info.value)[0] == "Check failed: f(1.0) raised KeyError: 'no such key'"
    ns = notebook_namespace("import rmteach.numpy as R\ndef f(a, b):\n    return R.ranking_loss(a, b)")
    with pytest.raises(g.NotOwnWork) as info:
        g.call(ns["f"], 1.0, 0.0, where=WHERE)
    assert "no credit" in _shown(info.value)[0] and _shown(info.value)[-1] == f"  Where to look: {WHERE}."


def test_visible_checks_of_letters_and_numbers_name_the_misconception():
    assert g.is_letter(" b ", "ABCD", "answer_q02", where=WHERE)
    for answer, phrase in (("the pair with the largest gap", "a description where a letter is asked"),
                           (2, "a number or True/False where a letter is asked"), ({"A"}, "a set or list where one letter")):
        with pytest.raises(AssertionError) as info:
            g.is_letter(answer, "ABCD", "answer_q02", where=WHERE)
        assert phrase in "\n".join(_shown(info.value)), answer
    assert g.number(np.float32(0.5), "p") == 0.5
    for value, phrase in (("0.5", "text where a number is asked"), (None, "None where a value is asked"),
                          (np.ones(2), "an array of per-pair values where one number is asked")):
        with pytest.raises(AssertionError) as info:
            g.number(value, "p", where=WHERE)
        assert phrase in "\n".join(_shown(info.value)), value
    assert g.holds(np.float64(1.0) > 0, "x")
    with pytest.raises(AssertionError, match="x must be positive"):
        g.holds(False, "x must be positive", where=WHERE)


def test_importing_grading_imports_neither_torch_nor_nbgrader():
    code = "import sys, rmteach.grading; print(sorted(m for m in ('torch', 'nbgrader', 'nbconvert') if m in sys.modules))"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.strip() == "[]"


def test_cli_bad_course_names_the_argument(tmp_path):
    proc = subprocess.run([sys.executable, "-m", "rmteach.grading", "grades", "--course", str(tmp_path)],
                          capture_output=True, text=True)
    assert proc.returncode == 2
    assert "--course" in proc.stderr and "no nbgrader_config.py" in proc.stderr


def test_dependencies_follow_names_through_answer_cells():
    nb = nbformat.read(COURSE / "source" / A3 / "gradients_and_updates.ipynb", as_version=4)
    deps = gdemo.cell_dependencies(nb)
    assert deps["gradient_step_tests"] == {"gradient_step_impl", "ranking_loss_grad_impl"}
    assert deps["q06_new_scores_check"] == {"q06_numbers", "gradient_step_impl", "ranking_loss_grad_impl"}
    assert deps["q17_outcome"] == {"q17_answers"}


# --------------------------------------------------------------------------
# the pipeline, on a temporary copy of the course

TIMEOUT = 8  # seconds per cell in the test copy (the course uses 60): hal's loop costs this much


def _cells(nb, *grade_ids):
    return [c for c in nb.cells if c.metadata.get("nbgrader", {}).get("grade_id") in grade_ids]


def _set_source(nb, grade_id, source):
    (cell,) = _cells(nb, grade_id)
    cell.source = source


def _submit(course, student, assignment, nb_name, nb):
    gdemo.write_submission(course, student, assignment, {nb_name: nb})


@pytest.fixture(scope="module")
def graded(tmp_path_factory):
    """Release, submit, autograde once, write feedback: returns what every test reads."""
    course = gcourse.copy_course(COURSE, tmp_path_factory.mktemp("course"))
    with open(course / "nbgrader_config.py", "a") as fh:
        fh.write(f"\nc.Execute.timeout = {TIMEOUT}  # test copy only\n")
    log = []
    release.generate_assignments(course, log=log.append)  # validates sources and (inverted) releases
    expected = gdemo.make_demo_submissions(course)

    def full(assignment, name):
        src = nbformat.read(course / "source" / assignment / name, as_version=4)
        rel = nbformat.read(course / "release" / assignment / name, as_version=4)
        return src, gdemo.build_submission(rel, src, lambda gid: True)

    nb1 = "preference_probability.ipynb"
    src1, dee = full(A1, nb1)
    _set_source(dee, "preference_probability_impl",
                "from rmteach.numpy import preference_probability as _reference\n\n"
                "def preference_probability(r_a, r_b):\n    return _reference(r_a, r_b)")
    _submit(course, "dee", A1, nb1, dee)

    _, eve = full(A1, nb1)
    eve.cells = [c for c in eve.cells if c.metadata.get("nbgrader", {}).get("grade_id") not in
                 {"setup", "q04_data", "preference_probability_tests", "q16_tables_that_agree", "q13_written"}]
    _submit(course, "eve", A1, nb1, eve)

    _, fay = full(A1, nb1)
    _set_source(fay, "preference_probability_impl",  # naive: correct, but overflows (RuntimeWarning) at -1000
                "def preference_probability(r_a, r_b):\n"
                "    return 1.0 / (1.0 + np.exp(-(np.asarray(r_a, dtype=float) - np.asarray(r_b, dtype=float))))")
    _set_source(fay, "q03_numeric_answer",  # a warning on stderr in the test cell itself, outside the graded call
                "import warnings\nwarnings.simplefilter('always')\n\nclass Noisy(float):\n"
                "    def __float__(self):\n        warnings.warn('converting to float', UserWarning)\n"
                "        return float.__float__(self)\n\np_q03 = Noisy(1 / (1 + math.exp(-1.2)))")
    _submit(course, "fay", A1, nb1, fay)

    folder = course / "submitted" / "gus" / A3
    folder.mkdir(parents=True)
    (folder / "gradients_and_updates.ipynb").write_text('{"cells": [ this is not JSON')

    _, hal = full(A1, nb1)
    _set_source(hal, "preference_probability_impl", "def preference_probability(r_a, r_b):\n    while True:\n        pass")
    _submit(course, "hal", A1, nb1, hal)

    results = pipeline.autograde(course, log=log.append, sandbox=SANDBOX_MODE)
    problems = [f"{r.student}/{r.assignment}: {r.status}" for r in results if r.failed]
    feedback = release.generate_feedback(course, log=log.append)
    rows = {(r["student"], r["assignment"]): r for r in gbook.grade_rows(course)}
    return types.SimpleNamespace(course=course, expected=expected, problems=problems, feedback=feedback,
                                 rows=rows, log=log, src1=src1)


def cell_scores(course, student, assignment, notebook):
    from nbgrader.api import Gradebook

    with Gradebook(f"sqlite:///{course / 'gradebook.db'}") as gb:
        sub = gb.find_submission_notebook(notebook, assignment, student)
        return {grade.name: (grade.auto_score, grade.needs_manual_grade, grade.max_score) for grade in sub.grades}


def test_sources_validate_and_releases_fail_every_test(graded):
    names = gcourse.course_assignments(graded.course)
    assert {A1, A2, A3} <= set(names) and len(names) >= 5
    for name in names:
        assert any(line.startswith("validate ") and f"source/{name}/" in line and line.endswith("s)") and ": OK" in line
                   for line in graded.log), name
        assert any(line.startswith("validate --invert") and f"release/{name}/" in line and ": OK" in line
                   for line in graded.log), name


def test_release_holds_no_solution_hidden_test_or_rubric(graded):
    for path in (graded.course / "release").glob("*/*.ipynb"):
        text = path.read_text()
        for secret in ("BEGIN SOLUTION", "BEGIN HIDDEN TESTS", "_rm.ranking_loss(_a, _b", "Rubric", "Model answer"):
            assert secret not in text, (path.name, secret)
        assert "YOUR ANSWER HERE" in text or "written" not in text


def test_demo_students_get_the_expected_scores(graded):
    for name in gcourse.course_assignments(graded.course):
        ada, ben, cy = (graded.rows[(s, name)] for s in ("ada", "ben", "cy"))
        assert ada["auto_score"] == ada["auto_max"] > 0
        assert ada["manual_pending"] == ada["manual_max"]  # written answers wait for a person
        assert ben["auto_score"] == 0 and ben["manual_pending"] == 0 and ben["score"] == 0
        assert cy["auto_score"] == graded.expected[("cy", name)]
        assert 0 < cy["auto_score"] < cy["auto_max"]
    # the partly correct student's expected points come from which answers she holds
    assert graded.expected[("cy", A1)] == 5.0


def test_an_implement_exercise_answered_with_rmteach_gets_no_credit(graded):
    scores = cell_scores(graded.course, "dee", A1, "preference_probability")
    assert scores["preference_probability_tests"][0] == 0
    row = graded.rows[("dee", A1)]
    assert row["auto_score"] == row["auto_max"] - scores["preference_probability_tests"][2]


def test_deleted_cells_are_put_back_and_graded(graded):
    scores = cell_scores(graded.course, "eve", A1, "preference_probability")
    assert scores["preference_probability_tests"][0] == 3 and scores["q16_tables_that_agree"][0] == 2
    row = graded.rows[("eve", A1)]
    assert row["auto_score"] == row["auto_max"]
    # the deleted written answer comes back as the empty stub: 0 points, no model answer
    assert scores["q13_written"][:2] == (0, False)
    nb = nbformat.read(graded.course / "autograded" / "eve" / A1 / "preference_probability.ipynb", as_version=4)
    # (cells without nbgrader metadata are ones the grader adds, e.g. a tamper guard)
    ids = [c.metadata["nbgrader"]["grade_id"] for c in nb.cells if "nbgrader" in c.metadata]
    src_ids = [c.metadata["nbgrader"]["grade_id"] for c in graded.src1.cells]
    assert ids == src_ids  # every cell back, in the source order
    (written,) = _cells(nb, "q13_written")
    assert "Rubric" not in written.source and "YOUR ANSWER HERE" in written.source


def test_warnings_do_not_zero_correct_work(graded):
    nb = nbformat.read(graded.course / "autograded" / "fay" / A1 / "preference_probability.ipynb", as_version=4)
    (q03,) = _cells(nb, "q03_numeric_check")
    assert q03.outputs == []  # the UserWarning on stderr was dropped by IgnorePattern
    (impl_tests,) = _cells(nb, "preference_probability_tests")
    assert "RuntimeWarning: overflow" in "".join(o.get("text", "") for o in impl_tests.outputs)
    row = graded.rows[("fay", A1)]
    assert row["auto_score"] == row["auto_max"]


def test_an_infinite_loop_costs_its_cell_only(graded):
    scores = cell_scores(graded.course, "hal", A1, "preference_probability")
    assert scores["preference_probability_tests"][0] == 0
    row = graded.rows[("hal", A1)]
    assert row["auto_score"] == row["auto_max"] - 3


def test_a_corrupt_notebook_is_reported_and_loses_no_other_grade(graded):
    assert any(p.startswith(f"gus/{A3}: failed: ") and "JSON" in p for p in graded.problems), graded.problems
    assert graded.rows[("gus", A3)]["status"].startswith("failed: ")  # told apart from a real 0
    assert graded.rows[("gus", A3)]["auto_score"] == 0
    # the progress line and the problem line name the student, the assignment and the reason
    assert any(line.startswith("[") and f"gus/{A3} failed: " in line and "failures so far: 1" in line for line in graded.log)
    assert graded.rows[("ada", A3)]["auto_score"] == graded.rows[("ada", A3)]["auto_max"]
    assert len(graded.problems) == 1


def _visible_text(path: Path) -> str:
    text = re.sub(r"<[^>]+>", "", path.read_text())
    return " ".join(html.unescape(text).split())


def test_feedback_shows_grades_and_visible_tests_but_no_hidden_test(graded):
    files = {(p.parent.parent.name, p.parent.name): p for p in graded.feedback}
    assert {("ada", A1), ("ben", A1), ("cy", A1), ("dee", A1), ("eve", A1), ("fay", A1)} <= set(files)
    hidden_lines, visible_lines = set(), set()
    for src in (graded.course / "source").glob("*/*.ipynb"):
        for cell in nbformat.read(src, as_version=4).cells:
            inside = False
            for line in cell.source.splitlines():
                if "BEGIN HIDDEN TESTS" in line:
                    inside = True
                elif "END HIDDEN TESTS" in line:
                    inside = False
                elif len(line.strip()) > 30:
                    (hidden_lines if inside else visible_lines).add(" ".join(line.split()))
    hidden_lines -= visible_lines  # data the question shows anyway (hidden tests keep their own copy)
    assert len(hidden_lines) > 50
    texts = {k: _visible_text(p) for k, p in files.items()}
    # positive control: the search finds code that is shown
    shown = " ".join(_visible_text(p) for p in files.values())
    assert sum(line in shown for line in visible_lines) > 20
    for key, text in texts.items():
        assert "HIDDEN TESTS" not in text, key
        leaked = [line for line in hidden_lines if line in text]
        assert not leaked, (key, leaked[:3])
    assert "not shown: it holds hidden tests" in texts[("ben", A1)]  # failing hidden-test cells: traceback trimmed


def test_csv_export_has_the_expected_scores(graded, tmp_path):
    proc = subprocess.run([sys.executable, "-m", "rmteach.grading", "grades", "--course", str(graded.course),
                           "--csv", str(tmp_path / "grades.csv")], capture_output=True, text=True)
    assert proc.returncode == 0, proc.stderr
    assert "autograded" in proc.stdout
    with open(tmp_path / "grades.csv") as fh:
        rows = {(r["student"], r["assignment"]): r for r in csv.DictReader(fh)}
    assert list(next(iter(rows.values()))) == gbook.GRADE_COLUMNS
    for (student, assignment), want in graded.expected.items():
        row = rows[(student, assignment)]
        assert float(row["auto_score"]) == want
        assert float(row["max_score"]) == float(row["auto_max"]) + float(row["manual_max"])
    assert rows[("gus", A3)]["status"].startswith("failed: ") and "JSON" in rows[("gus", A3)]["status"]
    assert rows[("gus", A1)]["status"] == "not submitted"
    assert rows[("ada", A1)]["status"] == "needs manual grading" and rows[("ben", A2)]["status"] == "graded"


def test_course_config_sets_every_safeguard():
    cfg = gcourse._course_config(COURSE)
    assert 0 < cfg.Execute.timeout <= 120 and cfg.Execute.interrupt_on_timeout
    assert cfg.IgnorePattern.enabled
    for text in ("RuntimeWarning: overflow encountered in exp", "UserWarning: converting", "DeprecationWarning: x"):
        assert re.search(cfg.IgnorePattern.pattern, text), text
    assert not re.search(cfg.IgnorePattern.pattern, "Traceback (most recent call last)")
    assert "nbgrader.preprocessors.ClearHiddenTests" in cfg.GenerateFeedback.preprocessors
    assert "rmteach.grading.preprocessors.HideHiddenTestTracebacks" in cfg.GenerateFeedback.preprocessors
    assert cfg.OverwriteCells.add_missing_cells and "rmteach.grading.preprocessors.RestoreDeletedCells" in cfg.Autograde.sanitize_preprocessors
    assert cfg.Autograde.create_student
    # the plug-ins resolve the way nbgrader imports them
    from nbgrader.preprocessors import NbGraderPreprocessor, OverwriteCells
    from traitlets.utils.importstring import import_item
    assert issubclass(import_item("rmteach.grading.preprocessors.RestoreDeletedCells"), OverwriteCells)
    assert issubclass(import_item("rmteach.grading.preprocessors.HideHiddenTestTracebacks"), NbGraderPreprocessor)


def test_grade_rows_subtract_nbgrader_late_penalty(graded, tmp_path):
    """A late penalty nbgrader recorded comes off the score (never below 0), in its own column."""
    import shutil
    import sqlite3

    course = Path(shutil.copytree(graded.course, tmp_path / "course"))
    con = sqlite3.connect(course / "gradebook.db")
    for student, points in (("ada", 3.0), ("ben", 2.0)):
        con.execute(
            """UPDATE submitted_notebook SET late_submission_penalty = ? WHERE id IN (
                 SELECT sn.id FROM submitted_notebook sn JOIN submitted_assignment sa ON sn.assignment_id = sa.id
                 JOIN assignment a ON sa.assignment_id = a.id WHERE sa.student_id = ? AND a.name = ?)""",
            (points, student, A1))
    con.commit()
    con.close()
    rows = {(r["student"], r["assignment"]): r for r in gbook.grade_rows(course)}
    ada, ben, cy = (rows[(s, A1)] for s in ("ada", "ben", "cy"))
    assert ada["late_penalty"] == 3.0 and ada["score"] == ada["auto_score"] + ada["manual_score"] - 3.0
    assert ben["late_penalty"] == 2.0 and ben["auto_score"] == 0.0 and ben["score"] == 0.0  # not -2
    assert cy["late_penalty"] == 0.0 and cy["score"] == cy["auto_score"] + cy["manual_score"]
    written = {(r["student"], r["assignment"]): r for r in csv.DictReader(open(gbook.write_csv(list(rows.values()),
                                                                                                 tmp_path / "g.csv")))}
    assert written[("ada", A1)]["late_penalty"] == "3" and float(written[("ada", A1)]["score"]) == ada["score"]
