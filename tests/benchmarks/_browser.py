"""Chromium helpers of ``tests/benchmarks/run.py``: open pages, time first plots and updates.

Everything here drives Debian's chromium through async Playwright and measures in the page
(``performance.now()``), so the numbers do not depend on how often Python polls:

* :func:`open_timed` — from the moment Python asks for the page until Bokeh's document is idle
  and a plot (a Bokeh ``Plot`` view with its canvas) has been drawn and is visible; and until
  the page is complete: the view marked its container with the CSS class ``callmip-complete``
  (:data:`dashboard.views.loading.COMPLETE_CLASS`) and every visible plot has been drawn.
  Pages send a shell first and add their plots one by one (Panel's ``defer_load``), so neither
  the document being created nor it being idle is enough.
* :func:`switch_timed` — set a sidebar widget's value from JavaScript as a user would, then
  wait until the update has arrived and the page has been quiet for a while; the time is from
  setting the value to the last animation frame that followed a document change (the approach
  of ``tests/benchmarks/bench_views.py``).

Every http(s) request that does not go to ``127.0.0.1`` is aborted and counted (:class:`Chromium`).
"""

from __future__ import annotations

import asyncio
import contextlib
import re
import time
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlsplit

#: Page size of every measured page (as in bench_views.py).
VIEWPORT = {"width": 1600, "height": 1100}
#: CSS class a view of the app puts on its container once its last plot is in.
COMPLETE_CLASS = "callmip-complete"
#: How Playwright checks whether a page opened by :func:`open_timed` has drawn: on every
#: animation frame, like the page's own probe (INIT_JS), which runs on every frame until the
#: page is complete anyway, so this adds no work to the page. The measured times come from the
#: page's clock, so it does not change them either; it only ends each wait within a frame
#: instead of up to 100 ms later (~50 ms per wait). Waits on a complete page (:func:`settle`,
#: :func:`switch_timed`) poll every 100 ms: there, polling on every frame would make the page
#: draw frames it otherwise would not (~0.1 core per page here).
OPEN_POLLING = "raf"

#: Installed before any page script runs. On every animation frame until the page is complete:
#: keep the first time (ms since the navigation started) at which Bokeh's document is idle and a
#: visible plot has been drawn (``__benchFirstPlot``), then the first time at which, also, a
#: model carries COMPLETE_CLASS, its view has drawn all its children and every visible plot
#: has been drawn (``__benchComplete``).
#: ``__benchLastChange`` is the time of the last document change (for :func:`settle`).
INIT_JS = """
(() => {
  const COMPLETE = '__COMPLETE__';
  window.__benchErrors = [];
  window.addEventListener('error', (e) => window.__benchErrors.push(String(e.message)));
  window.addEventListener('unhandledrejection',
                          (e) => window.__benchErrors.push(String(e.reason)));
  window.__benchLastChange = 0;
  window.__benchMarked = false;
  let hooked = false;
  let dirty = true;
  let markedModels = [];
  const marked = (m) => Array.isArray(m.css_classes) && m.css_classes.includes(COMPLETE);
  const plotViews = () => [...window.Bokeh.index.query(
      (v) => v.canvas_view != null && v.model != null && Array.isArray(v.model.renderers))];
  const visible = (v) => {
    if (!v.el || !v.el.isConnected) return false;
    const box = v.el.getBoundingClientRect();
    return box.width > 0 && box.height > 0;
  };
  window.__benchPlotViews = plotViews;
  window.__benchVisible = visible;
  const tick = () => {
    try {
      const B = window.Bokeh;
      if (B && B.documents && B.documents.length > 0 && B.index) {
        const doc = B.documents[0];
        if (!hooked) {
          hooked = true;
          doc.on_change(() => { window.__benchLastChange = performance.now(); dirty = true; });
        }
        if (dirty && !window.__benchMarked) {
          dirty = false;
          markedModels = [...doc.all_models].filter(marked);
          window.__benchMarked = markedModels.length > 0;
        }
        if (doc.is_idle) {
          const shown = plotViews().filter(visible);
          const now = performance.now();
          if (window.__benchFirstPlot === undefined && shown.some((v) => v.has_finished())) {
            window.__benchFirstPlot = now;
          }
          // The marked containers' views exist and have drawn all their children (a plot
          // added with the mark may not have a view yet), and so has every visible plot.
          const containersDone = markedModels.every((m) => {
            const view = B.index.find_one(m);
            return view != null && view.has_finished();
          });
          if (window.__benchFirstPlot !== undefined && window.__benchMarked && containersDone
              && shown.every((v) => v.has_finished())) {
            window.__benchComplete = now;
            return;
          }
        }
      }
    } catch (error) { /* Bokeh is still loading */ }
    requestAnimationFrame(tick);
  };
  requestAnimationFrame(tick);
})();
""".replace("__COMPLETE__", COMPLETE_CLASS)

