"""Cache-sized blocks, spread over threads, for the NumPy kernels.

A loss over 10**7 pairs written as whole-array NumPy expressions makes about
ten passes over arrays of 80 MB each: memory traffic and page faults, not
arithmetic, set its speed.  :func:`map_blocks` instead hands a kernel blocks of
``BLOCK`` elements, small enough that the kernel's temporaries stay in the CPU
caches and large enough that Python's per-call overhead does not show, and runs large inputs on several threads (NumPy's ufuncs release the
GIL).

The block boundaries depend only on the input length, never on the number of
threads, and per-block results come back in block order, so a reduction gives
the same bits on a laptop with 8 cores and on a CI runner with 2.

``RMTEACH_NUM_THREADS`` (an integer >= 1) caps the threads; by default one per
CPU this process may use.
"""

from __future__ import annotations

import os
from typing import Callable, TypeVar

# Elements per block. Measured on 10**7 pairs (bench/losses.py): 2**14 spent more
# time in per-call Python overhead than in arithmetic (48 ms float64, 30 ms
# float32); 2**17 to 2**18 was fastest (22-30 ms, 11-18 ms); 2**20 slower again
# (the scratch no longer stays in cache).
BLOCK = 1 << 17
PARALLEL_MIN = 2 * BLOCK  # below this many elements, threads cost more than they save

T = TypeVar("T")
_pool = None


def num_threads() -> int:
    """Threads used for large inputs (``RMTEACH_NUM_THREADS`` or the usable CPUs)."""
    env = os.environ.get("RMTEACH_NUM_THREADS")
    if env:
        try:
            n = int(env)
        except ValueError:
            raise ValueError(f"RMTEACH_NUM_THREADS must be an integer >= 1, got {env!r}") from None
        if n < 1:
            raise ValueError(f"RMTEACH_NUM_THREADS must be an integer >= 1, got {env!r}")
        return n
    try:
        return max(1, len(os.sched_getaffinity(0)))
    except AttributeError:  # not on Linux
        return max(1, os.cpu_count() or 1)


def _executor(workers: int):
    global _pool
    if _pool is None or _pool._max_workers < workers:
        from concurrent.futures import ThreadPoolExecutor

        _pool = ThreadPoolExecutor(max_workers=workers, thread_name_prefix="rmteach")
    return _pool


def map_blocks(kernel: Callable[[int, int], T], n: int) -> list[T]:
    """``[kernel(lo, hi) for each block [lo, hi) of range(n)]``, in block order.

    ``kernel`` must only touch elements ``lo:hi`` of its arrays (it may keep
    per-call scratch of ``BLOCK`` elements); large ``n`` runs on threads.
    """
    starts = range(0, n, BLOCK)
    workers = min(num_threads(), len(starts))
    if n < PARALLEL_MIN or workers < 2:
        return [kernel(lo, min(lo + BLOCK, n)) for lo in starts]

    # Contiguous runs of blocks, one per thread: each thread streams its own part.
    per = -(-len(starts) // workers)
    runs = [starts[i : i + per] for i in range(0, len(starts), per)]

    def run(part: range) -> list[T]:
        return [kernel(lo, min(lo + BLOCK, n)) for lo in part]

    results: list[T] = []
    for part in _executor(len(runs)).map(run, runs):
        results.extend(part)
    return results
