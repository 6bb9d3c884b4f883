"""Sites: a map of the sites coloured by a metric, and the selected site's series and diagrams.

Linked views: clicking a site on the map sets ``selection.site`` (and the URL); the time series of
NEE, Qle and Qh share their time axis; the seasonal cycle, scatter and Taylor diagram follow the
selected variable. Every plot is a pure function of the selection, built by the methods below, so
tests can inspect the HoloViews objects without a browser.
"""

from __future__ import annotations

from functools import partial

import holoviews as hv
import numpy as np
import pandas as pd
import panel as pn
import param
from bokeh.models import DatetimeTickFormatter

from dashboard.context import ArchiveContext
from dashboard.sitedata import SiteSeries
from dashboard.state import METRICS, SITE_VARIABLES, Selection
from dashboard.views.style import (
    DIVERGING,
    SEQUENTIAL,
    Look,
    escape,
    for_holoviews,
    model_colour,
    safe_message,
)

#: Metrics whose map colours diverge around 0 (reductions).
REDUCTION_METRICS = ("spread_reduction", "misfit_reduction", "misfit_reduction_chi2")
MIN_N_DEFAULT = 30
#: Posterior bands are drawn when at most this many models are shown.
MAX_BANDS = 3


def _min_n() -> int:
    try:
        from dashboard.metrics.tables import DEFAULT_MIN_N
    except ImportError:  # pragma: no cover - metrics package always present when installed
        return MIN_N_DEFAULT
    return DEFAULT_MIN_N


