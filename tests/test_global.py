"""Global runs: loader, ingest, queries — on small grids with known answers."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import xarray as xr

from dashboard import global_queries as gq
from dashboard.metrics.global_stats import EARTH_RADIUS, SECONDS_PER
from dashboard.service import DataService
from loaders.gridded import GridError, field, open_gridded
from tests.globaldata import LAT, LON, TIMES, field_of, write_run

DAYS = np.array([31.0, 28.0])  # January and February 2001


def _service(root: Path) -> DataService:
    return DataService(root, cache_mb=64)


@pytest.fixture
def spread_archive(tmp_path) -> Path:
    """Three models; at step t model m has (m+1)·(t+1)·k (prior), (1.5, 2, 2.5)·(t+1)·k (post)."""
    root = tmp_path / "spread"
    k = 1e-8
    for m, (prior, post) in enumerate(((1.0, 1.5), (2.0, 2.0), (3.0, 2.5))):
        write_run(root / "global", f"M{m}", "Prior", {"gpp": field_of("step", prior * k)})
        write_run(root / "global", f"M{m}", "Posterior", {"gpp": field_of("step", post * k)})
    return root


# ------------------------------------------------------------------------------ loader
def test_0_360_longitudes_and_descending_latitudes_give_the_standard_map(tmp_path):
    values = field_of("zonal")
    standard = write_run(tmp_path / "a", "STD", "Prior", {"hfls": values})
    odd = write_run(tmp_path / "b", "STD", "Prior", {"hfls": values}, lon360=True,
                    descending=True)
    a, b = open_gridded(standard), open_gridded(odd)
    np.testing.assert_array_equal(a["lat"].values, LAT)
    np.testing.assert_array_equal(b["lat"].values, LAT)
    np.testing.assert_allclose(b["lon"].values, LON)
    np.testing.assert_array_equal(field(a, "Qle").values, field(b, "Qle").values)
    # and the value at a known place: 2·lat + sin(lon) at lat 45, lon -135 (225 E in the file)
    got = float(field(b, "Qle").sel(lat=45.0, lon=-135.0).isel(time=0))
    assert got == pytest.approx(90.0 + np.sin(np.deg2rad(-135.0)), rel=1e-6)


def test_open_gridded_is_lazy(tmp_path):
    import dask.array as da

    path = write_run(tmp_path, "LAZY", "Prior", {"gpp": field_of("const", 1e-8)})
    assert isinstance(field(open_gridded(path), "gpp").data, da.Array)


@pytest.mark.parametrize("lat, message", [
    (np.array([-75.0, -45.0, 15.0, -15.0, 45.0, 75.0]), "not monotonic"),
    (np.array([-75.0, -45.0, -15.0, 15.0, 45.0, 95.0]), "outside"),
])
def test_a_bad_latitude_axis_is_refused_with_a_clear_message(tmp_path, lat, message):
    path = write_run(tmp_path, "BAD", "Prior", {"gpp": field_of("const", 1e-8)}, lat=lat)
    with pytest.raises(GridError, match=message) as err:
        open_gridded(path)
    assert path.name in str(err.value)


def test_missing_units_and_unknown_variables_are_named(tmp_path):
    path = write_run(tmp_path, "NOUNIT", "Prior", {"gpp": field_of("const", 1e-8),
                                                    "hfls": field_of("zonal")},
                     units={"gpp": None})
    ds = open_gridded(path)
    with pytest.raises(GridError, match="'gpp' has no units attribute") as err:
        field(ds, "gpp", str(path))
    assert path.name in str(err.value)
    with pytest.raises(GridError, match="unknown variable 'banana'"):
        field(ds, "banana", str(path))
    with pytest.raises(GridError, match=r"has no variable 'reco' \(it holds gpp, hfls\)"):
        field(ds, "reco", str(path))
    assert field(ds, "Qle").shape == (TIMES.size, LAT.size, LON.size)


def test_nee_is_minus_nep(tmp_path):
    path = write_run(tmp_path, "SIGN", "Prior", {"nep": field_of("const", 2e-8)})
    nee = field(open_gridded(path), "NEE")
    np.testing.assert_allclose(nee.values, -2e-8, rtol=1e-6)
    assert nee.attrs["units"] == "kgC m-2 s-1"


def test_a_bad_run_is_reported_and_the_others_keep_serving(tmp_path):
    root = tmp_path / "mixed"
    for m in ("A1", "A2"):
        write_run(root, m, "Prior", {"gpp": field_of("const", 1e-8)})
    write_run(root, "A3", "Prior", {"gpp": field_of("const", 1e-8)},
              lat=np.array([-75.0, -45.0, 15.0, -15.0, 45.0, 75.0]))
    write_run(root, "A4", "Prior", {"gpp": field_of("const", 1e-8)}, units={"gpp": None})
    service = _service(root)
    maps = gq.layer_maps(service, "gpp", "Prior", "2001-01", "field", [])
    assert [m.title.split(" ")[0] for m in maps] == ["A1.v1", "A2.v1"]
    problems = gq.problems(service, "gpp")
    assert any("A3.v1" in p and "not monotonic" in p for p in problems)
    assert any("A4.v1" in p and "no units attribute" in p for p in problems)


# ------------------------------------------------------------------------------ time values
@pytest.mark.parametrize("text, expected", [
    ("2010-07", ("month", (2010, 7))), ("2010", ("year", 2010)), ("mean", ("mean", None)),
    ("", ("mean", None)), ("annual", ("annual", None)), ("month-07", ("calendar", 7)),
    ("7", ("calendar", 7)),
])
def test_time_values_of_the_url_contract(text, expected):
    assert gq.parse_time(text) == expected


@pytest.mark.parametrize("text", ["2010-13", "July", "month-13", "2010-07-01", "<b>"])
def test_bad_time_values_are_refused(text):
    with pytest.raises(ValueError, match="time="):
        gq.parse_time(text)


def test_bad_time_in_the_url_is_reported_and_ignored():
    from dashboard.state import Selection
    from dashboard.urlstate import query_from_selection, selection_from_query

    selection = Selection()
    problems = selection_from_query(selection, {"time": "2010-13", "layer": "banana",
                                                "projection": "Robinson", "view": "global"})
    assert selection.time == "" and selection.layer == "field"
    assert selection.projection == "Robinson"
    assert any("2010-13" in p for p in problems) and any("banana" in p for p in problems)
    selection_from_query(selection, {"time": "month-07"})
    assert selection.time == "month-07"
    query = query_from_selection(selection)
    assert query["projection"] == "Robinson" and query["layer"] == "field"
    assert "layer" not in query_from_selection(Selection(view="sites"))


def test_time_means_weight_months_by_their_days(tmp_path):
    path = write_run(tmp_path, "W", "Prior", {"hfls": field_of("step", 10.0)})
    da = field(open_gridded(path), "Qle")
    got = float(gq.time_mean(da, "mean").isel(lat=0, lon=0))
    assert got == pytest.approx((31 * 10.0 + 28 * 20.0) / 59)
    assert float(gq.time_mean(da, "2001-02").isel(lat=0, lon=0)) == pytest.approx(20.0)
    assert float(gq.time_mean(da, "month-01").isel(lat=0, lon=0)) == pytest.approx(10.0)
    with pytest.raises(ValueError, match="outside the runs' period"):
        gq.time_mean(da, "1999")


# ------------------------------------------------------------------------------ statistics
def test_land_total_of_a_constant_flux_is_flux_times_land_area(tmp_path):
    c = 3e-8  # kgC m-2 s-1
    land = np.full((LAT.size, LON.size), 100.0)
    land[:, :6] = 50.0  # the western half is half land
    write_run(tmp_path / "t", "TOT", "Prior", {"gpp": field_of("const", c)},
              extra={"sftlf": land})
    frame = gq.global_totals(_service(tmp_path / "t"), "gpp", [])
    assert set(frame["units"]) == {"PgC yr-1"}
    expected = c * 4 * np.pi * EARTH_RADIUS**2 * 0.75 * SECONDS_PER["year"] * 1e-12
    np.testing.assert_allclose(frame["value"].to_numpy(), expected, rtol=1e-5)


def test_land_mean_of_a_non_carbon_variable(tmp_path):
    land = np.zeros((LAT.size, LON.size))
    land[LAT.size // 2] = 100.0  # only the 0–30° N band is land
    write_run(tmp_path / "m", "MEAN", "Prior", {"hfls": field_of("zonal")},
              extra={"sftlf": land})
    frame = gq.global_totals(_service(tmp_path / "m"), "Qle", [])
    assert set(frame["units"]) == {"W m-2"}
    # mean over one latitude band of 2·lat + sin(lon), equal cell widths: 2 × 15
    np.testing.assert_allclose(frame["value"].to_numpy(), 30.0, atol=1e-4)


def test_zonal_means(tmp_path):
    write_run(tmp_path / "z", "ZON", "Prior", {"hfls": field_of("zonal")})
    write_run(tmp_path / "z", "ZON", "Posterior", {"hfls": field_of("zonal", 2.0)})
    frame = gq.zonal_profiles(_service(tmp_path / "z"), "Qle", "2001-01", [])
    prior = frame[frame["stage"] == "Prior"].sort_values("lat")
    post = frame[frame["stage"] == "Posterior"].sort_values("lat")
    np.testing.assert_allclose(prior["value"].to_numpy(), 2.0 * LAT, atol=1e-4)
    np.testing.assert_allclose(post["value"].to_numpy(), 4.0 * LAT, atol=1e-4)


def test_spread_and_its_reduction(spread_archive):
    service = _service(spread_archive)
    k_gc = 1e-8 * 1000 * 86400  # the fields' scale in gC m-2 d-1
    sd = np.sqrt(2.0 / 3.0)  # population sd of (1, 2, 3); (1.5, 2, 2.5) has half of it
    spread = gq.layer_maps(service, "gpp", "Posterior", "2001-02", "spread", [])
    assert [m.title.split(",")[0] for m in spread] == [
        "Inter-model spread of the prior (3 models)",
        "Inter-model spread of the posterior (3 models)"]
    np.testing.assert_allclose(spread[0].values, 2 * sd * k_gc, rtol=1e-5)  # prior, step 2
    np.testing.assert_allclose(spread[1].values, sd * k_gc, rtol=1e-5)
    assert spread[0].units == "gC m-2 d-1" and spread[0].n_models == 3
    # the mean of the monthly spreads (weighted by days), not the spread of the means
    mean_spread = gq.layer_maps(service, "gpp", "Posterior", "mean", "spread", [])
    np.testing.assert_allclose(mean_spread[0].values, sd * k_gc * (31 + 2 * 28) / 59,
                               rtol=1e-5)
    reduction = gq.layer_maps(service, "gpp", "Posterior", "mean", "spread_reduction", [])
    assert len(reduction) == 1 and reduction[0].diverging
    np.testing.assert_allclose(reduction[0].values, 0.5, rtol=1e-5)
    assert gq.colour_limits(reduction) == pytest.approx((-0.5, 0.5))


def test_difference_mean_and_shared_symmetric_limits(spread_archive):
    service = _service(spread_archive)
    k_gc = 1e-8 * 1000 * 86400
    diff = gq.layer_maps(service, "gpp", "Posterior", "2001-01", "difference", [])
    assert [float(np.nanmean(m.values)) / k_gc for m in diff] == pytest.approx([0.5, 0.0, -0.5])
    low, high = gq.colour_limits(diff)
    assert low == -high and high == pytest.approx(0.5 * k_gc, rel=1e-4)
    mean = gq.layer_maps(service, "gpp", "Prior", "2001-01", "mean", [])
    np.testing.assert_allclose(mean[0].values, 2.0 * k_gc, rtol=1e-5)
    fields = gq.layer_maps(service, "gpp", "Prior", "2001-01", "field", ["M2.v1", "M0.v1"])
    assert [m.title.split(" ")[0] for m in fields] == ["M2.v1", "M0.v1"]


def test_cell_series_of_the_nearest_cell(spread_archive):
    frame = gq.cell_series(_service(spread_archive), "gpp", lon=-160.0, lat=40.0, models=[])
    assert len(frame) == 3 * 2 * TIMES.size
    assert set(frame["cell_lat"]) == {45.0} and set(frame["cell_lon"]) == {-165.0}
    row = frame[(frame["model"] == "M2.v1") & (frame["stage"] == "Prior")]
    np.testing.assert_allclose(row["value"].to_numpy(), 3e-8 * 86400 * 1000 * np.array([1, 2]),
                               rtol=1e-5)


# ------------------------------------------------------------------------------ Zarr
def test_zarr_and_netcdf_give_identical_frames(spread_archive, tmp_path):
    from loaders.ingest import ingest, store_runs

    netcdf = _service(spread_archive)
    expected = {layer: gq.layer_maps(netcdf, "gpp", "Posterior", time, layer, [])
                for layer, time in (("field", "2001-02"), ("spread", "mean"))}
    store = tmp_path / "copy" / "global.zarr"
    (tmp_path / "copy").mkdir()
    report = ingest(spread_archive, store, progress=False)
    assert len(report.written) == 6 and not report.failed
    assert len(store_runs(store)) == 6
    # the store alone is an archive: the app reads the runs from it
    zarr_service = _service(tmp_path / "copy")
    runs = gq.global_runs(zarr_service)
    assert len(runs) == 6 and all(r.group and not r.netcdf for r in runs)
    for layer, time in (("field", "2001-02"), ("spread", "mean")):
        got = gq.layer_maps(zarr_service, "gpp", "Posterior", time, layer, [])
        assert [m.title for m in got] == [m.title for m in expected[layer]]
        for a, b in zip(got, expected[layer], strict=True):
            np.testing.assert_array_equal(a.values, b.values)
    ds = open_gridded(store, group=runs[0].group)
    assert ds["gpp"].dtype == np.float32 and ds["gpp"].encoding["chunks"][0] == 1


def _zarray(store: Path, path: str) -> dict:
    """The zarr (format 2) metadata of the array at ``path`` in ``store``."""
    import json

    return json.loads((store / path / ".zarray").read_text())


def test_the_time_series_copy_holds_the_map_values_chunked_for_series(tmp_path, monkeypatch):
    import zarr

    from loaders import ingest as ingest_module
    from loaders.gridded import SERIES_GROUP, open_series

    # a 1° grid of 3 steps (180 × 360 cells: 6 × 12 blocks of 32, the last ones partial)
    lat = np.arange(-89.5, 90.0, 1.0)
    lon = np.arange(-179.5, 180.0, 1.0)
    times = TIMES.append(TIMES[-1:] + np.timedelta64(28, "D"))
    rng = np.random.default_rng(13)
    values = rng.normal(size=(times.size, lat.size, lon.size)).astype("float32") * 1e-8
    values[:, :20] = np.nan  # an ocean band: whole chunks of fill values
    ds = xr.Dataset({"gpp": (("time", "lat", "lon"), values,
                             {"units": "kgC m-2 s-1", "long_name": "Gross primary production"})},
                    coords={"time": times, "lat": lat, "lon": lon})
    store = tmp_path / "one.zarr"
    group = "R1.v1_global_1deg_monthly_2001-2001_Prior"
    ds.chunk({"time": 1, "lat": lat.size, "lon": lon.size}).to_zarr(
        store, group=group, mode="w", zarr_format=2, consolidated=False)
    # bands of 64 rows (two chunk rows) at a time: three bands, the last one partial
    monkeypatch.setattr(ingest_module, "SERIES_BAND_BYTES", 64 * lon.size * 4 * times.size)
    assert ingest_module.write_series_copy(store, group) == f"{group}/{SERIES_GROUP}"
    zarr.consolidate_metadata(str(store), zarr_format=2)
    meta = _zarray(store, f"{group}/{SERIES_GROUP}/gpp")
    assert meta["chunks"] == [times.size, 32, 32] and meta["shape"] == [3, 180, 360]
    assert meta["dtype"] == "<f4"
    assert _zarray(store, f"{group}/gpp")["chunks"] == [1, 180, 360]  # the map copy
    copy = open_series(store, group)
    assert copy is not None and copy.chunks == {}  # no dask: a cell is one chunk read
    np.testing.assert_array_equal(copy["gpp"].values, values)
    np.testing.assert_array_equal(copy["time"].values, times.values)
    assert copy["gpp"].attrs["units"] == "kgC m-2 s-1"
    assert float(copy["gpp"].isel(lat=100, lon=200, time=2)) == values[2, 100, 200]
    # blocks a side: 32 for a monthly run, smaller chunks for long daily runs
    assert [ingest_module.series_block(n) for n in (240, 1024, 1025, 1820, 7300)] == [
        32, 32, 24, 24, 16]


def test_ingest_writes_the_copy_beside_the_map_chunks_and_never_as_a_variable(
        spread_archive, tmp_path):
    import zarr

    from loaders.catalog import build_catalog
    from loaders.gridded import (
        SERIES_GROUP,
        STORE_MARKER,
        STORE_VERSION,
        open_series,
        series_group,
    )
    from loaders.ingest import ingest, store_runs

    write_run(spread_archive / "global", "EXTRA", "Prior",
              {"nep": field_of("zonal", 1e-9), "hfls": field_of("step", 10.0)},
              lon360=True, descending=True)
    store = tmp_path / "new" / "global.zarr"
    (tmp_path / "new").mkdir()
    report = ingest(spread_archive, store, progress=False)
    assert len(report.written) == 7 and not report.failed
    runs = store_runs(store)
    assert len(runs) == 7 and not any(SERIES_GROUP in name for name in runs)
    assert zarr.open_consolidated(str(store), zarr_format=2).attrs[STORE_MARKER] == STORE_VERSION
    for group in runs:
        maps, copy = open_gridded(store, group=group), open_series(store, group)
        assert sorted(maps.data_vars) == sorted(copy.data_vars)
        assert SERIES_GROUP not in maps.variables
        for name in maps.data_vars:
            np.testing.assert_array_equal(copy[name].values, maps[name].values)
            assert copy[name].dtype == np.float32 and copy[name].attrs == maps[name].attrs
            assert _zarray(store, f"{series_group(group)}/{name}")["chunks"] == [
                TIMES.size, LAT.size, LON.size]  # the whole 30° grid fits in one block
            assert _zarray(store, f"{group}/{name}")["chunks"] == [1, LAT.size, LON.size]
    # the app, the catalog and the exporter's queries see the runs and their variables only
    netcdf, stored = _service(spread_archive), _service(tmp_path / "new")
    assert gq.global_variables(stored) == gq.global_variables(netcdf) == ["NEE", "Qle", "gpp"]
    extra = gq.run_for(stored, "EXTRA.v1", "Prior")
    assert extra.group and sorted(gq.open_run(stored, extra).data_vars) == ["hfls", "nep"]
    assert gq.problems(stored, "gpp") == []
    assert build_catalog(tmp_path / "new").empty
    # ingesting again without the copy replaces the group: no stale copy is left behind
    ingest(spread_archive, store, progress=False, series=False)
    assert all(open_series(store, group) is None for group in runs)


@pytest.fixture
def cell_sources(spread_archive, tmp_path) -> dict[str, Path]:
    """The spread archive plus a 0–360, north-to-south run of nep (NetCDF), its store with the
    time-series copy (layout 2) and a store of layout 1 (map chunks only)."""
    import zarr

    from loaders.ingest import ingest

    steps = np.array([1.0, -2.0])[:, None, None]
    write_run(spread_archive / "global", "ODD", "Prior", {"nep": field_of("zonal", 1e-9) * steps},
              lon360=True, descending=True)
    roots = {"netcdf": spread_archive}
    for name, series in (("new", True), ("old", False)):
        (tmp_path / name).mkdir()
        ingest(spread_archive, tmp_path / name / "global.zarr", progress=False, series=series)
        roots[name] = tmp_path / name
    old = str(roots["old"] / "global.zarr")
    zarr.open_group(old, mode="a", zarr_format=2).attrs["callmip_global_store"] = 1
    zarr.consolidate_metadata(old, zarr_format=2)
    return roots


def test_cell_series_is_the_same_from_netcdf_the_series_copy_and_an_old_store(cell_sources):
    frames = {name: gq.cell_series(_service(root), "gpp", lon=-140.0, lat=50.0, models=[])
              for name, root in cell_sources.items()}
    nee = {name: gq.cell_series(_service(root), "NEE", lon=-140.0, lat=50.0, models=["ODD.v1"])
           for name, root in cell_sources.items()}
    assert len(frames["netcdf"]) == 3 * 2 * TIMES.size
    assert set(frames["netcdf"]["cell_lat"]) == {45.0} and set(frames["netcdf"]["cell_lon"]) == {
        -135.0}
    # NEE = −nep in gC m-2 d-1 at lat 45, lon −135 (225 E in the file): −(2·45 + sin(−135°))
    expected = -(90.0 + np.sin(np.deg2rad(-135.0))) * 1e-9 * 1000 * 86400 * np.array([1.0, -2.0])
    np.testing.assert_allclose(nee["netcdf"]["value"].to_numpy(), expected, rtol=1e-5)
    for name in ("new", "old"):
        pd.testing.assert_frame_equal(frames[name], frames["netcdf"])
        pd.testing.assert_frame_equal(nee[name], nee["netcdf"])


def test_each_cell_source_is_read_without_dask_and_the_copy_alone_serves_a_click(
        cell_sources):
    chunks = {}
    for name, root in cell_sources.items():
        service = _service(root)
        run = gq.run_for(service, "M1.v1", "Posterior")
        source = gq.cell_source(service, run)
        assert source.chunks == {}  # lazily indexed: isel reads the cell, no task graph
        chunks[name] = source["gpp"].encoding.get("chunks")
    assert chunks == {"netcdf": None, "new": (TIMES.size, LAT.size, LON.size),
                      "old": (1, LAT.size, LON.size)}
    # with the map chunks of gpp gone, the new store still serves a click from its copy
    store = cell_sources["new"] / "global.zarr"
    for chunk in store.glob("*/gpp/[0-9]*"):
        chunk.unlink()
    frame = gq.cell_series(_service(cell_sources["new"]), "gpp", lon=-160.0, lat=40.0,
                           models=["M2.v1"])
    prior = frame[frame["stage"] == "Prior"]["value"].to_numpy()
    np.testing.assert_allclose(prior, 3e-8 * 86400 * 1000 * np.array([1, 2]), rtol=1e-5)


def test_an_ensemble_run_gives_the_member_mean_from_netcdf_and_from_the_copy(tmp_path):
    from loaders.ingest import ingest

    members = np.random.default_rng(7).normal(
        size=(TIMES.size, 3, LAT.size, LON.size)).astype("float32") * 1e-8
    ds = xr.Dataset({"gpp": (("time", "member", "lat", "lon"), members,
                             {"units": "kgC m-2 s-1"})},
                    coords={"time": TIMES, "lat": LAT, "lon": LON})
    (tmp_path / "nc" / "global").mkdir(parents=True)
    ds.to_netcdf(tmp_path / "nc" / "global" / "ENS.v1_global_30deg_monthly_2001-2001_Prior.nc")
    (tmp_path / "zarr").mkdir()
    ingest(tmp_path / "nc", tmp_path / "zarr" / "global.zarr", progress=False)
    frames = [gq.cell_series(_service(tmp_path / name), "gpp", lon=10.0, lat=20.0, models=[])
              for name in ("nc", "zarr")]
    expected = members[:, :, 3, 6].astype("float64").mean(axis=1) * 1000 * 86400
    np.testing.assert_allclose(frames[0]["value"].to_numpy(), expected, rtol=1e-5)
    pd.testing.assert_frame_equal(frames[1], frames[0])


def test_file_urls_open_like_local_paths(spread_archive, tmp_path):
    from loaders.ingest import ingest

    path = next((spread_archive / "global").glob("M0.v1_*_Prior.nc"))
    local = field(open_gridded(path), "gpp").values
    np.testing.assert_array_equal(field(open_gridded(f"file://{path}"), "gpp").values, local)
    store = tmp_path / "url.zarr"
    ingest(spread_archive, f"file://{store}", progress=False)
    group = path.name[: -len(".nc")]
    via_url = open_gridded(f"file://{store}", group=group)
    np.testing.assert_array_equal(field(via_url, "gpp").values, local)


def test_ingested_store_in_the_data_root_replaces_the_netcdf_files(spread_archive):
    from loaders.ingest import ingest

    ingest(spread_archive, spread_archive / "global.zarr", progress=False)
    runs = gq.global_runs(_service(spread_archive))
    assert len(runs) == 6 and all(r.source.endswith("global.zarr") for r in runs)


def test_ingest_command(spread_archive, tmp_path, capsys):
    from dashboard.cli import main

    out = tmp_path / "cli.zarr"
    assert main(["ingest", str(spread_archive), "--out", str(out)]) == 0
    assert "6 run(s) written" in capsys.readouterr().out
    assert main(["ingest", str(spread_archive), "--out", str(tmp_path / "x.nc")]) == 2


# ------------------------------------------------------------------------------ dask
def test_spread_map_on_a_local_cluster_equals_the_in_process_one(spread_archive):
    distributed = pytest.importorskip("distributed")
    local = gq.layer_maps(_service(spread_archive), "gpp", "Posterior", "mean", "spread", [])
    with distributed.LocalCluster(n_workers=1, threads_per_worker=1, processes=True,
                                  dashboard_address=None) as cluster:
        gq.configure_dask(cluster.scheduler_address)
        try:
            service = _service(spread_archive)
            remote = gq.layer_maps(service, "gpp", "Posterior", "mean", "spread", [])
            assert gq.dask_client() is not None
            totals = gq.global_totals(service, "gpp", [])
        finally:
            client = gq.dask_client()
            gq.configure_dask(None)
            client.close()
    for a, b in zip(remote, local, strict=True):
        np.testing.assert_array_equal(a.values, b.values)
    assert len(totals) == 12 and np.isfinite(totals["value"]).all()


def test_an_unreachable_cluster_falls_back_to_in_process(spread_archive, caplog):
    pytest.importorskip("distributed")
    local = gq.layer_maps(_service(spread_archive), "gpp", "Posterior", "mean", "spread", [])
    gq.configure_dask("tcp://127.0.0.1:9")  # nothing listens there
    try:
        with caplog.at_level("WARNING"):
            got = gq.layer_maps(_service(spread_archive), "gpp", "Posterior", "mean", "spread",
                                [])
    finally:
        gq.configure_dask(None)
    assert any("unreachable" in r.message for r in caplog.records)
    for a, b in zip(got, local, strict=True):
        np.testing.assert_array_equal(a.values, b.values)


def test_netcdf_runs_are_chunked_by_bytes_not_one_step_a_chunk(tmp_path):
    """A small grid's run is one dask chunk (one step a chunk made every reduction a graph of
    thousands of tasks); a 0.5° run gets a few steps a chunk; the values do not change."""
    from loaders.gridded import NETCDF_CHUNK_BYTES, netcdf_time_chunk

    small = write_run(tmp_path / "small", "SMALL", "Prior", {"gpp": field_of("step", 1e-8)})
    ds = open_gridded(small)
    assert ds["gpp"].chunks[0] == (TIMES.size,)
    lat = np.arange(-89.75, 90.0, 0.5)
    lon = np.arange(-179.75, 180.0, 0.5)
    times = pd.date_range("2001-01-01", periods=6, freq="MS")
    values = np.arange(6, dtype="float32")[:, None, None] * np.ones((6, lat.size, lon.size),
                                                                      dtype="float32")
    big = tmp_path / "BIG.v1_global_0.5deg_monthly_2001-2001_Prior.nc"
    xr.Dataset({"gpp": (("time", "lat", "lon"), values, {"units": "kg m-2 s-1"})},
               coords={"time": times, "lat": lat, "lon": lon}).to_netcdf(big)
    steps = NETCDF_CHUNK_BYTES // (4 * lat.size * lon.size)
    assert netcdf_time_chunk(big) == steps == 4
    chunked = open_gridded(big)["gpp"]
    assert chunked.chunks[0] == (4, 2)
    np.testing.assert_array_equal(chunked.isel(time=5, lat=3, lon=7).values, 5.0)
    np.testing.assert_array_equal(chunked.mean("time").values,
                                  open_gridded(big, chunks={"time": 1})["gpp"].mean("time"))
    assert netcdf_time_chunk(tmp_path / "missing.nc") == 1
