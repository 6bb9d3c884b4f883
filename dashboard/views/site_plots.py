"""The site plots: time series, seasonal cycle, scatter and Taylor diagram of one site.

Each method is a pure function of (site, variable, scenario, models) returning a HoloViews
overlay of fixed structure (so a DynamicMap patches the data of the existing Bokeh plot when the
selection changes). The data come from the query layer; nothing here opens a file.
"""

from __future__ import annotations

import holoviews as hv
import numpy as np
import pandas as pd
from bokeh.models import (
    AdaptiveTicker,
    CompositeTicker,
    DatetimeTickFormatter,
    DaysTicker,
    MonthsTicker,
    YearsTicker,
)

from dashboard import queries
from dashboard.metrics.diagrams import MONTHS, monthly_means
from dashboard.service import DataService
from dashboard.sitedata import SiteSeries
from dashboard.state import SITE_VARIABLES
from dashboard.views.style import Look, model_colour
from dashboard.views.templates import StyledElements, weak_hook

#: Posterior bands are drawn when at most this many models are shown.
MAX_BANDS = 3


class SitePlots:
    """Builds the plots of the Sites view for one session's look.

    Parameters
    ----------
    service : DataService
        The worker's data service.
    look : Look
        Theme and presentation scaling.
    """

    def __init__(self, service: DataService, look: Look) -> None:
        self.service = service
        self.look = look
        self.styled = StyledElements()
        # One date formatter for every time axis of this session: a new Bokeh model per frame
        # would defeat the option templates, and a Bokeh model belongs to one document only.
        self._dates = DatetimeTickFormatter(months="%b %Y", years="%Y")
        # Calendar-aligned ticks (quarters, half-years, years, every 2 or 5 years): Bokeh's
        # default ticker spaced them by fixed numbers of days, which fell unevenly (1998, 2001,
        # 2004, 2008; Feb, Jun, Sep).
        # The first ticker covers any shorter span (an axis without data has a range of a few
        # milliseconds): with none, Bokeh's CompositeTicker chose no ticker and the browser
        # failed ("reading 'get_ticks_no_defaults'") and drew none of the site's plots.
        self._ticks = CompositeTicker(tickers=[
            AdaptiveTicker(mantissas=[1, 2, 5], base=10, min_interval=0,
                           max_interval=12 * 3600 * 1000, num_minor_ticks=0),
            DaysTicker(days=list(range(1, 32))), DaysTicker(days=[1, 8, 15, 22]),
            DaysTicker(days=[1, 15]), MonthsTicker(months=list(range(12))),
            MonthsTicker(months=[0, 3, 6, 9]),
            MonthsTicker(months=[0, 6]), YearsTicker(desired_num_ticks=8)])
        #: Time window (epoch ms) of each time-series frame, by its title (see _apply_window).
        self._windows: dict[str, tuple[float, float] | tuple[None, None]] = {}
        self._window_hook = weak_hook(self._apply_window)

    def series(self, site: str, variable: str, scenario: int, models: list[str]) -> SiteSeries:
        """The tidy series of a site, every model (shared by every session)."""
        return queries.site_series(self.service, site, variable, scenario, [])

    def highlighted(self, models: list[str]) -> list[str]:
        """The models drawn in colour (:func:`queries.highlighted_models`); others are muted."""
        return queries.highlighted_models(self.service, models)

    def _model_style(self) -> dict:
        """Colour options for glyphs coloured by their ``model_code`` value.

        Every model is drawn in the colour of its index in the archive's model list; the codes
        travel as numbers (binary) rather than one colour string per point.
        """
        all_models = self.service.model_ids()
        palette = [model_colour(m, all_models) for m in all_models] or ["#000000"]
        return {"color": "model_code", "cmap": palette,
                "clim": (-0.5, len(palette) - 0.5), "colorbar": False}

    def _model_curves(self, curves: dict[tuple[str, str], tuple[np.ndarray, np.ndarray]],
                      kdims: list, highlighted: list[str]) -> list[hv.Curve]:
        """One curve per archive model and stage, empty when absent.

        Highlighted models: dashed prior and solid posterior in the model's colour. The others:
        their posterior as a thin muted line (context, not spaghetti), no prior. Muted curves
        come first so the highlighted ones are drawn on top. The fixed structure lets a
        DynamicMap patch the data of the existing plot. Curves, not one multi-line Path:
        HoloViews splits multi-paths at ~10 ms a path on every update.
        """
        all_models = self.service.model_ids()
        empty = (np.empty(0), np.empty(0))
        order = ([m for m in all_models if m not in highlighted]
                 + [m for m in all_models if m in highlighted])
        layers = []
        for stage in ("Prior", "Posterior"):
            for model in order:
                lit = model in highlighted
                data = curves.get((model, stage), empty) if lit or stage != "Prior" else empty
                style = ({"color": model_colour(model, all_models),
                          "line_width": self.look.line_width,
                          "alpha": 0.75 if stage == "Prior" else 0.95}
                         if lit else {"color": self.look.muted_colour,
                                      "line_width": max(1.0, self.look.line_width / 2),
                                      "alpha": 0.45})
                layers.append(self.styled.element(
                    hv.Curve, data, *kdims, label=f"{model} {stage.lower()}",
                    line_dash="dashed" if stage == "Prior" else "solid", **style))
        return layers

    def timeseries(self, site: str, variable: str, scenario: int, models: list[str],
                   window: str = "recent") -> hv.Overlay:
        """Observations and the highlighted models' prior (dashed) and posterior (solid).

        The other models' posteriors are drawn muted. Observations carry their 95 % band
        (± 1.96 σ_O). Highlighted posteriors carry their 95 % band (posterior uncertainty or
        the ensemble's predictive interval) when at most :data:`MAX_BANDS` are highlighted, so
        that the bands stay readable. ``window="recent"`` opens on the last two years of the
        record (zoom out or choose the whole record for all of it), ``"all"`` on everything.
        Time is drawn as epoch milliseconds with a datetime axis (HoloViews converts datetimes
        point by point in some paths); the colour key above the plots replaces legends.
        """
        data = self.series(site, variable, scenario, models)
        all_models = self.service.model_ids()
        ylabel = f"{variable} ({data.units})" if data.units else variable
        vdim = hv.Dimension(variable, label=ylabel)
        tdim = hv.Dimension("time", label="date")
        drawing = data.drawing
        highlighted = self.highlighted(models)
        empty = np.empty(0, dtype="float32")
        # The observation uncertainty is one shaded band: far cheaper to draw than an error
        # bar per day, and it reads as the envelope it is.
        layers: list[hv.Element] = [
            self.styled.element(hv.Area, drawing.obs_band, tdim, [vdim, "obs_upper"],
                          label="observation uncertainty", color=self.look.obs_colour,
                          alpha=0.15, line_alpha=0)]
        # A fixed number of band slots (coloured per frame) keeps the plot's structure fixed.
        banded = ([m for m in drawing.banded if m in highlighted]
                  if len(highlighted) <= MAX_BANDS else [])
        for slot in range(MAX_BANDS):
            model = banded[slot] if slot < len(banded) else None
            data_ = ((drawing.runs[(model, "Posterior")][0],
                      *drawing.runs[(model, "Posterior")][2:]) if model is not None
                     else (empty, empty, empty))
            colour = model_colour(model, all_models) if model else self.look.obs_colour
            layers.append(self.styled.element(hv.Area, data_, tdim, [vdim, "upper"],
                                        label="posterior band", color=colour, alpha=0.18,
                                        line_alpha=0))
        curves = {key: arrays[:2] for key, arrays in drawing.runs.items()}
        layers += self._model_curves(curves, [tdim, vdim], highlighted)
        layers.append(self.styled.element(
            hv.Scatter, drawing.obs, tdim, vdim, label="observations",
            color=self.look.obs_colour, size=3 * self.look.fontscale, tools=["hover"],
            hover_tooltips=[("date", "@time{%F}"), (variable, f"@{{{variable}}}")],
            hover_formatters={"@time": "datetime"}))
        if variable not in SITE_VARIABLES:
            n_note = " — models only (not observed at flux towers)"
        elif data.n_days:
            n_note = f" — {data.n_obs_valid} valid observed days of {data.n_days}"
        else:
            n_note = " — no observations"
        title = f"{site} {variable}{n_note}"
        self._windows[title] = _time_window(drawing, window)
        return self.styled.overlay(layers, title, responsive=True, height=230,
                                   show_legend=False, fontscale=self.look.fontscale,
                                   framewise=True, bgcolor=self.look.bg, xlabel="",
                                   tools=["xwheel_zoom"], xformatter=self._dates,
                                   xticks=self._ticks,
                                   hooks=[self._window_hook])

    def _apply_window(self, plot, element: hv.Overlay) -> None:
        """Show the frame's time window (a hook run on every frame).

        HoloViews reads plot options such as ``xlim`` once, on the first frame, so a window
        chosen later is applied to the time axis here. Zooming and panning stay the user's.
        """
        start, end = self._windows.get(element.label, (None, None))
        if start is not None:
            plot.handles["x_range"].update(start=start, end=end)

    def seasonal_cycle(self, site: str, variable: str, scenario: int, models: list[str]
                       ) -> hv.Overlay:
        """Mean seasonal cycle (by month) on the days with valid observations.

        Without observations each run's cycle uses all its days.
        """
        data = self.series(site, variable, scenario, models)
        vdim = hv.Dimension(variable, label=f"{variable} ({data.units})")
        months = MONTHS.astype(float)
        aligned = data.on_obs_days
        observed = np.isfinite(aligned.obs)
        # The axis says which days the means use (the title stays short for narrow plots).
        mdim = hv.Dimension("month", label="month (days with observations)" if observed.any()
                            else "month (all days)")
        curves: dict[tuple[str, str], tuple[np.ndarray, np.ndarray]] = {}
        obs_cycle = (np.empty(0), np.empty(0))
        if observed.any():
            obs_cycle = (months, monthly_means(aligned.obs, aligned.month)[0])
            for key, values in aligned.runs.items():
                curves[key] = (months, monthly_means(np.where(observed, values, np.nan),
                                                     aligned.month)[0])
        else:
            for key, frame in data.by_run.items():
                month = np.asarray(pd.DatetimeIndex(frame["time"]).month)
                curves[key] = (months,
                               monthly_means(frame["value"].to_numpy(dtype=float), month)[0])
        layers: list[hv.Element] = [
            self.styled.element(hv.Curve, obs_cycle, mdim, vdim, label="observations",
                          color=self.look.obs_colour, line_width=self.look.line_width + 1.5)]
        layers += self._model_curves(curves, [mdim, vdim], self.highlighted(models))
        title = "Seasonal cycle"
        return self.styled.overlay(layers, title, responsive=True, height=300,
                             show_legend=False, xticks=list(range(1, 13)), framewise=True,
                             shared_axes=False, fontscale=self.look.fontscale,
                             bgcolor=self.look.bg)

    def scatter(self, site: str, variable: str, scenario: int, models: list[str]) -> hv.Overlay:
        """Model against observation on matching days, with the 1:1 line.

        Open markers: priors; filled: posteriors; colour: model (``model_code`` is the model's
        index in the archive's model list).
        """
        data = self.series(site, variable, scenario, models)
        aligned = data.on_obs_days
        all_models = self.service.model_ids()
        xd = hv.Dimension("obs", label=f"observed {variable} ({data.units})")
        yd = hv.Dimension("model", label=f"modelled {variable} ({data.units})")
        parts: dict[str, list[np.ndarray]] = {"Prior": [], "Posterior": []}
        lo, hi = np.inf, -np.inf
        highlighted = self.highlighted(models)
        for (model, stage), values in aligned.runs.items():
            if model not in highlighted:
                continue
            both = np.isfinite(aligned.obs) & np.isfinite(values)
            if not both.any():
                continue
            x, y = aligned.obs[both], values[both]
            code = np.full(len(x), float(all_models.index(model)))
            parts["Prior" if stage == "Prior" else "Posterior"].append(
                np.column_stack([x, y, code]))
            lo = min(lo, float(x.min()), float(y.min()))
            hi = max(hi, float(x.max()), float(y.max()))
        line = ([lo, hi], [lo, hi]) if np.isfinite(lo) else (np.empty(0), np.empty(0))
        layers: list[hv.Element] = [self.styled.element(hv.Curve, line, xd, yd, color="grey",
                                                  line_dash="dotted")]
        for stage, fill, line_alpha in (("Prior", 0.0, 0.8), ("Posterior", 0.6, 0.0)):
            stacked = (np.vstack(parts[stage]).astype("float32") if parts[stage]
                       else np.empty((0, 3), dtype="float32"))
            layers.append(self.styled.element(
                hv.Scatter, stacked, xd, [yd, "model_code"], label=stage.lower(),
                size=3 * self.look.fontscale, fill_alpha=fill, line_alpha=line_alpha,
                **self._model_style()))
        if variable not in SITE_VARIABLES:
            title = f"Model vs obs: {variable} not observed"
        elif np.isfinite(lo):
            title = "Model vs observations"
        else:
            title = "Model vs obs: no shared days"
        return self.styled.overlay(layers, title, responsive=True, height=300, show_legend=False,
                             framewise=True, shared_axes=False, fontscale=self.look.fontscale,
                             bgcolor=self.look.bg)

    def taylor_frame(self, site: str, variable: str, scenario: int, models: list[str]
                     ) -> pd.DataFrame:
        """Normalised SD, correlation and coordinates per (model, stage), highlighted models."""
        frame = queries.taylor_frame(self.service, site, variable, scenario, [])
        return frame[frame["model"].isin(self.highlighted(models))].reset_index(drop=True)

    def taylor(self, site: str, variable: str, scenario: int, models: list[str]) -> hv.Overlay:
        """Taylor diagram: normalised SD (radius) and correlation (angle).

        An arrow per model runs from its prior (open marker) to its posterior (filled).
        """
        frame = self.taylor_frame(site, variable, scenario, models)
        all_models = self.service.model_ids()
        frame = frame.assign(model_code=[float(all_models.index(m)) for m in frame["model"]])
        rmax = max(1.5, float(frame["sd"].max()) * 1.1 if not frame.empty else 1.5)
        rmax = 2.0 if rmax <= 2.0 else float(np.ceil(rmax))  # stable axes while browsing
        theta = np.linspace(0, np.pi / 2, 60)
        grid = [np.column_stack([r * np.cos(theta), r * np.sin(theta)])
                for r in np.arange(0.5, rmax + 0.01, 0.5)]
        corrs = (0.2, 0.4, 0.6, 0.8, 0.9, 0.95, 0.99)
        grid += [np.array([[0, 0], [rmax * c, rmax * np.sin(np.arccos(c))]]) for c in corrs]
        layers: list[hv.Element] = [
            # The grid as one line broken by NaN rows: HoloViews splits a multi-part Path at
            # ~5 ms a part on every update.
            self.styled.element(hv.Curve, tuple(np.concatenate(
                [np.vstack([g, [[np.nan, np.nan]]]) for g in grid]).T), "x", "y",
                color="#c8c8c8", line_width=0.7),
            self.styled.element(hv.Curve, (np.cos(theta), np.sin(theta)), "x", "y",
                          color="#888888", line_width=1.2),
            self.styled.element(hv.Labels, {"x": [rmax * 1.03 * c for c in corrs],
                                      "y": [rmax * 1.03 * np.sin(np.arccos(c)) for c in corrs],
                                      "text": [str(c) for c in corrs]}, ["x", "y"], "text",
                          text_font_size=f"{int(8 * self.look.fontscale)}pt",
                          text_color="#888888"),
            self.styled.element(hv.Scatter, ([1.0], [0.0]), "x", "y", color=self.look.obs_colour,
                          marker="star", size=14 * self.look.fontscale),
        ]
        arrows = []
        for model, group in frame.groupby("model", sort=True):
            prior = group[group["stage"] == "Prior"]
            post = group[group["stage"] != "Prior"]
            if not prior.empty and not post.empty:
                code = float(all_models.index(model))
                arrows += [(*segment, code) for segment in _arrow_segments(
                    *prior.iloc[0][["x", "y"]], *post.iloc[0][["x", "y"]])]
        layers.append(self.styled.element(hv.Segments, arrows, ["x0", "y0", "x1", "y1"],
                                    ["model_code"], line_width=self.look.line_width,
                                    **self._model_style()))
        columns = ["x", "y", "model", "r", "sd", "n", "model_code"]
        for stage, fill in (("Prior", 0.0), ("Posterior", 1.0)):
            part = frame[(frame["stage"] == "Prior") == (stage == "Prior")][columns]
            layers.append(self.styled.element(
                hv.Scatter, part, "x", columns[1:], label=stage.lower(), fill_alpha=fill,
                line_width=2, size=10 * self.look.fontscale, tools=["hover"],
                hover_tooltips=[("model", "@model"), ("r", "@r{0.00}"), ("SD ratio", "@sd{0.00}"),
                                ("n", "@n")], **self._model_style()))
        # Short titles: the diagrams share a row; the key above the plots explains the arrows.
        title = f"Taylor diagram ({variable})"
        if variable not in SITE_VARIABLES:
            title += ": needs observations"
        elif frame.empty:
            title += ": too few days"
        return self.styled.overlay(layers, title, xlim=(0, rmax * 1.08), ylim=(0, rmax * 1.08),
                             frame_width=int(300 * self.look.fontscale),
                             frame_height=int(300 * self.look.fontscale), show_legend=False,
                             shared_axes=False, framewise=True,
                             xlabel="normalised SD × cos(angle)", ylabel="normalised SD × sin",
                             fontscale=self.look.fontscale, bgcolor=self.look.bg)


