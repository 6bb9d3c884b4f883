"""Run every CalLMIP Explorer benchmark once and print one table (or one JSON object).

Run from anywhere (not collected by pytest)::

    python tests/benchmarks/run.py [--json] [--quick] [--archive DIR] [--runs K]

Benchmarks (medians of ``--runs`` measurements, in seconds):

``floor``
    A minimal Panel page (a BootstrapTemplate with one HoloViews curve of 6,574 daily points,
    the length of an 18-year record) served by its own server: from asking chromium for the
    page until Bokeh is idle and a plot canvas is drawn. Baseline of the page opens.
``floor_update``
    On that page, a Select swaps the curve's data: from setting the widget to the last frame
    drawn. Baseline of the switches.
``overview_first_plot``, ``sites_first_plot``
    ``callmip serve ROOT`` in a subprocess; ``/?view=overview`` and ``/?view=sites&site=...``
    opened in fresh pages (after an unmeasured warm-up open), timed as ``floor``. Target:
    Sites first plot <= 1.5x floor.
``overview_complete``, ``sites_complete``
    The same opens until the page is complete: the view marked its container with the CSS
    class ``callmip-complete`` and every visible plot is drawn.
``parameters_first_plot``, ``parameters_complete``
    ``/?view=parameters&scenario=1`` opened the same way (after its own warm-up open), on the
    same server, after the Sites switches. Target: the Sites view's budget, <= 1.5x floor.
``switch_site``, ``switch_variable``, ``switch_models``
    On the last Sites page, once it is complete and quiet, the sidebar widgets set from
    JavaScript; from the change to the last frame of the update. Target 0.3 s.
``floor_simultaneous_N``, ``floor_simultaneous_N_p95``
    The minimal page opened by N pages at the same moment (as below): what N simultaneous
    opens cost the browser and the machine alone, the context of the app's ratio (not with
    ``--quick``).
``single_open``, ``simultaneous_open_N``, ``simultaneous_open_N_p95``
    A fresh server: the Sites view opened alone, then by N pages at the same moment (N contexts
    of one chromium), first plots; median and 95th percentile over the N pages (medians over
    ceil(K/2) bursts). Target: p95 <= 3x single.
``catalog_build``, ``catalog_build_10k``
    ``loaders.catalog.build_catalog`` on the archive and on a synthetic 10,000-file tree
    (``bench_catalog.make_tree``), in this process.
``--global``: the Global view's section instead (``bench_global.py``): first map, time step
    and projection change, optimised against the naive QuadMesh / whole-cube path, in chromium
    (with the floor page, ratios printed) and in this process (entries ``server_*``).
``peak_memory``
    Peak resident memory of the app servers (process trees, sampled every 0.2 s) over the whole
    browser part.

``peak_rss_mb`` of an entry is the peak resident memory (MB) of the server during that
benchmark (of this process for the in-process ones). Each server runs with
``CALLMIP_CACHE_DIR`` in a temporary folder unless it is set. Chromium runs with
tests/conftest.py's switches and every request not to 127.0.0.1 is aborted (and counted).

Nothing is measured until everything is ready, and then one thing at a time. The set-up
overlaps: chromium is launched while the archive is written, the app servers start as soon as
it is, then the floor's server; each server gets its unmeasured warm-up opens as soon as it
answers, while the others still start and the synthetic tree is written; then the run waits
until the servers, chromium and Playwright's driver are all idle. The measurements follow, in
order: catalog, floor, app (and the fresh app server). A line ``phases: ...`` on stderr gives
the wall time of each phase.

The archive is the embedded demo archive by default. ``--quick`` (meant to take under a
minute; README has the measured wall times) uses the tiny test archive, 2 runs, 3 sites,
3 simultaneous pages (``simultaneous_open_3``; 8 without ``--quick``), a warm-up of the Sites
view only, leaves out the Parameters view and the minimal page's own simultaneous opens, and
runs the simultaneous opens on the same app server after the switches, with the Sites opens
as their ``single_open`` baseline.

The machine may be shared and noisy: this measures, it asserts nothing, and exits 0 even when
a target is missed. It exits 1 when some benchmark could not be measured (the others are still
printed, as null) and 2 when it cannot run at all (no chromium, no archive). Progress goes to
stderr; with ``--json`` stdout holds exactly one JSON object: ``{"benchmarks": [{"name",
"median_s", "baseline", "baseline_median_s", "ratio", "peak_rss_mb"}, ...]}``.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import math
import os
import shlex
import shutil
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import threading
import time
import urllib.error
import urllib.request
from collections import deque
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
REPO = HERE.parents[1]
sys.path[:0] = [str(REPO), str(HERE)]

from _browser import (  # noqa: E402  (after the path set-up)
    COMPLETE_CLASS,
    BenchError,
    Chromium,
    Opened,
    close_page,
    open_fresh,  # noqa: F401  (bench_global.py calls run.open_fresh)
    open_simultaneously,
    open_timed,
    settle,
    switch_timed,
    watch_updates,
    widget_options,
)

#: Days in an 18-year daily record (1997-2014, DK-Sor's observations).
FLOOR_POINTS = 6574
FLOOR_SERIES = [f"floor-{i}" for i in range(3)]
SWITCH_TARGET_S = 0.3
FIRST_PLOT_TARGET_RATIO = 1.5
SIMULTANEOUS_TARGET_RATIO = 3.0
KEYS = ("name", "median_s", "baseline", "baseline_median_s", "ratio", "peak_rss_mb")
FLOOR_BOOT = ("import runpy, sys; runpy.run_path(sys.argv[1], run_name='callmip_bench_floor')"
              "['serve_floor'](int(sys.argv[2]))")


def _load() -> str:
    """The machine's load (other work on it slows every measurement)."""
    one, five, _ = os.getloadavg()
    return f"load average {one:.1f} (1 min), {five:.1f} (5 min) on {os.cpu_count()} cores"


def log(message: str) -> None:
    """Print a progress line on stderr (stdout is kept for the result)."""
    print(f"[bench {time.strftime('%H:%M:%S')}] {message}", file=sys.stderr, flush=True)


#: Wall time of each phase of the run, in order (name, seconds), for the closing log line.
PHASES: list[tuple[str, float]] = []


@contextlib.contextmanager
def phase(name: str):  # noqa: ANN201  (a context manager)
    """Time the ``with`` block as one phase of the run and log its wall time (stderr)."""
    t0 = time.monotonic()
    try:
        yield
    finally:
        PHASES.append((name, time.monotonic() - t0))
        log(f"phase {name}: {PHASES[-1][1]:.1f} s")


def phases_line() -> str:
    """The phases and their wall times (seconds), in order."""
    return "phases: " + "; ".join(f"{name} {seconds:.1f} s" for name, seconds in PHASES)


# --- the floor app ------------------------------------------------------------------------

