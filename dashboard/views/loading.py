"""Filling a page in steps: each plot is built and sent before the next one is built.

A served session gets the page shell first (``defer_load`` in :mod:`dashboard.app`); a view then
adds its plots one at a time, each once the last one's message has been written
(:func:`when_sent`), so the first plot reaches the browser while the others are still being
built, and other sessions' events interleave between the steps instead of queueing behind a
whole page.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable
from concurrent.futures import Future, ThreadPoolExecutor
from functools import partial
from typing import Any

import panel as pn

log = logging.getLogger(__name__)

#: CSS class a view's container gets once every step has been added: tests and benchmarks read
#: it from the Bokeh models to know the page is complete.
COMPLETE_CLASS = "callmip-complete"


def _built(factory: Callable[[], pn.viewable.Viewable | None]) -> pn.viewable.Viewable | None:
    """What ``factory`` builds, or a short message if it fails (the error goes to the log).

    One part that cannot be drawn never stops the rest of the page, and no traceback or server
    path reaches the browser.
    """
    try:
        return factory()
    except Exception:
        log.exception("a part of the page could not be built")
        return pn.pane.Alert("This part of the page could not be drawn; the server log says "
                             "why.", alert_type="danger", sizing_mode="stretch_width")


def built_together(factories: list[Callable[[], pn.viewable.Viewable]]
                   ) -> Callable[[], pn.viewable.Viewable]:
    """One step that builds several parts into a Column (each part failing on its own).

    Every step of :func:`fill_progressively` costs the server a walk of the whole document's
    model graph and the browser a layout: parts that need not come first are cheaper added
    together.
    """
    def build() -> pn.viewable.Viewable:
        return pn.Column(*(_built(factory) for factory in factories),
                         sizing_mode="stretch_width")

    return build


def in_server_session() -> bool:
    """Whether a server builds this for a browser session (not a test rendering models)."""
    document = pn.state.curdoc
    return document is not None and document.session_context is not None


#: How often (ms) :func:`when_sent` looks whether the session's messages have gone out, and
#: how long (ms) it waits at most before it runs its callback anyway.
SENT_POLL_MS = 5
SENT_MAX_WAIT_MS = 1000


def writes_pending(doc: Any) -> bool:
    """Whether messages of the session of ``doc`` are still being written to its websocket.

    Panel serialises an update's message at the end of the callback that made it and writes
    it from a task of the event loop once the socket's write lock is free; a write completes
    only while the loop is free. A next-tick callback that computes for a while (the next
    plot of a page) therefore held back the previous plot's message: the Global view's map
    went out ~0.45 s late, after the zonal profile and the series had been built. Reads
    Panel's and Tornado's private bookkeeping; if that changes, it says "nothing pending"
    and the page simply fills as before.
    """
    try:
        from panel.io import document as panel_document

        if (doc in panel_document._WRITE_BLOCK or doc in panel_document._WRITE_MSGS
                or panel_document._WRITE_FUTURES.get(doc)):
            return True
        session = getattr(doc.session_context, "session", None)
        for connection in getattr(session, "_subscribed_connections", ()):
            lock = getattr(connection._socket, "write_lock", None)
            if lock is not None and lock._block._value == 0:  # a write under way
                return True
    except Exception:  # private API moved: do not wait
        return False
    return False


def when_sent(callback: Callable[[], None]) -> None:
    """Run ``callback`` once what this session changed so far has gone to the browser.

    In a server session it runs on a later tick of the event loop, when the session's pending
    messages are written (looked at every :data:`SENT_POLL_MS` ms, for at most
    :data:`SENT_MAX_WAIT_MS` ms), so the browser draws the last update while the server
    computes the next; elsewhere (tests, static export) at once.
    """
    if not in_server_session():
        callback()
        return
    doc = pn.state.curdoc
    waited = [0]

    def run_when_sent() -> None:
        from panel.io.state import set_curdoc

        if waited[0] < SENT_MAX_WAIT_MS and writes_pending(doc):
            waited[0] += SENT_POLL_MS
            doc.add_timeout_callback(run_when_sent, SENT_POLL_MS)
            return
        with set_curdoc(doc):
            callback()

    pn.state.execute(run_when_sent, schedule=True)


#: How long (ms) :func:`when_laid_out` waits at most for the browser's report.
LAID_OUT_MAX_WAIT_MS = 1500


def when_laid_out(models: list[Any], callback: Callable[[], None]) -> None:
    """Run ``callback`` once the browser has laid out every one of ``models`` (Bokeh plots).

    A plot reports its ``inner_width`` to the server when the browser has laid it out, just
    before painting it. A page that sends its next part meanwhile makes the browser lay the
    whole page out again before that first paint: the Global view's first map was painted
    0.3-0.5 s after it arrived when the zonal profile followed it at once, ~30 ms after when
    nothing did. Waits at most :data:`LAID_OUT_MAX_WAIT_MS` ms; outside a server session, or
    without models, it is :func:`when_sent`.
    """
    if not in_server_session() or not models:
        when_sent(callback)
        return
    doc = pn.state.curdoc
    waiting = {id(model) for model in models}
    done = [False]
    watchers: list[tuple[Any, Callable]] = []

    def fire() -> None:
        from panel.io.state import set_curdoc

        if done[0]:
            return
        done[0] = True
        for model, watcher in watchers:
            model.remove_on_change("inner_width", watcher)
        with set_curdoc(doc):
            callback()

    def reported(key: int, _attr: str, _old: Any, _new: Any) -> None:
        waiting.discard(key)
        if not waiting and not done[0]:
            # (not inside the processing of the browser's message)
            doc.add_next_tick_callback(fire)

    for model in models:
        watcher = partial(reported, id(model))
        model.on_change("inner_width", watcher)
        watchers.append((model, watcher))
    doc.add_timeout_callback(fire, LAID_OUT_MAX_WAIT_MS)


def lazy_pool(threads: int, prefix: str) -> Callable[[], ThreadPoolExecutor]:
    """A function returning the worker's thread pool, created on its first call.

    Created on first use, so after any fork of the server's workers: no thread is inherited.

    Parameters
    ----------
    threads : int
        Threads of the pool.
    prefix : str
        Name prefix of its threads (logs, tests).
    """
    pool: list[ThreadPoolExecutor] = []
    lock = threading.Lock()

    def get() -> ThreadPoolExecutor:
        with lock:
            if not pool:
                pool.append(ThreadPoolExecutor(max_workers=threads, thread_name_prefix=prefix))
            return pool[0]

    return get


#: Threads of a worker that compute for sessions off the event loop (reads and reductions of
#: global runs: the dask reductions inside use their own threads).
BACKGROUND_THREADS = 2
#: The worker's pool for :func:`off_the_loop`.
background_executor = lazy_pool(BACKGROUND_THREADS, "callmip-background")


def off_the_loop(work: Callable[[], Any], then: Callable[[], None],
                 executor: Callable[[], ThreadPoolExecutor] = background_executor
                 ) -> Future | None:
    """Run ``work`` in a background thread, then ``then`` on the session's event loop.

    For slow reads a session's own later code needs cached (a run's global totals, a grid
    cell's series over every time chunk): on the event loop they stalled every session of the
    worker for seconds. ``work`` must not touch Panel objects; ``then`` runs on the next tick
    of the session's document (the one Bokeh call safe from another thread) under its
    ``curdoc``, whether ``work`` succeeded or not (a failure is logged; ``then`` redoing the
    work on the loop shows it). Outside a server session ``then`` runs at once. ``executor``
    returns the pool to run ``work`` in (default :data:`background_executor`).

    Returns
    -------
    concurrent.futures.Future or None
        Of ``work`` (None outside a server session).
    """
    if not in_server_session():
        then()  # (``then`` reads what ``work`` would have cached)
        return None
    doc = pn.state.curdoc

    def apply() -> None:
        from panel.io.state import set_curdoc

        with set_curdoc(doc):
            then()

    def finished(future: Future) -> None:  # in the background thread
        if future.exception() is not None:
            log.warning("background work failed: %s", future.exception())
        try:
            doc.add_next_tick_callback(apply)
        except Exception:  # the session has gone
            log.debug("background work finished after its session ended", exc_info=True)

    future = executor().submit(work)
    future.add_done_callback(finished)
    return future


def fill_progressively(container: pn.layout.ListLike,
                       factories: list[Callable[[], pn.viewable.Viewable | None]], *,
                       first_drawn: Callable[[], list[Any]] | None = None) -> None:
    """Append what each factory builds to ``container``, each once the last has been sent.

    Outside a server session (tests, static export) everything is appended at once. When the
    last step is in, the container gets the CSS class :data:`COMPLETE_CLASS`.

    Parameters
    ----------
    container : panel.layout.ListLike
        A Column or Row of the page.
    factories : list of callable
        Each returns one viewable, or None when it has added its part elsewhere itself (e.g.
        one more grid into a GridBox an earlier step appended); called in order.
    first_drawn : callable, optional
        Returns the Bokeh plots of the first part (called once it is in the page): the
        second part waits until the browser has laid them out (:func:`when_laid_out`), so
        the first plot is painted before the page is laid out again.
    """
    def complete() -> None:
        container.css_classes = [*container.css_classes, COMPLETE_CLASS]

    if not in_server_session():
        built = [_built(factory) for factory in factories]
        container.extend(item for item in built if item is not None)
        complete()
        return
    pending = list(factories)

    def add_next() -> None:
        item = _built(pending.pop(0))
        if item is not None:
            container.append(item)
        if not pending:
            complete()
        elif first_drawn is not None and len(pending) == len(factories) - 1:
            try:  # the first part is in: the second waits until its plots are laid out
                plots = first_drawn()
            except Exception:  # (nothing to wait for: go on)
                log.debug("no plots to wait for", exc_info=True)
                plots = []
            when_laid_out(plots, add_next)
        else:  # the next part once this one has gone to the browser
            when_sent(add_next)

    if pending:
        pn.state.execute(add_next, schedule=True)
    else:
        complete()
