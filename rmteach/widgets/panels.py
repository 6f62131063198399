"""The building blocks of every explorer: sliders, readouts and live plot panels.

The plots are bqplot figures: the browser draws them (SVG), so when a slider
moves only the few numbers that changed travel to the page (a marker's
position, a curve's ``y``) and the page redraws that one element.  A
matplotlib figure, by contrast, is re-rendered to pixels in the kernel on
every step (see ``bench/latency.py`` for the measured difference).

Nothing here computes a formula; the explorers feed it numbers from
:mod:`rmteach.numpy`.
"""

from __future__ import annotations

import math
from numbers import Integral, Real
from typing import Iterable, Optional, Sequence

import bqplot as bq
import ipywidgets as W
import numpy as np

from rmteach._checks import describe

# Colour-blind-safe (Okabe-Ito) colours, one meaning each across all explorers.
PREF = "#0072B2"  # preferred response / y_a: blue
REJ = "#D55E00"  # rejected response / y_b: vermilion
CURVE = "#333333"  # the main curve
OTHER = "#999999"  # a comparison curve
MARK = "#CC79A7"  # the current point
GOOD = "#009E73"  # validation / accuracy

MINUS = "\u2212"


def format_number(x: float) -> str:
    """A readout's text: 6 significant digits, a real minus sign (U+2212), ``∞``, ``nan``."""
    if math.isnan(x):
        return "nan"
    if math.isinf(x):
        return ("" if x > 0 else MINUS) + "\u221e"
    text = f"{x:.6g}"
    if text in ("-0", "0"):
        text = "0"
    return text.replace("-", MINUS)


def check_value(name: str, value, lo: float, hi: float, integer: bool = False) -> float | int:
    """``value`` as a number within the slider range ``[lo, hi]``, or an error naming ``name``."""
    kind = "an integer" if integer else "a real number"
    if isinstance(value, bool) or not isinstance(value, Integral if integer else Real):
        raise TypeError(f"{name} must be {kind} in [{lo:g}, {hi:g}], got {describe(value)}")
    v = int(value) if integer else float(value)
    if not (lo <= v <= hi):  # also catches NaN
        raise ValueError(f"{name} must be {kind} in [{lo:g}, {hi:g}] (the slider's range), got {value!r}")
    return v


class Slider:
    """An ipywidgets slider with a stable CSS class ``rmteach-slider-NAME``."""

    def __init__(self, name: str, label: str, value, lo: float, hi: float, step: float,
                 integer: bool = False, fmt: str = ".2f") -> None:
        self.name, self.lo, self.hi, self.integer = name, lo, hi, integer
        v = check_value(name, value, lo, hi, integer)
        common = dict(
            value=v, min=lo, max=hi, step=step, description=label, description_allow_html=False,
            continuous_update=True, style={"description_width": "110px"},
            layout=W.Layout(width="380px"),
        )
        self.widget = W.IntSlider(**common) if integer else W.FloatSlider(readout_format=fmt, **common)
        self.widget.add_class("rmteach-slider")
        self.widget.add_class(f"rmteach-slider-{name}")

    def check(self, value):
        return check_value(self.name, value, self.lo, self.hi, self.integer)

    @property
    def value(self):
        return self.widget.value


class Readouts:
    """A row of labelled numbers in one HTML widget (one message per update).

    Each number sits in an element with CSS classes ``rmteach-readout`` and
    ``rmteach-readout-NAME`` whose text is the number alone.
    """

    def __init__(self, items: Sequence[tuple[str, str]]) -> None:
        self.values: dict[str, float] = {name: math.nan for name, _ in items}
        self._labels = dict(items)
        self.widget = W.HTML(value=self._html(), layout=W.Layout(margin="4px 0 6px 0"))
        self.widget.add_class("rmteach-readouts")

    def _html(self) -> str:
        cards = "".join(
            f"<div style='min-width:92px'><div style='color:#555'>{label}</div>"
            f"<b class='rmteach-readout rmteach-readout-{name}' style='font-size:1.15em;"
            f"font-variant-numeric:tabular-nums'>{format_number(self.values[name])}</b></div>"
            for name, label in self._labels.items()
        )
        return f"<div style='display:flex;flex-wrap:wrap;gap:4px 22px;padding-left:4px'>{cards}</div>"

    def show(self, **numbers: float) -> None:
        for name, x in numbers.items():
            if name not in self.values:
                raise KeyError(f"no readout named {name!r}")
            self.values[name] = float(x)
        self.widget.value = self._html()


