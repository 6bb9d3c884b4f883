"""Check my files: participants check their runs privately against the protocol and community.

The participant drops NetCDF files or a zip of them on the page (a chunked upload with a progress
bar). Each file is kept in the session's own temporary folder (:mod:`dashboard.uploads`), checked
as ``callmip check`` does and described (:mod:`dashboard.checking`); readable site runs are drawn
with the Sites view's plots beside the observations and the community's models, read from the
shared service but never added to it. The folder is deleted when the session ends. Every text
that comes from a file is HTML-escaped.
"""

from __future__ import annotations

import html
import io
import logging
import threading
from collections.abc import Callable
from concurrent.futures import Future

import panel as pn
import param

from dashboard.checking import (
    CheckedFile,
    SessionService,
    check_stored,
    comparison_table,
    reports_json,
    reports_markdown,
    uploaded_runs,
)
from dashboard.service import DataService
from dashboard.state import SITE_VARIABLES, Selection
from dashboard.uploads import SessionUploads, UploadLimits, install_cleanup_handlers, safe_name
from dashboard.views.loading import in_server_session, lazy_pool, off_the_loop
from dashboard.views.site_figures import (
    drawn,
    scatter_figure,
    seasonal_figure,
    taylor_figure,
    timeseries_figure,
)
from dashboard.views.site_plots import SitePlots
from dashboard.views.style import ALERT_COLOURS, Look, alert_html

log = logging.getLogger(__name__)

#: Threads that check uploads off the event loop (shared by the sessions of a worker; the
#: NetCDF reads inside take the project's read lock, so more threads would only queue there).
CHECK_THREADS = 2
#: The worker's pool of check threads (created on first use, after any fork).
check_executor = lazy_pool(CHECK_THREADS, "callmip-check")

INTRO = """
### Check my files

Drop your CalLMIP NetCDF files (or a zip of them) below. Each file is checked against protocol
v2 exactly as `callmip check` does: its name, the global attributes against the name, the
Table 3 variables and their units, dimensions and coordinates, the time axis, and posterior
uncertainties. Readable site runs are then drawn beside the observations and the community's
models at the same site.

**Your files stay private**: they are kept only in this browser session's temporary folder on
the server, are never added to the shared archive, and are deleted when you close the page.
"""


class LimitedFileDropper(pn.widgets.FileDropper):
    """A FileDropper that enforces its size limits on the server, chunk by chunk.

    The browser's own limits (``max_file_size``) are a courtesy: a client can ignore them. Here
    a file whose chunks add up to more than ``server_max_bytes`` (or than ``budget()`` allows)
    is dropped as soon as the chunk that crosses the limit arrives, and its name is added to
    ``refused``.
    """

    server_max_bytes = param.Integer(default=200 * 1024 * 1024, bounds=(1, None))
    refused = param.List(default=[], doc="Messages about files refused by the server")

    _rename = {**pn.widgets.FileDropper._rename, "server_max_bytes": None, "refused": None}

    def __init__(self, **params):
        self._budget = params.pop("budget", None)
        super().__init__(**params)
        self._received: dict[str, int] = {}

    def _process_event(self, event) -> None:
        if event.event_name == "delete_event":  # a file removed from the list, or abandoned
            self._received.pop(event.data.get("name", ""), None)
            self._file_buffer.pop(event.data.get("name", ""), None)
        if event.event_name == "upload_event":
            data = event.data
            name = data.get("name", "")
            if data.get("chunk") == 1:
                self._received[name] = 0
            if name in self._received:
                chunk = data.get("data") or b""
                self._received[name] += len(chunk)
                limit = self.server_max_bytes
                if self._budget is not None:
                    # Files arriving at once share what the session has left: many parallel
                    # uploads cannot hold more than the session limit in memory.
                    in_flight = sum(n for other, n in self._received.items() if other != name)
                    limit = min(limit, self._budget() - in_flight)
                if self._received[name] > limit:
                    self._received.pop(name, None)
                    self._file_buffer.pop(name, None)
                    self.refused = [*self.refused, (
                        f"{safe_name(name)} was refused: it is larger than the limit of "
                        f"{limit / 2**20:.0f} MB (per file, or what this session has left)")]
                    return
            elif data.get("chunk") != 1:
                return  # the rest of a refused file
            if data.get("chunk") == data.get("total_chunks"):
                self._received.pop(name, None)
        super()._process_event(event)


