r"""Slider explorers for the course notebooks: move a reward, watch the loss and its gradient.

Every builder returns an explorer object.  Put it last in a cell (or pass it to
``display``) to show it; its root ipywidgets widget is ``.widget``.  From
Python, ``.set(name=value, ...)`` moves sliders exactly as dragging them
would, and ``.readouts`` is a dict of the numbers the explorer shows, so the
explorers can be checked without a browser::

    from rmteach.widgets import loss_explorer
    ex = loss_explorer(r_pref=2.0, r_rej=3.0)
    ex.set(r_pref=2.5)
    ex.readouts["loss"]     # == rmteach.numpy.ranking_loss(2.5, 3.0)

Every number shown comes from :mod:`rmteach.numpy`; no formula is written
again here.  The figures are built once (bqplot, drawn by the browser) and
updated in place: a slider step moves a marker or replaces one curve's ``y``,
it never rebuilds a figure.  Each slider carries the CSS class
``rmteach-slider-NAME`` and each readout ``rmteach-readout-NAME``.

Builders: :func:`loss_explorer` (the main one), :func:`preference_explorer`,
:func:`gradient_step_explorer`, :func:`margin_explorer`,
:func:`soft_label_explorer`, :func:`regularizer_explorer`,
:func:`listwise_explorer`, :class:`TrainingMonitor` for training loops, and
:func:`text_explorer` for a slider whose effect is best told in a few lines of
text.  None of them uses an ``Output`` widget (what ``ipywidgets.interact``
prints into): executed headless by nbclient, a cell with one can block for
minutes (nbclient issue 312; it hung this project's notebook test twice).
"""

from __future__ import annotations

import html
import math
import time
from contextlib import contextmanager
from typing import Any, Callable

import ipywidgets as W
import numpy as np

from rmteach import numpy as rm
from rmteach.naive import erratum_regularized_ranking_loss
from rmteach._plots import (
    CURVE, MARK, OTHER, PREF, REJ, Panel, Readouts, Slider, check_value, move, plots_row, set_y,
)

__all__ = [
    "loss_explorer",
    "preference_explorer",
    "gradient_step_explorer",
    "margin_explorer",
    "soft_label_explorer",
    "regularizer_explorer",
    "listwise_explorer",
    "TrainingMonitor",
    "text_explorer",
]

REWARD_RANGE = (-5.0, 5.0)  # every reward slider; a reward gap lies in [-10, 10]
GAP_RANGE = (-10.0, 10.0)
GAP_GRID = np.linspace(GAP_RANGE[0], GAP_RANGE[1], 401)  # step 0.05: curves against the gap

R_PREF = "r<sub>pref</sub>"
R_REJ = "r<sub>rej</sub>"
DELTA = "\u0394"


def _f(x: Any) -> float:
    return float(x)


class Explorer:
    """Sliders, readouts and live plots; subclasses say what to compute in ``_compute``."""

    title: str = ""

    def __init__(self, sliders: list[Slider], readouts: list[tuple[str, str]], panels: list[Panel],
                 note: str = "") -> None:
        self._sliders = {s.name: s for s in sliders}
        self._readouts = Readouts(readouts)
        self._panels = panels
        self._hold = 0
        header = W.HTML(value=f"<div style='font-size:1.05em'>{self.title}</div>"
                              + (f"<div style='color:#555'>{note}</div>" if note else ""))
        controls = W.Box([s.widget for s in sliders],
                         layout=W.Layout(display="flex", flex_flow="row wrap"))
        parts = [header, controls, self._readouts.widget]
        if panels:
            parts.append(plots_row(panels))
        self.widget = W.VBox(parts)
        self.widget.add_class("rmteach-explorer")
        for s in sliders:
            s.widget.observe(self._on_slider, names="value")

    # -- public API ---------------------------------------------------------
    @property
    def readouts(self) -> dict[str, float]:
        """The numbers the explorer shows now (full precision; the page shows 6 digits)."""
        return dict(self._readouts.values)

    @property
    def values(self) -> dict[str, float]:
        """The sliders' current values."""
        return {name: s.value for name, s in self._sliders.items()}

    def set(self, **values: float) -> "Explorer":
        """Move sliders, as dragging them would; the explorer updates once for all of them."""
        unknown = [k for k in values if k not in self._sliders]
        if unknown:
            raise ValueError(
                f"unknown slider {unknown[0]!r} for {type(self).__name__}; "
                f"its sliders are {', '.join(self._sliders)}"
            )
        checked = {k: self._sliders[k].check(v) for k, v in values.items()}
        with self._held():
            for k, v in checked.items():
                self._sliders[k].widget.value = v
        return self

    def _repr_mimebundle_(self, **kwargs):
        return self.widget._repr_mimebundle_(**kwargs)

    def __repr__(self) -> str:
        sliders = ", ".join(f"{k}={v!r}" for k, v in self.values.items())
        shown = ", ".join(f"{k}={v:.6g}" for k, v in self.readouts.items())
        return f"<{type(self).__name__} {sliders}: {shown}>"

    # -- updating -----------------------------------------------------------
    @contextmanager
    def _held(self):
        self._hold += 1
        try:
            yield
        finally:
            self._hold -= 1
        if self._hold == 0:
            self._refresh()

    def _on_slider(self, change) -> None:
        if self._hold == 0:
            self._refresh()

    def _refresh(self) -> None:
        self._compute(**self.values)

    def _compute(self, **values) -> None:  # pragma: no cover - abstract
        raise NotImplementedError

    def _show(self, **numbers: float) -> None:
        self._readouts.show(**numbers)


