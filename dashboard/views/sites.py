"""Sites: a map of the sites coloured by a metric, and the selected site's series and diagrams.

Linked views: clicking a site on the map sets ``selection.site`` (and the URL); the time series
of NEE, Qle and Qh share their time axis; the seasonal cycle, scatter and Taylor diagram follow
the selected variable. The view composes small parts — :class:`~dashboard.views.site_map.SiteMap`,
:class:`~dashboard.views.site_card.SiteCard` and the plots of
:class:`~dashboard.views.site_plots.SitePlots` — and owns the one watcher that updates them
together.
"""

from __future__ import annotations

from functools import partial

import holoviews as hv
import panel as pn
import param

from dashboard.service import DataService
from dashboard.state import SITE_VARIABLES, Selection
from dashboard.views.loading import fill_progressively
from dashboard.views.site_card import SiteCard
from dashboard.views.site_map import SiteMap
from dashboard.views.site_plots import SitePlots
from dashboard.views.style import ACTIVE_BUTTON_CSS, Look

_SiteStream = hv.streams.Stream.define("SiteSelection", site="", scenario=1, models=[])
_VariableStream = hv.streams.Stream.define("VariableSelection", variable="NEE")
_WindowStream = hv.streams.Stream.define("TimeWindow", window="recent")

#: Time windows the time series open on (label → :meth:`SitePlots.timeseries` window).
WINDOWS = {"Last 2 years": "recent", "Whole record": "all"}
_MapStream = hv.streams.Stream.define("MapSelection", metric="misfit_reduction", variable="NEE",
                                      scenario=1, stage="Posterior", models=[])


