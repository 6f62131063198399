"""A slider whose effect is best told in a few lines of text, rewritten in place."""

from __future__ import annotations

import html
from typing import Callable

import ipywidgets as W

from rmteach.widgets.panels import Slider


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
