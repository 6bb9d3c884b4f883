"""Drawing global maps: datashader rasters, GeoViews projections, the offline land outline.

Plate Carrée maps are plain HoloViews ``Image`` elements in lon/lat. Other projections
(Robinson) are drawn with GeoViews, but the grid is **projected once** per (grid, projection):
:func:`projected_grid` maps every pixel of a regular grid in the projection's coordinates to its
nearest source cell, so a new time step is one numpy gather, not a re-projection
(``gv.project`` of a 0.5° grid took 1.1–1.4 s a frame here). The land outline and site markers
are projected once too. GeoViews then draws elements already in the map's CRS.

Cartopy never downloads: its feature downloaders are removed at import (the land outline comes
from ``assets/land_110m.json`` through :mod:`loaders.geography`), and no ``gf.COASTLINE``-style
feature is ever used.
"""

from __future__ import annotations

from functools import lru_cache, partial
from pathlib import Path

import cartopy  # noqa: I001  (configured before geoviews imports it)
import numpy as np

# No download can ever be triggered: no downloader is registered for any feature, and
# cartopy's pre-existing data folder is the project's assets folder (it holds no cartopy
# shapefiles: a feature lookup fails instead of downloading).
cartopy.config["pre_existing_data_dir"] = str(Path(__file__).resolve().parents[2] / "assets")
cartopy.config["downloaders"] = {}

import cartopy.crs as ccrs  # noqa: E402
import geoviews as gv  # noqa: E402
import holoviews as hv  # noqa: E402

#: Projections offered (the URL's ``projection``) → cartopy CRS factory.
_CRS = {"PlateCarree": ccrs.PlateCarree, "Robinson": ccrs.Robinson}
#: Axes of lon/lat maps: named apart from the Sites view's ``lon``/``lat`` so that Panel never
#: links the two views' axes (a view switch then left the other's ranges dangling).
LON = hv.Dimension("glon", label="longitude")
LAT = hv.Dimension("glat", label="latitude")
#: Most pixels of a projected grid along x (the raster refines on zoom up to this).
MAX_PROJECTED_WIDTH = 1440


@lru_cache(maxsize=4)
def crs(name: str) -> ccrs.Projection:
    """The cartopy CRS of a projection name (one instance per name)."""
    return _CRS[name]()


class ProjectedGrid:
    """A regular grid in a projection's coordinates and the source cell of each of its pixels.

    Parameters
    ----------
    lat, lon : numpy.ndarray
        Ascending cell centres of the source grid (degrees).
    projection : str
        A key of the projections offered (not ``PlateCarree``).
    """

    def __init__(self, lat: np.ndarray, lon: np.ndarray, projection: str) -> None:
        target = crs(projection)
        x0, x1 = target.x_limits
        y0, y1 = target.y_limits
        nx = int(min(MAX_PROJECTED_WIDTH, 2 * lon.size))
        ny = int(round(nx * (y1 - y0) / (x1 - x0)))
        self.x = np.linspace(x0, x1, nx, endpoint=False) + (x1 - x0) / nx / 2
        self.y = np.linspace(y0, y1, ny, endpoint=False) + (y1 - y0) / ny / 2
        xx, yy = np.meshgrid(self.x, self.y)
        with np.errstate(invalid="ignore"):
            lonlat = ccrs.PlateCarree().transform_points(target, xx, yy)
        plon, plat = lonlat[..., 0], lonlat[..., 1]
        # Pixels outside the map's outline come back as inf/nan, or at the wrong place: check
        # the round trip.
        with np.errstate(invalid="ignore"):
            back = target.transform_points(ccrs.PlateCarree(), plon, plat)
        ok = (np.isfinite(plon) & np.isfinite(plat)
              & (np.abs(back[..., 0] - xx) < 1.0) & (np.abs(back[..., 1] - yy) < 1.0))
        self.valid = ok
        self.ii = _nearest(lat, np.where(ok, plat, lat[0]))
        self.jj = _nearest(lon, np.where(ok, plon, lon[0]))
        self.projection = projection

    def gather(self, values: np.ndarray) -> np.ndarray:
        """``values`` (lat, lon) resampled onto the projected grid (NaN outside the globe)."""
        out = values[self.ii, self.jj]
        return np.where(self.valid, out, np.nan).astype("float32")

    def to_lonlat(self, x: float, y: float) -> tuple[float, float]:
        """Longitude and latitude of a point of the projected map (NaN outside the globe)."""
        with np.errstate(invalid="ignore"):
            lon, lat = ccrs.PlateCarree().transform_point(x, y, crs(self.projection))
        return float(lon), float(lat)


