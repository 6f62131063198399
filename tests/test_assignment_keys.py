"""Assignments 01, 04 and 05: every answer key recomputed with rmteach and the corrected numbers
pinned; every check points to the notebook section that teaches it, every wrong option says which
misconception it reflects; options of similar length; no stable formula printed outside a hint; and
plausible wrong implementations fail a *visible* check with a message that names the mistake.

The notebooks are executed on copies in temporary folders: nothing is written into assignments/.
"""

from __future__ import annotations

import ast
import json
import math
import re
import shutil
from pathlib import Path

import nbformat
import numpy as np
import pytest
from nbclient import NotebookClient

from rmteach import numpy as rm
from rmteach import rlhf
from rmteach.evaluation import wilson_interval

REPO = Path(__file__).resolve().parents[1]
SOURCE = REPO / "assignments" / "source"
NOTEBOOKS = REPO / "notebooks"
MINE = {
    "01": SOURCE / "01_preference_probability" / "preference_probability.ipynb",
    "04": SOURCE / "04_loss_variants" / "loss_variants.ipynb",
    "05": SOURCE / "05_rlhf_case_studies" / "rlhf_case_studies.ipynb",
}

#: every choice answer of the three assignments: its options (single choice) or [options] (a set)
CHOICES = {
    "01": {"answer_q04": ["ABCDE"], "answer_q05": ["ABCDE"], "answer_q16": ["ABCDE"]},
    "04": {"answer_q07": "ABCD", "answer_q08": "ABCD", "answer_q08_soft": "ABC", "answer_q08_weighted": "ABC",
           "answer_q08_dropped": "ABC", "answer_q09": "ABCD", "answer_q20": ["ABCDE"]},
    "05": {"answer_q22": "ABCD", "answer_q23": "AB", "answer_q24": "ABCDE", "answer_q25": ["ABCDE"],
           "answer_q28_up": ["ABCD"]},
}


def nbg(cell) -> dict:
    return cell.get("metadata", {}).get("nbgrader", {})


def load(path: Path):
    return nbformat.read(path, as_version=4)


def strip_hidden(source: str) -> str:
    return re.sub(r"### BEGIN HIDDEN TESTS.*?### END HIDDEN TESTS\n?", "", source, flags=re.S)


def strip_solution(source: str) -> str:
    return re.sub(r"### BEGIN SOLUTION.*?### END SOLUTION", "raise NotImplementedError()", source, flags=re.S)


def execute(nb, folder: Path):
    NotebookClient(nb, timeout=180, allow_errors=True, resources={"metadata": {"path": str(folder)}}).execute()
    return nb


from test_assignments import DUMP  # noqa: E402 - the cell that prints every answer, as that file runs it



@pytest.fixture(scope="module")
def answers(tmp_path_factory):
    """The three solution notebooks executed (answer cells only, on copies), every answer printed."""
    out = {}
    for number, path in MINE.items():
        folder = tmp_path_factory.mktemp(f"keys{number}")
        nb = load(path)
        nb.cells = [c for c in nb.cells if not (nbg(c)["grade"] and c.cell_type == "code")]
        nb.cells.append(nbformat.v4.new_code_cell(DUMP))
        execute(nb, folder)
        for cell in nb.cells:
            for o in cell.get("outputs", []):
                assert o.get("output_type") != "error", (path.name, cell.source[:80], o.get("evalue"))
        text = "".join(o.get("text", "") for o in nb.cells[-1].outputs)
        out[number] = json.loads(text.split("ANSWERS", 1)[1])
    return out


# --------------------------------------------------------------------------
# the keys


