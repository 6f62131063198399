r"""Grading the nbgrader course in ``assignments/``, one job per module.

``import rmteach.grading`` is what a test cell does, and all it gets is the checks
(standard library and NumPy only; never nbgrader, nbconvert or torch)::

    from rmteach import grading as _g
    assert _g.close(_g.call(ranking_loss, r_pref, r_rej), _rm.ranking_loss(r_pref, r_rej),
                    "ranking_loss on 200 random pairs")

============================================  =================================================
module                                        its job
============================================  =================================================
:mod:`~rmteach.grading.checks`                the checks test cells call (re-exported here)
:mod:`~rmteach.grading.diagnose`              the misconception a wrong result shows, in a sentence
:mod:`~rmteach.grading.tamper`                tamper detection in the student's kernel
:mod:`~rmteach.grading.preprocessors`         the nbgrader plug-ins, one per module
:mod:`~rmteach.grading.repair`                diagnose and repair a submission before grading
:mod:`~rmteach.grading.sandbox`               each student's kernel in bubblewrap (or a grader user)
:mod:`~rmteach.grading.course`                the course directory, nbgrader run in it
:mod:`~rmteach.grading.release`               validate and release assignments; feedback
:mod:`~rmteach.grading.pipeline`              grade a class in parallel (``make autograde``)
:mod:`~rmteach.grading.worker`                one grading worker process
:mod:`~rmteach.grading.gradebook`             read the gradebook; grade table and CSV
:mod:`~rmteach.grading.demo`                  the demo students and ``make grade-demo``
:mod:`~rmteach.grading.cli`                   ``python -m rmteach.grading COMMAND``
============================================  =================================================

The modules from ``preprocessors`` down import nbgrader; only instructors' tools
and nbgrader itself import them.
"""

from rmteach.grading.checks import (
    NotOwnWork, agrees, assert_choice, assert_choices, assert_close, assert_raises, call, choice_is, choices_are,
    close, failure, holds, is_letter, number, own_function, raises,
)
from rmteach.grading.tamper import Tampering, _take_snapshot, arm, tampering, untampered

__all__ = [
    "NotOwnWork",
    "own_function",
    "call",
    "agrees",
    "assert_close",
    "assert_choice",
    "assert_choices",
    "assert_raises",
    "close",
    "choice_is",
    "choices_are",
    "raises",
    "is_letter",
    "holds",
    "number",
    "failure",
    "Tampering",
    "arm",
    "tampering",
    "untampered",
]

_take_snapshot()  # last: every function of the checks is defined (see rmteach.grading.tamper)
