"""Start the dashboard server (``callmip serve``).

The parent process resolves the archive and computes its metric tables (written to the disk
cache), then forgets what it read and binds the port. With ``--num-procs N`` it forks N workers,
which share the port. Each worker then creates its own data service on first use, so no thread,
lock or open file crosses the fork; once its event loop runs, a worker starts its prefetch
thread, and the first worker prints the URL only after that URL has answered a request.
"""

from __future__ import annotations

import logging
import sys
import threading
from pathlib import Path
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from dashboard.uploads import UploadLimits

log = logging.getLogger(__name__)


def resolve_data_root(data_root: str | None) -> str:
    """Return the folder to serve: ``data_root`` or the demo archive (generated once).

    Raises
    ------
    FileNotFoundError
        If ``data_root`` is given but does not exist.
    """
    if data_root is None:
        from dashboard.demo import ensure_demo_archive

        return str(ensure_demo_archive(progress=True))
    if "://" not in data_root and not Path(data_root).is_dir():
        raise FileNotFoundError(f"data root {data_root!r} is not a folder")
    return data_root


def start_server(root: str, *, port: int = 5006, address: str = "localhost",
                 show: bool = False, allow_websocket_origin: list[str] | None = None,
                 num_procs: int = 1, num_threads: int | None = None, threaded: bool = False,
                 start: bool = True, upload: bool = True,
                 upload_limits: UploadLimits | None = None, oauth_provider: str | None = None,
                 oauth_redirect_uri: str | None = None, use_xheaders: bool = False):
    """Create the Panel/Bokeh server that ``callmip serve`` runs (also used by the tests).

    Parameters
    ----------
    root : str
        Data folder (already resolved).
    port, address, show, allow_websocket_origin, num_procs, num_threads, upload
        As for :func:`serve`.
    upload_limits : dashboard.uploads.UploadLimits, optional
        Size limits of the "Check my files" page.
    oauth_provider, oauth_redirect_uri, use_xheaders
        As for :func:`serve`.
    threaded : bool
        Run the server in a background thread and return at once (tests).
    start : bool
        Start the event loop (blocks until the server stops). With ``False`` the server is
        returned unstarted; with ``num_procs > 1`` this returns in every forked worker.

    Returns
    -------
    bokeh.server.server.Server or panel.io.threads.StoppableThread
        The server.
    """
    import panel as pn

    from dashboard.app import create_app

    if num_threads:
        pn.config.nthreads = num_threads
    origins = allow_websocket_origin or [f"{address}:{port}", f"localhost:{port}",
                                         f"127.0.0.1:{port}"]

    def app() -> pn.viewable.Viewable:  # a plain function: Panel calls it once per session
        return create_app(root, upload=upload, upload_limits=upload_limits)

    options = {"port": port, "address": address, "show": show, "websocket_origin": origins,
               "num_procs": num_procs, "title": "CalLMIP Explorer", "liveness": True,
               "extra_patterns": [(STATUS_PATH, _status_handler(root))],
               # A page whose websocket connects later than this is rebuilt from scratch:
               # Bokeh's 15 s default is shorter than a first load under a workshop burst.
               "unused_session_lifetime_milliseconds": UNUSED_SESSION_LIFETIME_MS}
    options.update(_hosting_options(oauth_provider, oauth_redirect_uri, use_xheaders))
    if threaded:
        return pn.serve({"/": app}, threaded=True, **options)
    from panel.io.server import get_server

    return get_server({"/": app}, start=start, **options)


#: Paths that answer without a login when OAuth is on (health checks of a proxy or cluster).
GUEST_ENDPOINTS = ["/liveness", "/callmip-status"]


def oauth_problems(oauth_provider: str | None) -> list[str]:
    """What is missing to log users in through ``oauth_provider`` (empty: nothing).

    Panel reads the client id and secret, the cookie secret and the encryption key from
    ``PANEL_OAUTH_KEY``, ``PANEL_OAUTH_SECRET``, ``PANEL_COOKIE_SECRET`` and
    ``PANEL_OAUTH_ENCRYPTION``: secrets stay out of the command line (and ``ps``), and every
    process behind a proxy must share the same values.
    """
    import os

    if not oauth_provider:
        return []
    needed = ["PANEL_OAUTH_KEY", "PANEL_OAUTH_SECRET", "PANEL_COOKIE_SECRET",
              "PANEL_OAUTH_ENCRYPTION"]
    return [f"--oauth-provider {oauth_provider} needs ${name}" for name in needed
            if not os.environ.get(name)]