class Panel:
    """One live plot (a bqplot figure) with fixed or automatic axis ranges."""

    def __init__(self, title: str, xlabel: str, ylabel: str,
                 x_range: Optional[tuple[float, float]] = None,
                 y_range: Optional[tuple[float, float]] = None,
                 x_ordinal: bool = False, legend: str = "top-right",
                 width: str = "440px", height: str = "300px") -> None:
        if x_ordinal:
            self.xs = bq.OrdinalScale()
        else:
            self.xs = bq.LinearScale(**_range_kw(x_range))
        self.ys = bq.LinearScale(**_range_kw(y_range))
        axes = [
            bq.Axis(scale=self.xs, label=xlabel, grid_lines="none" if x_ordinal else "solid",
                    grid_color="#eeeeee"),
            bq.Axis(scale=self.ys, label=ylabel, side="left", grid_lines="solid",
                    grid_color="#eeeeee", label_offset="42px"),
        ]
        self.figure = bq.Figure(
            marks=[], axes=axes, title=title, animation_duration=0,
            fig_margin={"top": 36, "bottom": 46, "left": 62, "right": 14},
            min_aspect_ratio=0.01, max_aspect_ratio=100.0, padding_y=0.02,
            legend_location=legend,
            legend_style={"fill": "white", "stroke": "#cccccc", "fill-opacity": 0.9},
            layout=W.Layout(width=width, height=height, overflow="hidden"),
        )

    def _add(self, mark):
        self.figure.marks = [*self.figure.marks, mark]
        return mark

    def line(self, x, y, color: str = CURVE, label: Optional[str] = None,
             dashed: bool = False, width: float = 2.0) -> bq.Lines:
        return self._add(bq.Lines(
            x=np.asarray(x, dtype=float), y=np.asarray(y, dtype=float),
            scales={"x": self.xs, "y": self.ys}, colors=[color], stroke_width=width,
            line_style="dashed" if dashed else "solid",
            labels=[label] if label else [], display_legend=bool(label),
        ))

    def points(self, x, y, color: str = MARK, size: int = 70, label: Optional[str] = None) -> bq.Scatter:
        return self._add(bq.Scatter(
            x=np.asarray(x, dtype=float), y=np.asarray(y, dtype=float),
            scales={"x": self.xs, "y": self.ys}, colors=[color], default_size=size,
            stroke="white", stroke_width=1.5,
            labels=[label] if label else [], display_legend=bool(label),
        ))

    def bars(self, x, y, colors: Sequence[str]) -> bq.Bars:
        return self._add(bq.Bars(
            x=list(x), y=np.asarray(y, dtype=float), scales={"x": self.xs, "y": self.ys},
            colors=list(colors), padding=0.35,
        ))


def _range_kw(r: Optional[tuple[float, float]]) -> dict:
    return {} if r is None else {"min": float(r[0]), "max": float(r[1])}


def move(mark, x: Iterable[float], y: Iterable[float]) -> None:
    """Give a mark new coordinates in one message (the figure is not rebuilt)."""
    with mark.hold_sync():
        mark.x = np.asarray(list(x) if not isinstance(x, np.ndarray) else x, dtype=float)
        mark.y = np.asarray(list(y) if not isinstance(y, np.ndarray) else y, dtype=float)


def set_y(mark, y) -> None:
    """New ``y`` for a mark whose ``x`` stays (a curve that changed shape)."""
    mark.y = np.asarray(y, dtype=float)


def plots_row(panels: Sequence[Panel]) -> W.HBox:
    box = W.HBox([p.figure for p in panels], layout=W.Layout(flex_flow="row wrap"))
    box.add_class("rmteach-plot")
    return box