def _arrow_segments(x0: float, y0: float, x1: float, y1: float
                    ) -> list[tuple[float, float, float, float]]:
    """Segments of an arrow from (x0, y0) to (x1, y1): the shaft and a two-stroke head."""
    dx, dy = x1 - x0, y1 - y0
    length = float(np.hypot(dx, dy))
    segments = [(x0, y0, x1, y1)]
    if length < 1e-9:
        return segments
    ux, uy = dx / length, dy / length
    head = min(0.06, 0.4 * length)
    for sign in (1, -1):
        cos, sin = np.cos(np.radians(25)), sign * np.sin(np.radians(25))
        segments.append((x1, y1, x1 - (ux * cos - uy * sin) * head,
                         y1 - (ux * sin + uy * cos) * head))
    return segments


#: Days shown when a time series opens on the recent part of its record.
RECENT_DAYS = 730


def _time_window(drawing, window: str) -> tuple[float, float] | tuple[None, None]:
    """Time limits (epoch ms) of the last :data:`RECENT_DAYS` of the record, or the whole of it."""
    times = [drawing.obs[0]] + [arrays[0] for arrays in drawing.runs.values()]
    times = [t for t in times if len(t)]
    if not times:
        return (None, None)
    start = float(min(t[0] for t in times))
    end = float(max(t[-1] for t in times))
    day = 86_400_000.0
    if window == "recent":
        start = max(start, end - RECENT_DAYS * day)
    return (start - day, end + day)
