"""Feedback that teaches (issue 9 section 3): what a student sees when a check fails.

Wrong implementations of each kind the course diagnoses are built here, put into the
*release* notebooks of assignments 02 and 03 (generated with nbgrader on a temporary copy
of the course) and run in a real kernel; the tests read what the student sees:

* in-process, every kind through :func:`rmteach.grading.agrees` (fast, no kernel);
* one nbclient run per assignment: each wrong implementation in a cell of its own, then a
  copy of the released test cell (visible tests only), many in one kernel: the message
  says what was checked, names the misconception and the notebook section, and shows no
  traceback through the grading code;
* one autograde + feedback run (nbgrader, as ``make autograde`` / ``make feedback``) of a
  student with wrong choices, wrong numbers and a wrong implementation: the HTML says which
  misconception each wrong choice reflects, and shows no hidden test and no numeric key.
"""

from __future__ import annotations

import html
import re
import types
from pathlib import Path

import nbformat
import numpy as np
import pytest
from nbclient import NotebookClient

from rmteach import grading as g
from rmteach import numpy as rm
from rmteach.grading import course as gcourse, demo as gdemo, diagnose as dg, pipeline, release
from _sandbox_mode import MODE as SANDBOX_MODE  # noqa: E402

REPO = Path(__file__).resolve().parents[1]
COURSE = REPO / "assignments"
A2, A3 = "02_ranking_loss", "03_gradients_and_updates"
NB2, NB3 = "ranking_loss.ipynb", "gradients_and_updates.ipynb"
ANSI = re.compile(r"\x1b\[[0-9;]*[A-Za-z]")

# --------------------------------------------------------------------------
# wrong implementations, one per misconception (the same code runs in-process and in the kernel)

SOFTPLUS = "np.maximum(-d, 0.0) + np.log1p(np.exp(-np.abs(d)))"
D = "d = np.asarray(r_pref, dtype=np.float64) - np.asarray(r_rej, dtype=np.float64)"

WRONG_LOSS = {  # ranking_loss(r_pref, r_rej) -> the sentence the student must read
    "typed-in formula (overflow)": (
        f"def ranking_loss(r_pref, r_rej):\n    {D}\n    return float(np.mean(-np.log(1.0 / (1.0 + np.exp(-d)))))",
        dg.OVERFLOW),
    "no log1p (rounds to 0)": (
        f"def ranking_loss(r_pref, r_rej):\n    {D}\n"
        "    return float(np.mean(np.maximum(-d, 0.0) + np.log(1.0 + np.exp(-np.abs(d)))))",
        dg.ROUNDED_TO_ZERO),
    "a sum for the mean": (f"def ranking_loss(r_pref, r_rej):\n    {D}\n    return float(np.sum({SOFTPLUS}))",
                           dg.SUM_FOR_MEAN),
    "swapped arguments": (
        "def ranking_loss(r_pref, r_rej):\n    d = np.asarray(r_rej, dtype=float) - np.asarray(r_pref, dtype=float)\n"
        f"    return float(np.mean({SOFTPLUS}))", dg.SWAPPED_ARGS),
    "flipped sign": (f"def ranking_loss(r_pref, r_rej):\n    {D}\n    return -float(np.mean({SOFTPLUS}))", dg.SIGN),
    "per-pair array for one number": (f"def ranking_loss(r_pref, r_rej):\n    {D}\n    return {SOFTPLUS}",
                                      dg.ARRAY_FOR_SCALAR),
    "numbers only (if and math)": (
        "def ranking_loss(r_pref, r_rej):\n    d = r_pref - r_rej\n    if d >= 0:\n"
        "        return math.log1p(math.exp(-d))\n    return -d + math.log1p(math.exp(d))", dg.NUMBERS_ONLY),
    "float32 arithmetic": (
        "def ranking_loss(r_pref, r_rej):\n    d = np.asarray(r_pref, dtype=np.float32) - np.asarray(r_rej, dtype=np.float32)\n"
        f"    return float(np.mean({SOFTPLUS}))", dg.FLOAT32),
}

