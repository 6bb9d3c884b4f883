"""Benchmark: how fast the Sites view follows a change of site or variable.

Run from the repository root::

    python tests/benchmarks/bench_views.py [--archive DIR] [--sites 8] [--browser]

Without ``--archive`` it uses the embedded demo archive (generated once into the user cache).
It prints, for switching site and switching variable:

* ``server``: building the HoloViews objects and rendering them to Bokeh models (what the
  server does before sending the update), per switch, after the files are in the process cache;
* ``cold``: the same for a site whose files were not opened yet (first visit);
* ``browser`` (with ``--browser``): from changing the site/variable widget in Debian's chromium
  until Bokeh reports the document idle again (the user-visible update), over a served app.

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
    import holoviews as hv

    from dashboard.context import get_context
    from dashboard.state import SITE_VARIABLES, Selection
    from dashboard.views.sites import SitesView
    from loaders.archive import clear_cache

    hv.extension("bokeh")
    context = get_context(root)
    t0 = time.perf_counter()
    context.tables()
    print(f"metric tables (first call, may read the disk cache): "
          f"{(time.perf_counter() - t0) * 1000:.0f} ms")
    selection = Selection()
    view = SitesView(selection=selection, context=context)
    sites = [s for s in context.archive.sites()
             if context.archive.observation_path(s) is not None][:n_sites]

    def render_site(site: str) -> None:
        for variable in SITE_VARIABLES:
            hv.render(view.timeseries(site, variable, 1, []))
        render_variable(site, selection.variable)

    def render_variable(site: str, variable: str) -> None:
        hv.render(view.seasonal_cycle(site, variable, 1, []))
        hv.render(view.scatter(site, variable, 1, []))
        hv.render(view.taylor(site, variable, 1, []))

    clear_cache()
    cold = []
    for site in sites:
        t = time.perf_counter()
        render_site(site)
        cold.append((time.perf_counter() - t) * 1000)
    warm = []
    for site in sites:
        t = time.perf_counter()
        render_site(site)
        warm.append((time.perf_counter() - t) * 1000)
    variables = []
    for site in sites[:4]:
        for variable in ("Qle", "Qh", "NEE"):
            t = time.perf_counter()
            render_variable(site, variable)
            variables.append((time.perf_counter() - t) * 1000)
    print(_summary("server: switch site (cold files)", cold))
    print(_summary("server: switch site (cached files)", warm))
    print(_summary("server: switch variable", variables))


def bench_browser(root: str, n_sites: int) -> None:
    from playwright.sync_api import sync_playwright

    from dashboard.context import get_context
    from dashboard.server import start_server
    from tests.conftest import CHROMIUM, CHROMIUM_ARGS

    context = get_context(root)
    context.tables()
    sites = [s for s in context.archive.sites()
             if context.archive.observation_path(s) is not None][:n_sites]
    port = 5960
    server = start_server(root, port=port, address="127.0.0.1", threaded=True)
    time.sleep(1.0)
    idle = "() => Bokeh.documents.length > 0 && Bokeh.documents[0].is_idle"
    try:
        with sync_playwright() as p:
            browser = p.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
            page = browser.new_page(viewport={"width": 1600, "height": 1100})
            page.goto(f"http://127.0.0.1:{port}/?view=sites&site={sites[0]}")
            page.wait_for_function(idle, timeout=120_000)
            page.wait_for_timeout(1000)

            set_value = """([probe, value]) => {
                const widget = [...Bokeh.documents[0].all_models].find(
                    m => Array.isArray(m.options) && JSON.stringify(m.options).includes(probe)
                         && typeof m.value === 'string');
                widget.value = value;
            }"""
            has_title = """(prefix) => [...Bokeh.documents[0].all_models].some(
                m => m.title && m.title.text && m.title.text.startsWith(prefix))"""

            def switch(probe: str, value: str, expect: str) -> float:
                # Set the widget as a user would; the update is done when the plots show the
                # new selection and Bokeh is idle.
                t = time.perf_counter()
                page.evaluate(set_value, [probe, value])
                page.wait_for_function(has_title, arg=expect, timeout=120_000)
                page.wait_for_function(idle, timeout=120_000)
                return (time.perf_counter() - t) * 1000

            site_times = [switch(sites[0], s, f"{s} NEE") for s in sites[1:] + sites[:1]]
            var_times = [switch("Qle", v, f"Taylor diagram ({v})")
                         for v in ("Qle", "Qh", "NEE", "Qle", "Qh", "NEE")]
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
        bench_browser(root, args.sites)


if __name__ == "__main__":
    main()
