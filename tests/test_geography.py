"""Offline land outline and land mask (loaders.geography)."""

from __future__ import annotations

import json
import socket
import time

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from loaders import geography
from loaders.geography import (
    LandOutlineError,
    land_mask,
    land_multipolygons,
    land_outline_paths,
    land_polygons,
)
from loaders.sites import asset_path, phase1b_sites


def _is_land(lon: float, lat: float) -> bool:
    return bool(land_mask(np.array([lat]), np.array([lon]))[0, 0])


def _clear_caches() -> None:
    for cached in (
        geography._polygons,
        geography._outline,
        geography._land_edges,
        geography._cached_mask,
    ):
        cached.cache_clear()


# --------------------------------------------------------------------------- the asset
def test_outline_loads_offline(monkeypatch):
    def no_network(*args, **kwargs):
        raise AssertionError("the land outline must not touch the network")

    monkeypatch.setattr(socket.socket, "connect", no_network)
    monkeypatch.setattr(socket, "create_connection", no_network)
    _clear_caches()
    rings = land_polygons()
    assert len(rings) > 100  # Natural Earth 110m land has ~127 polygons
    lon, lat = land_outline_paths()
    assert lon.size > 4000
    _clear_caches()


def test_asset_is_compact_and_attributed():
    path = asset_path(geography.LAND_ASSET)
    assert path.stat().st_size < 500_000
    document = json.loads(path.read_text(encoding="utf-8"))
    attribution = (path.parent / "ATTRIBUTION.md").read_text(encoding="utf-8")
    assert "Natural Earth" in attribution
    assert document["source"]["sha256"] in attribution
    assert "world-atlas" in attribution


def test_rings_closed_and_within_bounds():
    rings = land_polygons()
    for ring in rings:
        assert ring.ndim == 2 and ring.shape[1] == 2 and len(ring) >= 4
        np.testing.assert_array_equal(ring[0], ring[-1])
        assert np.all(np.isfinite(ring))
        assert np.all((ring[:, 0] >= -180) & (ring[:, 0] <= 180))
        assert np.all((ring[:, 1] >= -90) & (ring[:, 1] <= 90))
        # 0.01 degree precision
        np.testing.assert_allclose(ring, np.round(ring, 2), atol=1e-9)
    # both hemispheres and the whole longitude range are covered
    allpts = np.vstack(rings)
    assert allpts[:, 0].min() == -180 and allpts[:, 0].max() == 180
    assert allpts[:, 1].min() < -80 and allpts[:, 1].max() > 80


def test_rings_are_read_only_and_multipolygons_consistent():
    rings = land_polygons()
    with pytest.raises(ValueError):
        rings[0][0, 0] = 0.0
    polygons = land_multipolygons()
    assert sum(len(p) for p in polygons) == len(rings)
    holes = [ring for polygon in polygons for ring in polygon[1:]]
    assert holes, "the Caspian Sea is a hole in the land"

    def shoelace(ring):
        x, y = ring[:, 0], ring[:, 1]
        return 0.5 * np.sum(x[:-1] * y[1:] - x[1:] * y[:-1])

    assert all(shoelace(p[0]) > 0 for p in polygons)  # exteriors counter-clockwise
    assert all(shoelace(h) < 0 for h in holes)  # holes clockwise


def test_outline_paths_shape_and_no_frame_segments():
    lon, lat = land_outline_paths()
    assert lon.shape == lat.shape and lon.ndim == 1
    assert np.array_equal(np.isnan(lon), np.isnan(lat))
    assert not np.isnan(lon[0]) and not np.isnan(lon[-1])
    gaps = np.isnan(lon)
    assert not np.any(gaps[1:] & gaps[:-1])  # single NaN separators
    assert np.nanmin(lon) >= -180 and np.nanmax(lon) <= 180
    # the closure of Antarctica along the South Pole is not drawn as a coastline
    assert np.nanmin(lat) > -89
    # no segment runs along the antimeridian cut
    a_lon, b_lon = lon[:-1], lon[1:]
    on_cut = (np.abs(a_lon) == 180) & (a_lon == b_lon)
    assert not on_cut.any()
    # a fresh copy each time
    lon[:] = 0
    assert not np.all(land_outline_paths()[0][~gaps] == 0)


