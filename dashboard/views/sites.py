"""Sites: a map of the sites coloured by a metric, and the selected site's series and diagrams.

Linked views: clicking a site on the map sets ``selection.site`` (and the URL); the time series of
NEE, Qle and Qh share their time axis; the seasonal cycle, scatter and Taylor diagram follow the
selected variable. Every plot is a pure function of the selection, built by the methods below, so
tests can inspect the HoloViews objects without a browser.
"""

from __future__ import annotations

import holoviews as hv
import numpy as np
import pandas as pd
import panel as pn
import param
import xarray as xr
from bokeh.models import DatetimeTickFormatter

from dashboard.context import ArchiveContext
from dashboard.metrics import taylor_statistics
from dashboard.metrics.common import DEFAULT_MIN_N
from dashboard.metrics.diagrams import MONTHS, monthly_means
from dashboard.sitedata import SiteSeries
from dashboard.state import METRICS, SITE_VARIABLES, Selection
from dashboard.views.style import (
    DIVERGING,
    SEQUENTIAL,
    Look,
    escape,
    for_holoviews,
    model_colour,
)

#: Metrics whose map colours diverge around 0 (reductions).
REDUCTION_METRICS = ("spread_reduction", "misfit_reduction", "misfit_reduction_chi2")
#: Posterior bands are drawn when at most this many models are shown.
MAX_BANDS = 3