def _uploaded_scenario(proxy: SessionService, site: str) -> int:
    """The scenario of the posteriors uploaded for ``site`` (priors are Scenario 1's)."""
    return min((r.scenario for r in proxy.runs if r.site == site and r.stage != "Prior"),
               default=1)


def _status(checked: CheckedFile) -> tuple[str, str]:
    report = checked.report
    if report.skipped:
        return "SKIP", "info"
    return ("PASS", "success") if report.ok else ("FAIL", "danger")


def report_html(checked: CheckedFile) -> str:
    """One file's report as HTML: status, what the file is, errors and warnings (all escaped)."""
    e = html.escape
    report, d = checked.report, checked.description
    status, kind = _status(checked)
    background, colour, border = ALERT_COLOURS[kind]
    facts = [(label, d.get(key)) for key, label in
             (("kind", "kind"), ("model", "model"), ("version", "version"),
              ("scenario", "scenario"), ("site", "site"), ("cal_val", "Cal/Val"),
              ("stage", "stage"), ("period", "period"), ("n_days", "days"))
             if d.get(key) is not None]
    parts = [f'<div class="check-report" style="border:1px solid {border};border-radius:6px;'
             f'padding:8px 12px;margin:8px 0">',
             f'<div style="font-size:1.1em"><span class="check-status" style="background:'
             f'{background};color:{colour};border:1px solid {border};border-radius:4px;'
             f'padding:1px 8px;font-weight:700">{status}</span> <b class="check-name">'
             f'{e(checked.name)}</b> — {len(report.errors)} error(s), '
             f'{len(report.warnings)} warning(s)</div>']
    if facts:
        parts.append("<div style='margin-top:4px'>" + " · ".join(
            f"{e(label)}: <b>{e(str(value))}</b>" for label, value in facts) + "</div>")
    if d.get("variables"):
        more = d.get("n_variables", 0) - len(d["variables"])
        parts.append("<div style='margin-top:4px'>variables: " + ", ".join(
            f"<code>{e(n)}</code> ({e(u) if u else '<i>no units</i>'})"
            for n, u, _ in d["variables"]) + (f" … and {more} more" if more > 0 else "")
            + "</div>")
    if report.errors or report.warnings:
        parts.append("<ul style='margin:6px 0 0 0'>")
        parts += [f"<li><b style='color:#b02a37'>error</b> <code>{e(i.code)}</code>: "
                  f"{e(i.message)}</li>" for i in report.errors]
        parts += [f"<li><span style='color:#997404'>warning</span> <code>{e(i.code)}</code>: "
                  f"{e(i.message)}</li>" for i in report.warnings]
        parts.append("</ul>")
    parts.append("</div>")
    return "".join(parts)


