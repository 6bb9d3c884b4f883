"""Benchmark: catalog a tree of 10,000 CalLMIP-named files, and prove no file is opened.

Run from the repository root (not collected by pytest)::

    python tests/benchmarks/bench_catalog.py            # 10,000 files, best of 5
    python tests/benchmarks/bench_catalog.py --n 50000 --repeats 3 --json

It writes a temporary tree of realistic names (v2 and v1 site runs, global runs, daily and
PLUMBER2 observation files, parameter tables, junk and hidden files, nested folders; contents
empty or a few bytes), then measures

1. ``loaders.catalog.build_catalog(tree)`` in this process (best of ``--repeats``), with an
   audit hook (:func:`sys.addaudithook`) counting every ``open`` event on a path inside the tree;
2. ``callmip catalog TREE --json > /dev/null`` as a subprocess (best of ``--repeats``), and the
   same command on an empty folder (interpreter + import start-up, for comparison);
3. the same CLI command once more in a child interpreter with the audit hook installed, to
   count ``open`` events on the tree from the real command path.

It exits with status 1 if any file of the tree was opened or the catalog row count is wrong.
"""

from __future__ import annotations

import argparse
import json
import os
import random
import shutil
import subprocess
import sys
import tempfile
import time
from collections import Counter
from pathlib import Path

MODELS = [("CLASSIC", ["v2", "v2.1"]), ("CABLE-POP", ["v4.2", "v4.3"]), ("ORCHIDEE", ["v3", "v4"]),
          ("JULES", ["v7.4", "v7.5"]), ("CLM", ["v5.0", "v6"]), ("JSBACH", ["v4.30"]),
          ("LPJ-GUESS", ["v4.1"]), ("SPA", ["v2"]), ("BETHY", ["v3"]), ("ISBA-CTRIP", ["v6.1"]),
          ("Noah-MP", ["v5.0"]), ("ELM", ["v2.1"])]
CAL_SITES = ["AU-Cpr", "AU-Wom", "CA-Qfo", "CH-Dav", "DE-Gri", "DE-Hai", "DE-Tha", "DK-Sor",
             "FI-Hyy", "FR-Pue", "IT-Lav", "IT-MBo", "IT-Noe", "NL-Loo", "RU-Fyo", "US-MMS",
             "US-NR1", "US-SRG", "US-SRM", "US-Ton", "US-Whs"]
VAL_SITES = ["AU-ASM", "AU-How", "AU-Stp", "AU-Tum", "CH-Cha", "US-FPe", "US-GLE", "US-Ha1",
             "US-Me2", "US-UMB"]
JUNK = ["README.md", "notes.txt", "upload_log.json", "CLASSIC.v2_Phase1b_Scen1_DK-Sor_Cal_Post.nc",
        "CLASSICv2_Phase1b_Scen1_DK-Sor_Cal_Prior.nc", "run.sh", "Makefile",
        "CABLE-POP.v4.2_Phase1b_DK-Sor_Cal_Prior.nc", "plot.png"]


