"""Styled HoloViews elements registered once and cloned: cheap per-frame plot building.

``.opts`` registers a new options tree on every call (~4 ms each, and they pile up in a
long-running server). The site plots are rebuilt for every selection, so each distinct style is
registered once per view and later elements are clones of that first one.
"""

from __future__ import annotations

import weakref
from collections.abc import Callable
from typing import Any

import holoviews as hv


def weak_hook(method: Callable[[Any, Any], None]) -> Callable[[Any, Any], None]:
    """A HoloViews plot hook that calls ``method`` without keeping its object alive.

    HoloViews keeps plot options in a process-wide store, and frees an options tree only once
    every element using it is gone. A hook that is a view's bound method closed that loop: the
    store kept the view, the view kept its styled templates, and the templates kept the options
    tree, so every session's views stayed in memory after the session ended (~1 MiB each).

    Parameters
    ----------
    method : bound method
        Called as ``method(plot, element)`` while its object exists.

    Returns
    -------
    callable
        The hook to pass in ``hooks=[...]``; create it once per view, so the options of every
        frame are the same.
    """
    ref = weakref.WeakMethod(method)

    def hook(plot: Any, element: Any) -> None:
        bound = ref()
        if bound is not None:
            bound(plot, element)

    hook.__name__ = hook.__qualname__ = f"weak_{method.__name__}"
    return hook


class StyledElements:
    """A view's registry of styled element and overlay templates."""

    def __init__(self) -> None:
        self._styled: dict[str, hv.Element] = {}

    def element(self, kind: type[hv.Element], data, kdims, vdims, label: str = "",
                **options) -> hv.Element:
        """A HoloViews element of ``kind`` holding ``data``, styled with ``options``.

        The first element of a style is registered; later ones are clones of it.
        """
        # Dimensions are part of the key: a clone that keeps its template's dimensions skips
        # building new Dimension objects (param-heavy, ~2 ms each).
        dims = [d if isinstance(d, hv.Dimension) else hv.Dimension(d)
                for d in (kdims if isinstance(kdims, list) else [kdims])
                + (vdims if isinstance(vdims, list) else [vdims])]
        key = repr((kind.__name__, [(d.name, d.label) for d in dims], sorted(options.items())))
        # Columns given as a tuple of arrays: the dictionary interface skips a DataFrame.
        fast = {"datatype": ["dictionary"]} if isinstance(data, tuple) else {}
        template = self._styled.get(key)
        if template is None:
            template = kind(data, kdims, vdims, label=label, **fast).opts(**options)
            self._styled[key] = template
            return template
        return template.clone(data, label=label, **fast)

    def overlay(self, layers: list[hv.Element], title: str, **options) -> hv.Overlay:
        """An overlay of ``layers`` titled ``title``, with plot ``options``.

        Like :meth:`element`: the options are registered once per distinct set and later
        overlays are clones carrying the title as their label (the default title format shows
        an overlay's label). Per-frame ``.opts`` grew HoloViews' option store on every update
        and cost ~50 ms a plot.
        """
        key = repr(("Overlay", sorted(options.items())))
        template = self._styled.get(key)
        if template is None:
            template = self._styled[key] = hv.Overlay([]).opts(hv.opts.Overlay(**options))
        return template.clone(layers, label=title)