def test_keys_assignment_1(answers):
    a = answers["01"]
    assert a["p_q03"] == pytest.approx(float(rm.preference_probability(1.8, 0.6)), rel=1e-12)
    # Q04: one report of each kind of inconsistency, and two consistent ones that look odd
    bad = {k for k, (ra, rb, p) in a["Q04_REPORTS"].items() if abs(p - float(rm.preference_probability(ra, rb))) > 0.005}
    assert set(a["answer_q04"]) == bad == {"B", "C"}
    (ra, rb, p), = [a["Q04_REPORTS"]["B"]]
    assert ra == rb and p != 0.5                               # equal scores, P != 1/2
    ra, rb, p = a["Q04_REPORTS"]["C"]
    assert ra < rb and p > 0.5                                 # scores one way, P the other
    assert a["Q04_REPORTS"]["D"][0] < 0 and a["Q04_REPORTS"]["E"][0] > 100  # negative / large scores, still consistent
    # Q05: the probability and the loss are unchanged by a shift per prompt
    assert a["p_q05_before"] == pytest.approx(float(rm.preference_probability(1.0, -0.5)), rel=1e-12)
    assert a["p_q05_after"] == pytest.approx(float(rm.preference_probability(101.0, 99.5)), rel=1e-12)
    before = float(rm.ranking_loss(np.array([1.0, 0.2]), np.array([-0.5, 0.9])))
    after = float(rm.ranking_loss(np.array([101.0, -2.8]), np.array([99.5, -2.1])))
    assert a["loss_q05_before"] == pytest.approx(before, rel=1e-12) and a["loss_q05_after"] == pytest.approx(after, rel=1e-12)
    assert after == pytest.approx(before, rel=1e-12) == pytest.approx((math.log1p(math.exp(-1.5)) + 0.7 + math.log1p(math.exp(-0.7))) / 2, rel=1e-12)
    r = np.random.default_rng(5).normal(size=(3, 4))
    lengths = np.random.default_rng(6).integers(5, 200, (3, 4))
    i, j = np.triu_indices(4, k=1)

    def probs(s):
        return rm.preference_probability(s[:, i].ravel(), s[:, j].ravel())

    change = {"A": 3 * r, "B": r + 5, "C": r + np.array([[7.0], [-2.0], [40.0]]), "D": -r, "E": r + 0.1 * lengths}
    keeps = {k for k, s in change.items() if np.allclose(probs(s), probs(r), rtol=1e-12, atol=1e-15)}
    assert set(a["answer_q05"]) == keeps == {"B", "C"}
    labels = a["Q16_LABELS"]
    agree = {k for k, s in a["Q16_SCORES"].items()
             if rm.ranking_accuracy([s[i] for i, _ in labels], [s[j] for _, j in labels]) == 1.0}
    assert set(a["answer_q16"]) == agree == {"A", "C", "E"}