def floor_app() -> Any:
    """The floor page: a BootstrapTemplate with one 6,574-point daily curve and a Select.

    Returns
    -------
    panel.template.BootstrapTemplate
        A new page; the Select (options ``floor-0`` ...) swaps the curve's data in place.
    """
    import holoviews as hv
    import numpy as np
    import panel as pn

    days = np.datetime64("1997-01-01") + np.arange(FLOOR_POINTS).astype("timedelta64[D]")
    phase = 2 * np.pi * np.arange(FLOOR_POINTS) / 365.25

    def curve(name: str) -> hv.Curve:
        rng = np.random.default_rng(FLOOR_SERIES.index(name))
        values = 3 * np.sin(phase + rng.uniform(0, 2)) + rng.normal(0, 1, FLOOR_POINTS)
        return hv.Curve((days, values), "time", "NEE")

    select = pn.widgets.Select(name="Series", options=FLOOR_SERIES)
    plot = hv.DynamicMap(pn.bind(curve, select)).opts(responsive=True, height=300)
    pane = pn.pane.HoloViews(plot, sizing_mode="stretch_width",
                             css_classes=[COMPLETE_CLASS])  # complete from the start
    return pn.template.BootstrapTemplate(title="Floor", sidebar=[select], main=[pane])


def serve_floor(port: int) -> None:
    """Serve :func:`floor_app` on ``127.0.0.1:port`` until killed (runs in a subprocess)."""
    import holoviews as hv
    import panel as pn

    hv.extension("bokeh", logo=False)
    pn.serve({"/": floor_app}, port=port, address="127.0.0.1", show=False,
             websocket_origin=[f"127.0.0.1:{port}"], liveness=True, title="Floor")


# --- server processes and their memory -----------------------------------------------------

_GIVEN_PORTS: set[int] = set()


def free_port() -> int:
    """A TCP port free on 127.0.0.1 right now, not handed out before by this process."""
    while True:
        with socket.socket() as sock:
            sock.bind(("127.0.0.1", 0))
            port = sock.getsockname()[1]
        if port not in _GIVEN_PORTS:
            _GIVEN_PORTS.add(port)
            return port


def _http_ok(url: str) -> bool:
    try:
        with urllib.request.urlopen(url, timeout=2) as response:
            return response.status == 200
    except (OSError, urllib.error.URLError):
        return False


class RssSampler:
    """Sample the resident memory of a process (and its descendants) every ``interval`` s.

    Parameters
    ----------
    pid : int
        Process to follow.
    tree : bool
        Sum over the process and all its descendants.
    interval : float
        Seconds between samples.
    """

    def __init__(self, pid: int, *, tree: bool = True, interval: float = 0.2) -> None:
        import psutil

        self._process = psutil.Process(pid)
        self._tree = tree
        self._interval = interval
        self._lock = threading.Lock()
        self._peak = 0
        self.overall_peak = 0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name=f"rss-{pid}", daemon=True)
        self._thread.start()

    def _sample(self) -> int:
        import psutil

        procs = [self._process]
        if self._tree:
            with contextlib.suppress(psutil.Error):
                procs += self._process.children(recursive=True)
        total = 0
        for proc in procs:
            with contextlib.suppress(psutil.Error):
                total += proc.memory_info().rss
        return total

    def _run(self) -> None:
        while not self._stop.is_set():
            rss = self._sample()
            with self._lock:
                self._peak = max(self._peak, rss)
                self.overall_peak = max(self.overall_peak, rss)
            self._stop.wait(self._interval)

    def take_peak_mb(self) -> float:
        """The peak (MB) since the previous call (or the start); starts a new period."""
        rss = self._sample()
        with self._lock:
            peak = max(self._peak, rss)
            self.overall_peak = max(self.overall_peak, rss)
            self._peak = 0
        return peak / 2**20

    def stop(self) -> None:
        """Stop sampling."""
        self._stop.set()
        self._thread.join(timeout=2)


@dataclass
class Server:
    """A server subprocess in its own process group, with its output kept for error messages.

    Parameters
    ----------
    name : str
        Label in messages.
    argv : list of str
        Command line.
    port : int
        Port it listens on (127.0.0.1).
    env : dict
        Environment of the process.
    prints_url : bool
        It promises to print its URL once it answers (``callmip serve``); checked.
    marks_complete : bool
        Its pages mark themselves complete (COMPLETE_CLASS); set False when one did not.
    """

    name: str
    argv: list[str]
    port: int
    env: dict[str, str]
    prints_url: bool = True
    marks_complete: bool = True
    process: subprocess.Popen | None = None
    sampler: RssSampler | None = None
    output: deque = field(default_factory=lambda: deque(maxlen=40))
    url_line_at: float | None = None

    @property
    def url(self) -> str:
        """The server's root address."""
        return f"http://127.0.0.1:{self.port}/"

    def start(self) -> None:
        """Start the process (it inherits no terminal; its output is read by two threads)."""
        self.process = subprocess.Popen(self.argv, cwd=REPO, env=self.env, text=True,
                                        stdin=subprocess.DEVNULL, stdout=subprocess.PIPE,
                                        stderr=subprocess.PIPE, start_new_session=True)
        for stream in (self.process.stdout, self.process.stderr):
            threading.Thread(target=self._read, args=(stream,), daemon=True).start()
        self.sampler = RssSampler(self.process.pid)

    def _read(self, stream: Any) -> None:
        for line in stream:
            self.output.append(line.rstrip())
            if self.url_line_at is None and self.url in line:
                self.url_line_at = time.monotonic()

    def wait_ready(self, timeout_s: float) -> float:
        """Wait until ``/liveness`` answers 200; return the seconds it took.

        The app's contract is to print its URL once it answers; this polls ``/liveness`` too
        and warns when the URL line is missing or came before the server answered.

        Raises
        ------
        BenchError
            If the process exits or does not answer within ``timeout_s``.
        """
        assert self.process is not None
        t0 = time.monotonic()
        early_warned = False
        while time.monotonic() - t0 < timeout_s:
            if self.process.poll() is not None:
                raise BenchError(f"{self.name} server exited with status "
                                 f"{self.process.returncode}:\n" + self.tail())
            line_seen = self.url_line_at is not None
            if _http_ok(self.url + "liveness"):
                ready = time.monotonic() - t0
                if self.prints_url:
                    self._check_url_line()
                return ready
            if line_seen and self.prints_url and not early_warned:
                log(f"NOTE: {self.name} server printed {self.url} before it answered HTTP")
                early_warned = True
            time.sleep(0.2)
        raise BenchError(f"{self.name} server did not answer {self.url}liveness within "
                         f"{timeout_s:.0f} s:\n" + self.tail())

    def _check_url_line(self) -> None:
        deadline = time.monotonic() + 3
        while self.url_line_at is None and time.monotonic() < deadline:
            time.sleep(0.1)
        if self.url_line_at is None:
            log(f"NOTE: {self.name} server answers but printed no line with {self.url}")

    def tail(self) -> str:
        """The last lines the process printed."""
        return "\n".join(f"    {line}" for line in self.output)

    def stop(self, *, graceful: bool = True) -> None:
        """Kill the process group (SIGTERM, then SIGKILL) and stop sampling.

        ``graceful=False``: SIGKILL at once (the app takes 1-2 s to exit on SIGTERM; a
        benchmark server has nothing to clean up: no uploads, its metric cache is temporary).
        """
        if self.sampler is not None:
            self.sampler.stop()
        if self.process is None or self.process.poll() is not None:
            return
        steps = ((signal.SIGTERM, 5), (signal.SIGKILL, 5)) if graceful else ((signal.SIGKILL, 5),)
        for sig, wait in steps:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(self.process.pid, sig)
            try:
                self.process.wait(timeout=wait)
                return
            except subprocess.TimeoutExpired:
                continue


