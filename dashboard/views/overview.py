"""Overview: what is in the archive and how much calibration helped, at a glance.

A model × site coverage matrix (prior/posterior for the selected scenario, calibration and
validation sites), a scorecard heatmap of misfit reduction per model × site for the selected
variable (n in the hover, insufficient cells marked), the Cal-vs-Val summary and the list of
broken files. Clicking a scorecard or coverage cell opens that site and model in the Sites view.
"""

from __future__ import annotations

import holoviews as hv
import numpy as np
import pandas as pd
import panel as pn
import param

from dashboard.context import ArchiveContext
from dashboard.metrics.common import DEFAULT_MIN_N
from dashboard.state import Selection
from dashboard.views.style import DIVERGING, Look, for_holoviews, safe_message

COVERAGE_CODES = {"missing": 0, "prior only": 1, "posterior only": 2, "prior + posterior": 3,
                  "broken": 4}
COVERAGE_COLOURS = ["#f2f2f2", "#9ecae1", "#fdae6b", "#31a354", "#d62728"]


class OverviewView(pn.viewable.Viewer):
    """Coverage matrix, scorecard heatmap, Cal/Val summary and broken files."""

    selection = param.ClassSelector(class_=Selection)
    context = param.ClassSelector(class_=ArchiveContext)
    look = param.ClassSelector(class_=Look, default=Look())

    def __init__(self, **params):
        super().__init__(**params)
        s = self.selection
        self._score_dmap = hv.DynamicMap(pn.bind(self.scorecard, scenario=s.param.scenario,
                                                 variable=s.param.variable))
        self._cover_dmap = hv.DynamicMap(pn.bind(self.coverage, scenario=s.param.scenario))
        for dmap in (self._score_dmap, self._cover_dmap):
            tap = hv.streams.Tap(source=dmap)
            tap.param.watch(self._on_tap, ["x", "y"])

    def site_order(self) -> list[str]:
        """Sites ordered calibration first, then validation, alphabetically within each."""
        sites = self.context.sites
        present = set(self.context.archive.sites())
        sites = sites[sites["role"].isin(["Cal", "Val"]) | sites["site_id"].isin(present)]
        order = sites.assign(_r=sites["role"].map({"Cal": 0, "Val": 1}).fillna(2))
        return list(order.sort_values(["_r", "site_id"])["site_id"])

    def coverage_frame(self, scenario: int) -> pd.DataFrame:
        """One row per (model, site): what was submitted for ``scenario`` and whether it reads."""
        self.context.tables()  # opening every file records the broken ones
        archive = self.context.archive
        runs = archive.site_runs
        errors = set(archive.errors)
        rows = []
        for model in self.context.model_ids():
            mine = runs[runs["model_id"] == model]
            for site in self.site_order():
                at = mine[mine["site"] == site]
                prior = at[(at["stage"] == "Prior") & at["scenario"].isin([scenario, 1])]
                post = at[(at["stage"] != "Prior") & (at["scenario"] == scenario)]
                broken = bool((set(prior["path"]) | set(post["path"])) & errors)
                if broken:
                    status = "broken"
                elif len(prior) and len(post):
                    status = "prior + posterior"
                elif len(prior):
                    status = "prior only"
                elif len(post):
                    status = "posterior only"
                else:
                    status = "missing"
                cal_val = at["cal_val"].iloc[0] if len(at) else ""
                rows.append({"site": site, "model": model, "status": status,
                             "code": COVERAGE_CODES[status], "cal_val": cal_val})
        return pd.DataFrame(rows, columns=["site", "model", "status", "code", "cal_val"])

    def coverage(self, scenario: int) -> hv.HeatMap:
        """Model × site coverage heatmap for ``scenario``."""
        frame = self.coverage_frame(scenario)
        heat = hv.HeatMap(for_holoviews(frame), kdims=["site", "model"],
                          vdims=["code", "status", "cal_val"])
        n_sites = max(len(self.site_order()), 1)
        return heat.opts(
            cmap=COVERAGE_COLOURS, clim=(-0.5, 4.5), color_levels=5, colorbar=False,
            tools=["hover", "tap"], xrotation=60, responsive=True,
            height=int(120 + 26 * max(len(self.context.model_ids()), 1) * self.look.fontscale),
            hover_tooltips=[("model", "@model"), ("site", "@site"), ("status", "@status")],
            title=f"Submissions, Scenario {scenario} (green: prior + posterior, blue: prior only,"
                  f" orange: posterior only, red: unreadable) — {n_sites} sites",
            fontscale=self.look.fontscale, bgcolor=self.look.bg, invert_yaxis=True,
            xlabel="site (calibration sites first, then validation)", ylabel="")

    def scorecard_frame(self, scenario: int, variable: str) -> pd.DataFrame:
        """Misfit reduction per model × site for one scenario and variable."""
        table = self.context.table("misfit_reduction")
        cols = ["site", "model", "misfit_reduction", "n", "rmse_prior", "rmse_post", "cal_val",
                "label", "insufficient"]
        if table.empty:
            return pd.DataFrame(columns=cols)
        t = table[(table["scenario"] == scenario) & (table["variable"] == variable)].copy()
        t["model"] = t["model"] + "." + t["version"]
        t["insufficient"] = t["insufficient"].astype(bool)
        t.loc[t["insufficient"], "misfit_reduction"] = np.nan
        t["label"] = [
            f"n={int(n)}<{DEFAULT_MIN_N}" if bad else f"{v:+.2f}"
            for v, n, bad in zip(t["misfit_reduction"], t["n"].fillna(0), t["insufficient"],
                                 strict=True)
        ]
        order = {s: i for i, s in enumerate(self.site_order())}
        t = t.assign(_o=t["site"].map(order)).sort_values(["_o", "model"])
        return t[cols].reset_index(drop=True)

    def scorecard(self, scenario: int, variable: str) -> hv.Overlay:
        """Heatmap of misfit reduction (1 − RMSE_post / RMSE_prior).

        n is in the hover; insufficient cells are labelled instead of coloured.
        """
        frame = self.scorecard_frame(scenario, variable)
        vdims = ["misfit_reduction", "n", "rmse_prior", "rmse_post", "cal_val", "label"]
        heat = hv.HeatMap(for_holoviews(frame), kdims=["site", "model"], vdims=vdims).opts(
            cmap=DIVERGING, clim=(-1, 1), colorbar=True, clipping_colors={"NaN": "#e0e0e0"},
            tools=["hover", "tap"], xrotation=60, responsive=True,
            height=int(140 + 26 * max(len(self.context.model_ids()), 1) * self.look.fontscale),
            hover_tooltips=[("model", "@model"), ("site", "@site (@cal_val)"),
                            ("misfit reduction", "@label"), ("n days", "@n"),
                            ("RMSE prior", "@rmse_prior"), ("RMSE posterior", "@rmse_post")],
            colorbar_opts={"title": "1 − RMSE_post/RMSE_prior"}, invert_yaxis=True,
            fontscale=self.look.fontscale, bgcolor=self.look.bg, xlabel="", ylabel="")
        small = frame[frame["insufficient"]] if not frame.empty else frame
        labels = hv.Labels(for_holoviews(small), kdims=["site", "model"], vdims=["label"]).opts(
            text_font_size=f"{int(7 * self.look.fontscale)}pt", text_color="#555555")
        title = (f"Misfit reduction of {variable}, Scenario {scenario} — click a cell to open "
                 "the site (grey: insufficient data)")
        if frame.empty:
            title = f"No scores for {variable}, Scenario {scenario} (no observations or runs)"
        return (heat * labels).opts(hv.opts.Overlay(title=title))

    def _on_tap(self, *events: param.parameterized.Event) -> None:
        stream = events[0].obj
        site, model = stream.x, stream.y
        if not isinstance(site, str) or not isinstance(model, str):
            return
        if model in self.context.model_ids() and site in set(self.site_order()):
            self.selection.param.update(site=site, models=[model], view="sites")

    def summary_frame(self, scenario: int, variable: str) -> pd.DataFrame:
        """Calibration vs validation improvement (the generalisation gap) per model."""
        table = self.context.table("misfit_reduction")
        if table.empty:
            return pd.DataFrame()
        t = table[(table["scenario"] == scenario) & (table["variable"] == variable)]
        t = t[~t["insufficient"].astype(bool)]
        if t.empty:
            return pd.DataFrame()
        t = t.assign(model=t["model"] + "." + t["version"])
        pivot = t.pivot_table(index="model", columns="cal_val", values="misfit_reduction",
                              aggfunc="median")
        counts = t.pivot_table(index="model", columns="cal_val", values="site", aggfunc="count")
        out = pd.DataFrame(index=pivot.index)
        for cv, label in (("Cal", "calibration sites"), ("Val", "validation sites")):
            out[f"median misfit reduction, {label}"] = pivot.get(cv)
            out[f"n sites ({cv})"] = counts.get(cv)
        out["generalisation gap (Cal − Val)"] = out.iloc[:, 0] - out.iloc[:, 2]
        return out.round(3).reset_index()

    def summary_pane(self, scenario: int, variable: str) -> pn.viewable.Viewable:
        """The generalisation-gap table, or a note when there is nothing to summarise."""
        frame = self.summary_frame(scenario, variable)
        if frame.empty:
            return safe_message("No calibration/validation summary for this selection.", "info")
        return pn.pane.DataFrame(frame, index=False, escape=True, sizing_mode="stretch_width")

    def __panel__(self) -> pn.viewable.Viewable:
        s = self.selection
        self.context.tables()  # opening every file records the broken ones
        summary = pn.bind(self.summary_pane, scenario=s.param.scenario,
                          variable=s.param.variable)
        broken = self.context.broken_files()
        broken_pane = (safe_message("All catalogued files were read.", "success")
                       if broken.empty else pn.Column(
                           safe_message(f"{len(broken)} file(s) cannot be used; everything else "
                                        "is shown.", "danger"),
                           pn.pane.DataFrame(broken, index=False, escape=True,
                                             sizing_mode="stretch_width")))
        errors = [safe_message(e, "danger") for e in self.context.table_errors]
        return pn.Column(
            *errors,
            pn.pane.HoloViews(self._score_dmap, sizing_mode="stretch_width"),
            pn.pane.Markdown("### Generalisation: calibration vs validation sites"),
            pn.panel(summary, loading_indicator=True),
            pn.pane.HoloViews(self._cover_dmap, sizing_mode="stretch_width"),
            pn.pane.Markdown("### Files that could not be used"),
            broken_pane,
            sizing_mode="stretch_width")

