"""Bokeh figures that draw a :class:`~dashboard.views.site_plots.Plot` and redraw it in place.

Why Bokeh models directly (and not HoloViews overlays, as before): a HoloViews overlay of
fifteen styled elements became fifteen glyph renderers with their own data sources, and
building a Sites session (seven plots, 69 renderers, ~1,200 Bokeh models) cost 1.7–6 s of
server CPU, which queued every other session of the worker. Here every plot has a fixed set
of at most five glyphs, vectorised over lines, bands and markers (one ``MultiLine`` draws every
model's prior and posterior with per-line colour, dash and width; one ``Patches`` every band),
so a session is a few hundred models, and a new selection replaces the ``data`` of those few
sources: one small message, one redraw.

A live time series holds only the days around what it shows (:meth:`PlotFigure.follow_view`):
a site's 12–18-year record opens on its last two years, and sending every day of every line
and band made a site switch 1.1–1.6 MB that the browser then had to draw. After a pan or zoom
that leaves those days, the browser's ``RangesUpdate`` brings the days of the new view.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import panel as pn
from bokeh.models import (
    AdaptiveTicker,
    ColumnDataSource,
    CompositeTicker,
    DatetimeTickFormatter,
    DaysTicker,
    GlyphRenderer,
    HoverTool,
    LinearColorMapper,
    MonthsTicker,
    MultiLine,
    Patches,
    Range1d,
    Scatter,
    Segment,
    Text,
    YearsTicker,
)
from bokeh.plotting import figure

from dashboard.views.site_plots import Plot
from dashboard.views.style import Look


def field(name: str, transform=None) -> dict:
    """A data-driven property: the column ``name`` (through a colour ``transform``)."""
    return {"field": name, "transform": transform} if transform is not None else {"field": name}


#: Glyph groups a figure can draw.
PARTS = ("bands", "lines", "points", "segments", "markers", "texts")


def calendar_ticker() -> CompositeTicker:
    """Calendar-aligned time ticks: days, months, quarters, half-years, years.

    Bokeh's default datetime ticker spaces ticks by fixed numbers of days, which fell unevenly
    (1998, 2001, 2004, 2008; Feb, Jun, Sep). The first ticker covers any shorter span (an axis
    without data has a range of a few milliseconds): with none, Bokeh's CompositeTicker chose
    no ticker and the browser failed ("reading 'get_ticks_no_defaults'").
    """
    return CompositeTicker(tickers=[
        AdaptiveTicker(mantissas=[1, 2, 5], base=10, min_interval=0,
                       max_interval=12 * 3600 * 1000, num_minor_ticks=0),
        DaysTicker(days=list(range(1, 32))), DaysTicker(days=[1, 8, 15, 22]),
        DaysTicker(days=[1, 15]), MonthsTicker(months=list(range(12))),
        MonthsTicker(months=[0, 3, 6, 9]),
        MonthsTicker(months=[0, 6]), YearsTicker(desired_num_ticks=8)])


def new_time_axis() -> tuple[CompositeTicker, DatetimeTickFormatter]:
    """A calendar ticker and a date formatter for a time axis (share them within a document)."""
    return calendar_ticker(), DatetimeTickFormatter(months="%b %Y", years="%Y")


class PlotFigure:
    """One Bokeh figure showing a :class:`Plot`; :meth:`show` replaces what it shows.

    Parameters
    ----------
    look : Look
        Theme and presentation scaling.
    parts : sequence of str
        The glyph groups this figure draws (of :data:`PARTS`); a plot's other fields are
        ignored.
    time_axis : bool
        A datetime x axis with calendar ticks; time in epoch milliseconds.
    x_range : Range1d, optional
        A range shared with other figures (the site's time series pan and zoom together).
    time_axis_models : tuple, optional
        ``(ticker, formatter)`` of the time axis, shared by the figures of one document (a
        new pair otherwise): the calendar ticker alone is nine models.
    point_tooltips : list, optional
        Hover tooltips of the ``points`` (observations); ``None`` for no hover.
    marker_tooltips : list of (str, str, str), optional
        ``(column, label, format)`` of each hover line of the ``markers`` (the columns come
        from :attr:`Markers.extra`); ``None`` for no hover.
    send_visible : bool
        Send the bands, lines and points only around the plot's x range (the range itself
        and as much again on each side); :meth:`follow_view` sends the days of a new view.
        For a served page only: a static page has no server to ask for them.
    **figure_options
        Size options of :func:`bokeh.plotting.figure` (``height``, ``sizing_mode``,
        ``frame_width``, …).
    """

    def __init__(self, look: Look, parts: Sequence[str], *, time_axis: bool = False,
                 x_range: Range1d | None = None, time_axis_models: tuple | None = None,
                 point_tooltips: list | None = None,
                 marker_tooltips: list | None = None, send_visible: bool = False,
                 **figure_options) -> None:
        self.look = look
        self.parts = tuple(parts)
        self.send_visible = send_visible
        #: The plot drawn last, and the x span whose bands, lines and points the browser holds
        #: (``None``: all of them).
        self._plot: Plot | None = None
        self._span: tuple[float, float] | None = None
        scale = look.fontscale
        self.x_range = x_range if x_range is not None else Range1d(0, 1)
        self.y_range = Range1d(0, 1)
        tools = ("xpan,xwheel_zoom,box_zoom,reset,save" if time_axis
                 else "pan,wheel_zoom,box_zoom,reset,save")
        fig = figure(x_range=self.x_range, y_range=self.y_range, tools=tools,
                     toolbar_location="right", output_backend="canvas",
                     x_axis_type="datetime" if time_axis else "linear",
                     background_fill_color=look.bg, border_fill_color=look.bg,
                     min_border_left=50, **figure_options)
        fig.toolbar.logo = None
        fig.title.text_font_size = f"{round(12 * scale)}pt"
        fig.title.text_color = look.fg
        for axis in (fig.xaxis[0], fig.yaxis[0]):
            axis.axis_label_text_font_size = f"{round(11 * scale)}pt"
            axis.axis_label_text_font_style = "normal"
            axis.major_label_text_font_size = f"{round(9.5 * scale)}pt"
            axis.axis_label_text_color = axis.major_label_text_color = look.fg
            axis.axis_line_color = axis.major_tick_line_color = look.fg
            axis.minor_tick_line_color = None
        for grid in (fig.xgrid[0], fig.ygrid[0]):
            grid.grid_line_color = "#3a3f47" if look.theme == "dark" else "#e5e5e5"
        if time_axis:
            ticker, formatter = time_axis_models or new_time_axis()
            fig.xaxis[0].update(ticker=ticker, formatter=formatter)
        self.figure = fig
        self.mapper = LinearColorMapper(palette=["#000000"], low=-0.5, high=0.5)
        self.sources: dict[str, ColumnDataSource] = {}
        if "bands" in self.parts:
            self._add("bands", Patches(xs="xs", ys="ys", fill_color=field("colour"),
                                       fill_alpha=field("alpha"), line_alpha=0),
                      xs=[], ys=[], label=[], colour=[], alpha=[])
        if "lines" in self.parts:
            self._add("lines", MultiLine(xs="xs", ys="ys", line_color=field("colour"),
                                         line_dash=field("dash"), line_width=field("width"),
                                         line_alpha=field("alpha")),
                      xs=[], ys=[], label=[], colour=[], dash=[], width=[], alpha=[])
        if "segments" in self.parts:
            self._add("segments", Segment(x0="x0", y0="y0", x1="x1", y1="y1",
                                          line_color=field("code", self.mapper),
                                          line_width=look.line_width),
                      x0=[], y0=[], x1=[], y1=[], code=[])
        if "points" in self.parts:
            renderer = self._add("points", Scatter(
                x="x", y="y", marker="circle" if time_axis else "star",
                size=(3 if time_axis else 14) * scale, fill_color=look.obs_colour,
                line_color=look.obs_colour), x=[], y=[])
            if point_tooltips:
                fig.add_tools(HoverTool(renderers=[renderer], tooltips=point_tooltips,
                                        formatters={"@x": "datetime"}))
        if "markers" in self.parts:
            self._marker_columns = ["x", "y", "code", "fill_alpha", "line_alpha"] + [
                column for column, _, _ in marker_tooltips or []]
            colour = field("code", self.mapper)
            renderer = self._add("markers", Scatter(
                x="x", y="y", line_color=colour, fill_color=colour,
                fill_alpha=field("fill_alpha"), line_alpha=field("line_alpha"),
                line_width=2 if marker_tooltips else 1,
                size=(10 if marker_tooltips else 3) * scale),
                **{name: [] for name in self._marker_columns})
            if marker_tooltips:
                fig.add_tools(HoverTool(renderers=[renderer], tooltips=[
                    (label, f"@{{{column}}}{fmt}") for column, label, fmt in marker_tooltips]))
        if "texts" in self.parts:
            self._add("texts", Text(x="x", y="y", text="text", text_color="#888888",
                                    text_font_size=f"{round(8 * scale)}pt"),
                      x=[], y=[], text=[])

    def _add(self, part: str, glyph, **columns: list) -> GlyphRenderer:
        """Draw ``glyph`` from a new source of ``columns`` (named ``part``).

        A bare GlyphRenderer: ``figure.scatter`` and friends add a selection and a muted copy
        of every glyph, models these figures never use and a session would build and send.
        """
        source = ColumnDataSource(data=columns)
        self.sources[part] = source
        renderer = GlyphRenderer(data_source=source, glyph=glyph)
        self.figure.renderers.append(renderer)
        return renderer

    def show(self, plot: Plot) -> None:
        """Draw ``plot`` in this figure: new data, texts and ranges on the same models."""
        fig = self.figure
        fig.title.text = plot.title
        fig.xaxis[0].axis_label = plot.xlabel
        fig.yaxis[0].axis_label = plot.ylabel
        palette = list(plot.palette) or ["#000000"]
        if list(self.mapper.palette) != palette:
            self.mapper.update(palette=palette, low=-0.5, high=len(palette) - 0.5)
        self._plot = plot
        self._span = (_around(plot.x_range) if self.send_visible and plot.x_range is not None
                      else None)
        self._send_series(plot)
        if "segments" in self.parts:
            self.sources["segments"].data = dict(zip(("x0", "y0", "x1", "y1", "code"),
                                                     plot.segments, strict=True))
        if "markers" in self.parts:
            self.sources["markers"].data = _marker_data(plot, self._marker_columns)
        if "texts" in self.parts:
            self.sources["texts"].data = dict(zip(("x", "y", "text"), plot.texts, strict=True))
        if plot.x_range is not None:
            self.x_range.update(start=plot.x_range[0], end=plot.x_range[1])
        if plot.y_range is not None:
            self.y_range.update(start=plot.y_range[0], end=plot.y_range[1])

    def follow_view(self, start: float, end: float) -> bool:
        """Send the bands, lines and points of the x view ``start``–``end`` if not yet sent.

        Parameters
        ----------
        start, end : float
            The x range the browser shows (epoch milliseconds on a time axis), as its
            ``RangesUpdate`` event reports it after a pan, zoom or reset.

        Returns
        -------
        bool
            Whether new data were sent (``False`` when the browser already holds the view's
            days, or the figure sends everything).
        """
        if self._plot is None or self._span is None or not np.isfinite([start, end]).all():
            return False
        if start >= self._span[0] and end <= self._span[1]:
            return False
        self._span = _around((start, end))
        self._send_series(self._plot)
        return True

    def _send_series(self, plot: Plot) -> None:
        """Put the bands, lines and points of ``plot`` (within the held span) in the sources."""
        span = self._span
        if "bands" in self.parts:
            bands = [(b, _within(b.x, span)) for b in plot.bands]
            # A band is the polygon along its upper edge and back along its lower one.
            self.sources["bands"].data = {
                "xs": [np.concatenate([b.x[i], b.x[i][::-1]]) for b, i in bands],
                "ys": [np.concatenate([b.upper[i], b.lower[i][::-1]]) for b, i in bands],
                "label": [b.label for b in plot.bands],
                "colour": [b.colour for b in plot.bands],
                "alpha": [b.alpha for b in plot.bands]}
        if "lines" in self.parts:
            kept = [_within(line.x, span) for line in plot.lines]
            self.sources["lines"].data = {
                "xs": [line.x[i] for line, i in zip(plot.lines, kept, strict=True)],
                "ys": [line.y[i] for line, i in zip(plot.lines, kept, strict=True)],
                "label": [line.label for line in plot.lines],
                "colour": [line.colour for line in plot.lines],
                "dash": [line.dash for line in plot.lines],
                "width": [line.width for line in plot.lines],
                "alpha": [line.alpha for line in plot.lines]}
        if "points" in self.parts:
            x, y = plot.points
            i = _within(np.asarray(x), span)
            self.sources["points"].data = {"x": x[i], "y": y[i]}


def _around(view: tuple[float, float]) -> tuple[float, float]:
    """The span sent for an x view: the view and as much again on each side.

    A pan of up to a whole view shows days already sent; the browser asks for more when the
    view leaves the span (its ``RangesUpdate`` after the pan).
    """
    start, end = float(view[0]), float(view[1])
    width = max(end - start, 0.0)
    return start - width, end + width


def _within(x: np.ndarray, span: tuple[float, float] | None) -> slice:
    """The slice of ascending ``x`` inside ``span``, with one point beyond each end.

    The extra points carry a line to the span's edges. Everything when ``span`` is ``None``
    or ``x`` is not ascending.
    """
    if span is None or len(x) < 2 or not bool(np.all(x[1:] >= x[:-1])):
        return slice(None)
    first = max(int(np.searchsorted(x, span[0], side="left")) - 1, 0)
    last = min(int(np.searchsorted(x, span[1], side="right")) + 1, len(x))
    return slice(first, last)


def drawn(figure: PlotFigure, plot: Plot, **pane_options) -> pn.pane.Bokeh:
    """A Panel pane of ``figure`` showing ``plot`` (for plots drawn once, not updated)."""
    figure.show(plot)
    return pn.pane.Bokeh(figure.figure, **pane_options)


def _marker_data(plot: Plot, columns: list[str]) -> dict[str, np.ndarray]:
    """The markers of ``plot`` as the columns of one source (every stage together)."""
    data: dict[str, list[np.ndarray]] = {name: [] for name in columns}
    for markers in plot.markers:
        n = len(markers.x)
        values = {"x": markers.x, "y": markers.y, "code": markers.code,
                  "fill_alpha": np.full(n, markers.fill_alpha, dtype="float32"),
                  "line_alpha": np.full(n, markers.line_alpha, dtype="float32"),
                  **markers.extra}
        for name in columns:
            data[name].append(np.asarray(values.get(name, np.full(n, np.nan))))
    return {name: (np.concatenate(parts) if parts else np.empty(0))
            for name, parts in data.items()}


def timeseries_figure(look: Look, variable: str, x_range: Range1d | None = None,
                      time_axis_models: tuple | None = None, send_visible: bool = False
                      ) -> PlotFigure:
    """A site's time series: bands, model lines and observed days (hover: date and value).

    ``send_visible``: see :class:`PlotFigure` (the live Sites view).
    """
    return PlotFigure(look, ("bands", "lines", "points"), time_axis=True, x_range=x_range,
                      time_axis_models=time_axis_models, send_visible=send_visible,
                      point_tooltips=[("date", "@x{%F}"), (variable, "@y")],
                      height=230, sizing_mode="stretch_width")


def seasonal_figure(look: Look) -> PlotFigure:
    """The mean seasonal cycle: one line per run and the observations."""
    fig = PlotFigure(look, ("lines",), height=300, sizing_mode="stretch_width")
    fig.figure.xaxis[0].ticker = list(range(1, 13))
    return fig


def scatter_figure(look: Look) -> PlotFigure:
    """Model against observations: the 1:1 line and one marker per run and day."""
    return PlotFigure(look, ("lines", "markers"), height=300, sizing_mode="stretch_width")


def taylor_figure(look: Look) -> PlotFigure:
    """The Taylor diagram: grid, correlation labels, reference star, arrows and runs."""
    return PlotFigure(look, ("lines", "texts", "points", "segments", "markers"),
                      marker_tooltips=[("model", "model", ""), ("r", "r", "{0.00}"),
                                       ("sd", "SD ratio", "{0.00}"), ("n", "n", "")],
                      frame_width=int(300 * look.fontscale),
                      frame_height=int(300 * look.fontscale), width=None, height=None,
                      sizing_mode="fixed")