class SitesView(pn.viewable.Viewer):
    """The Sites view: map, site card, time series, seasonal cycle, scatter, Taylor diagram."""

    selection = param.ClassSelector(class_=Selection)
    context = param.ClassSelector(class_=ArchiveContext)
    look = param.ClassSelector(class_=Look, default=Look())

    def __init__(self, **params):
        super().__init__(**params)
        self._points_dmap = hv.DynamicMap(pn.bind(
            self.site_points, metric=self.selection.param.metric,
            variable=self.selection.param.variable, scenario=self.selection.param.scenario,
            stage=self.selection.param.stage, models=self.selection.param.models))
        self._tap = hv.streams.Selection1D(source=self._points_dmap)
        self._tap.param.watch(self._on_tap, "index")

    # ---------------------------------------------------------------- data
    def models(self) -> list[str]:
        """Models shown: the selection's, or all of the archive's."""
        return self.selection.shown_models(self.context.model_ids())

    def site_metric_frame(self, metric: str, variable: str, scenario: int, stage: str,
                          models: list[str]) -> pd.DataFrame:
        """One row per site: coordinates, role, IGBP, and the map value with its n.

        Per-model metrics (misfit reduction, χ², RMSE) are summarised across the shown models by
        their median; spread reduction is already a statistic across models.
        """
        sites = self.context.sites
        frame = pd.DataFrame({
            "site": sites["site_id"].values, "name": sites["name"].values,
            "lon": sites["lon"].values.astype(float), "lat": sites["lat"].values.astype(float),
            "role": sites["role"].values, "igbp": sites["igbp"].values,
        })
        shown = self.selection.shown_models(self.context.model_ids()) if not models else models
        value = pd.Series(np.nan, index=frame["site"])
        count = pd.Series(0, index=frame["site"], dtype="int64")
        if metric == "spread_reduction":
            table = self.context.table("spread")
            if not table.empty:
                t = table[(table["scenario"] == scenario) & (table["variable"] == variable)]
                if "stage" in t:  # v1 temporal-validation runs cover another period
                    t = t[t["stage"] != "Temporal"]
                t = t.groupby("site").first()
                ok = ~t["insufficient"].astype(bool)
                value.update(t.loc[ok, "spread_reduction"])
                count.update(t["n_models"].astype("int64"))
        else:
            name = "misfit_reduction" if metric.startswith("misfit") else "site_scores"
            table = self.context.table(name)
            if not table.empty:
                t = table[(table["scenario"] == scenario) & (table["variable"] == variable)]
                t = t[(t["model"] + "." + t["version"]).isin(shown)]
                if name == "site_scores":
                    t = t[t["stage"] == stage]
                t = t[~t["insufficient"].astype(bool)]
                grouped = t.groupby("site")
                value.update(grouped[metric].median())
                count.update(grouped[metric].count().astype("int64"))
        frame["value"] = value.reindex(frame["site"]).values
        frame["n_models"] = count.reindex(frame["site"]).fillna(0).astype(int).values
        frame["label"] = [
            "insufficient data" if np.isnan(v) else f"{v:.2f}" for v in frame["value"]
        ]
        return frame.sort_values("site", ignore_index=True)

    # ---------------------------------------------------------------- plots
    def site_points(self, metric: str, variable: str, scenario: int, stage: str,
                    models: list[str]) -> hv.Points:
        """Site markers coloured by ``metric`` (circles: calibration, triangles: validation)."""
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
        points = hv.Points(for_holoviews(frame), kdims=["lon", "lat"],
                           vdims=["value", "site", "name", "role", "igbp", "n_models", "label"])
        hover = [("site", "@site (@name)"), ("type", "@igbp, @role"),
                 (METRICS[metric].split(" (")[0], "@label"), ("models", "@n_models")]
        return points.opts(
            color="value", cmap=cmap, clim=clim, colorbar=True, clipping_colors={"NaN": "#bbbbbb"},
            marker=hv.dim("role").categorize({"Cal": "circle", "Val": "triangle"}, "square"),
            size=11 * self.look.fontscale, line_color=self.look.fg, line_width=0.8,
            tools=["tap", "hover"], hover_tooltips=hover, nonselection_alpha=0.9,
            selection_line_color="#ff00aa", selection_line_width=3,
            colorbar_opts={"title": METRICS[metric].split(" (")[0]},
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
        sites = self.context.sites
        row = sites[sites["site_id"] == site]
        data = row[["lon", "lat"]].astype(float).to_numpy() if not row.empty else np.empty((0, 2))
        return hv.Points(data, kdims=["lon", "lat"]).opts(
            marker="circle", size=24 * self.look.fontscale, fill_alpha=0,
            line_color="#ff00aa", line_width=3)

    def site_map(self) -> hv.Overlay:
        """Land outline, site markers (tap to select) and the selected-site ring."""
        ring = hv.DynamicMap(pn.bind(self.selected_marker, site=self.selection.param.site))
        title = "Sites — click a site to select it (○ calibration, △ validation)"
        return (self.land() * self._points_dmap * ring).opts(
            hv.opts.Overlay(title=title, xlim=(-180, 180), ylim=(-60, 80), data_aspect=1,
                            responsive=True, min_height=300, xlabel="longitude",
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

    def series(self, site: str, variable: str, scenario: int, models: list[str]) -> SiteSeries:
        """The tidy series of a site (cached per archive by the archive's file cache)."""
        shown = self.selection.shown_models(self.context.model_ids()) if not models else models
        return self.context.site_series(site, variable, scenario, tuple(shown))

    def timeseries(self, site: str, variable: str, scenario: int, models: list[str]
                   ) -> hv.Overlay:
        """Observations and each model's prior (dashed) and posterior (solid).

        Observations carry 95 % error bars (± 1.96 σ_O). Posteriors carry their 95 % band
        (posterior uncertainty or ensemble range) when at most :data:`MAX_BANDS` models are
        shown, so that the bands stay readable. Time is drawn as epoch milliseconds with a
        datetime axis (HoloViews converts datetimes point by point in some paths); the colour
        key above the plots replaces per-plot legends.
        """
        data = self.series(site, variable, scenario, models)
        all_models = self.context.model_ids()
        lw = self.look.line_width
        ylabel = f"{variable} ({data.units})" if data.units else variable
        vdim = hv.Dimension(variable, label=ylabel)
        runs = data.runs
        shown = sorted(runs["model"].unique()) if not runs.empty else []
        frames = dict(iter(runs.groupby(["model", "stage"]))) if not runs.empty else {}
        tdim = hv.Dimension("time", label="date")
        empty = np.empty(0)
        # A fixed structure (one layer per archive model and stage, empty when not shown) lets a
        # DynamicMap patch the data in place instead of rebuilding the plot.
        layers: list[hv.Element] = []
        for model in all_models:
            frame = frames.get((model, "Posterior"))
            band = (frame is not None and 0 < len(shown) <= MAX_BANDS
                    and frame["lower"].notna().any())
            data_ = ((_epoch_ms(frame["time"]), frame["lower"].to_numpy(),
                      frame["upper"].to_numpy()) if band else (empty, empty, empty))
            layers.append(hv.Area(data_, tdim, [vdim, "upper"]).opts(
                color=model_colour(model, all_models), alpha=0.18, line_alpha=0))
        for stage, dash, alpha in (("Prior", "dashed", 0.6), ("Posterior", "solid", 0.95)):
            for model in all_models:
                frame = frames.get((model, stage))
                data_ = ((_epoch_ms(frame["time"]), frame["value"].to_numpy())
                         if frame is not None else (empty, empty))
                layers.append(hv.Curve(data_, tdim, vdim, label=f"{model} {stage.lower()}").opts(
                    color=model_colour(model, all_models), line_dash=dash, line_width=lw,
                    alpha=alpha))
        obs = data.obs.dropna(subset=["value"]) if not data.obs.empty else data.obs
        t_obs = _epoch_ms(obs["time"]) if not obs.empty else empty
        values = obs["value"].to_numpy() if not obs.empty else empty
        err = 1.96 * obs["unc"].to_numpy() if not obs.empty else empty
        layers.append(hv.ErrorBars((t_obs, values, err), tdim, [vdim, "err"]).opts(
            color=self.look.obs_colour, alpha=0.35, line_width=1))
        layers.append(hv.Scatter((t_obs, values), tdim, vdim, label="observations").opts(
            color=self.look.obs_colour, size=3 * self.look.fontscale, tools=["hover"],
            hover_tooltips=[("date", "@time{%F}"), (variable, f"@{{{variable}}}")],
            hover_formatters={"@time": "datetime"}))
        n_note = (f" — {data.n_obs_valid} valid observed days of {data.n_days}"
                  if data.n_days else " — no observations")
        return hv.Overlay(layers).opts(
            hv.opts.Overlay(title=f"{site} {variable}{n_note}", responsive=True, height=230,
                            show_legend=False, fontscale=self.look.fontscale,
                            bgcolor=self.look.bg, xlabel="", tools=["xwheel_zoom"],
                            xformatter=DatetimeTickFormatter()))

    def colour_key(self, site: str, scenario: int, models: list[str]) -> pn.pane.HTML:
        """The models' colours (solid: posterior, dashed: prior) and the observation marker."""
        shown = self.selection.shown_models(self.context.model_ids()) if not models else models
        all_models = self.context.model_ids()
        items = [f'<span class="key"><span style="color:{self.look.obs_colour}">●</span> '
                 f'observations ± 1.96 σ</span>']
        items += [f'<span class="key"><span style="color:{model_colour(m, all_models)};'
                  f'font-weight:bold">━━</span> {escape(m)}</span>' for m in shown]
        items.append('<span class="key">solid: posterior · dashed: prior · shaded: posterior '
                     f'95 % (≤ {MAX_BANDS} models shown)</span>')
        return pn.pane.HTML(" &nbsp; ".join(items), sizing_mode="stretch_width",
                            stylesheets=[".key{white-space:nowrap;margin-right:1em}"])

    def _aligned(self, data: SiteSeries) -> tuple[pd.Series, dict[tuple[str, str], pd.Series]]:
        obs = data.obs.set_index("time")["value"] if not data.obs.empty else pd.Series(dtype=float)
        runs = {key: frame.set_index("time")["value"]
                for key, frame in data.runs.groupby(["model", "stage"], sort=True)}
        return obs, runs

    def _model_curves(self, curves: dict[tuple[str, str], tuple[np.ndarray, np.ndarray]],
                      kdims: list) -> list[hv.Curve]:
        """One curve per archive model and stage, empty when absent.

        Colour by model, dashed priors, solid posteriors: a fixed structure that DynamicMaps
        can update in place.
        """
        all_models = self.context.model_ids()
        empty = (np.empty(0), np.empty(0))
        return [hv.Curve(curves.get((model, stage), empty), *kdims,
                         label=f"{model} {stage.lower()}").opts(
                    color=model_colour(model, all_models), line_width=self.look.line_width,
                    line_dash="dashed" if stage == "Prior" else "solid",
                    alpha=0.7 if stage == "Prior" else 1.0)
                for stage in ("Prior", "Posterior") for model in all_models]

    def seasonal_cycle(self, site: str, variable: str, scenario: int, models: list[str]
                       ) -> hv.Overlay:
        """Mean seasonal cycle (by month) on the days with valid observations."""
        from dashboard.metrics import seasonal_cycle

        data = self.series(site, variable, scenario, models)
        obs, runs = self._aligned(data)
        vdim = hv.Dimension(variable, label=f"{variable} ({data.units})")
        mdim = hv.Dimension("month")
        layers = []
        mask = None
        obs_cycle = (np.empty(0), np.empty(0))
        if not obs.empty and obs.notna().sum() > 0:
            obs_da = obs.to_xarray()
            mask = obs_da.notnull()
            cycle = seasonal_cycle(obs_da, mask)
            obs_cycle = (cycle["month"].values.astype(float), cycle.values)
        layers.append(hv.Curve(obs_cycle, mdim, vdim, label="observations").opts(
            color=self.look.obs_colour, line_width=self.look.line_width + 1.5))
        curves = {}
        for key, series in runs.items():
            da = series.to_xarray()
            m = mask.reindex(time=da["time"], fill_value=False) if mask is not None else None
            cycle = seasonal_cycle(da, m)
            curves[key] = (cycle["month"].values.astype(float), cycle.values)
        layers += self._model_curves(curves, [mdim, vdim])
        note = " (days with valid observations)" if mask is not None else " (all days)"
        return hv.Overlay(layers).opts(
            hv.opts.Overlay(title=f"Mean seasonal cycle{note}", responsive=True, height=300,
                            show_legend=False, xticks=list(range(1, 13)),
                            fontscale=self.look.fontscale, bgcolor=self.look.bg))

    def scatter(self, site: str, variable: str, scenario: int, models: list[str]) -> hv.Overlay:
        """Model against observation on matching days, with the 1:1 line.

        Open markers: priors; filled: posteriors; colour: model.
        """
        data = self.series(site, variable, scenario, models)
        obs, runs = self._aligned(data)
        all_models = self.context.model_ids()
        xd = hv.Dimension("obs", label=f"observed {variable} ({data.units})")
        yd = hv.Dimension("model", label=f"modelled {variable} ({data.units})")
        empty = np.empty(0)
        layers: list[hv.Element] = []
        lo, hi = np.inf, -np.inf
        points = {}
        for (model, stage), series in runs.items():
            joined = pd.concat([obs.rename("obs"), series.rename("model")], axis=1,
                               join="inner").dropna()
            if not joined.empty:
                points[(model, stage)] = (joined["obs"].to_numpy(), joined["model"].to_numpy())
                lo = min(lo, float(joined.min().min()))
                hi = max(hi, float(joined.max().max()))
        line = ([lo, hi], [lo, hi]) if np.isfinite(lo) else (empty, empty)
        layers.append(hv.Curve(line, xd, yd).opts(color="grey", line_dash="dotted"))
        for stage, fill in (("Prior", 0.0), ("Posterior", 0.6)):
            for model in all_models:
                colour = model_colour(model, all_models)
                layers.append(hv.Scatter(points.get((model, stage), (empty, empty)), xd, yd,
                                         label=f"{model} {stage.lower()}").opts(
                    color=colour, line_color=colour, size=3 * self.look.fontscale,
                    fill_alpha=fill, alpha=0.8))
        title = ("Model vs observations" if points
                 else "Model vs observations: no matching days")
        return hv.Overlay(layers).opts(
            hv.opts.Overlay(title=title, responsive=True, height=300, show_legend=False,
                            fontscale=self.look.fontscale, bgcolor=self.look.bg))

    def taylor_frame(self, site: str, variable: str, scenario: int, models: list[str]
                     ) -> pd.DataFrame:
        """Normalised SD, correlation and diagram coordinates per (model, stage)."""
        from dashboard.metrics import taylor_statistics

        data = self.series(site, variable, scenario, models)
        obs, runs = self._aligned(data)
        min_n = _min_n()
        stats = []
        for (model, stage), series in runs.items():
            if obs.empty:
                break
            t = taylor_statistics(series.to_xarray(), obs.to_xarray())
            if t.get("n", 0) >= min_n and np.isfinite(t.get("r", np.nan)):
                sd = t.get("sd_ratio", t.get("normalised_sd"))
                angle = np.arccos(np.clip(t["r"], -1, 1))
                stats.append({"model": model, "stage": stage, "x": sd * np.cos(angle),
                              "y": sd * np.sin(angle), "r": t["r"], "sd": sd, "n": t["n"]})
        return pd.DataFrame(stats, columns=["model", "stage", "x", "y", "r", "sd", "n"])

    def taylor(self, site: str, variable: str, scenario: int, models: list[str]) -> hv.Overlay:
        """Taylor diagram: normalised SD (radius) and correlation (angle).

        An arrow per model runs from its prior (open marker) to its posterior (filled).
        """
        frame = self.taylor_frame(site, variable, scenario, models)
        all_models = self.context.model_ids()
        rmax = max(1.5, float(frame["sd"].max()) * 1.1 if not frame.empty else 1.5)
        rmax = 2.0 if rmax <= 2.0 else float(np.ceil(rmax))  # stable axes while browsing
        theta = np.linspace(0, np.pi / 2, 60)
        grid = [np.column_stack([r * np.cos(theta), r * np.sin(theta)])
                for r in np.arange(0.5, rmax + 0.01, 0.5)]
        corrs = (0.2, 0.4, 0.6, 0.8, 0.9, 0.95, 0.99)
        grid += [np.array([[0, 0], [rmax * c, rmax * np.sin(np.arccos(c))]]) for c in corrs]
        layers: list[hv.Element] = [
            hv.Path(grid, ["x", "y"]).opts(color="#c8c8c8", line_width=0.7),
            hv.Curve((np.cos(theta), np.sin(theta)), "x", "y").opts(color="#888888",
                                                                    line_width=1.2),
            hv.Labels({"x": [rmax * 1.03 * c for c in corrs],
                       "y": [rmax * 1.03 * np.sin(np.arccos(c)) for c in corrs],
                       "text": [str(c) for c in corrs]}, ["x", "y"], "text").opts(
                text_font_size=f"{int(8 * self.look.fontscale)}pt", text_color="#888888"),
            hv.Scatter(([1.0], [0.0]), "x", "y").opts(
                color=self.look.obs_colour, marker="star", size=14 * self.look.fontscale),
        ]
        empty = np.empty(0)
        for model in all_models:
            colour = model_colour(model, all_models)
            group = frame[frame["model"] == model]
            prior = group[group["stage"] == "Prior"]
            post = group[group["stage"] != "Prior"]
            segments = []
            if not prior.empty and not post.empty:
                x0, y0 = prior.iloc[0][["x", "y"]]
                x1, y1 = post.iloc[0][["x", "y"]]
                segments = _arrow_segments(x0, y0, x1, y1)
            layers.append(hv.Segments(segments, ["x0", "y0", "x1", "y1"]).opts(
                color=colour, line_width=self.look.line_width))
            for part, fill in ((prior, 0.0), (post, 1.0)):
                data_ = (part["x"].to_numpy(), part["y"].to_numpy(), part["r"].to_numpy(),
                         part["sd"].to_numpy(), part["n"].to_numpy()) if not part.empty else (
                    empty, empty, empty, empty, empty)
                layers.append(hv.Scatter(data_, "x", ["y", "r", "sd", "n"], label=model).opts(
                    color=colour, fill_alpha=fill, line_color=colour, line_width=2,
                    size=10 * self.look.fontscale, tools=["hover"]))
        title = f"Taylor diagram ({variable}): ○ prior → ● posterior"
        if frame.empty:
            title += " — insufficient data"
        return hv.Overlay(layers).opts(
            hv.opts.Overlay(title=title, xlim=(0, rmax * 1.08), ylim=(0, rmax * 1.08),
                            frame_width=int(300 * self.look.fontscale),
                            frame_height=int(300 * self.look.fontscale), show_legend=False,
                            xlabel="normalised SD × cos(angle)", ylabel="normalised SD × sin",
                            fontscale=self.look.fontscale, bgcolor=self.look.bg))

    def site_card(self, site: str, scenario: int, models: list[str]) -> pn.viewable.Viewable:
        """Facts about the selected site and how many valid observed days each variable has."""
        if not site:
            return safe_message("Select a site on the map or in the sidebar.", "info")
        sites = self.context.sites
        row = sites[sites["site_id"] == site]
        if row.empty:
            return safe_message(f"Unknown site {site!r}.", "danger")
        r = row.iloc[0]
        min_n = _min_n()
        lines = [f"<b>{escape(site)}</b> — {escape(r['name'])}, {escape(r['country'])}",
                 f"{escape(r['igbp'])} · {'calibration' if r['role'] == 'Cal' else 'validation'}"
                 f" site · {float(r['lat']):.2f}°, {float(r['lon']):.2f}°"]
        obs = self.context.archive.open_observations(site)
        warnings = []
        if obs is None:
            lines.append("No observation file in this archive: spread statistics only.")
        else:
            for v in SITE_VARIABLES:
                if v not in obs:
                    continue
                n = int(np.isfinite(obs[v].values).sum())
                total = int(obs.sizes["time"])
                lines.append(f"{v}: {n} valid days of {total} ({100 * n / max(total, 1):.1f} %)")
                if n < min_n:
                    warnings.append(f"{v} has only {n} valid days (minimum {min_n}): its scores "
                                    "are shown as insufficient data.")
        body = "<br>".join(lines)
        parts = [pn.pane.HTML(f'<div class="site-card">{body}</div>',
                              sizing_mode="stretch_width")]
        parts += [safe_message(w, "warning") for w in warnings]
        problems = self.series(site, "NEE", scenario, models).problems
        parts += [safe_message(p, "danger") for p in problems]
        return pn.Column(*parts, sizing_mode="stretch_width")

    def __panel__(self) -> pn.viewable.Viewable:
        s = self.selection
        deps = {"site": s.param.site, "scenario": s.param.scenario, "models": s.param.models}
        vdeps = {**deps, "variable": s.param.variable}

        def plot(method, **kwargs):
            # Each plot is rebuilt for a new selection (axes fit the new data) and shows a
            # loading indicator meanwhile. DynamicMaps updating in place were tried: with
            # per-frame ranges the browser never settled, without them the axes went stale.
            return pn.panel(pn.bind(lambda **kw: pn.pane.HoloViews(
                method(**kw), sizing_mode="stretch_width"), **kwargs),
                loading_indicator=True, sizing_mode="stretch_width")

        map_pane = pn.pane.HoloViews(self.site_map(), sizing_mode="stretch_width",
                                     min_height=320, name="site-map")
        card = pn.panel(pn.bind(self.site_card, **deps), loading_indicator=True)
        return pn.Column(
            pn.Row(pn.Column(map_pane, sizing_mode="stretch_width"),
                   pn.Column(card, width=360), sizing_mode="stretch_width"),
            pn.panel(pn.bind(self.colour_key, **deps), sizing_mode="stretch_width"),
            *[plot(partial(self.timeseries, variable=v), **deps) for v in SITE_VARIABLES],
            pn.Row(plot(self.seasonal_cycle, **vdeps), plot(self.scatter, **vdeps),
                   plot(self.taylor, **vdeps), sizing_mode="stretch_width"),
            sizing_mode="stretch_width")


def _epoch_ms(times: pd.Series | np.ndarray) -> np.ndarray:
    """Dates as milliseconds since 1970 (Bokeh's datetime axis unit).

    HoloViews converts datetime values of a Path one by one; plain numbers with a datetime
    tick formatter draw the same axis two orders of magnitude faster.
    """
    return np.asarray(times, dtype="datetime64[ms]").astype("int64").astype("float64")


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
