"""Small global runs with known answers for the Global view's tests.

Every run is a NetCDF file named by the protocol (``<model>.v1_global_30deg_monthly_…``) on a
30° grid (6 × 12 cells), written in its standard form or, on request, with 0–360 longitudes and
north-to-south latitudes (the same values at the same places).
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import xarray as xr

RES = 30.0
LAT = np.arange(-90.0 + RES / 2, 90.0, RES)  # 6 centres, ascending
LON = np.arange(-180.0 + RES / 2, 180.0, RES)  # 12 centres, -165 … 165
TIMES = pd.date_range("2001-01-01", periods=2, freq="MS")  # January (31 d), February (28 d)


def run_name(model: str, stage: str, years: str = "2001-2001") -> str:
    """The protocol name of a global run of ``model`` at ``stage``."""
    return f"{model}.v1_global_30deg_monthly_{years}_{stage}.nc"


def write_run(folder: Path, model: str, stage: str, variables: dict[str, np.ndarray], *,
              units: dict[str, str | None] | None = None, lon360: bool = False,
              descending: bool = False, lat: np.ndarray | None = None,
              extra: dict[str, np.ndarray] | None = None,
              times: pd.DatetimeIndex | None = None) -> Path:
    """Write one run; ``variables`` hold ``(time, lat, lon)`` arrays on the standard grid.

    Parameters
    ----------
    folder : pathlib.Path
        Target folder (created).
    model, stage : str
        Name fields.
    variables : dict
        Table 3 name → values on ``(TIMES, LAT, LON)``.
    units : dict, optional
        Units per variable (default the Table 3 units; ``None`` writes no attribute).
    lon360, descending : bool
        Write longitudes 0–360 and/or latitudes north to south (same values per place).
    lat : numpy.ndarray, optional
        Latitudes written as they are (for broken grids); overrides ``descending``.
    extra : dict, optional
        More ``(lat, lon)`` variables (e.g. ``sftlf``).
    times : pandas.DatetimeIndex, optional
        Time steps (default :data:`TIMES`); the name's years follow them.
    """
    from loaders.variables import TABLE3

    folder.mkdir(parents=True, exist_ok=True)
    lat_idx = np.arange(LAT.size)[::-1] if descending else np.arange(LAT.size)
    lon_values = LON.copy()
    lon_idx = np.arange(LON.size)
    if lon360:
        lon_values = np.where(LON < 0, LON + 360.0, LON)
        lon_idx = np.argsort(lon_values)
        lon_values = lon_values[lon_idx]
    data = {}
    for name, values in variables.items():
        attrs = {}
        unit = (units or {}).get(name, TABLE3[name].units if name in TABLE3 else "1")
        if unit is not None:
            attrs["units"] = unit
        arr = np.asarray(values, dtype="float32")[:, lat_idx][:, :, lon_idx]
        data[name] = (("time", "lat", "lon"), arr, attrs)
    for name, values in (extra or {}).items():
        data[name] = (("lat", "lon"), np.asarray(values, dtype="float32")[lat_idx][:, lon_idx],
                      {"units": "%"})
    lat_values = LAT[lat_idx] if lat is None else lat
    times = TIMES if times is None else times
    ds = xr.Dataset(data, coords={"time": times, "lat": ("lat", lat_values,
                                                          {"units": "degrees_north"}),
                                  "lon": ("lon", lon_values, {"units": "degrees_east"})})
    ds["time"].encoding = {"units": f"days since {times[0].year}-01-01 00:00:00",
                           "calendar": "standard"}
    path = folder / run_name(model, stage, f"{times[0].year}-{times[-1].year}")
    ds.to_netcdf(path, format="NETCDF4")
    return path


def field_of(kind: str, scale: float = 1.0) -> np.ndarray:
    """Known fields on ``(TIMES, LAT, LON)``: ``"zonal"`` = 2·lat + sin(lon) (W m-2, its
    zonal mean is 2·lat), ``"const"`` = ``scale`` everywhere, ``"step"`` = ``scale`` × (step
    + 1)."""
    shape = (TIMES.size, LAT.size, LON.size)
    if kind == "zonal":
        one = 2.0 * LAT[:, None] + np.sin(np.deg2rad(LON))[None, :]
        return np.broadcast_to(one, shape).copy() * scale
    if kind == "const":
        return np.full(shape, scale)
    if kind == "step":
        return np.arange(1, TIMES.size + 1, dtype=float)[:, None, None] * np.full(shape, scale)
    raise ValueError(kind)
