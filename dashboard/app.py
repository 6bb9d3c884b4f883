"""The application factory: one new app (selection, widgets, views) per browser session.

``create_app(data_root)`` builds everything a session needs; nothing session-specific lives at
module level. The archive, its catalog, opened files and metric tables are shared per worker
process (:mod:`dashboard.service`), never per-session objects.

A session costs little: the page shell (sidebar and header) is sent first and the active view is
built only once the browser has loaded the page (``defer_load``), so a request whose browser has
gone builds no plots; the other views are built when first opened.
"""

from __future__ import annotations

import importlib
import importlib.util
import warnings
from urllib.parse import urlencode

import holoviews as hv
import panel as pn
from bokeh.core.validation import silence
from bokeh.core.validation.warnings import FIXED_SIZING_MODE

from dashboard import queries
from dashboard.export import snapshot_button
from dashboard.service import DataService, get_service
from dashboard.state import METRICS, SITE_VARIABLES, UNOBSERVED_VARIABLES, VIEWS, Selection
from dashboard.uploads import UploadLimits
from dashboard.urlstate import query_from_selection, selection_from_query
from dashboard.views.about import AboutView
from dashboard.views.loading import in_server_session
from dashboard.views.style import ACTIVE_BUTTON_CSS, Look, safe_message

hv.extension("bokeh", logo=False)
# Canvas, not WebGL: without a GPU (software WebGL, as in VMs and headless browsers) Bokeh's
# per-paint copy of the WebGL canvas took ~40 s per site switch; daily series are small enough
# for canvas, and the global view sends datashaded images.
hv.renderer("bokeh").webgl = False
# The map and the Taylor diagram are sized by their frame (frame_width/frame_height), which
# Bokeh's "fixed sizing needs width and height" check does not know about.
silence(FIXED_SIZING_MODE, True)

VIEW_LABELS = {"overview": "Overview", "sites": "Sites", "parameters": "Parameters",
               "global": "Global", "scenarios": "Scenarios", "methods": "Methods",
               "check": "Check my files"}

#: Where each view's class lives ("module:Class"), imported when a session first opens it.
VIEW_CLASSES: dict[str, str] = {
    "overview": "dashboard.views.overview:OverviewView",
    "sites": "dashboard.views.sites:SitesView",
    "parameters": "dashboard.views.parameters:ParametersView",
    "global": "dashboard.views.global_view:GlobalView",
    "scenarios": "dashboard.views.scenarios:ScenariosView",
    "methods": "dashboard.views.methods:MethodsView",
    "check": "dashboard.views.check:CheckView",
}


def view_class(view: str) -> type | None:
    """The class of ``view``, or None when this release does not include it yet."""
    module_name, _, class_name = VIEW_CLASSES[view].partition(":")
    if importlib.util.find_spec(module_name) is None:
        return None
    return getattr(importlib.import_module(module_name), class_name)

#: Presentation mode: larger text everywhere. Panel draws every widget and pane inside a
#: shadow root that page CSS does not reach, but CSS custom properties are inherited into
#: shadow roots: Bokeh sizes widget and text fonts with --bokeh-font-size / --font-size.
PRESENTATION_CSS = """
:root, body { --bokeh-font-size: 17px; --font-size: 17px; --presentation-scale: 1.35; }
h1, h2, h3 { font-size: 1.6em !important; }
"""


def _session_args() -> dict[str, list[bytes]]:
    try:
        return dict(pn.state.session_args or {})
    except Exception:  # outside a server session
        return {}


def _local_stylesheets() -> None:
    """Point this session's component stylesheets at the server, never at Panel's CDN.

    Panel records where its stylesheets live when it renders a session's HTML page. A session
    that Bokeh re-creates over the websocket (the page took longer than the unused-session
    lifetime to connect, as under a burst of workshop users) never gets that page, and Panel
    then pointed ~140 stylesheets at cdn.holoviz.org: an offline server showed them unstyled.
    """
    document = pn.state.curdoc
    if document is None or document.session_context is None:
        return
    from panel.io.resources import LOCAL_DIST

    rel = pn.state.rel_path
    document._template_variables.setdefault("dist_url", f"{rel}/{LOCAL_DIST}" if rel
                                            else LOCAL_DIST)


def _flag(args: dict, name: str) -> str:
    values = args.get(name) or [b""]
    value = values[-1]
    return value.decode("utf-8", "replace") if isinstance(value, bytes) else str(value)