SIG = "e = np.exp(-np.abs(d))\n    s = np.where(d >= 0, e / (1.0 + e), 1.0 / (1.0 + e))"
WRONG_GRAD = {  # ranking_loss_grad(r_pref, r_rej)
    "not divided by the batch size": (
        f"def ranking_loss_grad(r_pref, r_rej):\n    {D}\n    {SIG}\n    return (-s)[()], s[()]", dg.GRAD_NOT_DIVIDED),
    "results swapped (direction reversed)": (
        f"def ranking_loss_grad(r_pref, r_rej):\n    {D}\n    {SIG}\n    s = s / d.size\n    return s[()], (-s)[()]",
        dg.SWAPPED_OR_SIGN),
    "1 - sigmoid (rounds to 0)": (
        f"def ranking_loss_grad(r_pref, r_rej):\n    {D}\n    s = (1.0 - 1.0 / (1.0 + np.exp(-d))) / d.size\n"
        "    return (-s)[()], s[()]", dg.ROUNDED_TO_ZERO),
    "one number for the array of derivatives": (
        f"def ranking_loss_grad(r_pref, r_rej):\n    {D}\n    {SIG}\n    s = s / d.size\n"
        "    return float(np.sum(-s)), float(np.sum(s))", dg.SCALAR_FOR_ARRAY),
    "typed-in sigmoid(-d) (overflow)": (
        f"def ranking_loss_grad(r_pref, r_rej):\n    {D}\n    s = np.exp(-d) / (1.0 + np.exp(-d)) / d.size\n"
        "    return (-s)[()], s[()]", dg.OVERFLOW),
}

WRONG_STEP = {  # gradient_step(r_pref, r_rej, lr), with a correct ranking_loss_grad
    "a step up the gradient": (
        "def gradient_step(r_pref, r_rej, lr):\n    g_pref, g_rej = ranking_loss_grad(r_pref, r_rej)\n"
        "    return np.asarray(r_pref) + lr * g_pref, np.asarray(r_rej) + lr * g_rej",
        "the step went up the gradient"),
}

WRONG_WEIGHTS = {  # pair_weights(prompt_ids)
    "1/|D| for every pair": ("def pair_weights(prompt_ids):\n    return np.full(len(prompt_ids), 1.0 / len(prompt_ids))",
                            "every pair got 1/|D|"),
}

WRONG_LETTERS = {  # answer cell text -> test cell, sentence
    "a description for a letter": ('answer_q02 = "C: the pair with the largest gap"', "q02_least_loss_pair",
                                   dg.DESCRIPTION_FOR_LETTER),
    "a number for a letter": ("answer_q12 = 0.80", "q12_above_chance", dg.NUMBER_FOR_LETTER),
}


def notebook_namespace(code: str) -> dict:
    """Run ``code`` as a notebook cell would (its lines in linecache, as IPython keeps them)."""
    import linecache

    name = f"<cell {abs(hash(code))}>"
    linecache.cache[name] = (len(code), None, code.splitlines(True), name)
    ns = {"__name__": "__main__", "np": np, "math": __import__("math")}
    exec(compile(code, name, "exec"), ns)
    return ns


def rendered(exc: BaseException) -> str:
    render = getattr(exc, "_render_traceback_", None)
    assert render is not None, f"{type(exc).__name__} has no short rendering: {exc}"
    return "\n".join(render())


# --------------------------------------------------------------------------
# in-process: every kind of wrong implementation is named


def _loss_inputs():
    return [(0.0, 0.0), (2.0, 1.0), (np.array([2.0, 0.0, -1.5]), np.array([1.0, 0.0, 0.5])), (-1000.0, 0.0), (50.0, 0.0)]


@pytest.mark.parametrize("kind", sorted(WRONG_LOSS))
def test_a_wrong_loss_is_diagnosed_in_process(kind):
    code, sentence = WRONG_LOSS[kind]
    f = notebook_namespace(code)["ranking_loss"]
    where = "notebook 02, paragraph 'The stable form'"
    with pytest.raises(BaseException) as info:
        for args in _loss_inputs():
            g.agrees(f, rm.ranking_loss, *args, rtol=1e-12 if kind == "float32 arithmetic" else 1e-9, where=where)
    text = rendered(info.value)
    assert text.startswith("Check failed: ranking_loss(")
    assert f"Likely misconception: {sentence}" in text
    assert f"Where to look: {where}." in text
    assert "Traceback" not in text and "checks.py" not in text


