"""Shared fixtures: real CalLMIP data in ../shared, small synthetic files, Panel state reset."""

from __future__ import annotations

import contextlib
import os
from pathlib import Path

import param
import pytest

REPO = Path(__file__).resolve().parent.parent
SHARED_DATA = REPO.parent / "shared" / "data" / "callmip-phase1"
TEMPLATE = SHARED_DATA / "template" / "CLASSIC.v2_Phase1b_Scen1_DK-Sor_Cal_Prior.nc"
OBS_DIR = SHARED_DATA / "obs" / "Phase1b"
DKSOR_OBS = OBS_DIR / "DK-Sor_daily_aggregated_1997-2014_FLUXNET2015_Flux.nc"
PHASE1A_OBS = (SHARED_DATA / "obs" / "Phase1a-test"
               / "DK-Sor_daily_aggregated_1997-2013_FLUXNET2015_Flux.nc")

# Param warnings are errors in tests.
param.parameterized.warnings_as_exceptions = True


@pytest.fixture
def shared_data() -> Path:
    """The real CalLMIP files beside the checkout (skip cleanly if absent)."""
    if not TEMPLATE.exists():
        pytest.skip("../shared/data is not beside this checkout")
    return SHARED_DATA


@pytest.fixture(autouse=True)
def _private_cache(tmp_path_factory, monkeypatch):
    """No test writes the metric cache (or a demo archive) into the user's home."""
    monkeypatch.setenv("CALLMIP_CACHE_DIR", str(tmp_path_factory.getbasetemp() / "callmip-cache"))


@pytest.fixture(autouse=True)
def _reset_panel_state():
    yield
    import sys

    if "panel" in sys.modules:
        import panel as pn

        try:
            pn.state.reset()
        except RuntimeError:  # a test's server thread is still stopping; it ends by itself
            pass


#: The browser the UI tests and benchmarks drive: Debian's chromium, or $CALLMIP_CHROMIUM (any
#: Chromium or Chrome binary, for machines where installing packages is not possible).
CHROMIUM = os.environ.get("CALLMIP_CHROMIUM") or "/usr/bin/chromium"
CHROMIUM_ARGS = ["--no-sandbox", "--disable-gpu", "--disable-background-networking",
                 "--disable-component-update", "--no-first-run", "--disable-sync",
                 "--disable-quic"]


#: Marks of a browser-test module: ``pytestmark = UI_TESTS``.
UI_TESTS = [pytest.mark.ui,
            pytest.mark.skipif(not Path(CHROMIUM).exists(),
                               reason=f"no chromium at {CHROMIUM} (set CALLMIP_CHROMIUM)")]

#: Window size of a watched page; a module may set its own ``VIEWPORT``.
VIEWPORT = {"width": 1600, "height": 1100}


@pytest.fixture
def watched(page, request):
    """The page, failing the test on any page error or any request leaving this machine."""
    errors, external = [], []
    page.on("pageerror", lambda e: errors.append(str(e)))
    page.on("request", lambda r: external.append(r.url)
            if not r.url.startswith(("http://127.0.0.1", "data:", "blob:", "about:")) else None)
    page.set_viewport_size(getattr(request.module, "VIEWPORT", VIEWPORT))
    yield page
    assert not errors, f"page errors: {errors}"
    assert not external, f"requests left the machine: {external}"


@pytest.fixture(scope="session")
def browser_type_launch_args(browser_type_launch_args):
    """Drive Debian's chromium (Playwright cannot download its own browsers here)."""
    return {**browser_type_launch_args, "executable_path": CHROMIUM, "args": CHROMIUM_ARGS,
            "headless": True}


def free_port() -> int:
    """A TCP port free on 127.0.0.1 now."""
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@contextlib.contextmanager
def served(root: Path | str, **options):
    """Serve ``root`` in a background thread (``start_server``) and yield its base URL.

    Waits until ``/liveness`` answers; stops the server afterwards (Panel's state reset may
    already have stopped it). One server per test: the reset stops running servers.
    """
    import time
    import urllib.request

    from dashboard.server import start_server

    port = free_port()
    server = start_server(str(root), port=port, address="127.0.0.1", threaded=True, **options)
    url = f"http://127.0.0.1:{port}"
    for _ in range(100):
        try:
            with urllib.request.urlopen(f"{url}/liveness", timeout=5):
                break
        except OSError:
            time.sleep(0.1)
    try:
        yield url
    finally:
        try:
            server.stop()
        except RuntimeError:  # already stopped by Panel's state reset
            pass
