"""Methods: each group's calibration method (protocol v2 §12) beside its outcomes (issue #16).

A table of every model's choices from its model-information file (models that sent none are
listed as such) with its Scenario 1 outcomes beside them, and a plot of one outcome per model
grouped by a chosen attribute, every group with its n. All text from the files is untrusted and
shown escaped. Every number comes from the ``methods`` metric table.
"""

from __future__ import annotations

import holoviews as hv
import pandas as pd
import panel as pn
import param

from dashboard import strategy_queries as sq
from dashboard.service import DataService
from dashboard.state import Selection
from dashboard.views.loading import fill_progressively
from dashboard.views.style import Look, for_holoviews, model_colour, safe_message

CAUTION = ("With a few models these are descriptions, not causal findings: a group differs "
           "from another in its model, its data handling and much else besides the attribute "
           "shown.")

#: Columns of the choices-and-outcomes table, in order (``methods`` table → header).
TABLE_COLUMNS: dict[str, str] = {
    "model": "model", "info_status": "information file", "method": "method (iv)",
    "ensemble_size": "ensemble size", "multi_stream": "multi-stream (ix)", "lai": "LAI (xiv)",
    "scenarios_run": "scenarios run",
    "median_misfit_reduction_cal": "misfit reduction, Cal sites", "n_cal": "n (Cal)",
    "generalisation_gap": "gap (Cal − Val)", "n_val": "n (Val)",
    "median_coverage": "95 % coverage (Cal)", "n_coverage": "n (coverage)",
    "share_at_bounds": "share at bounds", "n_parameters": "n parameters",
}
#: The other answers, in a second table.
CHOICE_COLUMNS: dict[str, str] = {
    "model": "model", "sensitivity_analysis": "SA (v)", "n_parameters_selected": "n selected (v)",
    "n_parameters_possible": "of N possible (v)", "global_parameters": "global set (x)",
    "pfts": "PFTs (xi)", "other_uncertainties": "other uncertainties (xii)",
    "optional_scenarios": "optional scenarios (xiii)", "initial_conditions": "initial "
    "conditions (viii)", "n_cycle": "N cycle (ii)", "fire": "fire (ii)",
    "dynamic_vegetation": "dyn. veg. (ii)",
}
#: Free-text columns shown in a second table.
TEXT_COLUMNS: dict[str, str] = {
    "model": "model", "description": "description (i)", "references": "references (i)",
    "method_detail": "method (iv)", "selection_detail": "parameter selection (v)",
    "n_deposition": "N deposition (iii)", "spin_up": "spin-up (vii)", "notes": "notes",
}