@pytest.mark.parametrize("kind", sorted(WRONG_GRAD))
def test_a_wrong_gradient_is_diagnosed_in_process(kind):
    code, sentence = WRONG_GRAD[kind]
    f = notebook_namespace(code)["ranking_loss_grad"]
    with pytest.raises(AssertionError) as info:
        for args in [(0.0, 0.0), (np.array([2.0, -1.0, 0.3]), np.array([3.0, 1.0, 0.3])),
                     (np.array([800.0, -800.0]), np.zeros(2)), (50.0, 0.0)]:
            g.agrees(f, rm.ranking_loss_grad, *args, parts=("dL/dr_pref", "dL/dr_rej"), atol=1e-300)
    assert f"Likely misconception: {sentence}" in rendered(info.value)


def test_a_right_implementation_passes_and_a_cheat_is_still_refused():
    ns = notebook_namespace(f"def ranking_loss(r_pref, r_rej):\n    {D}\n    return float(np.mean({SOFTPLUS}))")
    for args in _loss_inputs():
        assert g.agrees(ns["ranking_loss"], rm.ranking_loss, *args, rtol=1e-12)
    cheat = notebook_namespace("import rmteach.numpy as R\ndef ranking_loss(a, b):\n    return R.ranking_loss(a, b)")
    with pytest.raises(g.NotOwnWork) as info:
        g.agrees(cheat["ranking_loss"], rm.ranking_loss, 1.0, 0.0, where="notebook 02, paragraph 'The stable form'")
    assert "no credit" in rendered(info.value) and "Where to look: notebook 02" in rendered(info.value)


def test_an_exception_keeps_its_type_and_shows_only_the_students_lines():
    ns = notebook_namespace(WRONG_LOSS["numbers only (if and math)"][0])
    with pytest.raises(ValueError) as info:  # except ValueError in a test cell still works
        g.call(ns["ranking_loss"], np.ones(3), np.zeros(3), where="notebook 02, paragraph 'The stable form'")
    text = rendered(info.value)
    assert "raised ValueError" in text and dg.NUMBERS_ONLY in text
    assert "In your code:" in text and "if d >= 0:" in text and "checks.py" not in text


def test_numeric_answers_never_show_the_key():
    key = float(rm.ranking_loss(np.array([1.0, -6.0]), np.zeros(2)))
    summed = float(rm.ranking_loss(np.array([1.0, -6.0]), np.zeros(2), reduction="sum"))
    with pytest.raises(AssertionError) as info:
        g.close(summed, key, "loss_q12", rtol=1e-6, show_expected=False, batch=2,
                mistakes={"this is the summed loss": summed})
    text = rendered(info.value)
    assert "this is the summed loss" in text and repr(key)[:6] not in text
    with pytest.raises(AssertionError) as info:  # the patterns that would tell the key are not used
        g.close(-key, key, "loss_q12", show_expected=False)
    assert dg.SIGN not in rendered(info.value)
    with pytest.raises(AssertionError) as info:
        g.close(2 * key, key, "loss_q12", show_expected=False, batch=2)
    assert dg.SUM_FOR_MEAN not in rendered(info.value) and repr(key)[:6] not in rendered(info.value)


def test_why_is_shown_for_the_wrong_option_chosen_only():
    why = {"A": "a low rejected score is not a large gap.", "E": "large rewards are not a large gap."}
    with pytest.raises(AssertionError) as info:
        g.choice_is("E", "C", "ABCDE", "answer_q02", why=why, where="notebook 02, section 'X'")
    text = rendered(info.value)
    assert why["E"] in text and why["A"] not in text and "'C'" not in text
    with pytest.raises(AssertionError) as info:  # no why for this option: the plain message
        g.choice_is("B", "C", "ABCDE", "answer_q02", why=why)
    assert str(info.value) == "answer_q02 = 'B' is not the right choice"
    with pytest.raises(AssertionError) as info:  # a set: the wrongly chosen options only, never the missing ones
        g.choices_are({"A", "B"}, {"B", "C"}, "ABCDE", "answer_q15", why={"A": "aaa", "C": "ccc"})
    assert "aaa" in rendered(info.value) and "ccc" not in rendered(info.value)


