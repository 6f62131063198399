"""Teaching a class, end to end: a real JupyterHub, real Unix users, nbgrader's exchange, Chromium.

One deployment for the module (``deploy/jupyterhub``, as ``make hub`` builds it, with its own
users, exchange and port; removed afterwards even when a test fails).  The tests run in order
and share it:

1. the instructor generates and releases two assignments with nbgrader's commands;
2. no student can read the course (``source/``, the gradebook) nor list the exchange's inbound;
3. a student logs in on the hub's page and, in JupyterLab's Assignments tab, fetches, opens the
   notebook, writes an answer, validates, submits, writes another and submits again;
4. a submission that attacks the grader, then a due date, then a late submission;
5. load: 30 more students (real users) each submit twice at once with nbgrader's ``submit``;
6. the instructor collects (newest submission of each student, nothing lost, mixed up or
   unreadable) and grades with ``python -m rmteach.grading autograde`` (sandboxed, parallel):
   every student gets what the notebook earns, the late one the configured penalty, and the
   attack leaks nothing;
7. the instructor opens the formgrader in Chromium and sees the assignment and its submissions;
8. feedback is generated and released; the student fetches it in the Assignments tab and sees
   the score.

Needs root (users, a hub that spawns as them) and the deployment's tools; skipped with the
reason otherwise, except with ``CI=true`` as root, where it must run.  Screenshots go to the
module's tmp folder (the path is printed).
"""

from __future__ import annotations

import concurrent.futures
import contextlib
import copy
import json
import os
import sqlite3
import time
from pathlib import Path

import pytest

import hubdriver as hd
import labdriver as lab

IN_CI = os.environ.get("CI", "").strip().lower() in ("1", "true", "yes")
A1 = "01_preference_probability"   # the browser student, the attack, the late submission
A3 = "03_gradients_and_updates"    # the load test
N_LOAD = int(os.environ.get("RMTEACH_HUB_LOAD_STUDENTS", "30"))  # fewer only to iterate on the other tests


def _skip_reason():
    if os.geteuid() != 0:
        return "the hub test needs root (it creates Unix users and a hub that spawns servers as them)"
    missing = hd.missing_tools()
    try:
        import playwright.sync_api  # noqa: F401
    except ImportError:
        missing.append("the playwright package")
    if lab.find_chromium() is None:
        missing.append("Chromium")
    if missing:
        return f"the hub test needs {', '.join(missing)}"
    return None


_reason = _skip_reason()
if _reason and IN_CI and os.geteuid() == 0:
    pytest.fail(f"CI=true as root and the hub test cannot run: {_reason}", pytrace=False)
pytestmark = pytest.mark.skipif(_reason is not None, reason=f"{_reason} (run `make test` as root with CI=true)")


@pytest.fixture(scope="module")
def hub():
    tag = os.urandom(2).hex()
    students = [f"rmt{tag}-alice", f"rmt{tag}-bob", f"rmt{tag}-mallory"] + [f"rmt{tag}-l{i:02d}" for i in range(N_LOAD)]
    with hd.Deployment(students, instructor=f"rmt{tag}-teach", port=lab.free_port()) as d:
        d.alice, d.bob, d.mallory = students[:3]
        d.load = students[3:]
        d.notes = {}
        yield d


@pytest.fixture(scope="module")
def shots(tmp_path_factory):
    path = tmp_path_factory.mktemp("hub-screenshots")
    print(f"\nhub test screenshots: {path}")
    return path


@pytest.fixture(scope="module")
def chromium():
    with lab.Chromium() as browser:
        yield browser


@contextlib.contextmanager
def shot_on_failure(browser, hub, path: Path):
    try:
        yield
    except BaseException as exc:
        with contextlib.suppress(Exception):
            browser.page.screenshot(path=str(path))
        raise AssertionError(f"{exc}\nscreenshot: {path}\nbrowser console:\n" + "\n".join(browser.console[-12:])
                             + f"\nhub log (end):\n{hub.hub_log()[-2500:]}") from exc
    browser.page.screenshot(path=str(path))


def _read_nb(path):
    import nbformat

    return nbformat.read(str(path), as_version=4)


def _write_nb(nb, path: Path, user: str, hub) -> None:
    import nbformat

    path.parent.mkdir(parents=True, exist_ok=True)
    nbformat.write(nb, str(path))
    hub.chown(path.parent, user)