def test_keys_assignment_4(answers):
    a = answers["04"]
    x, y = np.array([0.3, -0.4]), np.array([0.1, 0.2])
    grads = [rm.ranking_loss_grad(x, y, weights=w) for w in ([2.0, 1.0], [1.0, 1.0])]
    ratio = float(grads[0][0][0] / grads[1][0][0])
    assert ratio == pytest.approx(4 / 3, rel=1e-12) and a["answer_q07"] == "C"
    assert abs(float(rm.soft_ranking_loss_grad(math.log(0.7 / 0.3), 0.0, 0.7)[0])) < 1e-15 and a["answer_q08"] == "B"
    assert math.log(0.7 / 0.3) == pytest.approx(0.847, abs=5e-4)          # option B's number
    # Q08: one step on the disputed pair (Delta = 2, 2 of 3 labelers) under each treatment
    ga, gb = rm.soft_ranking_loss_grad(np.array([2.0, 1.0]), np.zeros(2), np.array([2 / 3, 1.0]))
    assert -ga[0] + gb[0] < 0 and a["answer_q08_soft"] == "B"            # sigma(2) = 0.88 > 2/3: pulled back
    gp, gr = rm.ranking_loss_grad(np.array([2.0, 1.0]), np.zeros(2), weights=np.array([2 / 3, 1.0]))
    assert -gp[0] + gr[0] > 0 and a["answer_q08_weighted"] == "A"        # still pushed apart
    gp, gr = rm.ranking_loss_grad(np.array([2.0, 1.0]), np.zeros(2), weights=np.array([0.0, 1.0]))
    assert gp[0] == 0.0 == gr[0] and a["answer_q08_dropped"] == "C"
    # the vote weight of notebook 05 (fraction agreeing); only relative weights matter under sum(w)
    assert float(rm.ranking_loss(x, y, weights=[2 / 3, 2 / 3])) == pytest.approx(float(rm.ranking_loss(x, y)), rel=1e-15)
    # Q09: the book's sign, no coefficient: falls without bound; the added penalty is least at c = -0.25
    pa, pb = np.array([1.0, 0.5]), np.array([0.0, -0.5])
    printed = [float(rm.ranking_loss(pa + c, pb + c) - np.mean((pa + pb + 2 * c) ** 2)) for c in (0.0, 10.0, 100.0, 1000.0)]
    assert np.all(np.diff(printed) < 0) and printed[-1] < -1e6 and a["answer_q09"] == "A"
    grid = np.linspace(-1, 1, 801)
    added = [float(rm.regularized_ranking_loss(pa + c, pb + c, 1.0)) for c in grid]
    assert grid[int(np.argmin(added))] == pytest.approx(-0.25, abs=1e-9)
    r = np.array([2.0, 1.0, 0.5, -1.0])
    i, j = np.triu_indices(4, k=1)
    assert a["pairs_q10"] == i.size == math.comb(4, 2)
    assert float(rm.listwise_ranking_loss(r)) * i.size == pytest.approx(float(rm.ranking_loss(r[i], r[j], reduction="sum")), rel=1e-14)
    assert a["loss_q20"] == pytest.approx(float(rm.ranking_loss(2.0, 1.0, margin=1.0)), rel=1e-12) == pytest.approx(math.log(2), rel=1e-15)
    # Q20: N = 4, where the two losses differ
    assert a["loss_q20_pl"] == pytest.approx(float(rm.plackett_luce_loss(r)), rel=1e-12) == pytest.approx(1.2515520957105992, rel=1e-12)
    assert a["loss_q20_list"] == pytest.approx(float(rm.listwise_ranking_loss(r)), rel=1e-12) == pytest.approx(0.22761343171342482, rel=1e-12)
    assert set(a["answer_q20"]) == {"A", "C"}
    # D is false: Plackett-Luce is not the product of the adjacent pairs' Bradley-Terry probabilities
    assert float(rm.plackett_luce_loss(r)) != pytest.approx(float(rm.ranking_loss(r[:-1], r[1:], reduction="sum")), rel=1e-3)
    # E is false: three pairs drawn independently can form a cycle; pairs read off one ranking never do
    p = lambda u, v: float(rm.preference_probability(r[u], r[v]))
    assert p(0, 1) * p(1, 2) * p(2, 0) + p(1, 0) * p(2, 1) * p(0, 2) > 0.1


