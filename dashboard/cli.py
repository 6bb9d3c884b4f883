"""The ``callmip`` command line: ``serve | demo | check | catalog | metrics | ingest | export``.

Heavy imports happen inside each command, so ``callmip --help`` and ``callmip catalog`` stay fast.
Exit status: 0 success, 1 a checked file failed (``check``) or a command failed, 2 usage errors.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
from collections.abc import Sequence
from pathlib import Path


class UsageError(Exception):
    """Bad arguments (exit status 2)."""


def _parse_years(text: str) -> tuple[int, int]:
    try:
        start, end = (int(x) for x in text.split("-"))
    except ValueError as exc:
        raise argparse.ArgumentTypeError(f"years must be YYYY-YYYY, not {text!r}") from exc
    if end < start:
        raise argparse.ArgumentTypeError(f"years {text!r} end before they start")
    return start, end


def build_parser() -> argparse.ArgumentParser:
    """Return the argument parser of the ``callmip`` command."""
    parser = argparse.ArgumentParser(
        prog="callmip",
        description="CalLMIP Explorer: explore, check and score CalLMIP submissions.",
    )
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")

    p = sub.add_parser("serve", help="start the dashboard (on the demo archive if no DATA_ROOT)")
    p.add_argument("data_root", nargs="?", help="folder of CalLMIP files (default: demo archive)")
    p.add_argument("--port", type=int, default=5006, help="port (default 5006; 0 = any free)")
    p.add_argument("--address", default="localhost", help="address to listen on")
    p.add_argument("--show", action="store_true", help="open a browser tab")
    p.add_argument("--allow-websocket-origin", action="append", default=None,
                   metavar="HOST[:PORT]", help="websocket origin to accept (repeatable)")
    p.add_argument("--num-procs", type=int, default=1,
                   help="worker processes sharing the port (default 1; 0 = one per core)")
    p.add_argument("--num-threads", type=int, default=None,
                   help="threads per worker for session callbacks (default: none)")
    p.add_argument("--cache-mb", type=float, default=None,
                   help="memory a worker keeps for opened files and series, in MB "
                        "(default: $CALLMIP_CACHE_MB or 512)")
    p.add_argument("--warm", action="store_true",
                   help="build one app before serving (pays imports and first render once)")
    p.add_argument("--dask-scheduler", default=None, metavar="ADDRESS",
                   help="send the global view's heavy reductions to this dask.distributed "
                        "scheduler (e.g. tcp://10.0.0.5:8786); default: in-process")
    p.add_argument("--no-upload", dest="upload", action="store_false",
                   help="turn off the 'Check my files' upload page (for a public site)")
    p.add_argument("--max-upload-mb", type=float, default=None, metavar="MB",
                   help="largest file (or zip member, uncompressed) the upload page accepts "
                        "(default 200)")
    p.add_argument("--max-session-upload-mb", type=float, default=None, metavar="MB",
                   help="most a browser session may upload in all (default 2048)")
    p.add_argument("--oauth-provider", default=os.environ.get("PANEL_OAUTH_PROVIDER"),
                   help="log users in through Panel's OAuth provider (github, google, "
                        "azure, generic, …; default $PANEL_OAUTH_PROVIDER). Needs "
                        "$PANEL_OAUTH_KEY, $PANEL_OAUTH_SECRET, $PANEL_COOKIE_SECRET and "
                        "$PANEL_OAUTH_ENCRYPTION (the same in every process)")
    p.add_argument("--oauth-redirect-uri", default=None,
                   help="public URL the provider redirects to after login "
                        "(default $PANEL_OAUTH_REDIRECT_URI)")
    p.add_argument("--use-xheaders", action="store_true",
                   help="trust X-Forwarded-* headers from a reverse proxy (behind nginx)")

    p = sub.add_parser("demo", help="write the demo archive (synthetic, from a toy calibration)")
    p.add_argument("--out", required=True, help="output folder")
    p.add_argument("--seed", type=int, default=0, help="random seed (default 0)")
    p.add_argument("--resolution", type=float, default=2.0,
                   help="global grid resolution in degrees (default 2.0)")
    p.add_argument("--years", type=_parse_years, default=(2001, 2020),
                   help="years of the global runs, YYYY-YYYY (default 2001-2020)")

    p = sub.add_parser("check", help="check submission files against the CalLMIP protocol v2")
    p.add_argument("paths", nargs="+", metavar="PATH", help="files or folders to check")
    p.add_argument("--json", action="store_true", help="print a JSON list of reports")
    p.add_argument("--obs-root", help="folder of observation files (checks the number of days)")

    p = sub.add_parser("catalog", help="list the files of a data folder, parsed from names")
    p.add_argument("data_root", help="folder or fsspec URL")
    p.add_argument("--json", action="store_true", help="print a JSON list of rows")

    p = sub.add_parser("metrics", help="compute misfit, spread and parameter tables")
    p.add_argument("data_root", help="folder of CalLMIP files")
    p.add_argument("--format", choices=("csv", "json", "parquet"), default="csv")
    p.add_argument("--out", help="output file (json) or folder/prefix (csv, parquet); "
                                 "default: stdout for json and csv")
    p.add_argument("--min-n", type=int, default=None,
                   help="minimum number of valid days for a score (default 30)")

    p = sub.add_parser("export", help="write a static site that opens offline (file://)")
    p.add_argument("data_root", help="folder of CalLMIP files")
    p.add_argument("--out", required=True, help="output folder")
    p.add_argument("--sites", nargs="+", metavar="SITE", help="sites to export (default: all)")
    p.add_argument("--variables", nargs="+", metavar="VAR",
                   help="variables of the Overview pages and figures (default: NEE Qle Qh)")
    p.add_argument("--no-figures", dest="figures", action="store_false",
                   help="skip the PNG figures")
    p.add_argument("--no-cache", dest="cache", action="store_false",
                   help="render every page again instead of reusing earlier renders")
    p = sub.add_parser("ingest", help="copy the global runs into one consolidated Zarr store")
    p.add_argument("data_root", help="folder (or fsspec URL) of CalLMIP files")
    p.add_argument("--out", required=True,
                   help="the store, a path or fsspec URL ending in .zarr (put it in the data "
                        "root, e.g. DATA_ROOT/global.zarr, and the app reads it)")
    return parser


# ---------------------------------------------------------------------------------------------

def cmd_catalog(args: argparse.Namespace) -> int:
    """List every file with its parsed fields."""
    from loaders.catalog import JSON_KEYS, build_catalog, catalog_records

    try:
        df = build_catalog(args.data_root)
    except FileNotFoundError as exc:
        raise UsageError(str(exc)) from exc
    if args.json:
        rows = catalog_records(df)
        keys = list(JSON_KEYS) + [k for k in df.columns if k not in JSON_KEYS]
        print(json.dumps([{k: r.get(k) for k in keys} for r in rows], indent=1))
        return 0
    if df.empty:
        print(f"no files under {args.data_root}")
        return 0
    cols = ["kind", "model", "version", "scenario", "site", "cal_val", "stage", "size", "name"]
    view = df[cols].astype(object).where(df[cols].notna(), "")
    print(view.to_string(index=False))
    counts = df["kind"].value_counts()
    print("\n" + ", ".join(f"{n} {k}" for k, n in counts.items()) + f" ({len(df)} files)")
    for row in df[df["kind"] == "unrecognised"].itertuples():
        print(f"unrecognised: {row.name}: {row.reason}")
    return 0


def cmd_check(args: argparse.Namespace) -> int:
    """Check files against the protocol and print a report per file."""
    from loaders.protocol import check_paths, format_report

    missing = [p for p in args.paths if not Path(p).exists()]
    if missing:
        raise UsageError("no such file or folder: " + ", ".join(missing))
    if args.obs_root and not Path(args.obs_root).is_dir():
        raise UsageError(f"--obs-root {args.obs_root!r} is not a folder")
    reports = check_paths(args.paths, obs_root=args.obs_root)
    if args.json:
        print(json.dumps([r.to_dict() for r in reports], indent=1))
    else:
        for report in reports:
            print(format_report(report))
        n_bad = sum(not r.ok for r in reports)
        n_skipped = sum(bool(r.skipped) for r in reports)
        checked = len(reports) - n_skipped
        skipped = f"; {n_skipped} skipped (not submissions)" if n_skipped else ""
        print(f"\n{checked - n_bad} of {checked} files passed{skipped}")
    return 0 if all(r.ok for r in reports) else 1


def cmd_demo(args: argparse.Namespace) -> int:
    """Write the demo archive."""
    from dashboard.demo import generate_archive

    try:
        out = generate_archive(args.out, seed=args.seed, resolution=args.resolution,
                               years=args.years, progress=True)
    except OSError as exc:  # a write failure is not a usage error
        print(f"callmip demo: error: could not write the archive: {exc}", file=sys.stderr)
        return 1

    print(f"demo archive written to {out}")
    return 0


def cmd_metrics(args: argparse.Namespace) -> int:
    """Compute the metric tables and write them."""
    from dashboard.metrics.tables import DEFAULT_MIN_N, compute_tables, tables_to_json

    if not Path(args.data_root).exists():
        raise UsageError(f"data root {args.data_root!r} does not exist")
    min_n = args.min_n if args.min_n is not None else DEFAULT_MIN_N
    tables = compute_tables(args.data_root, min_n=min_n, progress=True)
    if tables["site_scores"].empty:  # no site run could be read (or there is none)
        problems = [f"  {Path(path).name}: {message}" for path, message in
                    sorted(tables.errors.items())][:20]
        print(f"callmip metrics: error: no site run in {args.data_root} could be scored ("
              + (f"{len(tables.errors)} file(s) unreadable" if tables.errors
                 else "no site runs named by the protocol") + ")",
              *problems, sep="\n", file=sys.stderr)
        return 1
    if args.format == "json":
        text = json.dumps(tables_to_json(tables), indent=1)
        if args.out:
            Path(args.out).write_text(text)
        else:
            print(text)
        return 0
    if args.format == "csv" and not args.out:
        for name, df in tables.items():
            print(f"# {name}")
            print(df.to_csv(index=False))
        return 0
    if not args.out:
        raise UsageError("--out is required with --format parquet")
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    for name, df in tables.items():
        target = out / f"{name}.{args.format}"
        if args.format == "csv":
            df.to_csv(target, index=False)
        else:
            df.to_parquet(target, index=False)
        print(f"wrote {target} ({len(df)} rows)")
    return 0


def cmd_export(args: argparse.Namespace) -> int:
    """Write the static site."""
    from dashboard.export import export_site

    if not Path(args.data_root).is_dir():
        raise UsageError(f"data root {args.data_root!r} is not a folder")
    try:
        result = export_site(args.data_root, args.out, sites=args.sites,
                             variables=args.variables, progress=True, use_cache=args.cache,
                             figures=args.figures)
    except ValueError as exc:
        raise UsageError(str(exc)) from exc
    except OSError as exc:
        print(f"callmip export: error: could not write {args.out}: {exc}", file=sys.stderr)
        return 1
    pages = [n for p, n in result.files.items() if p.endswith(".html")]
    for message in result.messages:
        print(f"  {message}")
    print(f"wrote {len(result.files)} files to {result.out} in {result.seconds:.1f} s "
          f"({result.rendered} rendered, {result.reused} from the cache); largest page "
          f"{max(pages, default=0) / 2**20:.1f} MB")
    return 0


def cmd_serve(args: argparse.Namespace) -> int:
    """Start the dashboard server."""
    from dashboard.server import serve

    return serve(data_root=args.data_root, port=args.port, address=args.address,
                 show=args.show, allow_websocket_origin=args.allow_websocket_origin,
                 num_procs=args.num_procs, num_threads=args.num_threads,
                 cache_mb=args.cache_mb, warm=args.warm, upload=args.upload,
                 max_upload_mb=args.max_upload_mb,
                 max_session_upload_mb=args.max_session_upload_mb,
                 oauth_provider=args.oauth_provider,
                 oauth_redirect_uri=args.oauth_redirect_uri, use_xheaders=args.use_xheaders,
                 dask_scheduler=args.dask_scheduler)


def cmd_ingest(args: argparse.Namespace) -> int:
    """Copy the global runs of a data root into one consolidated Zarr store."""
    from loaders.ingest import ingest

    if not str(args.out).rstrip("/").endswith(".zarr"):
        raise UsageError(f"--out must name a .zarr store, not {args.out!r}")
    if "://" not in args.data_root and not Path(args.data_root).is_dir():
        raise UsageError(f"data root {args.data_root!r} is not a folder")
    report = ingest(args.data_root, args.out, progress=True)
    print(f"{len(report.written)} run(s) written to {report.store}")
    for name, problem in sorted(report.failed.items()):
        print(f"skipped {name}: {problem}", file=sys.stderr)
    return 1 if report.failed and not report.written else 0


COMMANDS = {
    "catalog": cmd_catalog,
    "check": cmd_check,
    "demo": cmd_demo,
    "export": cmd_export,
    "ingest": cmd_ingest,
    "metrics": cmd_metrics,
    "serve": cmd_serve,
}


def main(argv: Sequence[str] | None = None) -> int:
    """Run the ``callmip`` command; return its exit status."""
    parser = build_parser()
    try:
        args = parser.parse_args(argv)
    except SystemExit as exc:  # argparse exits 2 on usage errors, 0 on --help
        return int(exc.code or 0)
    if args.command is None:
        parser.print_help()
        return 2
    try:
        return COMMANDS[args.command](args)
    except UsageError as exc:
        print(f"callmip {args.command}: error: {exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        return 130
    except BrokenPipeError:  # e.g. `callmip metrics ROOT | head`
        sys.stderr.close()
        return 0


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
