"""Autograde: put back every cell the instructor wrote that a student deleted, where it belongs."""

from __future__ import annotations

from pathlib import Path

from nbformat.notebooknode import NotebookNode
from nbgrader.coursedir import CourseDirectory
from nbgrader.preprocessors import OverwriteCells


class RestoreDeletedCells(OverwriteCells):
    """OverwriteCells that puts back *every* cell the instructor wrote.

    nbgrader's own ``add_missing_cells`` re-adds deleted grade cells after
    the previous grade or solution cell and fails (KeyError) when that cell
    is a locked instruction cell or was deleted too.  This version walks
    the source notebook's cells in order and inserts each missing one (test
    cells with their hidden tests, locked set-up cells, answer cells as
    their empty stub) right after the nearest earlier cell still present.
    Answer cells come back with the release stub, never the model answer.
    """

    def _source_order(self, db_names: list[str]) -> list[str]:
        try:
            coursedir = CourseDirectory(config=self.config)
            folder = Path(coursedir.format_path(coursedir.source_directory, ".", self.assignment_id))
            import nbformat

            nb = nbformat.read(folder / f"{self.notebook_id}.ipynb", as_version=4)
            order = [c.metadata["nbgrader"]["grade_id"] for c in nb.cells if "grade_id" in c.metadata.get("nbgrader", {})]
            if set(order) >= set(db_names):
                return [n for n in order if n in set(db_names)]
        except Exception as exc:  # no source notebook: fall back on the database's order
            self.log.warning("cell order from the database (%s)", exc)
        return db_names

    def _restored_cell(self, source_cell, grade_cell, solution: bool) -> NotebookNode:
        note = self.missing_cell_notification.format(cell_id=source_cell.name)
        meta = {
            "grade": grade_cell is not None,
            "grade_id": source_cell.name,
            "locked": bool(source_cell.locked),
            "schema_version": 3,
            "solution": solution,
            "task": False,
            "checksum": source_cell.checksum,
            "cell_type": source_cell.cell_type,
        }
        if grade_cell is not None:
            meta["points"] = float(grade_cell.max_score)
        cell = {"cell_type": source_cell.cell_type, "metadata": {"nbgrader": meta}, "source": source_cell.source}
        if not solution:
            cell["metadata"].update(deletable=False, editable=False)
        if source_cell.cell_type == "code":
            cell.update(outputs=[], execution_count=None)
            # a comment line: the code below it is the instructor's, unchanged
            cell["source"] = "# " + note.strip() + "\n" + source_cell.source
        elif not solution:
            cell["source"] = note + source_cell.source
        return NotebookNode(cell)

    def add_missing_grade_cells(self, nb, resources):
        source_nb = self.gradebook.find_notebook(self.notebook_id, self.assignment_id)
        sources = {c.name: c for c in source_nb.source_cells}
        grades = {c.name: c for c in source_nb.grade_cells}
        solutions = {c.name for c in source_nb.solution_cells}
        order = self._source_order(list(sources))
        anchor = -1  # insert after this index
        for name in order:
            present = [
                i for i, c in enumerate(nb.cells)
                if c.metadata.get("nbgrader", {}).get("grade_id") == name
            ]
            if present:
                anchor = present[0]
                continue
            self.log.warning("Cell %s was deleted from the submission: putting it back", name)
            cell = self._restored_cell(sources[name], grades.get(name), name in solutions)
            nb.cells.insert(anchor + 1, cell)
            anchor += 1
        return nb, resources