# ---------------------------------------------------------------------------
# the main explorer


class LossExplorer(Explorer):
    title = (f"<b>Pair-wise ranking loss</b> &nbsp; L = \u2212log \u03c3({DELTA} \u2212 m), "
             f"&nbsp; {DELTA} = {R_PREF} \u2212 {R_REJ}")

    def __init__(self, r_pref: float, r_rej: float, margin: float) -> None:
        sliders = [
            Slider("r_pref", "r_pref", r_pref, *REWARD_RANGE, 0.1),
            Slider("r_rej", "r_rej", r_rej, *REWARD_RANGE, 0.1),
            Slider("margin", "margin m", margin, 0.0, 3.0, 0.1),
        ]
        readouts = [
            ("delta", f"gap {DELTA}"),
            ("p", "P(y<sub>pref</sub> \u227b y<sub>rej</sub>) = \u03c3(\u0394)"),
            ("loss", "loss L"),
            ("grad_pref", f"<span style='color:{PREF}'>\u2202L/\u2202{R_PREF}</span>"),
            ("grad_rej", f"<span style='color:{REJ}'>\u2202L/\u2202{R_REJ}</span>"),
        ]
        d = GAP_GRID
        zeros = np.zeros_like(d)
        m0 = sliders[2].value
        g_pref, g_rej = rm.ranking_loss_grad(d, zeros, m0, reduction="none")
        self._loss_panel = Panel(f"loss against the gap {DELTA}", f"{DELTA} = r_pref \u2212 r_rej",
                                 "loss", x_range=GAP_RANGE, y_range=(0.0, 13.0))
        self._curve = self._loss_panel.line(d, rm.ranking_loss(d, zeros, m0, reduction="none"),
                                            CURVE, "\u2212log \u03c3(\u0394 \u2212 m)")
        self._dot = self._loss_panel.points([0.0], [0.0], MARK)
        self._grad_panel = Panel("\u2202L/\u2202r_pref (blue), \u2202L/\u2202r_rej (orange)",
                                 f"{DELTA} = r_pref \u2212 r_rej", "gradient",
                                 x_range=GAP_RANGE, y_range=(-1.05, 1.05))
        self._g_pref = self._grad_panel.line(d, g_pref, PREF)
        self._g_rej = self._grad_panel.line(d, g_rej, REJ)
        self._g_dots = self._grad_panel.points([0.0, 0.0], [0.0, 0.0], MARK)
        self._margin_drawn = m0
        super().__init__(sliders, readouts, [self._loss_panel, self._grad_panel],
                         note="Drag the rewards: the loss is large when the rejected response "
                              "scores higher, and the two gradients are always equal and opposite.")
        self._refresh()

    def _compute(self, r_pref: float, r_rej: float, margin: float) -> None:
        loss = _f(rm.ranking_loss(r_pref, r_rej, margin))
        gp, gr = (_f(g) for g in rm.ranking_loss_grad(r_pref, r_rej, margin))
        p = _f(rm.preference_probability(r_pref, r_rej))
        delta = r_pref - r_rej
        if margin != self._margin_drawn:  # the curves depend on the margin only
            d, zeros = GAP_GRID, np.zeros_like(GAP_GRID)
            g_pref, g_rej = rm.ranking_loss_grad(d, zeros, margin, reduction="none")
            set_y(self._curve, rm.ranking_loss(d, zeros, margin, reduction="none"))
            set_y(self._g_pref, g_pref)
            set_y(self._g_rej, g_rej)
            self._margin_drawn = margin
        self._show(delta=delta, p=p, loss=loss, grad_pref=gp, grad_rej=gr)
        move(self._dot, [delta], [loss])
        move(self._g_dots, [delta, delta], [gp, gr])


def loss_explorer(r_pref: float = 2.0, r_rej: float = 3.0, margin: float = 0.0) -> LossExplorer:
    r"""The pair-wise ranking loss and its gradient, live, as the two rewards move.

    Sliders ``r_pref``, ``r_rej`` (rewards of the preferred and the rejected
    response, in [-5, 5]) and ``margin`` :math:`m` (in [0, 3]).  With
    :math:`\Delta = r_{\text{pref}} - r_{\text{rej}}`, the left plot is
    :math:`L = -\log\sigma(\Delta - m)` against :math:`\Delta`, the right plot
    :math:`\partial L/\partial r_{\text{pref}} = -\sigma(m - \Delta)` and
    :math:`\partial L/\partial r_{\text{rej}} = +\sigma(m - \Delta)`; markers show the
    current pair.

    Readouts: ``delta`` (:math:`\Delta`), ``p`` (the model's
    :math:`P(y_{\text{pref}} \succ y_{\text{rej}}) = \sigma(\Delta)`, which the margin does
    not change), ``loss``, ``grad_pref``, ``grad_rej``; from
    :func:`rmteach.numpy.ranking_loss`, :func:`~rmteach.numpy.ranking_loss_grad` and
    :func:`~rmteach.numpy.preference_probability`.
    """
    return LossExplorer(r_pref, r_rej, margin)