def wait_servers(servers: Sequence[Server], cfg: Config) -> dict[str, str]:
    """Wait until each started server answers, then until all of them are idle.

    No benchmark begins while a server still works in the background (e.g. reading every
    site's files at start-up), so the measurements share the machine with nothing of ours.

    Returns
    -------
    dict
        Server name → why it could not start, for those that could not (they are stopped).
    """
    failed: dict[str, str] = {}
    for server in servers:
        try:
            log(f"{server.name} server answers after "
                f"{server.wait_ready(cfg.start_timeout_s):.1f} s")
        except BenchError as exc:
            failed[server.name] = str(exc)
            log(f"FAILED to start: {exc}")
            server.stop()
    alive = [s for s in servers if s.name not in failed]
    t0 = time.monotonic()
    if wait_idle(alive, cfg.idle_timeout_s):
        log(f"servers idle {time.monotonic() - t0:.1f} s later")
    else:
        log(f"NOTE: servers still busy after {cfg.idle_timeout_s:.0f} s; measuring anyway")
    return failed


def _cpu_seconds(servers: Sequence[Server], others: Sequence[int] = ()) -> float:
    import psutil

    total = 0.0
    pids = [server.process.pid for server in servers if server.process is not None]
    for pid in [*pids, *others]:
        with contextlib.suppress(psutil.Error):
            root = psutil.Process(pid)
            for proc in [root, *root.children(recursive=True)]:
                with contextlib.suppress(psutil.Error):
                    times = proc.cpu_times()
                    total += times.user + times.system
    return total


def browser_pids(servers: Sequence[Server]) -> list[int]:
    """This process's children that are not ``servers``: Playwright's driver (and chromium)."""
    import psutil

    mine = {server.process.pid for server in servers if server.process is not None}
    return [child.pid for child in psutil.Process().children() if child.pid not in mine]


def wait_idle(servers: Sequence[Server], timeout_s: float, *, cores: float = 0.1,
              window_s: float = 1.5, others: Sequence[int] = ()) -> bool:
    """Wait until ``servers`` together use under ``cores`` CPUs for ``window_s`` seconds.

    ``others``: more processes (with their descendants) that must be idle too, e.g. the
    browser after its warm-up pages (:func:`browser_pids`).

    Returns
    -------
    bool
        False if they were still busy after ``timeout_s``.
    """
    t0 = last_t = time.monotonic()
    last_cpu = _cpu_seconds(servers, others)
    quiet_since: float | None = None
    while time.monotonic() - t0 < timeout_s:
        time.sleep(0.25)
        now, cpu = time.monotonic(), _cpu_seconds(servers, others)
        busy = max(cpu - last_cpu, 0.0) / (now - last_t) >= cores
        last_t, last_cpu = now, cpu
        quiet_since = None if busy else (quiet_since or now)
        if quiet_since is not None and now - quiet_since >= window_s:
            return True
    return False


# --- measurements --------------------------------------------------------------------------

@dataclass
class Config:
    """What one run measures (from the command line)."""

    root: str
    runs: int
    n_sites: int
    n_simultaneous: int
    quick: bool
    serve_args: list[str]
    env: dict[str, str]
    quiet_ms: int
    settle_ms: int
    stall_s: float
    start_timeout_s: float
    idle_timeout_s: float
    open_timeout_s: float

    @property
    def bursts(self) -> int:
        """Simultaneous bursts (each gives ``n_simultaneous`` samples)."""
        return max(1, math.ceil(self.runs / 2))


@dataclass
class Results:
    """Samples (seconds) and peak memory (MB) per benchmark, what failed, what was blocked."""

    samples: dict[str, list[float]] = field(default_factory=dict)
    #: Reported values that are not the median of ``samples`` (the simultaneous bursts).
    summaries: dict[str, float | None] = field(default_factory=dict)
    peaks: dict[str, float | None] = field(default_factory=dict)
    errors: dict[str, str] = field(default_factory=dict)
    blocked_requests: int = 0

    def fail(self, names: Sequence[str], exc: BaseException | str,
             server: Server | None = None) -> None:
        """Record that those of ``names`` not measured yet could not be measured."""
        names = [n for n in names if n not in self.samples and n not in self.summaries]
        for name in names:
            self.errors.setdefault(name, str(exc))
        log(f"FAILED {', '.join(names)}: {exc}")
        if server is not None and server.output:
            log(f"last lines of the {server.name} server:\n{server.tail()}")


def median(samples: Sequence[float]) -> float | None:
    """The median of ``samples`` (None when empty)."""
    return statistics.median(samples) if samples else None


def p95(samples: Sequence[float]) -> float | None:
    """The 95th percentile of ``samples`` (nearest rank; None when empty)."""
    if not samples:
        return None
    ordered = sorted(samples)
    return ordered[max(0, math.ceil(0.95 * len(ordered)) - 1)]


def _describe(name: str, samples: Sequence[float]) -> None:
    log(f"{name}: " + ", ".join(f"{s:.3f}" for s in samples) + " s")


def archive_subjects(root: str, n_sites: int) -> tuple[list[str], list[str]]:
    """Sites and models to visit, read from the archive's catalog (file names only).

    Returns
    -------
    sites : list of str
        Up to ``n_sites`` sites with observations and site runs, DK-Sor first if it is one.
    models : list of str
        Model ids (``model.version``) by number of site-run files, most first.
    """
    from loaders.catalog import build_catalog

    df = build_catalog(root)
    runs = df[df["kind"] == "site_run"]
    observed = set(df.loc[df["kind"] == "observation", "site"].dropna())
    sites = sorted(observed & set(runs["site"].dropna()), key=lambda s: (s != "DK-Sor", s))
    ids = runs["model"].astype(str) + "." + runs["version"].astype(str)
    return sites[:n_sites], list(ids.value_counts().index)


