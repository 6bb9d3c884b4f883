"""Scenarios: what each data stream constrains (protocol v2 §3.1, issue #16).

Per model, a scenario × variable grid of misfit reduction (or χ² reduction, validation-site
reduction, generalisation gap) with the number of sites behind each cell; the variables a
scenario calibrates are marked ``◆`` so trade-offs stand out (NEE getting worse when calibrating
on Qle only). Across models, the same grid of medians with the number of models, and a table
with the inter-model spread reduction. Clicking a cell opens the Sites view for that model,
scenario and variable; a button opens the Parameters view for the model. Models that ran only
Scenario 1 are listed. Every number comes from the ``scenarios`` metric table.
"""

from __future__ import annotations

import re
from functools import partial

import holoviews as hv
import panel as pn
import param

from dashboard import strategy_queries as sq
from dashboard.service import DataService
from dashboard.state import Selection
from dashboard.views.loading import fill_progressively
from dashboard.views.style import ACTIVE_BUTTON_CSS, DIVERGING, Look, for_holoviews, safe_message

CAUTION = ("With a handful of models these grids describe what each group's calibration did; "
           "they are not causal findings about data streams or methods.")


class ScenariosView(pn.viewable.Viewer):
    """Scenario × variable grids per model and across models, with n everywhere."""

    selection = param.ClassSelector(class_=Selection)
    service = param.ClassSelector(class_=DataService)
    look = param.ClassSelector(class_=Look, default=Look())
    measure = param.Selector(default="median_misfit_reduction_cal",
                             objects=list(sq.GRID_MEASURES), doc="What the grids show")

    def __init__(self, **params):
        super().__init__(**params)
        self._grids: dict[str, hv.DynamicMap] = {}
        self._taps: dict[str, hv.streams.Tap] = {}

    # -- plots ---------------------------------------------------------------------------
    def grid_heatmap(self, model: str, measure: str) -> hv.HeatMap:
        """The scenario × variable heatmap of one model (or ``"all"``)."""
        frame = sq.scenario_grid(self.service, model, measure)
        label = sq.GRID_MEASURES.get(measure, measure)
        title = ("All models: median over models" if model == "all" else model)
        heat = hv.HeatMap(for_holoviews(frame), kdims=["variable", "scenario_label"],
                          vdims=["value", "n", "label", "models", "ran"])
        n_rows = max(frame["scenario"].nunique(), 1) if not frame.empty else 6
        return heat.opts(
            cmap=DIVERGING, clim=(-1, 1), colorbar=model == "all",
            clipping_colors={"NaN": "#e6e6e6"}, tools=["hover", "tap"], shared_axes=False,
            width=int(360 * self.look.fontscale) + (80 if model == "all" else 0),
            height=int((90 + 42 * n_rows) * self.look.fontscale), invert_yaxis=True,
            title=title, xlabel="", ylabel="", clabel=label, fontscale=self.look.fontscale,
            bgcolor=self.look.bg,
            hover_tooltips=[("scenario", "@scenario_label"), ("variable", "@variable"),
                            (label, "@value{+0.000}"),
                            ("n (sites)" if model != "all" else "n (models)", "@n"),
                            ("models", "@models")])

    def grid_labels(self, model: str, measure: str) -> hv.Labels:
        """Value and n in every cell, ``◆`` on calibrated variables, ``not run`` elsewhere."""
        frame = sq.scenario_grid(self.service, model, measure)
        return hv.Labels(for_holoviews(frame), kdims=["variable", "scenario_label"],
                         vdims=["label"]).opts(
            text_font_size=f"{int(9 * self.look.fontscale)}pt", text_color="#222222")

    def grid(self, model: str) -> hv.DynamicMap:
        """The clickable grid of ``model`` (built once per model and session)."""
        if model not in self._grids:
            heat = hv.DynamicMap(pn.bind(self.grid_heatmap, model=model,
                                         measure=self.param.measure))
            labels = hv.DynamicMap(pn.bind(self.grid_labels, model=model,
                                           measure=self.param.measure))
            if model != "all":
                # The Tap's source is the heatmap's own DynamicMap (not the overlay's): a Tap on
                # a DynamicMap of an Overlay never fired in the browser (see the Overview).
                tap = hv.streams.Tap(source=heat)
                tap.param.watch(partial(self._on_tap, model), ["x", "y"])
                self._taps[model] = tap
            self._grids[model] = heat * labels
        return self._grids[model]

    # -- interaction ---------------------------------------------------------------------
    def open_cell(self, model: str, variable: object, scenario_label: object) -> bool:
        """Open the Sites view for ``model``, the cell's scenario and variable.

        Returns ``False`` (nothing changes) when the cell is not a run of the model.
        """
        if not isinstance(variable, str) or not isinstance(scenario_label, str):
            return False
        match = re.match(r"Scen(\d+)", scenario_label)
        if match is None or model not in sq.scenario_models(self.service):
            return False
        scenario = int(match.group(1))
        grid = sq.scenario_grid(self.service, model, self.measure)
        cell = grid[(grid["scenario"] == scenario) & (grid["variable"] == variable)]
        if cell.empty or not bool(cell["ran"].iloc[0]):
            return False
        self.selection.param.update(models=[model], scenario=scenario, variable=variable,
                                    view="sites")
        return True

    def _on_tap(self, model: str, *events: param.parameterized.Event) -> None:
        stream = events[0].obj
        self.open_cell(model, stream.x, stream.y)

    def open_parameters(self, model: str, *_events: object) -> None:
        """Open the Parameters view for ``model`` (its parameter shifts across scenarios)."""
        self.selection.param.update(models=[model], view="parameters")

    # -- layout --------------------------------------------------------------------------
    def shown_models(self, models: list[str]) -> list[str]:
        """The chosen models that are in the table, or all of them when none is chosen."""
        available = sq.scenario_models(self.service)
        chosen = [m for m in models if m in available]
        return chosen or available

    def card(self, model: str) -> pn.Column:
        """The grid of ``model`` with its Parameters button."""
        button = pn.widgets.Button(label="Parameter shifts across scenarios",
                                   width=int(300 * self.look.fontscale))
        button.on_click(partial(self.open_parameters, model))
        return pn.Column(pn.pane.HoloViews(self.grid(model)), button)

    def model_grids(self, models: list[str]) -> pn.viewable.Viewable:
        """One grid per shown model, each with its Parameters button (all built at once)."""
        shown = self.shown_models(models)
        if not shown:
            return safe_message("No scored posterior runs: nothing to compare.", "info")
        # Two a row: three ran past the right edge of a 1280–1400 px wide window (the main
        # area is ~1000 px beside the sidebar).
        return pn.GridBox(*[self.card(m) for m in shown], ncols=2)

    def _per_model_steps(self) -> list:
        """Steps of the page's "Per model" part, for :func:`fill_progressively`.

        Its heading with the first grid, then one more grid per step (into the same
        two-a-row box, the step returns None); a new ``models`` choice rebuilds the part.
        """
        shown = self.shown_models(self.selection.models)
        box = pn.GridBox(ncols=2, sizing_mode="stretch_width")
        holder = pn.Column(sizing_mode="stretch_width")

        def rebuild(*_events: param.parameterized.Event) -> None:
            holder.objects = [self.model_grids(self.selection.models)]

        def first() -> pn.viewable.Viewable:
            self.selection.param.watch(rebuild, "models")
            if shown:
                box.append(self.card(shown[0]))
                holder.objects = [box]
            else:
                rebuild()
            return pn.Column(pn.pane.Markdown("#### Per model"), holder,
                             sizing_mode="stretch_width")

        def add(model: str) -> None:
            if holder.objects and holder.objects[0] is box:  # not rebuilt meanwhile
                box.append(self.card(model))

        return [first, *[partial(add, m) for m in shown[1:]]]

    def __panel__(self) -> pn.viewable.Viewable:
        self.service.tables()
        intro = pn.pane.Markdown(
            "### Scenarios: what each data stream constrains\n"
            "Protocol v2 §3.1: Scenario 1 calibrates on NEE + Qle + Qh (required); the optional "
            "Scenarios 2–6 on NEE, Qle, Qh, NEE + Qle and Qle + Qh. Each cell: the median over "
            "sites of the chosen measure for the posterior of that scenario against the prior, "
            "with **n** the number of sites (for the gap: calibration/validation sites; "
            "across models: the number of models, each model's "
            "median counted once). **◆** marks the variables the scenario calibrates; the other "
            "cells show what calibrating on some streams did to the rest (blue: better, red: "
            "worse). Grey: not run, or no site with enough data. Click a cell to open that "
            "model, scenario and variable in the Sites view.", sizing_mode="stretch_width")
        measure = pn.widgets.RadioButtonGroup.from_param(
            self.param.measure, options={v: k for k, v in sq.GRID_MEASURES.items()},
            name="Measure", stylesheets=[ACTIVE_BUTTON_CSS])
        only_one = sq.models_with_scenario1_only(self.service)
        notes = [safe_message(CAUTION, "info")]
        if only_one:
            notes.append(safe_message("Ran Scenario 1 only (no optional scenario): "
                                      + ", ".join(only_one) + ". Their grids show one row.",
                                      "info"))
        page = pn.Column(intro, measure, *notes, sizing_mode="stretch_width")
        # The shell first, then one grid per event-loop tick, the cross-model part last.
        fill_progressively(page, [
            *self._per_model_steps(),
            lambda: pn.Column(
                pn.pane.Markdown("#### Across models"),
                pn.pane.HoloViews(self.grid("all")),
                pn.pane.Markdown(
                    "Per scenario and variable: the number of models that ran it, the median "
                    "over models of their median misfit reduction at calibration and "
                    "validation sites, the generalisation gap (Cal − Val: does it depend on "
                    "the data streams used?) and the median inter-model spread reduction over "
                    "calibration sites (needs two or more models).",
                    sizing_mode="stretch_width"),
                pn.pane.DataFrame(sq.cross_model_frame(self.service), index=False,
                                  escape=True, sizing_mode="stretch_width"),
                sizing_mode="stretch_width"),
        ])
        return page