def test_keys_assignment_5(answers):
    a = answers["05"]
    # Q22: an unstable update, not over-optimization
    log = a["Q22_LOG"]
    assert a["q22_clip_early"] == float(rlhf.clip_fraction(a["Q22_RATIOS"]["10"], a["Q22_EPS"])) == 0.05
    assert a["q22_clip_late"] == float(rlhf.clip_fraction(a["Q22_RATIOS"]["70"], a["Q22_EPS"])) == 0.75
    assert max(a["Q22_RATIOS"]["10"]) == log["ratio_max"][1] and max(a["Q22_RATIOS"]["70"]) == log["ratio_max"][7]
    kl = np.array(log["kl"])
    assert np.all(np.diff(np.sign(np.diff(kl[1:]))) != 0)               # saw-tooth
    assert not np.all(np.diff(log["reward"]) > 0)                        # no steady climb
    assert log["value_loss"][-1] > 50 * log["value_loss"][0] and log["entropy"][-1] < 0.1 * log["entropy"][0]
    assert a["answer_q22"] == "B"
    controller = rlhf.AdaptiveKLController(0.1, 6.0, 10_000)
    assert a["q22_beta_next"] == pytest.approx(controller.update(11.2, 512), rel=1e-12) == pytest.approx(0.101024, rel=1e-12)
    # Q23
    R = {k: float(rlhf.kl_penalized_reward(a["Q23_REWARD"][k], *a["Q23_TOKENS"][k], a["Q23_BETA"])) for k in "AB"}
    assert R == pytest.approx({"A": 1.16, "B": 1.38}, rel=1e-12)
    assert a["answer_q23"] == max(R, key=R.get) == "B" != max(a["Q23_REWARD"], key=a["Q23_REWARD"].get)
    # Q24: the grid's answer and what bisection would give
    ref, reward = np.array(a["Q24_REF"]), np.array(a["Q24_REWARD"])
    kls = {k: float(rlhf.categorical_kl(rlhf.kl_regularized_policy(ref, reward, b), ref)) for k, b in a["Q24_BETAS"].items()}
    smallest = min((b, k) for k, b in a["Q24_BETAS"].items() if kls[k] <= 0.5)
    assert a["answer_q24"] == smallest[1] == "D"
    assert rlhf.beta_for_kl_budget(ref, reward, 0.5) == pytest.approx(1.040, abs=5e-4)
    assert 0.5 - kls["D"] == pytest.approx(0.36, abs=5e-3) and kls["C"] == pytest.approx(0.54, abs=5e-3)
    # Q25: an interval, a held-out set large enough, a gate relative to labeler agreement (0.73)
    lo, hi = wilson_interval(8, 10)
    assert a["q25_interval"] == pytest.approx([lo, hi], rel=1e-6) and (round(lo, 2), round(hi, 2)) == (0.49, 0.94)
    passing = {k for k, (s, n) in a["Q25_RESULTS"].items() if wilson_interval(s, n)[0] >= a["Q25_GATE"]}
    assert set(a["answer_q25"]) == passing == {"B", "E"} and a["Q25_GATE"] == pytest.approx(0.73 - 0.05)
    assert a["Q25_RESULTS"]["D"][0] / a["Q25_RESULTS"]["D"][1] > a["Q25_GATE"]   # D: a point estimate above the gate ...
    assert 0.8 > a["Q25_GATE"] and "A" not in passing                           # ... and A's 0.80 on 10 pairs both fail
    # Q26: a human win rate against the reference, rising then falling
    log = a["Q26_LOG"]
    onset = rlhf.reward_hacking_onset(log["reward"], log["human_win_rate"], window=1, tol=0.02)
    assert a["q26_onset_step"] == log["step"][onset] == 500
    assert a["q26_rollback_step"] == log["step"][onset - 1] == log["step"][int(np.argmax(log["human_win_rate"]))] == 400
    assert log["human_win_rate"][0] == 0.5 and np.all(np.diff(log["reward"]) > 0)
    # Q27: a paired calibration set; the offset changes no policy, the stretch acts like beta / s
    fit = rlhf.paired_reward_drift(a["Q27_SIGNED_OFF"], a["Q27_CURRENT"])
    assert (a["q27_offset"], a["q27_scale"]) == pytest.approx((fit["offset"], fit["scale"]), rel=1e-9)
    assert (fit["offset"], fit["scale"]) == pytest.approx((1.4, 2.0), rel=1e-12)
    assert a["q27_beta"] == pytest.approx(0.1 * fit["scale"], rel=1e-12) == pytest.approx(0.2, rel=1e-12)
    u, v = np.array(a["Q27_SIGNED_OFF"]), np.array(a["Q27_CURRENT"])
    flat = np.full(10, 0.1)
    np.testing.assert_allclose(rlhf.kl_regularized_policy(flat, v, a["q27_beta"]), rlhf.kl_regularized_policy(flat, u, 0.1), rtol=1e-9)
    np.testing.assert_allclose(rlhf.recalibrate_rewards(v, fit["offset"], fit["scale"]), u, atol=1e-12)
    # Q28: the hack is above the batch mean after the penalty, so PPO does reinforce it
    samples, beta = a["Q28_SAMPLES"], a["Q28_BETA"]
    R = {k: float(rlhf.kl_penalized_reward(s, [0.0], [-lr], beta)) for k, (s, lr) in samples.items()}
    assert a["q28_penalized"] == pytest.approx(R, rel=1e-12) and R == pytest.approx({"A": 1.9, "B": 2.2, "C": 3.0, "D": 1.15}, rel=1e-12)
    mean = float(np.mean(list(R.values())))
    assert mean == pytest.approx(2.0625, rel=1e-12) and max(R, key=R.get) == "C" and R["C"] > mean
    assert set(a["answer_q28_up"]) == {k for k, x in R.items() if x > mean} == {"B", "C"}
    top = max(samples, key=lambda k: samples[k][0])
    assert top == max(samples, key=lambda k: samples[k][1]) == "C"       # the top raw score is also the largest drift
    stop = a["q28_beta_stop"]
    assert stop == pytest.approx(0.15244755244755245, rel=1e-12)
    at = {k: float(rlhf.kl_penalized_reward(s, [0.0], [-lr], stop)) for k, (s, lr) in samples.items()}
    assert at["C"] == pytest.approx(np.mean(list(at.values())), rel=1e-12)  # C's advantage is 0 exactly there