def bench_catalog(cfg: Config, results: Results, tree: Path, *, remove: bool = True) -> None:
    """``catalog_build`` on the archive and ``catalog_build_10k`` on the synthetic ``tree``.

    ``remove``: delete the tree afterwards (else the caller does, when nothing is measured).
    """
    from loaders.catalog import build_catalog

    n_runs = max(cfg.runs, 3)
    sampler = RssSampler(os.getpid(), tree=False, interval=0.05)
    try:
        for name, root in (("catalog_build", cfg.root), ("catalog_build_10k", str(tree))):
            build_catalog(root)  # imports and the file-system cache outside the timing
            sampler.take_peak_mb()
            results.samples[name] = _timed_calls(build_catalog, root, n_runs)
            results.peaks[name] = sampler.take_peak_mb()
            _describe(name, results.samples[name])
    except Exception as exc:
        results.fail(["catalog_build", "catalog_build_10k"], exc)
    finally:
        sampler.stop()
        if remove:
            t0 = time.perf_counter()
            shutil.rmtree(tree, ignore_errors=True)
            log(f"synthetic tree removed in {time.perf_counter() - t0:.1f} s")


def make_synthetic_tree(path: Path) -> None:
    """Write bench_catalog.py's tree of 10,000 realistically named (nearly empty) files."""
    from tests.benchmarks.bench_catalog import make_tree

    t0 = time.perf_counter()
    make_tree(path, 10_000)
    log(f"synthetic 10,000-file tree written in {time.perf_counter() - t0:.1f} s")


async def in_low_priority_thread(function: Callable[..., Any], *args: Any) -> None:
    """Run ``function(*args)`` in a thread of its own at nice 10; wait for it.

    For set-up work beside the servers' start-up (writing the synthetic tree, mostly file
    creation in the kernel: 0.5 s on a quiet machine, 10 s and more when other jobs keep it
    busy), so that under contention the servers get the CPU first. A thread of its own: the
    pool of :func:`asyncio.to_thread` runs the measured catalog build later.
    """
    loop = asyncio.get_running_loop()
    done: asyncio.Future = loop.create_future()

    def target() -> None:
        with contextlib.suppress(OSError, AttributeError):  # not Linux: normal priority
            os.setpriority(os.PRIO_PROCESS, threading.get_native_id(), 10)
        try:
            function(*args)
        except BaseException as exc:  # noqa: BLE001  (handed to the awaiting coroutine)
            loop.call_soon_threadsafe(done.set_exception, exc)
        else:
            loop.call_soon_threadsafe(done.set_result, None)

    threading.Thread(target=target, name="callmip-bench-setup", daemon=True).start()
    await done


def _timed_calls(function: Callable[[str], Any], arg: str, n: int) -> list[float]:
    times = []
    for _ in range(n):
        t0 = time.perf_counter()
        function(arg)
        times.append(time.perf_counter() - t0)
    return times


def app_server(cfg: Config, name: str) -> Server:
    """A ``callmip serve ROOT`` subprocess on a free port (not started)."""
    port = free_port()
    argv = [sys.executable, "-m", "dashboard.cli", "serve", cfg.root, "--address", "127.0.0.1",
            "--port", str(port), *cfg.serve_args]
    return Server(name, argv, port, cfg.env)


def floor_server(cfg: Config) -> Server:
    """The floor app's subprocess on a free port (not started)."""
    port = free_port()
    argv = [sys.executable, "-c", FLOOR_BOOT, str(Path(__file__).resolve()), str(port)]
    return Server("floor", argv, port, cfg.env, prints_url=False)


def _open_options(cfg: Config, server: Server) -> dict[str, Any]:
    return {"timeout_s": cfg.open_timeout_s, "complete": server.marks_complete,
            "stall_s": cfg.stall_s}


async def _warm_up(chromium: Chromium, server: Server, url: str, cfg: Config) -> None:
    """One unmeasured open (the first session of a process pays imports and first renders).

    It also tells whether the server's pages mark themselves complete (COMPLETE_CLASS); if
    not, later opens wait for a quiet page instead and no ``*_complete`` time is measured.
    """
    page = await chromium.new_page()
    try:
        opened = await open_timed(page, url, **_open_options(cfg, server))
    finally:
        await close_page(page)
    if not server.marks_complete or opened.complete_s is not None:
        return
    log(f"NOTE: warm-up {url} was not complete (page state {opened.state})")
    if isinstance(opened.state, dict) and not opened.state.get("marked_complete"):
        server.marks_complete = False
        log(f"NOTE: no model carried the CSS class {COMPLETE_CLASS!r}: complete times are not "
            f"measured on the {server.name} server")


async def _opens(chromium: Chromium, server: Server, url: str,
                 cfg: Config) -> tuple[list[Opened], Any]:
    """``cfg.runs`` timed opens of ``url``, each in a fresh context; the last page stays open.

    Each page is complete (or quiet) before it is closed, so no session is still being built
    on the server while the next one is timed.

    Returns
    -------
    opened : list of Opened
        The times of each open.
    page : playwright.async_api.Page
        The last page, still open (for the in-page updates); the caller closes it.
    """
    opened: list[Opened] = []
    for i in range(cfg.runs):
        page = await chromium.new_page()
        try:
            opened.append(await open_timed(page, url, **_open_options(cfg, server)))
            if opened[-1].complete_s is None:
                if server.marks_complete:
                    log(f"NOTE: {url} was not complete (page state {opened[-1].state})")
                await settle(page, quiet_ms=cfg.settle_ms)
        except BaseException:
            await close_page(page)
            raise
        if i < cfg.runs - 1:
            await close_page(page)
    return opened, page


def _record_opens(results: Results, name: str, opened: list[Opened], peak: float) -> None:
    """``name``: the first-plot times; ``name`` with ``first_plot`` → ``complete``: the rest."""
    results.samples[name] = [o.first_plot_s for o in opened]
    results.peaks[name] = peak
    _describe(name, results.samples[name])
    complete = name.replace("first_plot", "complete")
    if complete != name:
        done = [o.complete_s for o in opened if o.complete_s is not None]
        if done:
            results.samples[complete] = done
            results.peaks[complete] = peak
            _describe(complete, done)
        else:
            results.fail([complete], f"the page never marked itself complete ({COMPLETE_CLASS})")


def _cycle(values: list, n: int) -> list:
    """The first ``n`` values going round ``values``."""
    return [values[i % len(values)] for i in range(n)]


async def _switches(page: Any, probe: str | None, values: list, cfg: Config) -> list[float]:
    return [await switch_timed(page, probe, v, quiet_ms=cfg.quiet_ms) for v in values]


