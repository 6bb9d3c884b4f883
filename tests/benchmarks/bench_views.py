"""Benchmark: how fast the Sites view follows a change of site or variable.

Run from the repository root::

    python tests/benchmarks/bench_views.py [--archive DIR] [--sites 8] [--browser]

Without ``--archive`` it uses the embedded demo archive (generated once into the user cache).
It prints, for switching site and switching variable:

* ``server``: the Sites view rendered once to Bokeh models, then the time a selection change
  takes to update them in place (what the server does before it sends the update) — for a
  site whose files were not read yet (``first visit``: the cache is cleared first, as if
  ``callmip serve`` had not prefetched it) and for a site seen before;
* ``browser`` (with ``--browser``): over a served app in Debian's chromium, from setting the
  site/variable widget until the browser has drawn the last frame of the update (the files are
  prefetched first, as ``callmip serve`` does at start-up).

Numbers are medians and 90th percentiles in milliseconds; the machine is shared and noisy, so
this prints measurements, it asserts nothing.
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[2]))


def _summary(label: str, samples: list[float]) -> str:
    samples = sorted(samples)
    p90 = samples[min(len(samples) - 1, int(round(0.9 * (len(samples) - 1))))]
    return (f"{label:<34} median {statistics.median(samples):7.1f} ms   p90 {p90:7.1f} ms"
            f"   (n={len(samples)})")


def bench_server(root: str, n_sites: int) -> None:
    """Time the server's part: the Sites view updating its Bokeh models in place."""
    import panel as pn
    from bokeh.document import Document
    from pyviz_comms import Comm

    import dashboard.app  # noqa: F401  (plot defaults of the served app)
    from dashboard.service import get_service
    from dashboard.state import Selection
    from dashboard.views.sites import SitesView
    from loaders.archive import clear_cache

    context = get_service(root)
    t0 = time.perf_counter()
    context.tables()
    print(f"metric tables (first call, may read the disk cache): "
          f"{(time.perf_counter() - t0) * 1000:.0f} ms")
    sites = context.observed_sites()[:n_sites]  # the app's first site first
    selection = Selection(site=sites[0])
    view = SitesView(selection=selection, service=context)
    pn.panel(view).get_root(Document(), comm=Comm())

    def switch(name: str, value: object) -> float:
        t = time.perf_counter()
        setattr(selection, name, value)
        return (time.perf_counter() - t) * 1000

    clear_cache()
    context.clear_series()
    cold = [switch("site", s) for s in sites[1:] + sites[:1]]
    warm = [switch("site", s) for s in sites[1:] + sites[:1]]
    variables = [switch("variable", v) for v in ("Qle", "Qh", "NEE") * 3]
    print(_summary("server: switch site (first visit)", cold))
    print(_summary("server: switch site (visited)", warm))
    print(_summary("server: switch variable", variables))


def bench_browser(root: str, n_sites: int, prefetch: bool) -> None:
    """Time what a user sees: from changing a widget until the browser has drawn the update."""
    from playwright.sync_api import sync_playwright

    from dashboard.server import start_server
    from dashboard.service import get_service
    from tests.conftest import CHROMIUM, CHROMIUM_ARGS

    context = get_service(root)
    context.tables()
    if prefetch:
        t = time.perf_counter()
        context.prefetch()
        print(f"prefetch of the site files: {(time.perf_counter() - t):.1f} s")
    sites = context.observed_sites()[:n_sites]  # the app's first site first
    port = 5960
    server = start_server(root, port=port, address="127.0.0.1", threaded=True)
    time.sleep(1.0)
    idle = "() => Bokeh.documents.length > 0 && Bokeh.documents[0].is_idle"
    try:
        with sync_playwright() as p:
            browser = p.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
            page = browser.new_page(viewport={"width": 1600, "height": 1100})
            t = time.perf_counter()
            page.goto(f"http://127.0.0.1:{port}/?view=sites&site={sites[0]}")
            page.wait_for_function(idle, timeout=120_000)
            print(f"page load (Sites view): {(time.perf_counter() - t) * 1000:.0f} ms")
            page.wait_for_timeout(1000)
            # Every document change the server sends schedules a frame; the time of the last
            # frame drawn after a switch is when the user sees the finished update. (The
            # header's busy spinner and the URL are not part of the update.)
            page.evaluate("""() => {
                window.__drawn = performance.now();
                Bokeh.documents[0].on_change((event) => {
                    const model = event.model;
                    if (model && (model.name === 'busy_indicator'
                                  || model.type.endsWith('Location'))) return;
                    requestAnimationFrame(() => { window.__drawn = performance.now(); });
                });
            }""")
            set_value = """([probe, value]) => {
                const widget = [...Bokeh.documents[0].all_models].find(
                    m => Array.isArray(m.options) && JSON.stringify(m.options).includes(probe)
                         && typeof m.value === 'string');
                const start = performance.now();
                widget.value = value;
                return start;
            }"""
            has_title = """(prefix) => [...Bokeh.documents[0].all_models].some(
                m => m.title && m.title.text && m.title.text.startsWith(prefix))"""
            settled = """() => Bokeh.documents[0].is_idle
                && performance.now() - window.__drawn > 1000"""

            def switch(probe: str, value: str, expect: str) -> float:
                # Set the widget as a user would; done when the plots show the new selection
                # and nothing more has arrived for a second.
                start = page.evaluate(set_value, [probe, value])
                page.wait_for_function(has_title, arg=expect, timeout=120_000)
                page.wait_for_function(settled, timeout=120_000, polling=100)
                return page.evaluate("() => window.__drawn") - start

            site_times = [switch(sites[0], s, f"{s} NEE") for s in sites[1:] + sites[:1]]
            var_times = [switch("Qle", v, f"Taylor diagram ({v})")
                         for v in ("Qle", "Qh", "NEE") * 2]
            browser.close()
    finally:
        server.stop()
    print(_summary("browser: switch site", site_times))
    print(_summary("browser: switch variable", var_times))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--archive", help="archive folder (default: the demo archive)")
    parser.add_argument("--sites", type=int, default=8, help="number of sites to visit")
    parser.add_argument("--browser", action="store_true", help="also time it in chromium")
    parser.add_argument("--no-prefetch", action="store_true",
                        help="browser: do not read the site files before serving (as "
                             "`callmip serve` does), so first visits read them")
    args = parser.parse_args()
    os.environ.setdefault("CALLMIP_CACHE_DIR", tempfile.mkdtemp(prefix="callmip-bench-"))
    if args.archive:
        root = args.archive
    else:
        from dashboard.demo import ensure_demo_archive

        root = str(ensure_demo_archive(progress=True))
    print(f"archive: {root}")
    bench_server(root, args.sites)
    if args.browser:
        bench_browser(root, args.sites, prefetch=not args.no_prefetch)


if __name__ == "__main__":
    main()
