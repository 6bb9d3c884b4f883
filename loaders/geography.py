"""Offline land outline and land mask from the shipped Natural Earth 1:110m land polygons.

The outline lives in ``assets/land_110m.json`` (built by ``assets/build_land_outline.py``; see
``assets/ATTRIBUTION.md``). Rings are lon/lat in degrees, closed, cut at the antimeridian and
inside [-180, 180] x [-90, 90]; polygons may have holes (the Caspian Sea), so areas are defined
by the even-odd rule. Nothing is read until a function is first called; results are cached.
Pure numpy: no plotting library is imported here.
"""

from __future__ import annotations

import json
from functools import lru_cache
from pathlib import Path

import numpy as np

from loaders.sites import asset_path

LAND_ASSET = "land_110m.json"
_FORMAT = "callmip-land-outline"
_EDGE_TOL = 1e-9


class LandOutlineError(RuntimeError):
    """The shipped land outline is missing or unreadable (the message names the file)."""


# --------------------------------------------------------------------------- reading
def _read_polygons(path: Path) -> list[list[np.ndarray]]:
    """Read and validate a land-outline JSON file.

    Parameters
    ----------
    path : pathlib.Path
        File in the ``callmip-land-outline`` format.

    Returns
    -------
    list of list of numpy.ndarray
        Polygons; each a list of closed (N, 2) lon/lat rings, exterior first. Read-only arrays.

    Raises
    ------
    LandOutlineError
        If the file cannot be read or does not hold valid rings.
    """
    try:
        document = json.loads(Path(path).read_text(encoding="utf-8"))
    except OSError as err:
        raise LandOutlineError(f"{path}: cannot read the land outline ({err.strerror})") from err
    except (UnicodeDecodeError, json.JSONDecodeError) as err:
        raise LandOutlineError(f"{path}: the land outline is not valid JSON ({err})") from err
    if not isinstance(document, dict) or document.get("format") != _FORMAT:
        raise LandOutlineError(f"{path}: not a land outline (expected format {_FORMAT!r})")
    raw_polygons = document.get("polygons")
    if not isinstance(raw_polygons, list) or not raw_polygons:
        raise LandOutlineError(f"{path}: the land outline has no polygons")
    polygons = []
    for i, raw_polygon in enumerate(raw_polygons):
        if not isinstance(raw_polygon, list) or not raw_polygon:
            raise LandOutlineError(f"{path}: polygon {i} is not a list of rings")
        rings = []
        for j, raw_ring in enumerate(raw_polygon):
            try:
                ring = np.asarray(raw_ring, dtype=float)
            except (TypeError, ValueError) as err:
                raise LandOutlineError(f"{path}: polygon {i} ring {j} is not numeric") from err
            if ring.ndim != 2 or ring.shape[1] != 2 or len(ring) < 3:
                raise LandOutlineError(
                    f"{path}: polygon {i} ring {j} is not a list of >= 3 [lon, lat] pairs"
                )
            if not np.all(np.isfinite(ring)):
                raise LandOutlineError(f"{path}: polygon {i} ring {j} has non-finite values")
            if np.any(np.abs(ring[:, 0]) > 180) or np.any(np.abs(ring[:, 1]) > 90):
                raise LandOutlineError(f"{path}: polygon {i} ring {j} leaves [-180,180]x[-90,90]")
            if np.any(ring[0] != ring[-1]):
                ring = np.vstack([ring, ring[:1]])
            if len(ring) < 4:
                raise LandOutlineError(f"{path}: polygon {i} ring {j} has fewer than 3 corners")
            ring.setflags(write=False)
            rings.append(ring)
        polygons.append(rings)
    return polygons


@lru_cache(maxsize=1)
def _polygons() -> tuple[tuple[np.ndarray, ...], ...]:
    try:
        path = asset_path(LAND_ASSET)
    except FileNotFoundError as err:
        raise LandOutlineError(f"the land outline {LAND_ASSET} is not installed ({err})") from err
    return tuple(tuple(rings) for rings in _read_polygons(path))


def land_multipolygons() -> list[list[np.ndarray]]:
    """Return the land polygons with their holes.

    Returns
    -------
    list of list of numpy.ndarray
        One list per polygon: the exterior ring (counter-clockwise) then its holes (clockwise),
        each a closed read-only (N, 2) array of lon, lat in degrees. Suits Bokeh
        ``multi_polygons``.

    Raises
    ------
    LandOutlineError
        If the shipped asset is missing or corrupt.
    """
    return [list(rings) for rings in _polygons()]


def land_polygons() -> list[np.ndarray]:
    """Return every land ring (exteriors and holes) as lon/lat arrays.

    Returns
    -------
    list of numpy.ndarray
        Closed, read-only (N, 2) arrays of lon, lat in degrees, inside [-180, 180] x [-90, 90].
        Land is where a point lies inside an odd number of rings (holes are rings too).

    Raises
    ------
    LandOutlineError
        If the shipped asset is missing or corrupt.
    """
    return [ring for rings in _polygons() for ring in rings]


# --------------------------------------------------------------------------- outline
def _on_frame(a: np.ndarray, b: np.ndarray) -> bool:
    """True if segment a-b runs along the map frame (the antimeridian cut or a pole closure)."""
    same_edge_lon = abs(abs(a[0]) - 180) < _EDGE_TOL and abs(abs(b[0]) - 180) < _EDGE_TOL
    same_edge_lat = abs(abs(a[1]) - 90) < _EDGE_TOL and abs(abs(b[1]) - 90) < _EDGE_TOL
    return (same_edge_lon and a[0] == b[0]) or (same_edge_lat and a[1] == b[1])