def _grade_id_index(nb, grade_id: str) -> int:
    return next(i for i, c in enumerate(nb.cells) if c.get("metadata", {}).get("nbgrader", {}).get("grade_id") == grade_id)


def _notebook(hub, assignment: str, folder: str = "source") -> Path:
    return next((hub.course / folder / assignment).glob("*.ipynb"))


def _submission(hub, assignment: str, keep, marker: str = ""):
    """A notebook built from the release with the model answers of the answer cells ``keep`` accepts,
    and the autograded points it must earn (rmteach.grading.demo's helpers)."""
    from rmteach.grading.demo import build_submission, expected_auto_score

    source = _read_nb(_notebook(hub, assignment))
    release = _read_nb(hub.course / "release" / assignment / _notebook(hub, assignment).name)
    nb = build_submission(release, source, keep)
    if marker:
        first = next(c for c in nb.cells if c.get("metadata", {}).get("nbgrader", {}).get("solution") and c.cell_type == "code")
        first.source = first.source + f"\n# {marker}"
    return nb, expected_auto_score(source, keep)


def _gradebook_rows(hub):
    db = sqlite3.connect(f"file:{hub.course / 'gradebook.db'}?mode=ro", uri=True)
    try:
        rows = db.execute(
            """SELECT sa.student_id, a.name, sn.late_submission_penalty,
                      (SELECT SUM(g.auto_score) FROM grade g WHERE g.notebook_id = sn.id)
               FROM submitted_notebook sn JOIN submitted_assignment sa ON sn.assignment_id = sa.id
               JOIN assignment a ON sa.assignment_id = a.id""").fetchall()
    finally:
        db.close()
    return {(s, a): (pen or 0.0, score or 0.0) for s, a, pen, score in rows}


# ---------------------------------------------------------------------------


def test_1_instructor_releases_with_nbgrader(hub):
    for assignment in (A1, A3):
        hub.nbgrader(hub.instructor, "generate_assignment", assignment, cwd=hub.course)
        hub.nbgrader(hub.instructor, "release_assignment", assignment, cwd=hub.course)
    proc = hub.nbgrader(hub.alice, "list")
    listing = proc.stdout + proc.stderr
    assert A1 in listing and A3 in listing, listing
    ex = hub.exchange
    assert oct(ex.stat().st_mode & 0o7777) == "0o1777"
    assert (ex / hub.course_id / "outbound" / A1).is_dir()


def test_2_students_cannot_read_the_course_or_each_other(hub):
    src = _notebook(hub, A1)
    for target in (src, hub.course / "gradebook.db", hub.course / "nbgrader_config.py"):
        proc = hub.run_as(hub.bob, ["cat", str(target)], check=False)
        assert proc.returncode != 0 and "Permission denied" in proc.stderr, (target, proc.stdout[:200], proc.stderr)
    proc = hub.run_as(hub.bob, ["ls", str(hub.course)], check=False)
    assert proc.returncode != 0
    inbound = hub.exchange / hub.course_id / "inbound"
    proc = hub.run_as(hub.bob, ["ls", str(inbound)], check=False)
    assert proc.returncode != 0 and "Permission denied" in proc.stderr, proc.stderr
    proc = hub.run_as(hub.bob, ["ls", str(hub.home(hub.alice))], check=False)
    assert proc.returncode != 0


def _assignments_tab(page):
    hd.menu(page, "Nbgrader", "Assignment List")
    page.wait_for_selector("#released_assignments_list, #fetched_assignments_list", timeout=60000)


def _refresh(page):
    page.locator("#refresh_assignments_list").click()
    time.sleep(1.0)


def _type_answer(page, index: int, code: str) -> None:
    cell = page.locator(".jp-Notebook .jp-Cell").nth(index)
    cell.scroll_into_view_if_needed()
    cell.locator(".jp-InputArea-editor").click()
    page.keyboard.press("Control+A")
    page.keyboard.insert_text(code)
    page.keyboard.press("Escape")
    page.keyboard.press("Control+S")


