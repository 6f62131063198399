"""Torch on one thread while a course simulation trains its tiny models (imports torch).

The models of :mod:`rmteach.training` and :mod:`rmteach.sequence_rm` are tiny: a second
thread only adds synchronization, and on a busy 2-core machine (notebooks run in parallel,
other jobs) the spinning worker threads made a 0.25 s run take 10 s.
"""

from __future__ import annotations

import contextlib
from typing import Iterator

import torch


@contextlib.contextmanager
def one_thread() -> Iterator[None]:
    """Run torch on one thread inside the block, then restore the caller's setting."""
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        yield
    finally:
        torch.set_num_threads(before)
