"""Assignment 06 (from reward model to policy: PPO and DPO), checked on its own.

* every answer key recomputed here with rmteach, from the executed solution cells;
* the solution passes every test cell (visible and hidden), in-process;
* each plausible wrong idea fails a *visible* check of the release notebook (min for max in
  PPO, beta outside DPO's sigmoid, k3 without expm1, unweighted ECE bins, ...);
* the rows of assignment 06 in assignments/COVERAGE.md point at its graded cells;
* on a temporary copy of the course holding only this assignment: the source validates, the
  release validates with --invert, and the demo's three students (full solution, untouched
  release, every other answer) get the autograded points the demo expects.

The generic checks of every source notebook (clean JSON, nbgrader cells that say what they are,
points that add up) are in tests/test_assignments.py; nothing here writes into assignments/.
"""

from __future__ import annotations

import math
import re
from pathlib import Path

import nbformat
import numpy as np
import pytest

from rmteach import evaluation as ev
from rmteach import numpy as rm
from rmteach import rlhf
from _sandbox_mode import MODE as SANDBOX_MODE  # noqa: E402

REPO = Path(__file__).resolve().parents[1]
COURSE = REPO / "assignments"
NAME = "06_policy_optimization"
SOURCE = COURSE / "source" / NAME / "policy_optimization.ipynb"


def nbg(cell) -> dict:
    return cell.get("metadata", {}).get("nbgrader", {})


def strip_hidden(source: str) -> str:
    return re.sub(r"### BEGIN HIDDEN TESTS.*?### END HIDDEN TESTS\n?", "", source, flags=re.S)


@pytest.fixture(scope="module")
def notebook():
    return nbformat.read(SOURCE, as_version=4)


@pytest.fixture(scope="module")
def cells(notebook):
    return {nbg(c)["grade_id"]: c for c in notebook.cells}


def run(ns: dict, source: str) -> dict:
    """Run ``source`` as a notebook cell: functions it defines get ``__module__ == '__main__'``."""
    exec(compile(source, "<cell>", "exec"), ns)
    return ns


def solved_namespace(notebook) -> dict:
    """Every cell but the test cells, run in order (the solution, as a student's kernel holds it)."""
    ns = {"__name__": "__main__"}
    for cell in notebook.cells:
        if cell.cell_type == "code" and not nbg(cell)["grade"]:
            run(ns, cell.source)
    return ns


@pytest.fixture(scope="module")
def solved(notebook):
    return solved_namespace(notebook)


# --------------------------------------------------------------------------
# answer keys, recomputed with rmteach


def test_keys_dpo(solved):
    ns = solved
    data, beta = ns["IMPLICIT"], ns["IMPLICIT_BETA"]
    want = [float(rm.dpo_implicit_reward(math.fsum(data[f"policy_{y}"]), math.fsum(data[f"ref_{y}"]), beta)) for y in ("y1", "y2")]
    assert ns["implicit_rewards"] == pytest.approx(want, rel=1e-12)
    assert want == pytest.approx([0.145, -0.08], rel=1e-9)
    p = float(rm.preference_probability(*want))
    assert ns["p_y1_preferred"] == pytest.approx(p, rel=1e-12)
    # the same probability is exp(-dpo_loss) of the pair, y1 as the chosen response
    loss = float(rm.dpo_loss(math.fsum(data["policy_y1"]), math.fsum(data["policy_y2"]),
                             math.fsum(data["ref_y1"]), math.fsum(data["ref_y2"]), beta=beta))
    assert math.exp(-loss) == pytest.approx(p, rel=1e-12)
    # the misconceptions give other numbers: per-token means, no beta, no reference
    mean_tokens = [beta * (np.mean(data[f"policy_{y}"]) - np.mean(data[f"ref_{y}"])) for y in ("y1", "y2")]
    assert abs(mean_tokens[0] - want[0]) > 1e-3
    assert abs(float(rm.preference_probability(want[0] / beta, want[1] / beta)) - p) > 0.1
    # the implicit reward of the exact optimum is r - beta log Z(x), Z differing per prompt
    ref = {"x1": np.array([0.5, 0.3, 0.2]), "x2": np.array([0.1, 0.6, 0.3])}
    r = {"x1": np.array([1.0, 0.2, -0.5]), "x2": np.array([2.0, 1.5, 3.0])}
    shifts = []
    for x in ref:
        rhat = rm.dpo_implicit_reward(np.log(rlhf.kl_regularized_policy(ref[x], r[x], 0.5)), np.log(ref[x]), 0.5)
        log_z = math.log(math.fsum(ref[x] * np.exp(r[x] / 0.5)))
        assert np.allclose(rhat, r[x] - 0.5 * log_z, rtol=0, atol=1e-12)
        shifts.append(0.5 * log_z)
    assert abs(shifts[0] - shifts[1]) > 0.5  # not one constant for all prompts (option C)
    assert ns["answer_implicit_reward"] == "B"


