"""Summaries of a load test: latency percentiles, errors, memory and its growth over cycles."""

from __future__ import annotations

import math
from collections import Counter
from dataclasses import dataclass, field
from typing import Any

from tests.load.scenario import SessionResult

MAX_EXAMPLES = 8


@dataclass
class CycleRecord:
    """One cycle: N sessions opened, driven and closed, then the server left to clean up."""

    index: int
    results: list[SessionResult]
    wall_s: float
    peak_mb: float
    rss_after_mb: float
    pss_after_mb: float | None
    cleanup_wait_s: float
    live_after: int | None
    server_cpu_s: float = 0.0
    processes: list[dict[str, Any]] = field(default_factory=list)
    app_status: dict[str, Any] | None = None
    browsers: list[SessionResult] = field(default_factory=list)


def percentile(values: list[float], q: float) -> float:
    """The ``q``-th percentile (0-100) of ``values``, interpolated linearly."""
    ordered = sorted(values)
    if not ordered:
        return math.nan
    rank = (len(ordered) - 1) * q / 100
    low, high = math.floor(rank), math.ceil(rank)
    return ordered[low] + (ordered[high] - ordered[low]) * (rank - low)


def summary(values: list[float], scale: float = 1.0, digits: int = 3) -> dict[str, Any]:
    """``n``, ``p50``, ``p95`` and ``max`` of ``values`` times ``scale`` (None when empty)."""
    if not values:
        return {"n": 0, "p50": None, "p95": None, "max": None}
    return {"n": len(values), "p50": round(percentile(values, 50) * scale, digits),
            "p95": round(percentile(values, 95) * scale, digits),
            "max": round(max(values) * scale, digits)}


def latency_summary(results: list[SessionResult]) -> dict[str, Any]:
    """Open and change latencies of ``results`` (open in s, changes in ms)."""
    changes = [c for r in results for c in r.changes]
    by_kind = {kind: summary([c.latency for c in changes if c.kind == kind], 1000, 1)
               for kind in sorted({c.kind for c in changes})}
    return {
        "open_s": summary([r.open_s for r in results if r.open_s is not None]),
        "open_built_s": summary([r.built_s for r in results if r.built_s is not None]),
        "open_pulled_s": summary([r.pulled_s for r in results if r.pulled_s is not None]),
        "change_ms": summary([c.latency for c in changes], 1000, 1),
        "change_ms_by_kind": by_kind,
        "change_first_update_ms": summary([c.first_update for c in changes], 1000, 1),
        "changes": {"answered": len(changes),
                    "with_plot_data": sum(c.data_events > 0 for c in changes)},
        "per_session": {
            "received_mb": summary([r.received_mb for r in results], 1, 2),
            "busy_indicator_patches": summary([float(r.busy_patches) for r in results], 1, 0)},
    }


def error_summary(results: list[SessionResult]) -> dict[str, Any]:
    """Errors by kind, disconnects, and a few examples of each."""
    errors = [e for r in results for e in r.errors]
    examples = [f"session {r.index}: {kind}: {detail}" for r in results
                for kind, detail in r.errors][:MAX_EXAMPLES]
    examples += [f"session {r.index}: disconnect: {r.disconnect_detail}"
                 for r in results if r.disconnected][:MAX_EXAMPLES]
    server = [f"session {r.index}: {m}" for r in results for m in r.server_messages]
    return {"total": len(errors), "by_kind": dict(Counter(kind for kind, _ in errors)),
            "disconnects": sum(r.disconnected for r in results),
            "sessions_opened": sum(r.open_s is not None for r in results),
            "examples": examples, "messages": server[:MAX_EXAMPLES]}


def growth(cycles: list[CycleRecord], baseline_cycle: int, target_pct: float) -> dict | None:
    """RSS after the last cycle against after cycle ``baseline_cycle`` (the first if fewer)."""
    if len(cycles) < 2:
        return None
    base = cycles[baseline_cycle - 1 if len(cycles) > baseline_cycle else 0]
    last = cycles[-1]
    delta = last.rss_after_mb - base.rss_after_mb
    pct = 100 * delta / base.rss_after_mb if base.rss_after_mb else math.nan
    return {"baseline_cycle": base.index, "last_cycle": last.index,
            "baseline_mb": round(base.rss_after_mb, 1), "last_mb": round(last.rss_after_mb, 1),
            "mb": round(delta, 1), "pct": round(pct, 2), "target_pct": target_pct,
            "ok": bool(pct <= target_pct)}


