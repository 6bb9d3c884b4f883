"""Generate the demo archive (``callmip demo``) and keep one cached copy per user.

:func:`generate_archive` runs the whole toy experiment: synthetic weather at the 31 Phase 1b
sites, a "true" model that makes the observations, five fictional models calibrated against the
calibration sites (shared parameters, site-level parameters and a structural error estimated
from the residuals), their prior and posterior runs at every site (posterior uncertainty =
parameter uncertainty + structural error), parameter tables and global runs.
:func:`ensure_demo_archive` generates it once into a per-user cache folder and reuses it.
"""

from __future__ import annotations

import math
import os
import shutil
import sys
import tempfile
import zlib
from collections.abc import Iterator, Mapping, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from dashboard.demo.errors import DemoArchiveError

if TYPE_CHECKING:
    from dashboard.demo.calibration import Calibration
    from dashboard.demo.globe import Anomalies, CellClimate, Grid
    from dashboard.demo.meteorology import SiteForcing
    from dashboard.demo.models import FictionalModel
    from dashboard.demo.observations import Observations
    from dashboard.demo.process_model import Drivers
    from dashboard.demo.site_table import DemoSite

    Calibrations = dict[tuple[str, int], Calibration]

#: Version of the generator; part of the cache folder name and of the ``COMPLETE`` marker.
GENERATOR_VERSION = "3"  # 3: model-information files (issue #16)
#: Environment variable naming the demo folder (instead of the per-user cache).
DEMO_DIR_ENV = "CALLMIP_DEMO_DIR"
#: Marker written last into a finished cached archive.
COMPLETE = ".COMPLETE"  # hidden: the catalog skips dot-files
#: Posterior parameter samples used for ``_post_unc``.
N_UNCERTAINTY_SAMPLES = 20

_KGC = 1000.0 * 86400.0  # gC m-2 d-1 per kgC m-2 s-1


# ------------------------------------------------------------------------------- checking
def _check_arguments(out: str | os.PathLike[str], seed: int, resolution: float,
                     years: tuple[int, int]) -> tuple[Path, int, float, tuple[int, int]]:
    try:
        seed = int(seed)
    except (TypeError, ValueError) as exc:
        raise DemoArchiveError(f"seed must be a whole number, not {seed!r}") from exc
    if seed < 0:
        raise DemoArchiveError(f"seed must be 0 or positive, not {seed}")
    try:
        resolution = float(resolution)
    except (TypeError, ValueError) as exc:
        raise DemoArchiveError(f"resolution must be a number of degrees, not {resolution!r}"
                               ) from exc
    if not math.isfinite(resolution) or not 0.25 <= resolution <= 10.0:
        raise DemoArchiveError(f"resolution must be between 0.25 and 10 degrees, not "
                               f"{resolution:g}")
    cells = 180.0 / resolution
    if abs(cells - round(cells)) > 1e-6:
        raise DemoArchiveError(f"resolution {resolution:g} does not divide 180 degrees "
                               "(use e.g. 0.5, 1, 2, 2.5 or 5)")
    try:
        y0, y1 = (int(y) for y in years)
    except (TypeError, ValueError) as exc:
        raise DemoArchiveError(f"years must be two years (start, end), not {years!r}") from exc
    if not 1901 <= y0 <= y1 <= 2100:
        raise DemoArchiveError(f"years {y0}-{y1} must be ascending and within 1901-2100")
    path = Path(out).expanduser()
    if path.exists() and not path.is_dir():
        raise DemoArchiveError(f"{path} exists and is not a folder")
    return path, seed, resolution, (y0, y1)


def _stream(seed: int, *keys: str | int) -> np.random.Generator:
    ints = [zlib.crc32(k.encode()) if isinstance(k, str) else int(k) for k in keys]
    return np.random.default_rng(np.random.SeedSequence([seed, 97531, *ints]))


