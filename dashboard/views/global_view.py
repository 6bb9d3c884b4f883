"""Global: prior, posterior and their spread on the globe, rasterized with datashader.

The map area shows the selected layer (:data:`dashboard.global_queries.LAYERS`): one map per
model, posterior − prior, the multi-model mean, the spread prior vs posterior or its reduction,
all with colour limits shared across the maps (diverging and symmetric for differences and
reductions). Each map is a ``DynamicMap`` over the plot's range and size streams that
resamples the grid with datashader by ``rasterize``'s rule (:meth:`GlobalView._map_frame`):
zooming re-renders at the screen's resolution; a time step puts the new frame straight into
the map's image source (:meth:`GlobalView._step_maps`) with the colour limits shared by the
maps of that step. A new layer, variable,
stage, model choice or projection rebuilds the maps. Beside the maps: the zonal-mean profile;
below: the global land total (PgC yr⁻¹ for carbon fluxes, else the land mean) and the time
series of the cell last clicked, prior (dashed) and posterior (solid) for every model. Site
markers sit on the map; clicking one opens it in the Sites view.
"""

from __future__ import annotations

from collections.abc import Callable
from functools import partial

import geoviews as gv
import holoviews as hv
import numpy as np
import pandas as pd
import panel as pn
import param

from dashboard import global_queries as gq
from dashboard.service import DataService
from dashboard.state import PROJECTIONS, Selection
from dashboard.views import global_map as gm
from dashboard.views.loading import (
    fill_progressively,
    in_server_session,
    off_the_loop,
    when_sent,
)
from dashboard.views.style import (
    ACTIVE_BUTTON_CSS,
    DIVERGING,
    Look,
    alert_html,
    escape,
    model_colour,
)

_TimeStream = hv.streams.Stream.define("GlobalTime", time="mean")
_SeriesStream = hv.streams.Stream.define("GlobalSeries", variable="gpp", time="mean", models=[])
_TotalsStream = hv.streams.Stream.define("GlobalTotals", variable="gpp", models=[])

class _StepSlider(pn.widgets.IntSlider):
    """The time slider: its released value is handled at once.

    Panel waits 50 ms for more changes of a widget before handling them (``_debounce``); the
    view watches only ``value_throttled``, which the browser sends once per release, so the
    wait only delayed every time step.
    """

    _debounce = 0


#: Time modes of the slider: label → mode.
TIME_MODES = {"Month": "month", "Year": "year", "Calendar month": "calendar",
              "Long-term mean": "mean"}
#: Sequential colour map of fields and spreads.
SEQUENTIAL = "viridis"
_SUPERSCRIPTS = str.maketrans("-0123456789", "⁻⁰¹²³⁴⁵⁶⁷⁸⁹")


def pretty_units(units: str) -> str:
    """Units with superscript exponents (``gC m-2 d-1`` → ``gC m⁻² d⁻¹``); ``1`` → ``""``."""
    if units in ("1", ""):
        return ""
    return " ".join(part[0] + part[1:].translate(_SUPERSCRIPTS) if part[-1:].isdigit()
                    and len(part) > 1 else part for part in units.split())


def _axis(name: str) -> hv.Dimension:
    """An axis of the Global view's plots, named apart from the Sites view's (``gtime`` …)."""
    return hv.Dimension(f"g{name}", label=name)