def comparison_html(frame) -> str:
    """The comparison table as escaped HTML (insufficient data where a value is missing)."""
    import numpy as np

    if frame.empty:
        return "<p>No run to compare for this variable (no observations, or too few days).</p>"
    e = html.escape

    def num(value, digits: int = 3) -> str:
        if value is None or (isinstance(value, float) and not np.isfinite(value)):
            return "<i>insufficient data</i>"
        return f"{value:.{digits}g}" if isinstance(value, float) else e(str(value))

    rows = []
    for r in frame.itertuples():
        community = (f"{num(r.community_median_rmse)} [{num(r.community_min_rmse)}–"
                     f"{num(r.community_max_rmse)}]" if r.n_models else "<i>no other model</i>")
        rank = f"{int(r.rank)} of {r.n_models + 1}" if r.rank is not None and (
            r.rank == r.rank) else "<i>—</i>"
        inside = ("<i>insufficient data</i>" if not np.isfinite(r.inside_spread)
                  else f"{100 * r.inside_spread:.0f} %")
        reduction = ("" if r.stage == "Prior" else
                     f"{num(r.misfit_reduction, 2)} (n = {r.n_both_stages})")
        rows.append(f"<tr><td>{e(r.model)}</td><td>{e(r.stage)}</td><td>{r.n}</td>"
                    f"<td>{num(r.rmse)}</td><td>{community} ({r.n_models} models)</td>"
                    f"<td>{rank}</td><td>{inside}</td><td>{reduction}</td></tr>")
    head = ("<tr><th>model</th><th>stage</th><th>n days</th><th>RMSE</th>"
            "<th>community posterior RMSE, median [min–max]</th><th>rank (1 = best)</th>"
            "<th>days inside community range</th><th>misfit reduction prior→posterior</th></tr>")
    return (f"<table class='check-compare' style='border-collapse:collapse' border='1' "
            f"cellpadding='4'>{head}{''.join(rows)}</table>"
            "<small>Same days for every number of a row: days with an observation and your "
            "run. Misfit reduction = 1 − RMSE_post / RMSE_prior on the days where both your "
            "stages and the observations exist.</small>")


class _UploadPlots(SitePlots):
    """The Sites view's plots, with the participant's models highlighted."""

    def highlighted(self, models: list[str]) -> list[str]:
        return self.service.uploaded_ids()


