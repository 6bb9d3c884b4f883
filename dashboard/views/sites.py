"""Sites: a map of the sites coloured by a metric, and the selected site's series and diagrams.

Linked views: clicking a site on the map sets ``selection.site`` (and the URL); the time series
of NEE, Qle and Qh share their time axis (pan or zoom one and the others follow, and the days of
the new view are sent when the browser lacks them); the seasonal
cycle, scatter and Taylor diagram follow the selected variable. The view composes small parts —
:class:`~dashboard.views.site_map.SiteMap`, :class:`~dashboard.views.site_card.SiteCard`, what
:class:`~dashboard.views.site_plots.SitePlots` computes and the Bokeh figures of
:mod:`~dashboard.views.site_figures` that draw it — and owns the one watcher that updates them
together.
"""

from __future__ import annotations

from collections.abc import Callable

import panel as pn
import param
from bokeh.events import RangesUpdate
from bokeh.models import Range1d

from dashboard.service import DataService
from dashboard.state import SITE_VARIABLES, Selection
from dashboard.views.loading import built_together, fill_progressively
from dashboard.views.site_card import SiteCard
from dashboard.views.site_figures import (
    PlotFigure,
    new_time_axis,
    scatter_figure,
    seasonal_figure,
    taylor_figure,
    timeseries_figure,
)
from dashboard.views.site_map import SiteMap
from dashboard.views.site_plots import SitePlots
from dashboard.views.style import ACTIVE_BUTTON_CSS, Look

#: Time windows the time series open on (label → :meth:`SitePlots.timeseries` window).
WINDOWS = {"Last 2 years": "recent", "Whole record": "all"}