class GlobalView(pn.viewable.Viewer):
    """The Global view: maps, zonal means, global totals, a clicked cell's series."""

    selection = param.ClassSelector(class_=Selection)
    service = param.ClassSelector(class_=DataService)
    look = param.ClassSelector(class_=Look, default=Look())

    def __init__(self, **params):
        super().__init__(**params)
        s = self.selection
        self.times = gq.global_times(self.service)
        self.models = gq.global_models(self.service)
        #: Colour limits shared by the maps on screen (set with the maps, before they redraw).
        self.clim: tuple[float, float] = (0.0, 1.0)
        self._time_stream = _TimeStream(time=self._time_value())
        self._series_stream = _SeriesStream(variable=s.variable, time=self._time_value(),
                                            models=list(s.models))
        self._totals_stream = _TotalsStream(variable=s.variable, models=list(s.models))
        #: The clicked cell (lon, lat), NaN before a click; and the pane of its series.
        self._cell: tuple[float, float] = (np.nan, np.nan)
        self._cell_pane: pn.pane.HoloViews | None = None
        #: Holds the totals plot once the totals are read (off the event loop).
        self._totals_holder: pn.Column | None = None
        self.maps: list[gq.MapField] = []
        self._structure: tuple | None = None
        self._grids: dict[int, gm.ProjectedGrid | None] = {}
        self._updating = False
        self._page: pn.Column | None = None
        self._site_picked = False
        self.message = pn.pane.HTML("", sizing_mode="stretch_width", visible=False)
        self.caption = pn.widgets.StaticText(value="", sizing_mode="stretch_width")
        self.map_holder = pn.Column(sizing_mode="stretch_width")
        #: The zonal profile and the series: rebuilt when the models change (their curves are
        #: those of the shown models only, a fixed set while the time moves).
        self.zonal_holder = pn.Column()
        self.series_holder = pn.Column(sizing_mode="stretch_width")
        self._series_models: tuple[str, ...] = ()
        self._zonal_built: tuple | None = None
        self._zonal_sources: dict = {}
        self._zonal_figure = None
        self._zonal_scheduled = False
        self._zonal_hover = None
        #: The DynamicMap of each map (its range and size streams say what is shown), the
        #: last frame drawn of each (its view and element) and each plot's frame size.
        self._rasters: dict[int, hv.DynamicMap] = {}
        self._frames: dict[int, tuple[tuple, hv.Image]] = {}
        self._frame_sizes: dict[int, tuple[int, int]] = {}
        self._map_panes: list[pn.pane.HoloViews] = []
        self.layer = pn.widgets.Select.from_param(
            s.param.layer, options={label: key for key, label in gq.LAYERS.items()},
            name="Map", width=280)
        self.projection = pn.widgets.RadioButtonGroup.from_param(
            s.param.projection, options={"Plate Carrée": "PlateCarree", "Robinson": "Robinson"},
            name="Projection", stylesheets=[ACTIVE_BUTTON_CSS])
        self.time_mode = pn.widgets.RadioButtonGroup(options=TIME_MODES, value="mean",
                                                     stylesheets=[ACTIVE_BUTTON_CSS])
        self.time_slider = _StepSlider(label="Time", start=0, end=1, value=0, width=360,
                                       visible=False)
        #: Labels the slider shows for its value (in the browser, while it is dragged).
        self._slider_formats = {"month": self._labels_format(
            [f"{t:%B %Y}" for t in self.times]), "calendar": self._labels_format(
            [pd.Timestamp(year=2001, month=m, day=1).strftime("%B") for m in range(1, 13)],
            first=1), "year": "0"}
        self._sync_time_widgets()
        self.time_mode.param.watch(self._on_time_widgets, "value")
        self.time_slider.param.watch(self._on_time_widgets, "value_throttled")
        s.param.watch(self._on_selection, ["variable", "stage", "time", "layer", "models",
                                           "projection"])

    # -- time ------------------------------------------------------------------------------
    def _time_value(self) -> str:
        """The selection's time if valid and inside the runs' period, else the long-term mean."""
        try:
            if len(self.times):
                gq.time_steps(self.times, self.selection.time)
            else:
                gq.parse_time(self.selection.time)
        except ValueError:
            return "mean"
        return self.selection.time or "mean"

    def _time_problem(self) -> str:
        """Why the selection's time is not shown (empty when it is)."""
        if not self.selection.time or not len(self.times):
            return ""
        try:
            gq.time_steps(self.times, self.selection.time)
        except ValueError as exc:
            return f"{exc}; showing the long-term mean."
        return ""

    @staticmethod
    def _labels_format(labels: list[str], first: int = 0) -> object:
        """A slider format showing ``labels[value - first]`` (drawn in the browser)."""
        from bokeh.models import CustomJSTickFormatter

        return CustomJSTickFormatter(
            args={"labels": labels, "first": first},
            code="const i = Math.round(tick) - first; "
                 "return (i >= 0 && i < labels.length) ? labels[i] : String(tick);")

    def slider_label(self) -> str:
        """What the time slider shows for its value (``"August 2010"``, ``"2012"``…)."""
        mode, value = self.time_mode.value, self.time_slider.value
        if mode == "month" and len(self.times):
            return f"{self.times[int(np.clip(value, 0, len(self.times) - 1))]:%B %Y}"
        if mode == "calendar":
            return pd.Timestamp(year=2001, month=int(np.clip(value, 1, 12)), day=1).strftime("%B")
        return str(value) if mode == "year" else ""

    def _years(self) -> list[int]:
        return sorted(set(self.times.year)) if len(self.times) else [2001]

    def _sync_time_widgets(self) -> None:
        """Set the mode and slider from the selection's time (without feedback)."""
        kind, value = gq.parse_time(self._time_value())
        self._updating = True
        try:
            mode = {"month": "month", "year": "year", "annual": "year",
                    "calendar": "calendar"}.get(kind, "mean")
            self.time_mode.value = mode
            slider = self.time_slider
            if mode == "month":
                n = max(len(self.times), 1)
                index = 0
                if len(self.times):
                    hits = np.flatnonzero((self.times.year == value[0])
                                          & (self.times.month == value[1]))
                    index = int(hits[0]) if hits.size else 0
                slider.param.update(start=0, end=max(n - 1, 1), value=index, label="Month",
                                    format=self._slider_formats["month"])
            elif mode == "year":
                years = self._years()
                year = value if kind == "year" else years[0]
                slider.param.update(start=years[0], end=max(years[-1], years[0] + 1),
                                    value=int(np.clip(year, years[0], years[-1])), label="Year",
                                    format=self._slider_formats["year"])
            elif mode == "calendar":
                slider.param.update(start=1, end=12, value=value, label="Calendar month",
                                    format=self._slider_formats["calendar"])
            slider.visible = mode != "mean"
        finally:
            self._updating = False

    def _on_time_widgets(self, event: param.parameterized.Event) -> None:
        if self._updating:
            return
        mode, value = self.time_mode.value, self.time_slider.value
        if mode == "month" and len(self.times):
            if event.name == "value" and event.obj is self.time_mode:
                value = 0
            value = int(np.clip(value, 0, len(self.times) - 1))
            time = f"{self.times[value]:%Y-%m}"
        elif mode == "year":
            years = self._years()
            year = value if years[0] <= value <= years[-1] else years[0]
            time = str(year)
        elif mode == "calendar":
            time = f"month-{int(np.clip(value, 1, 12)):02d}"
        else:
            time = "mean"
        self.selection.time = time

    # -- data ------------------------------------------------------------------------------
    def compute_maps(self) -> list[gq.MapField]:
        """The maps of the current selection (also sets the shared colour limits)."""
        s = self.selection
        maps = gq.layer_maps(self.service, s.variable, s.stage, self._time_value(), s.layer,
                             s.models)
        if maps:
            self.clim = gq.colour_limits(maps)
        return maps

    def _refresh(self) -> bool:
        """Recompute the maps; show a message if there is nothing to draw."""
        s = self.selection
        try:
            maps = self.compute_maps()
        except ValueError as exc:
            self._say(str(exc), "warning")
            return False
        if not maps:
            have = gq.global_variables(self.service)
            if not gq.global_runs(self.service):
                why = "This archive has no global runs (files named <model>.<version>_global_…)."
            elif s.variable not in have:
                why = (f"No global run holds {s.variable}; choose one of "
                       f"{', '.join(have) or 'none'}.")
            else:
                why = f"Nothing to draw for {gq.LAYERS[s.layer]} with the chosen models " \
                      "(spread maps need two models with both stages)."
            self._say(why, "info")
            self.maps = []
            return True
        problem = self._time_problem()
        self._say(problem, "warning" if problem else "info")
        self.maps = maps
        return True

    def _say(self, text: str, kind: str = "info") -> None:
        problems = gq.problems(self.service, self.selection.variable)
        parts = [alert_html(text, kind)] if text else []
        parts += [alert_html(f"Global run not used: {p}", "warning") for p in problems[:5]]
        self.message.object = "".join(parts)
        self.message.visible = bool(parts)

    def _caption(self) -> str:
        """What the maps show, the same text for every step of the slider.

        The slider shows the step: a new caption made the browser lay the whole page out
        again, ~0.1-0.16 s a step in chromium here.
        """
        s = self.selection
        units = pretty_units(self.maps[0].units) if self.maps else ""
        kind = gq.parse_time(self._time_value())[0]
        years = self._years()
        when = {"month": "monthly means (month on the slider)",
                "year": "annual means (year on the slider)",
                "annual": "annual means (year on the slider)",
                "calendar": "calendar-month means over all years (month on the slider)"}.get(
            kind, f"long-term mean {years[0]}–{years[-1]}")
        return (f"{s.variable}{f' ({units})' if units else ''} · {when} · "
                f"{gq.LAYERS[s.layer]} · colour limits shared by the maps, set for each step · "
                "click a cell for its series")

    # -- maps ------------------------------------------------------------------------------
    def _image(self, index: int, time: str) -> hv.Image:
        """Frame ``index`` of the current maps, in the projection's coordinates."""
        projection = self.selection.projection
        value_dim = hv.Dimension("value", label=self.selection.variable,
                                 unit=pretty_units(self.maps[0].units) if self.maps else None)
        if index >= len(self.maps):
            empty = np.full((2, 2), np.nan, dtype="float32")
            return gm.raster_element(empty, np.array([-89.0, 89.0]), np.array([-179.0, 179.0]),
                                     projection, value_dim)
        m = self.maps[index]
        return gm.raster_element(m.values, m.lat, m.lon, projection, value_dim)

    def _panel(self, index: int, width: int) -> hv.DynamicMap:
        s = self.selection
        projection = s.projection
        height = int(width / (2.4 if projection == "PlateCarree" else 1.97))
        raster = hv.DynamicMap(partial(self._map_frame, index, (width, height)),
                               streams=[self._time_stream, hv.streams.RangeXY(),
                                        hv.streams.PlotSize()])
        self._rasters[index] = raster
        diverging = self.maps[index].diverging if index < len(self.maps) else False
        units = pretty_units(self.maps[index].units) if index < len(self.maps) else ""
        raster = raster.opts(cmap=DIVERGING if diverging else SEQUENTIAL, colorbar=True,
                             tools=["hover", "tap"], clabel=units or "1",
                             clipping_colors={"NaN": "transparent"},
                             **gm.hover_options(projection, s.variable, units))
        # The shared limits follow the time stream in the same update as the raster (a
        # separate parameter-driven .apply.opts redrew every map a second time per step).
        raster = raster.apply(self._style, streams=[self._time_stream])
        tap = hv.streams.Tap(source=raster, x=np.nan, y=np.nan)
        tap.param.watch(self._on_tap, ["x", "y"])
        sites = self._sites()
        pick = hv.streams.Selection1D(source=sites)
        pick.param.watch(self._on_site, "index")
        land = gm.land_outline(projection, self.look.fg if self.look.theme == "dark"
                               else "#333333")
        title = self.maps[index].title.split(", ")[0] if index < len(self.maps) else ""
        return (raster * land * sites).opts(
            hv.opts.Overlay(title=title, frame_width=width, frame_height=height,
                            fontscale=self.look.fontscale, bgcolor=self.look.bg,
                            shared_axes=False, **gm.projection_opts(projection)))

    def _step_maps(self) -> bool:
        """A time step drawn without HoloViews' plot update; False if it could not be.

        The new frame of each map is resampled for the ranges and size its streams hold (the
        rule of ``rasterize``, :meth:`_frame`) and put into the map's Bokeh image source, and the
        colour mapper gets the shared limits. The time stream is updated without an event, so
        a later zoom rasterizes the new time. Through the HoloViews update, the plot's
        bookkeeping (ranges, styles, GeoViews' frame update) cost ~0.16 s a map per step.
        """
        from bokeh.models import Image as ImageGlyph

        time = self._time_value()
        targets = []
        for index, pane in enumerate(self._map_panes):
            raster = self._rasters.get(index)
            plots = getattr(pane, "_plots", None) or {}
            if raster is None or not plots:
                return False
            for plot, _ in plots.values():
                image_plots = [sp for sp in getattr(plot, "subplots", {}).values()
                               if isinstance(sp.handles.get("glyph"), ImageGlyph)]
                if len(image_plots) != 1:
                    return False
                targets.append((index, raster, image_plots[0]))
        if not targets:
            return False
        self._time_stream.update(time=time)
        for index, raster, subplot in targets:
            image, (left, bottom, right, top) = self._frame(index, raster, time)
            subplot.handles["source"].data = {
                "image": [image if 0 not in image.shape else np.array([[np.nan]])],
                "x": [left], "y": [bottom], "dw": [right - left], "dh": [top - bottom]}
            mapper = subplot.handles.get("color_mapper")
            if mapper is not None:
                mapper.update(low=self.clim[0], high=self.clim[1])
        return True

    def _frame(self, index: int, raster: hv.DynamicMap, time: str
               ) -> tuple[np.ndarray, tuple[float, float, float, float]]:
        """Map ``index`` at ``time`` resampled for the plot's current range and size.

        Returns the image (first row at the bottom, Bokeh's order) and its bounds.
        """
        kwargs = {}
        for stream in raster.streams:
            if isinstance(stream, (hv.streams.RangeXY, hv.streams.PlotSize)):
                kwargs.update({k: v for k, v in stream.contents.items() if v is not None})
        element = self._map_frame(index, self._frame_sizes.get(index, (720, 300)), time,
                                  **kwargs)
        return element.dimension_values(2, flat=False), element.bounds.lbrt()

    def _map_frame(self, index: int, frame: tuple[int, int], time: str,
                   x_range: tuple[float, float] | None = None,
                   y_range: tuple[float, float] | None = None, width: int | None = None,
                   height: int | None = None, scale: float | None = None) -> hv.Image:
        """Map ``index`` resampled with datashader for what its plot shows.

        The range and size are those the browser reported (zoom refines the raster); before
        any report, the whole grid at the plot's frame size. Asked again for the same view,
        the same element is returned and HoloViews sends nothing: through ``rasterize``, a
        page load resampled, sent and redrew every map three times (at 400 × 400, again
        when the browser reported the ranges, again when it reported the size).
        """
        self._frame_sizes[index] = frame
        if index >= len(self.maps):
            return self._image(index, time)
        m = self.maps[index]
        projection = self.selection.projection
        values, xs, ys = gm.map_grid(m.values, m.lat, m.lon, projection)
        # (no report yet: the whole grid, the view the browser then reports as its range)
        x_range = tuple(x_range) if x_range and np.isfinite(x_range).all() else gm.grid_extent(xs)
        y_range = tuple(y_range) if y_range and np.isfinite(y_range).all() else gm.grid_extent(ys)
        ratio = getattr(pn.state.browser_info, "device_pixel_ratio", None)
        ratio = ratio if isinstance(ratio, (int, float)) else 1
        size = (int((width or frame[0]) * ratio), int((height or frame[1]) * ratio))
        key = (id(m), time, projection, x_range, y_range, size)
        cached = self._frames.get(index)
        if cached is not None and cached[0] == key:
            return cached[1]
        image, (left, bottom, right, top) = gm.regrid(values, xs, ys, x_range, y_range, *size)
        value_dim = hv.Dimension("value", label=self.selection.variable,
                                 unit=pretty_units(m.units) or None)
        data = np.flipud(image)  # (an Image's first row is its top)
        bounds = (left, bottom, right, top)
        if projection == "PlateCarree":
            element = hv.Image(data, bounds=bounds, kdims=[gm.LON, gm.LAT], vdims=[value_dim])
        else:
            element = gv.Image(data, bounds=bounds, kdims=["x", "y"], vdims=[value_dim],
                               crs=gm.crs(projection))
        self._frames[index] = (key, element)
        return element

    def _style(self, element: hv.Image, time: str) -> hv.Image:
        """A rasterized frame with the colour limits shared by the maps of this step."""
        return element.opts(clim=self.clim)

    def _sites(self) -> hv.Points:
        sites = self.service.sites
        labels = {"site": list(sites["site_id"].astype(str)),
                  "role": list(sites["role"].astype(str))}
        points = gm.site_element(sites["lon"].to_numpy(float), sites["lat"].to_numpy(float),
                                 labels, self.selection.projection)
        return points.opts(
            color="#ff00aa", line_color="white", size=7 * self.look.fontscale,
            marker=hv.dim("role").categorize({"Cal": "circle", "Val": "triangle"}, "square"),
            tools=["tap", "hover"], hover_tooltips=[("site", "@site"), ("role", "@role")],
            nonselection_alpha=1.0, selection_line_color="black")

    def _build_maps(self) -> pn.viewable.Viewable:
        n = len(self.maps)
        if n == 0:
            return pn.Spacer(height=10)
        # Two a row fit beside the sidebar of a 1400 px window (360 ran past its right edge).
        # In presentation mode (larger type) one a row: two ran past a 1400 px window's edge.
        per_row = 1 if n == 1 or self.look.presentation else 2
        width = 720 if n == 1 else 320 if per_row == 2 else 560
        # One pane per map in a grid: HoloViews Layouts of fixed-frame overlays collapsed to
        # zero size in Panel 1.9.
        self._rasters = {}
        self._frames = {}
        panes = [pn.pane.HoloViews(self._panel(i, width), name=f"global-map-{i}",
                                   linked_axes=False) for i in range(n)]
        self._map_panes = panes
        # Two a row: three ran past the right edge of a 1600 px window.
        return pn.GridBox(*panes, ncols=per_row)

    def _structure_key(self) -> tuple:
        s = self.selection
        return (s.variable, s.stage, s.layer, tuple(s.models), s.projection, len(self.maps))

    def _on_selection(self, *events: param.parameterized.Event) -> None:
        names = {e.name for e in events}
        if "time" in names:
            self._sync_time_widgets()
        if not self._refresh():
            return
        s = self.selection
        with pn.io.hold():
            self.caption.value = self._caption() if self.maps else ""
            if self._structure_key() != self._structure:
                self._structure = self._structure_key()
                self.map_holder.objects = [self._build_maps()]
            elif not self._step_maps():
                self._time_stream.event(time=self._time_value())
            if (self._page is not None
                    and tuple(gq.shown_models(self.service, s.models)) != self._series_models):
                self._series_models = tuple(gq.shown_models(self.service, s.models))
                self.series_holder.objects = self._series_panes()
            self._series_stream.event(variable=s.variable, time=self._time_value(),
                                      models=list(s.models))
            if self._zonal_key() == self._zonal_built:
                self._schedule_zonal()
            elif self._page is not None:
                self._fill_zonal()
            if names & {"variable", "models"} and self._totals_holder is not None:
                self._update_totals()
                self._redraw_cell_after(self._read_cell)

    # -- clicks ----------------------------------------------------------------------------
    def _lonlat(self, x: float, y: float) -> tuple[float, float]:
        if self.selection.projection == "PlateCarree" or not self.maps:
            return float(x), float(y)
        grid = gm.projected_grid(self.maps[0].lat, self.maps[0].lon, self.selection.projection)
        return grid.to_lonlat(float(x), float(y))

    def _on_tap(self, *events: param.parameterized.Event) -> None:
        stream = events[0].obj
        if stream.x is None or stream.y is None or not np.isfinite([stream.x, stream.y]).all():
            return
        lon, lat = self._lonlat(stream.x, stream.y)
        if not np.isfinite([lon, lat]).all() or self._site_picked:
            return
        self.select_cell(lon, lat)

    def select_cell(self, lon: float, lat: float) -> None:
        """Show the time series of the cell nearest (lon, lat).

        The series are read off the event loop (every time chunk of every run: seconds on a
        0.5° archive), the plot shows Panel's loading state meanwhile.
        """
        self._cell = (float(lon), float(lat))
        self._redraw_cell_after(self._read_cell)

    def _read_cell(self) -> None:
        s = self.selection
        lon, lat = self._cell
        if np.isfinite([lon, lat]).all():
            gq.cell_series(self.service, s.variable, lon, lat, list(s.models))

    def _redraw_cell_after(self, work: Callable[[], None]) -> None:
        """Redraw the cell plot once ``work`` (a read it needs) has run off the loop."""
        wanted = (self._cell, self.selection.variable, tuple(self.selection.models))
        if self._cell_pane is not None:
            self._cell_pane.loading = True

        def redraw() -> None:
            if (self._cell, self.selection.variable, tuple(self.selection.models)) != wanted:
                return  # a later click or choice redraws
            if self._cell_pane is not None:
                self._cell_pane.loading = False
            with pn.io.hold():
                self._redraw_cell()

        off_the_loop(work, redraw)

    def _on_site(self, event: param.parameterized.Event) -> None:
        if not event.new:
            return
        index = event.new[0]
        sites = self.service.sites
        if 0 <= index < len(sites):
            self.open_site(str(sites.iloc[index]["site_id"]))

    def open_site(self, site: str) -> None:
        """Select ``site`` and switch to the Sites view.

        In a served session the switch waits for the next event-loop tick: the map that was
        clicked is removed by the switch, and removing it while Bokeh still handles its tap
        left the browser with dangling axis ranges (page errors).
        """
        self._site_picked = True

        def switch() -> None:
            self.selection.param.update(site=site, view="sites")

        if in_server_session():
            pn.state.execute(switch, schedule=True)
        else:
            switch()

    # -- side plots ------------------------------------------------------------------------
    def _curves(self, frame: pd.DataFrame, x: str, label: str, units: str,
                invert: bool = False) -> hv.Overlay:
        """One curve per global model and stage, always the same ones (empty when not shown).

        A fixed structure lets HoloViews patch the existing Bokeh glyphs; a changing set of
        curves created and dropped renderers and legends on every update.
        """
        groups = {key: rows for key, rows in frame.groupby(["model", "stage"], sort=True)}
        empty_x = self.times[:1] if x == "time" and len(self.times) else np.array([0.0])
        value = hv.Dimension("gvalue", label=label, unit=units)
        curves = []
        for model in self._series_models:
            for stage in ("Prior", "Posterior"):
                rows = groups.get((model, stage))
                data = ((rows[x].to_numpy(), rows["value"].to_numpy(dtype=float))
                        if rows is not None else (empty_x, np.full(len(empty_x), np.nan)))
                curve = hv.Curve(data, kdims=[_axis(x)], vdims=[value],
                                 label=f"{model} {stage}")
                curves.append(curve.opts(
                    color=model_colour(model, self.models), line_width=self.look.line_width,
                    line_dash="dashed" if stage == "Prior" else "solid", tools=["hover"]))
        if not curves:
            curves = [hv.Curve((empty_x, np.full(len(empty_x), np.nan)), kdims=[_axis(x)],
                               vdims=[value])]
        overlay = hv.Overlay(curves)
        return overlay.opts(invert_axes=True) if invert else overlay

    def zonal_plot(self, variable: str, time: str, models: list[str]) -> hv.Overlay:
        """Zonal means of every model, prior (dashed) and posterior (solid), as HoloViews.

        The page draws the profile as a plain Bokeh figure (:meth:`_fill_zonal`, cheaper on a
        time step); this element is kept for static renderings.
        """
        frame = gq.zonal_profiles(self.service, variable, time, models)
        units = pretty_units(str(frame["units"].iloc[0])) if len(frame) else ""
        overlay = self._curves(frame, "lat", variable, units, invert=True)
        return overlay.opts(hv.opts.Overlay(
            title=f"Zonal mean ({gq.time_label(time)})", frame_width=230,
            frame_height=330, show_legend=False, shared_axes=False,
            fontscale=self.look.fontscale, bgcolor=self.look.bg))

    def totals_plot(self, variable: str, models: list[str]) -> hv.Overlay:
        """Global land totals (carbon fluxes, PgC yr⁻¹) or land means, every model and stage."""
        frame = gq.global_totals(self.service, variable, models)
        units = str(frame["units"].iloc[0]) if len(frame) else ""
        what = "Global land total" if units.startswith("PgC") else "Land mean (area-weighted)"
        overlay = self._curves(frame, "time", variable, pretty_units(units))
        return overlay.opts(hv.opts.Overlay(
            title=f"{what} of {variable}", responsive=True, height=260,
            show_legend=False, shared_axes=False, fontscale=self.look.fontscale,
            bgcolor=self.look.bg))

    def cell_plot(self, variable: str, models: list[str], lon: float, lat: float
                  ) -> hv.Overlay:
        """The clicked cell's series for every model and stage."""
        if not np.isfinite([lon, lat]).all():
            frame = pd.DataFrame(columns=["model", "stage", "time", "value", "units"])
            title = "Click a cell of the map for its time series"
        else:
            frame = gq.cell_series(self.service, variable, lon, lat, models)
            if len(frame):
                title = (f"{variable} at {frame['cell_lat'].iloc[0]:.2f}°, "
                         f"{frame['cell_lon'].iloc[0]:.2f}° (nearest cell)")
            else:
                title = f"No grid cell at {lat:.2f}°, {lon:.2f}°"
        if len(frame):
            units = pretty_units(str(frame["units"].iloc[0]))
        else:  # before a click: the runs' units and time span, not an empty 1 ms axis
            units = pretty_units(self.maps[0].units) if self.maps else ""
        overlay = self._curves(frame, "time", variable, units)
        span = ({"xlim": (self.times[0], self.times[-1])}
                if not len(frame) and len(self.times) > 1 else {})
        return overlay.opts(hv.opts.Overlay(
            title=title, responsive=True, height=260, show_legend=False,
            shared_axes=False, fontscale=self.look.fontscale, bgcolor=self.look.bg, **span))

    # -- page ------------------------------------------------------------------------------
    def controls(self) -> pn.Row:
        """Layer, projection and time controls.

        The slider sits under the time modes: beside them it ran past the right edge of a
        1400 px window.
        """
        return pn.Row(self.layer, pn.Column(pn.pane.HTML("<small>Projection</small>",
                                                         margin=(0, 5)), self.projection),
                      pn.Column(pn.pane.HTML("<small>Time</small>", margin=(0, 5)),
                                self.time_mode, self.time_slider),
                      sizing_mode="stretch_width")

    def _maps_row(self) -> pn.viewable.Viewable:
        """The maps, with room for the zonal profile (added once the maps are laid out)."""
        if len(self.models) > 1:  # (some layers draw one map per model)
            # Below the maps: beside a grid of two maps a row it ran past the right edge of a
            # 1280-1400 px window and hid the second map.
            return pn.Column(self.map_holder, self.zonal_holder, sizing_mode="stretch_width")
        return pn.Row(self.map_holder, self.zonal_holder, sizing_mode="stretch_width")

    def _zonal_key(self) -> tuple:
        s = self.selection
        return (s.variable, tuple(gq.shown_models(self.service, s.models)))

    def _fill_zonal(self) -> pn.viewable.Viewable:
        """Put the zonal profile beside the maps (sent after them: the map comes first).

        A plain Bokeh figure whose line sources are replaced on a time step: through
        HoloViews, redrawing the profile cost a time step ~0.3 s in chromium (the map alone
        ~0.3 s). Rebuilt when the variable or the shown models change.
        """
        from bokeh.models import ColumnDataSource, HoverTool
        from bokeh.plotting import figure

        s = self.selection
        self._series_models = tuple(gq.shown_models(self.service, s.models))
        self._zonal_built = self._zonal_key()
        fig = figure(title="Zonal mean", width=int(300 * self.look.fontscale),
                     height=int(400 * self.look.fontscale), y_range=(-90, 90),
                     tools="pan,wheel_zoom,box_zoom,reset,save", toolbar_location="right",
                     background_fill_color=self.look.bg, name="global-zonal")
        fig.yaxis.axis_label = "latitude (°N)"
        self._zonal_sources = {}
        renderers = []
        for model in self._series_models:
            for stage in ("Prior", "Posterior"):
                source = ColumnDataSource({"lat": np.array([], dtype=float),
                                           "value": np.array([], dtype=float)})
                renderers.append(fig.line(
                    "value", "lat", source=source, color=model_colour(model, self.models),
                    line_width=self.look.line_width,
                    line_dash="dashed" if stage == "Prior" else "solid",
                    name=f"{model} {stage}"))
                self._zonal_sources[(model, stage)] = source
        self._zonal_hover = HoverTool(renderers=renderers, tooltips=[
            ("", "$name"), ("latitude (°N)", "@lat{0.00}"), ("value", "@value{0.000}")])
        fig.add_tools(self._zonal_hover)
        self._zonal_figure = fig
        self._update_zonal()
        self.zonal_holder.objects = [pn.pane.Bokeh(fig, name="global-zonal")]
        return pn.Spacer(height=0, margin=0)

    def _schedule_zonal(self) -> None:
        """Update the zonal profile after the maps have gone to the browser.

        Once, however many steps arrive meanwhile: the browser draws the maps while the
        server reads the other stage's maps and averages them (5 models: 0.15-0.26 s a step
        here).
        """
        if self._zonal_scheduled:
            return
        self._zonal_scheduled = True

        def update() -> None:
            self._zonal_scheduled = False
            if self._zonal_key() == self._zonal_built:
                self._update_zonal()

        when_sent(update)

    def _update_zonal(self) -> None:
        """New profiles for the selection's time (the figure's sources replaced in place)."""
        s = self.selection
        time = self._time_value()
        frame = gq.zonal_profiles(self.service, s.variable, time, s.models)
        units = pretty_units(str(frame["units"].iloc[0])) if len(frame) else ""
        groups = {key: rows for key, rows in frame.groupby(["model", "stage"], sort=True)}
        for key, source in self._zonal_sources.items():
            rows = groups.get(key)
            source.data = {
                "lat": (rows["lat"].to_numpy(float) if rows is not None
                        else np.array([], dtype=float)),
                "value": (rows["value"].to_numpy(float) if rows is not None
                          else np.array([], dtype=float))}
        label = f"{s.variable} ({units})" if units else s.variable
        if self._zonal_figure.xaxis[0].axis_label != label:
            self._zonal_figure.xaxis.axis_label = label
            self._zonal_hover.tooltips = [("", "$name"), ("latitude (°N)", "@lat{0.00}"),
                                          (s.variable, "@value{0.000}" + (f" {units}" if units
                                                                         else ""))]

    def key(self) -> pn.pane.HTML:
        """Colour key of the series: one colour per model, prior dashed, posterior solid.

        A fixed key instead of plot legends: legends that appear with the first clicked cell
        were not found by BokehJS (page errors).
        """
        items = "".join(
            f'<span style="margin-right:14px;white-space:nowrap"><span style="display:'
            f'inline-block;width:22px;border-top:3px solid {model_colour(m, self.models)};'
            f'vertical-align:middle"></span> {escape(m)}</span>' for m in self.models)
        return pn.pane.HTML(f"<small>{items} &nbsp; ┄ prior &nbsp; ━ posterior</small>",
                            sizing_mode="stretch_width")

    def _cell_overlay(self) -> hv.Overlay:
        """The clicked cell's series for the selection (nothing clicked: the empty plot)."""
        s = self.selection
        lon, lat = self._cell
        return self.cell_plot(s.variable, list(s.models), lon, lat)

    def _redraw_cell(self) -> None:
        """Draw the cell plot anew (a click, another variable or other models).

        A new plot, not a DynamicMap update: the first frame (before any click) has no values,
        and HoloViews kept its empty ranges for the clicked cell's series, which then drew
        nothing visible in the browser.
        """
        if self._cell_pane is not None:
            self._cell_pane.object = self._cell_overlay()

    def _read_totals(self) -> None:
        s = self.selection
        gq.global_totals(self.service, s.variable, list(s.models))

    def _update_totals(self) -> None:
        """Totals of the selected variable and models: read off the loop, then drawn.

        A run's totals read every time step (seconds for a 0.5° run, once per process): on
        the event loop they stalled every session of the worker.
        """
        wanted = (self.selection.variable, tuple(self.selection.models))
        self._totals_holder.loading = True

        def show() -> None:
            s = self.selection
            if (s.variable, tuple(s.models)) != wanted:
                return  # a later choice shows its own
            self._totals_holder.loading = False
            if not self._totals_holder.objects:
                totals = hv.DynamicMap(self.totals_plot, streams=[self._totals_stream])
                self._totals_holder.objects = [pn.pane.HoloViews(
                    totals, sizing_mode="stretch_width", name="global-totals",
                    linked_axes=False)]
            else:
                self._totals_stream.event(variable=s.variable, models=list(s.models))

        off_the_loop(self._read_totals, show)

    def _series_panes(self) -> list[pn.viewable.Viewable]:
        self._totals_stream.update(variable=self.selection.variable,
                                   models=list(self.selection.models))
        self._totals_holder = pn.Column(sizing_mode="stretch_width", min_height=260)
        self._update_totals()
        self._cell_pane = pn.pane.HoloViews(self._cell_overlay(), sizing_mode="stretch_width",
                                            name="global-cell", linked_axes=False)
        return [self.key(), self._totals_holder, self._cell_pane]

    def _series_row(self) -> pn.viewable.Viewable:
        self.series_holder.objects = self._series_panes()
        return self.series_holder

    def __panel__(self) -> pn.viewable.Viewable:
        if self._page is not None:  # Panel may ask twice: the maps are built once
            return self._page
        if self._refresh():
            self.caption.value = self._caption() if self.maps else ""
            self._structure = self._structure_key()
            self.map_holder.objects = [self._build_maps()]
        page = pn.Column(self.controls(), self.message, self.caption,
                         sizing_mode="stretch_width")
        fill_progressively(page, [self._maps_row, self._fill_zonal, self._series_row],
                           first_drawn=self._map_figures)
        self._page = page
        return page

    def _map_figures(self) -> list:
        """The Bokeh figures of the maps on the page (one per map pane and document)."""
        return [plot.state for pane in self._map_panes
                for plot, _ in (getattr(pane, "_plots", None) or {}).values()]


__all__ = ["GlobalView", "PROJECTIONS", "pretty_units"]