def test_keys_ppo(solved):
    ns = solved
    rho, adv, eps = np.array(ns["PPO_BATCH"]["ratio"]), np.array(ns["PPO_BATCH"]["advantage"]), ns["PPO_EPS"]
    assert ns["clip_fraction_ratio"] == float(rlhf.clip_fraction(rho, eps)) == 5 / 8
    # a sample gets no gradient when nudging its ratio leaves rmteach's loss unchanged
    flat = []
    for i in range(rho.size):
        up, down = rho.copy(), rho.copy()
        up[i] += 1e-6
        down[i] -= 1e-6
        flat.append(rlhf.ppo_clip_loss(up, adv, eps) == rlhf.ppo_clip_loss(down, adv, eps))
    assert ns["clip_fraction_no_gradient"] == float(np.mean(flat)) == 3 / 8
    # the two definitions differ on this batch: outside the region against the advantage still has a gradient
    assert ns["clip_fraction_ratio"] != ns["clip_fraction_no_gradient"]
    # the visible test's numbers
    assert float(rlhf.ppo_clip_loss([1.5, 0.5, 0.5, 1.1], [1.0, -1.0, 1.0, 2.0], 0.2)) == pytest.approx(-0.775, rel=1e-12)
    for r_, a_, want in ((1.5, 1.0, -1.2), (0.5, -1.0, 0.8), (0.5, 1.0, -0.5)):
        assert float(rlhf.ppo_clip_loss([r_], [a_], 0.2)) == pytest.approx(want, rel=1e-12)


def test_keys_kl(solved):
    assert solved["answer_kl_estimator"] == "C"
    rng = np.random.default_rng(3)
    for _ in range(5):
        pi, ref = rng.dirichlet(np.ones(6)), rng.dirichlet(np.ones(6))
        k = rlhf.kl_estimates(np.log(pi), np.log(ref))
        kl = float(rlhf.categorical_kl(pi, ref))
        assert math.fsum(pi * k["k1"]) == pytest.approx(kl, abs=1e-12)  # unbiased ...
        assert math.fsum(pi * k["k3"]) == pytest.approx(kl, abs=1e-12)
        assert abs(math.fsum(pi * k["k2"]) - kl) > 1e-6  # ... k2 is not
        assert np.all(k["k2"] >= 0) and np.all(k["k3"] >= 0)
    assert np.any(k["k1"] < 0)  # k1 goes negative on some sample
    # the visible test's literals: e^l - 1 - l at l = +-1e-7
    for l_, want in ((1e-7, 5.0000001666666706e-15), (-1e-7, 4.999999833333337e-15)):
        got = float(rlhf.kl_estimates(min(-l_, 0.0), min(l_, 0.0))["k3"])
        assert got == pytest.approx(want, rel=1e-15)


def test_keys_overoptimization(solved):
    log = solved["OVEROPT"]
    best = int(np.argmax(log["gold_reward"]))
    assert solved["overopt_step"] == log["step"][best] == 2000
    assert solved["overopt_sqrt_kl"] == pytest.approx(math.sqrt(log["kl"][best]), rel=1e-15) and solved["overopt_sqrt_kl"] == 4.0
    assert np.all(np.diff(log["proxy_reward"]) > 0)  # the proxy never stops rising
    assert int(np.argmax(log["proxy_reward"])) != best
    # the table in the question's markdown is the data cell's
    text = nbformat.read(SOURCE, as_version=4).cells
    (question,) = [c for c in text if nbg(c)["grade_id"] == "overopt_question"]
    rows = re.findall(r"^\| (\d+) \| (\d+) \| ([\d.]+) \| ([\d.]+) \|$", question.source, flags=re.M)
    assert [tuple(float(v) for v in row) for row in rows] == list(zip(log["step"], log["kl"], log["proxy_reward"], log["gold_reward"]))


