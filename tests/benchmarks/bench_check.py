"""Checking a large file through the "Check my files" page's objects vs ``callmip check``.

Run from the repository (not collected by pytest)::

    python tests/benchmarks/bench_check.py [--archive DIR] [--mb 50] [--runs 3] [--json]

Writes one posterior site run of about ``--mb`` MB (an ensemble at DK-Sor covering the archive's
observation record) into a temporary folder, then measures (medians of ``--runs``):

``cli``
    ``python -m dashboard.cli check FILE --obs-root ARCHIVE`` in a subprocess: what a
    participant runs (includes starting Python and importing the checker).
``cli_in_process``
    :func:`loaders.protocol.check_paths` on the file in this process (the same checks without
    the start-up).
``page_check``
    :meth:`dashboard.views.check.CheckView.add_files` up to the report: the bytes stored in the
    session folder, checked and described (a new view each run; the served archive's
    observation index is built once per process, as in a server).
``page_total``
    ``add_files`` as a whole: report plus the comparison with the community (series, table and
    the four plots built as HoloViews objects; not rendered in a browser).

Target (issue #14): ``page_check`` within 2x ``cli``. Measures, asserts nothing.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(REPO))


def make_big_run(folder: Path, root: str, megabytes: float) -> Path:
    """A posterior ensemble run at DK-Sor of about ``megabytes`` MB, on the obs record."""
    from loaders.archive import Archive
    from loaders.readers import open_observations
    from tests.synthetic import write_site_run

    archive = Archive(root)
    obs = open_observations(archive.observation_path("DK-Sor"))
    start = str(obs["time"].values[0])[:10]
    n_days = int(obs.sizes["time"])
    per_member = 14 * n_days * 8
    members = max(2, round(megabytes * 1e6 / per_member))
    return write_site_run(folder, model="BENCH", version="v1", site="DK-Sor", cal_val="Cal",
                          stage="Posterior", start=start, n_days=n_days, ensemble=members,
                          ensemble_dim="member", lat=55.4859, lon=11.6446, seed=5)


def _median(samples: list[float]) -> float:
    return statistics.median(samples)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--archive", default=None, help="served archive (default: demo)")
    parser.add_argument("--mb", type=float, default=50.0, help="file size in MB (default 50)")
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--json", action="store_true")
    args = parser.parse_args(argv)

    root = args.archive
    if root is None:
        from dashboard.demo import ensure_demo_archive

        root = str(ensure_demo_archive(progress=False))
    tmp = Path(tempfile.mkdtemp(prefix="bench-check-"))
    os.environ.setdefault("CALLMIP_CACHE_DIR", str(tmp / "cache"))
    os.environ["CALLMIP_UPLOAD_DIR"] = str(tmp / "uploads")
    big = make_big_run(tmp / "runs", root, args.mb)
    size_mb = big.stat().st_size / 1e6
    print(f"file: {big.name}, {size_mb:.1f} MB", file=sys.stderr)
    env = {**os.environ, "PYTHONPATH": str(REPO)}

    results: dict[str, list[float]] = {"cli": [], "cli_in_process": [], "page_check": [],
                                       "page_total": []}
    for _ in range(args.runs):
        t0 = time.perf_counter()
        subprocess.run([sys.executable, "-m", "dashboard.cli", "check", str(big), "--obs-root",
                        root, "--json"], env=env, cwd=REPO, capture_output=True, check=False)
        results["cli"].append(time.perf_counter() - t0)

    from loaders.protocol import check_paths

    check_paths([big], obs_root=root)  # imports and first reads, unmeasured
    for _ in range(args.runs):
        t0 = time.perf_counter()
        reports = check_paths([big], obs_root=root)
        results["cli_in_process"].append(time.perf_counter() - t0)
    cli_ok = reports[0].ok

    import dashboard.app  # noqa: F401  (HoloViews' plotting extension)
    from dashboard import checking
    from dashboard.service import get_service
    from dashboard.state import Selection
    from dashboard.views.check import CheckView
    from dashboard.views.style import Look

    service = get_service(root)
    service.tables()  # a serving process has these before its first session
    checking.observation_index(service)
    data = big.read_bytes()
    timings: dict[str, float] = {}
    original = checking.check_stored

    def timed_check(stored, svc=None):
        result = original(stored, svc)
        timings["checked"] = time.perf_counter()
        return result

    import dashboard.views.check as check_module

    check_module.check_stored = timed_check
    page_ok = None
    for _ in range(args.runs + 1):  # the first run warms the view's imports
        view = CheckView(selection=Selection(view="check"), service=service, look=Look())
        t0 = time.perf_counter()
        (checked,) = view.add_files({big.name: data})
        end = time.perf_counter()
        page_ok = checked.report.ok
        results["page_check"].append(timings["checked"] - t0)
        results["page_total"].append(end - t0)
        view.uploads.cleanup()
    results["page_check"].pop(0)
    results["page_total"].pop(0)

    medians = {k: _median(v) for k, v in results.items()}
    entries = [{"name": name, "median_s": round(value, 3),
                "ratio_to_cli": round(value / medians["cli"], 2),
                "ratio_to_cli_in_process": round(value / medians["cli_in_process"], 2)}
               for name, value in medians.items()]
    summary = {"file_mb": round(size_mb, 1), "archive": root, "runs": args.runs,
               "same_verdict": cli_ok == page_ok, "benchmarks": entries}
    if args.json:
        print(json.dumps(summary, indent=1))
    else:
        print(f"{size_mb:.1f} MB file, {args.runs} runs, archive {root}")
        print(f"{'benchmark':<16} {'median s':>9} {'/ cli':>7} {'/ cli in-process':>17}")
        for e in entries:
            print(f"{e['name']:<16} {e['median_s']:>9.3f} {e['ratio_to_cli']:>7.2f} "
                  f"{e['ratio_to_cli_in_process']:>17.2f}")
        print(f"same verdict (PASS/FAIL) on both paths: {summary['same_verdict']}; "
              "target: page_check <= 2x cli")
    return 0


if __name__ == "__main__":
    sys.exit(main())
