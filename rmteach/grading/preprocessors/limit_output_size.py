"""Autograde: at most so many lines *and* characters of output per cell."""

from __future__ import annotations

from nbgrader.preprocessors import LimitOutput
from traitlets import Integer


class LimitOutputSize(LimitOutput):
    """nbgrader's ``LimitOutput`` (at most ``max_lines`` lines per cell) plus
    at most ``max_chars`` characters of text output per cell, so one giant
    line (or 50 MB of print) cannot bloat the graded notebook, the feedback
    and the gradebook.  Logs a warning naming the cell and the size."""

    max_chars = Integer(100_000, help="maximum characters of text output per cell (-1: no limit)").tag(config=True)

    def preprocess_cell(self, cell, resources, index):
        before = _output_chars(cell)
        cell, resources = super().preprocess_cell(cell, resources, index)
        if cell.cell_type == "code" and self.max_chars >= 0:
            budget = self.max_chars
            for out in cell.get("outputs", []):
                texts = [("text", out)] if "text" in out else []
                texts += [(k, out["data"]) for k in out.get("data", {}) if isinstance(out["data"][k], str)]
                for key, holder in texts:
                    text = holder[key] if isinstance(holder[key], str) else "".join(holder[key])
                    if len(text) > budget:
                        holder[key] = text[: max(budget, 0)] + "\n... output truncated (rmteach: too many characters) ..."
                    budget -= min(len(text), budget)
        if before > self.max_chars >= 0:
            # rmteach.grading.repair.cell_report reads this back for the grading log
            cell.metadata["rmteach"] = {"output_chars": before, "max_lines": self.max_lines,
                                        "max_chars": self.max_chars}
            info = resources.get("nbgrader", {})
            gid = cell.metadata.get("nbgrader", {}).get("grade_id", f"cell {index + 1}")
            self.log.warning(
                "%s/%s: %s printed %.1f MB of output: kept the first %d lines / %d characters",
                info.get("student", "?"), info.get("notebook", "?"), gid, before / 1e6,
                self.max_lines, self.max_chars,
            )
        return cell, resources



def _output_chars(cell) -> int:
    total = 0
    for out in cell.get("outputs", []) if cell.get("cell_type") == "code" else []:
        if "text" in out:
            total += len(out["text"]) if isinstance(out["text"], str) else sum(map(len, out["text"]))
        for value in out.get("data", {}).values():
            if isinstance(value, str):
                total += len(value)
    return total