async def bench_floor(cfg: Config, chromium: Chromium, server: Server,
                      results: Results, *, warm_up: bool = True) -> None:
    """``floor`` (page open) and ``floor_update`` (the curve's data swapped by a widget).

    ``warm_up``: open the page once, unmeasured, first (False: it was, see :func:`prepare`).
    """
    assert server.sampler is not None
    if warm_up:
        await _warm_up(chromium, server, server.url, cfg)
    server.sampler.take_peak_mb()
    with phase("floor opens"):
        opened, page = await _opens(chromium, server, server.url, cfg)
    _record_opens(results, "floor", opened, server.sampler.take_peak_mb())
    try:
        with phase("floor updates"):
            await settle(page, quiet_ms=cfg.settle_ms)
            await watch_updates(page)
            values = _cycle(FLOOR_SERIES[1:] + FLOOR_SERIES[:1], cfg.runs)
            results.samples["floor_update"] = await _switches(page, FLOOR_SERIES[0], values,
                                                              cfg)
    finally:
        await close_page(page)
    results.peaks["floor_update"] = server.sampler.take_peak_mb()
    _describe("floor_update", results.samples["floor_update"])
    if not cfg.quick:  # the context of the app's burst; --quick keeps under a minute without
        await bench_bursts(cfg, chromium, server, results, server.url, name="floor_simultaneous")


async def bench_app(cfg: Config, chromium: Chromium, server: Server, results: Results,
                    sites: list[str], models: list[str]) -> None:
    """First plots of the Overview and Sites views, then the switches on the last Sites page.

    The server was warmed up (:func:`app_warm_urls`, in :func:`prepare`). With ``--quick`` the
    simultaneous opens run here too, after the switches, with the Sites opens as their
    ``single_open`` baseline, instead of on a fresh server.
    """
    assert server.sampler is not None
    sites_url = f"{server.url}?view=sites&site={sites[0]}"
    overview_url = f"{server.url}?view=overview"
    params_url = f"{server.url}?view=parameters&scenario=1"
    server.sampler.take_peak_mb()
    try:
        with phase("overview opens"):
            opened, page = await _opens(chromium, server, overview_url, cfg)
            await close_page(page)
        _record_opens(results, "overview_first_plot", opened, server.sampler.take_peak_mb())
    except BenchError as exc:
        results.fail(["overview_first_plot", "overview_complete"], exc, server)
    with phase("sites opens"):
        opened, page = await _opens(chromium, server, sites_url, cfg)
    _record_opens(results, "sites_first_plot", opened, server.sampler.take_peak_mb())
    try:
        with phase("switches"):
            await bench_switches(cfg, page, server, results, sites, models)
    finally:
        await close_page(page)
    if not cfg.quick:  # not one of the serving issue's measurements: the full run has it
        await bench_parameters(cfg, chromium, server, results, params_url)
    if cfg.quick:
        results.samples["single_open"] = list(results.samples["sites_first_plot"])
        results.peaks["single_open"] = results.peaks["sites_first_plot"]
        await bench_bursts(cfg, chromium, server, results, sites_url)


async def bench_parameters(cfg: Config, chromium: Chromium, server: Server, results: Results,
                           url: str) -> None:
    """``parameters_first_plot`` and ``parameters_complete`` (issue #12), after a warm-up."""
    assert server.sampler is not None
    try:
        with phase("parameters warm-up and opens"):
            await _warm_up(chromium, server, url, cfg)
            server.sampler.take_peak_mb()
            opened, page = await _opens(chromium, server, url, cfg)
            await close_page(page)
        _record_opens(results, "parameters_first_plot", opened, server.sampler.take_peak_mb())
    except BenchError as exc:
        results.fail(["parameters_first_plot", "parameters_complete"], exc, server)


async def bench_switches(cfg: Config, page: Any, server: Server, results: Results,
                         sites: list[str], models: list[str]) -> None:
    """``switch_site``, ``switch_variable`` and ``switch_models`` on an open Sites page.

    The sites are visited in turn (each of them at least once), the variables go round
    Qle, Qh, NEE and the models round [a], [b], [a, b].
    """
    assert server.sampler is not None
    if not await settle(page, quiet_ms=cfg.settle_ms):
        log("NOTE: the Sites page kept changing; switching anyway")
    await watch_updates(page)
    options = await widget_options(page, sites[0]) or []
    shown = [s for s in sites if s in options]
    if len(shown) < len(sites):
        log(f"NOTE: sites missing from the Site widget: {sorted(set(sites) - set(shown))}")
    model_options = await widget_options(page, None, multi=True)
    plans = {
        "switch_site": (sites[0], _cycle(shown[1:] + shown[:1], max(cfg.runs, len(shown) - 1))
                        if len(shown) > 1 else []),
        "switch_variable": ("Qle", _cycle(["Qle", "Qh", "NEE"], cfg.runs)),
        "switch_models": _model_plan(models, model_options, cfg.runs),
    }
    for name, (probe, values) in plans.items():
        server.sampler.take_peak_mb()
        try:
            if not values:
                raise BenchError(f"nothing to switch between for {name}")
            results.samples[name] = await _switches(page, probe, values, cfg)
        except BenchError as exc:
            results.fail([name], exc, server)
            continue
        results.peaks[name] = server.sampler.take_peak_mb()
        _describe(name, results.samples[name])


def _model_plan(models: list[str], options: list | None,
                runs: int) -> tuple[str | None, list[list[str]]]:
    """The MultiChoice values to cycle through: [a], [b], [a, b] (each a visible change)."""
    if not options:
        log("NOTE: no multi-valued (models) widget found in the Sites view")
        return None, []
    chosen = [m for m in models if m in options][:2] or list(options[:2])
    if len(chosen) < 2:
        return chosen[0] if chosen else None, []
    a, b = chosen
    return a, _cycle([[a], [b], [a, b]], runs)


async def bench_fresh(cfg: Config, chromium: Chromium, server: Server, results: Results,
                      site: str) -> None:
    """On a server that served nobody but its warm-up: ``single_open``, then the bursts."""
    assert server.sampler is not None
    url = f"{server.url}?view=sites&site={site}"
    server.sampler.take_peak_mb()
    with phase("single opens"):
        opened, page = await _opens(chromium, server, url, cfg)
        await close_page(page)
    _record_opens(results, "single_open", opened, server.sampler.take_peak_mb())
    await bench_bursts(cfg, chromium, server, results, url)


async def bench_bursts(cfg: Config, chromium: Chromium, server: Server, results: Results,
                       url: str, name: str = "simultaneous_open") -> None:
    """``<name>_N`` and ``<name>_N_p95``: medians over bursts of N simultaneous opens.

    On the floor page (``name="floor_simultaneous"``) this is the baseline of the app's
    simultaneous opens: what N pages opened at once cost the browser and the machine (the
    server of the floor does almost nothing).
    """
    assert server.sampler is not None
    name = f"{name}_{cfg.n_simultaneous}"
    server.sampler.take_peak_mb()
    bursts = []
    with phase(name.replace("_", " ")):
        for _ in range(cfg.bursts):
            # First plots only: the server's last measurement, so pages may close half-built.
            opened = await open_simultaneously(chromium, url, cfg.n_simultaneous,
                                               timeout_s=2 * cfg.open_timeout_s,
                                               complete=False)
            bursts.append([o.first_plot_s for o in opened])
            _describe(f"{name} (one burst)", bursts[-1])
            log(f"non-local requests blocked so far: {sum(chromium.blocked.values())}")
    results.samples[name] = [t for burst in bursts for t in burst]
    results.summaries[name] = median([median(b) for b in bursts])
    results.summaries[f"{name}_p95"] = median([p95(b) for b in bursts])
    results.peaks[name] = results.peaks[f"{name}_p95"] = server.sampler.take_peak_mb()


