"""The course material beside the repository (``../shared/course/``), read the same way by every test.

CI and developers have ``shared/`` next to the clone; where it is missing the tests
fall back on the course's question ids Q01-Q28.
"""

from __future__ import annotations

import re
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
QUESTIONS = ROOT.parent / "shared" / "course" / "QUESTIONS.md"
ALL_IDS = [f"Q{i:02d}" for i in range(1, 29)]  # the course's Q01-Q28, when shared/ is not beside the repo
WRITTEN_IDS = ["Q08", "Q13"] + [f"Q{i}" for i in range(21, 29)]  # QUESTIONS.md's *written* ones, likewise


def question_ids() -> list[str]:
    """Every question id of QUESTIONS.md's table, in its order (duplicates kept)."""
    if not QUESTIONS.exists():
        return list(ALL_IDS)
    ids = re.findall(r"^\|\s*(Q\d\d)\s*\|", QUESTIONS.read_text(encoding="utf-8"), flags=re.M)
    assert ids, f"no question ids found in {QUESTIONS}"
    return ids


def written_ids() -> list[str]:
    """The ids QUESTIONS.md marks *written* (manually graded); :data:`WRITTEN_IDS` without shared/."""
    if not QUESTIONS.exists():
        return list(WRITTEN_IDS)
    return re.findall(r"^\|\s*(Q\d\d)\s*\|.*\*written\*", QUESTIONS.read_text(encoding="utf-8"), flags=re.M)
