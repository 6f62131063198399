r"""Diagnose, and where fair repair, a student's submission before nbgrader grades it.

:func:`prepare_submission` works on a *copy* of ``submitted/<student>/<assignment>/``
(the student's files stay untouched) and returns a :class:`Preparation`: whether
the copy can be graded and one log line per thing it found or repaired.
:mod:`rmteach.grading.worker` calls it on every submission before nbgrader runs.

The policy (what a fair instructor wants: grade the work that is there, never
lose it to a file-format accident, never give points for the format either):

=================================  ======================================================
found in the submission            what happens
=================================  ======================================================
notebook not valid JSON, or not    that notebook is not graded (0 for it); with no other
a notebook                         notebook left the submission is *not gradable*
                                   (status ``failed: ...`` in the export, not a real 0)
expected notebook missing          0 for it (``missing notebook X``); nothing at all to
                                   grade: not gradable
one notebook under another name    graded under the expected name (``renamed``); several:
                                   matched to the expected ones by their cells' grade_ids
extra notebooks                    not graded (removed from the working copy), noted
nbgrader metadata stripped from    put back from the source notebook: a locked cell is
a cell                             found by its text, an answer cell by its place between
                                   the cells around it (and, for code, the names it defines)
``schema_version`` changed, extra  the instructor's metadata is put back by grade_id
or changed metadata keys
a cell copy-pasted (duplicate      one copy keeps the metadata (the one in the place the
``grade_id``)                      source has it, else the last), the others become plain cells
a cell claiming an unknown         its nbgrader metadata is dropped (a student cannot add
``grade_id``                       graded cells or points)
giant saved outputs                cleared (nbgrader clears outputs before running anyway)
=================================  ======================================================

Edited and deleted test cells need nothing here: nbgrader puts the instructor's
version back (``OverwriteCells`` and :class:`rmteach.grading.preprocessors.RestoreDeletedCells`).
Everything that happens while the code runs (loops, exits, huge output, memory,
tampering) is handled by the course configuration, the sandbox and the checks.
"""

from __future__ import annotations

import ast
import copy
import json
import re
import shutil
from dataclasses import dataclass, field
from pathlib import Path
from typing import Optional

__all__ = ["Preparation", "prepare_submission", "cell_report", "NBGRADER_KEYS", "SAVED_OUTPUT_LIMIT"]

#: the keys nbgrader's cell metadata schema (v3) allows
NBGRADER_KEYS = ("grade", "grade_id", "locked", "points", "schema_version", "solution", "task", "checksum", "cell_type")
#: saved outputs larger than this (characters, per notebook) are cleared from the working copy
SAVED_OUTPUT_LIMIT = 1_000_000

_HIDDEN = re.compile(r"[ \t]*### BEGIN HIDDEN TESTS.*?### END HIDDEN TESTS[ \t]*\n?", re.S)


@dataclass
class Preparation:
    """What :func:`prepare_submission` decided about one submission."""

    gradable: bool
    """False: do not run nbgrader for it; its status is ``failed: <reason>`` (the first note)."""
    notes: list[str] = field(default_factory=list)
    """One human-readable log line per thing found or repaired."""

    @property
    def reason(self) -> str:
        """The first note: why a submission is not gradable."""
        return self.notes[0] if self.notes else ""


def prepare_submission(source_dir: Path, work_dir: Path, assignment: str) -> Preparation:
    """Check (and repair in place) the working copy ``work_dir`` of one submission.

    ``source_dir`` is ``<course>/source/<assignment>`` (the instructor's notebooks);
    ``work_dir`` is the folder that will be graded as ``submitted/<student>/<assignment>``.
    Never raises for a bad submission: an unexpected error makes it not gradable,
    with the error in the note.
    """
    try:
        return _prepare(Path(source_dir), Path(work_dir), assignment)
    except Exception as exc:  # a bug or an unforeseen file: never abort the batch
        return Preparation(False, [f"{assignment}: could not prepare the submission ({type(exc).__name__}: {exc})"])


# -- reading ----------------------------------------------------------------