# --------------------------------------------------------------------------- known places
@pytest.mark.parametrize(
    ("name", "lon", "lat"),
    [
        ("Paris", 2.35, 48.85),
        ("Manaus", -60.0, -3.1),
        ("Alice Springs", 133.9, -23.7),
        ("Denver", -105.0, 39.7),
        ("Kinshasa", 15.3, -4.3),
        ("Novosibirsk", 82.9, 55.0),
        ("Chukotka east of 180", -179.5, 67.0),
        ("Antarctic plateau", 100.0, -80.0),
        ("South Pole", 0.0, -90.0),
    ],
)
def test_known_land(name, lon, lat):
    assert _is_land(lon, lat), name


@pytest.mark.parametrize(
    ("name", "lon", "lat"),
    [
        ("mid Pacific", -150.0, 0.0),
        ("mid Atlantic", -30.0, 30.0),
        ("Southern Ocean", 0.0, -60.0),
        ("Indian Ocean", 80.0, -20.0),
        ("North Pole", 0.0, 90.0),
        ("Caspian Sea", 50.5, 42.0),
        ("Pacific near the antimeridian", 180.0, 0.0),
    ],
)
def test_known_ocean(name, lon, lat):
    assert not _is_land(lon, lat), name


def test_land_fraction_of_2_degree_grid():
    lat = np.arange(-89.0, 90.0, 2.0)
    lon = np.arange(-179.0, 180.0, 2.0)
    mask = land_mask(lat, lon)
    assert mask.shape == (90, 180) and mask.dtype == bool
    assert 0.25 < mask.mean() < 0.35
    # weighted by cell area it must match Earth's land fraction (~29 %, Antarctica included)
    weights = np.cos(np.radians(lat))[:, None] * np.ones_like(mask, dtype=float)
    assert 0.27 < np.sum(mask * weights) / weights.sum() < 0.31


def test_land_mask_is_fast_and_cached():
    _clear_caches()
    geography.land_polygons()  # reading the asset is not part of the mask timing
    lat = np.arange(-89.0, 90.0, 2.0)
    lon = np.arange(-179.0, 180.0, 2.0)
    start = time.perf_counter()
    first = land_mask(lat, lon)
    assert time.perf_counter() - start < 2.0
    first[:] = False  # caller's copy: the cache must not change
    second = land_mask(lat, lon)
    assert second.any()
    assert geography._cached_mask.cache_info().hits >= 1


def test_longitude_conventions_agree():
    lat = np.arange(-88.0, 90.0, 4.0)
    lon180 = np.arange(-178.0, 180.0, 4.0)
    lon360 = np.arange(2.0, 360.0, 4.0)
    m180 = land_mask(lat, lon180)
    m360 = land_mask(lat, lon360)
    # lon360[j] == lon180[(j + 45) % 90]
    np.testing.assert_array_equal(m360, m180[:, (np.arange(90) + 45) % 90])


def test_descending_latitudes_and_nan():
    lat = np.array([48.85, np.nan, -3.1, 95.0])
    lon = np.array([2.35, -60.0, np.nan])
    mask = land_mask(lat, lon)
    assert mask.shape == (4, 3)
    assert mask[0, 0]  # Paris
    assert mask[2, 1]  # Manaus
    assert not mask[1].any() and not mask[3].any() and not mask[:, 2].any()


def test_land_mask_rejects_2d_and_non_numeric():
    with pytest.raises(ValueError, match="lat must be 1-D"):
        land_mask(np.zeros((2, 2)), np.zeros(3))
    with pytest.raises(ValueError, match="lon must be numeric"):
        land_mask(np.zeros(2), np.array(["a", "b"]))