def test_tampering_with_the_diagnosis_is_detected():
    original = dg.value_mistakes
    try:
        dg.value_mistakes = lambda *a, **k: []
        with pytest.raises(g.Tampering, match="rmteach.grading.diagnose.value_mistakes was replaced"):
            g.close(1.0, 1.0, "x")
    finally:
        dg.value_mistakes = original


# --------------------------------------------------------------------------
# the release notebooks in a real kernel


@pytest.fixture(scope="module")
def course(tmp_path_factory):
    course = gcourse.copy_course(COURSE, tmp_path_factory.mktemp("feedback") / "course")
    release.generate_assignments(course, assignments=[A2, A3], validate=False, log=lambda *_: None)
    return course


def _nbs(course, assignment, name):
    src = nbformat.read(course / "source" / assignment / name, as_version=4)
    rel = nbformat.read(course / "release" / assignment / name, as_version=4)
    return src, rel


def _gid(cell):
    return cell.metadata.get("nbgrader", {}).get("grade_id")


def _probe_notebook(src, rel, probes):
    """The release with every answer filled in, then for each probe: a cell with the wrong code
    and a copy of the released test cell (its visible tests only)."""
    nb = gdemo.build_submission(rel, src, lambda gid: True)
    tests = {_gid(c): c.source for c in rel.cells}
    for label, (code, test_gid) in probes.items():
        nb.cells.append(nbformat.v4.new_code_cell(code, metadata={"probe": label, "role": "code"}))
        nb.cells.append(nbformat.v4.new_code_cell(tests[test_gid], metadata={"probe": label, "role": "test"}))
    return nb


def _run(nb, folder):
    folder.mkdir(parents=True, exist_ok=True)
    NotebookClient(nb, timeout=120, allow_errors=True, resources={"metadata": {"path": str(folder)}}).execute()
    return nb


def _seen(nb) -> dict:
    """{probe: (ename, what the student sees)} of each probe's test cell; None when it passed."""
    out = {}
    for cell in nb.cells:
        if cell.metadata.get("role") == "code":
            errors = [o for o in cell.outputs if o.output_type == "error"]
            assert not errors, (cell.metadata["probe"], errors[0].get("evalue"))
        if cell.metadata.get("role") == "test":
            errors = [o for o in cell.outputs if o.output_type == "error"]
            out[cell.metadata["probe"]] = (errors[0].ename, ANSI.sub("", "\n".join(errors[0].traceback))) if errors else None
    return out


@pytest.fixture(scope="module")
def seen(course, tmp_path_factory):
    folder = tmp_path_factory.mktemp("probes")
    src2, rel2 = _nbs(course, A2, NB2)
    probes2 = {k: (code, "ranking_loss_tests") for k, (code, _) in WRONG_LOSS.items()}
    probes2.update({k: (code, "pair_weights_tests") for k, (code, _) in WRONG_WEIGHTS.items()})
    probes2.update({k: (code, gid) for k, (code, gid, _) in WRONG_LETTERS.items()})
    solution = next(c.source for c in src2.cells if _gid(c) == "ranking_loss_impl")
    probes2["control: the solution"] = ("\n".join(line for line in solution.splitlines() if "### " not in line),
                                        "ranking_loss_tests")
    src3, rel3 = _nbs(course, A3, NB3)
    probes3 = {k: (code, "ranking_loss_grad_tests") for k, (code, _) in WRONG_GRAD.items()}
    solution_grad = next(c.source for c in src3.cells if _gid(c) == "ranking_loss_grad_impl")
    solution_grad = "\n".join(line for line in solution_grad.splitlines() if "### " not in line)
    probes3.update({k: (code + "\n" + solution_grad, "gradient_step_tests") for k, (code, _) in WRONG_STEP.items()})
    out = {}
    out.update(_seen(_run(_probe_notebook(src2, rel2, probes2), folder / "02")))
    out.update(_seen(_run(_probe_notebook(src3, rel3, probes3), folder / "03")))
    return out


