"""Feedback: drop the traceback lines that would quote a hidden test."""

from __future__ import annotations

import re

from nbgrader.preprocessors import NbGraderPreprocessor

HIDDEN_BEGIN = "### BEGIN HIDDEN TESTS"
HIDDEN_END = "### END HIDDEN TESTS"
_ANSI = re.compile(r"\x1b\[[0-9;]*[A-Za-z]")


class HideHiddenTestTracebacks(NbGraderPreprocessor):
    """Feedback: in a test cell with hidden tests, drop the traceback frames
    of the cell itself (they quote the hidden code).  The error's name and
    message stay, as do frames in the student's own cells and in libraries.
    Runs before ClearHiddenTests, which removes the hidden code from the
    cell's source.
    """

    def preprocess_cell(self, cell, resources, index):
        if cell.cell_type != "code" or HIDDEN_BEGIN not in cell.source:
            return cell, resources
        own = f"Cell In[{cell.get('execution_count')}]"
        for out in cell.get("outputs", []):
            if out.get("output_type") != "error":
                continue
            kept = []
            for entry in out.get("traceback", []):
                plain = _ANSI.sub("", entry)
                if own in plain or HIDDEN_BEGIN in plain or HIDDEN_END in plain:
                    continue
                kept.append(entry)
            kept.insert(0, "(lines of this test cell are not shown: it holds hidden tests)")
            out["traceback"] = kept
        return cell, resources
