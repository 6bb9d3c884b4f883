"""Load test: concurrent sessions of the served dashboard open the Sites view and change selections.

Run from anywhere (it serves the checkout it lives in)::

    python tests/load/run.py --sessions 8 [--cycles M] [--procs P] [--threads T]
                             [--archive DIR | --tiny] [--json] [--browsers K]

It starts ``python -m dashboard.cli serve ROOT --address 127.0.0.1 --port PORT --num-procs P
[--num-threads T]`` as a subprocess (its own process group, killed at the end), waits until
``/liveness`` answers and the server is idle, then runs cycles: N websocket clients open real
sessions of the app at once (``/?view=sites&site=DK-Sor``), each changes the Variable, Site and
Models widgets in turn and times the server's reply, then all close; the server is given time
to destroy the sessions (Bokeh discards a closed session after ``unused_session_lifetime``,
15 s unless the app sets more, checking every 17 s; the wait ends as soon as the server's log
shows every session destroyed) and its memory is measured. Only 127.0.0.1 is contacted.

Output: a table, or with ``--json`` one JSON object on stdout; progress goes to stderr.
Exit status: 0 no errors (and memory growth within target), 1 errors, disconnects or growth
over target, 2 the server did not start or stopped.
"""

from __future__ import annotations

import argparse
import asyncio
import itertools
import json
import logging
import os
import re
import shutil
import signal
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[2]
if str(REPO) not in sys.path:
    sys.path.insert(0, str(REPO))

from tests.load.report import (  # noqa: E402
    CycleRecord,
    cpu_summary,
    error_summary,
    format_table,
    growth,
    latency_summary,
    memory_summary,
    session_details,
)
from tests.load.scenario import SessionConfig, observed_sites, run_sessions  # noqa: E402
from tests.load.server import (  # noqa: E402
    MemorySampler,
    ServerError,
    ServerProcess,
    free_port,
    serve_flags,
)

log = logging.getLogger("load")
#: The CSS class the app gives its view once every plot is in (dashboard.views.loading).
COMPLETE_CLASS = "callmip-complete"
#: Bokeh discards a closed session once unused for unused_session_lifetime (default 15 s; the
#: app may set more), checking every check_unused_sessions (17 s).
BOKEH_LIFETIME_S = 15.0
BOKEH_CHECK_S = 17.0
LIFETIME_SETTING = re.compile(
    r"(?:UNUSED_SESSION_LIFETIME_MS\s*=|unused_session_lifetime_milliseconds[\"']?\s*[:=])"
    r"\s*([0-9_]+)")


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    """Parse the command line."""
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                formatter_class=argparse.ArgumentDefaultsHelpFormatter)
    p.add_argument("--sessions", type=int, default=4, help="concurrent sessions per cycle")
    p.add_argument("--cycles", type=int, default=1,
                   help="open N sessions, change selections, close; this many times")
    p.add_argument("--procs", type=int, default=1, help="server --num-procs (0: one per core)")
    p.add_argument("--threads", type=int, default=None, help="server --num-threads")
    p.add_argument("--cache-mb", type=int, default=None, help="server --cache-mb")
    src = p.add_mutually_exclusive_group()
    src.add_argument("--archive",
                     help="data folder to serve; neither this nor --tiny: the demo archive")
    src.add_argument("--tiny", action="store_true",
                     help="serve the tiny test archive (tests/appdata.py), built in a temp dir")
    p.add_argument("--json", action="store_true", help="print one JSON object on stdout")
    p.add_argument("--changes", type=int, default=6, help="selection changes per session")
    p.add_argument("--think", type=float, default=0.5, help="pause before each change (s)")
    p.add_argument("--ramp", type=float, default=0.0,
                   help="delay between session starts (s); 0 opens all at once")
    p.add_argument("--open-via", choices=("websocket", "page"), default="websocket",
                   help="websocket: the websocket builds the session (bokeh.client); page: "
                        "GET the HTML page first, as a browser does")
    p.add_argument("--site", default="DK-Sor", help="site in the opening URL")
    p.add_argument("--complete-class", default="auto",
                   help="CSS class marking a complete page (opening waits for it); 'auto': "
                        f"{COMPLETE_CLASS!r} if the served dashboard uses it, 'none': the page "
                        "is complete once its document is pulled")
    p.add_argument("--browsers", type=int, default=0,
                   help="also drive this many chromium pages during the first cycle")
    p.add_argument("--open-timeout", type=float, default=180.0, help="per session (s)")
    p.add_argument("--change-timeout", type=float, default=30.0,
                   help="a change not answered within this is an error (s)")
    p.add_argument("--startup-timeout", type=float, default=900.0, help="server start (s)")
    p.add_argument("--cleanup-wait", type=float, default=None,
                   help="max wait per cycle for the server to destroy the closed sessions (s); "
                        "default: the session lifetime the served app sets (or Bokeh's 15 s) "
                        "+ 17 s check interval + 15 s")
    p.add_argument("--settle", type=float, default=3.0,
                   help="extra wait after the sessions are destroyed, before measuring (s)")
    p.add_argument("--growth-target", type=float, default=10.0, help="max RSS growth (%%)")
    p.add_argument("--baseline-cycle", type=int, default=5,
                   help="growth is measured from the RSS after this cycle")
    p.add_argument("--max-minutes", type=float, default=120.0,
                   help="stop starting cycles after this; a running cycle is cancelled")
    p.add_argument("--repo", type=Path, default=REPO,
                   help="checkout whose dashboard is served (its working directory)")
    p.add_argument("--verbose", action="store_true", help="debug logging on stderr")
    args = p.parse_args(argv)
    if args.sessions < 1 or args.cycles < 1 or args.procs < 0:
        p.error("--sessions and --cycles must be at least 1, --procs at least 0")
    return args