def memory_summary(before_mb: float, pss_before_mb: float | None,
                   cycles: list[CycleRecord], settle_s: float) -> dict[str, Any]:
    """Server memory before, at the peak during and after the sessions (MiB)."""
    last = cycles[-1] if cycles else None
    return {
        "rss_before": round(before_mb, 1),
        "rss_peak": round(max([c.peak_mb for c in cycles] + [before_mb]), 1),
        "rss_after": round(last.rss_after_mb, 1) if last else None,
        "pss_before": None if pss_before_mb is None else round(pss_before_mb, 1),
        "pss_after": (None if last is None or last.pss_after_mb is None
                      else round(last.pss_after_mb, 1)),
        "after_waited_s": round(last.cleanup_wait_s, 1) if last else None,
        "after_settle_s": settle_s,
        "sessions_alive_after": last.live_after if last else None,
        "rss_after_each_cycle": [round(c.rss_after_mb, 1) for c in cycles],
        "rss_peak_each_cycle": [round(c.peak_mb, 1) for c in cycles],
        "app_cache_each_cycle": [_cache_mb(c.app_status) for c in cycles],
    }


def _cache_mb(status: dict[str, Any] | None) -> float | None:
    """MiB in the app's cache (from ``/callmip-status``), if the server reports it."""
    if not status or not isinstance(status.get("cache"), (int, float)):
        return None
    return round(status["cache"] / 2**20, 1)


def cpu_summary(cycles: list[CycleRecord], sessions: int) -> dict[str, Any]:
    """Server CPU per cycle: seconds, per session, and share of one core over the cycle.

    CPU seconds per session hardly depend on what else runs on the machine; latencies do.
    """
    return {
        "server_cpu_s_each_cycle": [round(c.server_cpu_s, 1) for c in cycles],
        "server_cpu_s_per_session": summary([c.server_cpu_s / sessions for c in cycles], 1, 2),
        "server_cores_used": summary([c.server_cpu_s / c.wall_s for c in cycles if c.wall_s],
                                     1, 2),
        "processes_first_cycle": cycles[0].processes if cycles else [],
    }


def session_details(cycles: list[CycleRecord]) -> list[dict[str, Any]]:
    """Each session's timings (JSON only): open steps in s, changes in ms."""
    def r3(x: float | None) -> float | None:
        return None if x is None else round(x, 3)
    return [{"cycle": c.index, "session": r.index, "via": r.via, "open_s": r3(r.open_s),
             "built_s": r3(r.built_s), "pulled_s": r3(r.pulled_s),
             "changes_ms": [[ch.kind, ch.value, round(ch.latency * 1000, 1)] for ch in r.changes],
             "errors": [f"{k}: {d}" for k, d in r.errors], "disconnected": r.disconnected}
            for c in cycles for r in c.results + c.browsers]


def _fmt(value: Any, digits: int = 1) -> str:
    if value is None:
        return "-"
    if isinstance(value, float):
        return f"{value:.{digits}f}"
    return str(value)


def _latency_rows(report: dict[str, Any]) -> list[str]:
    rows = [f"{'':<24}{'n':>6}{'p50':>10}{'p95':>10}{'max':>10}"]

    def row(label: str, stats: dict[str, Any], digits: int) -> None:
        rows.append(f"{label:<24}{stats['n']:>6}" + "".join(
            f"{_fmt(stats[k], digits):>10}" for k in ("p50", "p95", "max")))
    row("open (s)", report["open_s"], 2)
    row("  session built (s)", report["open_built_s"], 2)
    row("  document pulled (s)", report["open_pulled_s"], 2)
    row("change (ms)", report["change_ms"], 0)
    for kind, stats in report["change_ms_by_kind"].items():
        row(f"  {kind} (ms)", stats, 0)
    row("  first update (ms)", report["change_first_update_ms"], 0)
    for label, part in (("browser open (s)", "open_s"), ("browser change (ms)", "change_ms")):
        if report.get("browsers"):
            row(label, report["browsers"][part], 2 if part == "open_s" else 0)
    return rows


