r"""What every slider explorer shares: the :class:`Explorer` base class and the axis ranges.

A subclass lists its sliders, readouts and plot panels and says what to compute
in ``_compute``; the base class wires the sliders, batches several moves made
with ``.set()`` into one update, and shows itself in a notebook cell.
"""

from __future__ import annotations

from contextlib import contextmanager

import ipywidgets as W
import numpy as np

from rmteach.widgets.panels import Panel, Readouts, Slider, plots_row

REWARD_RANGE = (-5.0, 5.0)  # every reward slider; a reward gap lies in [-10, 10]
GAP_RANGE = (-10.0, 10.0)
GAP_GRID = np.linspace(GAP_RANGE[0], GAP_RANGE[1], 401)  # step 0.05: curves against the gap

R_PREF = "r<sub>pref</sub>"
R_REJ = "r<sub>rej</sub>"
DELTA = "\u0394"


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