#: What the page looks like when something did not happen in time (for the error message).
DIAGNOSE_JS = """
() => {
  const B = window.Bokeh;
  const state = {bokeh: !!B, errors: (window.__benchErrors || []).slice(0, 5),
                 marked_complete: window.__benchMarked};
  if (!B || !B.documents || B.documents.length === 0) return state;
  const doc = B.documents[0];
  state.idle = doc.is_idle;
  state.roots = doc.roots().length;
  state.models = doc.all_models.size;
  try {
    const views = window.__benchPlotViews();
    state.plot_views = views.length;
    state.plots_drawn = views.filter((v) => v.has_finished()).length;
    state.plots_visible = views.filter(window.__benchVisible).length;
  } catch (error) { state.views_error = String(error); }
  return state;
}
"""

#: Every document change, except the busy indicator, the URL and the widget the benchmark
#: itself set, counts as part of an update and schedules a frame whose time is kept in
#: ``window.__benchDrawn``.
WATCH_JS = """
() => {
  const doc = Bokeh.documents[0];
  window.__benchDrawn = performance.now();
  window.__benchChanges = 0;
  window.__benchPending = 0;
  window.__benchIgnore = null;
  doc.on_change((event) => {
    const m = event.model;
    if (m && (m.name === 'busy_indicator' || String(m.type).endsWith('Location')
              || m.id === window.__benchIgnore)) return;
    window.__benchChanges += 1;
    window.__benchPending += 1;
    requestAnimationFrame(() => {
      window.__benchDrawn = performance.now();
      window.__benchPending -= 1;
    });
  });
}
"""

#: A widget whose options hold ``probe`` (as a value; any widget when null) and whose value is
#: a string (a list when ``multi``).
_FIND_WIDGET_JS = """
const findWidget = (probe, multi) => [...Bokeh.documents[0].all_models].find((m) =>
    Array.isArray(m.options)
    && (multi ? Array.isArray(m.value) : typeof m.value === 'string')
    && (probe === null
        || m.options.some((o) => (Array.isArray(o) ? o[0] : o) === probe)));
"""

OPTIONS_JS = "([probe, multi]) => {" + _FIND_WIDGET_JS + """
  const widget = findWidget(probe, multi);
  if (!widget) return null;
  return widget.options.map((o) => (Array.isArray(o) ? o[0] : o));
}"""

SET_VALUE_JS = "([probe, multi, value]) => {" + _FIND_WIDGET_JS + """
  const widget = findWidget(probe, multi);
  if (!widget) return null;
  window.__benchIgnore = widget.id;
  window.__benchChanges = 0;
  const start = performance.now();
  window.__benchDrawn = start;
  widget.value = value;
  return start;
}"""

UPDATED_JS = """
(quiet) => window.__benchChanges > 0 && window.__benchPending === 0
    && Bokeh.documents[0].is_idle && performance.now() - window.__benchDrawn > quiet
"""

QUIET_JS = """
(quiet) => window.Bokeh !== undefined && Bokeh.documents.length > 0
    && Bokeh.documents[0].is_idle && performance.now() - window.__benchLastChange > quiet
"""

#: Every http(s) address not on 127.0.0.1. A pattern (not a Python callable) lets Playwright's
#: driver leave local requests alone instead of sending each one through Python.
NOT_LOCAL = re.compile(r"^(?!https?://127\.0\.0\.1[:/])https?://")


class BenchError(RuntimeError):
    """A measurement could not be made (page never drew a plot, widget missing, ...)."""


