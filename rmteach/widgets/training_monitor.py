"""Live training curves for a training loop in a notebook cell (notebook 4)."""

from __future__ import annotations

import math
import time
from typing import Any

import ipywidgets as W
import numpy as np

from rmteach.widgets.panels import CURVE, OTHER, PREF, REJ, Panel, Readouts, move, plots_row


class TrainingMonitor:
    """A progress bar and live curves for a training loop in a notebook cell.

    ``TrainingMonitor(total_steps, metrics=(...))`` shows itself when it is the
    last expression of a cell (or through ``display``); call
    ``monitor.update(step, name=value, ...)`` from the loop, e.g. as
    ``rmteach.training.train_reward_model(..., callback=monitor.update)``.  The
    page updates while the cell runs, at most every ``interval`` seconds (and
    always at ``step == total_steps``; :meth:`flush` forces it), so a fast loop
    is not slowed down by drawing.  ``.readouts`` holds the latest value of each
    metric and ``step``.  Metrics whose name contains ``acc`` are drawn in a
    second panel on a [0, 1] axis, the others (losses) in the first.
    """

    def __init__(self, total_steps: int,
                 metrics: tuple[str, ...] = ("train_loss", "val_loss", "train_acc", "val_acc"),
                 interval: float = 0.1) -> None:
        if isinstance(total_steps, bool) or not isinstance(total_steps, int) or total_steps < 1:
            raise ValueError(f"total_steps must be a positive integer, got {total_steps!r}")
        if isinstance(metrics, str):
            raise TypeError(f"metrics must be a tuple of metric names, got the string {metrics!r}")
        metrics = tuple(metrics)
        if not metrics or not all(isinstance(m, str) and m.isidentifier() for m in metrics):
            raise ValueError(f"metrics must be a non-empty tuple of names (identifiers), got {metrics!r}")
        if len(set(metrics)) != len(metrics):
            raise ValueError(f"metrics must not repeat a name, got {metrics!r}")
        if isinstance(interval, bool) or not isinstance(interval, (int, float)) or not interval >= 0:
            raise ValueError(f"interval must be a number of seconds >= 0, got {interval!r}")
        self.total_steps = total_steps
        self.metrics = metrics
        self.interval = float(interval)
        self._history: dict[str, tuple[list[float], list[float]]] = {m: ([], []) for m in metrics}
        self._step = 0
        self._last_flush = -math.inf
        self._dirty = False

        self._bar = W.IntProgress(value=0, min=0, max=total_steps, layout=W.Layout(width="380px"))
        self._bar.add_class("rmteach-progress")
        self._readouts = Readouts([("step", "step")] + [(m, m.replace("_", " ")) for m in metrics])
        palette = [PREF, REJ, "#009E73", "#E69F00", "#56B4E9", "#CC79A7", OTHER, CURVE]
        acc = [m for m in metrics if "acc" in m]
        other = [m for m in metrics if "acc" not in m]
        panels: list[Panel] = []
        self._lines = {}
        self._auto: tuple[Any, list[str]] | None = None  # the panel whose y-axis follows the data
        other_title = "loss" if all("loss" in m for m in other) else "metrics"
        for names, title, ylabel, yr, legend in ((other, other_title, "value", None, "top-right"),
                                                  (acc, "accuracy", "accuracy", (0.0, 1.0), "bottom-right")):
            if not names:
                continue
            panel = Panel(title, "step", ylabel, x_range=(0.0, float(total_steps)), y_range=yr, legend=legend)
            for m in names:
                i = metrics.index(m)
                self._lines[m] = panel.line([], [], palette[i % len(palette)], m,
                                            dashed=m.startswith("val"))
            if yr is None:
                self._auto = (panel, names)
            panels.append(panel)
        self._readouts.show(step=0)
        self.widget = W.VBox([W.HBox([W.HTML("<b>training</b>&nbsp;"), self._bar]),
                              self._readouts.widget, plots_row(panels)])
        self.widget.add_class("rmteach-training-monitor")

    @property
    def readouts(self) -> dict[str, float]:
        """The latest step and value of every metric (NaN until first reported)."""
        return dict(self._readouts.values)

    def history(self, metric: str) -> tuple[list[float], list[float]]:
        """``(steps, values)`` reported so far for ``metric``."""
        if metric not in self._history:
            raise ValueError(f"metric must be one of {', '.join(self.metrics)}, got {metric!r}")
        steps, values = self._history[metric]
        return list(steps), list(values)

    def update(self, step: int, **metrics: float) -> None:
        """Record the metrics at ``step`` (0 to ``total_steps``).

        Names not in ``metrics`` are ignored, so ``update`` can be a callback
        that reports more; a call that names none of them is an error.
        """
        if isinstance(step, bool) or not isinstance(step, (int, np.integer)) or not 0 <= step <= self.total_steps:
            raise ValueError(f"step must be an integer in [0, {self.total_steps}], got {step!r}")
        known = {k: v for k, v in metrics.items() if k in self._history}
        if not known:
            raise ValueError(
                f"update() got none of the monitored metrics ({', '.join(self.metrics)}); "
                f"got {', '.join(metrics) or 'no metrics'}"
            )
        values = {}
        for k, v in known.items():
            try:
                values[k] = float(v)
            except (TypeError, ValueError):
                raise TypeError(f"{k} must be a real number, got {type(v).__name__} {v!r}") from None
        self._step = int(step)
        for k, v in values.items():
            steps, vals = self._history[k]
            steps.append(float(step))
            vals.append(v)
        self._readouts.values.update(values)
        self._readouts.values["step"] = float(step)
        self._dirty = True
        now = time.monotonic()
        if step == self.total_steps or now - self._last_flush >= self.interval:
            self.flush()

    def flush(self) -> None:
        """Show everything reported so far now."""
        if not self._dirty:
            return
        self._readouts.show()
        self._bar.value = self._step
        for name, line in self._lines.items():
            steps, vals = self._history[name]
            move(line, steps, vals)
        if self._auto is not None:
            self._fit_y(*self._auto)
        self._dirty = False
        self._last_flush = time.monotonic()

    def _fit_y(self, panel: Any, names: list[str]) -> None:
        """Auto range, but never narrower than 10% of the values' size (or 0.1).

        A loss stuck at ln 2 varies only in its last digits; an axis fitted to
        that range would show ticks "1 1 1" and two lines that look far apart.
        """
        vals = np.array([v for m in names for v in self._history[m][1]], dtype=float)
        vals = vals[np.isfinite(vals)]
        if vals.size == 0:
            return
        lo, hi = float(vals.min()), float(vals.max())
        mid, min_span = (lo + hi) / 2, max(0.1 * abs((lo + hi) / 2), 0.1)
        with panel.ys.hold_sync():
            if hi - lo < min_span:
                panel.ys.min, panel.ys.max = mid - min_span / 2, mid + min_span / 2
            else:
                panel.ys.min, panel.ys.max = None, None

    def _repr_mimebundle_(self, **kwargs):
        return self.widget._repr_mimebundle_(**kwargs)

    def __repr__(self) -> str:
        shown = ", ".join(f"{k}={v:.6g}" for k, v in self.readouts.items())
        return f"<TrainingMonitor {self._step}/{self.total_steps}: {shown}>"