def resolve_archive(args: argparse.Namespace, workdir: Path) -> str:
    """The folder to serve: ``--archive``, the tiny archive (built now) or the demo archive."""
    if args.archive:
        return str(Path(args.archive).resolve())
    if args.tiny:
        from tests.appdata import build_app_archive

        log.info("building the tiny archive")
        return str(build_app_archive(workdir / "tiny"))
    from dashboard.demo import ensure_demo_archive

    return str(ensure_demo_archive(progress=True))


def server_env(workdir: Path) -> dict[str, str]:
    """The server's environment: private metric cache, Panel session log, unbuffered output."""
    env = dict(os.environ)
    env.setdefault("CALLMIP_CACHE_DIR", str(workdir / "cache"))
    env.setdefault("PANEL_LOG_LEVEL", "info")  # "Session <id> launching/destroyed" lines
    env["PYTHONUNBUFFERED"] = "1"
    return env


def completion_class(repo: Path, choice: str) -> str | None:
    """The CSS class that marks a complete page, or None (see ``--complete-class``)."""
    if choice == "none":
        return None
    if choice != "auto":
        return choice
    sources = (repo / "dashboard").rglob("*.py")
    if any(COMPLETE_CLASS in p.read_text(encoding="utf-8", errors="replace") for p in sources):
        return COMPLETE_CLASS
    return None


def session_lifetime(repo: Path) -> tuple[float, str]:
    """How long the server keeps a closed session (s), and where that number comes from."""
    path = repo / "dashboard" / "server.py"
    try:
        match = LIFETIME_SETTING.search(path.read_text(encoding="utf-8"))
    except OSError:
        match = None
    if match:
        return int(match.group(1).replace("_", "")) / 1000, f"set in {path.relative_to(repo)}"
    return BOKEH_LIFETIME_S, "Bokeh's default"


def count_files(root: str) -> int:
    """Files under ``root`` (at most 100 000 counted)."""
    files = (p for p in Path(root).rglob("*") if p.is_file())
    return sum(1 for _ in itertools.islice(files, 100_000))


async def _cycle_sessions(args: argparse.Namespace, cfg: SessionConfig,
                          with_browsers: bool) -> tuple[list, float, list]:
    sessions = run_sessions(args.sessions, cfg)
    if not (with_browsers and args.browsers):
        results, wall = await sessions
        return results, wall, []
    from tests.load.browsers import run_browsers

    (results, wall), pages = await asyncio.gather(sessions, run_browsers(args.browsers, cfg))
    return results, wall, pages


def run_cycle(index: int, args: argparse.Namespace, cfg: SessionConfig, server: ServerProcess,
              sampler: MemorySampler, remaining: float) -> CycleRecord:
    """One cycle: sessions at once, then wait for the server to destroy them; measure."""
    sampler.reset_peak()
    sampler.sample()
    cpu0, procs0 = server.cpu_seconds(), server.per_process()
    log.info("cycle %d: %d sessions", index, args.sessions)
    results, wall, pages = asyncio.run(asyncio.wait_for(
        _cycle_sessions(args, cfg, with_browsers=index == 1), timeout=max(remaining, 1.0)))
    peak = max(sampler.peak_mb, sampler.sample())
    server_cpu = server.cpu_seconds() - cpu0
    processes = _process_deltas(procs0, server.per_process(), sampler.max_connections)
    server.check_running()
    waited, live = server.wait_sessions_gone(args.cleanup_wait)
    time.sleep(args.settle)
    rss = sampler.sample()
    pss = _pss(server)
    status = server.app_status()
    errors = sum(len(r.errors) for r in results)
    log.info("cycle %d: %.1f s, %d errors; RSS peak %.0f MiB, after %.0f MiB (waited %.1f s "
             "for cleanup, %s sessions alive)", index, wall, errors, peak, rss, waited, live)
    return CycleRecord(index=index, results=results, wall_s=wall, peak_mb=peak,
                       rss_after_mb=rss, pss_after_mb=pss, cleanup_wait_s=waited,
                       live_after=live, server_cpu_s=server_cpu, processes=processes,
                       app_status=status, browsers=pages)