# ---------------------------------------------------------------------------
# Bradley-Terry probability


class PreferenceExplorer(Explorer):
    title = ("<b>Bradley\u2013Terry preference probability</b> &nbsp; "
             f"P(y<sub>a</sub> \u227b y<sub>b</sub>) = \u03c3(r<sub>a</sub> \u2212 r<sub>b</sub>)")

    def __init__(self, r_a: float, r_b: float, shift: float) -> None:
        sliders = [
            Slider("r_a", "r_a", r_a, *REWARD_RANGE, 0.1),
            Slider("r_b", "r_b", r_b, *REWARD_RANGE, 0.1),
            Slider("shift", "shift c (both)", shift, *REWARD_RANGE, 0.1),
        ]
        readouts = [
            ("reward_a", "r<sub>a</sub> + c"),
            ("reward_b", "r<sub>b</sub> + c"),
            ("delta", f"gap {DELTA} = r<sub>a</sub> \u2212 r<sub>b</sub>"),
            ("p_ab", "P(y<sub>a</sub> \u227b y<sub>b</sub>)"),
            ("p_ba", "P(y<sub>b</sub> \u227b y<sub>a</sub>)"),
        ]
        self._reward_panel = Panel("the two rewards (after the shift)", "response", "reward",
                                   y_range=(-10.0, 10.0), x_ordinal=True)
        self._bars = self._reward_panel.bars(["y_a", "y_b"], [0.0, 0.0], [PREF, REJ])
        self._prob_panel = Panel(f"P(y_a \u227b y_b) against the gap {DELTA}", f"{DELTA} = r_a \u2212 r_b",
                                 "probability", x_range=GAP_RANGE, y_range=(0.0, 1.0), legend="top-left")
        self._prob_panel.line(GAP_GRID, rm.preference_probability(GAP_GRID, np.zeros_like(GAP_GRID)),
                              CURVE, "\u03c3(\u0394)")
        self._dot = self._prob_panel.points([0.0], [0.5], MARK)
        super().__init__(sliders, readouts, [self._reward_panel, self._prob_panel],
                         note="Move the shift: both rewards move together, their gap does not, "
                              "and neither does the probability (rewards are known only up to a shift).")
        self._refresh()

    def _compute(self, r_a: float, r_b: float, shift: float) -> None:
        a, b = r_a + shift, r_b + shift
        p_ab = _f(rm.preference_probability(a, b))
        p_ba = _f(rm.preference_probability(b, a))
        delta = a - b
        self._show(reward_a=a, reward_b=b, delta=delta, p_ab=p_ab, p_ba=p_ba)
        self._bars.y = np.array([a, b])
        move(self._dot, [delta], [p_ab])


def preference_explorer(r_a: float = 1.0, r_b: float = 0.0, shift: float = 0.0) -> PreferenceExplorer:
    r"""The Bradley–Terry probability :math:`P(y_a \succ y_b) = \sigma(r_a - r_b)`, live.

    Sliders ``r_a``, ``r_b`` (rewards of :math:`y_a`, :math:`y_b`, in [-5, 5]) and
    ``shift`` :math:`c` (added to both).  Left: the two rewards after the shift;
    right: :math:`\sigma(\Delta)` against :math:`\Delta` with a marker at the current
    gap.  Readouts ``reward_a`` (:math:`r_a + c`), ``reward_b``, ``delta``,
    ``p_ab`` and ``p_ba`` (:func:`rmteach.numpy.preference_probability` of the
    shifted rewards).  Moving the shift moves both rewards but not the
    probability (Q05).
    """
    return PreferenceExplorer(r_a, r_b, shift)


# ---------------------------------------------------------------------------
# gradient descent on one pair