def realistic_names(seed: int = 0):
    """Yield (relative path, kind) pairs, most of them realistic, without end (with repeats)."""
    rng = random.Random(seed)
    while True:
        model, versions = rng.choice(MODELS)
        version = rng.choice(versions)
        r = rng.random()
        if r < 0.80:  # protocol v2 site runs, one folder per model/version/scenario
            cal = rng.random() < 0.68
            site = rng.choice(CAL_SITES if cal else VAL_SITES)
            scen = 1 if rng.random() < 0.5 else rng.randint(2, 6)
            stage = rng.choice(["Prior", "Posterior"])
            cv = "Cal" if cal else "Val"
            yield (f"runs/{model}/{version}/Scen{scen}/"
                   f"{model}.{version}_Phase1b_Scen{scen}_{site}_{cv}_{stage}.nc", "site_run")
        elif r < 0.86:  # protocol v1 site runs (older submissions)
            site = rng.choice(CAL_SITES)
            stage = rng.choice(["Prior", "Posterior", "Temporal", "Spatial"])
            yield (f"archive_v1/{model}/{model}.{version}_Expt{rng.randint(1, 4)}_{site}_"
                   f"{rng.choice(['Cal', 'Val'])}_{stage}.nc", "site_run")
        elif r < 0.89:
            res = rng.choice(["0.5deg", "1deg", "2deg", "0.25deg", "1.875x1.25deg"])
            freq = rng.choice(["monthly", "daily", "annual"])
            y0 = rng.randint(1990, 2005)
            yield (f"global/{model}/{model}.{version}_global_{res}_{freq}_{y0}-{y0 + 19}_"
                   f"{rng.choice(['Prior', 'Posterior'])}.nc", "global_run")
        elif r < 0.92:
            site = rng.choice(CAL_SITES + VAL_SITES)
            y0 = rng.randint(1990, 2008)
            y1 = rng.randint(y0 + 3, 2014)
            if rng.random() < 0.5:
                yield (f"obs/Phase1b/{site}_daily_aggregated_{y0}-{y1}_FLUXNET2015_Flux.nc",
                       "observation")
            else:
                coll = rng.choice(["FLUXNET2015", "LaThuile", "OzFlux"])
                ftype = rng.choice(["Flux", "Met"])
                yield (f"obs/plumber2/{coll}/{site}_{y0}-{y1}_{coll}_{ftype}.nc",
                       "observation" if ftype == "Flux" else "unrecognised")
        elif r < 0.95:
            yield (f"parameters/{model}.{version}_Phase1b_Scen{rng.randint(1, 6)}_parameters.csv",
                   "parameters")
        elif r < 0.99:
            yield (f"runs/{model}/misc/{rng.randint(0, 10**6)}_{rng.choice(JUNK)}",
                   "unrecognised")
        else:  # hidden: must be skipped
            yield (f"runs/{model}/.cache/{rng.randint(0, 10**6)}.nc", "hidden")


def make_tree(root: Path, n: int, seed: int = 0) -> Counter:
    """Create ``n`` visible files (plus a few hidden ones) under ``root``; return kind counts.

    Each folder is made once and each file written with ``os.open``/``os.write``: the same
    tree (same paths and bytes) as with ``Path.mkdir`` and ``write_bytes`` per file, with about
    half the CPU time (0.42 s against 0.91 s for 10,000 files here when the file system is
    not busy; ``run.py`` writes the tree while its servers start).
    """
    seen: set[str] = set()
    folders: set[str] = set()
    kinds: Counter = Counter()
    visible = 0
    rng = random.Random(seed + 1)
    flags = os.O_WRONLY | os.O_CREAT | os.O_TRUNC
    for rel, kind in realistic_names(seed):
        if rel in seen:
            continue
        seen.add(rel)
        path = os.path.join(root, rel)
        folder = os.path.dirname(path)
        if folder not in folders:
            os.makedirs(folder, exist_ok=True)
            folders.add(folder)
        # tiny contents: empty, a few bytes, or a NetCDF-looking header
        r = rng.random()
        data = b"" if r < 0.5 else (b"CDF\x01" if r < 0.8 else b"x" * rng.randint(1, 64))
        fd = os.open(path, flags, 0o666)
        try:
            if data:
                os.write(fd, data)
        finally:
            os.close(fd)
        kinds[kind] += 1
        visible += kind != "hidden"
        if visible >= n:
            break
    return kinds


class OpenCounter:
    """Audit hook counting ``open`` events on paths inside ``root`` (only while active)."""

    def __init__(self) -> None:
        self.root: str | None = None
        self.paths: list[str] = []
        sys.addaudithook(self)

    def __call__(self, event: str, args: tuple) -> None:
        if self.root is None or event != "open" or not args:
            return
        target = args[0]
        if isinstance(target, (str, bytes, os.PathLike)):
            text = os.path.abspath(os.fsdecode(target))
            if text.startswith(self.root):
                self.paths.append(text)


CHILD = r"""
import os, sys
root = os.path.realpath(sys.argv[1])
opened = []
def hook(event, args):
    if event == "open" and args and isinstance(args[0], (str, bytes, os.PathLike)):
        p = os.path.abspath(os.fsdecode(args[0]))
        if p.startswith(root):
            opened.append(p)
sys.addaudithook(hook)
import contextlib, io
from dashboard.cli import main
with contextlib.redirect_stdout(io.StringIO()) as out:
    status = main(["catalog", sys.argv[1], "--json"])
import json
rows = json.loads(out.getvalue())
print(json.dumps({"status": status, "rows": len(rows), "opened": opened[:5],
                  "n_opened": len(opened)}))
"""