class SitesView(pn.viewable.Viewer):
    """The Sites view: map, site card, time series, seasonal cycle, scatter, Taylor diagram."""

    selection = param.ClassSelector(class_=Selection)
    context = param.ClassSelector(class_=ArchiveContext)
    look = param.ClassSelector(class_=Look, default=Look())

    def __init__(self, **params):
        super().__init__(**params)
        s = self.selection
        # The plots follow the selection through three streams that one watcher updates
        # together (see _on_selection), rather than each plot watching the selection.
        self._site_stream = _SiteStream(site=s.site, scenario=s.scenario, models=list(s.models))
        self._variable_stream = _VariableStream(variable=s.variable)
        self._map_stream = _MapStream(metric=s.metric, variable=s.variable, scenario=s.scenario,
                                      stage=s.stage, models=list(s.models))
        s.param.watch(self._on_selection, ["site", "variable", "scenario", "models", "stage",
                                           "metric"])
        self._points_dmap = hv.DynamicMap(self.site_points, streams=[self._map_stream])
        self._tap = hv.streams.Selection1D(source=self._points_dmap)
        self._tap.param.watch(self._on_tap, "index")
        self._styled: dict[str, hv.Element] = {}  # style templates of _element and _overlay
        # Fixed-size blocks of (escaped) HTML whose text is replaced in place, in _on_selection
        # with the plots, so a new selection changes no layout. StaticText sends only the new
        # text; an HTML pane re-sends its stylesheets on every update, and the browser then
        # lays out and repaints the whole page.
        self._card = pn.widgets.StaticText(value="", width=360, height=320,
                                           styles={"overflow-y": "auto"})
        self._key = pn.widgets.StaticText(
            value="", sizing_mode="stretch_width", height=60,
            stylesheets=[".key{white-space:nowrap;margin-right:1em}"])

    def _on_selection(self, *events: param.parameterized.Event) -> None:
        """Update every plot that depends on the changed selection, as one document change.

        Each HoloViews plot update ends with Bokeh re-walking the whole document's model graph
        (~50 ms for this page) and is sent as its own message, which the browser lays out and
        paints separately. Holding the document with the model graph frozen while all streams
        fire makes it one walk, one message and one paint. The site card and colour key change
        in the same message.
        """
        s = self.selection
        names = {e.name for e in events}
        updates: list[tuple[hv.streams.Stream, dict]] = []
        site_changed = bool(names & {"site", "scenario", "models"})
        if site_changed:
            updates.append((self._site_stream, {"site": s.site, "scenario": s.scenario,
                                                "models": list(s.models)}))
        if "variable" in names:
            updates.append((self._variable_stream, {"variable": s.variable}))
        if names & {"metric", "variable", "scenario", "stage", "models"}:
            updates.append((self._map_stream, {
                "metric": s.metric, "variable": s.variable, "scenario": s.scenario,
                "stage": s.stage, "models": list(s.models)}))
        with pn.io.hold(freeze=True):
            if site_changed:
                self._card.value = self.site_card(s.site, s.scenario, s.models)
                self._key.value = self.colour_key(s.site, s.scenario, s.models)
            for stream, values in updates:
                stream.event(**values)

    def _dynamic(self, method, *, variable: str | None = None) -> hv.DynamicMap:
        """A DynamicMap of ``method(site, variable, scenario, models)`` following the selection.

        With ``variable`` given the plot keeps that variable; otherwise it follows the
        selected one.
        """
        if variable is not None:
            return hv.DynamicMap(
                lambda site, scenario, models: method(site, variable, scenario, models),
                streams=[self._site_stream])
        return hv.DynamicMap(
            lambda site, scenario, models, variable: method(site, variable, scenario, models),
            streams=[self._site_stream, self._variable_stream])

    def _element(self, kind: type[hv.Element], data, kdims, vdims, label: str = "",
                 **options) -> hv.Element:
        """A HoloViews element of ``kind`` holding ``data``, styled with ``options``.

        ``.opts`` registers a new options tree on every call (~4 ms each, and they pile up in a
        long-running server); the plots here are rebuilt for every selection, so each distinct
        style is registered once and later elements are clones of that first one.
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

    # ---------------------------------------------------------------- data
    def _shown(self, models: list[str]) -> list[str]:
        """The models to draw: ``models`` if any, else the selection's or all of the archive's."""
        return models or self.selection.shown_models(self.context.model_ids())

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
        shown = self._shown(models)
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
            clabel=METRICS[metric].split(" (")[0],
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
        return self._element(hv.Points, data, ["lon", "lat"], [], marker="circle",
                             size=24 * self.look.fontscale, fill_alpha=0,
                             line_color="#ff00aa", line_width=3)

    def site_map(self) -> hv.Overlay:
        """Land outline, site markers (tap to select) and the selected-site ring."""
        ring = hv.DynamicMap(lambda site, scenario, models: self.selected_marker(site),
                             streams=[self._site_stream])
        title = "Sites — click a site to select it (○ calibration, △ validation)"
        return (self.land() * self._points_dmap * ring).opts(
            hv.opts.Overlay(title=title, xlim=(-180, 180), ylim=(-60, 80), data_aspect=1,
                            shared_axes=False,
                            frame_height=int(260 * self.look.fontscale), xlabel="longitude",
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
        """The tidy series of a site (shared by every session through the context's cache)."""
        shown = self._shown(models)
        return self.context.site_series(site, variable, scenario, tuple(shown))

    def _overlay(self, layers: list[hv.Element], title: str, **options) -> hv.Overlay:
        """An overlay of ``layers`` titled ``title``, with plot ``options``.

        Like :meth:`_element`: the options are registered once per distinct set and later
        overlays are clones carrying the title as their label (the default title format shows
        an overlay's label). Per-frame ``.opts`` grew HoloViews' option store on every update
        and cost ~50 ms a plot.
        """
        key = repr(("Overlay", sorted(options.items())))
        template = self._styled.get(key)
        if template is None:
            template = self._styled[key] = hv.Overlay([]).opts(hv.opts.Overlay(**options))
        return template.clone(layers, label=title)

    def _model_style(self) -> dict:
        """Colour options for glyphs coloured by their ``model_code`` value.

        Every model is drawn in the colour of its index in the archive's model list; the codes
        travel as numbers (binary) rather than one colour string per point.
        """
        all_models = self.context.model_ids()
        palette = [model_colour(m, all_models) for m in all_models] or ["#000000"]
        return {"color": "model_code", "cmap": palette,
                "clim": (-0.5, len(palette) - 0.5), "colorbar": False}

    def _model_curves(self, curves: dict[tuple[str, str], tuple[np.ndarray, np.ndarray]],
                      kdims: list) -> list[hv.Curve]:
        """One curve per archive model and stage, empty when absent.

        Dashed priors, solid posteriors, each in its model's colour. The fixed structure lets a
        DynamicMap patch the data of the existing plot. Curves, not one multi-line Path:
        HoloViews splits multi-paths at ~10 ms a path on every update.
        """
        all_models = self.context.model_ids()
        empty = (np.empty(0), np.empty(0))
        return [self._element(hv.Curve, curves.get((model, stage), empty), *kdims,
                              label=f"{model} {stage.lower()}",
                              color=model_colour(model, all_models),
                              line_width=self.look.line_width,
                              line_dash="dashed" if stage == "Prior" else "solid",
                              alpha=0.6 if stage == "Prior" else 0.95)
                for stage in ("Prior", "Posterior") for model in all_models]

    def timeseries(self, site: str, variable: str, scenario: int, models: list[str]
                   ) -> hv.Overlay:
        """Observations and each model's prior (dashed) and posterior (solid).

        Observations carry their 95 % band (± 1.96 σ_O). Posteriors carry their 95 % band
        (posterior uncertainty or ensemble range) when at most :data:`MAX_BANDS` models are
        shown, so that the bands stay readable. Time is drawn as epoch milliseconds with a
        datetime axis (HoloViews converts datetimes point by point in some paths); the colour
        key above the plots replaces per-plot legends.
        """
        data = self.series(site, variable, scenario, models)
        all_models = self.context.model_ids()
        ylabel = f"{variable} ({data.units})" if data.units else variable
        vdim = hv.Dimension(variable, label=ylabel)
        tdim = hv.Dimension("time", label="date")
        drawing = data.drawing
        shown = sorted({model for model, _ in drawing.runs})
        empty = np.empty(0, dtype="float32")
        # The observation uncertainty is one shaded band: far cheaper to draw than an error
        # bar per day, and it reads as the envelope it is.
        layers: list[hv.Element] = [
            self._element(hv.Area, drawing.obs_band, tdim, [vdim, "obs_upper"],
                          label="observation uncertainty", color=self.look.obs_colour,
                          alpha=0.15, line_alpha=0)]
        # A fixed number of band slots (coloured per frame) keeps the plot's structure fixed.
        banded = list(drawing.banded) if len(shown) <= MAX_BANDS else []
        for slot in range(MAX_BANDS):
            model = banded[slot] if slot < len(banded) else None
            data_ = ((drawing.runs[(model, "Posterior")][0],
                      *drawing.runs[(model, "Posterior")][2:]) if model is not None
                     else (empty, empty, empty))
            colour = model_colour(model, all_models) if model else self.look.obs_colour
            layers.append(self._element(hv.Area, data_, tdim, [vdim, "upper"],
                                        label="posterior band", color=colour, alpha=0.18,
                                        line_alpha=0))
        curves = {key: arrays[:2] for key, arrays in drawing.runs.items()}
        layers += self._model_curves(curves, [tdim, vdim])
        layers.append(self._element(
            hv.Scatter, drawing.obs, tdim, vdim, label="observations",
            color=self.look.obs_colour, size=3 * self.look.fontscale, tools=["hover"],
            hover_tooltips=[("date", "@time{%F}"), (variable, f"@{{{variable}}}")],
            hover_formatters={"@time": "datetime"}))
        n_note = (f" — {data.n_obs_valid} valid observed days of {data.n_days}"
                  if data.n_days else " — no observations")
        return self._overlay(layers, f"{site} {variable}{n_note}", responsive=True, height=230,
                             show_legend=False, fontscale=self.look.fontscale, framewise=True,
                             bgcolor=self.look.bg, xlabel="", tools=["xwheel_zoom"],
                             xformatter=_DATES)

    def colour_key(self, site: str, scenario: int, models: list[str]) -> str:
        """HTML key: the models' colours (solid posterior, dashed prior) and the observations."""
        shown = self._shown(models)
        all_models = self.context.model_ids()
        items = [f'<span class="key"><span style="color:{self.look.obs_colour}">●</span> '
                 f'observations, shaded ± 1.96 σ</span>']
        items += [f'<span class="key"><span style="color:{model_colour(m, all_models)};'
                  f'font-weight:bold">━━</span> {escape(m)}</span>' for m in shown]
        items.append('<span class="key">solid: posterior · dashed: prior · shaded: posterior '
                     f'95 % (≤ {MAX_BANDS} models shown)</span>')
        return " &nbsp; ".join(items)

    def seasonal_cycle(self, site: str, variable: str, scenario: int, models: list[str]
                       ) -> hv.Overlay:
        """Mean seasonal cycle (by month) on the days with valid observations.

        Without observations each run's cycle uses all its days.
        """
        data = self.series(site, variable, scenario, models)
        vdim = hv.Dimension(variable, label=f"{variable} ({data.units})")
        mdim = hv.Dimension("month")
        months = MONTHS.astype(float)
        aligned = data.on_obs_days
        observed = np.isfinite(aligned.obs)
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
            self._element(hv.Curve, obs_cycle, mdim, vdim, label="observations",
                          color=self.look.obs_colour, line_width=self.look.line_width + 1.5)]
        layers += self._model_curves(curves, [mdim, vdim])
        note = " (observed days)" if observed.any() else " (all days)"
        return self._overlay(layers, f"Mean seasonal cycle{note}", responsive=True, height=300,
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
        all_models = self.context.model_ids()
        xd = hv.Dimension("obs", label=f"observed {variable} ({data.units})")
        yd = hv.Dimension("model", label=f"modelled {variable} ({data.units})")
        parts: dict[str, list[np.ndarray]] = {"Prior": [], "Posterior": []}
        lo, hi = np.inf, -np.inf
        for (model, stage), values in aligned.runs.items():
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
        layers: list[hv.Element] = [self._element(hv.Curve, line, xd, yd, color="grey",
                                                  line_dash="dotted")]
        for stage, fill, line_alpha in (("Prior", 0.0, 0.8), ("Posterior", 0.6, 0.0)):
            stacked = (np.vstack(parts[stage]).astype("float32") if parts[stage]
                       else np.empty((0, 3), dtype="float32"))
            layers.append(self._element(
                hv.Scatter, stacked, xd, [yd, "model_code"], label=stage.lower(),
                size=3 * self.look.fontscale, fill_alpha=fill, line_alpha=line_alpha,
                **self._model_style()))
        title = ("Model vs observations" if np.isfinite(lo)
                 else "Model vs observations: no matching days")
        return self._overlay(layers, title, responsive=True, height=300, show_legend=False,
                             framewise=True, shared_axes=False, fontscale=self.look.fontscale,
                             bgcolor=self.look.bg)

    def taylor_frame(self, site: str, variable: str, scenario: int, models: list[str]
                     ) -> pd.DataFrame:
        """Normalised SD, correlation and diagram coordinates per (model, stage)."""
        data = self.series(site, variable, scenario, models)
        min_n = DEFAULT_MIN_N
        if ("taylor", min_n) in data.derived:  # computed once per series
            return data.derived[("taylor", min_n)].copy()
        aligned = data.on_obs_days
        stats = []
        obs = xr.DataArray(aligned.obs, coords={"time": aligned.time}, dims="time")
        for (model, stage), values in aligned.runs.items():
            t = taylor_statistics(obs.copy(data=values), obs)
            if t.get("n", 0) >= min_n and np.isfinite(t.get("r", np.nan)):
                sd = t.get("sd_ratio", t.get("normalised_sd"))
                angle = np.arccos(np.clip(t["r"], -1, 1))
                stats.append({"model": model, "stage": stage, "x": sd * np.cos(angle),
                              "y": sd * np.sin(angle), "r": t["r"], "sd": sd, "n": t["n"]})
        frame = pd.DataFrame(stats, columns=["model", "stage", "x", "y", "r", "sd", "n"])
        data.derived[("taylor", min_n)] = frame
        return frame.copy()

    def taylor(self, site: str, variable: str, scenario: int, models: list[str]) -> hv.Overlay:
        """Taylor diagram: normalised SD (radius) and correlation (angle).

        An arrow per model runs from its prior (open marker) to its posterior (filled).
        """
        frame = self.taylor_frame(site, variable, scenario, models)
        all_models = self.context.model_ids()
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
            self._element(hv.Curve, tuple(np.concatenate(
                [np.vstack([g, [[np.nan, np.nan]]]) for g in grid]).T), "x", "y",
                color="#c8c8c8", line_width=0.7),
            self._element(hv.Curve, (np.cos(theta), np.sin(theta)), "x", "y",
                          color="#888888", line_width=1.2),
            self._element(hv.Labels, {"x": [rmax * 1.03 * c for c in corrs],
                                      "y": [rmax * 1.03 * np.sin(np.arccos(c)) for c in corrs],
                                      "text": [str(c) for c in corrs]}, ["x", "y"], "text",
                          text_font_size=f"{int(8 * self.look.fontscale)}pt",
                          text_color="#888888"),
            self._element(hv.Scatter, ([1.0], [0.0]), "x", "y", color=self.look.obs_colour,
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
        layers.append(self._element(hv.Segments, arrows, ["x0", "y0", "x1", "y1"],
                                    ["model_code"], line_width=self.look.line_width,
                                    **self._model_style()))
        columns = ["x", "y", "model", "r", "sd", "n", "model_code"]
        for stage, fill in (("Prior", 0.0), ("Posterior", 1.0)):
            part = frame[(frame["stage"] == "Prior") == (stage == "Prior")][columns]
            layers.append(self._element(
                hv.Scatter, part, "x", columns[1:], label=stage.lower(), fill_alpha=fill,
                line_width=2, size=10 * self.look.fontscale, tools=["hover"],
                hover_tooltips=[("model", "@model"), ("r", "@r{0.00}"), ("SD ratio", "@sd{0.00}"),
                                ("n", "@n")], **self._model_style()))
        title = f"Taylor diagram ({variable}): ○ prior → ● posterior"
        if frame.empty:
            title += " — insufficient data"
        return self._overlay(layers, title, xlim=(0, rmax * 1.08), ylim=(0, rmax * 1.08),
                             frame_width=int(300 * self.look.fontscale),
                             frame_height=int(300 * self.look.fontscale), show_legend=False,
                             shared_axes=False, framewise=True,
                             xlabel="normalised SD × cos(angle)", ylabel="normalised SD × sin",
                             fontscale=self.look.fontscale, bgcolor=self.look.bg)

    def site_card(self, site: str, scenario: int, models: list[str]) -> str:
        """HTML facts about the selected site, escaped.

        How many valid observed days each variable has, a warning for sparse variables and the
        files that could not be read.
        """
        if not site:
            return _alert("Select a site on the map or in the sidebar.", "info")
        sites = self.context.sites
        row = sites[sites["site_id"] == site]
        if row.empty:
            return _alert(f"Unknown site {site!r}.", "danger")
        r = row.iloc[0]
        min_n = DEFAULT_MIN_N
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
        problems = self.series(site, "NEE", scenario, models).problems
        body = "<br>".join(lines)
        return (f'<div class="site-card">{body}</div>'
                + "".join(_alert(w, "warning") for w in warnings)
                + "".join(_alert(p, "danger") for p in problems))

    def __panel__(self) -> pn.viewable.Viewable:
        s = self.selection
        self._card.value = self.site_card(s.site, s.scenario, s.models)
        self._key.value = self.colour_key(s.site, s.scenario, s.models)

        def plot(method, sizing_mode="stretch_width", **kwargs):
            # A DynamicMap of a fixed-structure overlay with per-frame ranges: a new selection
            # patches the data of the existing Bokeh plot instead of replacing the plot. The
            # pane's sizing matches the plot's, or every update re-sends it and re-lays out the
            # whole page.
            return pn.pane.HoloViews(self._dynamic(method, **kwargs), sizing_mode=sizing_mode)

        map_pane = pn.pane.HoloViews(self.site_map(), name="site-map")
        return pn.Column(
            pn.Row(pn.Column(map_pane, sizing_mode="stretch_width"), self._card,
                   sizing_mode="stretch_width"),
            self._key,
            *[plot(self.timeseries, variable=v) for v in SITE_VARIABLES],
            pn.Row(plot(self.seasonal_cycle), plot(self.scatter),
                   plot(self.taylor, sizing_mode=None), sizing_mode="stretch_width"),
            sizing_mode="stretch_width")


_SiteStream = hv.streams.Stream.define("SiteSelection", site="", scenario=1, models=[])
_VariableStream = hv.streams.Stream.define("VariableSelection", variable="NEE")
_MapStream = hv.streams.Stream.define("MapSelection", metric="misfit_reduction", variable="NEE",
                                      scenario=1, stage="Posterior", models=[])


#: Alert colours (background, text) inlined: the site card renders inside a shadow root that
#: the page's Bootstrap classes do not reach.
_ALERT_COLOURS = {"info": ("#cff4fc", "#055160"), "warning": ("#fff3cd", "#664d03"),
                  "danger": ("#f8d7da", "#58151c")}


def _alert(text: str, kind: str) -> str:
    """An alert box holding ``text`` escaped (file text is untrusted)."""
    background, colour = _ALERT_COLOURS.get(kind, _ALERT_COLOURS["info"])
    return (f'<div class="alert alert-{kind}" role="alert" style="background:{background};'
            f'color:{colour};padding:4px 8px;margin:6px 0;border-radius:4px">'
            f'{escape(text)}</div>')


#: One date formatter for every time axis (a new Bokeh model per frame would defeat the
#: option templates).
_DATES = DatetimeTickFormatter()


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