@contextmanager
def _bar(total: int, enabled: bool) -> Iterator[Any]:
    from tqdm.auto import tqdm

    with tqdm(total=total, disable=not enabled, file=sys.stderr, unit="step",
              desc="demo archive", leave=True) as bar:
        yield bar


# ------------------------------------------------------------------------------ generation
def generate_archive(out: str | os.PathLike[str], seed: int = 0, resolution: float = 2.0,
                     years: tuple[int, int] = (2001, 2020), progress: bool = True, *,
                     sites: Sequence[str] | None = None, models: Sequence[str] | None = None,
                     global_runs: bool = True) -> Path:
    """Write the demo archive into ``out``.

    Parameters
    ----------
    out : str or path-like
        Output folder (created; files of a previous generation are overwritten). It receives
        ``obs/``, ``site_runs/<model>.<version>/``, ``parameters/``, ``model_info/`` and
        ``global/``.
    seed : int, default 0
        Random seed: the same seed gives the same data values, another seed other values.
    resolution : float, default 2.0
        Grid spacing of the global runs in degrees (must divide 180).
    years : tuple of int, default (2001, 2020)
        First and last year of the global runs.
    progress : bool, default True
        Show a tqdm progress bar on stderr.
    sites : sequence of str, optional
        Only these Phase 1b sites (default: all 31). For quick tests.
    models : sequence of str, optional
        Only these fictional models (names such as ``"TERRA-TOY"``; default: all five).
    global_runs : bool, default True
        Whether to write the global runs.

    Returns
    -------
    pathlib.Path
        The output folder.

    Raises
    ------
    DemoArchiveError
        If an argument is invalid or a file cannot be written.
    """
    from dashboard.demo.models import get_models
    from dashboard.demo.site_table import demo_sites
    from dashboard.demo.writers import WriteError

    root, seed, resolution, years = _check_arguments(out, seed, resolution, years)
    try:
        chosen_sites = demo_sites(list(sites) if sites is not None else None)
        chosen_models = get_models(list(models) if models is not None else None)
    except ValueError as exc:
        raise DemoArchiveError(str(exc)) from exc
    if not chosen_sites or not chosen_models:
        raise DemoArchiveError("at least one site and one model are needed")
    if not any(s.role == "Cal" and s.has_obs for s in chosen_sites):
        raise DemoArchiveError("at least one calibration site with observations is needed "
                               "(e.g. DK-Sor)")
    try:
        root.mkdir(parents=True, exist_ok=True)
        return _generate(root, seed, resolution, years, progress, chosen_sites, chosen_models,
                         global_runs)
    except WriteError as exc:
        raise DemoArchiveError(str(exc)) from exc
    except OSError as exc:
        raise DemoArchiveError(f"{root}: cannot write the demo archive ({exc})") from exc


def _generate(root: Path, seed: int, resolution: float, years: tuple[int, int],
              progress: bool, sites: list[DemoSite], models: list[FictionalModel],
              global_runs: bool) -> Path:
    from dashboard.demo.calibration import calibrate
    from dashboard.demo.meteorology import site_forcing
    from dashboard.demo.model_info import write_model_info
    from dashboard.demo.observations import make_observations
    from dashboard.demo.process_model import site_drivers
    from loaders.variables import SCENARIO_VARIABLES

    n_cal = sum(len(m.scenarios) for m in models)
    n_global = 2 * sum(m.global_runs for m in models) if global_runs else 0
    n_runs = sum(1 + len(m.scenarios) for m in models)
    with _bar(3 + n_cal + n_runs + n_global, progress) as bar:
        bar.set_postfix_str("weather")
        forcing = site_forcing(sites, seed)
        drivers = site_drivers(forcing)
        bar.update()
        bar.set_postfix_str("observations")
        obs = make_observations(forcing, drivers, seed)
        bar.update()
        _write_all_observations(root / "obs", forcing, drivers, obs, seed)
        bar.update()
        ids = [s.site_id for s in sites]
        roles = [s.role for s in sites]
        calibrations: Calibrations = {}
        for model in models:
            for scen in model.scenarios:
                bar.set_postfix_str(f"calibrating {model.name} Scen{scen}")
                calibrations[model.name, scen] = calibrate(
                    model, scen, SCENARIO_VARIABLES[scen], drivers, obs, ids, roles,
                    _stream(seed, model.name, scen, "days"))
                bar.update()
        for model in models:
            bar.set_postfix_str(f"writing {model.name}")
            _write_model(root, model, forcing, drivers, calibrations, seed, bar)
            write_model_info(root / "model_info", model)
        if global_runs:
            _write_global(root / "global", [m for m in models if m.global_runs],
                          calibrations, resolution, years, seed, bar)
    return root