def _load(path: Path) -> tuple[Optional[dict], str]:
    """(notebook as plain JSON dict, "") or (None, why it cannot be read)."""
    try:
        text = path.read_bytes().decode("utf-8")
    except UnicodeDecodeError as exc:
        return None, f"not UTF-8 text ({exc.reason} at byte {exc.start})"
    except OSError as exc:
        return None, f"cannot be read ({exc.strerror})"
    try:
        nb = json.loads(text)
    except json.JSONDecodeError as exc:
        return None, f"not valid JSON ({exc.msg} at line {exc.lineno} column {exc.colno})"
    if not isinstance(nb, dict) or not isinstance(nb.get("cells"), list):
        return None, "not a notebook (no list of cells)"
    if nb.get("nbformat") != 4:
        return None, f"not a version-4 notebook (nbformat {nb.get('nbformat')!r})"
    for i, cell in enumerate(nb["cells"]):
        if not isinstance(cell, dict) or cell.get("cell_type") not in ("code", "markdown", "raw"):
            return None, f"not a notebook (cell {i} has no valid cell_type)"
        if not isinstance(cell.get("metadata", {}), dict):
            return None, f"not a notebook (cell {i} has metadata that is not an object)"
        if not isinstance(cell.get("source", ""), (str, list)):
            return None, f"not a notebook (cell {i} has a source that is not text)"
    try:
        import warnings

        import nbformat

        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # duplicate cell ids and the like are repaired later
            nbformat.reads(text, as_version=4)
    except Exception as exc:
        return None, f"not a readable notebook ({type(exc).__name__}: {str(exc).splitlines()[0][:120]})"
    return nb, ""


def _text(cell: dict) -> str:
    src = cell.get("source", "")
    return "".join(src) if isinstance(src, list) else str(src)


def _nbmeta(cell: dict) -> dict:
    meta = cell.get("metadata", {}).get("nbgrader")
    return meta if isinstance(meta, dict) else {}


def _gid(cell: dict) -> Optional[str]:
    gid = _nbmeta(cell).get("grade_id")
    return gid if isinstance(gid, str) and gid else None


def _norm(text: str) -> str:
    text = _HIDDEN.sub("", text)
    return "\n".join(line.rstrip() for line in text.strip().splitlines())


def _binds(text: str) -> set[str]:
    try:
        tree = ast.parse(text)
    except SyntaxError:
        return set()
    names: set[str] = set()
    for node in tree.body:
        if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef)):
            names.add(node.name)
        elif isinstance(node, (ast.Assign, ast.AnnAssign, ast.AugAssign)):
            targets = node.targets if isinstance(node, ast.Assign) else [node.target]
            for t in targets:
                names.update(n.id for n in ast.walk(t) if isinstance(n, ast.Name))
    return names


# -- the steps --------------------------------------------------------------


def _match_names(source_dir: Path, work_dir: Path, prep: Preparation) -> list[str]:
    """Rename misnamed notebooks, drop extra ones; return the expected names present."""
    expected = sorted(p.name for p in source_dir.glob("*.ipynb"))
    if not expected:
        raise FileNotFoundError(f"no source notebook in {source_dir}")
    present = sorted(p.name for p in work_dir.glob("*.ipynb")) if work_dir.is_dir() else []
    missing = [n for n in expected if n not in present]
    extra = [n for n in present if n not in expected]
    if missing and extra:
        if len(missing) == 1 and len(extra) == 1:
            pairs = {extra[0]: missing[0]}
        else:  # match by the grade_ids the cells carry
            ids = {}
            for name in missing:
                nb, _ = _load(source_dir / name)
                ids[name] = {_gid(c) for c in (nb or {}).get("cells", [])} - {None}
            pairs, free = {}, set(missing)
            for name in extra:
                nb, _ = _load(work_dir / name)
                have = {_gid(c) for c in (nb or {}).get("cells", [])} - {None}
                best = max(sorted(free), key=lambda m: len(ids[m] & have), default=None)
                if best is not None and ids[best] & have:
                    pairs[name] = best
                    free.discard(best)
        for old, new in pairs.items():
            (work_dir / old).rename(work_dir / new)
            prep.notes.append(f"renamed notebook {old!r} to the expected {new!r} and graded it")
            missing.remove(new)
            extra.remove(old)
    for name in extra:
        (work_dir / name).unlink()
        prep.notes.append(f"extra notebook {name!r} is not part of the assignment: not graded")
    for name in missing:
        prep.notes.append(f"missing notebook {name}: 0 points for it")
    return [n for n in expected if n not in missing]