# --------------------------------------------------------------------------
# the feedback and the wording


def _teaching_places(number: str):
    """{("section", heading without its (Qnn) suffix), ("paragraph", bold title)} of notebook NN, or None."""
    paths = list(NOTEBOOKS.glob(f"{number}_*.ipynb"))
    if not paths:
        return None
    places = set()
    for cell in load(paths[0]).cells:
        if cell.cell_type == "markdown":
            for line in cell.source.splitlines():
                m = re.match(r"^#+ (.+?)(?: \(Q\d\d(?:[,–-] ?Q\d\d)*\))?$", line)
                if m:
                    places.add(("section", m.group(1).strip()))
            for bold in re.findall(r"\*\*([^*]+?)\.?\*\*", cell.source):
                places.add(("paragraph", bold.strip().rstrip(".")))
    return places


CHECKS = {"close", "assert_close", "call", "raises", "assert_raises", "agrees", "choice_is", "choices_are", "is_letter"}


@pytest.mark.parametrize("number", sorted(MINE))
def test_every_check_says_where_and_every_wrong_option_why(number, answers):
    nb = load(MINE[number])
    places: dict[str, set] = {}
    seen_choice = set()
    for cell in nb.cells:
        if not (nbg(cell)["grade"] and cell.cell_type == "code"):
            continue
        for node in ast.walk(ast.parse(cell.source)):
            if not (isinstance(node, ast.Call) and isinstance(node.func, ast.Attribute)
                    and isinstance(node.func.value, ast.Name) and node.func.value.id == "_g"):
                continue
            assert node.func.attr in CHECKS, ast.unparse(node)[:80]
            kw = {k.arg: k.value for k in node.keywords}
            assert "where" in kw, (nbg(cell)["grade_id"], ast.unparse(node)[:100])
            found = re.fullmatch(r"notebook (\d\d), (section|paragraph) '(.+)'", ast.literal_eval(kw["where"]))
            assert found, ast.unparse(kw["where"])
            places.setdefault(found.group(1), set()).add((found.group(2), found.group(3)))
            if node.func.attr in ("choice_is", "choices_are"):
                var = ast.unparse(node.args[0])
                options = CHOICES[number][var]
                right = set(answers[number][var])
                wrong = set(options[0] if isinstance(options, list) else options) - right
                why = ast.literal_eval(kw["why"])
                assert set(why) == wrong, (var, sorted(why), sorted(wrong))  # one sentence per wrong option, none for a right one
                for sentence in why.values():
                    for letter in right:
                        assert not re.search(rf"\b(option )?{letter}\b(?!'s)", sentence), (var, letter, sentence)
                seen_choice.add(var)
    assert seen_choice == set(CHOICES[number])
    for nb_number, wanted in places.items():
        taught = _teaching_places(nb_number)
        if taught is None:
            assert int(nb_number) >= 7, f"notebook {nb_number} does not exist"
            continue  # notebooks 07-09 are being written; their checks skip until the file is there
        assert not wanted - taught, (nb_number, wanted - taught)


