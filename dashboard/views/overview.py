"""Overview: what is in the archive and how much calibration helped, at a glance.

A model × site coverage matrix (prior/posterior for the selected scenario, calibration and
validation sites), a scorecard heatmap of misfit reduction per model × site for the selected
variable (n in the hover, insufficient cells marked), the Cal-vs-Val summary and the list of
broken files. Clicking a scorecard or coverage cell opens that site and model in the Sites view.
"""

from __future__ import annotations

import holoviews as hv
import pandas as pd
import panel as pn
import param

from dashboard import queries
from dashboard.metrics.common import DEFAULT_MIN_N
from dashboard.queries import COVERAGE_CODES
from dashboard.service import DataService
from dashboard.state import Selection
from dashboard.views.loading import fill_progressively
from dashboard.views.style import DIVERGING, Look, for_holoviews, safe_message

COVERAGE_COLOURS = ["#f2f2f2", "#9ecae1", "#fdae6b", "#31a354", "#d62728"]


class OverviewView(pn.viewable.Viewer):
    """Coverage matrix, scorecard heatmap, Cal/Val summary and broken files."""

    selection = param.ClassSelector(class_=Selection)
    service = param.ClassSelector(class_=DataService)
    look = param.ClassSelector(class_=Look, default=Look())

    def __init__(self, **params):
        super().__init__(**params)
        s = self.selection
        # The heatmap and its labels are separate DynamicMaps: a Tap stream whose source is a
        # DynamicMap of an Overlay never fired in the browser (clicking the scorecard did
        # nothing, while the same stream fired when triggered from Python).
        self._heat_dmap = hv.DynamicMap(pn.bind(self.scorecard_heatmap,
                                                scenario=s.param.scenario,
                                                variable=s.param.variable))
        self._labels_dmap = hv.DynamicMap(pn.bind(self.scorecard_labels,
                                                  scenario=s.param.scenario,
                                                  variable=s.param.variable))
        self._score_dmap = self._heat_dmap * self._labels_dmap
        self._cover_dmap = hv.DynamicMap(pn.bind(self.coverage, scenario=s.param.scenario))
        for dmap in (self._heat_dmap, self._cover_dmap):
            tap = hv.streams.Tap(source=dmap)
            tap.param.watch(self._on_tap, ["x", "y"])

    def site_order(self) -> list[str]:
        """Sites ordered calibration first, then validation, alphabetically within each."""
        return queries.site_order(self.service)

    def coverage_frame(self, scenario: int) -> pd.DataFrame:
        """One row per (model, site): what was submitted and whether it reads (a query)."""
        return queries.coverage_frame(self.service, scenario)

    def coverage(self, scenario: int) -> hv.HeatMap:
        """Model × site coverage heatmap for ``scenario``."""
        frame = self.coverage_frame(scenario)
        heat = hv.HeatMap(for_holoviews(frame), kdims=["site", "model"],
                          vdims=["code", "status", "cal_val"])
        n_sites = max(len(self.site_order()), 1)
        return heat.opts(
            cmap=COVERAGE_COLOURS, clim=(-0.5, 4.5), color_levels=5, colorbar=False,
            tools=["hover", "tap"], xrotation=60, responsive=True, shared_axes=False,
            height=int(120 + 26 * max(len(self.service.model_ids()), 1) * self.look.fontscale),
            hover_tooltips=[("model", "@model"), ("site", "@site"), ("status", "@status")],
            title=f"Submissions, Scenario {scenario} ({n_sites} sites; click a cell)",
            fontscale=self.look.fontscale, bgcolor=self.look.bg, invert_yaxis=True,
            xlabel="site (calibration sites first, then validation)", ylabel="")

    def scorecard_frame(self, scenario: int, variable: str) -> pd.DataFrame:
        """Misfit reduction per model × site for one scenario and variable (a query)."""
        return queries.scorecard_frame(self.service, scenario, variable)

    def scorecard_heatmap(self, scenario: int, variable: str) -> hv.HeatMap:
        """Heatmap of misfit reduction (1 − RMSE_post / RMSE_prior), n in the hover."""
        frame = self.scorecard_frame(scenario, variable)
        vdims = ["misfit_reduction", "n", "rmse_prior", "rmse_post", "cal_val", "label"]
        title = f"Misfit reduction of {variable}, Scenario {scenario}"
        if frame.empty:
            title = f"No scores for {variable}, Scenario {scenario} (no observations or runs)"
        return hv.HeatMap(for_holoviews(frame), kdims=["site", "model"], vdims=vdims).opts(
            cmap=DIVERGING, clim=(-1, 1), colorbar=True, clipping_colors={"NaN": "#e0e0e0"},
            tools=["hover", "tap"], xrotation=60, responsive=True, title=title,
            shared_axes=False,  # its own rows: not the coverage matrix's models
            height=int(140 + 26 * max(len(self.service.model_ids()), 1) * self.look.fontscale),
            hover_tooltips=[("model", "@model"), ("site", "@site (@cal_val)"),
                            ("misfit reduction", "@label"), ("n days", "@n"),
                            ("RMSE prior", "@rmse_prior"), ("RMSE posterior", "@rmse_post")],
            clabel="misfit reduction", invert_yaxis=True,
            fontscale=self.look.fontscale, bgcolor=self.look.bg, xlabel="", ylabel="")

    def scorecard_labels(self, scenario: int, variable: str) -> hv.Labels:
        """``n=…<min`` on the cells with too few valid days to score."""
        frame = self.scorecard_frame(scenario, variable)
        small = frame[frame["insufficient"]] if not frame.empty else frame
        # Just the number of valid days: "n=15<30" in every narrow cell ran into its neighbours
        # (the key above the plot says what the numbers are).
        small = small.assign(label=small["n"].fillna(0).astype(int).astype(str))
        return hv.Labels(for_holoviews(small), kdims=["site", "model"], vdims=["label"]).opts(
            text_font_size=f"{int(8 * self.look.fontscale)}pt", text_color="#444444")

    def scorecard(self, scenario: int, variable: str) -> hv.Overlay:
        """The scorecard: heatmap of misfit reduction with labels on insufficient cells."""
        heat = self.scorecard_heatmap(scenario, variable)
        return heat * self.scorecard_labels(scenario, variable)

    def _on_tap(self, *events: param.parameterized.Event) -> None:
        stream = events[0].obj
        site, model = stream.x, stream.y
        if not isinstance(site, str) or not isinstance(model, str):
            return
        if model in self.service.model_ids() and site in set(self.site_order()):
            self.selection.param.update(site=site, models=[model], view="sites")

    def summary_frame(self, scenario: int, variable: str) -> pd.DataFrame:
        """Calibration vs validation improvement per model: the generalisation gap (a query)."""
        return queries.generalisation_frame(self.service, scenario, variable)

    def summary_pane(self, scenario: int, variable: str) -> pn.viewable.Viewable:
        """The generalisation-gap table, or a note when there is nothing to summarise."""
        frame = self.summary_frame(scenario, variable)
        if frame.empty:
            return safe_message("No calibration/validation summary for this selection.", "info")
        return pn.pane.DataFrame(frame, index=False, escape=True, sizing_mode="stretch_width")

    def __panel__(self) -> pn.viewable.Viewable:
        s = self.selection
        self.service.tables()  # opening every file records the broken ones
        summary = pn.bind(self.summary_pane, scenario=s.param.scenario,
                          variable=s.param.variable)
        broken = self.service.broken_files()
        broken_pane = (safe_message("All catalogued files were read.", "success")
                       if broken.empty else pn.Column(
                           safe_message(f"{len(broken)} file(s) cannot be used; everything else "
                                        "is shown.", "danger"),
                           pn.pane.DataFrame(broken, index=False, escape=True,
                                             sizing_mode="stretch_width")))
        errors = [safe_message(e, "danger") for e in self.service.table_errors]
        score_key = pn.pane.HTML(
            "Misfit reduction = 1 − RMSE_post / RMSE_prior. Blue: the posterior fits the "
            "observations better than the prior; red: worse. Grey: fewer than "
            f"{DEFAULT_MIN_N} valid observed days (the number shown), not scored. "
            "Click a cell to open that site and model.", sizing_mode="stretch_width")
        page = pn.Column(*errors, score_key,
                         pn.pane.HoloViews(self._score_dmap, sizing_mode="stretch_width"),
                         sizing_mode="stretch_width")
        fill_progressively(page, [
            lambda: pn.Column(
                pn.pane.Markdown("### Generalisation: calibration vs validation sites"),
                pn.panel(summary, loading_indicator=True), sizing_mode="stretch_width"),
            lambda: pn.Column(pn.pane.HTML(coverage_key(self.look), sizing_mode="stretch_width"),
                              pn.pane.HoloViews(self._cover_dmap, sizing_mode="stretch_width"),
                              sizing_mode="stretch_width"),
            lambda: pn.Column(pn.pane.Markdown("### Files that could not be used"), broken_pane,
                              sizing_mode="stretch_width"),
        ])
        return page



def coverage_key(look: Look) -> str:
    """HTML key of the coverage matrix: a coloured square per status."""
    items = [f'<span style="white-space:nowrap;margin-right:1.2em">'
             f'<span style="display:inline-block;width:0.9em;height:0.9em;background:{colour};'
             f'border:1px solid #888;vertical-align:middle"></span> {status}</span>'
             for status, colour in zip(COVERAGE_CODES, COVERAGE_COLOURS, strict=True)]
    return "<div>What was submitted: " + " ".join(items) + "</div>"
