"""``callmip export``: the Global view's static pages, pre-aggregated to the fixed grid.

The test archive is the app tests' tiny archive plus global runs of two models on a 1° grid
(finer than the export's 2° grid, so the maps are block-averaged) and one unreadable global run.
The site is written by the real command (a subprocess) and its pages opened from ``file://``
in chromium with the network blocked.
"""

from __future__ import annotations

import base64
import gzip
import html
import json
import re
import warnings
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import xarray as xr

from tests.appdata import build_app_archive
from tests.conftest import CHROMIUM
from tests.synthetic import write_garbage
from tests.test_export import _export, _open_offline, _plots, _wait_bokeh

GRID = 2.0  # dashboard.export.GLOBAL_GRID_DEG
LAT = np.arange(-89.5, 90.0, 1.0)
LON = np.arange(-179.5, 180.0, 1.0)
TIMES = pd.date_range("2001-01-01", periods=2, freq="MS")
BAD_RUN = "GAMMA.v1_global_1deg_monthly_2001-2001_Prior.nc"


def _write_run(folder: Path, model: str, stage: str, scale: float) -> None:
    """gpp (kgC m-2 s-1) and hfls (W m-2) varying with latitude, longitude and time; ocean NaN."""
    lat, lon = np.meshgrid(LAT, LON, indexing="ij")
    base = (1.0 + np.cos(np.deg2rad(lat))) * (1.5 + np.sin(np.deg2rad(lon)))
    ocean = (lon > 150) | (lat < -60)
    fields = {}
    for name, unit_scale in (("gpp", 1e-8), ("hfls", 20.0)):
        values = np.stack([base * scale * unit_scale * (t + 1) for t in range(TIMES.size)])
        values[:, ocean] = np.nan
        fields[name] = (("time", "lat", "lon"), values.astype("float32"),
                        {"units": "kgC m-2 s-1" if name == "gpp" else "W m-2"})
    ds = xr.Dataset(fields, coords={"time": TIMES, "lat": ("lat", LAT, {"units": "degrees_north"}),
                                    "lon": ("lon", LON, {"units": "degrees_east"})})
    ds["time"].encoding = {"units": "days since 2001-01-01", "calendar": "standard"}
    folder.mkdir(parents=True, exist_ok=True)
    ds.to_netcdf(folder / f"{model}.v1_global_1deg_monthly_2001-2001_{stage}.nc",
                 format="NETCDF4")


@pytest.fixture(scope="module")
def archive(tmp_path_factory) -> Path:
    root = build_app_archive(tmp_path_factory.mktemp("export-global"))
    for i, model in enumerate(("ALPHA", "BETA")):
        for stage, scale in (("Prior", 1.0), ("Posterior", 1.3)):
            _write_run(root / "global", model, stage, scale * (1 + i))
    write_garbage(root / "global" / BAD_RUN)  # named as a global run, not a NetCDF file
    return root


@pytest.fixture(scope="module")
def site(archive, tmp_path_factory) -> Path:
    base = tmp_path_factory.mktemp("export-global-site")
    result = _export(archive, base / "site", base / "cache", "--no-figures")
    assert result.returncode == 0, result.stderr
    return base / "site"


@pytest.fixture(scope="module")
def service(archive, tmp_path_factory):
    import os

    os.environ.setdefault("CALLMIP_CACHE_DIR", str(tmp_path_factory.mktemp("cache")))
    from dashboard.service import DataService

    return DataService(archive, cache_mb=64)


def _embedded(page: Path) -> tuple[list[np.ndarray], str]:
    """Every 2-D array (image frame) embedded in a saved Bokeh page, and its text."""
    text = page.read_text()
    found: list[np.ndarray] = []
    strings: list[str] = []

    def walk(obj) -> None:
        if isinstance(obj, str):
            strings.append(html.unescape(html.unescape(obj)))
        elif isinstance(obj, dict):
            if obj.get("type") == "ndarray" and len(obj.get("shape", [])) == 2:
                raw = base64.b64decode(obj["array"]["data"])
                if raw[:2] == b"\x1f\x8b":  # Bokeh gzips large arrays
                    raw = gzip.decompress(raw)
                found.append(np.frombuffer(raw, dtype=obj["dtype"]).reshape(obj["shape"]))
            for value in obj.values():
                walk(value)
        elif isinstance(obj, list):
            for value in obj:
                walk(value)

    for doc in re.findall(r'<script type="application/json" id="[^"]+">\s*(.*?)\s*</script>',
                          text, re.S):
        walk(json.loads(doc))
    return found, "\n".join(strings)