def _nearest(centres: np.ndarray, values: np.ndarray) -> np.ndarray:
    """Index of the nearest centre for every value (centres ascending)."""
    idx = np.clip(np.searchsorted(centres, values), 1, centres.size - 1)
    left = centres[idx - 1]
    right = centres[idx]
    return np.where(np.abs(values - left) <= np.abs(right - values), idx - 1, idx)


@lru_cache(maxsize=8)
def _projected(lat_key: tuple, lon_key: tuple, projection: str) -> ProjectedGrid:
    return ProjectedGrid(np.array(lat_key), np.array(lon_key), projection)


def projected_grid(lat: np.ndarray, lon: np.ndarray, projection: str) -> ProjectedGrid:
    """The :class:`ProjectedGrid` of a source grid, computed once per process."""
    return _projected(tuple(np.round(lat, 6)), tuple(np.round(lon, 6)), projection)


def project_lonlat(lon: np.ndarray, lat: np.ndarray, projection: str
                   ) -> tuple[np.ndarray, np.ndarray]:
    """Points (NaN separators kept) in a projection's coordinates."""
    lon = np.asarray(lon, dtype="float64")
    lat = np.asarray(lat, dtype="float64")
    if projection == "PlateCarree":
        return lon, lat
    with np.errstate(invalid="ignore"):
        xyz = crs(projection).transform_points(ccrs.PlateCarree(), lon, lat)
    x, y = xyz[..., 0], xyz[..., 1]
    bad = ~(np.isfinite(lon) & np.isfinite(lat))
    x[bad] = np.nan
    y[bad] = np.nan
    return x, y


@lru_cache(maxsize=4)
def _land_xy(projection: str) -> tuple[np.ndarray, np.ndarray]:
    from loaders.geography import land_outline_paths

    lon, lat = land_outline_paths()
    return project_lonlat(lon, lat, projection)


def land_outline(projection: str, colour: str) -> hv.Element:
    """The offline Natural Earth land outline in the map's coordinates (empty if missing)."""
    try:
        x, y = _land_xy(projection)
    except Exception:  # no outline: the map still works
        return hv.Path([])
    data = [np.column_stack([x, y])]
    if projection == "PlateCarree":
        return hv.Path(data, kdims=[LON, LAT]).opts(color=colour, line_width=0.9)
    return gv.Path(data, crs=crs(projection)).opts(color=colour, line_width=0.9)


