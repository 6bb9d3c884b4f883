"""Global statistics: cell areas, totals, zonal means, differences and spread (lazy with dask)."""

from __future__ import annotations

import math

import numpy as np
import pandas as pd
import pytest
import xarray as xr

from dashboard.metrics import (
    cell_area,
    cell_spread,
    cell_spread_reduction,
    global_total,
    posterior_minus_prior,
    zonal_mean,
)

R = 6.371e6


def grid(res: float) -> tuple[np.ndarray, np.ndarray]:
    lat = np.arange(-90 + res / 2, 90, res)
    lon = np.arange(-180 + res / 2, 180, res)
    return lat, lon


def field(values, lat, lon, times=3, units="kgC m-2 s-1") -> xr.DataArray:
    data = np.broadcast_to(values, (times, lat.size, lon.size)).astype(float).copy()
    return xr.DataArray(data, dims=("time", "lat", "lon"),
                        coords={"time": pd.date_range("2001-01-01", periods=times, freq="MS"),
                                "lat": lat, "lon": lon},
                        attrs={"units": units}, name="nep")


@pytest.mark.parametrize("res", [2.0, 0.5, 7.5])
def test_cell_area_sums_to_sphere(res):
    lat, lon = grid(res)
    area = cell_area(lat, lon)
    assert area.dims == ("lat", "lon") and area.shape == (lat.size, lon.size)
    assert float(area.sum()) == pytest.approx(4 * math.pi * R**2, rel=1e-12)
    # one cell by hand: R^2 * dlon * (sin(lat2) - sin(lat1))
    i = lat.size // 3
    lat1, lat2 = math.radians(lat[i] - res / 2), math.radians(lat[i] + res / 2)
    assert float(area[i, 0]) == pytest.approx(R**2 * math.radians(res)
                                              * (math.sin(lat2) - math.sin(lat1)))


def test_cell_area_clips_polar_cells():
    # centres ON the poles (91 points): the outer bounds would be +-91 without clipping
    lat = np.linspace(-90, 90, 91)
    lon = np.arange(0, 360, 2.0)
    area = cell_area(lat, lon)
    assert float(area.sum()) == pytest.approx(4 * math.pi * R**2, rel=1e-12)
    # the polar cap cell spans 89..90 degrees
    assert float(area[-1, 0]) == pytest.approx(
        R**2 * math.radians(2.0) * (1 - math.sin(math.radians(89.0))))


def test_global_total_of_constant_field():
    # land=1.0: every cell is all land, so the total covers the whole sphere (the land
    # weighting itself is tested in test_land_totals.py)
    lat, lon = grid(2.0)
    c = 1e-8  # kgC m-2 s-1
    total = global_total(field(c, lat, lon), land=1.0)
    expected = c * 4 * math.pi * R**2 * 365.25 * 86400 / 1e12  # PgC yr-1
    assert total.attrs["units"] == "PgC yr-1"
    np.testing.assert_allclose(total.values, expected, rtol=1e-12)
    # NaN cells are left out
    masked = field(c, lat, lon)
    masked[:, lat < 0, :] = np.nan
    np.testing.assert_allclose(global_total(masked, land=1.0).values, expected / 2, rtol=1e-12)
    # other variables: area-weighted mean
    energy = field(40.0, lat, lon, units="W m-2")
    mean = global_total(energy)
    assert mean.attrs["units"] == "W m-2"
    np.testing.assert_allclose(mean.values, 40.0)


def test_area_weighted_mean_weights_by_latitude_band():
    lat, lon = np.array([-45.0, 45.0]), np.array([-90.0, 90.0])
    da = field(np.array([[1.0, 1.0], [3.0, 3.0]]), lat, lon, times=1, units="K")
    # the two bands have equal area on this 2x2 grid -> mean 2
    assert float(global_total(da, land=1.0)[0]) == pytest.approx(2.0)
    lat3 = np.array([-60.0, 0.0, 60.0])
    da3 = field(np.array([[0.0], [1.0], [0.0]]) * np.ones((3, 2)), lat3, lon, times=1, units="K")
    band = np.array([math.sin(math.radians(b)) for b in (-90, -30, 30, 90)])
    w = np.diff(band)
    assert float(global_total(da3, land=1.0)[0]) == pytest.approx(w[1] / w.sum())