class GradientStepExplorer(Explorer):
    title = ("<b>Gradient descent on one pair</b> &nbsp; r \u2190 r \u2212 lr \u00b7 \u2202L/\u2202r, "
             "&nbsp; L = \u2212log \u03c3(r<sub>pref</sub> \u2212 r<sub>rej</sub>)")

    def __init__(self, r_pref: float, r_rej: float, lr: float, steps: int) -> None:
        sliders = [
            Slider("r_pref", "r_pref (start)", r_pref, *REWARD_RANGE, 0.1),
            Slider("r_rej", "r_rej (start)", r_rej, *REWARD_RANGE, 0.1),
            Slider("lr", "learning rate", lr, 0.0, 5.0, 0.05),
            Slider("steps", "steps", steps, 1, 50, 1, integer=True),
        ]
        readouts = [
            ("r_pref_after", f"{R_PREF} after"),
            ("r_rej_after", f"{R_REJ} after"),
            ("change_pref", f"change of {R_PREF}"),
            ("change_rej", f"change of {R_REJ}"),
            ("loss_before", "loss before"),
            ("loss_after", "loss after"),
        ]
        self._traj_panel = Panel("rewards at each step", "step", "reward", legend="bottom-left")
        self._line_pref = self._traj_panel.line([0.0], [0.0], PREF, "r_pref")
        self._line_rej = self._traj_panel.line([0.0], [0.0], REJ, "r_rej")
        self._loss_panel = Panel("loss at each step", "step", "loss")
        self._line_loss = self._loss_panel.line([0.0], [0.0], CURVE, "loss")
        super().__init__(sliders, readouts, [self._traj_panel, self._loss_panel],
                         note="Each step raises the preferred reward and lowers the rejected one by "
                              "the same amount, lr\u00b7\u03c3(\u2212\u0394): large while the pair is "
                              "ranked wrong, small once it is ranked right.")
        self._refresh()

    @staticmethod
    def trajectory(r_pref: float, r_rej: float, lr: float, steps: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """Rewards and loss before and after each of ``steps`` plain gradient steps, shape ``(steps+1,)``."""
        rp, rr = [float(r_pref)], [float(r_rej)]
        losses = [_f(rm.ranking_loss(rp[0], rr[0]))]
        for _ in range(steps):
            gp, gr = rm.ranking_loss_grad(rp[-1], rr[-1])
            rp.append(rp[-1] - lr * _f(gp))
            rr.append(rr[-1] - lr * _f(gr))
            losses.append(_f(rm.ranking_loss(rp[-1], rr[-1])))
        return np.array(rp), np.array(rr), np.array(losses)

    def _compute(self, r_pref: float, r_rej: float, lr: float, steps: int) -> None:
        rp, rr, losses = self.trajectory(r_pref, r_rej, lr, steps)
        t = np.arange(steps + 1, dtype=float)
        self._show(r_pref_after=rp[-1], r_rej_after=rr[-1], change_pref=rp[-1] - rp[0],
                   change_rej=rr[-1] - rr[0], loss_before=losses[0], loss_after=losses[-1])
        move(self._line_pref, t, rp)
        move(self._line_rej, t, rr)
        move(self._line_loss, t, losses)


def gradient_step_explorer(r_pref: float = 2.0, r_rej: float = 3.0, lr: float = 1.0,
                           steps: int = 1) -> GradientStepExplorer:
    r"""Plain gradient descent on one pair's ranking loss, step by step.

    Sliders ``r_pref``, ``r_rej`` (start rewards, in [-5, 5]), ``lr`` (learning
    rate, in [0, 5]) and ``steps`` (1 to 50).  Each step is
    :math:`r \leftarrow r - \text{lr}\,\partial L/\partial r` with the gradient of
    :func:`rmteach.numpy.ranking_loss_grad`; the plots show both rewards and the
    loss at every step.  Readouts ``r_pref_after``, ``r_rej_after``,
    ``change_pref``, ``change_rej`` (equal and opposite), ``loss_before`` and
    ``loss_after``.  From 2.0 and 3.0 with ``lr=1`` one step moves each reward
    by :math:`\sigma(1) = 0.731` (Q06, Q17, Q18).
    """
    return GradientStepExplorer(r_pref, r_rej, lr, steps)


# ---------------------------------------------------------------------------
# live training curves


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


# ---------------------------------------------------------------------------
# variants: margin, soft labels and weights, the centring penalty, rankings of N


class MarginExplorer(Explorer):
    title = ("<b>Ranking loss with a margin</b> &nbsp; L<sub>m</sub> = \u2212log \u03c3(r<sub>pref</sub> "
             "\u2212 r<sub>rej</sub> \u2212 m) &nbsp; (Llama 2)")

    def __init__(self, r_pref: float, r_rej: float, margin: float) -> None:
        sliders = [
            Slider("r_pref", "r_pref", r_pref, *REWARD_RANGE, 0.1),
            Slider("r_rej", "r_rej", r_rej, *REWARD_RANGE, 0.1),
            Slider("margin", "margin m", margin, 0.0, 5.0, 0.1),
        ]
        readouts = [
            ("delta", f"gap {DELTA}"),
            ("loss", "loss with margin"),
            ("loss_no_margin", "loss without margin"),
            ("grad_pref", f"\u2202L<sub>m</sub>/\u2202{R_PREF}"),
            ("grad_pref_no_margin", f"\u2202L/\u2202{R_PREF} without margin"),
        ]
        d, zeros = GAP_GRID, np.zeros_like(GAP_GRID)
        self._loss_panel = Panel(f"loss against the gap {DELTA}", f"{DELTA} = r_pref \u2212 r_rej", "loss",
                                 x_range=GAP_RANGE, y_range=(0.0, 15.0))
        self._plain = self._loss_panel.line(d, rm.ranking_loss(d, zeros, reduction="none"), OTHER,
                                            "no margin", dashed=True)
        self._with = self._loss_panel.line(d, zeros, CURVE, "margin m")
        self._dots = self._loss_panel.points([0.0, 0.0], [0.0, 0.0], MARK)
        self._grad_panel = Panel("\u2202L/\u2202r_pref against the gap", f"{DELTA} = r_pref \u2212 r_rej",
                                 "gradient", x_range=GAP_RANGE, y_range=(-1.05, 0.05), legend="bottom-right")
        self._g_plain = self._grad_panel.line(d, rm.ranking_loss_grad(d, zeros, reduction="none")[0],
                                              OTHER, "no margin", dashed=True)
        self._g_with = self._grad_panel.line(d, zeros, PREF, "margin m")
        self._g_dots = self._grad_panel.points([0.0, 0.0], [0.0, 0.0], MARK)
        self._margin_drawn = math.nan
        super().__init__(sliders, readouts, [self._loss_panel, self._grad_panel],
                         note="A margin asks for a gap of at least m: a pair ranked right by less than "
                              "m still has a sizeable loss and gradient.")
        self._refresh()

    def _compute(self, r_pref: float, r_rej: float, margin: float) -> None:
        loss = _f(rm.ranking_loss(r_pref, r_rej, margin))
        plain = _f(rm.ranking_loss(r_pref, r_rej))
        gp = _f(rm.ranking_loss_grad(r_pref, r_rej, margin)[0])
        gp0 = _f(rm.ranking_loss_grad(r_pref, r_rej)[0])
        delta = r_pref - r_rej
        if margin != self._margin_drawn:
            d, zeros = GAP_GRID, np.zeros_like(GAP_GRID)
            set_y(self._with, rm.ranking_loss(d, zeros, margin, reduction="none"))
            set_y(self._g_with, rm.ranking_loss_grad(d, zeros, margin, reduction="none")[0])
            self._margin_drawn = margin
        self._show(delta=delta, loss=loss, loss_no_margin=plain, grad_pref=gp, grad_pref_no_margin=gp0)
        move(self._dots, [delta, delta], [loss, plain])
        move(self._g_dots, [delta, delta], [gp, gp0])


def margin_explorer(r_pref: float = 1.0, r_rej: float = 0.0, margin: float = 1.0) -> MarginExplorer:
    r"""The ranking loss with and without a margin :math:`m`, against the gap.

    Sliders ``r_pref``, ``r_rej`` (in [-5, 5]) and ``margin`` (in [0, 5]).  Plots
    :math:`-\log\sigma(\Delta - m)` and :math:`-\log\sigma(\Delta)`, and their
    :math:`\partial/\partial r_{\text{pref}}`.  Readouts ``delta``, ``loss``
    (with the margin), ``loss_no_margin``, ``grad_pref`` (with the margin) and
    ``grad_pref_no_margin``, from :func:`rmteach.numpy.ranking_loss` and
    :func:`~rmteach.numpy.ranking_loss_grad`.
    """
    return MarginExplorer(r_pref, r_rej, margin)


class SoftLabelExplorer(Explorer):
    title = ("<b>Soft labels and per-pair weights</b> &nbsp; w\u00b7\u2113, &nbsp; \u2113 = \u2212p log "
             "\u03c3(\u0394) \u2212 (1\u2212p) log \u03c3(\u2212\u0394)")

    def __init__(self, r_a: float, r_b: float, p: float, weight: float) -> None:
        sliders = [
            Slider("r_a", "r_a", r_a, *REWARD_RANGE, 0.1),
            Slider("r_b", "r_b", r_b, *REWARD_RANGE, 0.1),
            Slider("p", "label p", p, 0.0, 1.0, 0.01),
            Slider("weight", "weight w", weight, 0.0, 3.0, 0.05),
        ]
        readouts = [
            ("delta", f"gap {DELTA} = r<sub>a</sub> \u2212 r<sub>b</sub>"),
            ("p_model", "model's \u03c3(\u0394)"),
            ("loss", "weighted loss w\u00b7\u2113"),
            ("grad_a", "\u2202(w\u2113)/\u2202r<sub>a</sub>"),
            ("grad_b", "\u2202(w\u2113)/\u2202r<sub>b</sub>"),
        ]
        d = GAP_GRID
        self._loss_panel = Panel(f"weighted loss against the gap {DELTA}", f"{DELTA} = r_a \u2212 r_b",
                                 "loss", x_range=GAP_RANGE, y_range=(0.0, 12.0), legend="top")
        self._hard = self._loss_panel.line(d, np.zeros_like(d), OTHER, "hard label (p = 1)", dashed=True)
        self._soft = self._loss_panel.line(d, np.zeros_like(d), CURVE, "label p")
        self._dot = self._loss_panel.points([0.0], [0.0], MARK)
        self._grad_panel = Panel("\u2202(w\u2113)/\u2202r_a against the gap", f"{DELTA} = r_a \u2212 r_b",
                                 "gradient", x_range=GAP_RANGE, y_range=(-2.05, 2.05), legend="top-left")
        self._g_soft = self._grad_panel.line(d, np.zeros_like(d), PREF, "label p")
        self._g_dot = self._grad_panel.points([0.0], [0.0], MARK)
        self._drawn = (math.nan, math.nan)
        super().__init__(sliders, readouts, [self._loss_panel, self._grad_panel],
                         note="With a soft label the push stops where the model's probability equals "
                              "p (the gradient crosses zero there); a weight w scales the pair's loss "
                              "and gradient, so in a batch it counts w times as much.")
        self._refresh()

    def _compute(self, r_a: float, r_b: float, p: float, weight: float) -> None:
        loss = weight * _f(rm.soft_ranking_loss(r_a, r_b, p))
        ga, gb = (weight * _f(g) for g in rm.soft_ranking_loss_grad(r_a, r_b, p))
        p_model = _f(rm.preference_probability(r_a, r_b))
        delta = r_a - r_b
        if (p, weight) != self._drawn:
            d, zeros = GAP_GRID, np.zeros_like(GAP_GRID)
            set_y(self._hard, weight * rm.ranking_loss(d, zeros, reduction="none"))
            set_y(self._soft, weight * rm.soft_ranking_loss(d, zeros, p, reduction="none"))
            set_y(self._g_soft, weight * rm.soft_ranking_loss_grad(d, zeros, p, reduction="none")[0])
            self._drawn = (p, weight)
        self._show(delta=delta, p_model=p_model, loss=loss, grad_a=ga, grad_b=gb)
        move(self._dot, [delta], [loss])
        move(self._g_dot, [delta], [ga])


def soft_label_explorer(r_a: float = 1.0, r_b: float = 0.0, p: float = 0.8,
                        weight: float = 1.0) -> SoftLabelExplorer:
    r"""The soft-label ranking loss of one pair, and what a per-pair weight does.

    Sliders ``r_a``, ``r_b`` (in [-5, 5]), ``p`` (the label: the fraction of
    labelers preferring :math:`y_a`, in [0, 1]) and ``weight`` :math:`w` (in
    [0, 3]).  Shown is the pair's weighted contribution :math:`w\,\ell` to a
    summed loss, with :math:`\ell` from :func:`rmteach.numpy.soft_ranking_loss`
    (``p = 1`` is the ordinary ranking loss, drawn dashed) and its gradient from
    :func:`~rmteach.numpy.soft_ranking_loss_grad`, which is zero where
    :math:`\sigma(\Delta) = p`.  Readouts ``delta``, ``p_model``
    (:math:`\sigma(\Delta)`), ``loss``, ``grad_a`` and ``grad_b`` (Q07, Q08).
    """
    return SoftLabelExplorer(r_a, r_b, p, weight)


SHIFT_GRID = np.linspace(-10.0, 10.0, 161)


class RegularizerExplorer(Explorer):
    title = ("<b>Pinning the free shift</b> &nbsp; L<sub>reg</sub> = L + \u03bb (r<sub>pref</sub> + "
             "r<sub>rej</sub>)\u00b2 &nbsp; <span style='color:#D55E00'>(the book prints \u2212\u03bb: "
             "an erratum)</span>")

    def __init__(self, r_pref: float, r_rej: float, coef: float, shift: float) -> None:
        sliders = [
            Slider("r_pref", "r_pref", r_pref, *REWARD_RANGE, 0.1),
            Slider("r_rej", "r_rej", r_rej, *REWARD_RANGE, 0.1),
            Slider("coef", "\u03bb (coef)", coef, 0.0, 0.2, 0.005, fmt=".3f"),
            Slider("shift", "shift c (both)", shift, -10.0, 10.0, 0.1),
        ]
        readouts = [
            ("ranking_loss", "ranking loss L"),
            ("regularized_loss", "L + \u03bb(r<sub>pref</sub>+r<sub>rej</sub>)\u00b2"),
            ("erratum_loss", "<span style='color:#D55E00'>book: L \u2212 \u03bb(\u2026)\u00b2</span>"),
        ]
        c = SHIFT_GRID
        self._panel = Panel("loss as both rewards are shifted by c", "shift c", "loss",
                            width="620px", height="320px", legend="top")
        self._l_rank = self._panel.line(c, np.zeros_like(c), OTHER, "ranking loss", dashed=True)
        self._l_reg = self._panel.line(c, np.zeros_like(c), PREF, "+ \u03bb penalty (right)")
        self._l_err = self._panel.line(c, np.zeros_like(c), REJ, "\u2212 \u03bb penalty (book)")
        self._dots = self._panel.points([0.0, 0.0, 0.0], [0.0, 0.0, 0.0], MARK)
        self._drawn: tuple = ()
        super().__init__(sliders, readouts, [self._panel],
                         note="The ranking loss is flat in c: it cannot tell where the rewards sit. "
                              "Adding the penalty gives a minimum near centred rewards; subtracting "
                              "it, as printed in the book, makes the loss fall without bound.")
        self._refresh()

    @staticmethod
    def _losses(r_pref: float, r_rej: float, coef: float) -> tuple[float, float, float]:
        ranking = _f(rm.ranking_loss(r_pref, r_rej))
        regularized = _f(rm.regularized_ranking_loss(r_pref, r_rej, coef))
        # The book's minus sign lives only in rmteach.naive, as a labelled bad example.
        erratum = _f(erratum_regularized_ranking_loss(r_pref, r_rej, coef))
        return ranking, regularized, erratum

    def _compute(self, r_pref: float, r_rej: float, coef: float, shift: float) -> None:
        if (r_pref, r_rej, coef) != self._drawn:
            curves = np.array([self._losses(r_pref + c, r_rej + c, coef) for c in SHIFT_GRID])
            set_y(self._l_rank, curves[:, 0])
            set_y(self._l_reg, curves[:, 1])
            set_y(self._l_err, curves[:, 2])
            self._drawn = (r_pref, r_rej, coef)
        ranking, regularized, erratum = self._losses(r_pref + shift, r_rej + shift, coef)
        self._show(ranking_loss=ranking, regularized_loss=regularized, erratum_loss=erratum)
        move(self._dots, [shift] * 3, [ranking, regularized, erratum])


def regularizer_explorer(r_pref: float = 2.0, r_rej: float = 1.0, coef: float = 0.01,
                         shift: float = 0.0) -> RegularizerExplorer:
    r"""The centring penalty against a common shift of both rewards, and the book's sign erratum.

    Sliders ``r_pref``, ``r_rej`` (in [-5, 5]), ``coef`` :math:`\lambda` (in
    [0, 0.2]) and ``shift`` :math:`c` (in [-10, 10], added to both rewards).
    The plot shows, against :math:`c`, the ranking loss (flat), the regularized
    loss :func:`rmteach.numpy.regularized_ranking_loss` (a parabola with its
    minimum where the rewards are centred) and the book's printed version
    :math:`L - \lambda (r_{\text{pref}} + r_{\text{rej}})^2` (falls without bound).
    Readouts ``ranking_loss``, ``regularized_loss`` and ``erratum_loss`` at the
    current shift (Q09).
    """
    return RegularizerExplorer(r_pref, r_rej, coef, shift)


class ListwiseExplorer(Explorer):
    title = ("<b>Rankings of N responses</b> &nbsp; list-wise loss = mean of the C(N,2) pair-wise "
             "losses; Plackett\u2013Luce = \u2212log P(ranking)")

    def __init__(self, rewards: tuple[float, ...]) -> None:
        n = len(rewards)
        sliders = [Slider(f"r_{k + 1}", f"r_{k + 1}" + (" (best)" if k == 0 else " (worst)" if k == n - 1 else ""),
                          rewards[k], *REWARD_RANGE, 0.1) for k in range(n)]
        self._pairs = [(i, j) for i in range(n) for j in range(i + 1, n)]
        self._pair_names = [f"pair_{i + 1}_{j + 1}" for i, j in self._pairs]
        readouts = [
            ("listwise_loss", "list-wise loss"),
            ("plackett_luce_loss", "Plackett\u2013Luce loss"),
            ("pairs", "pairs C(N,2)"),
        ] + [(name, f"pair {i + 1}\u227b{j + 1}") for name, (i, j) in zip(self._pair_names, self._pairs)]
        ranks = [str(k + 1) for k in range(n)]
        self._reward_panel = Panel("rewards in ranked order (1 = best)", "rank", "reward",
                                   y_range=(-5.5, 5.5), x_ordinal=True)
        self._reward_line = self._reward_panel.line(ranks, np.zeros(n), OTHER)
        self._reward_line.x = ranks
        self._reward_dots = self._reward_panel.points(ranks, np.zeros(n), PREF)
        self._reward_dots.x = ranks
        self._pair_panel = Panel("loss of each pair i \u227b j", "pair", "\u2212log \u03c3(r_i \u2212 r_j)",
                                 y_range=(0.0, 10.5), x_ordinal=True)
        labels = [f"{i + 1}\u227b{j + 1}" for i, j in self._pairs]
        self._pair_bars = self._pair_panel.bars(labels, np.zeros(len(labels)), [REJ])
        super().__init__(sliders, readouts, [self._reward_panel, self._pair_panel],
                         note="Every pair (i ranked above j) is one Bradley\u2013Terry comparison. "
                              "Drag a lower-ranked reward above a higher one and watch that pair's loss grow.")
        self._refresh()

    def _compute(self, **values: float) -> None:
        r = np.array([values[f"r_{k + 1}"] for k in range(len(values))], dtype=float)
        i, j = (np.array(ix) for ix in zip(*self._pairs))
        per_pair = rm.ranking_loss(r[i], r[j], reduction="none")
        numbers = {
            "listwise_loss": _f(rm.listwise_ranking_loss(r)),
            "plackett_luce_loss": _f(rm.plackett_luce_loss(r)),
            "pairs": float(len(self._pairs)),
        }
        numbers.update({name: _f(x) for name, x in zip(self._pair_names, per_pair)})
        self._show(**numbers)
        with self._reward_line.hold_sync(), self._reward_dots.hold_sync():
            self._reward_line.y = r
            self._reward_dots.y = r
        self._pair_bars.y = np.asarray(per_pair, dtype=float)


def listwise_explorer(rewards: tuple[float, ...] = (2.0, 1.0, 0.5, -1.0)) -> ListwiseExplorer:
    r"""One prompt's ranked responses: the list-wise and Plackett–Luce losses, pair by pair.

    ``rewards``: 2 to 6 rewards in ranked order, best first, each in [-5, 5];
    one slider per response, ``r_1`` (best) to ``r_N``.  Readouts
    ``listwise_loss`` (:func:`rmteach.numpy.listwise_ranking_loss`, the mean over
    the :math:`\binom{N}{2}` pairs), ``plackett_luce_loss``
    (:func:`rmteach.numpy.plackett_luce_loss`), ``pairs`` (:math:`\binom{N}{2}`)
    and ``pair_I_J``, the loss of the pair where response I is ranked above J
    (Q10, Q20).
    """
    if isinstance(rewards, (str, bytes)) or not hasattr(rewards, "__len__"):
        raise TypeError(f"rewards must be a sequence of 2 to 6 numbers, got {type(rewards).__name__} {rewards!r}")
    if not 2 <= len(rewards) <= 6:
        raise ValueError(f"rewards must hold 2 to 6 rewards (best first), got {len(rewards)}")
    checked = tuple(check_value(f"rewards[{k}]", x, *REWARD_RANGE) for k, x in enumerate(rewards))
    return ListwiseExplorer(checked)


class TextExplorer:
    """Sliders and a block of text, ``render(**slider_values)``, rewritten in place."""

    def __init__(self, render: Callable[..., str], sliders: list[Slider]) -> None:
        if not callable(render):
            raise TypeError(f"render must be a function of the slider values, got {type(render).__name__}")
        self._render = render
        self._sliders = {s.name: s for s in sliders}
        self._text = W.HTML()
        self._text.add_class("rmteach-text")
        controls = W.Box([s.widget for s in sliders], layout=W.Layout(display="flex", flex_flow="row wrap"))
        self.widget = W.VBox([controls, self._text])
        self.widget.add_class("rmteach-explorer")
        self.text = ""
        self._refresh(initial=True)
        for s in sliders:
            s.widget.observe(lambda change: self._refresh(), names="value")

    @property
    def values(self) -> dict[str, float]:
        """The sliders' current values."""
        return {name: s.value for name, s in self._sliders.items()}

    def set(self, **values: float) -> "TextExplorer":
        """Move sliders, as dragging them would; the text is rendered once for all of them."""
        unknown = [k for k in values if k not in self._sliders]
        if unknown:
            raise ValueError(f"unknown slider {unknown[0]!r}; the sliders are {', '.join(self._sliders)}")
        checked = {k: self._sliders[k].check(v) for k, v in values.items()}
        self._holding = True
        try:
            for k, v in checked.items():
                self._sliders[k].widget.value = v
        finally:
            self._holding = False
        self._refresh()
        return self

    _holding = False

    def _refresh(self, initial: bool = False) -> None:
        if self._holding:
            return
        try:
            text = str(self._render(**self.values))
        except Exception as exc:  # shown where the text goes; the first render raises
            if initial:
                raise
            text = f"error: {type(exc).__name__}: {exc}"
        self.text = text
        self._text.value = f"<pre style='margin:4px 0'>{html.escape(text)}</pre>"

    def _repr_mimebundle_(self, **kwargs):
        return self.widget._repr_mimebundle_(**kwargs)

    def __repr__(self) -> str:
        return self.text


def text_explorer(render: Callable[..., str], **sliders: tuple[float, float, float, float]) -> TextExplorer:
    """Sliders whose values go to ``render``, and the text it returns, updated in place.

    ``text_explorer(show, beta=(0.1, 0.0, 2.0, 0.05))`` makes a slider ``beta``
    starting at 0.1 on [0, 2] in steps of 0.05 and shows ``show(beta=...)``
    below it; ``.text`` is what is shown, ``.set(beta=0.5)`` moves the slider.
    """
    if not sliders:
        raise ValueError("text_explorer needs at least one slider, given as name=(value, lo, hi, step)")
    built = []
    for name, spec in sliders.items():
        if not (isinstance(spec, tuple) and len(spec) == 4):
            raise ValueError(f"slider {name} must be (value, lo, hi, step), got {spec!r}")
        value, lo, hi, step = (float(v) for v in spec)
        if not (lo < hi and step > 0):
            raise ValueError(f"slider {name} needs lo < hi and step > 0, got {spec!r}")
        built.append(Slider(name, name.replace("_", " "), value, lo, hi, step))
    return TextExplorer(render, built)