def _canonical(src_meta: dict, sub_meta: dict) -> dict:
    meta = {k: copy.deepcopy(v) for k, v in src_meta.items() if k in NBGRADER_KEYS and k != "checksum"}
    for key in ("checksum", "cell_type"):  # written at release time; keep the student's copy of them
        if key in sub_meta and key not in meta:
            meta[key] = sub_meta[key]
    return meta


def _repair_cells(name: str, nb: dict, source_nb: dict, prep: Preparation) -> bool:
    """Make the nbgrader metadata of ``nb`` agree with the source notebook; True if changed."""
    changed = False
    src_cells = [c for c in source_nb["cells"] if _gid(c)]
    src = {_gid(c): c for c in src_cells}
    order = [_gid(c) for c in src_cells]
    cells = nb["cells"]
    for cell in cells:
        cell.setdefault("metadata", {})

    # unknown grade_ids: a student cannot add graded cells
    for cell in cells:
        gid = _gid(cell)
        if "nbgrader" in cell["metadata"] and (gid is None or gid not in src):
            what = f"grade_id {gid!r}" if gid else "no grade_id"
            prep.notes.append(f"{name}: dropped nbgrader metadata of a cell with {what} (not a cell of the assignment)")
            del cell["metadata"]["nbgrader"]
            changed = True

    # duplicates: keep the copy in the source's place (after its predecessor), else the last
    for gid in order:
        where = [i for i, c in enumerate(cells) if _gid(c) == gid]
        if len(where) < 2:
            continue
        pred = order[order.index(gid) - 1] if order.index(gid) else None
        keep = where[-1]
        for i in where:
            prev = next((g for j in range(i - 1, -1, -1) if (g := _gid(cells[j])) and g != gid), None)
            if prev == pred:
                keep = i
                break
        for i in where:
            if i != keep:
                del cells[i]["metadata"]["nbgrader"]
                if "id" in cells[i]:  # nbformat 4.5 cell ids must be unique too
                    cells[i]["id"] = f"{cells[i]['id']}-copy-{i}"[:64]
        prep.notes.append(
            f"{name}: cell {gid!r} appears {len(where)} times (copy-pasted): cell {keep + 1} is graded as {gid!r}, "
            f"the other copies run as plain cells"
        )
        changed = True

    # stripped metadata: find the cells by text (locked) or place (answers)
    missing = [g for g in order if g not in {_gid(c) for c in cells}]
    if missing:
        changed |= _restore_stripped(name, cells, src, order, missing, prep)

    # metadata edited (schema_version, extra keys, flags, points): the instructor's, by grade_id
    edited_meta: dict[str, list[str]] = {}
    edited_text: list[str] = []
    for cell in cells:
        gid = _gid(cell)
        if gid is None:
            continue
        sub_meta = _nbmeta(cell)
        want = _canonical(_nbmeta(src[gid]), sub_meta)
        if sub_meta != want or cell.get("cell_type") != src[gid]["cell_type"]:
            diffs = sorted(k for k in set(sub_meta) | set(want) if sub_meta.get(k) != want.get(k))
            if cell.get("cell_type") != src[gid]["cell_type"]:
                diffs.append(f"cell type {cell.get('cell_type')} -> {src[gid]['cell_type']}")
                _set_type(cell, src[gid]["cell_type"])
            cell["metadata"]["nbgrader"] = want
            edited_meta[gid] = diffs
            changed = True
        if not want.get("solution") and _norm(_text(cell)) != _norm(_text(src[gid])):
            edited_text.append(gid)
    if edited_meta:
        keys = sorted({d for diffs in edited_meta.values() for d in diffs})
        prep.notes.append(
            f"{name}: {len(edited_meta)} cell(s) had changed nbgrader metadata ({', '.join(keys)}): "
            f"the instructor's metadata is put back ({_some(edited_meta)})"
        )
    if edited_text:
        prep.notes.append(
            f"{name}: {len(edited_text)} locked cell(s) were edited ({_some(edited_text)}): "
            "the instructor's version is run and graded"
        )
    return changed