def test_keys_case_study(solved, cells):
    wins = solved["WINS"]
    got = solved["win_rate_intervals"]
    for key, (s, n) in wins.items():
        assert got[key] == pytest.approx(ev.wilson_interval(s, n, 0.95), abs=1e-12)
    ci = {k: ev.wilson_interval(s, n) for k, (s, n) in wins.items()}
    # the story the rubric tells: current features overlap, the newest feature does not, DPO's includes 0.5
    assert ci["ppo_current"][0] < ci["dpo_current"][1]
    assert ci["dpo_new"][1] < ci["ppo_new"][0] and ci["dpo_new"][0] < 0.5 < ci["dpo_new"][1]
    rubric = cells["case_written"].source
    for key in ci:
        lo, hi = ci[key]
        assert f"[{lo:.3f}, {hi:.3f}]" in rubric, (key, lo, hi)
    question = cells["case_question"].source
    for key, (s, n) in wins.items():
        assert f"{s} / {n}" in question
    # Wald intervals (a misconception) miss the 1e-4 tolerance on at least one of the four
    def wald(s, n):
        p = s / n
        h = 1.959963984540054 * math.sqrt(p * (1 - p) / n)
        return p - h, p + h
    assert max(abs(a - b) for k, (s, n) in wins.items() for a, b in zip(wald(s, n), ci[k])) > 1e-3


# --------------------------------------------------------------------------
# the test cells: the solution passes them all, the wrong ideas fail a visible one


def test_solution_passes_every_test_cell(notebook):
    ns = {"__name__": "__main__"}
    for cell in notebook.cells:
        if cell.cell_type == "code":
            run(ns, cell.source)  # a failing test cell raises here


SETUP = "import math\n\nimport numpy as np\n"

