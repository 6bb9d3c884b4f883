"""The catalog (loaders.catalog.build_catalog): names only, never opening a file."""

from __future__ import annotations

import builtins
import io
import os
import sys
import uuid
from pathlib import Path

import pandas as pd
import pytest

from loaders.catalog import CATALOG_COLUMNS, build_catalog, catalog_records
from loaders.naming import KINDS, parse_name
from tests.synthetic import write_garbage, write_site_run

# relative path → expected kind
TREE = {
    "runs/CLASSIC/CLASSIC.v2_Phase1b_Scen1_DK-Sor_Cal_Prior.nc": "site_run",
    "runs/CLASSIC/CLASSIC.v2_Phase1b_Scen1_DK-Sor_Cal_Posterior.nc": "site_run",
    "runs/CABLE-POP/v4.2/scen3/CABLE-POP.v4.2_Phase1b_Scen3_US-Ton_Val_Posterior.nc": "site_run",
    "runs/ORCHIDEE/old/ORCHIDEE.v3_Expt1_DK-Sor_Cal_Temporal.nc": "site_run",
    "global/JULES.v7.4_global_0.5deg_monthly_2001-2020_Posterior.nc": "global_run",
    "obs/Phase1b/DK-Sor_daily_aggregated_1997-2014_FLUXNET2015_Flux.nc": "observation",
    "obs/plumber2/AU-Tum_2002-2017_OzFlux_Flux.nc": "observation",
    "obs/plumber2/AU-Tum_2002-2017_OzFlux_Met.nc": "unrecognised",
    "params/CABLE-POP.v4.2_Phase1b_Scen1_parameters.csv": "parameters",
    "README.md": "unrecognised",
    "runs/CLASSIC/CLASSIC.v2_Phase1b_Scen1_DK-Sor_Cal_Post.nc": "unrecognised",
    "runs/CLASSIC/notes.txt": "unrecognised",
    "junk/core": "unrecognised",
    "junk/a/b/c/d/deeply_nested.nc": "unrecognised",
}

HIDDEN = [
    ".hidden_CLASSIC.v2_Phase1b_Scen1_DK-Sor_Cal_Prior.nc",
    "runs/.DS_Store",
    ".git/objects/CLASSIC.v2_Phase1b_Scen1_DK-Sor_Cal_Prior.nc",
    "runs/.ipynb_checkpoints/CLASSIC.v2_Phase1b_Scen2_DK-Sor_Cal_Prior.nc",
    "__pycache__/CLASSIC.v2_Phase1b_Scen1_DK-Sor_Cal_Prior.nc",
]


def _make_tree(root: Path) -> dict[str, bytes]:
    """Write TREE (small distinct contents, some empty, one garbage .nc) and hidden files."""
    contents = {}
    for i, rel in enumerate(TREE):
        data = b"" if i % 3 == 0 else b"x" * (i + 1)
        if rel.endswith("Cal_Posterior.nc"):
            data = b"\x89HDF garbage, truncated" * 3  # a NetCDF name on garbage bytes
        write_garbage(root / rel, data)
        contents[rel] = data
    for rel in HIDDEN:
        write_garbage(root / rel, b"hidden")
    return contents


def test_catalog_lists_every_visible_file_with_parsed_fields(tmp_path):
    contents = _make_tree(tmp_path)
    df = build_catalog(tmp_path)

    assert list(df.columns) == list(CATALOG_COLUMNS)
    rel = [str(Path(p).relative_to(tmp_path)) for p in df["path"]]
    assert sorted(rel) == sorted(TREE)
    assert list(df["path"]) == sorted(df["path"])  # sorted by path
    assert set(df["kind"]) <= set(KINDS)
    by_rel = dict(zip(rel, df.to_dict(orient="records"), strict=True))
    for name, kind in TREE.items():
        row = by_rel[name]
        assert row["kind"] == kind, name
        assert row["name"] == Path(name).name
        assert row["size"] == len(contents[name])
        assert row["mtime"] == pytest.approx(os.stat(tmp_path / name).st_mtime)
        expected = parse_name(name)
        for field in ("model", "version", "phase", "site", "cal_val", "stage", "collection"):
            got = row[field]
            assert (got if isinstance(got, str) else None) == getattr(expected, field), field
        if kind == "unrecognised":
            assert isinstance(row["reason"], str) and row["reason"]
        else:
            assert pd.isna(row["reason"])


def test_catalog_numeric_columns_are_nullable_ints(tmp_path):
    _make_tree(tmp_path)
    df = build_catalog(tmp_path)
    for col in ("scenario", "year_start", "year_end", "size"):
        assert str(df[col].dtype) == "Int64", col
    scen3 = df[df["name"].str.contains("_Scen3_")]
    assert scen3["scenario"].tolist() == [3]
    obs = df[df["name"].str.startswith("DK-Sor_daily")]
    assert obs["scenario"].isna().all()
    assert obs[["year_start", "year_end"]].iloc[0].tolist() == [1997, 2014]


def test_garbage_netcdf_is_catalogued_by_name(tmp_path):
    _make_tree(tmp_path)
    df = build_catalog(tmp_path)
    row = df[df["name"] == "CLASSIC.v2_Phase1b_Scen1_DK-Sor_Cal_Posterior.nc"].iloc[0]
    assert row["kind"] == "site_run"
    assert row["stage"] == "Posterior"