def test_3_student_fetches_works_validates_and_submits_in_the_browser(hub, chromium, shots):
    page, user = chromium.page, hub.alice
    release = _read_nb(hub.course / "release" / A1 / _notebook(hub, A1).name)
    nb_name = _notebook(hub, A1).name
    on_disk = hub.home(user) / A1 / nb_name
    with shot_on_failure(chromium, hub, shots / "student-assignments.png"):
        hd.hub_login(page, hub, user)
        _assignments_tab(page)
        released = page.locator("#released_assignments_list .list_item", has_text=A1)
        released.locator("button", has_text="Fetch").click()
        hd.wait_until(on_disk.is_file, 60, f"{on_disk} fetched")
        fetched = page.locator("#fetched_assignments_list .list_item", has_text=A1).first
        fetched.wait_for(timeout=30000)
        page.screenshot(path=str(shots / "student-fetched.png"))
        # open the notebook from the list (the assignment folds open to show its notebooks)
        fetched.locator("a.assignment-notebooks-link").first.click()
        link = page.locator("#fetched_assignments_list .nested_list_item a", has_text=nb_name.removesuffix(".ipynb")).first
        link.wait_for(timeout=30000)
        link.click()
        page.wait_for_selector(".jp-Notebook .jp-Cell", timeout=90000)
        hd.wait_until(lambda: page.locator(".jp-Notebook .jp-Cell").count() >= len(release.cells), 60, "the cells")
        # first version: one answer
        _type_answer(page, _grade_id_index(release, "q04_answer"), 'answer_q04 = {"B", "C"}')
        hd.wait_until(lambda: 'answer_q04 = {\\"B\\", \\"C\\"}' in on_disk.read_text(), 30, "the saved answer")
        page.screenshot(path=str(shots / "student-notebook.png"))
        # Validate, from the Assignments tab
        page.locator(".lm-TabBar-tab", has_text="Assignments").first.click()
        page.locator("#fetched_assignments_list .nested_list_item button", has_text="Validate").first.click()
        dialog = page.locator(".jp-Dialog")
        dialog.wait_for(timeout=120000)
        text = dialog.inner_text()
        page.screenshot(path=str(shots / "student-validate.png"))
        assert "failed" in text.lower() or "error" in text.lower() or "passed" in text.lower(), text
        dialog.locator("button").last.click()
        # Submit, then a second answer and Submit again: the newest counts
        page.locator("#fetched_assignments_list button", has_text="Submit").first.click()
        hd.wait_until(lambda: page.locator("#submitted_assignments_list .list_item", has_text=A1).count() >= 1, 120,
                      "the first submission listed")
        page.locator(".lm-TabBar-tab", has_text=nb_name).first.click()
        _type_answer(page, _grade_id_index(release, "q16_answer"), 'answer_q16 = {"A", "C", "E"}')
        hd.wait_until(lambda: "answer_q16 = {" in on_disk.read_text(), 30, "the second saved answer")
        page.locator(".lm-TabBar-tab", has_text="Assignments").first.click()
        page.locator("#fetched_assignments_list button", has_text="Submit").first.click()
        inbound = hub.exchange / hub.course_id / "inbound"
        hd.wait_until(lambda: len(list(inbound.glob(f"{user}+{A1}+*"))) == 2, 120, "the second submission in the exchange")
        hd.wait_until(lambda: page.locator("#submitted_assignments_list", has_text="Fetch Feedback").count() >= 1
                      and page.locator("#fetched_assignments_list button", has_text="Submit").count() >= 1, 60,
                      "the Assignments tab to show both submissions")
        time.sleep(1)
    _, expected = _submission(hub, A1, lambda gid: gid in {"q04_answer", "q16_answer"})
    hub.notes[user] = expected


def _cli_submit(hub, user: str, assignment: str, nb, workdir: str = "") -> str:
    """Write ``nb`` as ``user``'s copy of the assignment (in ~/workdir/) and run nbgrader submit there."""
    base = hub.home(user) / workdir if workdir else hub.home(user)
    _write_nb(nb, base / assignment / _notebook(hub, assignment).name, user, hub)
    hub.chown(base, user)
    out = hub.nbgrader(user, "submit", assignment, cwd=base)
    return out.stdout + out.stderr


ATTACK = r'''
import os, socket
leaks = {}
def _try(name, action):
    try:
        action()
        leaks[name] = "LEAKED"
    except Exception as exc:
        leaks[name] = "blocked (%s)" % type(exc).__name__
_try("read source", lambda: open("@SOURCE@").read())
_try("write gradebook", lambda: open("@GRADEBOOK@", "ab").write(b"pwned"))
try:
    seen = sorted(os.listdir("@COURSE@"))  # in the sandbox: only the folder skeleton down to its own copy
except OSError as exc:
    seen = type(exc).__name__
_try("write neighbour", lambda: open("@NEIGHBOUR@/pwned.txt", "w").write("pwned"))
_try("socket to the hub", lambda: socket.create_connection(("127.0.0.1", @PORT@), timeout=3))
print("ATTACK", sorted(leaks.items()), "course folder shows:", seen)
'''


