"""A tiny archive for the app tests: two models, a calibration and a validation site, one sparse
site, one broken file and one file with hostile attribute text."""

from __future__ import annotations

from pathlib import Path

import xarray as xr

from tests.synthetic import write_daily_obs, write_garbage, write_site_run

MODELS = (("ALPHA", "v1"), ("BETA-X", "v2.1"))
CAL_SITE, VAL_SITE, SPARSE_SITE = "DK-Sor", "US-Ha1", "US-Ton"
HOSTILE = '<script>alert("x")</script><img src=x onerror=alert(1)>'


def build_app_archive(root: Path) -> Path:
    """Write the tiny archive under ``root`` and return it."""
    obs_dir = root / "obs"
    runs_dir = root / "site_runs"
    coords = {CAL_SITE: (55.4859, 11.6446, "Cal"), VAL_SITE: (42.5378, -72.1715, "Val"),
              SPARSE_SITE: (38.4316, -120.966, "Cal")}
    for i, (site, (lat, lon, _)) in enumerate(coords.items()):
        write_daily_obs(obs_dir, site=site, year_start=2000, year_end=2001, lat=lat, lon=lon,
                        seed=10 + i, nan_fraction=0.995 if site == SPARSE_SITE else 0.3)
    for m, (model, version) in enumerate(MODELS):
        for s, (site, (lat, lon, role)) in enumerate(coords.items()):
            for stage in ("Prior", "Posterior"):
                write_site_run(runs_dir / f"{model}.{version}", model=model, version=version,
                               site=site, cal_val=role, stage=stage, start="2000-01-01",
                               n_days=731, lat=lat, lon=lon, seed=100 * m + 10 * s
                               + (stage == "Posterior"),
                               uncertainty="post_unc" if stage == "Posterior" else None)
    # A broken file with a valid name, and a run whose attributes carry hostile text.
    write_garbage(runs_dir / "GAMMA.v1_Phase1b_Scen1_DK-Sor_Cal_Prior.nc")
    hostile = write_site_run(runs_dir / "ALPHA.v1", model="ALPHA", version="v1", scenario=2,
                             site=CAL_SITE, cal_val="Cal", stage="Posterior",
                             start="2000-01-01", n_days=731, seed=7, uncertainty="post_unc")
    with xr.open_dataset(hostile, decode_times=False, drop_variables=["lat", "lon"]) as ds:
        ds = ds.load()
    ds["nep"].attrs["units"] = HOSTILE  # unreadable units: the error message quotes them
    ds["nep"].encoding.pop("_FillValue", None)
    hostile.unlink()
    ds.to_netcdf(hostile)
    return root