# ----------------------------------------------------------------------------- site files
def _site_slices(drivers: Drivers) -> list[slice]:
    starts = np.searchsorted(drivers.site_of_day, np.arange(drivers.n_sites))
    ends = np.append(starts[1:], drivers.n)
    return [slice(int(a), int(b)) for a, b in zip(starts, ends, strict=True)]


def _write_all_observations(folder: Path, forcing: SiteForcing, drivers: Drivers,
                            obs: Observations, seed: int) -> None:
    from dashboard.demo.writers import write_observations
    from loaders.naming import ParsedName, format_name

    folder.mkdir(parents=True, exist_ok=True)
    for i, (site, sl) in enumerate(zip(forcing.sites, _site_slices(drivers), strict=True)):
        if not site.has_obs:
            continue
        dates = forcing.record_dates(i)
        name = format_name(ParsedName(name="", kind="observation", convention="obs_daily",
                                      site=site.site_id, year_start=dates[0].year,
                                      year_end=dates[-1].year))
        write_observations(folder / name, site, dates,
                           {k: v[sl] for k, v in obs.values.items()},
                           {k: v[sl] for k, v in obs.unc.items()},
                           seed=seed, version=GENERATOR_VERSION)


def table3_outputs(model: FictionalModel, forcing: SiteForcing, drivers: Drivers,
                   params: Mapping[str, float | np.ndarray]) -> dict[str, np.ndarray]:
    """Run ``model`` with ``params`` at every site: Table 3 variables in Table 3 units.

    Parameters
    ----------
    model : FictionalModel
        The model (structure).
    forcing : SiteForcing
        Weather of the sites (for the model's own soil-water bucket).
    drivers : Drivers
        Flattened ``forcing``.
    params : mapping
        Parameter values by name (scalars, or per-day arrays such as the site-level
        parameters of a calibration).

    Returns
    -------
    dict of numpy.ndarray
        One flat array per Table 3 variable (days of all sites, as in ``drivers``).
    """
    from dashboard.demo.meteorology import LAMBDA
    from dashboard.demo.process_model import carbon_pools, fluxes, soil_water

    out = fluxes(drivers, params, model.structure)
    c_soil, c_above = carbon_pools(drivers, out, model.structure)
    mrso, mrsos = soil_water(forcing, drivers, out, model.structure)
    return {
        "nep": out["nep"] / _KGC, "hfls": out["le"], "hfss": out["h"],
        "gpp": out["gpp"] / _KGC, "reco": out["reco"] / _KGC,
        "tran": out["tran_le"] / LAMBDA, "evspsblsoi": out["soil_le"] / LAMBDA,
        "hfg": out["g"], "ts": out["ts"], "lai": out["lai"], "cLiveBioAbove": c_above,
        "cSoil": c_soil, "mrso": mrso, "mrsos": mrsos,
    }


_CMIP_OF = {"NEE": "nep", "Qle": "hfls", "Qh": "hfss"}
_SAMPLE_OUT = {"nep": ("nep", 1.0 / _KGC), "hfls": ("le", 1.0), "hfss": ("h", 1.0)}


