"""What each simulated user does: open the Sites view, change selections, close."""

from __future__ import annotations

import asyncio
import itertools
import logging
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from tornado.httpclient import AsyncHTTPClient

from tests.load.client import ChangeResult, LoadError, SessionClient, Widgets

log = logging.getLogger("load")
VARIABLES = ("Qle", "Qh", "NEE")
KINDS = ("variable", "site", "models")


@dataclass
class SessionConfig:
    """How the sessions of one cycle open and what they change."""

    base_url: str
    arguments: dict[str, str]
    observed_sites: list[str]
    changes: int = 6
    think: float = 0.5
    ramp: float = 0.0
    open_timeout: float = 120.0
    change_timeout: float = 30.0
    via_page: bool = False
    complete_class: str | None = None


@dataclass
class SessionResult:
    """What happened to one session."""

    index: int
    via: str = "websocket"
    open_s: float | None = None
    built_s: float | None = None
    pulled_s: float | None = None
    changes: list[ChangeResult] = field(default_factory=list)
    errors: list[tuple[str, str]] = field(default_factory=list)
    disconnected: bool = False
    disconnect_detail: str = ""
    server_messages: list[str] = field(default_factory=list)
    busy_patches: int = 0
    received_mb: float = 0.0

    def fail(self, error: LoadError) -> None:
        """Record an error (disconnects are counted apart: ``disconnected``)."""
        self.errors.append((error.kind, error.detail))


def observed_sites(root: str) -> set[str]:
    """Site ids that have an observation file under ``root`` (``obs/<SITE>_daily_...nc``)."""
    path = Path(root)
    if not path.is_dir():
        return set()
    names = [p.name for p in itertools.islice(path.rglob("*.nc"), 100_000)
             if "obs" in p.relative_to(path).parts[:-1]]
    return {name.split("_", 1)[0] for name in names if "_" in name}


def _site_cycle(index: int, widgets: Widgets, observed: list[str]) -> Iterator[str]:
    options = [s for s in widgets.options.get(widgets.site or "", []) if s]
    current = widgets.values.get(widgets.site or "")
    sites = [s for s in options if s in observed] or options
    others = [s for s in sites if s != current] or sites
    shift = index % max(len(others), 1)
    ring = others[shift:] + others[:shift]
    return itertools.cycle(ring + ([current] if current in sites else []))


def _variable_cycle(widgets: Widgets) -> Iterator[str]:
    options = widgets.options.get(widgets.variable or "", [])
    ring = [v for v in VARIABLES if v in options] or list(options[:3])
    current = widgets.values.get(widgets.variable or "")
    if current in ring:  # start after the current value, so every change changes something
        at = ring.index(current) + 1
        ring = ring[at:] + ring[:at]
    return itertools.cycle(ring)


def _models_cycle(index: int, widgets: Widgets) -> Iterator[list[str]]:
    options = widgets.options.get(widgets.models or "", [])
    if not options:
        return itertools.cycle([[]])
    picks = ([options[(index + k) % len(options)]] for k in itertools.count())
    return (item for pick in picks for item in (pick, []))  # one model, then all again


def change_plan(index: int, widgets: Widgets, observed: list[str],
                count: int) -> list[tuple[str, Any]]:
    """The selection changes of session ``index``: variable, site, models, in turn.

    Sessions start at different sites and models, so together they visit many.

    Returns
    -------
    list of (str, value)
        ``(kind, value)`` with kind ``"variable"``, ``"site"`` or ``"models"``.
    """
    cycles = {"variable": _variable_cycle(widgets),
              "site": _site_cycle(index, widgets, observed),
              "models": _models_cycle(index, widgets)}
    kinds = [k for k in KINDS if widgets.id_of(k) is not None] or list(KINDS)
    return [(kind, next(cycles[kind])) for kind in itertools.islice(itertools.cycle(kinds),
                                                                     count)]


async def _drive(client: SessionClient, result: SessionResult, cfg: SessionConfig) -> None:
    result.open_s = await client.open(cfg.open_timeout)
    result.built_s = client.timings.get("page", client.timings.get("ack"))
    result.pulled_s = client.timings.get("pulled")
    await client.wait_quiet(0.5, 15.0)
    for kind, value in change_plan(result.index, client.widgets, cfg.observed_sites,
                                   cfg.changes):
        await asyncio.sleep(cfg.think)
        try:
            result.changes.append(await client.change(kind, value,
                                                      timeout=cfg.change_timeout))
        except LoadError as exc:
            if exc.kind in ("disconnect", "widget-missing"):
                raise
            result.fail(exc)


async def run_session(index: int, cfg: SessionConfig,
                      http_client: AsyncHTTPClient | None = None) -> SessionResult:
    """Open one session, run its selection changes, close it; never raises."""
    result = SessionResult(index=index)
    await asyncio.sleep(cfg.ramp * index)
    client = SessionClient(cfg.base_url, cfg.arguments, via_page=cfg.via_page,
                           http_client=http_client, complete_class=cfg.complete_class)
    try:
        await _drive(client, result, cfg)
    except LoadError as exc:
        if exc.kind != "disconnect":
            result.fail(exc)
    except Exception as exc:  # a bug here or an unexpected reply: report, keep the others
        log.exception("session %d failed", index)
        result.fail(LoadError("exception", repr(exc)))
    finally:
        await client.close()
    result.disconnected = client.disconnected
    result.disconnect_detail = client.disconnect_detail
    result.server_messages = client.server_errors
    result.busy_patches = client.busy_patches
    result.received_mb = client.received_bytes / 2**20
    return result


async def run_sessions(count: int, cfg: SessionConfig) -> tuple[list[SessionResult], float]:
    """Run ``count`` sessions concurrently; return their results and the wall time."""
    http_client = AsyncHTTPClient(force_instance=True, max_clients=max(10, count))
    start = time.perf_counter()
    try:
        results = await asyncio.gather(*(run_session(i, cfg, http_client)
                                         for i in range(count)))
    finally:
        http_client.close()
    return list(results), time.perf_counter() - start
