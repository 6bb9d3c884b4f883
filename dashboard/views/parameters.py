"""Parameters: how calibration constrained each model's parameters, side by side.

For the selected scenario and models: every parameter placed in its prior range (0 = prior
minimum, 1 = prior maximum) with the prior and posterior 5–95 % intervals and values, grouped
by process, edge-hitting posteriors flagged; uncertainty reduction as bars (sortable); a
process × model heatmap of the median uncertainty reduction with n; one model's parameter
shifts next to its misfit reduction; one parameter of one model across scenarios; the models
without a parameter table and the rows that could not be drawn. Process and PFT filters are
local to the view. The numbers come from :mod:`dashboard.parameter_queries`; this module only
draws them.
"""

from __future__ import annotations

import holoviews as hv
import numpy as np
import pandas as pd
import panel as pn
import param

from dashboard import parameter_queries as pq
from dashboard.metrics.parameters import EDGE_FRACTION
from dashboard.service import DataService
from dashboard.state import Selection
from dashboard.views.loading import fill_progressively
from dashboard.views.style import (
    DIVERGING,
    Look,
    alert_html,
    escape,
    for_holoviews,
    model_colour,
    safe_message,
)

#: Colour of the edge-hitting flag (not one of the model colours).
EDGE_COLOUR = "#d62728"

#: Columns the hover of a parameter shows (name → label).
HOVER = [("model", "@model_id"), ("parameter", "@parameter (@pft)"),
         ("long name", "@long_name"), ("process", "@process"), ("units", "@units"),
         ("prior", "@prior_text"), ("posterior", "@posterior_text"),
         ("uncertainty reduction", "@reduction_text"), ("edge", "@edge_text")]

_HOVER_COLUMNS = ["model_id", "parameter", "pft", "long_name", "process", "units", "prior_text",
                  "posterior_text", "reduction_text", "edge_text"]


def _g(value: float) -> str:
    """A number for people: 4 significant digits, "?" when unknown."""
    return "?" if value is None or not np.isfinite(value) else f"{value:.4g}"


def hover_text(frame: pd.DataFrame) -> pd.DataFrame:
    """Add the hover's text columns (raw values in the table's units) to a parameter frame."""
    df = frame.copy()
    df["prior_text"] = [
        f"{_g(v)} in [{_g(lo)}, {_g(hi)}], σ {_g(sd)}"
        f" ({'given' if src == 'prior_sd' else 'uniform'})"
        for v, lo, hi, sd, src in zip(df["prior_value"], df["prior_min"], df["prior_max"],
                                      df["prior_sd_used"], df["prior_sd_source"], strict=True)]
    df["posterior_text"] = [
        f"{_g(v)}, 5–95 %: {_g(lo)} – {_g(hi)}"
        f" ({'p05/p95' if src == 'p05_p95' else '± 1.645 σ' if src == 'sd' else 'unknown'}),"
        f" σ {_g(sd)}"
        for v, lo, hi, src, sd in zip(df["posterior_value"], df["posterior_lo"],
                                      df["posterior_hi"], df["posterior_interval_source"],
                                      df["posterior_sd_used"], strict=True)]
    df["reduction_text"] = [("unknown (no σ)" if not np.isfinite(u) else f"{u:.2f}")
                            for u in df["uncertainty_reduction"].astype("float64")]
    df["edge_text"] = [f"within {EDGE_FRACTION:.0%} of the {e} bound" if isinstance(e, str)
                       and e in ("lower", "upper") else "no"
                       for e in df["edge"]]
    df["shift_text"] = [f"{s:+.3f} of the prior range" if np.isfinite(s) else "?"
                        for s in df["shift_norm"].astype("float64")]
    for col in ("long_name", "units", "process", "pft", "parameter", "model_id"):
        df[col] = df[col].fillna("").astype(str)
    return df


def _cols(frame: pd.DataFrame, columns: list[str]) -> dict[str, np.ndarray]:
    """Only ``columns`` of ``frame``, as plain arrays (text as objects).

    HoloViews computes the range of every column of an element's data on every render;
    handing it the whole parameter frame (~50 columns) made each plot take seconds.
    """
    out: dict[str, np.ndarray] = {}
    for c in dict.fromkeys(columns):
        values = frame[c]
        if pd.api.types.is_numeric_dtype(values) and not pd.api.types.is_bool_dtype(values):
            out[c] = values.to_numpy(dtype="float64", na_value=np.nan)
        else:
            out[c] = values.astype(object).to_numpy()
    return out


