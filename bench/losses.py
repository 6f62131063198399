"""Benchmark: rmteach.numpy's ranking loss and gradient against its peers, side by side.

    make bench            (or: .venv/bin/python bench/losses.py [--pairs N] [--repeats K])

All contenders run in this one process on the same 10**7 pairs, in interleaved
rounds (so a noisy moment hits every contender alike); each figure is the median
of the rounds. Every contender computes the same number (the mean loss, or the
gradient), checked before timing. The targets:

* ``rmteach.numpy.ranking_loss`` faster than ``np.logaddexp(0, -d)``,
  ``scipy.special.log_expit`` and ``torch.nn.functional.logsigmoid``, in float64
  and float32, and within 4x of a memory-bandwidth reference (``x + y`` over the
  same arrays);
* ``import rmteach.numpy`` under 0.3 s (fresh interpreter, median of 5).

Exits 1 if a target is missed.
"""

from __future__ import annotations

import argparse
import statistics
import subprocess
import sys
import time
from pathlib import Path
from typing import Callable

import numpy as np
import scipy.special
import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from rmteach import numpy as rm  # noqa: E402


def time_rounds(contenders: dict[str, Callable[[], object]], repeats: int) -> dict[str, list[float]]:
    """Seconds per call for each contender, one call of each per round, after one warm-up."""
    for fn in contenders.values():
        fn()
    times: dict[str, list[float]] = {name: [] for name in contenders}
    for _ in range(repeats):
        for name, fn in contenders.items():
            t0 = time.perf_counter()
            fn()
            times[name].append(time.perf_counter() - t0)
    return times


def report(title: str, times: dict[str, list[float]], ours: str, bandwidth: str) -> dict[str, float]:
    med = {name: statistics.median(ts) for name, ts in times.items()}
    print(f"\n{title}")
    print(f"  {'contender':44s} {'median ms':>10s} {'p-max ms':>9s} {'vs rmteach':>11s}")
    for name, ts in times.items():
        ratio = med[name] / med[ours]
        print(f"  {name:44s} {med[name] * 1e3:10.1f} {max(ts) * 1e3:9.1f} {ratio:10.2f}x")
    return med


def check(label: str, ok: bool, detail: str, failures: list[str]) -> None:
    print(f"  [{'PASS' if ok else 'FAIL'}] {label}: {detail}")
    if not ok:
        failures.append(label)


def import_time(module: str, runs: int = 5) -> float:
    code = f"import time; t = time.perf_counter(); import {module}; print(time.perf_counter() - t)"
    root = str(Path(__file__).resolve().parents[1])
    out = [
        float(subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True, cwd=root).stdout)
        for _ in range(runs)
    ]
    return statistics.median(out)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--pairs", type=int, default=10**7)
    parser.add_argument("--repeats", type=int, default=9)
    args = parser.parse_args()
    n = args.pairs
    failures: list[str] = []
    from rmteach._blocks import num_threads

    print(f"rmteach bench: {n:,} pairs, median of {args.repeats} interleaved rounds; "
          f"numpy {np.__version__}, scipy {scipy.__version__}, torch {torch.__version__} "
          f"({torch.get_num_threads()} threads), rmteach {num_threads()} threads")

    rng = np.random.default_rng(0)
    for dtype in (np.float64, np.float32):
        a = rng.normal(0, 2, n).astype(dtype)
        b = rng.normal(0, 2, n).astype(dtype)
        ta, tb = torch.from_numpy(a), torch.from_numpy(b)
        tname = np.dtype(dtype).name

        loss = {
            "rmteach.numpy.ranking_loss": lambda: rm.ranking_loss(a, b),
            "np.logaddexp(0, -d).mean()": lambda: np.logaddexp(0, -(a - b)).mean(),
            "-scipy.special.log_expit(d).mean()": lambda: (-scipy.special.log_expit(a - b)).mean(),
            "-torch.nn.functional.logsigmoid(d).mean()": lambda: (-torch.nn.functional.logsigmoid(ta - tb)).mean(),
            "bandwidth reference: x + y": lambda: a + b,
        }
        values = [float(f()) for name, f in loss.items() if not name.startswith("bandwidth")]
        assert max(values) - min(values) <= 1e-5 * abs(values[0]), f"contenders disagree: {values}"
        med = report(f"ranking_loss, {tname}", time_rounds(loss, args.repeats),
                     "rmteach.numpy.ranking_loss", "bandwidth reference: x + y")
        ours = med["rmteach.numpy.ranking_loss"]
        for peer in list(loss)[1:4]:
            check(f"{tname}: faster than {peer}", ours < med[peer], f"{med[peer] / ours:.2f}x", failures)
        bw = med["bandwidth reference: x + y"]
        check(f"{tname}: within 4x of x + y", ours <= 4 * bw, f"{ours / bw:.2f}x the bandwidth reference", failures)

        def torch_autograd():
            x = ta.detach().requires_grad_(True)
            y = tb.detach().requires_grad_(True)
            (-torch.nn.functional.logsigmoid(x - y)).mean().backward()
            return x.grad, y.grad

        def scipy_expit():
            s = scipy.special.expit(b - a)  # sigma(-Delta)
            s /= n
            return -s, s

        grad = {
            "rmteach.numpy.ranking_loss_grad": lambda: rm.ranking_loss_grad(a, b),
            "torch.autograd of logsigmoid": torch_autograd,
            "scipy.special.expit(-d) / n": scipy_expit,
            "bandwidth reference: x + y": lambda: a + b,
        }
        ref = rm.ranking_loss_grad(a, b)[1]
        for name in list(grad)[1:3]:
            got = np.asarray(grad[name]()[1])
            np.testing.assert_allclose(got, ref, rtol=1e-5 if dtype == np.float32 else 1e-12)
        report(f"ranking_loss_grad, {tname}", time_rounds(grad, args.repeats),
               "rmteach.numpy.ranking_loss_grad", "bandwidth reference: x + y")
        del a, b, ta, tb

    print("\nimport time (fresh interpreter, median of 5)")
    t_np = import_time("numpy")
    t_rm = import_time("rmteach.numpy")
    print(f"  import numpy          {t_np * 1e3:7.1f} ms")
    print(f"  import rmteach.numpy  {t_rm * 1e3:7.1f} ms")
    check("import rmteach.numpy under 0.3 s", t_rm < 0.3, f"{t_rm * 1e3:.0f} ms", failures)

    print(f"\n{'all targets hold' if not failures else 'MISSED: ' + '; '.join(failures)}")
    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(main())