def _options(text: str) -> dict:
    """{letter: text} of a question's options: '* **A** text' lines, or '**A** text · **B** text' on one line."""
    opts = {}
    for line in text.splitlines():
        bullet = re.match(r"^\s*\* \*\*([A-F])\*\* (.+)$", line)
        if bullet and "·" not in line:
            opts[bullet.group(1)] = bullet.group(2).strip()
        elif line.count("**") >= 6 and "·" in line:
            for letter, option in re.findall(r"\*\*([A-F])\*\* ([^·]+)", line):
                opts[letter] = option.strip()
    return opts


@pytest.mark.parametrize("number", sorted(MINE))
def test_options_are_of_similar_length_and_the_right_one_not_the_longest(number, answers):
    nb = load(MINE[number])
    checked = 0
    for cell in nb.cells:
        if cell.cell_type != "markdown" or nbg(cell)["grade"]:
            continue
        opts = _options(cell.source)
        if len(opts) < 3:
            continue
        var = [v for v in CHOICES[number] if f"`{v}`" in cell.source]
        lengths = {k: len(v) for k, v in opts.items()}
        assert max(lengths.values()) <= 1.5 * min(lengths.values()), (nbg(cell)["grade_id"], lengths)
        for v in var:
            right = set(answers[number][v])
            if len(right) == 1:
                (r,) = right
                assert lengths[r] < max(lengths.values()) or list(lengths.values()).count(lengths[r]) > 1, (v, lengths)
        checked += 1
    assert checked >= {"01": 1, "04": 4, "05": 1}[number]


@pytest.mark.parametrize("number", sorted(MINE))
def test_no_stable_formula_outside_a_hint(number):
    for cell in load(MINE[number]).cells:
        if cell.cell_type != "markdown" or nbg(cell)["solution"]:  # rubrics are the instructor's
            continue
        outside = re.sub(r"<details>.*?</details>", "", cell.source, flags=re.S)
        for formula in ("log1p", r"\max(-\Delta", r"-|\Delta|", "e^{-|z|}", "logaddexp", r"\sigma(\Delta) - p"):
            assert formula not in outside, (number, nbg(cell)["grade_id"], formula)


def test_stems_do_not_state_the_principle_they_ask_for():
    text = {n: "\n".join(c.source for c in load(p).cells if c.cell_type == "markdown") for n, p in MINE.items()}
    assert "bought with by far the largest drift" not in text["05"]    # the old Q28 stem
    assert "which grows from 2 to 3" not in text["04"] and "where $\\sigma(\\Delta) = 0.7$" not in text["04"]
    assert "falls without bound as the rewards grow" not in text["04"]
    assert "R(x, y)" not in text["05"]                                 # R is Q06's raw score; here r_beta
    assert "tighter clipping" not in text["05"] and "whitening" not in text["05"]


# --------------------------------------------------------------------------
# plausible wrong ideas fail a visible check, and the message names them

