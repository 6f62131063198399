"""The two implementations every parametrized suite runs over, and a to-NumPy helper."""

from __future__ import annotations

import numpy as np
import pytest

from rmteach import numpy as rmnp
from rmteach import torch as rmtorch

IMPLS = [pytest.param(rmnp, id="numpy"), pytest.param(rmtorch, id="torch")]


def as_np(x) -> np.ndarray:
    """A result of either implementation as a NumPy array (or 0-d array)."""
    if hasattr(x, "detach"):
        return x.detach().cpu().numpy()
    return np.asarray(x)