class Chromium:
    """One headless chromium for the whole run; pages in fresh contexts, non-local requests cut.

    Parameters
    ----------
    executable : str
        Path of the chromium binary.
    args : sequence of str
        Command-line switches of chromium.
    """

    def __init__(self, executable: str, args: Sequence[str]) -> None:
        self.executable = executable
        self.args = list(args)
        self.blocked: Counter[str] = Counter()
        self.blocked_urls: list[str] = []
        self._playwright: Any = None
        self._browser: Any = None

    async def start(self) -> None:
        """Launch chromium."""
        from playwright.async_api import async_playwright

        self._playwright = await async_playwright().start()
        self._browser = await self._playwright.chromium.launch(
            executable_path=self.executable, args=self.args, headless=True)

    async def close(self) -> None:
        """Close chromium and the Playwright driver (safe to call twice)."""
        if self._browser is not None:
            await self._browser.close()
            self._browser = None
        if self._playwright is not None:
            await self._playwright.stop()
            self._playwright = None

    async def _block(self, route: Any) -> None:
        url = route.request.url
        self.blocked[urlsplit(url).hostname or url[:40]] += 1
        if url not in self.blocked_urls:
            self.blocked_urls.append(url)
        await route.abort()

    async def new_page(self) -> Any:
        """A page in a new browser context (empty cache, own cookies) with the probes installed.

        Returns
        -------
        playwright.async_api.Page
            The page; close it with :func:`close_page`.
        """
        context = await self._browser.new_context(viewport=VIEWPORT)
        await context.route(NOT_LOCAL, self._block)
        await context.add_init_script(INIT_JS)
        return await context.new_page()


async def close_page(page: Any) -> None:
    """Close ``page`` and its browser context (its server session ends with the websocket)."""
    await page.context.close()


async def _diagnose(page: Any) -> dict | str:
    try:
        return await page.evaluate(DIAGNOSE_JS)
    except Exception as exc:
        return f"unknown ({exc})"


@dataclass
class Opened:
    """Seconds from asking for a page until its first plot and until it was complete.

    ``complete_s`` is None when the page was not complete in time; ``state`` then describes it
    (see DIAGNOSE_JS; ``marked_complete`` False: no model carried COMPLETE_CLASS).
    """

    first_plot_s: float
    complete_s: float | None
    state: dict | str | None = None


#: Complete, or nothing changed for ``stall`` ms since the first plot (or the last change).
COMPLETE_OR_STALLED_JS = """
(stall) => window.__benchComplete !== undefined
    || (window.__benchFirstPlot !== undefined
        && performance.now() - Math.max(window.__benchLastChange, window.__benchFirstPlot)
           > stall)
"""


async def open_timed(page: Any, url: str, *, start: float | None = None,
                     timeout_s: float = 180.0, complete: bool = True,
                     stall_s: float = 20.0) -> Opened:
    """Open ``url`` in ``page``; time its first plot and (if ``complete``) its last one.

    Parameters
    ----------
    page : playwright.async_api.Page
        A page from :meth:`Chromium.new_page`.
    url : str
        Address to open.
    start : float, optional
        Wall-clock time (:func:`time.time`) to measure from; default: just before ``goto``.
        Simultaneous opens pass their common start.
    timeout_s : float
        Give up waiting for the first plot, and separately for the complete page, after this
        many seconds.
    complete : bool
        Also wait until the page is complete (see the module docstring).
    stall_s : float
        Stop waiting for the complete page when nothing changed in it for this long.

    Returns
    -------
    Opened
        ``first_plot_s``: seconds from ``start`` to the first animation frame at which the
        document was idle and a visible plot had been drawn (the page's own clock, so polling
        does not add to it); ``complete_s``: likewise until the page was complete, or None if
        it was not asked for or did not happen.

    Raises
    ------
    BenchError
        If no plot was drawn in time.
    """
    if start is None:
        start = time.time()
    timeout_ms = timeout_s * 1000
    try:
        await page.goto(url, wait_until="commit", timeout=timeout_ms)
        await page.wait_for_function("() => window.__benchFirstPlot !== undefined",
                                     timeout=timeout_ms, polling=OPEN_POLLING)
    except Exception as exc:  # Playwright's TimeoutError and navigation errors
        raise BenchError(f"{url}: no plot drawn within {timeout_s:.0f} s; page state "
                         f"{await _diagnose(page)} ({str(exc).splitlines()[0]})") from exc
    first = await page.evaluate("() => performance.timeOrigin + window.__benchFirstPlot")
    opened = Opened(first / 1000 - start, None)
    if complete:
        with contextlib.suppress(Exception):  # Playwright's TimeoutError: state says why
            await page.wait_for_function(COMPLETE_OR_STALLED_JS, arg=stall_s * 1000,
                                         timeout=timeout_ms, polling=OPEN_POLLING)
        done = await page.evaluate("() => window.__benchComplete === undefined ? null"
                                   " : performance.timeOrigin + window.__benchComplete")
        if done is None:
            opened.state = await _diagnose(page)
        else:
            opened.complete_s = done / 1000 - start
    return opened