def test_every_phase1b_site_on_or_near_land():
    offsets = np.arange(-1.0, 1.0001, 0.1)
    near = (offsets[:, None] ** 2 + offsets[None, :] ** 2) <= 1.0 + 1e-9
    far = []
    for site in phase1b_sites().itertuples():
        mask = land_mask(site.lat + offsets, site.lon + offsets)
        if not (mask & near).any():
            far.append(site.site_id)
    assert not far, f"sites more than 1 degree from land: {far}"


def test_most_sites_strictly_on_land():
    sites = phase1b_sites()
    on_land = [_is_land(s.lon, s.lat) for s in sites.itertuples()]
    # at 1:110m a few coastal / island sites (e.g. Sardinia) may fall just offshore
    assert sum(on_land) >= len(sites) - 3


# --------------------------------------------------------------------------- algorithm
def _naive_even_odd(rings, x, y):
    inside = False
    for ring in rings:
        x1, y1, x2, y2 = ring[:-1, 0], ring[:-1, 1], ring[1:, 0], ring[1:, 1]
        cross = (y1 > y) != (y2 > y)
        with np.errstate(divide="ignore", invalid="ignore"):
            xi = x1 + (y - y1) * (x2 - x1) / (y2 - y1)
        inside ^= bool(np.count_nonzero(cross & (xi > x)) % 2)
    return inside


def _square(x0, y0, x1, y1, ccw=True):
    ring = np.array([[x0, y0], [x1, y0], [x1, y1], [x0, y1], [x0, y0]], dtype=float)
    return ring if ccw else ring[::-1]


@settings(max_examples=60, deadline=None)
@given(
    st.lists(st.floats(-10, 10, allow_nan=False), min_size=1, max_size=8),
    st.lists(st.floats(-10, 10, allow_nan=False), min_size=1, max_size=8),
)
def test_even_odd_grid_square_with_hole(xs, ys):
    # outer square [-5, 5]^2, hole [-2, 2]^2 (clockwise), plus an L-shaped concave island
    outer = _square(-5, -5, 5, 5)
    hole = _square(-2, -2, 2, 2, ccw=False)
    ell = np.array([[6, -9], [9, -9], [9, -8], [7, -8], [7, -6], [6, -6], [6, -9]], dtype=float)
    edges = geography._edges([outer, hole, ell])
    lat, lon = np.array(ys), np.array(xs)
    mask = geography._even_odd_grid(edges, lat, lon)
    for i, y in enumerate(ys):
        for j, x in enumerate(xs):
            if any(abs(v) in (2, 5) for v in (x, y)) or x in (6, 7, 9) or y in (-9, -8, -6):
                continue  # exactly on a boundary: either answer is fine
            in_square = -5 < x < 5 and -5 < y < 5 and not (-2 < x < 2 and -2 < y < 2)
            in_ell = (6 < x < 9 and -9 < y < -8) or (6 < x < 7 and -8 <= y < -6)
            assert mask[i, j] == (in_square or in_ell), (x, y)


def test_grid_mask_matches_pointwise_even_odd_on_real_outline():
    rng = np.random.default_rng(20240611)
    rings = land_polygons()
    lat = rng.uniform(-89.5, 89.5, 25)
    lon = rng.uniform(-180, 180, 12)
    mask = land_mask(lat, lon)
    for i, y in enumerate(lat):
        for j, x in enumerate(lon):
            assert mask[i, j] == _naive_even_odd(rings, x, y), (x, y)


# --------------------------------------------------------------------------- bad assets
def _write(tmp_path, name, text):
    path = tmp_path / name
    path.write_text(text, encoding="utf-8")
    return path


def test_missing_asset_names_the_file(tmp_path):
    path = tmp_path / "nowhere.json"
    with pytest.raises(LandOutlineError, match="nowhere.json"):
        geography._read_polygons(path)