def build_widgets(selection: Selection, service: DataService, *,
                  upload: bool = True) -> list[pn.viewable.Viewable]:
    """Sidebar widgets bound to the session's selection (created per session)."""
    models = service.model_ids()
    if selection.view == "global":  # models with global runs only can be chosen there too
        from dashboard import global_queries as gq

        models = models + [m for m in gq.global_models(service) if m not in models]
    sites = queries.site_order(service)
    offered = [v for v in VIEWS if upload or v != "check"]
    view = pn.widgets.RadioButtonGroup.from_param(
        selection.param.view, options={VIEW_LABELS[v]: v for v in offered},
        orientation="vertical", name="View", stylesheets=[ACTIVE_BUTTON_CSS])
    site = pn.widgets.Select.from_param(selection.param.site, options=[""] + sites, name="Site")
    variable = pn.widgets.Select.from_param(
        selection.param.variable,
        options={**{f"{v} (observed)": v for v in SITE_VARIABLES},
                 **{f"{v} (spread only)": v for v in UNOBSERVED_VARIABLES}},
        name="Variable")
    model_pick = pn.widgets.MultiChoice.from_param(
        selection.param.models, options=models,
        name="Highlighted models (others muted)",
        description="Models drawn in colour with prior, posterior and band; the others are "
                    "drawn muted. None chosen: the first model is highlighted.")
    scenario = pn.widgets.Select.from_param(selection.param.scenario,
                                            options=service.scenarios(), name="Scenario")
    stage = pn.widgets.RadioButtonGroup.from_param(selection.param.stage, name="Stage",
                                                   stylesheets=[ACTIVE_BUTTON_CSS])
    metric = pn.widgets.Select.from_param(
        selection.param.metric,
        options={label.split(" (")[0]: key for key, label in METRICS.items()},
        name="Map colour")
    widgets = [view, site, variable, model_pick, scenario, stage, metric]
    for widget in widgets:
        widget.sizing_mode = "stretch_width"  # fit the sidebar (fixed widths ran past its edge)
        # Each is one discrete choice: handle it at once. Panel waits 50 ms for more changes
        # of a widget (``_debounce``), a sixth of a site switch's 0.3 s budget.
        widget._debounce = 0
    return widgets


def url_models(service: DataService, args: dict) -> list[str]:
    """The models a URL may name: those with global runs in the Global view, else site runs'.

    Parameters
    ----------
    service : DataService
        The session's data service.
    args : dict
        The URL's query arguments (``pn.state.session_args``).

    Returns
    -------
    list of str
        Model ids (``<model>.<version>``) the view named by ``args`` can draw.
    """
    if _flag(args, "view").strip() == "global":
        from dashboard import global_queries as gq

        return gq.global_models(service)
    return service.model_ids()


def _bind_url(selection: Selection, service: DataService) -> list[str]:
    """Restore the selection from the URL and keep the URL up to date; return problems."""
    problems = selection_from_query(selection, _session_args(),
                                    sites=list(service.sites["site_id"]),
                                    models=url_models(service, _session_args()),
                                    scenarios=service.scenarios())
    location = pn.state.location
    if location is None:
        return problems
    args = _session_args()

    def desired() -> str:
        query = query_from_selection(selection)
        for flag in ("theme", "present"):
            if _flag(args, flag):
                query[flag] = _flag(args, flag)
        return "?" + urlencode(query, safe=",")

    def push(*_events) -> None:
        # The whole query is rewritten, so a value that was ignored leaves the URL too: a
        # shared link always reproduces what is on the screen.
        location.search = desired()

    def correct(event) -> None:
        # The browser reports its own URL when it connects (Panel's Location sets ``search``
        # from ``window.location``), which brings the ignored values back; that report can
        # come before or after the page's onload. Write the corrected query again on the
        # next tick: a value set while Panel applies the browser's change is not sent back.
        if event.new != desired() and pn.state.curdoc is not None:
            pn.state.curdoc.add_next_tick_callback(push)

    selection.param.watch(push, list(query_from_selection(Selection()).keys())
                          + ["site", "models", "time", "layer", "projection"])
    location.param.watch(correct, "search")
    push()
    return problems