class MethodsView(pn.viewable.Viewer):
    """The model information table beside the outcomes, and a grouped outcome plot."""

    selection = param.ClassSelector(class_=Selection)
    service = param.ClassSelector(class_=DataService)
    look = param.ClassSelector(class_=Look, default=Look())
    grouping = param.Selector(default="method", objects=list(sq.GROUPINGS),
                              doc="Attribute the plot groups models by")
    outcome = param.Selector(default="median_misfit_reduction_cal", objects=list(sq.OUTCOMES),
                             doc="Outcome plotted")

    def _table(self, columns: dict[str, str], sent_only: bool = False) -> pd.DataFrame:
        frame = sq.methods_frame(self.service)
        if sent_only and "info_status" in frame:
            frame = frame[frame["info_status"] != "missing"]
        cols = [c for c in columns if c in frame.columns]
        out = frame[cols].rename(columns=columns)
        return out.astype(object).where(out.notna(), "")

    def choices_table(self) -> pd.DataFrame:
        """Main choices and the outcomes, one row per model (text unescaped: escape it)."""
        return self._table(TABLE_COLUMNS)

    def other_choices_table(self) -> pd.DataFrame:
        """The other answers with a vocabulary or a number, one row per model with a file."""
        return self._table(CHOICE_COLUMNS, sent_only=True)

    def text_table(self) -> pd.DataFrame:
        """The free-text answers, one row per model that sent a file."""
        return self._table(TEXT_COLUMNS, sent_only=True)

    def outcome_plot(self, grouping: str, outcome: str) -> hv.Overlay:
        """One point per model, grouped by ``grouping``; a dash marks each group's median."""
        frame = sq.outcome_groups(self.service, grouping, outcome)
        label = sq.OUTCOMES[outcome]
        models = sorted(sq.methods_frame(self.service)["model"])
        frame = frame.assign(colour=[model_colour(m, models) for m in frame["model"]])
        title = f"{label} by {sq.GROUPINGS[grouping]}"
        points = hv.Scatter(for_holoviews(frame), kdims=["group_label"],
                            vdims=["value", "model", "n", "colour"]).opts(
            color="colour", size=int(12 * self.look.fontscale), tools=["hover"],
            hover_tooltips=[("model", "@model"), ("group", "@group_label"),
                            (label, "@value{0.000}"), ("n behind the value", "@n")])
        medians = (frame.groupby("group_label", as_index=False)["value"].median()
                   if not frame.empty else frame[["group_label", "value"]])
        dash = hv.Scatter(for_holoviews(medians), kdims=["group_label"], vdims=["value"]).opts(
            marker="dash", size=int(40 * self.look.fontscale), color=self.look.fg,
            line_width=2)
        if frame.empty:
            title = f"No model has a value of {label}"
        return (dash * points).opts(
            title=title, xlabel="", ylabel=label, responsive=True, shared_axes=False,
            height=int(380 * self.look.fontscale), fontscale=self.look.fontscale,
            bgcolor=self.look.bg, show_grid=True)

    def __panel__(self) -> pn.viewable.Viewable:
        self.service.tables()
        intro = pn.pane.Markdown(
            "### Methods: each group's calibration beside its outcomes\n"
            "From each group's model-information file (protocol v2 §12; format in the README) "
            "and the Scenario 1 outcomes: median misfit reduction at calibration sites "
            "(NEE, Qle and Qh pooled, with **n** site–variable cases), the generalisation gap "
            "(calibration − validation sites), posterior 95 % coverage at calibration sites, "
            "the share of parameters within 2 % of a prior bound and the number of parameters "
            "calibrated (rows of the parameter table).", sizing_mode="stretch_width")
        notes = [safe_message(CAUTION, "info")]
        missing = sq.missing_info_models(self.service)
        if missing:
            notes.append(safe_message("No model-information file from: " + ", ".join(missing)
                                      + " (listed as “missing”).", "warning"))
        notes += [safe_message(p, "warning") for p in sq.info_problems(self.service)]
        page = pn.Column(intro, *notes, sizing_mode="stretch_width")
        grouping = pn.widgets.Select.from_param(
            self.param.grouping, options={v: k for k, v in sq.GROUPINGS.items()},
            name="Group models by")
        outcome = pn.widgets.Select.from_param(
            self.param.outcome, options={v: k for k, v in sq.OUTCOMES.items()},
            name="Outcome")
        plot = hv.DynamicMap(pn.bind(self.outcome_plot, grouping=self.param.grouping,
                                     outcome=self.param.outcome))
        fill_progressively(page, [
            lambda: pn.Column(pn.pane.Markdown("#### Choices and outcomes"),
                              pn.pane.DataFrame(self.choices_table(), index=False, escape=True,
                                                sizing_mode="stretch_width"),
                              sizing_mode="stretch_width", scroll=True),
            lambda: pn.Column(pn.pane.Markdown("#### Method vs outcome"),
                              pn.Row(grouping, outcome),
                              pn.pane.HoloViews(plot, sizing_mode="stretch_width"),
                              sizing_mode="stretch_width"),
            lambda: pn.Column(pn.pane.Markdown("#### Other choices"),
                              pn.pane.DataFrame(self.other_choices_table(), index=False,
                                                escape=True, sizing_mode="stretch_width"),
                              pn.pane.Markdown("#### In the groups' words"),
                              pn.pane.DataFrame(self.text_table(), index=False, escape=True,
                                                sizing_mode="stretch_width"),
                              sizing_mode="stretch_width", scroll=True),
        ])
        return page
