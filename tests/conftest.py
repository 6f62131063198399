"""Shared pytest set-up: headless plotting for every test in this process.

Kernels started by tests (nbclient, JupyterLab) are separate processes and keep
their own backend, so figures still show in them.
"""

import matplotlib

matplotlib.use("Agg")