def _hosting_options(oauth_provider: str | None, oauth_redirect_uri: str | None,
                     use_xheaders: bool) -> dict:
    """Panel/Bokeh server options of a hosted site: OAuth login, proxy headers."""
    options: dict = {}
    if oauth_provider:
        options.update(oauth_provider=oauth_provider,
                       oauth_guest_endpoints=list(GUEST_ENDPOINTS))
        if oauth_redirect_uri:
            options["oauth_redirect_uri"] = oauth_redirect_uri
    if use_xheaders:
        options["use_xheaders"] = True
    return options


#: How long a session built for a page request waits for its websocket (Bokeh: 15 s).
UNUSED_SESSION_LIFETIME_MS = 120_000

#: A worker's status as JSON: which process answered, its memory and cache (for operators).
STATUS_PATH = "/callmip-status"


def _status_handler(root: str) -> type:
    """A tornado handler reporting the answering worker: pid, resident memory, cache use."""
    from tornado.web import RequestHandler

    class StatusHandler(RequestHandler):
        def get(self) -> None:
            import os

            from dashboard.service import get_service

            memory = get_service(root).memory()
            self.set_header("Content-Type", "application/json")
            self.set_header("Cache-Control", "no-store")
            self.write({"pid": os.getpid(), "rss_bytes": _rss_bytes(), **memory})

    return StatusHandler


def _rss_bytes() -> int | None:
    """Resident memory of this process in bytes (Linux ``/proc``; ``None`` elsewhere)."""
    try:
        with open("/proc/self/statm") as statm:
            import os

            return int(statm.read().split()[1]) * os.sysconf("SC_PAGE_SIZE")
    except (OSError, ValueError, IndexError):
        return None


def _announce_when_ready(server, url: str) -> None:
    """Print ``url`` once it answers: the first worker asks its own liveness endpoint."""
    from tornado.httpclient import AsyncHTTPClient, HTTPClientError

    probe = f"http://127.0.0.1:{server.port}/liveness"

    async def announce() -> None:
        import asyncio

        client = AsyncHTTPClient()
        for _ in range(600):
            try:
                response = await client.fetch(probe, request_timeout=5, raise_error=False)
                if response.code == 200:
                    print(f"CalLMIP Explorer serving on {url}", flush=True)
                    return
            except (OSError, HTTPClientError):
                pass
            await asyncio.sleep(0.1)
        print(f"callmip serve: error: {url} did not answer", file=sys.stderr, flush=True)

    server.io_loop.add_callback(announce)


def _start_worker(server, root: str, *, warm: bool, url: str | None) -> None:
    """Prepare a (possibly forked) worker before its event loop starts."""
    from dashboard.service import get_service

    service = get_service(root)  # created in this process, after any fork
    if warm:
        try:
            _warm(service)
        except Exception:  # warming is an optimisation: never a reason not to serve
            log.exception("warming the app failed")
    # A daemon thread: it ends with the worker, so no stop signal is needed.
    threading.Thread(target=service.prefetch, name="callmip-prefetch", daemon=True).start()
    if url is not None:
        _announce_when_ready(server, url)


def _warm(service) -> None:
    """Build one app and render it to Bokeh models: imports and first renders are paid now."""
    import panel as pn
    from bokeh.document import Document
    from pyviz_comms import Comm

    from dashboard.app import create_app
    from dashboard.state import Selection
    from dashboard.views.sites import SitesView
    from dashboard.views.style import Look

    page = create_app(service.root)  # a template: render its parts
    for part in [*page.sidebar, *page.main]:
        pn.panel(part).get_root(Document(), comm=Comm())
    opening = (service.observed_sites() or [""])[0]  # the site sessions open on
    view = SitesView(selection=Selection(view="sites", site=opening), service=service,
                     look=Look())
    pn.panel(view).get_root(Document(), comm=Comm())


def _fill_table_cache(root: str) -> None:
    """Compute the metric tables in a child process, which writes them to the disk cache.

    Reading every file to score it would leave the server's parent process (and so, through
    fork, every worker) holding a heap the size of the archive; a separate process returns all
    of it when it ends. A failure there is not fatal: the tables are then computed here.
    """
    import multiprocessing

    process = multiprocessing.get_context("spawn").Process(
        target=_compute_tables_quietly, args=(root,), name="callmip-metrics")
    process.start()
    process.join()
    if process.exitcode != 0:
        log.warning("computing the metric tables in a child process failed (exit %s)",
                    process.exitcode)


def _compute_tables_quietly(root: str) -> None:
    from dashboard.metrics.tables import compute_tables

    compute_tables(root, progress=False)