def _forbid_opening(monkeypatch, tmp_path) -> list[str]:
    """Make every way of opening a file under tmp_path fail loudly from now on (undone by
    monkeypatch at the end of the test); return the list of attempts."""
    import netCDF4
    import xarray as xr

    root = str(tmp_path.resolve())
    opened: list[str] = []

    def _check(target):
        try:
            text = os.fspath(target)
        except TypeError:
            return
        if isinstance(text, bytes):
            text = text.decode(errors="replace")
        if os.path.abspath(text).startswith(root):
            opened.append(text)
            raise AssertionError(f"catalog opened {text}")

    def wrap(func):
        def guarded(file, *args, **kwargs):
            _check(file)
            return func(file, *args, **kwargs)
        return guarded

    monkeypatch.setattr(builtins, "open", wrap(builtins.open))
    monkeypatch.setattr(io, "open", wrap(io.open))
    monkeypatch.setattr(os, "open", wrap(os.open))
    monkeypatch.setattr(netCDF4, "Dataset", wrap(netCDF4.Dataset))
    monkeypatch.setattr(xr, "open_dataset", wrap(xr.open_dataset))
    monkeypatch.setattr(xr, "open_mfdataset", wrap(xr.open_mfdataset))
    return opened


_AUDIT = {"root": None, "opened": []}


def _audit_hook(event, args):  # installed once per process; inert unless a root is set
    root = _AUDIT["root"]
    if root is None or event != "open" or not args:
        return
    target = args[0]
    if isinstance(target, (str, bytes, os.PathLike)):
        text = os.fsdecode(target)
        if os.path.abspath(text).startswith(root):
            _AUDIT["opened"].append(text)


_HOOK_INSTALLED = False


def test_build_catalog_opens_no_file(tmp_path, monkeypatch):
    global _HOOK_INSTALLED
    # Real NetCDF files as well as garbage: nothing may be read either way.
    write_site_run(tmp_path / "runs", n_days=5)
    _make_tree(tmp_path)
    forbidden = _forbid_opening(monkeypatch, tmp_path)
    if not _HOOK_INSTALLED:
        sys.addaudithook(_audit_hook)
        _HOOK_INSTALLED = True
    _AUDIT["root"], _AUDIT["opened"] = str(tmp_path.resolve()), []
    try:
        df = build_catalog(tmp_path)
        records = catalog_records(df)
    finally:
        _AUDIT["root"] = None
    assert forbidden == []
    assert _AUDIT["opened"] == []
    assert len(records) == len(TREE) + 1
    assert "CLASSIC.v2_Phase1b_Scen1_DK-Sor_Cal_Prior.nc" in set(df["name"])


def test_hidden_files_and_folders_are_skipped(tmp_path):
    _make_tree(tmp_path)
    df = build_catalog(tmp_path)
    for path in df["path"]:
        parts = Path(path).relative_to(tmp_path).parts
        assert not any(p.startswith(".") or p == "__pycache__" for p in parts), path


def test_empty_folder_gives_empty_catalog_with_columns(tmp_path):
    df = build_catalog(tmp_path)
    assert df.empty
    assert list(df.columns) == list(CATALOG_COLUMNS)
    assert catalog_records(df) == []


def test_single_file_root_and_file_url(tmp_path):
    path = write_garbage(tmp_path / "CLASSIC.v2_Phase1b_Scen1_DK-Sor_Cal_Prior.nc", b"abc")
    for root in (path, str(path), f"file://{path}"):
        df = build_catalog(root)
        assert len(df) == 1
        assert df.loc[0, "kind"] == "site_run"
        assert df.loc[0, "size"] == 3
    df = build_catalog(f"file://{tmp_path}")
    assert df["name"].tolist() == [path.name]


def test_missing_root_raises_file_not_found(tmp_path):
    with pytest.raises(FileNotFoundError, match="nope"):
        build_catalog(tmp_path / "nope")


def test_catalog_records_are_json_ready(tmp_path):
    import json

    _make_tree(tmp_path)
    records = catalog_records(build_catalog(tmp_path))
    text = json.dumps(records)  # no numpy / pandas scalars, no NaN
    assert "NaN" not in text
    scen = {r["name"]: r["scenario"] for r in records}
    assert scen["CABLE-POP.v4.2_Phase1b_Scen3_US-Ton_Val_Posterior.nc"] == 3
    assert type(scen["CABLE-POP.v4.2_Phase1b_Scen3_US-Ton_Val_Posterior.nc"]) is int
    assert scen["README.md"] is None


@pytest.fixture
def memory_root():
    import fsspec

    fs = fsspec.filesystem("memory")
    root = f"/callmip-test-{uuid.uuid4().hex}"
    yield fs, root
    if fs.exists(root):
        fs.rm(root, recursive=True)


def test_fsspec_memory_url(memory_root):
    fs, root = memory_root
    for rel in TREE:
        fs.pipe(f"{root}/{rel}", b"12345")
    df = build_catalog(f"memory://{root}")
    assert len(df) == len(TREE)
    assert all(p.startswith("memory://") for p in df["path"])
    kinds = {Path(p).name: k for p, k in zip(df["path"], df["kind"], strict=True)}
    assert kinds == {Path(rel).name: kind for rel, kind in TREE.items()}
    assert (df["size"] == 5).all()
    row = df[df["name"] == "CABLE-POP.v4.2_Phase1b_Scen3_US-Ton_Val_Posterior.nc"].iloc[0]
    assert row["path"] == (f"memory://{root}/runs/CABLE-POP/v4.2/scen3/"
                           "CABLE-POP.v4.2_Phase1b_Scen3_US-Ton_Val_Posterior.nc")
    assert (row["model"], row["version"], row["scenario"], row["site"]) == \
        ("CABLE-POP", "v4.2", 3, "US-Ton")