WRONG = {  # test cell -> {wrong idea: an implementation of it}
    "dpo_loss_tests": {
        "beta outside the sigmoid": (
            "def dpo_loss(pc, pr, rc, rr, beta):\n"
            "    d = (np.asarray(pc) - rc) - (np.asarray(pr) - rr)\n"
            "    return float(beta * np.mean(np.logaddexp(0.0, -d)))"),
        "beta left out": (
            "def dpo_loss(pc, pr, rc, rr, beta):\n"
            "    d = (np.asarray(pc) - rc) - (np.asarray(pr) - rr)\n"
            "    return float(np.mean(np.logaddexp(0.0, -d)))"),
        "rejected minus chosen": (
            "def dpo_loss(pc, pr, rc, rr, beta):\n"
            "    if beta <= 0:\n        raise ValueError('beta')\n"
            "    d = beta * ((np.asarray(pr) - rr) - (np.asarray(pc) - rc))\n"
            "    return float(np.mean(np.logaddexp(0.0, -d)))"),
        "the typed-in -log(sigmoid) (overflows)": (
            "def dpo_loss(pc, pr, rc, rr, beta):\n"
            "    if beta <= 0:\n        raise ValueError('beta')\n"
            "    d = beta * ((np.asarray(pc) - rc) - (np.asarray(pr) - rr))\n"
            "    return float(np.mean(-np.log(1.0 / (1.0 + np.exp(-d)))))"),
        "a sum over pairs": (
            "def dpo_loss(pc, pr, rc, rr, beta):\n"
            "    if beta <= 0:\n        raise ValueError('beta')\n"
            "    d = beta * ((np.asarray(pc) - rc) - (np.asarray(pr) - rr))\n"
            "    return float(np.sum(np.logaddexp(0.0, -d)))"),
        "no check of beta": (
            "def dpo_loss(pc, pr, rc, rr, beta):\n"
            "    d = beta * ((np.asarray(pc) - rc) - (np.asarray(pr) - rr))\n"
            "    return float(np.mean(np.logaddexp(0.0, -d)))"),
    },
    "ppo_clip_loss_tests": {
        "min instead of max (the surrogate's min negated without flipping it)": (
            "def ppo_clip_loss(ratio, advantages, eps=0.2):\n"
            "    r, a = np.asarray(ratio), np.asarray(advantages)\n"
            "    return float(np.mean(np.minimum(-a * r, -a * np.clip(r, 1 - eps, 1 + eps))))"),
        "only the clipped term": (
            "def ppo_clip_loss(ratio, advantages, eps=0.2):\n"
            "    r, a = np.asarray(ratio), np.asarray(advantages)\n"
            "    return float(np.mean(-a * np.clip(r, 1 - eps, 1 + eps)))"),
        "no clipping": (
            "def ppo_clip_loss(ratio, advantages, eps=0.2):\n"
            "    r, a = np.asarray(ratio), np.asarray(advantages)\n"
            "    return float(np.mean(-a * r))"),
        "the surrogate, not the loss (sign)": (
            "def ppo_clip_loss(ratio, advantages, eps=0.2):\n"
            "    r, a = np.asarray(ratio), np.asarray(advantages)\n"
            "    return float(np.mean(np.minimum(a * r, a * np.clip(r, 1 - eps, 1 + eps))))"),
        "a sum over samples": (
            "def ppo_clip_loss(ratio, advantages, eps=0.2):\n"
            "    r, a = np.asarray(ratio), np.asarray(advantages)\n"
            "    return float(np.sum(np.maximum(-a * r, -a * np.clip(r, 1 - eps, 1 + eps))))"),
        "no check of eps": (
            "def ppo_clip_loss(ratio, advantages, eps=0.2):\n"
            "    r, a = np.asarray(ratio), np.asarray(advantages)\n"
            "    return float(np.mean(np.maximum(-a * r, -a * np.clip(r, 1 - eps, 1 + eps))))"),
    },
    "kl_estimates_tests": {
        "k3 typed in as exp(l) - 1 - l": (
            "def kl_estimates(lp, lq):\n"
            "    l = np.asarray(lq, dtype=float) - np.asarray(lp, dtype=float)\n"
            "    return {'k1': -l, 'k2': l * l / 2, 'k3': np.exp(l) - 1 - l}"),
        "the log-ratio the other way round": (
            "def kl_estimates(lp, lq):\n"
            "    l = np.asarray(lp, dtype=float) - np.asarray(lq, dtype=float)\n"
            "    return {'k1': -l, 'k2': l * l / 2, 'k3': np.expm1(l) - l}"),
        "k2 without the 1/2": (
            "def kl_estimates(lp, lq):\n"
            "    l = np.asarray(lq, dtype=float) - np.asarray(lp, dtype=float)\n"
            "    return {'k1': -l, 'k2': l * l, 'k3': np.expm1(l) - l}"),
        "a tuple, not a dict": (
            "def kl_estimates(lp, lq):\n"
            "    l = np.asarray(lq, dtype=float) - np.asarray(lp, dtype=float)\n"
            "    return (-l, l * l / 2, np.expm1(l) - l)"),
    },
    "ece_tests": {
        "bins averaged without their weights": (
            "def expected_calibration_error(probs, labels, n_bins=10):\n"
            "    p, y = np.asarray(probs, dtype=float), np.asarray(labels, dtype=float)\n"
            "    if np.any((p < 0) | (p > 1)):\n        raise ValueError('probs')\n"
            "    idx = np.minimum((p * n_bins).astype(int), n_bins - 1)\n"
            "    gaps = [abs(y[idx == m].mean() - p[idx == m].mean()) for m in range(n_bins) if np.any(idx == m)]\n"
            "    return float(np.mean(gaps))"),
        "divided by the number of bins": (
            "def expected_calibration_error(probs, labels, n_bins=10):\n"
            "    p, y = np.asarray(probs, dtype=float), np.asarray(labels, dtype=float)\n"
            "    if np.any((p < 0) | (p > 1)):\n        raise ValueError('probs')\n"
            "    idx = np.minimum((p * n_bins).astype(int), n_bins - 1)\n"
            "    gaps = [abs(y[idx == m].mean() - p[idx == m].mean()) for m in range(n_bins) if np.any(idx == m)]\n"
            "    return float(np.sum(gaps) / n_bins)"),
        "per-pair |y - p| (no bins)": (
            "def expected_calibration_error(probs, labels, n_bins=10):\n"
            "    p, y = np.asarray(probs, dtype=float), np.asarray(labels, dtype=float)\n"
            "    if np.any((p < 0) | (p > 1)):\n        raise ValueError('probs')\n"
            "    return float(np.mean(np.abs(y - p)))"),
        "signed gaps (no absolute value)": (
            "def expected_calibration_error(probs, labels, n_bins=10):\n"
            "    p, y = np.asarray(probs, dtype=float), np.asarray(labels, dtype=float)\n"
            "    if np.any((p < 0) | (p > 1)):\n        raise ValueError('probs')\n"
            "    idx = np.minimum((p * n_bins).astype(int), n_bins - 1)\n"
            "    return float(abs(sum(np.sum(idx == m) / p.size * (y[idx == m].mean() - p[idx == m].mean())\n"
            "                         for m in range(n_bins) if np.any(idx == m))))"),
        "p = 1 left out of the last bin": (
            "def expected_calibration_error(probs, labels, n_bins=10):\n"
            "    p, y = np.asarray(probs, dtype=float), np.asarray(labels, dtype=float)\n"
            "    if np.any((p < 0) | (p > 1)):\n        raise ValueError('probs')\n"
            "    idx = (p * n_bins).astype(int)\n"
            "    return float(sum(np.sum(idx == m) / p.size * abs(y[idx == m].mean() - p[idx == m].mean())\n"
            "                     for m in range(n_bins) if np.any(idx == m)))"),
        "no check of the probabilities": (
            "def expected_calibration_error(probs, labels, n_bins=10):\n"
            "    p, y = np.asarray(probs, dtype=float), np.asarray(labels, dtype=float)\n"
            "    idx = np.minimum((p * n_bins).astype(int), n_bins - 1)\n"
            "    return float(sum(np.sum(idx == m) / p.size * abs(y[idx == m].mean() - p[idx == m].mean())\n"
            "                     for m in range(n_bins) if np.any(idx == m)))"),
    },
}