def map_grid(values: np.ndarray, lat: np.ndarray, lon: np.ndarray, projection: str
             ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(values, x centres, y centres) of a map in the projection's coordinates."""
    if projection == "PlateCarree":
        return values, lon, lat
    grid = projected_grid(lat, lon, projection)
    return grid.gather(values), grid.x, grid.y


def raster_element(values: np.ndarray, lat: np.ndarray, lon: np.ndarray, projection: str,
                   value_dim: hv.Dimension) -> hv.Image:
    """A map as an Image in the projection's coordinates (GeoViews for projected maps)."""
    values, xs, ys = map_grid(values, lat, lon, projection)
    if projection == "PlateCarree":
        return hv.Image((xs, ys, values), kdims=[LON, LAT], vdims=[value_dim])
    return gv.Image((xs, ys, values), kdims=["x", "y"], vdims=[value_dim], crs=crs(projection))


def grid_extent(centres: np.ndarray) -> tuple[float, float]:
    """Outer edges of a regular grid's ascending cell centres."""
    step = (centres[-1] - centres[0]) / max(centres.size - 1, 1)
    return float(centres[0] - step / 2), float(centres[-1] + step / 2)


def regrid(values: np.ndarray, xs: np.ndarray, ys: np.ndarray,
           x_range: tuple[float, float] | None, y_range: tuple[float, float] | None,
           width: int, height: int) -> tuple[np.ndarray, tuple[float, float, float, float]]:
    """A grid resampled for the screen with datashader, as HoloViews' ``rasterize`` does it.

    The rule of ``holoviews.operation.datashader.regrid`` (no upsampling, no expansion beyond
    the grid, nearest-neighbour up, mean down), called without HoloViews: the operation's
    parameter handling and element copies cost 15-20 ms a map per time step here, the
    resampling itself ~2 ms.

    Parameters
    ----------
    values : numpy.ndarray
        (y, x) values on the cell centres ``ys``, ``xs``.
    xs, ys : numpy.ndarray
        Cell centres along x and y (ascending, regular).
    x_range, y_range : tuple of float or None
        The plot's visible range (None or not finite: the whole grid).
    width, height : int
        The plot's size in device pixels.

    Returns
    -------
    image : numpy.ndarray
        (rows, columns) with the first row at the bottom (Bokeh's ``Image`` order).
    bounds : tuple of float
        left, bottom, right, top of the image.
    """
    import datashader as ds
    import xarray as xr

    (ex0, ex1), (ey0, ey1) = grid_extent(xs), grid_extent(ys)
    if x_range is None or not np.isfinite(x_range).all():
        x_range = (ex0, ex1)
    if y_range is None or not np.isfinite(y_range).all():
        y_range = (ey0, ey1)
    x0 = min(max(x_range[0], ex0), ex1)
    x1 = max(min(x_range[1], ex1), ex0)
    y0 = min(max(y_range[0], ey0), ey1)
    y1 = max(min(y_range[1], ey1), ey0)
    xspan, yspan = x1 - x0, y1 - y0
    # (the tolerance: edges computed here and by HoloViews differ in the last bits; a whole
    # grid must keep all its cells)
    width = max(min(int(xspan / (ex1 - ex0) * xs.size + 1e-6), width), 1) if xspan > 0 else 0
    height = max(min(int(yspan / (ey1 - ey0) * ys.size + 1e-6), height), 1) if yspan > 0 else 0
    bounds = (float(x0), float(y0), float(x1), float(y1))
    if width == 0 or height == 0:
        return np.full((1, 1), np.nan, dtype="float32"), bounds
    canvas = ds.Canvas(plot_width=width, plot_height=height, x_range=(x0, x1), y_range=(y0, y1))
    grid = xr.DataArray(values, coords={"y": ys, "x": xs}, dims=["y", "x"])
    image = canvas.raster(grid, upsample_method="nearest", downsample_method="mean")
    return np.asarray(image.values), bounds


def site_element(lon: np.ndarray, lat: np.ndarray, labels: dict[str, list], projection: str
                 ) -> hv.Points:
    """Site markers (with hover columns ``labels``) in the projection's coordinates."""
    x, y = project_lonlat(lon, lat, projection)
    vdims = list(labels)
    if projection == "PlateCarree":
        return hv.Points({"glon": x, "glat": y, **labels}, kdims=[LON, LAT], vdims=vdims)
    data = {"x": x, "y": y, **labels}
    return gv.Points(data, kdims=["x", "y"], vdims=vdims, crs=crs(projection))


#: Latitudes of the tables that map a projected point back to degrees in the hover (0.1°).
_HOVER_LATS = np.linspace(-90.0, 90.0, 1801)

#: JavaScript of the hover's longitude and latitude: ``ys`` (ascending) are the projected y of
#: the latitudes ``lats`` on the central meridian, ``xs`` the projected x of longitude 180° at
#: each latitude (pseudo-cylindrical projections: x is proportional to the longitude along a
#: parallel). Plate Carrée passes no tables: x and y are degrees already.
_HOVER_JS = """
const x = special_vars.x, y = special_vars.y;
let lon = x, lat = y;
if (ys.length > 0) {
  if (!(y >= ys[0] && y <= ys[ys.length - 1])) return "–";
  let lo = 0, hi = ys.length - 1;
  while (hi - lo > 1) { const mid = (lo + hi) >> 1; if (ys[mid] <= y) lo = mid; else hi = mid; }
  const f = ys[hi] > ys[lo] ? (y - ys[lo]) / (ys[hi] - ys[lo]) : 0;
  lat = lats[lo] + f * (lats[hi] - lats[lo]);
  const edge = xs[lo] + f * (xs[hi] - xs[lo]);
  lon = edge > 0 ? 180 * x / edge : NaN;
}
if (!(Math.abs(lon) <= 180 && Math.abs(lat) <= 90)) return "–";
const v = WHAT === "lon" ? lon : lat;
return v.toFixed(2) + (WHAT === "lon" ? (v < 0 ? " (" + (-v).toFixed(2) + "°W)" : "")
                                      : (v < 0 ? " (" + (-v).toFixed(2) + "°S)" : ""));
"""


@lru_cache(maxsize=4)
def _hover_tables(projection: str) -> tuple[list[float], list[float], list[float]]:
    """(lats, ys, xs) of :data:`_HOVER_JS` for ``projection`` (empty for Plate Carrée)."""
    if projection == "PlateCarree":
        return [], [], []
    lats = _HOVER_LATS
    _, ys = project_lonlat(np.zeros_like(lats), lats, projection)
    xs, _ = project_lonlat(np.full_like(lats, 180.0), lats, projection)
    return lats.tolist(), ys.tolist(), xs.tolist()


def hover_options(projection: str, label: str, units: str) -> dict:
    """Hover options of a map: longitude °E, latitude °N and the value with its units.

    The map's axes are in the projection's coordinates (metres for Robinson); the hover maps
    the pointer back to degrees in the browser (a Bokeh ``CustomJSHover`` with the
    projection's tables, :func:`_hover_tables`). New formatter models on every call: a Bokeh
    model belongs to one document (session).

    Parameters
    ----------
    projection : str
        A projection offered (``PlateCarree``, ``Robinson``).
    label, units : str
        The value's name and units (shown after the value).

    Returns
    -------
    dict
        ``hover_tooltips`` and ``hover_formatters`` for HoloViews' ``.opts``.
    """
    from bokeh.models import CustomJSHover

    lats, ys, xs = _hover_tables(projection)
    formatters = {
        field: CustomJSHover(args={"lats": lats, "ys": ys, "xs": xs},
                             code=_HOVER_JS.replace("WHAT", f'"{what}"'))
        for field, what in (("$x", "lon"), ("$y", "lat"))}
    unit = f" {units}" if units else ""
    tooltips = [("longitude (°E)", "$x{custom}"), ("latitude (°N)", "$y{custom}"),
                (label, "@image{0.000}" + unit)]
    # GeoViews rewrites a projected map's tooltips to its x/y dimensions on every frame: the
    # hook (run after it) puts ours back. It holds only the list, never a view.
    return {"hover_tooltips": tooltips, "hover_formatters": formatters,
            "hooks": [partial(_keep_tooltips, tooltips)]}


def _keep_tooltips(tooltips: list[tuple[str, str]], plot: object, element: object) -> None:
    hover = getattr(plot, "handles", {}).get("hover")
    if hover is not None and list(hover.tooltips or []) != tooltips:
        hover.tooltips = tooltips


def projection_opts(projection: str) -> dict:
    """Plot options of a map in ``projection`` (GeoViews' projection for non-lon/lat maps)."""
    if projection == "PlateCarree":
        return {"xlim": (-180, 180), "ylim": (-60, 85), "xlabel": "longitude",
                "ylabel": "latitude"}
    return {"projection": crs(projection), "xaxis": None, "yaxis": None}