def test_4_attack_then_due_date_then_late_submission(hub):
    # mallory: one right answer, and code that attacks the grader from an answer cell
    nb, expected = _submission(hub, A1, lambda gid: gid == "q04_answer")
    idx = _grade_id_index(nb, "q16_answer")
    attack = ATTACK
    for key, value in {"@SOURCE@": _notebook(hub, A1), "@GRADEBOOK@": hub.course / "gradebook.db", "@COURSE@": hub.course,
                       "@NEIGHBOUR@": hub.course / "submitted" / hub.alice / A1, "@PORT@": hub.port}.items():
        attack = attack.replace(key, str(value))
    nb.cells[idx].source = attack
    hub.nbgrader(hub.mallory, "fetch_assignment", A1)
    _cli_submit(hub, hub.mallory, A1, nb)
    hub.notes[hub.mallory] = expected
    # mallory cannot find alice's submissions: inbound cannot be listed, each name ends in a random
    # string (the name without it does not exist), and her own copies are in her 0700 home
    inbound = hub.exchange / hub.course_id / "inbound"
    for sub in inbound.glob(f"{hub.alice}+{A1}+*"):
        guess = inbound / sub.name.rsplit("+", 1)[0] / _notebook(hub, A1).name
        for args in (["ls", str(inbound)], ["cat", str(guess)],
                     ["ls", str(hub.home(hub.alice) / ".local" / "share" / "jupyter" / "nbgrader_cache")]):
            proc = hub.run_as(hub.mallory, args, check=False)
            assert proc.returncode != 0 and not proc.stdout, (args, proc.stdout[:200])
    # the due date passes (nbgrader db assignment add, as nbgrader documents), then bob submits everything
    time.sleep(1.0)
    due = time.strftime("%Y-%m-%d %H:%M:%S UTC", time.gmtime())
    hub.nbgrader(hub.instructor, "db", "assignment", "add", A1, f"--duedate={due}", cwd=hub.course)
    time.sleep(1.5)
    hub.nbgrader(hub.bob, "fetch_assignment", A1)
    nb, expected = _submission(hub, A1, lambda gid: True)
    _cli_submit(hub, hub.bob, A1, nb)
    hub.notes[hub.bob] = ("late", expected)


def test_5_load_thirty_students_submit_twice_at_once(hub):
    """Each load student submits two versions at the same moment (nbgrader submit, as that user);
    the one nbgrader stamps later is the newest and must be the one collected."""
    from rmteach.grading.demo import answer_cells

    source = _read_nb(_notebook(hub, A3))
    cells = [g for g in answer_cells(source)]
    versions = {}
    for i, user in enumerate(hub.load):
        for v in (1, 2):
            keep_set = {g for j, g in enumerate(cells) if ((i * 7 + v * 3) >> (j % 4)) & 1}
            nb, expected = _submission(hub, A3, lambda gid, ks=keep_set: gid in ks, marker=f"load {user} v{v}")
            versions[(user, v)] = expected
            release_copy = hub.home(user) / f"v{v}" / A3 / _notebook(hub, A3).name
            _write_nb(nb, release_copy, user, hub)
            hub.chown(hub.home(user) / f"v{v}", user)
    # nbgrader's submit creates ~/.local/share/jupyter/nbgrader_cache/<course> with os.makedirs and no
    # exist_ok: a student's two first submits racing each other can die on FileExistsError (seen once in
    # CI). A student who has submitted before has it; here each load student gets it as that user.
    for user in hub.load:
        hub.run_as(user, ["mkdir", "-p", str(hub.home(user) / ".local" / "share" / "jupyter" / "nbgrader_cache"
                                             / hub.course_id)])
    t0 = time.monotonic()
    with concurrent.futures.ThreadPoolExecutor(max_workers=max(1, 2 * N_LOAD)) as pool:
        futures = {pool.submit(hub.nbgrader, user, "submit", A3, cwd=hub.home(user) / f"v{v}"): (user, v)
                   for user in hub.load for v in (1, 2)}
        for f in concurrent.futures.as_completed(futures):
            f.result()
    hub.notes["load_seconds"] = time.monotonic() - t0
    hub.notes["load_versions"] = versions
    inbound = hub.exchange / hub.course_id / "inbound"
    for user in hub.load:
        assert len(list(inbound.glob(f"{user}+{A3}+*"))) == 2, user


