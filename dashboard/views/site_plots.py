"""What the site plots draw: time series, seasonal cycle, scatter and Taylor diagram of one site.

Each method of :class:`SitePlots` is a pure function of (site, variable, scenario, models)
returning a :class:`Plot`: the lines, bands and markers to draw, with their labels, colours
and axis ranges, as plain arrays. Nothing here opens a file (the data come from the query
layer) or builds a plot object: :mod:`dashboard.views.site_figures` draws a :class:`Plot` with
Bokeh and updates the same figure in place when the selection changes.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
import pandas as pd

from dashboard import queries
from dashboard.metrics.diagrams import MONTHS, monthly_means
from dashboard.service import DataService
from dashboard.sitedata import SiteSeries
from dashboard.state import SITE_VARIABLES
from dashboard.views.style import Look, model_colour

#: Posterior bands are drawn when at most this many models are shown.
MAX_BANDS = 3

#: Days shown when a time series opens on the recent part of its record.
RECENT_DAYS = 730

_EMPTY = np.empty(0, dtype="float32")


@dataclass(frozen=True)
class Line:
    """One line: ``y`` against ``x``, with its style."""

    label: str
    x: np.ndarray
    y: np.ndarray
    colour: str
    dash: str = "solid"
    width: float = 1.0
    alpha: float = 1.0


@dataclass(frozen=True)
class Band:
    """A shaded band between ``lower`` and ``upper`` along ``x``."""

    label: str
    x: np.ndarray
    lower: np.ndarray
    upper: np.ndarray
    colour: str
    alpha: float


@dataclass(frozen=True)
class Markers:
    """Markers coloured by model: ``code`` is each point's index in the archive's model list.

    ``fill_alpha`` 0 draws open markers (priors), 1 filled ones (posteriors). ``extra`` holds
    columns shown on hover (model name, r, …).
    """

    label: str
    x: np.ndarray
    y: np.ndarray
    code: np.ndarray
    fill_alpha: float
    line_alpha: float = 1.0
    extra: dict[str, np.ndarray] = field(default_factory=dict)


@dataclass(frozen=True)
class Plot:
    """Everything one site plot shows.

    Attributes
    ----------
    title, xlabel, ylabel : str
        Texts of the plot (file text is never put here unescaped into HTML: Bokeh draws
        these on a canvas).
    lines, bands, markers : tuple
        What is drawn, in drawing order within each kind (bands under lines under markers).
    points : tuple of numpy.ndarray
        ``(x, y)`` of the observations (time series) or the observation's reference point
        (Taylor diagram).
    segments : tuple of numpy.ndarray
        ``(x0, y0, x1, y1, code)`` of the Taylor diagram's arrows.
    texts : tuple
        ``(x, y, text)`` labels (the Taylor diagram's correlations).
    x_range, y_range : tuple of float or None
        The axis limits the plot opens on; ``None`` for the time axis of a series without
        data.
    palette : tuple of str
        Colour of each model code (the archive's models in order).
    """

    title: str
    xlabel: str
    ylabel: str
    lines: tuple[Line, ...] = ()
    bands: tuple[Band, ...] = ()
    markers: tuple[Markers, ...] = ()
    points: tuple[np.ndarray, np.ndarray] = (_EMPTY, _EMPTY)
    segments: tuple[np.ndarray, ...] = (_EMPTY,) * 5
    texts: tuple[list[float], list[float], list[str]] = ([], [], [])
    x_range: tuple[float, float] | None = None
    y_range: tuple[float, float] | None = None
    palette: tuple[str, ...] = ()

    def line(self, label: str) -> Line | None:
        """The line called ``label``, or ``None``."""
        return next((line for line in self.lines if line.label == label), None)

    def band(self, label: str) -> Band | None:
        """The band called ``label``, or ``None``."""
        return next((band for band in self.bands if band.label == label), None)


class SitePlots:
    """Builds what the Sites view's plots show, for one session's look.

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

    def series(self, site: str, variable: str, scenario: int, models: list[str]) -> SiteSeries:
        """The tidy series of a site, every model (shared by every session)."""
        return queries.site_series(self.service, site, variable, scenario, [])

    def highlighted(self, models: list[str]) -> list[str]:
        """The models drawn in colour (:func:`queries.highlighted_models`); others are muted."""
        return queries.highlighted_models(self.service, models)

    def palette(self) -> tuple[str, ...]:
        """The colour of every archive model, by its index in the model list."""
        all_models = self.service.model_ids()
        return tuple(model_colour(m, all_models) for m in all_models) or ("#000000",)

    def _model_lines(self, curves: dict[tuple[str, str], tuple[np.ndarray, np.ndarray]],
                     highlighted: list[str]) -> list[Line]:
        """The model lines of a plot, the muted ones first (drawn underneath).

        Highlighted models: dashed prior and solid posterior in the model's colour. The others:
        their posterior as a thin muted line (context, not spaghetti), no prior.
        """
        all_models = self.service.model_ids()
        order = ([m for m in all_models if m not in highlighted]
                 + [m for m in all_models if m in highlighted])
        lines = []
        for stage in ("Prior", "Posterior"):
            for model in order:
                lit = model in highlighted
                data = curves.get((model, stage))
                if data is None or not len(data[0]) or not (lit or stage != "Prior"):
                    continue
                lines.append(Line(
                    label=f"{model} {stage.lower()}", x=data[0], y=data[1],
                    colour=model_colour(model, all_models) if lit else self.look.muted_colour,
                    dash="dashed" if stage == "Prior" else "solid",
                    width=(self.look.line_width if lit
                           else max(1.0, self.look.line_width / 2)),
                    alpha=(0.75 if stage == "Prior" else 0.95) if lit else 0.45))
        return lines

    def timeseries(self, site: str, variable: str, scenario: int, models: list[str],
                   window: str = "recent") -> Plot:
        """Observations and the highlighted models' prior (dashed) and posterior (solid).

        The other models' posteriors are drawn muted. Observations carry their 95 % band
        (± 1.96 σ_O). Highlighted posteriors carry their 95 % band (posterior uncertainty or
        the ensemble's predictive interval) when at most :data:`MAX_BANDS` are highlighted, so
        that the bands stay readable. ``window="recent"`` opens on the last two years of the
        record (zoom out or choose the whole record for all of it), ``"all"`` on everything.
        Time is in epoch milliseconds (a datetime axis); the colour key above the plots
        replaces legends.
        """
        data = self.series(site, variable, scenario, models)
        all_models = self.service.model_ids()
        drawing = data.drawing
        highlighted = self.highlighted(models)
        # The observation uncertainty is one shaded band: far cheaper to draw than an error
        # bar per day, and it reads as the envelope it is.
        bands = [Band("observation uncertainty", *drawing.obs_band, colour=self.look.obs_colour,
                      alpha=0.15)]
        banded = ([m for m in drawing.banded if m in highlighted]
                  if len(highlighted) <= MAX_BANDS else [])
        for model in banded:
            time, _, lower, upper = drawing.runs[(model, "Posterior")]
            bands.append(Band(f"{model} posterior band", time, lower, upper,
                              colour=model_colour(model, all_models), alpha=0.18))
        bands = [b for b in bands if len(b.x)]
        lines = self._model_lines({key: arrays[:2] for key, arrays in drawing.runs.items()},
                                  highlighted)
        if variable not in SITE_VARIABLES:
            n_note = " — models only (not observed at flux towers)"
        elif data.n_days:
            n_note = f" — {data.n_obs_valid} valid observed days of {data.n_days}"
        else:
            n_note = " — no observations"
        return Plot(
            title=f"{site} {variable}{n_note}", xlabel="",
            ylabel=f"{variable} ({data.units})" if data.units else variable,
            lines=tuple(lines), bands=tuple(bands), points=drawing.obs,
            x_range=_time_window(drawing, window),
            y_range=_value_range([line.y for line in lines] + [drawing.obs[1]]
                                 + [b.lower for b in bands] + [b.upper for b in bands]),
            palette=self.palette())

    def seasonal_cycle(self, site: str, variable: str, scenario: int, models: list[str]
                       ) -> Plot:
        """Mean seasonal cycle (by month) on the days with valid observations.

        Without observations each run's cycle uses all its days.
        """
        data = self.series(site, variable, scenario, models)
        months = MONTHS.astype(float)
        aligned = data.on_obs_days
        observed = np.isfinite(aligned.obs)
        curves: dict[tuple[str, str], tuple[np.ndarray, np.ndarray]] = {}
        lines: list[Line] = []
        if observed.any():
            lines.append(Line("observations", months,
                              monthly_means(aligned.obs, aligned.month)[0],
                              colour=self.look.obs_colour, width=self.look.line_width + 1.5))
            for key, values in aligned.runs.items():
                curves[key] = (months, monthly_means(np.where(observed, values, np.nan),
                                                     aligned.month)[0])
        else:
            for key, frame in data.by_run.items():
                month = np.asarray(pd.DatetimeIndex(frame["time"]).month)
                curves[key] = (months,
                               monthly_means(frame["value"].to_numpy(dtype=float), month)[0])
        lines += self._model_lines(curves, self.highlighted(models))
        # The axis says which days the means use (the title stays short for narrow plots).
        return Plot(
            title="Seasonal cycle",
            xlabel=("month (days with observations)" if observed.any()
                    else "month (all days)"),
            ylabel=f"{variable} ({data.units})", lines=tuple(lines), x_range=(0.5, 12.5),
            y_range=_value_range([line.y for line in lines]), palette=self.palette())

    def scatter(self, site: str, variable: str, scenario: int, models: list[str]) -> Plot:
        """Model against observation on matching days, with the 1:1 line.

        Open markers: priors; filled: posteriors; colour: model (``code`` is the model's
        index in the archive's model list).
        """
        data = self.series(site, variable, scenario, models)
        aligned = data.on_obs_days
        all_models = self.service.model_ids()
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
        markers = []
        for stage, fill, line_alpha in (("Prior", 0.0, 0.8), ("Posterior", 0.6, 0.0)):
            if parts[stage]:
                stacked = np.vstack(parts[stage]).astype("float32")
                markers.append(Markers(stage.lower(), stacked[:, 0], stacked[:, 1],
                                       stacked[:, 2], fill_alpha=fill, line_alpha=line_alpha))
        lines = ((Line("1:1", np.array([lo, hi]), np.array([lo, hi]), colour="grey",
                       dash="dotted"),) if np.isfinite(lo) else ())
        if variable not in SITE_VARIABLES:
            title = f"Model vs obs: {variable} not observed"
        elif np.isfinite(lo):
            title = "Model vs observations"
        else:
            title = "Model vs obs: no shared days"
        limits = _padded(lo, hi) if np.isfinite(lo) else (0.0, 1.0)
        return Plot(title=title, xlabel=f"observed {variable} ({data.units})",
                    ylabel=f"modelled {variable} ({data.units})", lines=lines,
                    markers=tuple(markers), x_range=limits, y_range=limits,
                    palette=self.palette())

    def taylor_frame(self, site: str, variable: str, scenario: int, models: list[str]
                     ) -> pd.DataFrame:
        """Normalised SD, correlation and coordinates per (model, stage), highlighted models."""
        frame = queries.taylor_frame(self.service, site, variable, scenario, [])
        return frame[frame["model"].isin(self.highlighted(models))].reset_index(drop=True)

    def taylor(self, site: str, variable: str, scenario: int, models: list[str]) -> Plot:
        """Taylor diagram: normalised SD (radius) and correlation (angle).

        An arrow per model runs from its prior (open marker) to its posterior (filled).
        """
        frame = self.taylor_frame(site, variable, scenario, models)
        all_models = self.service.model_ids()
        frame = frame.assign(code=[float(all_models.index(m)) for m in frame["model"]])
        rmax = max(1.5, float(frame["sd"].max()) * 1.1 if not frame.empty else 1.5)
        rmax = 2.0 if rmax <= 2.0 else float(np.ceil(rmax))  # stable axes while browsing
        theta = np.linspace(0, np.pi / 2, 60)
        grid = [np.column_stack([r * np.cos(theta), r * np.sin(theta)])
                for r in np.arange(0.5, rmax + 0.01, 0.5)]
        corrs = (0.2, 0.4, 0.6, 0.8, 0.9, 0.95, 0.99)
        grid += [np.array([[0, 0], [rmax * c, rmax * np.sin(np.arccos(c))]]) for c in corrs]
        # The grid as one line broken by NaN rows (one glyph to draw).
        grid_xy = np.concatenate([np.vstack([g, [[np.nan, np.nan]]]) for g in grid]).T
        lines = (Line("grid", grid_xy[0], grid_xy[1], colour="#c8c8c8", width=0.7),
                 Line("observed SD", np.cos(theta), np.sin(theta), colour="#888888",
                      width=1.2))
        arrows = []
        for model, group in frame.groupby("model", sort=True):
            prior = group[group["stage"] == "Prior"]
            post = group[group["stage"] != "Prior"]
            if not prior.empty and not post.empty:
                code = float(all_models.index(model))
                arrows += [(*segment, code) for segment in _arrow_segments(
                    *prior.iloc[0][["x", "y"]], *post.iloc[0][["x", "y"]])]
        segments = (tuple(np.asarray(column, dtype="float64")
                          for column in zip(*arrows, strict=True)) if arrows else (_EMPTY,) * 5)
        markers = []
        for stage, fill in (("Prior", 0.0), ("Posterior", 1.0)):
            part = frame[(frame["stage"] == "Prior") == (stage == "Prior")]
            if not part.empty:
                markers.append(Markers(
                    stage.lower(), part["x"].to_numpy(float), part["y"].to_numpy(float),
                    part["code"].to_numpy(float), fill_alpha=fill,
                    extra={"model": part["model"].to_numpy(str),
                           "r": part["r"].to_numpy(float), "sd": part["sd"].to_numpy(float),
                           "n": part["n"].to_numpy(int)}))
        # Short titles: the diagrams share a row; the key above the plots explains the arrows.
        title = f"Taylor diagram ({variable})"
        if variable not in SITE_VARIABLES:
            title += ": needs observations"
        elif frame.empty:
            title += ": too few days"
        return Plot(
            title=title, xlabel="normalised SD × cos(angle)", ylabel="normalised SD × sin",
            lines=lines, markers=tuple(markers),
            points=(np.array([1.0]), np.array([0.0])), segments=segments,
            texts=([rmax * 1.03 * c for c in corrs],
                   [rmax * 1.03 * float(np.sin(np.arccos(c))) for c in corrs],
                   [str(c) for c in corrs]),
            x_range=(0.0, rmax * 1.08), y_range=(0.0, rmax * 1.08), palette=self.palette())


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


def _padded(lo: float, hi: float, fraction: float = 0.05) -> tuple[float, float]:
    """``(lo, hi)`` widened by ``fraction`` of their span on each side (1 when they are equal)."""
    pad = (hi - lo) * fraction if hi > lo else max(abs(lo), 1.0) * fraction
    return (lo - pad, hi + pad)


def _value_range(arrays: list[np.ndarray]) -> tuple[float, float]:
    """The padded range of every finite value of ``arrays``; ``(0, 1)`` without any."""
    finite = [a[np.isfinite(a)] for a in arrays if len(a)]
    finite = [a for a in finite if len(a)]
    if not finite:
        return (0.0, 1.0)
    return _padded(float(min(a.min() for a in finite)), float(max(a.max() for a in finite)))


def _time_window(drawing, window: str) -> tuple[float, float] | None:
    """Time limits (epoch ms) of the last :data:`RECENT_DAYS` of the record, or the whole of it."""
    times = [drawing.obs[0]] + [arrays[0] for arrays in drawing.runs.values()]
    times = [t for t in times if len(t)]
    if not times:
        return None
    start = float(min(t[0] for t in times))
    end = float(max(t[-1] for t in times))
    day = 86_400_000.0
    if window == "recent":
        start = max(start, end - RECENT_DAYS * day)
    return (start - day, end + day)
