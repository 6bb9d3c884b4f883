"""Real chromium pages (Playwright) changing the same selections as the websocket clients.

Each page opens the Sites view, waits until BokehJS has drawn it (``document.is_idle``), then
sets the Variable, Site and Models widgets in the page as a user would and times until the
page has received the update (plot data or text; complete once nothing more arrived for a
moment). Every request to anything but 127.0.0.1 is aborted (and counted).
"""

from __future__ import annotations

import asyncio
import logging
import time
from typing import Any

from tests.load.client import ChangeResult, LoadError, find_widgets
from tests.load.scenario import SessionConfig, SessionResult, change_plan

log = logging.getLogger("load")
CHROMIUM = "/usr/bin/chromium"
CHROMIUM_ARGS = ["--no-sandbox", "--disable-gpu", "--disable-background-networking",
                 "--disable-component-update", "--no-first-run", "--disable-sync",
                 "--disable-quic", "--no-proxy-server"]
LOCAL = "http://127.0.0.1"
QUIET_MS = 750
IDLE_JS = "() => window.Bokeh && Bokeh.documents.length > 0 && Bokeh.documents[0].is_idle"
COMPLETE_JS = """(marker) => [...Bokeh.documents[0].all_models].some(
    m => (m.css_classes || []).includes(marker))"""
MODELS_JS = """() => [...Bokeh.documents[0].all_models].map(m => ({
    id: m.id, name: m.type,
    attributes: {name: m.name ?? null, options: m.options ?? null, value: m.value ?? null}}))"""
# Record when the page receives updates after a change: ColumnDataSource changes and text.
WATCH_JS = """() => {
    window.__lt = {start: 0, widget: null, first: 0, last: 0, data: 0};
    Bokeh.documents[0].on_change((event) => {
        const lt = window.__lt, m = event.model;
        if (!lt.start || !m || m.id === lt.widget) return;
        const data = (m.type || '').endsWith('ColumnDataSource');
        if (!data && event.attr !== 'text') return;
        const now = performance.now();
        lt.first = lt.first || now;
        lt.last = now;
        lt.data += data ? 1 : 0;
    });
}"""
SET_JS = """([id, value]) => {
    Object.assign(window.__lt, {start: performance.now(), widget: id, first: 0, last: 0,
                                data: 0});
    Bokeh.documents[0].get_model_by_id(id).value = value;
}"""
DONE_JS = f"() => window.__lt.last > 0 && performance.now() - window.__lt.last > {QUIET_MS}"


class _Blocked:
    """Aborts requests that leave 127.0.0.1, and counts them."""

    def __init__(self) -> None:
        self.count = 0
        self.examples: list[str] = []

    def matches(self, url: str) -> bool:
        return not url.startswith(LOCAL)

    async def abort(self, route: Any) -> None:
        self.count += 1
        if len(self.examples) < 3:
            self.examples.append(route.request.url[:120])
        await route.abort()


async def _change(page: Any, widget: str, kind: str, value: Any,
                  timeout: float) -> ChangeResult:
    await page.evaluate(SET_JS, [widget, value])
    try:
        await page.wait_for_function(DONE_JS, polling=100, timeout=timeout * 1000)
    except Exception as exc:
        raise LoadError("change-timeout", f"browser {kind}={value!r}: {exc!s:.120}") from exc
    lt = await page.evaluate("() => window.__lt")
    return ChangeResult(kind=kind, value=value, latency=(lt["last"] - lt["start"]) / 1000,
                        first_update=(lt["first"] - lt["start"]) / 1000, data_events=lt["data"])


async def _open(page: Any, cfg: SessionConfig) -> float:
    query = "&".join(f"{k}={v}" for k, v in cfg.arguments.items())
    start = time.perf_counter()
    try:
        await page.goto(f"{cfg.base_url}/?{query}", timeout=cfg.open_timeout * 1000)
        await page.wait_for_function(IDLE_JS, polling=100, timeout=cfg.open_timeout * 1000)
        if cfg.complete_class:
            await page.wait_for_function(COMPLETE_JS, arg=cfg.complete_class, polling=100,
                                         timeout=cfg.open_timeout * 1000)
            await page.wait_for_function(IDLE_JS, polling=100, timeout=cfg.open_timeout * 1000)
    except Exception as exc:
        raise LoadError("open-timeout", f"browser: {exc!s:.120}") from exc
    return time.perf_counter() - start


async def _drive_page(page: Any, result: SessionResult, cfg: SessionConfig) -> None:
    result.open_s = await _open(page, cfg)
    await page.evaluate(WATCH_JS)
    widgets = find_widgets(await page.evaluate(MODELS_JS))
    for kind, value in change_plan(result.index, widgets, cfg.observed_sites, cfg.changes):
        await asyncio.sleep(cfg.think)
        widget = widgets.id_of(kind)
        if widget is None:
            raise LoadError("widget-missing", f"browser: no {kind} widget")
        try:
            result.changes.append(await _change(page, widget, kind, value,
                                                cfg.change_timeout))
        except LoadError as exc:
            result.fail(exc)


async def run_page(browser: Any, index: int, cfg: SessionConfig) -> SessionResult:
    """One chromium page: open, change selections, close; never raises."""
    result = SessionResult(index=index, via="chromium")
    blocked = _Blocked()
    context = await browser.new_context(viewport={"width": 1600, "height": 1100})
    try:
        await context.route(blocked.matches, blocked.abort)
        page = await context.new_page()
        page.on("pageerror", lambda exc: result.server_messages.append(f"page error: {exc}"))
        await _drive_page(page, result, cfg)
    except LoadError as exc:
        result.fail(exc)
    except Exception as exc:
        log.exception("browser page %d failed", index)
        result.fail(LoadError("exception", repr(exc)))
    finally:
        await context.close()
    if blocked.count:
        result.server_messages.append(f"blocked {blocked.count} non-local requests, e.g. "
                                      f"{blocked.examples}")
    return result


async def run_browsers(count: int, cfg: SessionConfig) -> list[SessionResult]:
    """Drive ``count`` chromium pages at once (one browser, one context per page)."""
    from playwright.async_api import async_playwright

    async with async_playwright() as playwright:
        browser = await playwright.chromium.launch(executable_path=CHROMIUM,
                                                   args=CHROMIUM_ARGS, headless=True)
        try:
            results = await asyncio.gather(*(run_page(browser, i, cfg) for i in range(count)))
        finally:
            await browser.close()
    return list(results)