def test_6_collect_and_grade_with_the_pipeline(hub):
    from nbgrader.utils import parse_utc

    inbound = hub.exchange / hub.course_id / "inbound"
    for assignment in (A1, A3):
        hub.nbgrader(hub.instructor, "collect", assignment, cwd=hub.course)
    # collect holds exactly each student's newest submission
    for user in [hub.alice, hub.bob, hub.mallory, *hub.load]:
        assignment = A3 if user in hub.load else A1
        subs = sorted(inbound.glob(f"{user}+{assignment}+*"), key=lambda p: parse_utc(p.name.split("+")[2]))
        newest = subs[-1]
        got = hub.course / "submitted" / user / assignment
        assert (got / "timestamp.txt").read_text() == (newest / "timestamp.txt").read_text(), user
        assert (got / "submission_secret.txt").read_text() == (newest / "submission_secret.txt").read_text(), user
        name = _notebook(hub, assignment).name
        assert (got / name).read_bytes() == (newest / name).read_bytes(), user
        json.loads((got / name).read_text())  # readable
        if user in hub.load:
            text = (got / name).read_text()
            v = 1 if f"load {user} v1" in text else 2
            assert f"load {user} v{v}" in text and f"load {user} v{3 - v}" not in text
            newest_v = 1 if f"load {user} v1" in (newest / name).read_text() else 2
            assert v == newest_v, user
            hub.notes.setdefault("load_expected", {})[user] = hub.notes["load_versions"][(user, v)]
    students = {p.name for p in (hub.course / "submitted").iterdir()}
    assert students == {hub.alice, hub.bob, hub.mallory, *hub.load}
    # the resubmission replaced the first one: alice's collected notebook has both answers
    alice_nb = (hub.course / "submitted" / hub.alice / A1 / _notebook(hub, A1).name).read_text()
    assert "answer_q16 = {" in alice_nb and "answer_q04 = {" in alice_nb
    # grade as the instructor, with this project's pipeline: sandboxed, parallel, with progress
    t0 = time.monotonic()
    proc = hub.run_as(hub.instructor, [str(hub.venv / "bin" / "python"), "-m", "rmteach.grading", "autograde",
                                        "--course", str(hub.course), "--sandbox", "require"], cwd=hub.course, check=False)
    hub.notes["grade_seconds"] = time.monotonic() - t0
    out = proc.stdout + proc.stderr
    assert "sandbox: bubblewrap" in out and "NOT SANDBOXED" not in out, out[-3000:]
    assert f"[{3 + N_LOAD}/{3 + N_LOAD}]" in out, out[-3000:]
    assert proc.returncode == 0, out[-4000:]
    rows = _gradebook_rows(hub)
    assert rows[(hub.alice, A1)] == (0.0, hub.notes[hub.alice])
    assert rows[(hub.mallory, A1)] == (0.0, hub.notes[hub.mallory])
    pen, score = rows[(hub.bob, A1)]
    _, bob_full = hub.notes[hub.bob]
    assert score == bob_full and pen == bob_full, (pen, score, bob_full)  # late: penalty = score ("zero")
    for user in hub.load:
        assert rows[(user, A3)] == (0.0, hub.notes["load_expected"][user]), user
    # the attack: graded in the sandbox, every attempt blocked, nothing written
    auto = _read_nb(hub.course / "autograded" / hub.mallory / A1 / _notebook(hub, A1).name)
    printed = "".join(o.get("text", "") for c in auto.cells if c.cell_type == "code" for o in c.get("outputs", []))
    report = next((line for line in printed.splitlines() if line.startswith("ATTACK")), None)
    assert report and "LEAKED" not in report and report.count("blocked") == 4, printed[-2000:]
    assert report.endswith(("['autograded']", "FileNotFoundError")), report  # no source/, gradebook.db, submitted/
    hub.notes["attack"] = report
    assert not (hub.course / "submitted" / hub.alice / A1 / "pwned.txt").exists()
    assert b"pwned" not in (hub.course / "gradebook.db").read_bytes()
    # the course stays closed after grading
    proc = hub.run_as(hub.bob, ["cat", str(hub.course / "gradebook.db")], check=False)
    assert proc.returncode != 0