def _element(kind: type, frame: pd.DataFrame, kdims: list[str], vdims: list[str] | None = None
             ) -> hv.Element:
    """A HoloViews element holding only its own columns of ``frame`` (dictionary backend)."""
    vdims = vdims or []
    return kind(_cols(frame, [*kdims, *vdims]), kdims, vdims, datatype=["dictionary"])


class ParametersView(pn.viewable.Viewer):
    """Calibrated parameters side by side, their uncertainty reduction, shifts and scenarios."""

    selection = param.ClassSelector(class_=Selection)
    service = param.ClassSelector(class_=DataService)
    look = param.ClassSelector(class_=Look, default=Look())

    def __init__(self, **params):
        super().__init__(**params)
        s = self.selection
        processes, pfts = pq.filter_options(self.service, s.scenario)
        self.process = pn.widgets.MultiChoice(label="Processes (none: all)", options=processes,
                                              sizing_mode="stretch_width")
        self.pft = pn.widgets.MultiChoice(label="Plant functional types (none: all)",
                                          options=pfts, sizing_mode="stretch_width")
        self.sort = pn.widgets.Select(label="Order parameters by",
                                      options={label: key for key, label in pq.SORTS.items()},
                                      value="process", sizing_mode="stretch_width")
        models = self._models(s.models)
        self.focus = pn.widgets.Select(label="Model (shifts and scenarios)", options=models,
                                       value=models[0] if models else None,
                                       sizing_mode="stretch_width")
        labels = pq.parameter_labels(self.service, self.focus.value) if models else []
        self.parameter = pn.widgets.Select(label="Parameter (across scenarios)", options=labels,
                                           value=labels[0] if labels else None,
                                           sizing_mode="stretch_width")
        s.param.watch(self._on_selection, ["scenario", "models"])
        self.focus.param.watch(self._on_focus, "value")

    # -- widget options following the selection -------------------------------------------
    def _models(self, models: list[str]) -> list[str]:
        """Shown models with a table in the scenario, those with most scenarios first."""
        frame = pq.parameter_frame(self.service, self.selection.scenario, models)
        with_rows = sorted(frame["model_id"].unique())
        counts = pq.table_counts(self.service)
        return (sorted(with_rows, key=lambda m: (-counts.get(m, 0), m))
                or sorted(pq.shown_models(self.service, models)))

    def _on_selection(self, *events: param.parameterized.Event) -> None:
        s = self.selection
        processes, pfts = pq.filter_options(self.service, s.scenario)
        self.process.param.update(options=processes,
                                  value=[p for p in self.process.value if p in processes])
        self.pft.param.update(options=pfts, value=[p for p in self.pft.value if p in pfts])
        models = self._models(s.models)
        focus = self.focus.value if self.focus.value in models else (models[0] if models
                                                                      else None)
        self.focus.param.update(options=models, value=focus)

    def _on_focus(self, event: param.parameterized.Event) -> None:
        labels = pq.parameter_labels(self.service, event.new) if event.new else []
        keep = self.parameter.value if self.parameter.value in labels else None
        self.parameter.param.update(options=labels, value=keep or (labels[0] if labels
                                                                   else None))

    # -- data ------------------------------------------------------------------------------
    def frame(self, scenario: int, models: list[str], processes: list[str],
              pfts: list[str]) -> pd.DataFrame:
        """The scenario's parameter rows for the shown models and filters (a query)."""
        return pq.parameter_frame(self.service, scenario, models, processes, pfts)

    def _colours(self, df: pd.DataFrame) -> pd.DataFrame:
        all_models = self.service.model_ids()
        return df.assign(colour=[model_colour(m, all_models) for m in df["model_id"]])

    def _height(self, n_rows: int, per_row: float = 15.0) -> int:
        return int(max(260, 130 * self.look.fontscale
                       + n_rows * per_row * (1.0 + 0.45 * (self.look.fontscale - 1))))

    @property
    def _right_edge(self) -> float:
        """Right end of the x axis of the row plots: room for the process names after 1."""
        return 1.85 if self.look.presentation else 1.45

    def _ticks(self, rows: pd.DataFrame) -> list[tuple[float, str]]:
        ticks = rows.drop_duplicates(["process", "group"])[["group_y", "group"]]
        return [(float(y), str(label)) for y, label in ticks.itertuples(index=False)]

    def _common(self) -> dict:
        return {"fontscale": self.look.fontscale, "bgcolor": self.look.bg,
                "shared_axes": False, "responsive": True, "show_legend": False,
                "default_tools": ["save", "reset", "wheel_zoom", "pan"]}

    # -- plots -----------------------------------------------------------------------------
    def intervals(self, scenario: int, models: list[str], processes: list[str],
                  pfts: list[str], sort: str) -> hv.Overlay:
        """Every parameter in its prior range: prior and posterior intervals and values."""
        rows = pq.row_layout(self.frame(scenario, models, processes, pfts), sort)
        if rows.empty:
            return self._empty(f"No parameter to draw for Scenario {scenario} "
                               "(see the messages above)")
        rows = self._colours(hover_text(rows))
        layers = self._interval_layers(rows, [], HOVER, 1.0)
        process_labels = self._process_labels(rows, 1.12 if self.look.presentation else 1.04)
        separators = self._separators(rows, -0.06, self._right_edge)
        bounds = self._vlines(rows["y"].min() - 0.7, 0.7)
        title = (f"Scenario {scenario}: parameters in their prior range — posterior 5–95 % "
                 "(colour) over prior 5–95 % (grey)")
        if self.look.presentation:
            title = f"Scenario {scenario}: parameters in their prior range"
        return (bounds * separators * layers * process_labels).opts(
            hv.opts.Overlay(title=title, xlim=(-0.06, self._right_edge),
                            ylim=(rows["y"].min() - 0.8, 0.8), yticks=self._ticks(rows),
                            xticks=[0, 0.25, 0.5, 0.75, 1.0],
                            xlabel="position in the prior range (0 = prior_min, 1 = prior_max)",
                            ylabel="", height=self._height(len(rows)), **self._common()))

    def _interval_layers(self, rows: pd.DataFrame, extra: list[str],
                         tooltips: list[tuple[str, str]], size: float) -> hv.Overlay:
        """The interval glyphs of rows with ``y`` and ``colour``.

        Prior interval (grey), posterior interval (model colour), prior ○, posterior ● (with
        the hover) and the edge flag □.
        """
        scale = self.look.fontscale * size
        prior_int = _element(hv.Segments, rows, ["prior_lo_norm", "y", "prior_hi_norm", "y"]
                             ).opts(color=self.look.muted_colour, line_alpha=0.55,
                                    line_width=7 * scale)
        post_int = _element(hv.Segments, rows,
                            ["posterior_lo_norm", "y", "posterior_hi_norm", "y"], ["colour"]
                            ).opts(color="colour", line_width=2.5 * scale)
        prior_val = _element(hv.Scatter, rows, ["prior_value_norm"], ["y"]).opts(
            marker="circle", size=8 * scale, fill_color=self.look.bg,
            line_color=self.look.fg, line_width=1.2)
        edges = rows[rows["edge_hitting"].fillna(False).astype(bool).to_numpy()]
        edge = _element(hv.Scatter, edges, ["posterior_value_norm"], ["y"]).opts(
            marker="square", size=15 * scale, fill_alpha=0, line_color=EDGE_COLOUR,
            line_width=2)
        post_val = _element(hv.Scatter, rows, ["posterior_value_norm"],
                            ["y", "colour", *extra, *_HOVER_COLUMNS]).opts(
            color="colour", size=9 * scale, line_color=self.look.fg, line_width=0.6,
            tools=["hover"], hover_tooltips=tooltips)
        return prior_int * post_int * prior_val * edge * post_val

    def _process_labels(self, rows: pd.DataFrame, x: float) -> hv.Labels:
        """The name of each process at the height of its first row, at ``x``.

        None when the rows are not grouped by process (the tick labels name it then).
        """
        firsts = rows.drop_duplicates("process")
        if not rows["grouped"].all():
            firsts = firsts.iloc[0:0]
        frame = pd.DataFrame({"x": x, "y": firsts["y"].to_numpy(dtype="float64"),
                              "process": firsts["process"].astype(object).to_numpy()})
        return hv.Labels(frame, ["x", "y"], "process").opts(
            text_align="left", text_color=self.look.fg, text_font_style="italic",
            text_font_size=f"{int(10 * self.look.fontscale)}pt")

    def _vlines(self, y0: float, y1: float, xs: tuple[float, ...] = (0.0, 1.0),
                dashed: bool = True) -> hv.Segments:
        """Vertical reference lines (the prior bounds, or zero) from ``y0`` to ``y1``."""
        frame = pd.DataFrame({"x0": list(xs), "y0": [y0] * len(xs), "x1": list(xs),
                              "y1": [y1] * len(xs)})
        return hv.Segments(frame, ["x0", "y0", "x1", "y1"]).opts(
            color=self.look.fg, line_dash="dashed" if dashed else "solid",
            line_alpha=0.5 if dashed else 0.8, line_width=1)

    def _separators(self, rows: pd.DataFrame, x0: float, x1: float) -> hv.Segments:
        """Thin horizontal lines between processes (when the rows are grouped by process)."""
        starts = rows.drop_duplicates("process")["y"].to_numpy()[1:] + 0.85
        if not rows["grouped"].all():
            starts = starts[:0]
        frame = pd.DataFrame({"x0": x0, "y0": starts, "x1": x1, "y1": starts})
        return hv.Segments(frame, ["x0", "y0", "x1", "y1"]).opts(
            color=self.look.muted_colour, line_width=1, line_alpha=0.6)

    def reduction_bars(self, scenario: int, models: list[str], processes: list[str],
                       pfts: list[str], sort: str) -> hv.Overlay:
        """Uncertainty reduction 1 − σ_post/σ_prior per parameter and model, as bars."""
        rows = pq.row_layout(self.frame(scenario, models, processes, pfts), sort)
        if rows.empty:
            return self._empty(f"No uncertainty reduction for Scenario {scenario}")
        rows = self._colours(hover_text(rows))
        ur = rows["uncertainty_reduction"].astype("float64")
        bars = rows.assign(x0=0.0, x1=ur.fillna(0.0), y0=rows["y"] - 0.4, y1=rows["y"] + 0.4)
        lowest = float(np.nanmin(np.append(ur.to_numpy(), 0.0)))
        xmin = min(-0.1, lowest - 0.05)
        rects = _element(hv.Rectangles, bars, ["x0", "y0", "x1", "y1"],
                         ["colour", *_HOVER_COLUMNS]).opts(
            color="colour", line_color=None, tools=["hover"], hover_tooltips=HOVER)
        unknown = rows[ur.isna().to_numpy()]
        notes = hv.Labels(for_holoviews(pd.DataFrame({"x": 0.01, "y": unknown["y"].to_numpy(),
                                                      "text": "σ unknown"})),
                          ["x", "y"], "text").opts(
            text_align="left", text_color=self.look.fg,
            text_font_size=f"{int(8 * self.look.fontscale)}pt")
        lines = self._vlines(rows["y"].min() - 0.7, 0.7)
        title = f"Uncertainty reduction 1 − σ_post/σ_prior, Scenario {scenario}"
        if self.look.presentation:
            title = f"Uncertainty reduction, Scenario {scenario}"
        return (lines * self._separators(rows, xmin, self._right_edge) * rects * notes
                * self._process_labels(rows, 1.12 if self.look.presentation else 1.04)).opts(
            hv.opts.Overlay(title=title,
                            xlim=(xmin, self._right_edge),
                            xticks=[0, 0.2, 0.4, 0.6, 0.8, 1.0],
                            ylim=(rows["y"].min() - 0.8, 0.8),
                            yticks=self._ticks(rows), ylabel="",
                            xlabel="uncertainty reduction (1: pinned down, 0: nothing learnt, "
                                   "< 0: wider than the prior)",
                            height=self._height(len(rows)), **self._common()))

    def process_heatmap(self, scenario: int, models: list[str], processes: list[str],
                        pfts: list[str]) -> hv.Overlay:
        """Median uncertainty reduction per process × model, with n parameters per cell."""
        summary = pq.process_summary(self.frame(scenario, models, processes, pfts))
        if summary.empty:
            return self._empty(f"No processes to compare for Scenario {scenario}")
        data = for_holoviews(summary)
        heat = hv.HeatMap(data, ["model_id", "process"],
                          ["median_reduction", "n", "n_edge", "label"]).opts(
            cmap=DIVERGING, clim=(-1, 1), colorbar=True, clipping_colors={"NaN": "#bdbdbd"},
            tools=["hover"], clabel="median reduction",
            hover_tooltips=[("model", "@model_id"), ("process", "@process"),
                            ("median uncertainty reduction", "@median_reduction{0.00}"),
                            ("parameters (n)", "@n"), ("ending on a bound", "@n_edge")])
        # Dark text on light cells, white on the dark ends of the colour map.
        strong = (summary["median_reduction"].abs() > 0.55).to_numpy()
        size = f"{int(9 * self.look.fontscale)}pt"
        labels = (hv.Labels(data[~strong], ["model_id", "process"], "label").opts(
                      text_color="#222222", text_font_size=size)
                  * hv.Labels(data[strong], ["model_id", "process"], "label").opts(
                      text_color="#ffffff", text_font_size=size))
        n_proc = summary["process"].nunique()
        return (heat * labels).opts(hv.opts.Overlay(
            title=f"Which processes did calibration constrain? Scenario {scenario}",
            xlabel="", ylabel="", xrotation=20 if summary["model_id"].nunique() > 3 else 0,
            invert_yaxis=True,
            height=int(max(300, 170 + 46 * n_proc * self.look.fontscale)),
            **self._common()))

    def shifts(self, scenario: int, model: str | None, processes: list[str],
               pfts: list[str]) -> hv.Overlay:
        """One model's parameter shifts (posterior − prior) in prior-range units."""
        frame = self.frame(scenario, [model] if model else [], processes, pfts)
        frame = frame[frame["model_id"] == model] if model else frame.iloc[0:0]
        rows = pq.row_layout(frame, "process")
        if rows.empty:
            return self._empty(f"No parameter shifts for {model or 'this selection'}")
        rows = self._colours(hover_text(rows))
        shift = rows["shift_norm"].astype("float64")
        bars = rows.assign(x0=0.0, x1=shift, y0=rows["y"] - 0.4, y1=rows["y"] + 0.4)
        rects = _element(hv.Rectangles, bars, ["x0", "y0", "x1", "y1"],
                         ["colour", "shift_text", *_HOVER_COLUMNS]).opts(
            color="colour", line_color=None, tools=["hover"],
            hover_tooltips=[*HOVER[:5], ("shift", "@shift_text"), *HOVER[5:]])
        edges = rows[rows["edge_hitting"].fillna(False).astype(bool).to_numpy()]
        edge = _element(hv.Scatter, edges.assign(x=edges["shift_norm"]), ["x"], ["y"]).opts(
            marker="square", size=13 * self.look.fontscale, fill_alpha=0,
            line_color=EDGE_COLOUR, line_width=2)
        zero = self._vlines(rows["y"].min() - 0.7, 0.7, (0.0,), dashed=False)
        return (zero * self._separators(rows, -1.05, 1.05) * rects * edge).opts(
            hv.opts.Overlay(title=f"{model}: parameter shifts",
                            xlim=(-1.05, 1.05), ylim=(rows["y"].min() - 0.8, 0.8),
                            yticks=self._ticks(rows), ylabel="",
                            xlabel="shift (−: towards prior_min, +: towards prior_max)",
                            height=self._height(len(rows), 18.0), **self._common()))

    def misfit(self, scenario: int, model: str | None) -> hv.Overlay:
        """The model's median misfit reduction over calibration sites, per variable, with n."""
        df = pq.misfit_medians(self.service, scenario, [model] if model else ["\0"])
        if df.empty:
            return self._empty(f"No misfit reduction for {model}, Scenario {scenario}")
        colour = model_colour(model, self.service.model_ids()) if model else "#888888"
        df = df.assign(
            value=df["median_misfit_reduction"].fillna(0.0),
            text=[(f"{v:+.2f}" if n > 0 else "insufficient") + f" (n={n})"
                  for v, n in zip(df["median_misfit_reduction"], df["n"], strict=True)],
            kind=["calibrated" if o else "not calibrated" for o in df["optimised"]])
        data = for_holoviews(df)
        bars = hv.Bars(data, "variable", ["value", "text", "kind", "n"]).opts(
            color=colour, alpha=hv.dim("kind").categorize(
                {"calibrated": 1.0, "not calibrated": 0.45}),
            tools=["hover"], hover_tooltips=[("variable", "@variable (@kind)"),
                                             ("median misfit reduction", "@text")])
        top = max(0.1, float(df["value"].max()))
        bottom = min(0.0, float(df["value"].min()))
        pad = 0.25 * (top - bottom)
        labels = hv.Labels(for_holoviews(df.assign(y=df["value"] + np.where(
            df["value"] >= 0, 0.08, -0.08) * (top - bottom))), ["variable", "y"], "text").opts(
            text_color=self.look.fg, text_font_size=f"{int(9 * self.look.fontscale)}pt")
        return (bars * labels).opts(hv.opts.Overlay(
            title=f"{model}: misfit reduction (calibration sites)",
            ylim=(bottom - pad, top + pad), xlabel="",
            ylabel="1 − RMSE_post / RMSE_prior",
            height=int(320 * self.look.fontscale), **self._common()))

    def across_scenarios(self, model: str | None, label: str | None) -> hv.Overlay:
        """One parameter of one model under every scenario with a table."""
        df = pq.scenario_frame(self.service, model, label) if model and label else None
        if df is None or df.empty:
            return self._empty("Choose a model and a parameter")
        df = self._colours(hover_text(df))
        df["y"] = -np.arange(len(df), dtype="float64")
        layers = self._interval_layers(
            df, ["misfit", "scenario_label"], [("scenario", "@scenario_label"), *HOVER[1:],
                                               ("misfit reduction (cal. sites)", "@misfit")],
            1.1)
        bounds = self._vlines(df["y"].min() - 0.6, 0.6)
        ticks = [(float(y), str(t)) for y, t in zip(df["y"], df["scenario_label"], strict=True)]
        scale = self.look.fontscale
        return (bounds * layers).opts(
            hv.opts.Overlay(title=f"{model}: {label} across scenarios", xlim=(-0.06, 1.06),
                            ylim=(df["y"].min() - 0.7, 0.7), yticks=ticks, ylabel="",
                            xlabel="position in the prior range",
                            height=int(150 * scale + 42 * len(df) * scale), **self._common()))

    def scenario_table(self, model: str | None, label: str | None) -> pn.viewable.Viewable:
        """The numbers of :meth:`across_scenarios`, with the misfit reductions."""
        df = pq.scenario_frame(self.service, model, label) if model and label else None
        if df is None or df.empty:
            return pn.pane.HTML("")
        df = hover_text(df)
        table = pd.DataFrame({
            "scenario": df["scenario_label"], "posterior": df["posterior_text"],
            "uncertainty reduction": df["reduction_text"], "edge": df["edge_text"],
            "misfit reduction, calibration sites (median, n)": df["misfit"]})
        return pn.pane.DataFrame(table, index=False, escape=True, sizing_mode="stretch_width")

    def _empty(self, title: str) -> hv.Overlay:
        return (hv.Curve([]) * hv.Curve([])).opts(hv.opts.Overlay(
            title=title, height=200, xaxis=None, yaxis=None, **self._common()))

    # -- messages --------------------------------------------------------------------------
    def messages(self, scenario: int, models: list[str], processes: list[str],
                 pfts: list[str]) -> pn.viewable.Viewable:
        """Models without a table (with the expected name) and rows not fully drawn."""
        missing = pq.missing_tables(self.service, scenario, models)
        problems = pq.row_problems(self.frame(scenario, models, processes, pfts))
        parts: list[pn.viewable.Viewable] = []
        if not missing.empty:
            parts.append(pn.pane.HTML("".join(
                alert_html(f"{r.model}: {r.status} — expected file {r.expected_file}", "info")
                for r in missing.itertuples(index=False)), sizing_mode="stretch_width"))
        if not problems.empty:
            parts.append(safe_message(
                f"{len(problems)} problem(s) in the parameter tables: the rows concerned are "
                "drawn with what could be read; the list is at the bottom of the page.",
                "warning"))
        return pn.Column(*parts, sizing_mode="stretch_width")

    def problem_table(self, scenario: int, models: list[str], processes: list[str],
                      pfts: list[str]) -> pn.viewable.Viewable:
        """Every problem met in the tables: file, its lines, parameters, what is wrong."""
        problems = pq.row_problems(self.frame(scenario, models, processes, pfts))
        if problems.empty:
            return safe_message("Every row of the shown parameter tables was read and drawn.",
                                "success")
        return pn.Column(
            pn.pane.Markdown("### Problems in the parameter tables"),
            pn.pane.DataFrame(problems, index=False, escape=True, justify="left",
                              sizing_mode="stretch_width"),
            sizing_mode="stretch_width")

    def key(self, scenario: int, models: list[str]) -> str:
        """HTML key of the glyphs and the models' colours (names escaped)."""
        frame = pq.parameter_frame(self.service, scenario, models)
        all_models = self.service.model_ids()
        chips = " ".join(
            f'<span style="white-space:nowrap;margin-right:1em"><span style="color:'
            f'{model_colour(m, all_models)};font-weight:bold">━━ ●</span> {escape(m)}</span>'
            for m in sorted(frame["model_id"].unique()))
        which = "chosen in the sidebar" if models else "all; choose some in the sidebar"
        return (f'<div style="color:{self.look.fg}">Models ({which}): {chips}<br>'
                '<span style="color:#8a8a8a;font-weight:bold">━━</span> prior 5–95 % '
                '(± 1.645 σ_prior, or uniform over the range) · ○ prior value · coloured line: '
                'posterior 5–95 % (p05–p95, else ± 1.645 σ_post) · ● posterior value · '
                f'<span style="color:{EDGE_COLOUR}">□</span> posterior within '
                f'{EDGE_FRACTION:.0%} of a prior bound (a sign of structural error or a too '
                'narrow prior) · hover for names, units and raw values</div>')

    # -- page ------------------------------------------------------------------------------
    def __panel__(self) -> pn.viewable.Viewable:
        s = self.selection
        self.service.tables()
        filters = dict(scenario=s.param.scenario, models=s.param.models,
                       processes=self.process, pfts=self.pft)
        key = pn.pane.HTML(pn.bind(self.key, scenario=s.param.scenario, models=s.param.models),
                           sizing_mode="stretch_width")
        widgets = pn.Row(self.process, self.pft, self.sort, sizing_mode="stretch_width")
        page = pn.Column(
            pn.panel(pn.bind(self.messages, **filters)), widgets, key,
            pn.pane.HoloViews(pn.bind(self.intervals, **filters, sort=self.sort),
                              sizing_mode="stretch_width"),
            sizing_mode="stretch_width")
        focus = dict(scenario=s.param.scenario, model=self.focus, processes=self.process,
                     pfts=self.pft)

        def pair(left, right) -> pn.viewable.Viewable:
            if self.look.presentation:  # two side by side are too narrow from the back
                return pn.Column(left, right, sizing_mode="stretch_width")
            return pn.Row(left, right, sizing_mode="stretch_width")

        fill_progressively(page, [
            lambda: pn.pane.HoloViews(pn.bind(self.reduction_bars, **filters, sort=self.sort),
                                      sizing_mode="stretch_width"),
            lambda: pn.pane.HoloViews(pn.bind(self.process_heatmap, **filters),
                                      sizing_mode="stretch_width"),
            lambda: pn.Column(
                pn.pane.Markdown("### Parameter shifts next to misfit reduction"),
                pn.Row(self.focus, self.parameter, sizing_mode="stretch_width"),
                pair(pn.pane.HoloViews(pn.bind(self.shifts, **focus),
                                       sizing_mode="stretch_width"),
                     pn.pane.HoloViews(pn.bind(self.misfit, scenario=s.param.scenario,
                                               model=self.focus),
                                       sizing_mode="stretch_width")),
                sizing_mode="stretch_width"),
            lambda: pn.Column(
                pn.pane.HoloViews(pn.bind(self.across_scenarios, model=self.focus,
                                          label=self.parameter), sizing_mode="stretch_width"),
                pn.panel(pn.bind(self.scenario_table, model=self.focus, label=self.parameter)),
                sizing_mode="stretch_width"),
            lambda: pn.panel(pn.bind(self.problem_table, **filters)),
        ])
        return page