def _cases():
    return [(cell, idea) for cell, ideas in WRONG.items() for idea in ideas]


@pytest.mark.parametrize("test_cell, idea", _cases(), ids=[f"{c}: {i}" for c, i in _cases()])
def test_a_wrong_idea_fails_a_visible_check(cells, test_cell, idea):
    ns = run(run({"__name__": "__main__"}, SETUP), WRONG[test_cell][idea])
    with pytest.raises(AssertionError):
        run(ns, strip_hidden(cells[test_cell].source))


@pytest.mark.parametrize("test_cell", sorted(WRONG))
def test_the_solution_passes_the_visible_checks_alone(cells, test_cell):
    """The visible part of each implement test cell passes on the solution (nothing relies on hidden state)."""
    impl = test_cell.replace("_tests", "_impl")
    ns = run(run({"__name__": "__main__"}, SETUP), cells[impl].source)
    run(ns, strip_hidden(cells[test_cell].source))


def test_an_answer_that_calls_rmteach_gets_no_credit(cells):
    from rmteach import grading as g

    cheat = ("from rmteach import rlhf as _ref\n\n"
             "def ppo_clip_loss(ratio, advantages, eps=0.2):\n    return _ref.ppo_clip_loss(ratio, advantages, eps)")
    ns = run(run({"__name__": "__main__"}, SETUP), cheat)
    with pytest.raises(g.NotOwnWork):
        run(ns, cells["ppo_clip_loss_tests"].source)


def test_where_names_real_notebook_sections(notebook):
    """Every where= names a '## ' heading of that notebook (notebooks not written yet are listed, then skipped)."""
    text = "\n".join(c.source for c in notebook.cells)
    places = set(re.findall(r"where=\"notebook (\d\d), section '([^']+)'", text))
    assert len(places) >= 6
    missing = []
    for number, section in sorted(places):
        paths = sorted((REPO / "notebooks").glob(f"{number}_*.ipynb"))
        if not paths:
            missing.append(f"notebook {number}, section {section!r}")
            continue
        headings = [line[3:].strip() for c in nbformat.read(paths[0], as_version=4).cells if c.cell_type == "markdown"
                    for line in c.source.splitlines() if line.startswith("## ")]
        assert section in headings, (paths[0].name, section, headings)
    if missing:
        pytest.skip("notebook not in the repository yet: " + "; ".join(missing))


