"""Start the dashboard server (``callmip serve``)."""

from __future__ import annotations

import sys
import threading
from pathlib import Path


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
                 num_procs: int = 1, threaded: bool = False):
    """Create the Panel/Bokeh server that ``callmip serve`` runs (also used by the tests).

    Parameters
    ----------
    root : str
        Data folder (already resolved).
    port, address, show, allow_websocket_origin, num_procs
        As for :func:`serve`.
    threaded : bool
        Run the server in a background thread and return at once (tests).

    Returns
    -------
    bokeh.server.server.Server or panel.io.threads.StoppableThread
        The running server (with ``threaded=False`` this returns only when it stops).
    """
    import panel as pn

    from dashboard.app import create_app

    origins = allow_websocket_origin or [f"{address}:{port}", f"localhost:{port}",
                                         f"127.0.0.1:{port}"]
    def app() -> pn.viewable.Viewable:  # a plain function: Panel calls it once per session
        return create_app(root)

    return pn.serve({"/": app}, port=port, address=address, show=show,
                    websocket_origin=origins, num_procs=num_procs, title="CalLMIP Explorer",
                    liveness=True, threaded=threaded)


def serve(data_root: str | None = None, *, port: int = 5006, address: str = "localhost",
          show: bool = False, allow_websocket_origin: list[str] | None = None,
          num_procs: int = 1, warm: bool = False) -> int:
    """Serve the dashboard until interrupted; return an exit status.

    Parameters
    ----------
    data_root : str, optional
        Folder of CalLMIP files; the embedded demo archive when omitted.
    port, address : int, str
        Where to listen.
    show : bool
        Open a browser tab.
    allow_websocket_origin : list of str, optional
        Accepted websocket origins (hosted mode).
    num_procs : int
        Worker processes.
    warm : bool
        Also build one app before accepting sessions, so that imports and the first render
        are paid once per process, not by the first visitor. (The catalog and metric tables
        are always computed before the server listens: a session never waits for them and
        never blocks another session while they are computed.)
    """
    from dashboard.context import get_context

    try:
        root = resolve_data_root(data_root)
    except FileNotFoundError as exc:
        print(f"callmip serve: error: {exc}", file=sys.stderr)
        return 2
    context = get_context(root)
    print(f"Reading {root}: {len(context.archive.catalog)} files; computing metric tables …",
          file=sys.stderr)
    context.tables()
    # Read every site's files in the background (one at a time, under the read lock) so that
    # a first visit to a site does not wait for them; sessions are served meanwhile.
    threading.Thread(target=context.prefetch, name="callmip-prefetch", daemon=True).start()
    if warm:
        from dashboard.app import create_app

        create_app(root)
    print(f"CalLMIP Explorer serving {root} on http://{address}:{port}/")
    start_server(root, port=port, address=address, show=show,
                 allow_websocket_origin=allow_websocket_origin, num_procs=num_procs)
    return 0
