"""The Scenarios page in chromium: time to its first grid and to the complete page.

Run from the repository (not collected by pytest)::

    python tests/benchmarks/bench_scenarios.py [--archive DIR] [--runs 3] [--json]

Serves the archive (default: the demo archive at /tmp/demo3/archive) with ``python -m
dashboard.cli serve`` in a subprocess, opens ``?view=scenarios`` ``--runs`` times, each in a
fresh browser context, and reports per run (the page's own clock, :mod:`tests.benchmarks._browser`)
``first_plot_s`` (the first grid drawn), ``complete_s`` (``callmip-complete`` and every plot
drawn) and their ratio. The page fills in grid by grid, so the ratio is well below 1; when the
grids came all at once it was close to 1. Measures, asserts nothing; say the machine's load
(``uptime``) with the numbers.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import statistics
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(REPO))


def _serve(archive: str, port: int) -> subprocess.Popen:
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    process = subprocess.Popen([sys.executable, "-m", "dashboard.cli", "serve", archive,
                                "--port", str(port)], cwd=REPO, env=env,
                               stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    for _ in range(600):
        try:
            with urllib.request.urlopen(f"http://127.0.0.1:{port}/liveness", timeout=5):
                return process
        except OSError:
            time.sleep(0.5)
    process.terminate()
    raise RuntimeError("the server did not start")


async def _measure(url: str, runs: int) -> list[dict]:
    from tests.benchmarks._browser import Chromium, close_page, open_timed
    from tests.conftest import CHROMIUM, CHROMIUM_ARGS

    chromium = Chromium(CHROMIUM, CHROMIUM_ARGS)
    await chromium.start()
    out = []
    try:
        for _ in range(runs):
            page = await chromium.new_page()
            try:
                opened = await open_timed(page, url)
            finally:
                await close_page(page)
            out.append({"first_plot_s": opened.first_plot_s, "complete_s": opened.complete_s})
    finally:
        await chromium.close()
    return out


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--archive", default="/tmp/demo3/archive")
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--json", action="store_true")
    args = parser.parse_args(argv)
    from tests.conftest import free_port

    port = free_port()
    server = _serve(args.archive, port)
    try:
        url = f"http://127.0.0.1:{port}/?view=scenarios"
        asyncio.run(_measure(url, 1))  # warm-up: the metric tables, imports
        results = asyncio.run(_measure(url, args.runs))
    finally:
        server.terminate()
        server.wait(timeout=30)
    for r in results:
        r["ratio"] = (r["first_plot_s"] / r["complete_s"] if r["complete_s"] else None)
    load = os.getloadavg()[0]
    if args.json:
        print(json.dumps({"runs": results, "load": load}, indent=1))
        return 0
    print(f"?view=scenarios, {args.runs} runs, load average {load:.1f}")
    for r in results:
        ratio = f"{r['ratio']:.2f}" if r["ratio"] is not None else "—"
        complete = f"{r['complete_s']:.1f}" if r["complete_s"] else "—"
        print(f"  first grid {r['first_plot_s']:.1f} s · complete {complete} s · "
              f"first/complete {ratio}")
    ratios = [r["ratio"] for r in results if r["ratio"] is not None]
    if ratios:
        print(f"median first/complete: {statistics.median(ratios):.2f}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