@dataclass
class Group:
    """Benchmarks sharing one server: their names, the coroutine that measures them, and the
    pages opened once, unmeasured, before any measurement (the warm-up, see :func:`prepare`)."""

    server: Server
    names: list[str]
    bench: Callable[[Server], Any]
    warm_urls: list[str] = field(default_factory=list)


def app_warm_urls(cfg: Config, server: Server, site: str) -> list[str]:
    """The app server's warm-up opens: the Overview (not with ``--quick``), then the Sites view.

    The first session of a process pays imports and first renders; the measured opens come
    after these.
    """
    sites_url = f"{server.url}?view=sites&site={site}"
    return [sites_url] if cfg.quick else [f"{server.url}?view=overview", sites_url]


def plan_groups(cfg: Config, chromium: Chromium, results: Results, sites: list[str],
                models: list[str], floor: Server | None = None) -> list[Group]:
    """The floor server, an app server, and (without ``--quick``) a fresh app server.

    ``floor``: the floor's server if it was created already (it starts before the archive is
    ready); the others are created here, not started.
    """
    sim = f"simultaneous_open_{cfg.n_simultaneous}"
    app_names = ["overview_first_plot", "overview_complete", "sites_first_plot",
                 "sites_complete", "switch_site", "switch_variable", "switch_models"]
    if not cfg.quick:
        app_names += ["parameters_first_plot", "parameters_complete"]
    floor_sim = f"floor_simultaneous_{cfg.n_simultaneous}"
    floor_names = ["floor", "floor_update"] + ([] if cfg.quick else [floor_sim, f"{floor_sim}_p95"])
    floor = floor or floor_server(cfg)
    app = app_server(cfg, "app")
    groups = [
        Group(floor, floor_names,
              lambda s: bench_floor(cfg, chromium, s, results, warm_up=False), [floor.url]),
        Group(app, app_names + (["single_open", sim, f"{sim}_p95"] if cfg.quick else []),
              lambda s: bench_app(cfg, chromium, s, results, sites, models),
              app_warm_urls(cfg, app, sites[0])),
    ]
    if not cfg.quick:
        fresh = app_server(cfg, "fresh app")
        groups.append(Group(fresh, ["single_open", sim, f"{sim}_p95"],
                            lambda s: bench_fresh(cfg, chromium, s, results, sites[0]),
                            app_warm_urls(cfg, fresh, sites[0])[-1:]))
    return groups


async def start_chromium(chromium: Chromium) -> None:
    """Launch chromium; a failure is a :class:`BenchError` (nothing in the browser can run)."""
    try:
        await chromium.start()
    except Exception as exc:
        raise BenchError(f"chromium did not start: {exc}") from exc


async def prepare(groups: list[Group], chromium: Chromium, launch: asyncio.Task,
                  tree: asyncio.Task, cfg: Config) -> dict[str, str]:
    """Get every server and the browser ready, unmeasured; return the servers that failed.

    All of it overlaps: each started server is waited for and, as soon as it answers (and
    chromium, launched by ``launch``, is up), opened once per warm-up URL, while the others
    still start and ``tree`` (the synthetic tree) is written. Then it waits until the servers,
    chromium and Playwright's driver together are idle (:func:`wait_idle`), so every
    measurement that follows has the machine to itself, as when each warm-up came just
    before its server's measurements.

    Returns
    -------
    dict
        Server name → why it cannot be measured (did not start, or its warm-up failed).
    """
    failed: dict[str, str] = {}

    async def ready(group: Group) -> None:
        server = group.server
        try:
            seconds = await asyncio.to_thread(server.wait_ready, cfg.start_timeout_s)
            log(f"{server.name} server answers {seconds:.1f} s after it was waited for")
        except BenchError as exc:
            failed[server.name] = str(exc)
            log(f"FAILED to start: {exc}")
            server.stop()
            return
        await launch
        t0 = time.monotonic()
        try:
            for url in group.warm_urls:
                await _warm_up(chromium, server, url, cfg)
        except Exception as exc:  # a broken server or page: report it, measure the rest
            failed[server.name] = f"its warm-up failed: {exc}"
            log(f"FAILED the warm-up of the {server.name} server: {exc}\n{server.tail()}")
            return
        log(f"{server.name} server warmed up in {time.monotonic() - t0:.1f} s")

    await asyncio.gather(*(ready(group) for group in groups))
    await tree
    alive = [g.server for g in groups if g.server.name not in failed]
    browser = browser_pids([g.server for g in groups])
    t0 = time.monotonic()
    if await asyncio.to_thread(wait_idle, alive, cfg.idle_timeout_s, others=browser):
        log(f"servers and browser idle {time.monotonic() - t0:.1f} s later")
    else:
        log(f"NOTE: servers or browser still busy after {cfg.idle_timeout_s:.0f} s "
            f"({await asyncio.to_thread(_busy, alive, browser)}); measuring anyway")
    return failed


def _busy(servers: Sequence[Server], browser: Sequence[int], interval: float = 0.5) -> str:
    """CPUs used by each server and by the browser over ``interval`` seconds (for a note)."""
    parts = [(s.name, [s], ()) for s in servers] + [("browser", [], browser)]
    before = [_cpu_seconds(group, others) for _, group, others in parts]
    time.sleep(interval)
    return ", ".join(f"{name} {(_cpu_seconds(group, others) - cpu) / interval:.2f}"
                     for (name, group, others), cpu in zip(parts, before, strict=True))


async def bench_browser(groups: list[Group], failed: dict[str, str], chromium: Chromium,
                        results: Results) -> None:
    """Run each group's benchmarks in the started chromium.

    Each server but the last is stopped when its group is done (the last one is stopped by
    the caller, together with chromium).
    """
    for group in groups:
        if group.server.name in failed:
            results.fail(group.names, failed[group.server.name])
            continue
        blocked = sum(chromium.blocked.values())
        try:
            await group.bench(group.server)
        except Exception as exc:  # a broken server or page: report it, measure the rest
            results.fail(group.names, exc, group.server)
        finally:
            if group is not groups[-1]:
                group.server.stop()
        if sum(chromium.blocked.values()) > blocked:
            log(f"NOTE: pages of the {group.server.name} server asked for "
                f"{sum(chromium.blocked.values()) - blocked} non-local resources (blocked)")