def test_zonal_mean_and_difference():
    lat, lon = grid(30.0)
    rng = np.random.default_rng(0)
    prior = field(rng.normal(size=(lat.size, lon.size)), lat, lon)
    post = prior + 2.0
    post = post.isel(time=slice(1, None))  # a shorter posterior: common times only
    diff = posterior_minus_prior(prior, post)
    assert diff.sizes["time"] == 2
    np.testing.assert_allclose(diff.values, 2.0)
    zm = zonal_mean(prior)
    np.testing.assert_allclose(zm.values, prior.values.mean(axis=2))


def test_zonal_mean_of_a_map_in_memory_equals_the_lazy_path():
    """The numpy path of a (lat, lon) map: widths weight the mean, NaN cells are skipped, a
    latitude without data stays NaN, like xarray's weighted mean on a lazy array."""
    pytest.importorskip("dask")
    lat = np.array([-45.0, 0.0, 45.0])
    lon = np.array([-150.0, -90.0, 0.0, 120.0])  # irregular: cell widths differ
    values = np.array([[1.0, 2.0, np.nan, 4.0], [np.nan] * 4, [5.0, np.nan, 7.0, 8.0]])
    da = xr.DataArray(values, dims=("lat", "lon"), coords={"lat": lat, "lon": lon},
                      name="gpp", attrs={"units": "kg m-2 s-1"})
    fast = zonal_mean(da)
    lazy = zonal_mean(da.chunk()).compute()
    np.testing.assert_allclose(fast.values, lazy.values, equal_nan=True)
    assert np.isnan(fast.values[1]) and fast.attrs == da.attrs and fast.name == "gpp"
    edges = np.array([-180.0, -120.0, -45.0, 60.0, 180.0])
    widths = np.diff(edges)
    expected = (1 * widths[0] + 2 * widths[1] + 4 * widths[3]) / (widths[[0, 1, 3]].sum())
    assert fast.values[0] == pytest.approx(expected)


def test_cell_spread_lazy_with_dask():
    pytest.importorskip("dask")
    lat, lon = grid(30.0)
    rng = np.random.default_rng(1)
    raw = {m: rng.normal(size=(4, lat.size, lon.size)) for m in ("A", "B", "C")}
    runs = {m: field(v, lat, lon, times=4).chunk({"time": 1}) for m, v in raw.items()}
    spread = cell_spread(runs)
    assert spread.chunks is not None  # still lazy: nothing computed yet
    expected = np.std(np.stack([raw[m] for m in ("A", "B", "C")]), axis=0)
    np.testing.assert_allclose(spread.compute().values, expected)
    assert spread.attrs["n_models"] == 3
    total = global_total(runs["A"], land=1.0)
    assert total.chunks is not None
    area = cell_area(lat, lon).values
    np.testing.assert_allclose(total.compute().values,
                               (raw["A"] * area).sum(axis=(1, 2)) * 365.25 * 86400 / 1e12)


def test_cell_spread_reduction():
    lat, lon = grid(60.0)
    priors = {"A": field(2.0, lat, lon), "B": field(-2.0, lat, lon), "C": field(9.0, lat, lon)}
    posts = {"A": field(0.5, lat, lon), "B": field(-0.5, lat, lon)}
    red = cell_spread_reduction(priors, posts)
    assert red.dims == ("lat", "lon") and red.attrs["n_models"] == 2
    np.testing.assert_allclose(red.values, 1 - 0.5 / 2.0)
    one = cell_spread({"A": field(1.0, lat, lon)})
    assert one.attrs["insufficient"] and bool(one.isnull().all())