def _callmip_command() -> list[str]:
    exe = shutil.which("callmip")
    return [exe] if exe else [sys.executable, "-m", "dashboard.cli"]


def _time_subprocess(cmd: list[str], repeats: int) -> float:
    best = float("inf")
    for _ in range(repeats):
        t0 = time.perf_counter()
        subprocess.run(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, check=True)
        best = min(best, time.perf_counter() - t0)
    return best


def main(argv: list[str] | None = None) -> int:
    """Run the benchmark and print the measured numbers."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--n", type=int, default=10_000, help="visible files (default 10000)")
    parser.add_argument("--repeats", type=int, default=5, help="best of N (default 5)")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--json", action="store_true", help="print one JSON summary line")
    args = parser.parse_args(argv)

    counter = OpenCounter()
    from loaders.catalog import build_catalog

    with tempfile.TemporaryDirectory(prefix="callmip-bench-") as tmp:
        root = Path(tmp).resolve() / "archive"
        root.mkdir()
        empty = Path(tmp) / "empty"
        empty.mkdir()
        t0 = time.perf_counter()
        kinds = make_tree(root, args.n, args.seed)
        t_make = time.perf_counter() - t0
        expected_rows = sum(v for k, v in kinds.items() if k != "hidden")

        build_catalog(empty)  # warm imports (pandas) outside the timing
        times = []
        counter.root = str(root)
        for _ in range(args.repeats):
            t0 = time.perf_counter()
            df = build_catalog(root)
            times.append(time.perf_counter() - t0)
        counter.root = None
        got_kinds = df["kind"].value_counts().to_dict()

        cmd = _callmip_command()
        t_cli = _time_subprocess([*cmd, "catalog", str(root), "--json"], args.repeats)
        t_cli_empty = _time_subprocess([*cmd, "catalog", str(empty), "--json"], args.repeats)
        child = subprocess.run([sys.executable, "-c", CHILD, str(root)], capture_output=True,
                               text=True, check=True)
        child_result = json.loads(child.stdout.strip().splitlines()[-1])

    expected_kinds = {k: v for k, v in kinds.items() if k != "hidden"}
    ok = (len(df) == expected_rows and got_kinds == expected_kinds and not counter.paths
          and child_result["n_opened"] == 0 and child_result["rows"] == expected_rows
          and child_result["status"] == 0)
    summary = {
        "files": expected_rows, "hidden_files": kinds.get("hidden", 0),
        "kinds": expected_kinds, "tree_creation_s": round(t_make, 3),
        "build_catalog_best_s": round(min(times), 4),
        "build_catalog_all_s": [round(t, 4) for t in times],
        "files_per_s": round(expected_rows / min(times)),
        "cli_catalog_json_best_s": round(t_cli, 3),
        "cli_catalog_json_empty_dir_best_s": round(t_cli_empty, 3),
        "open_events_in_process": len(counter.paths),
        "open_events_cli": child_result["n_opened"],
        "rows_ok": len(df) == expected_rows and got_kinds == expected_kinds,
        "python": sys.version.split()[0], "cpus": os.cpu_count(), "ok": ok,
    }
    if args.json:
        print(json.dumps(summary))
    else:
        print(f"tree: {expected_rows} files (+{summary['hidden_files']} hidden) "
              f"created in {t_make:.2f} s; kinds {expected_kinds}")
        print(f"build_catalog: best of {args.repeats} = {min(times) * 1000:.1f} ms "
              f"({summary['files_per_s']} files/s); all runs "
              + ", ".join(f"{t * 1000:.1f}" for t in times) + " ms")
        print(f"callmip catalog DIR --json > /dev/null: best of {args.repeats} = {t_cli:.3f} s "
              f"(empty folder: {t_cli_empty:.3f} s, i.e. start-up)")
        print(f"files opened under the tree: build_catalog {len(counter.paths)}, "
              f"CLI {child_result['n_opened']} (audit-hook 'open' events)")
        print("OK" if ok else "FAILED: " + json.dumps(summary))
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