async def open_fresh(chromium: Chromium, url: str, **options: Any) -> Opened:
    """Open ``url`` in a fresh context, time it (:func:`open_timed` ``options``), close it."""
    page = await chromium.new_page()
    try:
        return await open_timed(page, url, **options)
    finally:
        await close_page(page)


async def open_simultaneously(chromium: Chromium, url: str, n: int,
                              **options: Any) -> list[Opened]:
    """Open ``url`` in ``n`` fresh contexts at the same moment; return each page's times.

    The pages are created first; then all navigations start together and each is timed
    (:func:`open_timed` ``options``) from that common start.
    """
    pages = list(await asyncio.gather(*(chromium.new_page() for _ in range(n))))
    try:
        start = time.time()
        return list(await asyncio.gather(
            *(open_timed(p, url, start=start, **options) for p in pages)))
    finally:  # together: one at a time took seconds (each context ends its live session)
        await asyncio.gather(*(close_page(page) for page in pages), return_exceptions=True)


async def settle(page: Any, *, quiet_ms: int, timeout_s: float = 120.0) -> bool:
    """Wait until the document is idle and unchanged for ``quiet_ms``; False on time-out."""
    try:
        await page.wait_for_function(QUIET_JS, arg=quiet_ms, timeout=timeout_s * 1000,
                                     polling=100)
        return True
    except Exception:  # Playwright's TimeoutError
        return False


async def watch_updates(page: Any) -> None:
    """Start recording document changes and the frames that follow them (see WATCH_JS)."""
    await page.evaluate(WATCH_JS)


async def widget_options(page: Any, probe: str | None, *, multi: bool = False) -> list | None:
    """The option values of the widget holding ``probe`` (a list-valued one if ``multi``).

    Returns
    -------
    list or None
        The values, or None when no such widget is in the page.
    """
    return await page.evaluate(OPTIONS_JS, [probe, multi])


async def switch_timed(page: Any, probe: str | None, value: str | list[str], *,
                       quiet_ms: int = 1000, timeout_s: float = 120.0) -> float:
    """Set the widget holding ``probe`` to ``value``; return the seconds until it is drawn.

    Parameters
    ----------
    page : playwright.async_api.Page
        An open, settled page on which :func:`watch_updates` ran.
    probe : str or None
        An option value identifying the widget (None: the first widget of that value type).
    value : str or list of str
        New value; a list sets a multi-valued widget (MultiChoice).
    quiet_ms : int
        The update is over when the document is idle and no change arrived for this long (it
        does not add to the measured time).
    timeout_s : float
        Give up after this many seconds.

    Returns
    -------
    float
        Seconds from setting the value to the last frame drawn after a document change.

    Raises
    ------
    BenchError
        If the widget is missing or no update arrived in time.
    """
    multi = isinstance(value, list)
    start = await page.evaluate(SET_VALUE_JS, [probe, multi, value])
    if start is None:
        kind = "multi-valued" if multi else "single-valued"
        raise BenchError(f"no {kind} widget with option {probe!r} in the page")
    try:
        await page.wait_for_function(UPDATED_JS, arg=quiet_ms, timeout=timeout_s * 1000,
                                     polling=100)
    except Exception as exc:
        state = await page.evaluate("() => [window.__benchChanges, window.__benchPending]")
        raise BenchError(f"setting {value!r}: no finished update within {timeout_s:.0f} s "
                         f"(changes, pending frames: {state}; {str(exc).splitlines()[0]}); "
                         f"page state {await _diagnose(page)}") from exc
    return (await page.evaluate("() => window.__benchDrawn") - start) / 1000