WRONG = {
    "01": {
        "preference_probability_impl": (
            "def preference_probability(r_a, r_b):\n"
            "    ea, eb = np.exp(np.asarray(r_a, dtype=float)), np.exp(np.asarray(r_b, dtype=float))\n"
            "    return (ea / (ea + eb))[()]\n"),
    },
    "04": {
        "weighted_ranking_loss_impl": (
            "def weighted_ranking_loss(r_pref, r_rej, weights):\n"
            "    d = np.asarray(r_pref, float) - np.asarray(r_rej, float)\n"
            "    if np.any(np.asarray(weights) < 0) or not np.any(np.asarray(weights) > 0):\n"
            "        raise ValueError('weights')\n"
            "    return float(np.mean(np.asarray(weights) * (np.maximum(-d, 0) + np.log1p(np.exp(-np.abs(d))))))\n"),
        "soft_ranking_loss_impl": (
            "def soft_ranking_loss(r_a, r_b, p):\n"
            "    d = np.asarray(r_a, float) - np.asarray(r_b, float)\n"
            "    s = 1 / (1 + np.exp(-d))\n"
            "    return float(np.mean(-p * np.log(s) - (1 - p) * np.log(1 - s)))\n"),
        "regularized_ranking_loss_impl": (
            "def regularized_ranking_loss(r_pref, r_rej, coef):\n"
            "    if coef < 0:\n"
            "        raise ValueError('coef')\n"
            "    a, b = np.asarray(r_pref, float), np.asarray(r_rej, float)\n"
            "    d = a - b\n"
            "    return float(np.mean(np.maximum(-d, 0) + np.log1p(np.exp(-np.abs(d)))) - coef * np.mean((a + b) ** 2))\n"),
        "listwise_ranking_loss_impl": (
            "def listwise_ranking_loss(rewards):\n"
            "    r = np.atleast_2d(np.asarray(rewards, float))\n"
            "    i, j = np.triu_indices(r.shape[1], k=1)\n"
            "    d = r[:, i] - r[:, j]\n"
            "    return float(np.mean(np.sum(np.maximum(-d, 0) + np.log1p(np.exp(-np.abs(d))), axis=1)))\n"),
        "plackett_luce_loss_impl": (
            "def plackett_luce_loss(rewards):\n"
            "    r = np.atleast_2d(np.asarray(rewards, float))\n"
            "    tails = np.cumsum(np.exp(r[:, ::-1]), axis=1)[:, ::-1]\n"
            "    return float(np.mean(np.sum(np.log(tails) - r, axis=1)))\n"),
    },
    "05": {
        "kl_penalized_reward_impl": (
            "def kl_penalized_reward(reward, logprob_policy, logprob_ref, beta):\n"
            "    if beta < 0:\n"
            "        raise ValueError('beta')\n"
            "    lp, lr = np.asarray(logprob_policy, float), np.asarray(logprob_ref, float)\n"
            "    return (np.asarray(reward, float) - beta * np.sum(lr - lp, axis=-1))[()]\n"),
    },
}

#: (test cell, words its visible failure must show)
EXPECTED = {
    "01": {"preference_probability_tests": ["inf / inf is nan", "Where to look: notebook 01"]},
    "04": {"weighted_ranking_loss_tests": ["divide", "sum of the weights"],
           "soft_ranking_loss_tests": ["0 * inf is nan"],
           "regularized_ranking_loss_tests": ["the penalty subtracted"],
           "listwise_ranking_loss_tests": ["the sum over the 3 pairs, not their mean"],
           "plackett_luce_loss_tests": ["e^800 overflows"]},
    "05": {"kl_penalized_reward_tests": ["log pi - log pi_ref"]},
}


@pytest.mark.parametrize("number", sorted(MINE))
def test_wrong_ideas_fail_a_visible_check_that_names_them(number, tmp_path):
    """As released (solutions and hidden tests removed), with the model answers filled in, except for
    one plausible wrong implementation per exercise: its visible test cell fails and says why."""
    nb = load(MINE[number])
    for cell in nb.cells:
        m = nbg(cell)
        if m["grade"] and cell.cell_type == "code":
            cell.source = strip_hidden(cell.source)
        elif m["solution"] and cell.cell_type == "code" and m["grade_id"] in WRONG[number]:
            cell.source = WRONG[number][m["grade_id"]]
    execute(nb, tmp_path)
    errors = {}
    for cell in nb.cells:
        for o in cell.get("outputs", []):
            if o.get("output_type") == "error":
                text = re.sub(r"\x1b\[[0-9;]*m", "", "\n".join([o.get("evalue", ""), *o.get("traceback", [])]))
                errors[nbg(cell)["grade_id"]] = text
    expected = EXPECTED[number]
    failing_tests = {g for g in errors if g.endswith(("_tests", "_check")) or g.startswith("q")}
    assert set(expected) <= failing_tests, (sorted(errors), sorted(expected))
    for gid, words in expected.items():
        for w in words:
            assert w in errors[gid], (gid, w, errors[gid][:600])
        assert "Traceback" not in errors[gid].splitlines()[0]