def create_app(data_root: str, *, theme: str | None = None, presentation: bool | None = None,
               upload: bool = True, upload_limits: UploadLimits | None = None
               ) -> pn.template.BootstrapTemplate:
    """Build the dashboard for one session.

    Parameters
    ----------
    data_root : str
        Folder of CalLMIP files.
    theme : {"light", "dark"}, optional
        Colour theme; default from the URL (``?theme=dark``) or light.
    presentation : bool, optional
        Large fonts and high contrast for screen sharing; default from the URL (``?present=1``).
    upload : bool
        Offer the "Check my files" page (``callmip serve --no-upload`` turns it off).
    upload_limits : dashboard.uploads.UploadLimits, optional
        Size limits of that page (default 200 MB per file, 2 GB per session).

    Returns
    -------
    panel.template.BootstrapTemplate
        The session's page.
    """
    _local_stylesheets()
    if upload:  # the upload widget's scripts must be in the page before the view is built
        pn.extension("filedropper")
    args = _session_args()
    theme = theme or ("dark" if _flag(args, "theme") == "dark" else "light")
    if presentation is None:
        presentation = _flag(args, "present") in ("1", "true", "yes")
    look = Look(theme=theme, presentation=presentation)
    service = get_service(data_root)
    selection = Selection()
    problems = _bind_url(selection, service)
    if not selection.site and service.archive.sites():
        candidates = service.observed_sites() or service.archive.sites()
        # DK-Sor is the protocol's test site (Phase 1a); else the first site with observations.
        selection.site = "DK-Sor" if "DK-Sor" in candidates else candidates[0]

    views: dict[str, pn.viewable.Viewer] = {}  # built when first shown

    def render(view: str) -> pn.viewable.Viewable:
        if view == "check" and not upload:
            return safe_message("Checking files is turned off on this server; run "
                                "`callmip check FILES` on your own machine.", "info")
        if view not in views:
            cls = view_class(view)
            if cls is None:
                return safe_message(f"The {VIEW_LABELS[view]} view is not part of this release "
                                    "yet; see the README for the roadmap.", "info")
            extra = {"limits": upload_limits} if view == "check" and upload_limits else {}
            views[view] = cls(selection=selection, service=service, look=look, **extra)
        return views[view]

    main = pn.Column(*[safe_message(p, "warning") for p in problems],
                     pn.panel(pn.bind(render, selection.param.view), loading_indicator=True,
                              defer_load=in_server_session()),
                     sizing_mode="stretch_width")
    widgets = build_widgets(selection, service, upload=upload)
    toggle = pn.widgets.Toggle(label="Presentation mode", value=presentation,
                               stylesheets=[ACTIVE_BUTTON_CSS])
    theme_switch = pn.widgets.RadioButtonGroup(label="Theme", options=["light", "dark"],
                                               value=theme, stylesheets=[ACTIVE_BUTTON_CSS])

    def reload_with(**query) -> None:
        if pn.state.location is not None:
            pn.state.location.update_query(**query)
            pn.state.location.reload = True

    toggle.param.watch(lambda e: reload_with(present="1" if e.new else "0"), "value")
    theme_switch.param.watch(lambda e: reload_with(theme=e.new), "value")
    # Snapshot: the current view with its selection as one standalone HTML file (offline).
    snapshot = snapshot_button(selection, service, look)
    snapshot.sizing_mode = "stretch_width"
    about = pn.Card(AboutView(selection=selection), title="About CalLMIP and the metrics",
                    collapsed=True, sizing_mode="stretch_width")
    root_note = pn.pane.HTML(
        f'<small>{len(service.archive.catalog)} files · {len(service.model_ids())} models · '
        f'{len(service.archive.sites())} sites</small>')
    # A still busy indicator (a dot that fills while the server works): the default spinner's
    # animation kept a core busy in software-rendered browsers (VMs, screen sharing), slowing
    # every update by ~40 % on this machine. (Panel warns that a widget passed to a parameter
    # could one day be read as a reference; the template uses it as the widget it is.)
    busy = pn.indicators.BooleanStatus(value=False, color="light", width=22, height=22)
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", message=".*'busy_indicator'.*allow_refs")
        template = pn.template.BootstrapTemplate(
            title="CalLMIP Explorer", theme="dark" if theme == "dark" else "default",
            sidebar=[*widgets, pn.layout.Divider(), toggle, theme_switch, snapshot, root_note],
            main=[main, about], sidebar_width=360 if presentation else 300,
            raw_css=[PRESENTATION_CSS] if presentation else [], busy_indicator=busy,
        )
    template.selection = selection  # for tests and the exporter
    template.views = views
    template.snapshot = snapshot
    return template