def _write_model(root: Path, model: FictionalModel, forcing: SiteForcing, drivers: Drivers,
                 calibrations: Calibrations, seed: int, bar: Any) -> None:
    from dashboard.demo.calibration import run_parameter_sets
    from dashboard.demo.writers import write_parameters, write_site_run
    from loaders.naming import ParsedName, format_name

    folder = root / "site_runs" / model.model_id
    folder.mkdir(parents=True, exist_ok=True)
    slices = _site_slices(drivers)
    site_ids = [s.site_id for s in forcing.sites]
    runs: list[tuple[str, int, dict[str, Any], Calibration | None]] = [
        ("Prior", 1, model.prior_values(), None)]
    for scen in model.scenarios:
        cal = calibrations[model.name, scen]
        runs.append(("Posterior", scen, {**cal.posterior_values(),
                                         **cal.site_values(site_ids, drivers.site_of_day)},
                     cal))
    for stage, scen, params, cal in runs:
        data = table3_outputs(model, forcing, drivers, params)
        post_unc: dict[str, np.ndarray] = {}
        members: dict[str, np.ndarray] = {}
        if cal is not None:
            structural = _structural_sd(cal)
            site_level = cal.site_values(site_ids, drivers.site_of_day)
            if model.ensemble:
                thetas = cal.samples(_stream(seed, model.name, scen, "members"),
                                     model.ensemble)
                res = run_parameter_sets(model, drivers, thetas, extra=site_level)
                members = {v: res[_SAMPLE_OUT[v][0]] * _SAMPLE_OUT[v][1] for v in _SAMPLE_OUT}
                noise_rng = _stream(seed, model.name, scen, "structural")
                for v, sd in structural.items():
                    members[v] = members[v] + sd * _member_noise(noise_rng, model.ensemble,
                                                                 drivers)
            else:
                thetas = cal.samples(_stream(seed, model.name, scen, "samples"),
                                     N_UNCERTAINTY_SAMPLES)
                res = run_parameter_sets(model, drivers, thetas, extra=site_level)
                for v, sd in structural.items():
                    param_sd = res[_SAMPLE_OUT[v][0]].std(axis=0, ddof=1) * _SAMPLE_OUT[v][1]
                    post_unc[v] = np.sqrt(param_sd**2 + sd**2)
        attrs = _run_attrs(model, seed, cal)
        for i, (site, sl) in enumerate(zip(forcing.sites, slices, strict=True)):
            if site.site_id in model.missing_sites:
                continue
            dates = forcing.record_dates(i)
            keep = np.ones(len(dates), dtype=bool)
            if model.calendar == "noleap":
                keep = ~((dates.month == 2) & (dates.day == 29))
            name = format_name(ParsedName(
                name="", kind="site_run", convention=model.naming, model=model.name,
                version=model.version, phase="Phase1b", scenario=scen, site=site.site_id,
                cal_val=site.role, stage=stage))
            word = f"Expt{scen}" if model.naming == "v1" else f"Scen{scen}"
            write_site_run(
                folder / name, model_id=model.model_id, scenario=scen, scenario_word=word,
                stage=stage, site=site, dates=dates[keep], calendar=model.calendar,
                data={k: v[sl][keep] for k, v in data.items()},
                post_unc={k: v[sl][keep] for k, v in post_unc.items()},
                members={k: v[:, sl][:, keep] for k, v in members.items()},
                extra_attrs={**attrs, **_site_attrs(cal, site.site_id)})
        if cal is not None:
            pfolder = root / "parameters"
            pfolder.mkdir(parents=True, exist_ok=True)
            write_parameters(pfolder / f"{model.model_id}_Phase1b_Scen{scen}_parameters.csv",
                             cal.table())
        bar.update()