def _some(ids, n: int = 6) -> str:
    ids = list(ids)
    return ", ".join(ids[:n]) + (f" and {len(ids) - n} more" if len(ids) > n else "")


def _set_type(cell: dict, cell_type: str) -> None:
    cell["cell_type"] = cell_type
    if cell_type == "code":
        cell.setdefault("outputs", [])
        cell.setdefault("execution_count", None)
    else:
        cell.pop("outputs", None)
        cell.pop("execution_count", None)


def _restore_stripped(name: str, cells: list, src: dict, order: list, missing: list, prep: Preparation) -> bool:
    changed = False
    found: dict[str, int] = {}

    def anchors() -> dict[str, int]:
        return {g: i for i, c in enumerate(cells) if (g := _gid(c))} | found

    def gap(gid: str) -> range:
        pos = order.index(gid)
        have = anchors()
        lo = max((have[g] for g in order[:pos] if g in have), default=-1)
        hi = min((have[g] for g in order[pos + 1:] if g in have), default=len(cells))
        return range(lo + 1, max(hi, lo + 1))

    def free(i: int) -> bool:
        return _gid(cells[i]) is None and i not in found.values()

    # pass 1: locked cells (instructions, set-up, tests) by their text
    for gid in missing:
        meta = _nbmeta(src[gid])
        if meta.get("solution"):
            continue
        want = _norm(_text(src[gid]))
        hits = [i for i in gap(gid) if free(i) and cells[i].get("cell_type") == src[gid]["cell_type"] and _norm(_text(cells[i])) == want]
        if hits:
            found[gid] = hits[0]
    # pass 2: answer cells by place (and, for code, by the names they define)
    for gid in missing:
        meta = _nbmeta(src[gid])
        if not meta.get("solution"):
            continue
        cand = [i for i in gap(gid) if free(i) and cells[i].get("cell_type") == src[gid]["cell_type"]]
        names = _binds(_text(src[gid])) if src[gid]["cell_type"] == "code" else set()
        if names:
            cand = [i for i in cand if names & _binds(_text(cells[i]))] or cand
        if cand:
            # the last candidate in the gap: the student's final version of the answer
            found[gid] = cand[-1] if names else cand[0]
    for gid in missing:
        if gid in found:
            cells[found[gid]]["metadata"]["nbgrader"] = _canonical(_nbmeta(src[gid]), {})
            changed = True
    if found:
        prep.notes.append(
            f"{name}: {len(found)} cell(s) had lost their nbgrader metadata: put back from the source, "
            f"matched by text and place ({_some(g for g in missing if g in found)})"
        )
    gone = [g for g in missing if g not in found]
    if gone:
        prep.notes.append(
            f"{name}: {len(gone)} cell(s) of the assignment are not in the submission ({_some(gone)}): "
            "nbgrader puts the instructor's version back (an answer cell comes back empty)"
        )
    return changed


def _clear_big_outputs(name: str, nb: dict, prep: Preparation) -> bool:
    size = sum(len(json.dumps(c.get("outputs", []))) for c in nb["cells"] if c.get("cell_type") == "code")
    if size <= SAVED_OUTPUT_LIMIT:
        return False
    for cell in nb["cells"]:
        if cell.get("cell_type") == "code":
            cell["outputs"] = []
    prep.notes.append(f"{name}: cleared {size / 1e6:.1f} MB of saved cell output (nbgrader runs the code again)")
    return True


