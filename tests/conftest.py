"""Shared pytest set-up: headless plotting for every test in this process, and no course database.

Kernels started by tests (nbclient, JupyterLab) are separate processes and keep
their own backend, so figures still show in them.  The tests' temporary courses
keep their own SQLite gradebooks even where an instructor set
``$RMTEACH_GRADEBOOK_URL`` (tests/test_postgres.py sets it for its own server).
"""

import os

import matplotlib

matplotlib.use("Agg")
os.environ.pop("RMTEACH_GRADEBOOK_URL", None)