def test_7_formgrader_in_the_browser(hub, chromium, shots):
    page = chromium.page
    with shot_on_failure(chromium, hub, shots / "instructor-formgrader.png"):
        hd.hub_login(page, hub, hub.instructor)
        hd.menu(page, "Nbgrader", "Formgrader")
        frame = page.frame_locator(".jp-MainAreaWidget iframe").first  # the formgrader panel: CSP frame-ancestors 'self'
        row = frame.locator("tr", has_text=A1).first
        row.wait_for(timeout=90000)
        assert "released" in row.inner_text() and "3" in row.inner_text().split(), row.inner_text()
        time.sleep(1)
        # the manual grading view of the assignment's notebook lists the submissions
        page.goto(f"{hub.base_url}user/{hub.instructor}/formgrader/gradebook/{A1}/{_notebook(hub, A1).stem}")
        link = page.locator("a.name-shown", has_text=hub.alice).first  # names are hidden until revealed
        link.wait_for(state="attached", timeout=60000)
        href = link.get_attribute("href")
        assert page.locator("a.name-shown").count() == 3
        page.screenshot(path=str(shots / "instructor-submissions.png"))
        # grade alice's written answer by hand in the formgrader: 1 of its points
        written = next(c.metadata["nbgrader"]["grade_id"] for c in _read_nb(_notebook(hub, A1)).cells
                       if c.get("metadata", {}).get("nbgrader", {}).get("grade") and c.cell_type == "markdown")
        db = sqlite3.connect(f"file:{hub.course / 'gradebook.db'}?mode=ro", uri=True)
        try:
            (nb_id,) = db.execute("""SELECT sn.id FROM submitted_notebook sn JOIN submitted_assignment sa
                ON sn.assignment_id = sa.id JOIN assignment a ON sa.assignment_id = a.id
                WHERE sa.student_id = ? AND a.name = ?""", (hub.alice, A1)).fetchone()
        finally:
            db.close()
        assert href.rstrip("/").endswith(nb_id), (href, nb_id)
        page.goto(f"{hub.base_url.rstrip('/')}{href}")
        box = page.locator(f"input.score#{written}")
        box.wait_for(timeout=60000)
        box.fill("1")
        box.press("Tab")

        def saved():
            db = sqlite3.connect(f"file:{hub.course / 'gradebook.db'}?mode=ro", uri=True)
            try:
                return db.execute("""SELECT g.manual_score FROM grade g JOIN base_cell gc ON g.cell_id = gc.id
                    WHERE g.notebook_id = ? AND gc.name = ?""", (nb_id, written)).fetchone()[0] == 1.0
            finally:
                db.close()
        hd.wait_until(saved, 30, "the manual grade in the gradebook")
        page.screenshot(path=str(shots / "instructor-manual-grade.png"))
        hub.notes[hub.alice] += 1.0


def test_8_feedback_released_and_fetched_in_the_browser(hub, chromium, shots):
    hub.run_as(hub.instructor, [str(hub.venv / "bin" / "python"), "-m", "rmteach.grading", "feedback",
                                "--course", str(hub.course)], cwd=hub.course)
    hub.nbgrader(hub.instructor, "release_feedback", A1, cwd=hub.course)
    page, user = chromium.page, hub.alice
    with shot_on_failure(chromium, hub, shots / "student-feedback.png"):
        hd.hub_login(page, hub, user)
        _assignments_tab(page)
        _refresh(page)
        item = page.locator("#submitted_assignments_list .list_item").first
        item.locator("button", has_text="Fetch Feedback").click()
        feedback = hd.wait_until(lambda: list((hub.home(user) / A1 / "feedback").glob("*/*.html")), 60,
                                 "the fetched feedback")
        html = feedback[0].read_text()
        expected = hub.notes[user]
        total = sum(float(c.metadata["nbgrader"].get("points", 0)) for c in _read_nb(_notebook(hub, A1)).cells
                    if c.get("metadata", {}).get("nbgrader", {}).get("grade"))
        rel = feedback[0].relative_to(hub.home(user))
        page.goto(f"{hub.base_url}user/{user}/files/{rel}")
        page.wait_for_selector("text=Score", timeout=30000)
        body = page.locator("body").inner_text()
        want = f"(Score: {round(expected, 2)} / {round(total, 2)})"
        assert want in body and want in html, (want, body[:600])