def _memory_rows(report: dict[str, Any]) -> list[str]:
    mem = report["memory_mb"]
    alive = mem["sessions_alive_after"]
    rows = [f"memory (server tree, MiB): RSS before {_fmt(mem['rss_before'])}, peak "
            f"{_fmt(mem['rss_peak'])}, after {_fmt(mem['rss_after'])}  (PSS before "
            f"{_fmt(mem['pss_before'])}, after {_fmt(mem['pss_after'])})",
            f"  'after' measured once the server had destroyed the sessions: waited "
            f"{_fmt(mem['after_waited_s'])} s (sessions still alive: "
            f"{'unknown' if alive is None else alive}) + {mem['after_settle_s']} s settle; "
            f"{report['cleanup_note']}"]
    if len(mem["rss_after_each_cycle"]) > 1:
        rows.append(f"  RSS after each cycle: {mem['rss_after_each_cycle']}")
    if any(v is not None for v in mem["app_cache_each_cycle"]):
        rows.append(f"  app cache after each cycle (MiB, /callmip-status of the worker that "
                    f"answered): {mem['app_cache_each_cycle']}")
    grow = report.get("growth")
    if grow:
        verdict = "OK" if grow["ok"] else "OVER TARGET"
        rows.append(f"  growth: cycle {grow['last_cycle']} vs cycle {grow['baseline_cycle']}: "
                    f"{grow['mb']:+.1f} MiB ({grow['pct']:+.2f} %), target <= "
                    f"{grow['target_pct']} %: {verdict}")
    return rows


def _browser_rows(report: dict[str, Any]) -> list[str]:
    if not report.get("browsers"):
        return []
    err = report["browsers"]["errors"]
    return [f"browsers: errors {err['total']} {err['by_kind'] or ''}",
            *[f"  {e}" for e in err["examples"]], *[f"  message: {e}" for e in err["messages"]]]


def format_table(report: dict[str, Any]) -> str:
    """The report as text for people."""
    srv = report["server"]
    err = report["errors"]
    changes = report["changes"]
    per = report["per_session"]
    cpu = report["cpu"]
    lines = [
        f"CalLMIP Explorer load test: {report['sessions']} sessions x {report['cycles']} "
        f"cycle(s), {report['changes_per_session']} changes each, opened via {report['open_via']}",
        f"archive {report['archive']} ({report['archive_files']} files); page complete when "
        + (f"a model has CSS class {report['complete_class']!r}" if report["complete_class"]
           else "its document is pulled"),
        f"server: procs {report['procs']}, threads {_fmt(report['threads'])}, cache MB "
        f"{_fmt(report['cache_mb'])}, ready after "
        f"{_fmt(srv['startup_s'])} s, idle after {_fmt(srv['idle_wait_s'])} s more",
        *[f"  note: {n}" for n in srv["notes"]],
        "",
        *_latency_rows(report),
        f"changes answered: {changes['answered']} (with new plot data: "
        f"{changes['with_plot_data']})",
        f"per session: received MiB p50 {_fmt(per['received_mb']['p50'], 2)}, busy-indicator "
        f"patches p50 {_fmt(per['busy_indicator_patches']['p50'], 0)} "
        f"(max {_fmt(per['busy_indicator_patches']['max'], 0)})",
        "",
        f"errors: {err['total']} {err['by_kind'] or ''}   disconnects: {err['disconnects']}   "
        f"sessions opened: {err['sessions_opened']}/{report['sessions'] * report['cycles_run']}",
        *[f"  {e}" for e in err["examples"]],
        *[f"  message: {e}" for e in err["messages"]],
        *_browser_rows(report),
        f"server log: {srv['log_error_lines']} error/traceback lines ({srv['log']})",
        *[f"  | {line}" for excerpt in srv["log_excerpts"][:2] for line in excerpt[:8]],
        "",
        *_memory_rows(report),
        f"server CPU per session (s): p50 {_fmt(cpu['server_cpu_s_per_session']['p50'], 2)}; "
        f"cores used by the server during a cycle: p50 {_fmt(cpu['server_cores_used']['p50'], 2)}"
        f"; CPU per cycle (s): {cpu['server_cpu_s_each_cycle'][:12]}",
        *[f"  process {p['pid']}: {p['cpu_s']:.1f} s CPU during cycle 1 (sessions running),"
          f" RSS {p['rss_mb']:.0f} MiB, {p['status']}, {p['threads']} threads,"
          f" at most {p['max_connections']} connections (counted every 2 s)"
          for p in cpu["processes_first_cycle"]],
        f"client: {report['client']['cpu_s']:.1f} s CPU in {report['client']['wall_s']:.1f} s",
        f"machine: {report['machine']['cpus']} CPUs, load average at start "
        f"{report['machine']['loadavg_start']}, at end {report['machine']['loadavg_end']}",
    ]
    return "\n".join(lines)
