"""The site map: sites on an offline land outline, coloured by a metric; a click selects one."""

from __future__ import annotations

import holoviews as hv
import numpy as np
import pandas as pd
import panel as pn
import param

from dashboard import queries
from dashboard.service import DataService
from dashboard.state import METRICS, SITE_VARIABLES, Selection
from dashboard.views.style import DIVERGING, SEQUENTIAL, Look, for_holoviews
from dashboard.views.templates import StyledElements

#: Metrics that need no observations (statistics across models).
SPREAD_ONLY_METRICS = ("spread_reduction",)
#: Metrics whose map colours diverge around 0 (reductions).
REDUCTION_METRICS = ("spread_reduction", "misfit_reduction", "misfit_reduction_chi2")


class SiteMap(pn.viewable.Viewer):
    """Site markers (○ calibration, △ validation) coloured by the selected metric.

    Clicking a site sets ``selection.site``. The markers follow ``map_stream`` (metric,
    variable, scenario, stage, models) and the ring around the selected site ``site_stream``.
    """

    selection = param.ClassSelector(class_=Selection)
    service = param.ClassSelector(class_=DataService)
    look = param.ClassSelector(class_=Look, default=Look())
    map_stream = param.ClassSelector(class_=hv.streams.Stream)
    site_stream = param.ClassSelector(class_=hv.streams.Stream)

    def __init__(self, **params):
        super().__init__(**params)
        self.styled = StyledElements()
        self._points_dmap = hv.DynamicMap(self.site_points, streams=[self.map_stream])
        self._tap = hv.streams.Selection1D(source=self._points_dmap)
        self._tap.param.watch(self._on_tap, "index")

    def site_metric_frame(self, metric: str, variable: str, scenario: int, stage: str,
                          models: list[str]) -> pd.DataFrame:
        """One row per site with the map value and its n (:func:`queries.site_map_frame`)."""
        return queries.site_map_frame(self.service, metric, variable, scenario, stage, models)

    def site_points(self, metric: str, variable: str, scenario: int, stage: str,
                    models: list[str]) -> hv.Points:
        """Site markers coloured by ``metric`` (circles: calibration, triangles: validation).

        A variable without observations has no per-model scores: the map then shows the
        spread reduction across models, and its colour bar says so.
        """
        label = METRICS[metric].split(" (")[0]
        if variable not in SITE_VARIABLES and metric not in SPREAD_ONLY_METRICS:
            metric = "spread_reduction"
            label = f"Spread reduction ({variable} has no observations to score)"
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
        value = hv.Dimension("value", label=label)
        points = hv.Points(for_holoviews(frame), kdims=["lon", "lat"],
                           vdims=[value, "site", "name", "role", "igbp", "n_models", "label"])
        hover = [("site", "@site (@name)"), ("type", "@igbp, @role"),
                 ("map colour", "@label"), ("models", "@n_models")]
        return points.opts(
            color="value", cmap=cmap, clim=clim, colorbar=True, clipping_colors={"NaN": "#bbbbbb"},
            marker=hv.dim("role").categorize({"Cal": "circle", "Val": "triangle"}, "square"),
            size=11 * self.look.fontscale, line_color=self.look.fg, line_width=0.8,
            tools=["tap", "hover"], hover_tooltips=hover, nonselection_alpha=0.9,
            selection_line_color="#ff00aa", selection_line_width=3,
            clabel=label, hooks=[_colour_bar_title],
        )

    def land(self) -> hv.Path:
        """The offline land outline (Natural Earth, shipped in assets/)."""
        try:
            from loaders.geography import land_outline_paths

            lon, lat = land_outline_paths()
        except Exception:  # no outline: the map still works on plain axes
            return hv.Path([])
        return hv.Path([np.column_stack([lon, lat])]).opts(
            color=self.look.land_colour, line_width=0.7)

    def selected_marker(self, site: str) -> hv.Points:
        """A ring around the selected site."""
        sites = self.service.sites
        row = sites[sites["site_id"] == site]
        data = row[["lon", "lat"]].astype(float).to_numpy() if not row.empty else np.empty((0, 2))
        return self.styled.element(hv.Points, data, ["lon", "lat"], [], marker="circle",
                             size=24 * self.look.fontscale, fill_alpha=0,
                             line_color="#ff00aa", line_width=3)

    def site_map(self) -> hv.Overlay:
        """Land outline, site markers (tap to select) and the selected-site ring."""
        ring = hv.DynamicMap(lambda site, scenario, models: self.selected_marker(site),
                             streams=[self.site_stream])
        title = "Sites" if self.look.presentation else "Sites (○ calibration, △ validation)"
        # Sized by the width it is given (the card beside it is fixed), at the aspect of the
        # lon/lat box: a fixed frame height with an equal-degree aspect grew wider than the
        # page in presentation mode and ran under the site card.
        return (self.land() * self._points_dmap * ring).opts(
            hv.opts.Overlay(title=title, xlim=(-180, 180), ylim=(-60, 80), responsive=True,
                            aspect=2.2, shared_axes=False, xlabel="longitude",
                            ylabel="latitude", fontscale=self.look.fontscale,
                            bgcolor=self.look.bg))

    def _on_tap(self, event: param.parameterized.Event) -> None:
        if not event.new:
            return
        s = self.selection
        frame = self.site_metric_frame(s.metric, s.variable, s.scenario, s.stage, s.models)
        index = event.new[0]
        if 0 <= index < len(frame):
            s.site = str(frame.iloc[index]["site"])

    def __panel__(self) -> pn.viewable.Viewable:
        return pn.pane.HoloViews(self.site_map(), name="site-map", sizing_mode="stretch_width")


def _colour_bar_title(plot, element: hv.Element) -> None:
    """Title the colour bar after the metric of this frame.

    HoloViews sets a colour bar's title when the plot is created and not on later frames, so a
    new metric kept the first metric's name.
    """
    bar = plot.handles.get("colorbar", plot.handles.get("color_colorbar"))
    if bar is not None:
        bar.title = element.get_dimension("value").label