class SitesView(pn.viewable.Viewer):
    """The Sites view: map, site card, time series, seasonal cycle, scatter, Taylor diagram."""

    selection = param.ClassSelector(class_=Selection)
    service = param.ClassSelector(class_=DataService)
    look = param.ClassSelector(class_=Look, default=Look())

    def __init__(self, **params):
        super().__init__(**params)
        s = self.selection
        self.window = pn.widgets.RadioButtonGroup(options=WINDOWS, value="recent",
                                                  stylesheets=[ACTIVE_BUTTON_CSS])
        self.window.param.watch(self._on_window, "value")
        s.param.watch(self._on_selection, ["site", "variable", "scenario", "models", "stage",
                                           "metric"])
        self.map = SiteMap(selection=s, service=self.service, look=self.look)
        self.card = SiteCard(service=self.service, look=self.look)
        self.plots = SitePlots(self.service, self.look)
        #: The time axis every time series shares.
        self.time_range = Range1d(0, 1)
        self._time_axis = new_time_axis()
        #: Time series figures by variable (the observed fluxes), built as the page fills in.
        self.series_figures: dict[str, PlotFigure] = {}
        #: The time series of a selected variable without observations (gpp, lai, …), shown
        #: above the observed fluxes; built when one is first selected, then it follows the
        #: selection while one is selected and hides otherwise.
        self.unobserved_figure: PlotFigure | None = None
        self._unobserved_pane: pn.pane.Bokeh | None = None
        #: The diagrams of the selected variable: seasonal cycle, scatter, Taylor.
        self.diagram_figures: dict[str, PlotFigure] = {}
        self._page: pn.Column | None = None

    # -- drawing ---------------------------------------------------------------------------
    def _draw_series(self, figure: PlotFigure, variable: str) -> None:
        s = self.selection
        figure.show(self.plots.timeseries(s.site, variable, s.scenario, list(s.models),
                                          self.window.value))

    def _draw_diagrams(self) -> None:
        s = self.selection
        methods = {"cycle": self.plots.seasonal_cycle, "scatter": self.plots.scatter,
                   "taylor": self.plots.taylor}
        for name, figure in self.diagram_figures.items():
            figure.show(methods[name](s.site, s.variable, s.scenario, list(s.models)))

    def _on_selection(self, *events: param.parameterized.Event) -> None:
        """Update every plot that depends on the changed selection, as one document change.

        Every figure gets new data, texts and ranges on its existing models inside one held
        document change: one websocket message and one paint. No model is added or replaced,
        so the document's model graph need not be walked again (``freeze=True`` would walk
        all of it at the end, 0.05–0.3 s a switch). The site card and colour key change in
        the same message.
        """
        s = self.selection
        names = {e.name for e in events}
        site_changed = bool(names & {"site", "scenario", "models"})
        unobserved = self._unobserved(s.variable)
        if unobserved and self._unobserved_pane is None and self._page is not None:
            self._page.insert(2, self._unobserved_timeseries())
        with pn.io.hold():
            if self._unobserved_pane is not None:
                self._unobserved_pane.visible = bool(unobserved)
                if unobserved and (site_changed or "variable" in names):
                    self._draw_series(self.unobserved_figure, unobserved)
            if site_changed:
                self.card.update(s.site, s.scenario, s.models)
                self.map.mark(s.site)
                for variable, figure in self.series_figures.items():
                    self._draw_series(figure, variable)
            if site_changed or "variable" in names:
                self._draw_diagrams()
            if names & {"metric", "variable", "scenario", "stage", "models"}:
                self.map.show(s.metric, s.variable, s.scenario, s.stage, list(s.models))

    def _on_view(self, event: RangesUpdate) -> None:
        """After a pan, zoom or reset: send the days of the new view the browser lacks.

        The time series hold only the days around what they show (``send_visible``); the
        browser reports the view every linked plot shows once an interaction ends.
        """
        figures = self._time_series_figures()
        with pn.io.hold(figures[0].figure.document if figures else None):
            for figure in figures:
                figure.follow_view(event.x0, event.x1)

    def _time_series_figures(self) -> list[PlotFigure]:
        """Every time series figure built so far (the unobserved variable's first)."""
        return [f for f in (self.unobserved_figure, *self.series_figures.values())
                if f is not None]

    def _series_figure(self, variable: str) -> PlotFigure:
        """A time series figure on the shared time axis that follows the browser's view."""
        figure = timeseries_figure(self.look, variable, self.time_range, self._time_axis,
                                   send_visible=True)
        figure.figure.on_event(RangesUpdate, self._on_view)
        return figure

    def _on_window(self, event: param.parameterized.Event) -> None:
        with pn.io.hold():
            for variable, figure in self.series_figures.items():
                self._draw_series(figure, variable)
            if self.unobserved_figure is not None and self._unobserved_pane.visible:
                self._draw_series(self.unobserved_figure, self.selection.variable)

    # -- parts of the page -----------------------------------------------------------------
    def _unobserved_timeseries(self) -> pn.pane.Bokeh:
        """The time series pane of the selected variable without observations."""
        self.unobserved_figure = self._series_figure("value")
        self._draw_series(self.unobserved_figure, self.selection.variable)
        self._unobserved_pane = pn.pane.Bokeh(self.unobserved_figure.figure,
                                              sizing_mode="stretch_width")
        return self._unobserved_pane

    def _timeseries(self, variable: str) -> pn.pane.Bokeh:
        """The time series pane of an observed flux."""
        figure = self._series_figure(variable)
        self.series_figures[variable] = figure
        self._draw_series(figure, variable)
        return pn.pane.Bokeh(figure.figure, sizing_mode="stretch_width")

    def _diagrams(self) -> pn.viewable.Viewable:
        """Seasonal cycle, scatter and Taylor diagram: one row, or two in presentation mode.

        Three side by side are too narrow to read from the back of a room.
        """
        self.diagram_figures = {"cycle": seasonal_figure(self.look),
                                "scatter": scatter_figure(self.look),
                                "taylor": taylor_figure(self.look)}
        self._draw_diagrams()
        cycle, scatter = (pn.pane.Bokeh(self.diagram_figures[name].figure,
                                        sizing_mode="stretch_width")
                          for name in ("cycle", "scatter"))
        taylor = pn.pane.Bokeh(self.diagram_figures["taylor"].figure, sizing_mode="fixed")
        if self.look.presentation:
            return pn.Column(pn.Row(cycle, scatter, sizing_mode="stretch_width"), taylor,
                             sizing_mode="stretch_width")
        return pn.Row(cycle, scatter, taylor, sizing_mode="stretch_width")

    @staticmethod
    def _unobserved(variable: str) -> str:
        """``variable`` if it has no flux-tower observations, else ``""``."""
        return "" if variable in SITE_VARIABLES else variable

    def __panel__(self) -> pn.viewable.Viewable:
        s = self.selection
        self.card.update(s.site, s.scenario, s.models)
        page = pn.Column(
            pn.Row(pn.Column(self.map, sizing_mode="stretch_width"), self.card.card,
                   sizing_mode="stretch_width"),
            pn.Row(self.card.key, self.window, sizing_mode="stretch_width"),
            sizing_mode="stretch_width")
        self._page = page
        # The selected variable's time series first: it answers "did calibration help here?";
        # then everything else in one step (each step re-walks the document's models).
        observed = [v for v in SITE_VARIABLES if v != s.variable]
        first: Callable[[], pn.viewable.Viewable] = (
            self._unobserved_timeseries if self._unobserved(s.variable)
            else _bind(self._timeseries, s.variable))
        fill_progressively(page, [first, built_together(
            [*(_bind(self._timeseries, v) for v in observed), self._diagrams])],
            first_drawn=lambda: [f.figure for f in self._time_series_figures()])
        return page


def _bind(method: Callable[[str], pn.viewable.Viewable], variable: str
          ) -> Callable[[], pn.viewable.Viewable]:
    """``method`` with its variable bound (a step of the page's progressive fill)."""
    return lambda: method(variable)