def _process_deltas(before: dict[int, dict], after: dict[int, dict],
                    connections: dict[int, int]) -> list[dict[str, Any]]:
    """Each server process: CPU used between the snapshots, most connections, state at the end."""
    rows = []
    for pid, now in sorted(after.items()):
        cpu = float(now["cpu_s"]) - float(before.get(pid, {}).get("cpu_s", 0.0))
        rows.append({"pid": pid, "cpu_s": round(cpu, 1), "rss_mb": round(float(now["rss_mb"]), 1),
                     "status": now["status"], "threads": now["threads"],
                     "max_connections": connections.get(pid, 0)})
    return rows


def _pss(server: ServerProcess) -> float | None:
    try:
        return server.pss_mb()
    except Exception:  # PSS needs /proc/<pid>/smaps_rollup: not everywhere
        return None


def run_cycles(args: argparse.Namespace, cfg: SessionConfig, server: ServerProcess,
               sampler: MemorySampler) -> tuple[list[CycleRecord], list[str]]:
    """Run the cycles until done or out of time; return them and notes."""
    deadline = time.monotonic() + 60 * args.max_minutes
    cycles: list[CycleRecord] = []
    notes: list[str] = []
    for index in range(1, args.cycles + 1):
        remaining = deadline - time.monotonic()
        if remaining <= 0:
            notes.append(f"stopped after {len(cycles)} cycles: --max-minutes reached")
            break
        try:
            cycles.append(run_cycle(index, args, cfg, server, sampler, remaining))
        except TimeoutError:
            notes.append(f"cycle {index} cancelled: --max-minutes reached")
            break
    return cycles, notes


def build_report(args: argparse.Namespace, *, root: str, server: ServerProcess,
                 startup: dict[str, Any], before: tuple[float, float | None],
                 cycles: list[CycleRecord], notes: list[str], client: dict,
                 cleanup_note: str) -> dict[str, Any]:
    """Everything measured, as one JSON-ready dict."""
    results = [r for c in cycles for r in c.results]
    pages = [r for c in cycles for r in c.browsers]
    report: dict[str, Any] = {
        "sessions": args.sessions, "cycles": args.cycles, "cycles_run": len(cycles),
        "procs": args.procs, "threads": server.options.get("--num-threads"),
        "cache_mb": server.options.get("--cache-mb"), "changes_per_session": args.changes,
        "think_s": args.think, "open_via": args.open_via, "archive": root,
        "archive_files": count_files(root),
        **latency_summary(results),
        "errors": error_summary(results),
        "memory_mb": memory_summary(before[0], before[1], cycles, args.settle),
        "growth": growth(cycles, args.baseline_cycle, args.growth_target),
        "cpu": cpu_summary(cycles, args.sessions),
        "cleanup_note": cleanup_note,
        "server": {**startup, "notes": server.notes + notes, "log": str(server.log.path),
                   "log_error_lines": server.log.error_lines,
                   "log_excerpts": server.log.excerpts,
                   "sessions_launched": server.log.sessions_launched()},
        "client": client,
        "session_detail": session_details(cycles),
    }
    if pages:
        report["browsers"] = {**latency_summary(pages), "errors": error_summary(pages)}
    return report


def exit_status(report: dict[str, Any]) -> int:
    """0 if clean, 1 if errors, disconnects or memory growth over target."""
    err = report["errors"]
    bad = err["total"] or err["disconnects"] or report["cycles_run"] < report["cycles"]
    if report.get("growth") and not report["growth"]["ok"]:
        bad = True
    return 1 if bad else 0


def start_server(server: ServerProcess, timeout: float) -> tuple[list[str], float]:
    """Start the server and wait until it answers; return its command and the seconds taken.

    Options missing from ``callmip serve --help`` are not passed; if the CLI still rejects
    one, the server is started again without the optional ones.
    """
    command = server.start(serve_flags(server.repo))
    log.info("server: %s (log %s)", " ".join(command), server.log.path)
    try:
        return command, server.wait_ready(timeout)
    except ServerError as exc:
        if "unrecognized arguments" not in str(exc) or not server.options:
            raise
    server.notes.append(f"{' '.join(server.options)} rejected by the CLI: started without")
    server.options.clear()
    command = server.start(set())
    log.info("server, again: %s", " ".join(command))
    return command, server.wait_ready(timeout)


