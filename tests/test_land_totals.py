"""Global totals over land: cells weighted by cell area × land fraction (issue #10)."""

from __future__ import annotations

import math

import numpy as np
import pandas as pd
import pytest
import xarray as xr

from dashboard.metrics import cell_area, global_total
from dashboard.metrics.global_stats import land_area, land_fraction
from loaders.geography import land_mask

R = 6.371e6
#: Earth's land area (Antarctica included), m².
EARTH_LAND_AREA = 1.49e14
SECONDS_PER_YEAR = 365.25 * 86400


def grid(res: float) -> tuple[np.ndarray, np.ndarray]:
    return np.arange(-90 + res / 2, 90, res), np.arange(-180 + res / 2, 180, res)


def field(value, lat, lon, times=2, units="kgC m-2 s-1") -> xr.DataArray:
    data = np.broadcast_to(value, (times, lat.size, lon.size)).astype(float).copy()
    return xr.DataArray(data, dims=("time", "lat", "lon"),
                        coords={"time": pd.date_range("2001-01-01", periods=times, freq="MS"),
                                "lat": lat, "lon": lon},
                        attrs={"units": units}, name="nep")


@pytest.mark.parametrize("res", [1.0, 2.0])
def test_constant_flux_times_land_area(res):
    lat, lon = grid(res)
    c = 1e-8  # kgC m-2 s-1 per m² of land
    total = global_total(field(c, lat, lon))
    assert total.attrs["units"] == "PgC yr-1"
    assert total.attrs["land_fraction_source"] == "Natural Earth 1:110m land mask"
    land = float(total[0]) * 1e12 / SECONDS_PER_YEAR / c  # m² of land counted
    print(f"\n{res}° land area from the mask: {land:.4e} m² "
          f"({land / EARTH_LAND_AREA - 1:+.2%} vs 1.49e14)")
    assert land == pytest.approx(EARTH_LAND_AREA, rel=0.03)
    # exactly the area of the cells whose centre is on land
    by_hand = (cell_area(lat, lon).values * land_mask(lat, lon)).sum()
    assert land == pytest.approx(by_hand, rel=1e-12)
    # far below the whole sphere the old rule counted
    assert land < 0.35 * 4 * math.pi * R**2


def test_land_mean_of_other_variables():
    lat, lon = grid(2.0)
    mask = land_mask(lat, lon)
    values = np.where(mask, 40.0, 1000.0)  # ocean cells hold nonsense: they must not count
    mean = global_total(field(values, lat, lon, units="W m-2"))
    np.testing.assert_allclose(mean.values, 40.0)
    assert mean.attrs["units"] == "W m-2"


def test_provided_land_fraction_in_percent_is_used_before_the_mask():
    lat, lon = grid(2.0)
    rng = np.random.default_rng(0)
    pct = rng.uniform(0, 100, (lat.size, lon.size))
    pct[rng.random(pct.shape) < 0.5] = np.nan  # ocean as missing values
    # stored 0..360 as many model files are: matched to the run's -180..180 cells
    lon360 = lon % 360
    order = np.argsort(lon360)
    sftlf = xr.DataArray(pct[:, order], dims=("lat", "lon"),
                         coords={"lat": lat, "lon": lon360[order]},
                         attrs={"units": "%"}, name="sftlf")
    ds = xr.Dataset({"sftlf": sftlf})
    c = 2e-9
    total = global_total(field(c, lat, lon), land=ds)
    expected = (c * cell_area(lat, lon).values * np.nan_to_num(pct) / 100).sum()
    np.testing.assert_allclose(total.values, expected * SECONDS_PER_YEAR / 1e12, rtol=1e-12)
    assert total.attrs["land_fraction_source"] == "sftlf"
    assert not np.allclose(total.values, global_total(field(c, lat, lon)).values, rtol=0.05)


@pytest.mark.parametrize("name", ["landfrac", "landmask", "sftlf"])
def test_land_fraction_coordinate_in_fraction_units_is_detected(name):
    lat, lon = grid(10.0)
    frac = np.zeros((lat.size, lon.size))
    frac[5, 7] = 0.3 if name != "landmask" else 1  # one coastal cell, 30 % land
    da = field(1e-8, lat, lon).assign_coords({name: (("lat", "lon"), frac)})
    total = global_total(da, per="second")
    assert total.attrs["land_fraction_source"] == name
    expected = 1e-8 * float(cell_area(lat, lon)[5, 7]) * frac[5, 7] / 1e12
    np.testing.assert_allclose(total.values, expected, rtol=1e-12)


def test_percent_detected_without_units():
    lat, lon = grid(30.0)
    pct = np.full((lat.size, lon.size), 50.0)
    got = land_fraction(field(1.0, lat, lon),
                        xr.DataArray(pct, dims=("lat", "lon"), coords={"lat": lat, "lon": lon}))
    np.testing.assert_allclose(got.values, 0.5)
    area = land_area(field(1.0, lat, lon), 1.0)
    np.testing.assert_allclose(area.values, cell_area(lat, lon).values)


def test_land_fraction_on_another_grid_is_an_error():
    lat, lon = grid(2.0)
    lat1, lon1 = grid(1.0)
    other = xr.Dataset({"sftlf": (("lat", "lon"), np.ones((lat1.size, lon1.size)))},
                       coords={"lat": lat1, "lon": lon1})
    with pytest.raises(ValueError, match="not on the run's grid"):
        global_total(field(1.0, lat, lon), land=other)


def test_land_total_stays_lazy():
    pytest.importorskip("dask")
    lat, lon = grid(10.0)
    da = field(1e-8, lat, lon, times=4).chunk({"time": 1})
    total = global_total(da)
    assert total.chunks is not None
    eager = global_total(field(1e-8, lat, lon, times=4))
    np.testing.assert_allclose(total.compute().values, eager.values, rtol=1e-12)