class SitesView(pn.viewable.Viewer):
    """The Sites view: map, site card, time series, seasonal cycle, scatter, Taylor diagram."""

    selection = param.ClassSelector(class_=Selection)
    service = param.ClassSelector(class_=DataService)
    look = param.ClassSelector(class_=Look, default=Look())

    def __init__(self, **params):
        super().__init__(**params)
        s = self.selection
        # The plots follow the selection through three streams that one watcher updates
        # together (see _on_selection), rather than each plot watching the selection.
        self._site_stream = _SiteStream(site=s.site, scenario=s.scenario, models=list(s.models))
        self._variable_stream = _VariableStream(variable=s.variable)
        self._window_stream = _WindowStream()
        self.window = pn.widgets.RadioButtonGroup(options=WINDOWS, value="recent",
                                                  stylesheets=[ACTIVE_BUTTON_CSS])
        self.window.param.watch(self._on_window, "value")
        # The time series of a selected variable without observations (gpp, lai, …), shown
        # above the observed fluxes; built when one is first selected, then it follows the
        # selection while one is selected and hides otherwise.
        self._unobserved_stream = _VariableStream(variable=s.variable)
        self._unobserved_pane: pn.pane.HoloViews | None = None
        self._page: pn.Column | None = None
        self._map_stream = _MapStream(metric=s.metric, variable=s.variable, scenario=s.scenario,
                                      stage=s.stage, models=list(s.models))
        s.param.watch(self._on_selection, ["site", "variable", "scenario", "models", "stage",
                                           "metric"])
        self.map = SiteMap(selection=s, service=self.service, look=self.look,
                           map_stream=self._map_stream, site_stream=self._site_stream)
        self.card = SiteCard(service=self.service, look=self.look)
        self.plots = SitePlots(self.service, self.look)

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
        unobserved = self._unobserved(s.variable)
        if unobserved and self._unobserved_pane is None and self._page is not None:
            self._page.insert(2, self._unobserved_timeseries())
        elif unobserved and (site_changed or "variable" in names):
            updates.append((self._unobserved_stream, {"variable": unobserved}))
        if names & {"metric", "variable", "scenario", "stage", "models"}:
            updates.append((self._map_stream, {
                "metric": s.metric, "variable": s.variable, "scenario": s.scenario,
                "stage": s.stage, "models": list(s.models)}))
        with pn.io.hold(freeze=True):
            if self._unobserved_pane is not None:
                self._unobserved_pane.visible = bool(unobserved)
            if site_changed:
                self.card.update(s.site, s.scenario, s.models)
            for stream, values in updates:
                stream.event(**values)

    def _on_window(self, event: param.parameterized.Event) -> None:
        with pn.io.hold(freeze=True):
            self._window_stream.event(window=event.new)

    def _unobserved_timeseries(self) -> pn.pane.HoloViews:
        """The time series pane of the selected variable without observations."""
        self._unobserved_stream.event(variable=self.selection.variable)
        dmap = hv.DynamicMap(
            lambda site, scenario, models, variable, window: self.plots.timeseries(
                site, variable, scenario, models, window),
            streams=[self._site_stream, self._unobserved_stream, self._window_stream])
        self._unobserved_pane = pn.pane.HoloViews(dmap, sizing_mode="stretch_width")
        return self._unobserved_pane

    def _diagrams(self) -> pn.viewable.Viewable:
        """Seasonal cycle, scatter and Taylor diagram: one row, or two in presentation mode.

        Three side by side are too narrow to read from the back of a room.
        """
        plots = self.plots
        cycle, scatter = (pn.pane.HoloViews(self._dynamic(m), sizing_mode="stretch_width")
                          for m in (plots.seasonal_cycle, plots.scatter))
        taylor = pn.pane.HoloViews(self._dynamic(plots.taylor))
        if self.look.presentation:
            return pn.Column(pn.Row(cycle, scatter, sizing_mode="stretch_width"), taylor,
                             sizing_mode="stretch_width")
        return pn.Row(cycle, scatter, taylor, sizing_mode="stretch_width")

    @staticmethod
    def _unobserved(variable: str) -> str:
        """``variable`` if it has no flux-tower observations, else ``""``."""
        return "" if variable in SITE_VARIABLES else variable

    def _dynamic(self, method, *, variable: str | None = None) -> hv.DynamicMap:
        """A DynamicMap of ``method(site, variable, scenario, models)`` following the selection.

        With ``variable`` given the plot keeps that variable; otherwise it follows the
        selected one.
        """
        if variable is not None:  # a time series: it also follows the time window
            return hv.DynamicMap(
                lambda site, scenario, models, window: method(site, variable, scenario, models,
                                                              window),
                streams=[self._site_stream, self._window_stream])
        return hv.DynamicMap(
            lambda site, scenario, models, variable: method(site, variable, scenario, models),
            streams=[self._site_stream, self._variable_stream])

    def __panel__(self) -> pn.viewable.Viewable:
        s = self.selection
        self.card.update(s.site, s.scenario, s.models)

        def plot(method, sizing_mode="stretch_width", **kwargs):
            # A DynamicMap of a fixed-structure overlay with per-frame ranges: a new selection
            # patches the data of the existing Bokeh plot instead of replacing the plot. The
            # pane's sizing matches the plot's, or every update re-sends it and re-lays out the
            # whole page.
            return pn.pane.HoloViews(self._dynamic(method, **kwargs), sizing_mode=sizing_mode)

        plots = self.plots
        page = pn.Column(
            pn.Row(pn.Column(self.map, sizing_mode="stretch_width"), self.card.card,
                   sizing_mode="stretch_width"),
            pn.Row(self.card.key, self.window, sizing_mode="stretch_width"),
            sizing_mode="stretch_width")
        self._page = page
        # The selected variable's time series first: it answers "did calibration help here?".
        order = [s.variable] + [v for v in SITE_VARIABLES if v != s.variable]
        first = [self._unobserved_timeseries] if self._unobserved(s.variable) else []
        fill_progressively(page, [
            *first,
            *[partial(plot, plots.timeseries, variable=v) for v in order
              if v in SITE_VARIABLES],
            self._diagrams,
        ])
        return page