# --- report --------------------------------------------------------------------------------

def _entry(name: str, value: float | None, baseline: str | None, base_value: float | None,
           peak: float | None) -> dict[str, Any]:
    ratio = value / base_value if value is not None and base_value else None
    return dict(zip(KEYS, (name, None if value is None else round(value, 4), baseline,
                           None if base_value is None else round(base_value, 4),
                           None if ratio is None else round(ratio, 3),
                           None if peak is None else round(peak, 1)), strict=True))


def build_entries(results: Results, n_simultaneous: int, quick: bool = False
                  ) -> list[dict[str, Any]]:
    """The report: one dict per benchmark with exactly :data:`KEYS`.

    ``quick`` leaves out the Parameters view's opens, which ``--quick`` does not measure.
    """
    def value(name: str) -> float | None:
        if name in results.summaries:
            return results.summaries[name]
        return median(results.samples.get(name, []))

    sim = f"simultaneous_open_{n_simultaneous}"
    plan: list[tuple[str, str | None]] = [
        ("floor", None), ("floor_update", None),
        ("overview_first_plot", "floor"), ("overview_complete", "floor"),
        ("sites_first_plot", "floor"), ("sites_complete", "floor"),
        ("switch_site", "floor_update"), ("switch_variable", "floor_update"),
        ("switch_models", "floor_update"),
        *([] if quick else [("parameters_first_plot", "floor"),
                            ("parameters_complete", "floor")]),
        *([] if quick else [(f"floor_simultaneous_{n_simultaneous}", "floor"),
                            (f"floor_simultaneous_{n_simultaneous}_p95", "floor")]),
        ("single_open", "floor"), (sim, "single_open"), (f"{sim}_p95", "single_open"),
        ("catalog_build", None), ("catalog_build_10k", None),
    ]
    entries = []
    for name, base in plan:
        base_value = value(base) if base else None
        entries.append(_entry(name, value(name), base, base_value, results.peaks.get(name)))
    entries.append(_entry("peak_memory", None, None, None, results.peaks.get("peak_memory")))
    return entries


def _fmt(x: Any, spec: str) -> str:
    return "—" if x is None else format(x, spec)


def targets_line(entries: list[dict[str, Any]], n_simultaneous: int) -> str:
    """The targets and whether this run met them."""
    by = {e["name"]: e for e in entries}

    def verdict(ok: bool | None) -> str:
        return "not measured" if ok is None else ("met" if ok else "MISSED")

    sites = by["sites_first_plot"]["ratio"]
    switches = [by[n]["median_s"] for n in ("switch_site", "switch_variable", "switch_models")]
    worst = max((s for s in switches if s is not None), default=None)
    sim = by[f"simultaneous_open_{n_simultaneous}_p95"]["ratio"]
    floor_sim = by.get(f"floor_simultaneous_{n_simultaneous}_p95", {}).get("ratio")
    return ("Targets: Sites first plot ≤ 1.5× floor "
            f"(now {_fmt(sites, '.2f')}×: "
            f"{verdict(None if sites is None else sites <= FIRST_PLOT_TARGET_RATIO)}); "
            f"switch ≤ {SWITCH_TARGET_S} s (slowest median {_fmt(worst, '.3f')} s: "
            f"{verdict(None if worst is None else worst <= SWITCH_TARGET_S)}); "
            f"{n_simultaneous} simultaneous opens p95 ≤ 3× single "
            f"(now {_fmt(sim, '.2f')}×: "
            f"{verdict(None if sim is None else sim <= SIMULTANEOUS_TARGET_RATIO)}"
            + (f"; the minimal page itself: {_fmt(floor_sim, '.2f')}×)" if floor_sim is not None
               else ")"))


def table(entries: list[dict[str, Any]], n_simultaneous: int, blocked: int = 0) -> str:
    """The human-readable report."""
    header = (f"{'name':<28} {'median (s)':>10}  {'baseline':<14} {'baseline median (s)':>19}"
              f" {'ratio':>7} {'peak RSS (MB)':>13}")
    lines = [header, "-" * len(header)]
    for e in entries:
        lines.append(f"{e['name']:<28} {_fmt(e['median_s'], '.3f'):>10}  "
                     f"{e['baseline'] or '—':<14} {_fmt(e['baseline_median_s'], '.3f'):>19} "
                     f"{_fmt(e['ratio'], '.2f'):>7} {_fmt(e['peak_rss_mb'], '.0f'):>13}")
    lines.append(f"Non-local requests blocked in chromium: {blocked}")
    lines.append(targets_line(entries, n_simultaneous))
    return "\n".join(lines)


# --- command line --------------------------------------------------------------------------

def parse_args(argv: Sequence[str] | None) -> argparse.Namespace:
    """The command-line options."""
    parser = argparse.ArgumentParser(
        description=__doc__.split("\n\n")[0],
        formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--json", action="store_true",
                        help="print exactly one JSON object on stdout")
    parser.add_argument("--quick", action="store_true",
                        help="tiny test archive, fewer repetitions (under a minute)")
    parser.add_argument("--archive", help="archive folder (default: the demo archive; "
                                          "the tiny test archive with --quick)")
    parser.add_argument("--runs", type=int, help="measurements per benchmark (default 5, "
                                                 "2 with --quick)")
    parser.add_argument("--serve-arg", action="append", default=[], metavar="ARG",
                        help="extra argument of `callmip serve` (repeatable), "
                             "e.g. --serve-arg=--warm")
    parser.add_argument("--global", dest="global_view", action="store_true",
                        help="only the Global view section (bench_global.py): a 0.5° monthly "
                             "20-year archive of 5 models generated into /tmp, optimised vs "
                             "naive (QuadMesh, whole cube per session); prints the ratios")
    args = parser.parse_args(argv)
    if args.runs is not None and args.runs < 1:
        parser.error("--runs must be at least 1")
    return args


def resolve_archive(args: argparse.Namespace, tmp: Path) -> str:
    """The archive to serve: ``--archive``, the tiny test archive (quick) or the demo one."""
    if args.archive:
        if not Path(args.archive).is_dir():
            raise BenchError(f"--archive {args.archive!r} is not a folder")
        return str(Path(args.archive).resolve())
    if args.quick:
        from tests.appdata import build_app_archive
        from tests.synthetic import write_parameters

        log("writing the tiny test archive")
        root = build_app_archive(tmp / "archive")
        write_parameters(root / "parameters", model="ALPHA", version="v1", scenario=1,
                         rows=None, seed=1)  # for the Parameters view
        return str(root)
    from dashboard.demo import ensure_demo_archive

    log("the demo archive (generated into the user cache the first time, ~40 s)")
    return str(ensure_demo_archive(progress=True))