def serve(data_root: str | None = None, *, port: int = 5006, address: str = "localhost",
          show: bool = False, allow_websocket_origin: list[str] | None = None,
          num_procs: int = 1, num_threads: int | None = None, cache_mb: float | None = None,
          warm: bool = False, upload: bool = True, max_upload_mb: float | None = None,
          max_session_upload_mb: float | None = None, oauth_provider: str | None = None,
          oauth_redirect_uri: str | None = None, use_xheaders: bool = False,
          dask_scheduler: str | None = None) -> int:
    """Serve the dashboard until interrupted; return an exit status.

    Parameters
    ----------
    data_root : str, optional
        Folder of CalLMIP files; the embedded demo archive when omitted.
    port, address : int, str
        Where to listen (port 0: any free port; the printed URL names it).
    show : bool
        Open a browser tab.
    allow_websocket_origin : list of str, optional
        Accepted websocket origins (hosted mode).
    num_procs : int
        Worker processes sharing the port (0: one per core).
    num_threads : int, optional
        Threads per worker for session callbacks (Panel's ``nthreads``).
    cache_mb : float, optional
        Memory budget per worker for opened files and series, in MB (default
        ``$CALLMIP_CACHE_MB`` or 512).
    warm : bool
        Also build one app in each worker before it accepts sessions, so that imports and the
        first render are paid once per process, not by the first visitor. (The catalog and
        metric tables are always computed before the server listens.)
    upload : bool
        Offer the "Check my files" page, where participants upload their own runs (turn it off
        with ``--no-upload`` on a public site).
    max_upload_mb, max_session_upload_mb : float, optional
        Upload limits of that page: per file (default 200 MB) and per session (default
        2048 MB).
    oauth_provider : str, optional
        Log users in through this Panel OAuth provider; the secrets come from the environment
        (:func:`oauth_problems`). ``/liveness`` and ``/callmip-status`` stay open.
    oauth_redirect_uri : str, optional
        The public URL the provider sends users back to.
    use_xheaders : bool
        Trust ``X-Forwarded-*`` headers (behind a reverse proxy).
    dask_scheduler : str, optional
        Address of a running ``dask.distributed`` scheduler: the global view's heavy reductions
        (spread maps, global totals, long-term means) are computed there. Each worker process
        connects on first use; without it everything runs in-process.
    """
    from dashboard.service import configure, get_service, release_parent_memory

    try:
        root = resolve_data_root(data_root)
    except FileNotFoundError as exc:
        print(f"callmip serve: error: {exc}", file=sys.stderr)
        return 2
    if num_procs < 0 or (num_threads is not None and num_threads < 0):
        print("callmip serve: error: --num-procs and --num-threads must not be negative",
              file=sys.stderr)
        return 2
    if cache_mb is not None and not cache_mb > 0:
        print("callmip serve: error: --cache-mb must be positive", file=sys.stderr)
        return 2
    from dashboard.uploads import UploadLimits, install_cleanup_handlers

    try:
        upload_limits = UploadLimits.from_mb(max_upload_mb, max_session_upload_mb)
    except ValueError:
        print("callmip serve: error: --max-upload-mb and --max-session-upload-mb must be "
              "positive", file=sys.stderr)
        return 2
    problems = oauth_problems(oauth_provider)
    if problems:
        print("callmip serve: error: " + "; ".join(problems), file=sys.stderr)
        return 2
    configure(cache_mb=cache_mb)
    if dask_scheduler:
        from dashboard.global_queries import configure_dask

        configure_dask(dask_scheduler)  # the client is created in each worker, after the fork
    service = get_service(root)
    print(f"Reading {root}: {len(service.archive.catalog)} files; computing metric tables …",
          file=sys.stderr, flush=True)
    _fill_table_cache(root)
    service.tables()  # from the disk cache: the parent never holds the archive's files
    release_parent_memory()
    server = start_server(root, port=port, address=address, show=show,
                          allow_websocket_origin=allow_websocket_origin, num_procs=num_procs,
                          num_threads=num_threads, start=False, upload=upload,
                          upload_limits=upload_limits, oauth_provider=oauth_provider,
                          oauth_redirect_uri=oauth_redirect_uri, use_xheaders=use_xheaders)
    # From here on this is a worker (the only process when num_procs == 1).
    from tornado.process import task_id

    host = "localhost" if address in ("", "0.0.0.0", "::") else address
    first = task_id() in (None, 0)
    if upload:  # session folders are deleted when this worker stops (exit, SIGTERM, Ctrl-C)
        install_cleanup_handlers()
    _start_worker(server, root, warm=warm,
                  url=f"http://{host}:{server.port}/" if first else None)
    server.start()
    try:
        server.io_loop.start()
    except KeyboardInterrupt:
        pass
    return 0