def _site_attrs(cal: Calibration | None, site_id: str) -> dict[str, str]:
    """The ``site_parameters`` attribute of a posterior run (empty for a prior run)."""
    if cal is None or not cal.site_parameters:
        return {}
    values = {name: v[site_id] for name, v in cal.site_parameters.items() if site_id in v}
    if not values:
        return {"site_parameters": "defaults (not a calibration site of this model: "
                                   + ", ".join(f"{k} = 1" for k in cal.site_parameters) + ")"}
    return {"site_parameters": "calibrated at this site: "
            + ", ".join(f"{k} = {v:.3f}" for k, v in values.items())}


def _structural_sd(cal: Calibration) -> dict[str, float]:
    """Structural error (1 sd, Table 3 units) of each optimised variable.

    Parameters
    ----------
    cal : Calibration
        The calibration (its structural error estimates).

    Returns
    -------
    dict of float
        ``nep``/``hfls``/``hfss`` → standard deviation (> 0).
    """
    from dashboard.demo.calibration import MODEL_ERROR

    return {_CMIP_OF[v]: (cal.structural[v].sd if v in cal.structural else MODEL_ERROR[v])
            * abs(_SAMPLE_OUT[_CMIP_OF[v]][1]) for v in cal.variables}


def _member_noise(rng: np.random.Generator, n_members: int, drivers: Drivers) -> np.ndarray:
    """Unit-variance AR(1) structural noise of each member, centred across the members.

    Centring keeps the ensemble mean equal to the mean of the parameter samples; the rescaling
    by ``sqrt(m / (m - 1))`` keeps the spread of the members at unit variance.

    Returns
    -------
    numpy.ndarray
        Shape ``(n_members, n_days)`` (days of ``drivers``).
    """
    from dashboard.demo.calibration import STRUCTURAL_RHO
    from dashboard.demo.meteorology import ar1

    z = ar1(rng, (n_members, drivers.n), STRUCTURAL_RHO)
    z = z - z.mean(axis=0, keepdims=True)
    return z * np.sqrt(n_members / max(n_members - 1, 1))


def _run_attrs(model: FictionalModel, seed: int, cal: Calibration | None) -> dict[str, str]:
    from dashboard.demo.writers import SYNTHETIC

    attrs = {
        "comment": SYNTHETIC, "data_type": "SYNTHETIC",
        "source": f"fictional model {model.model_id}: {model.description}",
        "demo_generator": f"callmip-explorer demo generator v{GENERATOR_VERSION}",
        "demo_seed": str(seed),
    }
    if cal is not None:
        n = ", ".join(f"{v}: {k} days" for v, k in cal.n_obs.items())
        attrs["calibration"] = (
            f"bounded least squares over the calibration sites against "
            f"{'+'.join(cal.variables)} ({n}); Laplace posterior; "
            + ("posterior ensemble of parameter samples plus structural error"
               if model.ensemble else
               f"_post_unc = sd over {N_UNCERTAINTY_SAMPLES} posterior parameter samples "
               "combined with the structural error"))
        attrs["structural_error"] = "; ".join(
            f"{v}: {e.sd:.4g} {'gC m-2 d-1' if v == 'NEE' else 'W m-2'} (1 sd, from the "
            f"scatter of {e.n} calibration residuals)" for v, e in cal.structural.items())
    return attrs


# --------------------------------------------------------------------------- global runs
def _write_global(folder: Path, models: list[FictionalModel], calibrations: Calibrations,
                  resolution: float, years: tuple[int, int], seed: int, bar: Any) -> None:
    from dashboard.demo.globe import anomalies, cell_climate, make_grid, month_starts
    from dashboard.demo.writers import write_global_run

    if not models:
        return
    folder.mkdir(parents=True, exist_ok=True)
    grid = make_grid(resolution)
    clim = cell_climate(grid)
    anom = anomalies(grid, years, seed)
    months = month_starts(years)
    res_text = f"{resolution:g}" if resolution % 1 else f"{resolution:.1f}"
    for model in models:
        stages = [("Prior", model.prior_values())]
        if (model.name, 1) in calibrations:
            stages.append(("Posterior", calibrations[model.name, 1].posterior_values()))
        for stage, params in stages:
            bar.set_postfix_str(f"global {model.name} {stage}")
            data = global_outputs(model, params, grid, clim, anom, years)
            name = (f"{model.model_id}_global_{res_text}deg_monthly_{years[0]}-{years[1]}"
                    f"_{stage}.nc")
            write_global_run(folder / name, model_id=model.model_id, stage=stage,
                             lat=grid.lat, lon=grid.lon, land=grid.land, months=months,
                             data=data, extra_attrs=_run_attrs(model, seed, None))
            bar.update()