def chromium_setup() -> tuple[str, list[str]]:
    """Chromium's path and switches (tests/conftest.py), checked to exist."""
    import param

    flag = param.parameterized.warnings_as_exceptions
    try:
        from tests.conftest import CHROMIUM, CHROMIUM_ARGS
    finally:  # conftest turns Param warnings into errors for the tests, not for us
        param.parameterized.warnings_as_exceptions = flag
    if not (Path(CHROMIUM).is_file() and os.access(CHROMIUM, os.X_OK)):
        raise BenchError(f"chromium not found at {CHROMIUM} (tests/conftest.py CHROMIUM)")
    try:
        import playwright.async_api  # noqa: F401
    except ImportError as exc:
        raise BenchError(f"Playwright is not installed: {exc}") from exc
    return CHROMIUM, list(CHROMIUM_ARGS)


def make_config(args: argparse.Namespace, root: str, cache_dir: Path) -> Config:
    """The run's settings; servers get a private metric cache unless CALLMIP_CACHE_DIR is set."""
    env = dict(os.environ)
    env.setdefault("CALLMIP_CACHE_DIR", str(cache_dir))
    env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(REPO), env.get("PYTHONPATH")]))
    env["PYTHONUNBUFFERED"] = "1"  # the URL line must arrive when it is printed
    runs = args.runs or (2 if args.quick else 5)
    quick = args.quick
    return Config(root=root, runs=runs, n_sites=3 if quick else 6,
                  n_simultaneous=3 if quick else 8, quick=quick,
                  serve_args=list(args.serve_arg), env=env, quiet_ms=300 if quick else 1000,
                  settle_ms=500 if quick else 1000, stall_s=10 if quick else 20,
                  start_timeout_s=120 if quick else 900, idle_timeout_s=30 if quick else 600,
                  open_timeout_s=60 if quick else 180)


def run(args: argparse.Namespace, tmp: Path) -> tuple[list[dict[str, Any]], Results, Config]:
    """Measure everything; return the report entries, the raw results and the settings."""
    return asyncio.run(_run(args, tmp))


async def _run(args: argparse.Namespace,
               tmp: Path) -> tuple[list[dict[str, Any]], Results, Config]:
    """:func:`run`'s work. The set-up overlaps (see :func:`prepare`); no measurement does.

    Chromium is launched while the archive is written; the app servers start as soon as it
    is (their start-up is the longest part of the set-up), then the floor server, and the
    synthetic tree is written while they start.
    """
    executable, chromium_args = chromium_setup()
    cfg = make_config(args, "", tmp / "cache")  # the root is set once the archive is ready
    results = Results()
    chromium = Chromium(executable, chromium_args)
    floor = floor_server(cfg)
    groups: list[Group] = []
    launch: asyncio.Task | None = None
    writing: asyncio.Task | None = None
    tree = tmp / "tree"
    try:
        with phase("set-up"):
            launch = asyncio.create_task(start_chromium(chromium))
            cfg.root = await asyncio.to_thread(resolve_archive, args, tmp)
            log(f"archive {cfg.root}; {cfg.runs} runs per benchmark; metric cache "
                f"{cfg.env['CALLMIP_CACHE_DIR']}; {_load()}")
            sites, models = await asyncio.to_thread(archive_subjects, cfg.root, cfg.n_sites)
            if not sites:
                raise BenchError(f"no site with observations and site runs under {cfg.root}")
            log(f"sites {sites}; models {models[:2]} first")
            groups = plan_groups(cfg, chromium, results, sites, models, floor)
            for group in [*groups[1:], groups[0]]:  # the floor's server last
                log(f"starting the {group.server.name} server: "
                    f"{shlex.join(group.server.argv)}")
                group.server.start()
            # Written while the servers start (not timed), giving way to them.
            writing = asyncio.create_task(in_low_priority_thread(make_synthetic_tree, tree))
            failed = await prepare(groups, chromium, launch, writing, cfg)
        with phase("catalog"):
            await asyncio.to_thread(bench_catalog, cfg, results, tree, remove=False)
        with phase("browser"):
            await bench_browser(groups, failed, chromium, results)
    finally:
        with phase("tear-down"):
            if launch is not None and not launch.done():
                launch.cancel()
            if writing is not None:  # done unless the set-up failed: let it end before rmtree
                with contextlib.suppress(Exception):
                    await writing
            servers = [g.server for g in groups] or [floor]
            await asyncio.gather(chromium.close(),
                                 *(asyncio.to_thread(s.stop, graceful=False) for s in servers),
                                 asyncio.to_thread(shutil.rmtree, tree, ignore_errors=True),
                                 return_exceptions=True)
    peaks = [g.server.sampler.overall_peak / 2**20 for g in groups[1:] if g.server.sampler]
    results.peaks["peak_memory"] = max(peaks, default=0.0) or None
    blocked = chromium.blocked
    results.blocked_requests = sum(blocked.values())
    log(f"blocked {sum(blocked.values())} non-local requests"
        + "".join(f"; {host} ×{n}" for host, n in blocked.most_common())
        + "".join(f"\n    {url}" for url in chromium.blocked_urls[:10]))
    return build_entries(results, cfg.n_simultaneous, cfg.quick), results, cfg


def main(argv: Sequence[str] | None = None) -> int:
    """Run the benchmarks and print the report; return the exit status."""
    args = parse_args(argv)
    if args.global_view:  # the Global view's section (issue #13), in this process
        sys.path.insert(0, str(Path(__file__).resolve().parent))
        import bench_global

        global_args = bench_global.parse_args(["--runs", str(args.runs or 3)]
                                              + (["--json"] if args.json else []))
        log(f"Global view: in chromium, then in this process; {_load()}")
        with contextlib.redirect_stdout(sys.stderr):
            try:
                browser = bench_global.run_browser(global_args)
            except BenchError as exc:
                log(f"FAILED the browser part: {exc}")
                browser = None
            result = bench_global.run(global_args)
            bench_global.print_table(result)  # the in-process details (stderr)
        log(f"done; {_load()}")
        entries = bench_global.entries(result, browser)
        if args.json:
            print(json.dumps({"benchmarks": entries}))
        else:
            print(bench_global.report(entries, None if browser is None else browser["blocked"]))
        return 0 if browser is not None else 1
    t0 = time.monotonic()
    tmp = Path(tempfile.mkdtemp(prefix="callmip-bench-"))
    try:
        with contextlib.redirect_stdout(sys.stderr):  # stray prints must not reach stdout
            entries, results, cfg = run(args, tmp)
    except BenchError as exc:
        print(f"run.py: error: {exc}", file=sys.stderr)
        return 2
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    log(phases_line())
    log(f"done in {time.monotonic() - t0:.0f} s; {_load()}")
    if args.json:
        print(json.dumps({"benchmarks": entries}))
    else:
        print(table(entries, cfg.n_simultaneous, results.blocked_requests))
    if results.errors:
        print("run.py: not measured: " + "; ".join(f"{k}: {v.splitlines()[0]}"
                                                   for k, v in results.errors.items()),
              file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