ALL_WRONG = {**{k: v[1] for k, v in WRONG_LOSS.items()}, **{k: v[1] for k, v in WRONG_GRAD.items()},
             **{k: v[1] for k, v in WRONG_STEP.items()}, **{k: v[1] for k, v in WRONG_WEIGHTS.items()},
             **{k: v[2] for k, v in WRONG_LETTERS.items()}}


@pytest.mark.parametrize("kind", sorted(ALL_WRONG))
def test_the_release_names_the_misconception_of_each_wrong_answer(seen, kind):
    assert seen[kind] is not None, f"{kind}: the visible tests passed"
    ename, text = seen[kind]
    assert text.startswith("Check failed: "), text[:200]
    assert ALL_WRONG[kind] in text, text
    assert re.search(r"Where to look: notebook 0\d, (section|paragraph) '", text), text
    # a short message: no traceback, no frame of the grading code or of the test cell
    assert "Traceback" not in text and "rmteach/grading" not in text and "site-packages" not in text
    assert "_g." not in text and "assert " not in text
    assert len(text.splitlines()) <= 8, text


def test_the_release_shows_what_was_checked_got_and_expected_for_implementations(seen):
    _, text = seen["typed-in formula (overflow)"]
    assert "ranking_loss(-1000.0, 0.0): got inf, expected 1000.0" in text
    _, text = seen["not divided by the batch size"]
    assert "ranking_loss_grad of a batch of 3 pairs, dL/dr_pref at index [0]: got" in text and "expected" in text
    _, text = seen["numbers only (if and math)"]
    assert "raised" in text and "In your code:" in text and "if d >= 0:" in text


def test_the_solution_passes_the_visible_tests(seen):
    assert seen["control: the solution"] is None


# --------------------------------------------------------------------------
# autograde + feedback HTML: the misconception of each wrong choice, no hidden test, no key


def _replace(nb, gid, old, new):
    (cell,) = [c for c in nb.cells if _gid(c) == gid]
    assert old in cell.source, (gid, old)
    cell.source = cell.source.replace(old, new)


WRONG_CHOICES_2 = {  # (answer cell, solution text, wrong text, why shown)
    "answer_q01": ("q01_numbers", 'answer_q01 = "A"', 'answer_q01 = "B"', "a prompt with fewer pairs gives each of them more weight"),
    "answer_q02": ("q02_answer", 'answer_q02 = "C"', 'answer_q02 = "E"', "large rewards are not a large gap"),
    "answer_q14": ("q14_answer", 'answer_q14 = "C"', 'answer_q14 = "A"', "higher scores are not more confidence"),
    "answer_q15": ("q15_answer", 'answer_q15 = {"B", "C", "E"}', 'answer_q15 = {"A", "B", "C", "E"}',
                   "2.0 is above 1.0: the model agrees with the label"),
    "answer_q12": ("q12_answer", 'answer_q12 = "B"', 'answer_q12 = "A"', "does not mean most pairs are wrong"),
    "answer_q11": ("q11_answer", '"run_5": "D"', '"run_5": "B"', "in this run it does not climb"),
}
WRONG_CHOICES_3 = {
    "answer_q06": ("q06_answer", 'answer_q06 = "B"', 'answer_q06 = "D"', "that is a step up the gradient"),
    "answer_q17": ("q17_answers", 'answer_q17 = "B"', 'answer_q17 = "C"', "never pushes the scores further from the label"),
    "answer_q18": ("q18_numbers", 'answer_q18 = "B"', 'answer_q18 = "C"', "which pair, at -3 or at +3, moved further"),
}