def global_outputs(model: FictionalModel, params: Mapping[str, float], grid: Grid,
                   clim: CellClimate, anom: Anomalies, years: tuple[int, int],
                   chunk: int = 1500) -> dict[str, np.ndarray]:
    """Monthly Table 3 variables of ``model`` on the land cells of ``grid``.

    Parameters
    ----------
    model : FictionalModel
        The model.
    params : mapping
        Its parameter values.
    grid, clim, anom : Grid, CellClimate, Anomalies
        The global grid, its climatology and weather anomalies.
    years : tuple of int
        First and last year.
    chunk : int, default 1500
        Land cells simulated together (memory bound).

    Returns
    -------
    dict of numpy.ndarray
        Each ``(n_months, n_land_cells)`` float32 in Table 3 units.
    """
    from dashboard.demo.globe import global_forcing
    from dashboard.demo.meteorology import LAMBDA
    from dashboard.demo.process_model import bucket, fluxes, soil_moisture

    s = model.structure
    result: dict[str, np.ndarray] = {}
    for start in range(0, grid.n_cells, chunk):
        cells = slice(start, min(start + chunk, grid.n_cells))
        gf = global_forcing(grid, clim, anom, cells, years)
        d = gf.drivers
        out = fluxes(d, params, s)
        shape = (gf.n_cells, gf.n_months)
        nep = out["nep"].reshape(shape)
        soil0 = d.site_mean(out["rh"]).reshape(shape)[:, :1] * 365.25 / s.soil_turnover / 1e3
        cum = np.cumsum(nep * gf.days[None, :], axis=1) / 1000.0
        forest = d["forest"].reshape(shape)
        veg = np.where(forest, 0.6, 0.3)
        wood = np.where(forest, 1.9, 0.05) * d["lai_max"].reshape(shape) * s.lai_scale
        et = ((out["tran_le"] + out["soil_le"]) * 86400.0 / LAMBDA).reshape(shape) * gf.days
        rel = bucket(gf.inflow, et, s.whc_scale * gf.whc)
        mrso, mrsos = soil_moisture(rel, d["theta_top"].reshape(shape), s)
        block = {
            "nep": nep / _KGC, "hfls": out["le"].reshape(shape),
            "hfss": out["h"].reshape(shape), "gpp": out["gpp"].reshape(shape) / _KGC,
            "reco": out["reco"].reshape(shape) / _KGC,
            "tran": out["tran_le"].reshape(shape) / LAMBDA,
            "evspsblsoi": out["soil_le"].reshape(shape) / LAMBDA,
            "hfg": out["g"].reshape(shape), "ts": out["ts"].reshape(shape),
            "lai": out["lai"].reshape(shape),
            "cLiveBioAbove": np.maximum(wood + out["lai"].reshape(shape) / 20.0
                                        + 0.7 * veg * cum, 0.0),
            "cSoil": soil0 + (1.0 - veg) * cum, "mrso": mrso, "mrsos": mrsos,
        }
        for key, value in block.items():
            if key not in result:
                result[key] = np.empty((gf.n_months, grid.n_cells), dtype="f4")
            result[key][:, cells] = value.T
    return result


