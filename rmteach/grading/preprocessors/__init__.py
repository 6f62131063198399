"""The nbgrader plug-ins of the course, one preprocessor per module (as nbgrader keeps its own).

``assignments/nbgrader_config.py`` names them; nbgrader imports them, so they may
import nbgrader and nbconvert (the checks in :mod:`rmteach.grading` never do):

* :class:`RestoreDeletedCells` (autograde): put back every cell the instructor
  wrote that a student deleted, where it belongs;
* :class:`GuardTestCells` (autograde): the tamper checks around student code;
* :class:`LimitOutputSize` (autograde): at most so many lines and characters of
  output per cell;
* :class:`HideHiddenTestTracebacks` (feedback): no traceback line quotes a hidden test.
"""

from rmteach.grading.preprocessors.guard_test_cells import GuardTestCells
from rmteach.grading.preprocessors.hide_hidden_test_tracebacks import HideHiddenTestTracebacks
from rmteach.grading.preprocessors.limit_output_size import LimitOutputSize
from rmteach.grading.preprocessors.restore_deleted_cells import RestoreDeletedCells

__all__ = ["RestoreDeletedCells", "GuardTestCells", "LimitOutputSize", "HideHiddenTestTracebacks"]