class CheckView(pn.viewable.Viewer):
    """Upload, check and compare a participant's files, privately, in this session only."""

    selection = param.ClassSelector(class_=Selection)
    service = param.ClassSelector(class_=DataService)
    look = param.ClassSelector(class_=Look, default=Look())
    limits = param.ClassSelector(class_=UploadLimits, default=UploadLimits())

    def __init__(self, **params):
        super().__init__(**params)
        self.uploads = SessionUploads(self.limits)
        self.checked: list[CheckedFile] = []
        self._session_service: SessionService | None = None
        #: The last comparison table drawn (:func:`dashboard.checking.comparison_table`).
        self.comparison = None
        limit_mb = max(1, int(self.limits.max_file_bytes / 2**20))
        self.dropper = LimitedFileDropper(
            multiple=True, max_file_size=f"{limit_mb}MB",
            max_total_file_size=f"{max(1, int(self.limits.max_session_bytes / 2**20))}MB",
            server_max_bytes=self.limits.max_file_bytes, budget=self.uploads.remaining,
            previews=[], chunk_size=4_000_000, sizing_mode="stretch_width",
            label="Drop .nc files or a .zip here")
        self.dropper.param.watch(self._on_upload, "value")
        self.dropper.param.watch(self._on_refused, "refused")
        self.messages = pn.Column(sizing_mode="stretch_width")
        #: "Checking …" while files are checked in the background (hidden otherwise).
        self.busy = pn.pane.HTML("", sizing_mode="stretch_width", visible=False,
                                 css_classes=["check-busy"])
        self._pending: list[str] = []
        self._check_lock = threading.Lock()  # one check of this session's files at a time
        self.reports = pn.Column(sizing_mode="stretch_width")
        self.summary = pn.pane.HTML("", sizing_mode="stretch_width")
        self.clear_button = pn.widgets.Button(label="Remove my files",
                                              disabled=True)
        self.clear_button.on_click(lambda _e: self.clear())
        self.json_download = pn.widgets.FileDownload(
            callback=lambda: io.StringIO(reports_json(self.checked)),
            filename="callmip-check.json", label="Report as JSON", disabled=True)
        self.md_download = pn.widgets.FileDownload(
            callback=lambda: io.StringIO(reports_markdown(self.checked)),
            filename="callmip-check.md", label="Report as Markdown", disabled=True)
        self.site = pn.widgets.Select(label="Site", options=[])
        self.variable = pn.widgets.Select(label="Variable", options=list(SITE_VARIABLES),
                                          value="NEE")
        self.compare = pn.Column(sizing_mode="stretch_width")
        self.site.param.watch(self._on_comparison_choice, "value")
        self.variable.param.watch(self._on_comparison_choice, "value")
        if in_server_session():
            pn.state.on_session_destroyed(self._on_session_destroyed)
            install_cleanup_handlers()

    # -- lifecycle -----------------------------------------------------------------------
    def _on_session_destroyed(self, session_context) -> None:
        """Delete the session's folder and forget its files (the browser has gone)."""
        self.uploads.cleanup()
        if self._session_service is not None:
            self._session_service.close()
        self.checked = []

    def clear(self) -> None:
        """Delete every uploaded file of this session and its reports."""
        self.uploads.clear()
        if self._session_service is not None:
            self._session_service.close()
        self._session_service = None
        self.checked = []
        self.messages.objects = []
        self._refresh()

    # -- uploads -------------------------------------------------------------------------
    def _on_refused(self, event: param.parameterized.Event) -> None:
        new = event.new[len(event.old or []):]
        self.messages.extend(pn.pane.HTML(alert_html(m, "danger"), sizing_mode="stretch_width")
                             for m in new)

    def _on_upload(self, event: param.parameterized.Event) -> None:
        files = dict(event.new or {})
        if not files:
            return
        # The bytes go to the session folder: the widget keeps no copy (and a file dropped
        # again under the same name, once corrected, is checked again).
        self.dropper.param.update(value={}, mime_type={})
        doc = pn.state.curdoc
        if in_server_session() and doc is not None and doc.session_context is not None:
            self.check_in_background(files, doc)
        else:
            self.add_files(files)

    def add_files(self, files: dict[str, bytes]) -> list[CheckedFile]:
        """Store, check and describe uploaded files; show their reports and plots.

        Runs the checks in the calling thread (tests, scripts); the page checks in the
        background instead (:meth:`check_in_background`).

        Parameters
        ----------
        files : dict
            Upload name (untrusted) → content.

        Returns
        -------
        list of CheckedFile
            The files checked now (a zip gives one per member).
        """
        new, messages = self.check_files(files)
        self.show_checked(new, messages)
        return new

    def check_files(self, files: dict[str, bytes]) -> tuple[list[CheckedFile], list[str]]:
        """Store and check uploaded files (no Panel object touched: safe in a worker thread).

        Returns
        -------
        tuple
            The files checked (a zip gives one per member) and messages about refused or
            failed files.
        """
        new: list[CheckedFile] = []
        messages: list[str] = []
        with self._check_lock:  # one upload of this session at a time (its folder, its budget)
            for name, data in files.items():
                result = self.uploads.add(name, data or b"")
                messages += result.refused
                for stored in result.files:
                    try:  # NetCDF reads inside take the project's read lock
                        new.append(check_stored(stored, self.service))
                    except Exception:  # never a traceback in the browser
                        log.exception("checking an uploaded file failed")
                        messages.append(f"{stored.name}: the check failed; the server log "
                                        "says why")
        return new, messages

    def check_in_background(self, files: dict[str, bytes], doc,
                            on_done: Callable[[], None] | None = None) -> Future:
        """Check ``files`` in a worker thread; show the results on the session's event loop.

        The page says "Checking …" at once; the other sessions of the worker (and this one's
        other widgets) keep being served while the files are read. The results are applied by
        a next-tick callback of ``doc``, the one Bokeh call that is safe from another thread.

        Parameters
        ----------
        files : dict
            Upload name (untrusted) → content.
        doc : bokeh.document.Document
            The session's document.
        on_done : callable, optional
            Called on the event loop after the results are shown (tests).

        Returns
        -------
        concurrent.futures.Future
            Of :meth:`check_files` and :meth:`prepare_comparison`.
        """
        names = [safe_name(n) for n in files]
        self._pending += names
        self._show_busy()
        def work() -> tuple[list[CheckedFile], list[str], SessionService | None]:
            new, messages = self.check_files(files)
            return new, messages, self.prepare_comparison(new)

        future = check_executor().submit(work)

        def apply() -> None:
            from panel.io.state import set_curdoc

            with set_curdoc(doc):
                for name in names:
                    if name in self._pending:
                        self._pending.remove(name)
                try:
                    new, messages, prepared = future.result()
                except Exception:  # check_files catches per file; this is a bug
                    log.exception("checking uploaded files failed")
                    new, messages, prepared = [], ["The check failed; the server log says "
                                                   "why."], None
                self._show_busy()
                self.show_checked(new, messages, prepared)
                if on_done is not None:
                    on_done()

        def finished(_future: Future) -> None:  # in the worker thread
            try:
                doc.add_next_tick_callback(apply)
            except Exception:  # the session has gone: nothing to show
                log.debug("upload checked after its session ended", exc_info=True)

        future.add_done_callback(finished)
        return future

    def _show_busy(self) -> None:
        pending = self._pending
        if pending:
            shown = ", ".join(pending[:5]) + (f" and {len(pending) - 5} more"
                                              if len(pending) > 5 else "")
            self.busy.object = alert_html(f"Checking {len(pending)} upload(s): {shown} …",
                                          "info")
        self.busy.visible = bool(pending)

    def show_checked(self, new: list[CheckedFile], messages: list[str],
                     prepared: SessionService | None = None) -> None:
        """Add checked files to the page: their reports, the summary and the comparison.

        ``prepared`` (from :meth:`prepare_comparison`) is used when it holds exactly the
        session's runs, so the series it has read are not read again on the event loop.
        """
        self.checked += new
        with pn.io.hold():
            self.messages.extend(pn.pane.HTML(alert_html(m, "danger"),
                                              sizing_mode="stretch_width") for m in messages)
            self._refresh(prepared)

    def prepare_comparison(self, new: list[CheckedFile]) -> SessionService | None:
        """Open the session's runs and read the series the comparison shows first.

        Runs in the check thread, after :meth:`check_files` (the reads take the project's read
        lock); what the page then draws on the event loop is the table and the plots.
        """
        runs = uploaded_runs([*self.checked, *new])
        if not runs:
            return None
        proxy = SessionService(self.service, runs)
        sites = sorted({r.site for r in runs})
        site = self.site.value if self.site.value in sites else sites[0]
        try:
            proxy.site_series(site, self.variable.value, _uploaded_scenario(proxy, site))
        except Exception:  # drawn (or reported) on the event loop as before
            log.exception("reading the uploaded series failed")
        return proxy

    def _refresh(self, prepared: SessionService | None = None) -> None:
        self.reports.objects = [pn.pane.HTML(report_html(c), sizing_mode="stretch_width")
                                for c in self.checked]
        n_fail = sum(not c.report.ok for c in self.checked)
        n = len(self.checked)
        self.summary.object = (alert_html(f"{n - n_fail} of {n} files passed; "
                                          f"{n_fail} need fixing.",
                                          "success" if n_fail == 0 else "warning")
                               if n else "")
        for widget in (self.json_download, self.md_download, self.clear_button):
            widget.disabled = not n
        runs = uploaded_runs(self.checked)
        if prepared is not None and prepared.runs == runs:  # series read in the worker thread
            self._session_service = prepared
        else:
            self._session_service = SessionService(self.service, runs) if runs else None
        sites = sorted({r.site for r in runs})
        self.site.options = sites
        if sites and self.site.value not in sites:
            self.site.value = sites[0]  # draws through the watcher
        else:
            self._draw_comparison()

    # -- comparison ----------------------------------------------------------------------
    def _on_comparison_choice(self, _event: param.parameterized.Event | None = None) -> None:
        """Another site or variable: read its series in a check thread, then draw.

        Reading an uploaded file's series took 0.2-3 s for large files; on the event loop it
        stalled every session of the worker. Outside a server session (tests, scripts) the
        comparison is drawn at once.
        """
        proxy, site = self._session_service, self.site.value
        if proxy is None or not site or not in_server_session():
            self._draw_comparison()
            return
        variable = self.variable.value
        self.compare.loading = True

        def draw() -> None:
            if (self.site.value, self.variable.value) != (site, variable):
                return  # a later choice draws
            self.compare.loading = False
            try:
                self._draw_comparison()  # the series are read: this draws them
            except Exception:  # never a traceback in the browser
                log.exception("drawing the comparison failed")
                self.compare.objects = [pn.pane.HTML(alert_html(
                    "The comparison could not be drawn; the server log says why.", "danger"))]

        off_the_loop(lambda: proxy.site_series(site, variable, _uploaded_scenario(proxy, site)),
                     draw, executor=check_executor)

    def _draw_comparison(self) -> None:
        proxy = self._session_service
        site = self.site.value
        if proxy is None or not site:
            self.compare.objects = [pn.pane.HTML(
                "<p>Plots appear here once a readable site run is uploaded.</p>")]
            return
        variable = self.variable.value
        scenario = _uploaded_scenario(proxy, site)
        plots = _UploadPlots(proxy, self.look)
        ids = proxy.uploaded_ids()
        series = proxy.site_series(site, variable, scenario)
        table = comparison_table(series, ids, variable)
        has_obs = site in proxy._service.observed_sites()
        parts = [pn.pane.HTML(
            f"<h4>Your runs at {html.escape(site)} (scenario {scenario}) beside the "
            f"community's {len(proxy._service.model_ids())} models</h4>"
            + ("" if has_obs else "<p>This archive has no observations for this site: only "
                                  "the models are compared.</p>"),
            sizing_mode="stretch_width"),
            pn.pane.HTML(comparison_html(table), sizing_mode="stretch_width")]
        for problem in proxy.problems:
            parts.append(pn.pane.HTML(alert_html(problem, "warning")))
        try:
            look = self.look
            parts.append(drawn(timeseries_figure(look, variable),
                               plots.timeseries(site, variable, scenario, [], "all"),
                               sizing_mode="stretch_width"))
            parts.append(pn.Row(
                drawn(seasonal_figure(look), plots.seasonal_cycle(site, variable, scenario, []),
                      sizing_mode="stretch_width"),
                drawn(scatter_figure(look), plots.scatter(site, variable, scenario, []),
                      sizing_mode="stretch_width"),
                drawn(taylor_figure(look), plots.taylor(site, variable, scenario, []),
                      sizing_mode="fixed"),
                sizing_mode="stretch_width"))
        except Exception:  # one plot that fails never takes the report with it
            log.exception("drawing the comparison failed")
            parts.append(pn.pane.HTML(alert_html("The plots could not be drawn; the server "
                                                 "log says why.", "danger")))
        self.compare.objects = parts
        self.comparison = table

    def __panel__(self) -> pn.viewable.Viewable:
        self._draw_comparison()
        limits = pn.pane.HTML(
            f"<small>Limits: {html.escape(self.limits.describe())}. Zips are extracted "
            "safely (folders inside are ignored).</small>")
        return pn.Column(
            pn.pane.Markdown(INTRO, sizing_mode="stretch_width"),
            self.dropper, limits, self.busy, self.messages, self.summary,
            pn.Row(self.json_download, self.md_download, self.clear_button),
            self.reports,
            pn.pane.HTML("<h3>Against the observations and the community</h3>"),
            pn.Row(self.site, self.variable),
            self.compare,
            sizing_mode="stretch_width", css_classes=["callmip-complete", "check-view"])
