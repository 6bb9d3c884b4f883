"""The site map: sites on an offline land outline, coloured by a metric; a click selects one.

Drawn with Bokeh models directly (as the site plots, :mod:`dashboard.views.site_figures`): the
land outline, the site markers and the ring around the selected site are three glyphs whose
data are replaced in place when the metric or the site changes.
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import cache

import numpy as np
import pandas as pd
import panel as pn
import param
from bokeh.models import (
    ColorBar,
    ColumnDataSource,
    HoverTool,
    LinearColorMapper,
    Range1d,
    TapTool,
)
from bokeh.plotting import figure

from dashboard import queries
from dashboard.service import DataService
from dashboard.state import METRICS, SITE_VARIABLES, Selection
from dashboard.views.style import DIVERGING, SEQUENTIAL, Look

#: Metrics that need no observations (statistics across models).
SPREAD_ONLY_METRICS = ("spread_reduction",)
#: Metrics whose map colours diverge around 0 (reductions).
REDUCTION_METRICS = ("spread_reduction", "misfit_reduction", "misfit_reduction_chi2")
#: Marker of each site role.
ROLE_MARKERS = {"Cal": "circle", "Val": "triangle"}
#: Colour of a site without a value.
NO_VALUE_COLOUR = "#bbbbbb"
#: Colour of the ring around the selected site.
RING_COLOUR = "#ff00aa"


@cache
def palette(name: str) -> tuple[str, ...]:
    """The 256 colours of the colormap ``name`` (as HoloViews draws it), computed once."""
    from holoviews.plotting.util import process_cmap

    return tuple(process_cmap(name, ncolors=256))


@dataclass(frozen=True)
class MapPoints:
    """What the map shows: one row per site, its colour value and the colour scale.

    Attributes
    ----------
    frame : pandas.DataFrame
        :func:`queries.site_map_frame` (``site, name, lon, lat, role, igbp, value, n_models,
        label``).
    metric : str
        The metric drawn (the spread reduction when the chosen one needs observations the
        variable does not have).
    label : str
        Title of the colour bar.
    cmap : str
        Colormap name (diverging around 0 for reductions).
    clim : tuple of float
        Colour limits (symmetric for reductions).
    """

    frame: pd.DataFrame
    metric: str
    label: str
    cmap: str
    clim: tuple[float, float]


class SiteMap(pn.viewable.Viewer):
    """Site markers (○ calibration, △ validation) coloured by the selected metric.

    Clicking a site sets ``selection.site``. :meth:`show` draws a metric, :meth:`mark` rings
    the selected site.
    """

    selection = param.ClassSelector(class_=Selection)
    service = param.ClassSelector(class_=DataService)
    look = param.ClassSelector(class_=Look, default=Look())

    def __init__(self, **params):
        super().__init__(**params)
        self._sites: list[str] = []
        self._figure = None

    def site_metric_frame(self, metric: str, variable: str, scenario: int, stage: str,
                          models: list[str]) -> pd.DataFrame:
        """One row per site with the map value and its n (:func:`queries.site_map_frame`)."""
        return queries.site_map_frame(self.service, metric, variable, scenario, stage, models)

    def site_points(self, metric: str, variable: str, scenario: int, stage: str,
                    models: list[str]) -> MapPoints:
        """Site values coloured by ``metric``, with the colour scale.

        A variable without observations has no per-model scores: the map then shows the
        spread reduction across models, and its colour bar says so.
        """
        label = METRICS[metric].split(" (")[0]
        if variable not in SITE_VARIABLES and metric not in SPREAD_ONLY_METRICS:
            metric = "spread_reduction"
            # Short enough for the colour bar's height.
            label = f"Spread reduction ({variable} not observed)"
        frame = self.site_metric_frame(metric, variable, scenario, stage, models)
        values = frame["value"].to_numpy(dtype=float)
        finite = values[np.isfinite(values)]
        if metric in REDUCTION_METRICS:
            cmap = DIVERGING
            limit = float(np.nanmax(np.abs(finite))) if finite.size else 1.0
            limit = min(max(limit, 0.05), 1.0)
            clim = (-limit, limit)
        else:
            cmap = SEQUENTIAL
            clim = (float(finite.min()), float(finite.max())) if finite.size else (0.0, 1.0)
            if clim[0] == clim[1]:
                clim = (clim[0] - 0.5, clim[1] + 0.5)
        return MapPoints(frame=frame, metric=metric, label=label, cmap=cmap, clim=clim)

    # -- the Bokeh figure ------------------------------------------------------------------
    def _build(self) -> None:
        look = self.look
        scale = look.fontscale
        title = "Sites" if look.presentation else "Sites (○ calibration, △ validation)"
        # As wide as it is given (the card beside it is fixed), at a fixed height: scaling the
        # height with the width squeezed the map in presentation mode (its wider card) under
        # large axis texts, and left a gap below it.
        fig = figure(title=title, x_range=Range1d(-180, 180), y_range=Range1d(-60, 80),
                     height=round(400 * (1.2 if look.presentation else 1.0)),
                     sizing_mode="stretch_width",
                     tools="pan,wheel_zoom,box_zoom,reset,save", toolbar_location="right",
                     background_fill_color=look.bg, border_fill_color=look.bg,
                     x_axis_label="longitude", y_axis_label="latitude")
        fig.toolbar.logo = None
        fig.title.text_font_size = f"{round(12 * scale)}pt"
        fig.title.text_color = look.fg
        for axis in (fig.xaxis[0], fig.yaxis[0]):
            axis.axis_label_text_font_size = f"{round(11 * scale)}pt"
            axis.major_label_text_font_size = f"{round(9.5 * scale)}pt"
            axis.axis_label_text_color = axis.major_label_text_color = look.fg
        for grid in (fig.xgrid[0], fig.ygrid[0]):
            grid.grid_line_color = None
        fig.xaxis[0].ticker.desired_num_ticks = 5 if look.presentation else 8
        try:
            from loaders.geography import land_outline_paths

            lon, lat = land_outline_paths()
        except Exception:  # no outline: the map still works on plain axes
            lon, lat = np.empty(0), np.empty(0)
        fig.line(lon, lat, line_color=look.land_colour, line_width=0.7)
        self.mapper = LinearColorMapper(palette=list(palette(DIVERGING)), low=-1, high=1,
                                        nan_color=NO_VALUE_COLOUR)
        self.source = ColumnDataSource(data={name: [] for name in (
            "lon", "lat", "value", "site", "name", "role", "igbp", "n_models", "label",
            "marker")})
        colour = {"field": "value", "transform": self.mapper}
        points = fig.scatter("lon", "lat", source=self.source, marker="marker",
                             fill_color=colour, line_color=look.fg, line_width=0.8,
                             size=11 * scale, nonselection_fill_alpha=1.0,
                             nonselection_line_alpha=1.0, selection_fill_alpha=1.0)
        self.ring = ColumnDataSource(data={"lon": [], "lat": []})
        fig.scatter("lon", "lat", source=self.ring, marker="circle", size=24 * scale,
                    fill_alpha=0, line_color=RING_COLOUR, line_width=3)
        fig.add_tools(HoverTool(renderers=[points], tooltips=[
            ("site", "@site (@name)"), ("type", "@igbp, @role"), ("map colour", "@label"),
            ("models", "@n_models")]), TapTool(renderers=[points]))
        self.colour_bar = ColorBar(color_mapper=self.mapper, title="", width=14,
                                   title_text_font_size=f"{round(10 * scale)}pt",
                                   background_fill_color=look.bg,
                                   major_label_text_color=look.fg, title_text_color=look.fg)
        fig.add_layout(self.colour_bar, "right")
        self.source.selected.on_change("indices", self._on_tap)
        self._figure = fig

    @property
    def figure(self):
        """The Bokeh figure (built on first use)."""
        if self._figure is None:
            self._build()
        return self._figure

    def show(self, metric: str, variable: str, scenario: int, stage: str,
             models: list[str]) -> MapPoints:
        """Colour the sites by ``metric`` (call inside the view's held document change)."""
        drawn = self.site_points(metric, variable, scenario, stage, models)
        frame = drawn.frame
        self._sites = [str(s) for s in frame["site"]]
        _ = self.figure
        self.source.data = {
            "lon": frame["lon"].to_numpy(float), "lat": frame["lat"].to_numpy(float),
            "value": frame["value"].to_numpy(float),
            "site": frame["site"].astype(str).tolist(), "name": frame["name"].astype(str).tolist(),
            "role": frame["role"].astype(str).tolist(), "igbp": frame["igbp"].astype(str).tolist(),
            "n_models": frame["n_models"].to_numpy(int),
            "label": frame["label"].astype(str).tolist(),
            "marker": [ROLE_MARKERS.get(str(r), "square") for r in frame["role"]]}
        colours = list(palette(drawn.cmap))
        if list(self.mapper.palette) != colours:
            self.mapper.palette = colours
        self.mapper.update(low=drawn.clim[0], high=drawn.clim[1])
        self.colour_bar.title = drawn.label
        return drawn

    def mark(self, site: str) -> None:
        """Ring ``site`` on the map."""
        sites = self.service.sites
        row = sites[sites["site_id"] == site]
        _ = self.figure
        self.ring.data = {"lon": row["lon"].to_numpy(float), "lat": row["lat"].to_numpy(float)}

    def _on_tap(self, attr: str, old: list[int], new: list[int]) -> None:
        """A click on a marker selects its site (and clears the click's own selection)."""
        if not new:
            return
        index = new[0]
        self.source.selected.indices = []
        if 0 <= index < len(self._sites):
            self.selection.site = self._sites[index]

    def __panel__(self) -> pn.viewable.Viewable:
        s = self.selection
        self.show(s.metric, s.variable, s.scenario, s.stage, list(s.models))
        self.mark(s.site)
        return pn.pane.Bokeh(self.figure, name="site-map", sizing_mode="stretch_width")
