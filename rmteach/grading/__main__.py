"""``python -m rmteach.grading COMMAND``: the instructor's command line (:mod:`rmteach.grading.cli`)."""

import sys

from rmteach.grading.cli import main

sys.exit(main())