@lru_cache(maxsize=1)
def _outline() -> tuple[np.ndarray, np.ndarray]:
    pieces: list[np.ndarray] = []
    for ring in land_polygons():
        start = 0
        for k in range(len(ring) - 1):
            if _on_frame(ring[k], ring[k + 1]):
                if k + 1 - start >= 2:
                    pieces.append(ring[start : k + 1])
                start = k + 1
        if len(ring) - start >= 2:
            pieces.append(ring[start:])
    nan = np.full((1, 2), np.nan)
    joined = np.vstack([part for piece in pieces for part in (piece, nan)][:-1])
    lon, lat = joined[:, 0].copy(), joined[:, 1].copy()
    lon.setflags(write=False)
    lat.setflags(write=False)
    return lon, lat


def land_outline_paths() -> tuple[np.ndarray, np.ndarray]:
    """Return the coastlines as two arrays with NaN between separate lines.

    Segments that only follow the map frame (the cut at ±180° and Antarctica's closure along
    -90°) are left out, so only real coastlines are drawn.

    Returns
    -------
    lon, lat : numpy.ndarray
        1-D float arrays of equal length, NaN-separated; ready for a Bokeh ``line`` /
        ``multi_line`` or a HoloViews ``Path``/``Curve``. Fresh copies.

    Raises
    ------
    LandOutlineError
        If the shipped asset is missing or corrupt.
    """
    lon, lat = _outline()
    return lon.copy(), lat.copy()


# --------------------------------------------------------------------------- mask
def _edges(rings: list[np.ndarray]) -> np.ndarray:
    """All ring edges as an (M, 4) array x1, y1, x2, y2 without horizontal edges."""
    edges = np.vstack([np.column_stack([r[:-1], r[1:]]) for r in rings])
    return edges[edges[:, 1] != edges[:, 3]]


def _even_odd_grid(edges: np.ndarray, lat: np.ndarray, lon: np.ndarray) -> np.ndarray:
    """Even-odd point-in-polygon for every (lat, lon) grid point, one ray per latitude.

    Parameters
    ----------
    edges : numpy.ndarray
        (M, 4) x1, y1, x2, y2 of all ring edges.
    lat, lon : numpy.ndarray
        1-D coordinates of the grid points.

    Returns
    -------
    numpy.ndarray
        Boolean array (len(lat), len(lon)).
    """
    x1, y1, x2, y2 = edges.T
    mask = np.zeros((lat.size, lon.size), dtype=bool)
    slope = (x2 - x1) / (y2 - y1)
    for i, y in enumerate(lat):
        if not np.isfinite(y):
            continue
        crossing = (y1 > y) != (y2 > y)
        if not crossing.any():
            continue
        xs = np.sort(x1[crossing] + (y - y1[crossing]) * slope[crossing])
        # crossings strictly east of each point: count of xs > x
        east = xs.size - np.searchsorted(xs, lon, side="right")
        mask[i] = (east % 2 == 1) & np.isfinite(lon)
    return mask


@lru_cache(maxsize=1)
def _land_edges() -> np.ndarray:
    return _edges(land_polygons())


@lru_cache(maxsize=32)
def _cached_mask(lat_bytes: bytes, lon_bytes: bytes) -> np.ndarray:
    lat = np.frombuffer(lat_bytes, dtype=float)
    lon = np.frombuffer(lon_bytes, dtype=float)
    wrapped = (lon + 180.0) % 360.0 - 180.0  # 0..360 grids and any other period
    mask = _even_odd_grid(_land_edges(), lat, wrapped)
    mask.setflags(write=False)
    return mask


def land_mask(lat: np.ndarray, lon: np.ndarray) -> np.ndarray:
    """Return which cells of a regular lat x lon grid have their centre on land.

    Parameters
    ----------
    lat : numpy.ndarray
        1-D cell-centre latitudes in degrees (any order).
    lon : numpy.ndarray
        1-D cell-centre longitudes in degrees; any convention (-180..180, 0..360) is wrapped.

    Returns
    -------
    numpy.ndarray
        Boolean array of shape ``(lat.size, lon.size)``: True where the centre is inside the
        Natural Earth 1:110m land (even-odd rule, so the Caspian Sea is not land). NaN
        coordinates and latitudes beyond ±90 give False. A fresh copy; results are cached per
        grid.

    Raises
    ------
    ValueError
        If ``lat`` or ``lon`` is not 1-D numeric.
    LandOutlineError
        If the shipped asset is missing or corrupt.
    """
    arrays = []
    for name, values in (("lat", lat), ("lon", lon)):
        try:
            array = np.asarray(values, dtype=float)
        except (TypeError, ValueError) as err:
            raise ValueError(f"land_mask: {name} must be numeric degrees") from err
        if array.ndim != 1:
            raise ValueError(f"land_mask: {name} must be 1-D cell centres, got shape {array.shape}")
        arrays.append(np.ascontiguousarray(array))
    lat_arr, lon_arr = arrays
    return _cached_mask(lat_arr.tobytes(), lon_arr.tobytes()).copy()