# --------------------------------------------------------------------------
# COVERAGE.md: the rows of assignment 06


def coverage_rows_06():
    rows = {}
    for line in (COURSE / "COVERAGE.md").read_text().splitlines():
        m = re.match(r"\| (6\.\d) [^|]*\| (\S+) \| (.+?) \| (.+?) \|$", line)
        if m:
            rows[m.group(1)] = (m.group(2), re.findall(r"`([a-z0-9_]+)`", m.group(3)), m.group(4))
    return rows


def test_coverage_rows_point_at_the_graded_cells(notebook, cells):
    rows = coverage_rows_06()
    sections = re.findall(r"^## (6\.\d) ", "\n".join(c.source for c in notebook.cells), flags=re.M)
    assert sorted(rows) == sorted(sections) == [f"6.{i}" for i in range(1, 7)]
    listed = set()
    for section, (assignment, grade_ids, kind) in rows.items():
        assert assignment == NAME, section
        assert grade_ids, section
        for gid in grade_ids:
            cell = cells[gid]
            assert nbg(cell)["grade"] and nbg(cell)["points"] > 0, (section, gid)
            assert ("written" in kind) if cell.cell_type == "markdown" else ("auto" in kind), (section, gid)
            listed.add(gid)
    graded = {gid for gid, c in cells.items() if nbg(c)["grade"]}
    assert listed == graded, graded ^ listed  # every graded cell is listed once its section is


def test_assignments_readme_lists_the_points(notebook):
    auto = sum(nbg(c)["points"] for c in notebook.cells if nbg(c)["grade"] and c.cell_type == "code")
    written = sum(nbg(c)["points"] for c in notebook.cells if nbg(c)["grade"] and c.cell_type == "markdown")
    (row,) = [line for line in (COURSE / "README.md").read_text().splitlines() if line.startswith(f"| `{NAME}` |")]
    assert row.rstrip().endswith(f"| {auto} + {written} |"), row
    assert f"({auto + written} points: {auto} autograded, {written} written)" in notebook.cells[0].source


# --------------------------------------------------------------------------
# the nbgrader pipeline on a temporary copy holding only this assignment


def test_validate_release_and_demo_scores(tmp_path):
    import shutil

    from rmteach.grading import course as gcourse, demo as gdemo, gradebook as gbook, pipeline, release

    course = gcourse.copy_course(COURSE, tmp_path / "course")
    for folder in (course / "source").iterdir():
        if folder.name != NAME:
            shutil.rmtree(folder)
    log = []
    release.generate_assignments(course, [NAME], log=log.append)  # raises unless source OK and release --invert OK
    assert any(line.startswith("validate ") and f"source/{NAME}/" in line and ": OK" in line for line in log), log
    assert any(line.startswith("validate --invert") and f"release/{NAME}/" in line and ": OK" in line for line in log), log
    text = (course / "release" / NAME / SOURCE.name).read_text()
    for secret in ("BEGIN SOLUTION", "BEGIN HIDDEN TESTS", "Rubric", "Model answer", "_rm.dpo_loss(", "_rl.ppo_clip_loss("):
        assert secret not in text, secret
    expected = gdemo.make_demo_submissions(course)
    results = pipeline.autograde(course, log=log.append, sandbox=SANDBOX_MODE)
    assert not [r for r in results if r.failed], [r.status for r in results]
    rows = {(r["student"], r["assignment"]): r for r in gbook.grade_rows(course)}
    ada, ben, cy = (rows[(s, NAME)] for s in ("ada", "ben", "cy"))
    assert ada["auto_score"] == ada["auto_max"] == 21
    assert ada["manual_pending"] == ada["manual_max"] == 4
    assert ben["auto_score"] == 0 and ben["score"] == 0
    assert cy["auto_score"] == expected[("cy", NAME)]
    assert 0 < cy["auto_score"] < cy["auto_max"]