@pytest.fixture(scope="module")
def feedback(course):
    src2, rel2 = _nbs(course, A2, NB2)
    nb2 = gdemo.build_submission(rel2, src2, lambda gid: True)
    for gid, old, new, _ in WRONG_CHOICES_2.values():
        _replace(nb2, gid, old, new)
    _replace(nb2, "q12_numbers", "loss_q12 = ranking_loss(Q12_PREF, Q12_REJ)", "loss_q12 = 10 * ranking_loss(Q12_PREF, Q12_REJ)")
    _replace(nb2, "q01_numbers", "loss_q01_expected = expected_ranking_loss(Q01_PREF, Q01_REJ, weights_q01)",
             "loss_q01_expected = expected_ranking_loss(Q01_PREF, Q01_REJ, weights_q01) + 0.01")
    (impl,) = [c for c in nb2.cells if _gid(c) == "ranking_loss_impl"]
    impl.source = WRONG_LOSS["typed-in formula (overflow)"][0]
    src3, rel3 = _nbs(course, A3, NB3)
    nb3 = gdemo.build_submission(rel3, src3, lambda gid: True)
    for gid, old, new, _ in WRONG_CHOICES_3.values():
        _replace(nb3, gid, old, new)
    _replace(nb3, "q06_numbers", "gradient_step(2.0, 3.0, 1.0)", "gradient_step(2.0, 3.0, -1.0)")  # a step up the gradient
    gdemo.write_submission(course, "wren", A2, {NB2: nb2})
    gdemo.write_submission(course, "wren", A3, {NB3: nb3})
    results = pipeline.autograde(course, log=lambda *_: None, sandbox=SANDBOX_MODE)
    assert not [r for r in results if r.failed], [(r.student, r.status) for r in results]
    files = release.generate_feedback(course, log=lambda *_: None)
    text = {p.parent.name: " ".join(html.unescape(re.sub(r"<[^>]+>", "", p.read_text())).split()) for p in files}
    return types.SimpleNamespace(text=text, course=course, src={A2: src2, A3: src3})


def test_feedback_says_which_misconception_each_wrong_choice_reflects(feedback):
    for assignment, wrong in ((A2, WRONG_CHOICES_2), (A3, WRONG_CHOICES_3)):
        text = feedback.text[assignment]
        for name, (_, _, _, why) in wrong.items():
            assert why in text, (assignment, name)
        assert text.count("Likely misconception:") >= len(wrong)
        assert "Where to look: notebook 0" in text


def test_feedback_names_wrong_numbers_without_the_key(feedback):
    text = feedback.text[A2]
    assert "loss_q12: got" in text and "which is not the right value" in text
    q12 = np.array([1.2, 0.3, -0.5, 2.0, 0.8, 1.1, -0.2, 0.4, 3.0, -1.0]), np.array([0.2, -0.7, -1.5, 1.0, -0.2, 0.1, -1.2, -0.6, 2.0, 5.0])
    assert "this is the summed loss" in text
    w = np.array([1 / 9, 1 / 9, 1 / 9, 1 / 3, 1 / 6, 1 / 6])
    pref, rej = np.array([1.0, 0.5, 2.0, -1.0, 0.3, 1.2]), np.array([0.0, 0.8, -0.5, 0.5, 0.6, 0.2])
    keys = [float(rm.ranking_loss(*q12)), float(rm.ranking_loss(pref, rej, weights=w, reduction="sum"))]
    gp, gr = (float(x) for x in rm.ranking_loss_grad(2.0, 3.0))
    keys3 = [2.0 - gp, 3.0 - gr]
    for key in keys:
        assert f"{key:.6f}"[:7] not in text and repr(key)[:8] not in text, key
    for key in keys3:
        assert repr(key)[:8] not in feedback.text[A3], key
    assert "a step up the gradient (r + dL/dr)" in feedback.text[A3]


def test_feedback_shows_the_implementation_diagnosis_and_no_grading_traceback(feedback):
    text = feedback.text[A2]
    assert dg.OVERFLOW in text
    assert "rmteach/grading/checks.py" not in text and "Traceback (most recent call last)" not in text


def test_feedback_reveals_no_hidden_test(feedback):
    for assignment, src in feedback.src.items():
        hidden, visible = set(), set()
        for cell in src.cells:
            inside = False
            for line in cell.source.splitlines():
                if "BEGIN HIDDEN TESTS" in line:
                    inside = True
                elif "END HIDDEN TESTS" in line:
                    inside = False
                elif len(line.strip()) > 30:
                    (hidden if inside else visible).add(" ".join(line.split()))
        hidden -= visible
        assert len(hidden) > 20
        text = feedback.text[assignment]
        assert "HIDDEN TESTS" not in text
        leaked = [line for line in hidden if line in text]
        assert not leaked, (assignment, leaked[:3])