def _images(page: Path) -> list[np.ndarray]:
    return _embedded(page)[0]


def _pages(service) -> dict[str, str]:
    from dashboard import global_queries as gq
    from dashboard.export_global import page_path

    return {v: page_path(i, v) for i, v in enumerate(gq.global_variables(service))}


def test_one_page_per_global_variable_with_maps_on_the_fixed_grid(site, service):
    pages = _pages(service)
    assert set(pages) == {"gpp", "Qle"}
    index = (site / "index.html").read_text()
    for variable, path in pages.items():
        assert (site / path).is_file(), path
        assert f'href="{path}"' in index
        images, text = _embedded(site / path)
        # prior and posterior means, 2 differences, 2 spreads, 1 reduction
        assert len(images) == 7, [i.shape for i in images]
        for image in images:
            assert image.size <= (180 / GRID) * (360 / GRID), image.shape
        assert "maps block-averaged from the 1° grid of the runs to 2°" in text
        assert f"Global: {variable}" in text
    gpp = _embedded(site / pages["gpp"])[1]
    assert "PgC yr" in gpp  # the land total of a carbon flux
    assert "Multi-model mean (2 models), Prior" in gpp
    assert "2 models;" in gpp and "GAMMA" not in gpp.replace(f"not used: {BAD_RUN}", "")


def test_an_exported_map_is_the_query_result_on_the_fixed_grid(site, service):
    from dashboard import global_queries as gq
    from dashboard.export import ExportContext

    context = ExportContext(service=service, look=None, sites=[], variables=[], grid_deg=GRID)
    prior = gq.layer_maps(service, "gpp", "Prior", "mean", "mean", [])[0]
    native = xr.DataArray(prior.values, coords={"lat": prior.lat, "lon": prior.lon},
                          dims=("lat", "lon"))
    expected = context.to_fixed_grid(native).transpose("lat", "lon").values
    assert expected.shape == (90, 180)
    # Independently: the 2×2 block mean of the query's 1° map, NaN (ocean) cells left out.
    blocks = np.asarray(prior.values, dtype=float).reshape(90, 2, 180, 2)
    with warnings.catch_warnings():  # all-ocean boxes: mean of an empty slice
        warnings.simplefilter("ignore", RuntimeWarning)
        np.testing.assert_allclose(expected, np.nanmean(blocks, axis=(1, 3)), rtol=1e-6)
    images = _images(site / _pages(service)["gpp"])
    matches = [i for i in images if i.shape == expected.shape
               and np.allclose(i, expected, rtol=1e-5, equal_nan=True)]
    assert len(matches) == 1  # the prior mean, and no other map
    cell = (45, 100)  # 1°N, 21°E: the mean of the four 1° cells around it, in gC m-2 d-1
    value = float(np.mean(blocks[cell[0], :, cell[1], :]))
    assert matches[0][cell] == pytest.approx(value, rel=1e-5)


def test_the_bad_global_run_is_named_in_the_log_and_on_the_pages(site, service):
    log = (site / "export-log.txt").read_text()
    assert f"global: global run not used: {BAD_RUN}" in log
    for path in _pages(service).values():
        assert f"Global run not used: {BAD_RUN}" in _embedded(site / path)[1]


def test_the_pages_bytes_do_not_depend_on_the_process(archive, site, service, tmp_path):
    again = _export(archive, tmp_path / "again", tmp_path / "cache", "--no-figures", "--no-cache")
    assert again.returncode == 0, again.stderr
    for path in _pages(service).values():
        assert (tmp_path / "again" / path).read_bytes() == (site / path).read_bytes(), path


@pytest.mark.ui
@pytest.mark.skipif(not Path(CHROMIUM).exists(), reason=f"no chromium at {CHROMIUM}")
def test_the_global_page_opens_from_file_with_the_network_blocked(site, service, page):
    path = _pages(service)["gpp"]
    errors, blocked = _open_offline(page, (site / path).as_uri())
    _wait_bokeh(page)
    drawn = _plots(page)
    assert not errors, errors
    assert not blocked, blocked
    for title in ("Multi-model mean (2 models), Prior", "Multi-model mean (2 models), Posterior",
                  "ALPHA.v1 posterior − prior", "Spread reduction", "Zonal mean",
                  "Global land total of gpp"):
        assert any(t.startswith(title) for t in drawn["titles"]), (title, drawn["titles"])
    page.screenshot(path=str(site.parent / "global.png"), full_page=True)