def serve_and_drive(args: argparse.Namespace, workdir: Path) -> dict[str, Any]:
    """Start the server, run the cycles, stop the server; return the report."""
    root = resolve_archive(args, workdir)
    observed = sorted(observed_sites(root))
    lifetime, source = session_lifetime(args.repo.resolve())
    if args.cleanup_wait is None:
        args.cleanup_wait = lifetime + BOKEH_CHECK_S + 15
    cleanup_note = (f"the server discards a closed session once unused for {lifetime:.0f} s "
                    f"({source}), checking every {BOKEH_CHECK_S:.0f} s; waited at most "
                    f"{args.cleanup_wait:.0f} s per cycle")
    port = free_port()
    server = ServerProcess(repo=args.repo.resolve(), root=root, port=port, procs=args.procs,
                           options={"--num-threads": args.threads, "--cache-mb": args.cache_mb},
                           env=server_env(workdir), log_path=workdir / "server.log")
    sampler = MemorySampler(server)
    wall0, cpu0, load0 = time.monotonic(), time.process_time(), _loadavg()
    try:
        command, startup_s = start_server(server, args.startup_timeout)
        log.info("server answers after %.1f s; waiting until it is idle", startup_s)
        idle_s = server.wait_idle()
        before = (sampler.start().sample(), _pss(server))
        log.info("RSS before the sessions: %.0f MiB", before[0])
        cfg = SessionConfig(base_url=server.url.rstrip("/"),
                            arguments={"view": "sites", "site": args.site},
                            observed_sites=observed, changes=args.changes, think=args.think,
                            ramp=args.ramp, open_timeout=args.open_timeout,
                            change_timeout=args.change_timeout,
                            via_page=args.open_via == "page",
                            complete_class=completion_class(server.repo, args.complete_class))
        log.info("a page is complete when %s", f"a model has CSS class {cfg.complete_class!r}"
                 if cfg.complete_class else "its document is pulled")
        cycles, notes = run_cycles(args, cfg, server, sampler)
    finally:
        sampler.stop()
        server.stop()
    startup = {"command": command, "startup_s": round(startup_s, 1),
               "idle_wait_s": round(idle_s, 1), "url_line": server.url_line}
    if server.url_line != "after answering":
        notes.append(f"contract: the line with {server.url} was {server.url_line} (it should "
                     "be printed once the URL answers)")
    client = {"cpu_s": round(time.process_time() - cpu0, 1),
              "wall_s": round(time.monotonic() - wall0, 1)}
    report = build_report(args, root=root, server=server, startup=startup, before=before,
                          cycles=cycles, notes=notes, client=client, cleanup_note=cleanup_note)
    report["complete_class"] = cfg.complete_class
    report["machine"] = {"cpus": os.cpu_count(), "loadavg_start": load0,
                         "loadavg_end": _loadavg()}
    return report


def _loadavg() -> list[float]:
    return [round(x, 2) for x in os.getloadavg()]


def _stop_on_signal(signum: int, _frame: Any) -> None:
    """SIGTERM/SIGHUP: unwind (the ``finally`` blocks stop the server), exit 128 + signum."""
    raise SystemExit(128 + signum)


def main(argv: list[str] | None = None) -> int:
    """Run the load test; return the exit status."""
    args = parse_args(argv)
    for sig in (signal.SIGTERM, signal.SIGHUP):
        signal.signal(sig, _stop_on_signal)
    logging.basicConfig(level=logging.DEBUG if args.verbose else logging.INFO, stream=sys.stderr,
                        format="%(asctime)s [load] %(message)s", datefmt="%H:%M:%S")
    logging.getLogger("tornado").setLevel(logging.WARNING)
    logging.getLogger("bokeh").setLevel(logging.WARNING)
    workdir = Path(tempfile.mkdtemp(prefix="callmip-load-"))
    try:
        report = serve_and_drive(args, workdir)
    except ServerError as exc:
        log.error("%s", exc)
        log.error("server log: %s", workdir / "server.log")
        if args.json:
            print(json.dumps({"error": str(exc), "server_log": str(workdir / "server.log")}))
        return 2
    finally:  # keep the server log, drop the cache and the tiny archive
        for sub in ("cache", "tiny"):
            shutil.rmtree(workdir / sub, ignore_errors=True)
    print(json.dumps(report, indent=1) if args.json else format_table(report))
    return exit_status(report)


if __name__ == "__main__":
    sys.exit(main())