@pytest.mark.parametrize(
    ("text", "problem"),
    [
        ("{not json", "not valid JSON"),
        ('{"format": "geojson", "polygons": []}', "not a land outline"),
        ('{"format": "callmip-land-outline", "polygons": []}', "no polygons"),
        ('{"format": "callmip-land-outline", "polygons": [[[[0, 0], [1, 0]]]]}', ">= 3"),
        ('{"format": "callmip-land-outline", "polygons": [[[[0, 0], [1, 0], [0, 0]]]]}', "corners"),
        (
            '{"format": "callmip-land-outline", "polygons": '
            '[[[[0, 0], [200, 0], [1, 1], [0, 0]]]]}',
            "leaves",
        ),
        ('{"format": "callmip-land-outline", "polygons": [[[["a", 0]]]]}', "not numeric"),
    ],
)
def test_corrupt_asset_gives_clear_error(tmp_path, text, problem):
    path = _write(tmp_path, "land_bad.json", text)
    with pytest.raises(LandOutlineError) as info:
        geography._read_polygons(path)
    assert "land_bad.json" in str(info.value)
    assert problem in str(info.value)


def test_open_ring_is_closed_on_read(tmp_path):
    text = '{"format": "callmip-land-outline", "polygons": [[[[0, 0], [2, 0], [2, 2], [0, 2]]]]}'
    (ring,) = geography._read_polygons(_write(tmp_path, "open.json", text))[0]
    assert len(ring) == 5
    np.testing.assert_array_equal(ring[0], ring[-1])


# --------------------------------------------------------------------------- build script
@pytest.fixture(scope="module")
def builder():
    """The maintainer script assets/build_land_outline.py, imported (never run) for its helpers."""
    import importlib.util
    from pathlib import Path

    path = Path(__file__).resolve().parent.parent / "assets" / "build_land_outline.py"
    if not path.exists():
        pytest.skip("build script not in this checkout")
    spec = importlib.util.spec_from_file_location("build_land_outline", path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_builder_decodes_quantized_delta_arcs(builder):
    # transform: x = q * 0.5 - 10, y = q * 0.25 + 20; arc 0 goes (0,0)->(4,0)->(4,4) in q units,
    # arc 1 goes (0,0)->(0,4)->(4,4); the ring is arc 0 then arc 1 reversed (~1 == -2)
    topology = {
        "type": "Topology",
        "transform": {"scale": [0.5, 0.25], "translate": [-10, 20]},
        "arcs": [[[0, 0], [4, 0], [0, 4]], [[0, 0], [0, 4], [4, 0]]],
        "objects": {"land": {"type": "GeometryCollection",
                             "geometries": [{"type": "Polygon", "arcs": [[0, -2]]}]}},
    }
    (polygon,) = builder.topology_polygons(topology, "land")
    (ring,) = polygon
    expected = [[-10, 20], [-8, 20], [-8, 21], [-10, 21], [-10, 20]]
    np.testing.assert_allclose(ring, expected)


def test_builder_cuts_antimeridian_and_closes_pole(builder):
    # a 4x2 degree box straddling 180 (stored as spherical lon in [-180, 180])
    box = np.array([[178, 0], [-178, 0], [-178, 2], [178, 2], [178, 0]], dtype=float)
    pieces = builder.split_at_antimeridian(builder.unwrap_ring(box))
    assert len(pieces) == 2
    areas = sorted(abs(builder.signed_area(p[:-1])) for p in pieces)
    np.testing.assert_allclose(areas, [4.0, 4.0])
    for piece in pieces:
        assert piece[:, 0].min() >= -180 and piece[:, 0].max() <= 180
    # a ring going once around the South Pole at -80 becomes a polygon down to -90
    lon = np.linspace(-180, 170, 36)
    ring = np.column_stack([np.append(lon, -180), np.full(37, -80.0)])
    (cap,) = builder.split_at_antimeridian(builder.unwrap_ring(ring))
    assert cap[:, 1].min() == -90
    np.testing.assert_allclose(abs(builder.signed_area(cap[:-1])), 360 * 10)