# --------------------------------------------------------------------------------- cache
def demo_cache_dir() -> Path:
    """Folder of the cached demo archive: ``$CALLMIP_DEMO_DIR`` or the per-user cache."""
    env = os.environ.get(DEMO_DIR_ENV)
    if env:
        return Path(env).expanduser()
    from platformdirs import user_cache_dir

    return Path(user_cache_dir("callmip-explorer")) / f"demo-v{GENERATOR_VERSION}-seed0"


def is_complete(folder: str | os.PathLike[str]) -> bool:
    """Whether ``folder`` holds a finished archive of this generator version."""
    marker = Path(folder) / COMPLETE
    try:
        return marker.read_text(encoding="utf-8").strip() == GENERATOR_VERSION
    except OSError:
        return False


@contextmanager
def _lock(path: Path) -> Iterator[None]:
    """An exclusive advisory lock (POSIX); a no-op where ``fcntl`` is unavailable."""
    try:
        import fcntl
    except ImportError:  # pragma: no cover - Windows
        yield
        return
    with open(path, "a+") as fh:
        fcntl.flock(fh, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(fh, fcntl.LOCK_UN)


def ensure_demo_archive(progress: bool = True) -> Path:
    """Return the cached demo archive (seed 0), generating it the first time.

    The archive is written into a temporary sibling folder and renamed into place only when
    complete (with a ``COMPLETE`` marker holding the generator version), so another process
    never sees half an archive; a lock makes concurrent callers wait for one generation.

    Parameters
    ----------
    progress : bool, default True
        Show a progress bar on stderr while generating.

    Returns
    -------
    pathlib.Path
        ``$CALLMIP_DEMO_DIR`` if set, else ``<user cache>/callmip-explorer/demo-v<N>-seed0``.

    Raises
    ------
    DemoArchiveError
        If the archive cannot be generated or moved into place.
    """
    target = demo_cache_dir()
    if is_complete(target):
        return target
    try:
        target.parent.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise DemoArchiveError(f"{target.parent}: cannot create the demo cache folder "
                               f"({exc})") from exc
    with _lock(target.parent / f".{target.name}.lock"):
        if is_complete(target):
            return target
        _refuse_foreign(target)
        tmp = Path(tempfile.mkdtemp(prefix=f".{target.name}.tmp-", dir=target.parent))
        try:
            generate_archive(tmp, seed=0, progress=progress)
            (tmp / COMPLETE).write_text(GENERATOR_VERSION + "\n", encoding="utf-8")
            tmp.chmod(0o755)  # mkdtemp makes it private; the archive is ordinary data
            _publish(tmp, target)
        except OSError as exc:
            raise DemoArchiveError(f"{target}: cannot store the demo archive ({exc})") from exc
        finally:
            if tmp.exists():
                shutil.rmtree(tmp, ignore_errors=True)
    return target


def _refuse_foreign(target: Path) -> None:
    """Refuse to replace a non-empty folder that is not a demo archive (never delete data)."""
    if not target.exists():
        return
    if not target.is_dir():
        raise DemoArchiveError(f"{target} exists and is not a folder")
    if (target / COMPLETE).exists() or not any(target.iterdir()):
        return  # an older demo archive, or an empty folder: ours to replace
    raise DemoArchiveError(f"{target} is not empty and holds no demo archive; remove it or "
                           f"set {DEMO_DIR_ENV} to another folder")


def _publish(tmp: Path, target: Path) -> None:
    """Rename ``tmp`` to ``target``, moving an outdated archive at ``target`` aside."""
    for attempt in range(5):
        try:
            os.rename(tmp, target)
            return
        except OSError:
            if is_complete(target):
                return
            stale = target.with_name(f".{target.name}.stale-{os.getpid()}-{attempt}")
            try:
                os.rename(target, stale)
            except FileNotFoundError:
                continue
            shutil.rmtree(stale, ignore_errors=True)
    raise DemoArchiveError(f"{target}: cannot move the generated archive into place")