def _prepare(source_dir: Path, work_dir: Path, assignment: str) -> Preparation:
    prep = Preparation(True, [])
    if not source_dir.is_dir():
        return Preparation(False, [f"{assignment}: no source folder {source_dir}"])
    if not work_dir.is_dir():
        return Preparation(False, [f"{assignment}: no submission folder {work_dir}"])
    names = _match_names(source_dir, work_dir, prep)
    graded = []
    for name in names:
        path = work_dir / name
        nb, why = _load(path)
        if nb is None:
            path.unlink()
            prep.notes.insert(0, f"{name} is {why}: cannot be graded, 0 points for it")
            continue
        source_nb, why_src = _load(source_dir / name)
        if source_nb is None:
            raise ValueError(f"source notebook {name} is {why_src}")
        changed = _repair_cells(name, nb, source_nb, prep)
        changed |= _clear_big_outputs(name, nb, prep)
        if changed:
            path.write_text(json.dumps(nb, indent=1, ensure_ascii=False) + "\n", encoding="utf-8")
        graded.append(name)
    if not graded:
        prep.gradable = False
        if not prep.notes:
            prep.notes.append(f"{assignment}: no notebook to grade")
    return prep


def _copy_for_grading(submitted: Path, work_dir: Path) -> Path:
    """A fresh working copy of ``submitted`` at ``work_dir`` (used by tests and the CLI)."""
    if work_dir.exists():
        shutil.rmtree(work_dir)
    shutil.copytree(submitted, work_dir, ignore=shutil.ignore_patterns(".ipynb_checkpoints"))
    return work_dir


def cell_report(course: Path, student: str, assignment: str) -> list[str]:
    """One line per autograded test cell of a graded submission: its points and,
    when it lost them, why (the error of the cell, e.g. ``Tampering: tampering
    detected: numpy.all was replaced`` or ``KeyboardInterrupt`` after a timeout).

    Reads the gradebook and ``autograded/<student>/<assignment>/``; an instructor
    (or the autograde log) sees at a glance why a score is what it is.
    """
    from nbgrader.api import Gradebook, MissingEntry

    from rmteach.grading.course import gradebook_url

    course = Path(course)
    lines: list[str] = []
    with Gradebook(gradebook_url(course)) as gb:
        try:
            sub = gb.find_submission(assignment, student)
        except MissingEntry:
            return [f"{student}/{assignment}: not in the gradebook"]
        for nb in sub.notebooks:
            why: dict[str, str] = {}
            loaded, _ = _load(course / "autograded" / student / assignment / f"{nb.name}.ipynb")
            for cell in (loaded or {}).get("cells", []):
                gid = _gid(cell)
                for out in cell.get("outputs", []) if gid else []:
                    if out.get("output_type") == "error":
                        value = str(out.get("evalue", "")).strip().splitlines()
                        why[gid] = f"{out.get('ename')}: {value[0][:200] if value else ''}".rstrip(": ")
                        break
                    if out.get("output_type") == "stream" and out.get("name") == "stderr":
                        text = _text({"source": out.get("text", "")}).strip().splitlines()
                        why.setdefault(gid, f"stderr: {text[0][:200] if text else ''}")
            for cell in (loaded or {}).get("cells", []):  # answer cells that stopped with an error
                gid = _gid(cell)
                big = cell.get("metadata", {}).get("rmteach", {})
                if isinstance(big, dict) and "output_chars" in big:
                    lines.append(f"{nb.name}/{gid or 'a cell'}: printed {big['output_chars'] / 1e6:.1f} MB of output; "
                                 f"kept the first {big.get('max_lines')} lines / {big.get('max_chars')} characters")
                if gid in why and _nbmeta(cell).get("solution") and not _nbmeta(cell).get("grade"):
                    lines.append(f"{nb.name}/{gid} (answer cell): stopped with {why[gid]}")
            for grade in sorted(nb.grades, key=lambda g: g.name):
                if grade.cell.cell_type != "code":
                    continue
                score = grade.score if grade.score is not None else 0.0
                line = f"{nb.name}/{grade.name}: {score:g} / {grade.max_score:g}"
                if score < grade.max_score and grade.name in why:
                    line += f" ({why[grade.name]})"
                lines.append(line)
    return lines
