"""The real pair: the CLASSIC template prior against the real DK-Sor observations.

The expected RMSEs are computed here straight from the raw files with netCDF4 + numpy, with no
use of the loaders or the metrics package:

* template: ``nep``, ``hfls``, ``hfss`` (time, lat, lon) with time "days since 1996-12-31" and
  values 1..6574 → date = 1996-12-31 + value days; NEE_model = −nep · 1000 · 86400
  (kgC m-2 s-1 positive into the land → gC m-2 d-1 positive to the atmosphere);
* obs: ``NEE_daily``, ``Qle_daily``, ``Qh_daily`` with time "seconds since 1997-01-01"
  (0, 86400, …) → date = 1997-01-01 + value / 86400 days;
* fill values (1e20 in the obs, 1e38 in the template) masked by magnitude (auto-masking off);
* days matched by date through a dict; RMSE = √mean((M − O)²) over days where both are finite.
"""

from __future__ import annotations

import datetime as dt

import numpy as np
import pytest

from dashboard.metrics import score
from loaders import open_observations, open_site_run
from tests.conftest import DKSOR_OBS, TEMPLATE


def _raw(path, names):
    import netCDF4

    with netCDF4.Dataset(str(path)) as nc:
        nc.set_auto_mask(False)
        out = {}
        for name in names:
            v = np.asarray(nc.variables[name][:], dtype="float64").ravel()
            v[np.abs(v) >= 1e19] = np.nan
            out[name] = v
        out["time"] = np.asarray(nc.variables["time"][:], dtype="float64")
        out["time_units"] = nc.variables["time"].units
    return out


@pytest.mark.usefixtures("shared_data")
def test_template_prior_vs_dksor_obs_rmse():
    model = _raw(TEMPLATE, ["nep", "hfls", "hfss"])
    obs = _raw(DKSOR_OBS, ["NEE_daily", "Qle_daily", "Qh_daily"])
    assert model["time_units"].startswith("days since 1996-12-31")
    assert obs["time_units"].startswith("seconds since 1997-01-01")
    m_dates = [dt.date(1996, 12, 31) + dt.timedelta(days=float(t)) for t in model["time"]]
    o_dates = [dt.date(1997, 1, 1) + dt.timedelta(seconds=float(t)) for t in obs["time"]]
    m_index = {d: i for i, d in enumerate(m_dates)}
    pairs = {"NEE": (-model["nep"] * 1000.0 * 86400.0, obs["NEE_daily"]),
             "Qle": (model["hfls"], obs["Qle_daily"]),
             "Qh": (model["hfss"], obs["Qh_daily"])}

    run = open_site_run(TEMPLATE)
    observed = open_observations(DKSOR_OBS)
    for var, (m_values, o_values) in pairs.items():
        sq = []
        for j, d in enumerate(o_dates):
            i = m_index.get(d)
            if i is None:
                continue
            a, b = m_values[i], o_values[j]
            if np.isfinite(a) and np.isfinite(b):
                sq.append((a - b) ** 2)
        expected = float(np.sqrt(np.mean(sq)))
        got = score(run[var], observed[var], observed[f"{var}_unc"])
        assert got["n"] == len(sq), var
        assert got["rmse"] == pytest.approx(expected, rel=1e-9), var
        assert got["insufficient"] is False
    # sanity: thousands of valid days, and a plausible NEE error (gC m-2 d-1)
    nee = score(run["NEE"], observed["NEE"])
    assert nee["n"] > 2000 and 0.5 < nee["rmse"] < 5
