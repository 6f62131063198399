# nbgrader configuration of the rmteach course (nbgrader 0.9.x).
#
# Run nbgrader from this folder, or through `make assignments / autograde /
# feedback / grades` (python -m rmteach.grading), which passes this folder as
# --CourseDirectory.root. Every setting below is checked by tests/test_grading.py.

c = get_config()  # noqa: F821 - provided by traitlets when it loads this file

c.CourseDirectory.course_id = "rmteach"
# Assignment folders are source/<assignment>/; release/, submitted/<student>/<assignment>/,
# autograded/, feedback/ and gradebook.db are generated here (and ignored by git).

# --- the gradebook -------------------------------------------------------------
# SQLite gradebook.db in this folder, or the database of $RMTEACH_GRADEBOOK_URL when it is
# set (PostgreSQL, for several graders at once: see README.md). rmteach.grading.course.gradebook_url
# is the one place the URL comes from, for make and for plain nbgrader / the formgrader alike;
# set the variable, not db_url here.
import os as _os  # noqa: E402
import sys as _sys  # noqa: E402

from rmteach.grading.course import gradebook_url as _gradebook_url  # noqa: E402

try:
    c.CourseDirectory.db_url = _gradebook_url(_os.path.dirname(_os.path.abspath(__file__)))
except Exception as _exc:  # an unusable URL: say why (password masked), and never fall back on another gradebook
    print(f"rmteach nbgrader_config.py: {_exc}", file=_sys.stderr)
    c.CourseDirectory.db_url = "rmteach_unusable_gradebook_url://see-the-error-above"

# --- executing notebooks (validate and autograde) ---------------------------
# Every cell gets at most this many seconds; an infinite loop costs its cell, not the run.
c.Execute.timeout = 60
c.Execute.startup_timeout = 120
c.Execute.interrupt_on_timeout = True
# Kernels log only errors (not the "running over TCP" warning of every kernel start);
# the history file stays in memory, as nbgrader's default does. Errors in student code get
# Python's plain traceback (the failing lines, each with its file and line number) rather than
# IPython's "Context" one: that one imports and runs a syntax highlighter per error, some
# 0.1 s for the first and 15 ms for each further one, and an unfinished notebook has dozens.
# The checks' own messages (rmteach.grading.checks) look the same in either mode.
c.Execute.extra_arguments = [
    "--HistoryManager.hist_file=:memory:", "--IPKernelApp.log_level=ERROR", "--InteractiveShell.xmode=Plain",
]

# --- autograde ---------------------------------------------------------------
# Students need not be registered beforehand: autograde adds them to the gradebook.
c.Autograde.create_student = True
# A deleted test cell (or locked set-up cell, or answer cell) is put back where it
# belongs and graded. rmteach.grading.preprocessors.RestoreDeletedCells does what nbgrader's
# OverwriteCells.add_missing_cells does, without its KeyError when the cell before
# the deleted one is a locked instruction cell, and with answer cells restored as
# their empty stub (never the instructor's model answer).
c.OverwriteCells.add_missing_cells = True
c.Autograde.sanitize_preprocessors = [
    "nbgrader.preprocessors.ClearOutput",
    "nbgrader.preprocessors.DeduplicateIds",
    "nbgrader.preprocessors.OverwriteKernelspec",
    "rmteach.grading.preprocessors.RestoreDeletedCells",
    "rmteach.grading.preprocessors.GuardTestCells",
    "nbgrader.preprocessors.CheckCellMetadata",
]
# Student code shares the kernel with the tests. GuardTestCells adds a first cell that
# records the originals of builtins, NumPy, math and rmteach before any student code
# runs, and a first line to each test cell that fails it ("tampering detected: ...")
# if the notebook replaced one (np.isclose = lambda *a, **k: True, builtins.abs = ...).
# LimitOutputSize: at most 1000 lines and 100 000 characters of output per cell
# (nbgrader's LimitOutput counts lines only; one 50 MB line would stay).
c.Autograde.autograde_preprocessors = [
    "nbgrader.preprocessors.Execute",
    "nbgrader.preprocessors.IgnorePattern",
    "nbconvert.preprocessors.ClearMetadataPreprocessor",
    "rmteach.grading.preprocessors.LimitOutputSize",
    "nbgrader.preprocessors.SaveAutoGrades",
    "nbgrader.preprocessors.AssignLatePenalties",
    "nbgrader.preprocessors.CheckCellMetadata",
]
# Anything on stderr zeroes a test cell. Warnings (RuntimeWarning: overflow ...,
# DeprecationWarning ...) must not zero correct work: IgnorePattern drops stderr
# output that holds a warning before the grade is read off the cell.
c.IgnorePattern.enabled = True
c.IgnorePattern.pattern = r"\b[A-Za-z]*Warning\b"

# --- feedback ------------------------------------------------------------------
# Students see their grades and the visible tests, never the hidden ones: the
# hidden-test regions are cut from each test cell, and the traceback lines that
# would quote them are dropped.
c.GenerateFeedback.preprocessors = [
    "nbgrader.preprocessors.GetGrades",
    "rmteach.grading.preprocessors.HideHiddenTestTracebacks",
    "nbgrader.preprocessors.ClearHiddenTests",
    "nbconvert.preprocessors.CSSHTMLHeaderPreprocessor",
]

# --- sandbox -----------------------------------------------------------------
# Every student kernel runs in a bubblewrap sandbox (rmteach/grading/sandbox.py): no course
# files (source/, gradebook.db, other students), no network, bounded memory, CPU and
# wall-clock time. RMTEACH_SANDBOX (make autograde SANDBOX=...) chooses: "auto"
# (sandbox when available; `make autograde` says loudly when it is not), "require"
# (refuse to grade unsandboxed) or "off". Plain `nbgrader autograde` gets it too.
from rmteach.grading.sandbox import configure_nbgrader as _configure_sandbox  # noqa: E402

_sandbox_mode = _os.environ.get("RMTEACH_SANDBOX", "auto").strip().lower() or "auto"
_sandboxed, _sandbox_message = _configure_sandbox(
    c, course_root=_os.path.dirname(_os.path.abspath(__file__)), mode=_sandbox_mode
)
if not _sandboxed and _sandbox_mode != "off":
    print(f"rmteach nbgrader_config.py: {_sandbox_message}", file=_sys.stderr)
