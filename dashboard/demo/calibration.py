"""Calibrate a fictional model against the synthetic observations of the calibration sites.

One parameter set per model (with separate light-use efficiencies for forests and for grasses
and shrubs) is fitted to all calibration sites at once by bounded non-linear least squares
(:func:`scipy.optimize.least_squares`, trust-region reflective): the residuals are the misfits
of the scenario's variables divided by the observation error (the stated measurement
uncertainty combined with a model-error allowance) plus Gaussian prior terms; the bounds are
the prior ranges. Daily residuals are autocorrelated, so each site and variable counts as
``n_valid / CORRELATION_DAYS`` independent observations; at most ``MAX_DAYS`` valid days per site
and variable are used. The posterior covariance is the Laplace approximation at the optimum
(Gauss-Newton Hessian, inflated by the reduced chi-square when the fit is worse than the errors
say). Posterior samples (for ``_post_unc`` and ensembles) are drawn from it and clipped to the
prior range.

A second stage fits the site-level parameters of every calibration site with the model's
parameters fixed (:data:`SITE_PARAMETERS`: the initial soil carbon, which sets the site's
carbon-pool disequilibrium, and a net-radiation scale standing for the site's surface albedo),
as groups that calibrate biased initial conditions do (protocol v2, section 12 viii). The
posterior runs at the calibration sites use them; validation sites keep the defaults, one
reason why they improve less.

Parameter uncertainty alone is far too narrow to cover the data: the models' structure differs
from the truth (missing processes, the unclosed energy balance of the measurements, site
peculiarities). As real calibration groups do, each model estimates a *structural error* per
variable from its calibration residuals at the optimum (:class:`StructuralError`): the robust
scatter of the residuals with the measurement error removed, one standard deviation for every day.
It is added to the parameter uncertainty in ``_post_unc`` and to the ensemble members. Like a real
group's, it is one number per variable: too wide for small winter fluxes, too narrow for large
summer ones, and blind to the model's systematic biases, so the posterior intervals miss somewhat
more than 5 % of the data.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from dashboard.demo.models import FictionalModel
from dashboard.demo.observations import Observations
from dashboard.demo.process_model import Drivers, comparison, fluxes

#: Model-error allowance added in quadrature to the measurement uncertainty.
MODEL_ERROR = {"NEE": 0.8, "Qle": 12.0, "Qh": 15.0}
#: Days over which daily residuals are treated as correlated.
CORRELATION_DAYS = 20.0
#: Most valid days per site and variable entering the calibration.
MAX_DAYS = 300
#: Forward-difference step of the Jacobian, in prior standard deviations.
STEP = 1e-4
#: 95 % quantile of the standard normal distribution (for p05/p95).
Z95 = 1.6448536269514722


#: Site-level parameters calibrated at each calibration site in a second stage:
#: name -> (default, prior sd, (lower, upper), variables that inform it).
SITE_PARAMETERS: dict[str, tuple[float, float, tuple[float, float], tuple[str, ...]]] = {
    # initial soil carbon (the disequilibrium of the site's carbon pools), scales respiration
    "soil_carbon": (1.0, 0.25, (0.4, 1.8), ("NEE",)),
    # net radiation (the site's surface albedo and emissivity)
    "radiation": (1.0, 0.08, (0.7, 1.2), ("Qle", "Qh")),
}
#: Gauss-Newton steps of the site-level stage.
SITE_ITERATIONS = 3
#: Smallest structural error, as a fraction of the residual scatter (never zero).
STRUCTURAL_FLOOR = 0.15
#: Lag-one autocorrelation of the structural error added to ensemble members.
STRUCTURAL_RHO = 0.6


def robust_sd(r: np.ndarray) -> float:
    """``1.4826`` times the median absolute deviation from the median (0 for no data)."""
    r = np.asarray(r, dtype=float)
    r = r[np.isfinite(r)]
    if r.size == 0:
        return 0.0
    return 1.4826 * float(np.median(np.abs(r - np.median(r))))


@dataclass(frozen=True)
class StructuralError:
    """Structural (model) error of one variable: one standard deviation for every day.

    Attributes
    ----------
    sd : float
        Standard deviation (variable units, > 0).
    scatter : float
        Robust scatter of the calibration residuals it was estimated from.
    n : int
        Number of residuals.
    """

    sd: float
    scatter: float = float("nan")
    n: int = 0

    @classmethod
    def fit(cls, residual: np.ndarray, obs_sd: np.ndarray) -> StructuralError:
        """Estimate from calibration residuals (model - obs) and their measurement error.

        The structural variance is the robust variance of the residuals around their median
        (``(1.4826 MAD)^2``; a systematic bias is not counted, as groups estimating their
        model error from the residual scatter do not count it) minus the mean measurement
        variance; its standard deviation is at least :data:`STRUCTURAL_FLOOR` times the
        scatter, so it is never zero.
        """
        ok = np.isfinite(residual) & np.isfinite(obs_sd)
        r, so = residual[ok], obs_sd[ok]
        if r.size < 10:
            scale = float(np.sqrt(np.mean(r**2))) if r.size else 0.0
            return cls(sd=max(scale, 1e-6), scatter=scale, n=int(r.size))
        scatter = robust_sd(r)
        var = scatter**2 - float(np.mean(so**2))
        sd = max(float(np.sqrt(max(var, 0.0))), STRUCTURAL_FLOOR * scatter, 1e-6)
        return cls(sd=sd, scatter=scatter, n=int(r.size))


@dataclass
class Calibration:
    """The result of calibrating one model for one scenario.

    Attributes
    ----------
    model : FictionalModel
    scenario : int
    variables : tuple of str
        Observed variables used (``NEE``, ``Qle``, ``Qh``).
    x : numpy.ndarray
        Posterior mode in prior-standard-deviation units around the prior.
    cov : numpy.ndarray
        Posterior covariance of ``x``.
    sensitivity : numpy.ndarray
        Norm of each Jacobian column (data part) at the prior: how much the data respond.
    chi2_scale : float
        Reduced chi-square used to inflate the covariance (>= 1).
    n_obs : dict of int
        Valid observations used per variable.
    nfev : int
        Function evaluations of the optimiser.
    structural : dict of StructuralError
        Structural error of each calibrated variable, from the residuals at the optimum.
    site_parameters : dict of dict
        Site-level parameter name -> {calibration site id -> value} (second stage; every other
        site keeps the default of :data:`SITE_PARAMETERS`).
    """

    model: FictionalModel
    scenario: int
    variables: tuple[str, ...]
    x: np.ndarray
    cov: np.ndarray
    sensitivity: np.ndarray
    chi2_scale: float
    n_obs: dict[str, int]
    nfev: int
    structural: dict[str, StructuralError] = field(default_factory=dict)
    site_parameters: dict[str, dict[str, float]] = field(default_factory=dict)

    def site_values(self, site_ids: list[str], site_of_day: np.ndarray) -> dict[str, np.ndarray]:
        """Per-day arrays of the site-level parameters (defaults away from calibration sites).

        Parameters
        ----------
        site_ids : list of str
            Site id of each site index.
        site_of_day : numpy.ndarray
            Site index of each day.

        Returns
        -------
        dict of numpy.ndarray
            Parameter name -> value per day.
        """
        out = {}
        for name, values in self.site_parameters.items():
            per_site = np.array([values.get(s, SITE_PARAMETERS[name][0]) for s in site_ids])
            out[name] = per_site[site_of_day]
        return out

    @property
    def prior(self) -> np.ndarray:
        """Prior values."""
        return np.array([p.prior for p in self.model.parameters])

    @property
    def scale(self) -> np.ndarray:
        """Prior standard deviations."""
        return np.array([p.sd for p in self.model.parameters])

    @property
    def lower(self) -> np.ndarray:
        """Lower prior bounds."""
        return np.array([p.lower for p in self.model.parameters])

    @property
    def upper(self) -> np.ndarray:
        """Upper prior bounds."""
        return np.array([p.upper for p in self.model.parameters])

    @property
    def theta(self) -> np.ndarray:
        """Posterior parameter values."""
        return np.clip(self.prior + self.scale * self.x, self.lower, self.upper)

    @property
    def theta_sd(self) -> np.ndarray:
        """Posterior standard deviations of the parameters."""
        return self.scale * np.sqrt(np.diag(self.cov))

    def posterior_values(self) -> dict[str, float]:
        """Posterior parameter values by name."""
        return dict(zip(self.model.names, self.theta.tolist(), strict=True))

    def samples(self, rng: np.random.Generator, n: int) -> np.ndarray:
        """``n`` parameter vectors drawn from the posterior, clipped to the prior range.

        Returns
        -------
        numpy.ndarray
            Shape ``(n, n_parameters)``.
        """
        chol = np.linalg.cholesky(self.cov + 1e-12 * np.eye(self.x.size))
        z = self.x + rng.standard_normal((n, self.x.size)) @ chol.T
        return np.clip(self.prior + self.scale * z, self.lower, self.upper)

    def table(self) -> list[dict[str, object]]:
        """Rows of the parameter table (format of the README)."""
        theta, sd = self.theta, self.theta_sd
        z = Z95
        ranks = np.empty(self.x.size, dtype=int)
        ranks[np.argsort(-self.sensitivity, kind="stable")] = np.arange(1, self.x.size + 1)
        rows = []
        for i, p in enumerate(self.model.parameters):
            rows.append({
                "parameter": p.name, "long_name": p.long_name, "process": p.process,
                "pft": p.pft, "units": p.units, "prior_value": p.prior, "prior_min": p.lower,
                "prior_max": p.upper, "prior_sd": p.sd, "posterior_value": theta[i],
                "posterior_sd": sd[i],
                "posterior_p05": max(p.lower, theta[i] - z * sd[i]),
                "posterior_p95": min(p.upper, theta[i] + z * sd[i]),
                "sensitivity_rank": int(ranks[i]),
            })
        return rows


def parameter_dict(model: FictionalModel, theta: np.ndarray) -> dict[str, np.ndarray]:
    """Map a parameter vector (``(P,)``) or matrix (``(B, P)``) to model parameters.

    A matrix gives arrays of shape ``(B, 1)`` that broadcast against days.
    """
    theta = np.asarray(theta, dtype=float)
    if theta.ndim == 1:
        return {name: float(v) for name, v in zip(model.names, theta, strict=True)}
    return {name: theta[:, i : i + 1] for i, name in enumerate(model.names)}


@dataclass
class _Problem:
    drivers: Drivers
    site_of_day: np.ndarray  # original site index of each day of ``drivers``
    index: dict[str, np.ndarray]
    obs: dict[str, np.ndarray]
    obs_sd: dict[str, np.ndarray]
    weight: dict[str, np.ndarray]
    n_eff: float


def _problem(model: FictionalModel, d: Drivers, obs: Observations, site_ids: list[str],
             roles: list[str], variables: tuple[str, ...], rng: np.random.Generator
             ) -> _Problem:
    """Select the days and weights of the calibration (calibration sites the model ran)."""
    usable = np.array([r == "Cal" and s not in model.missing_sites
                       for s, r in zip(site_ids, roles, strict=True)])
    keep = np.zeros(d.n, dtype=bool)
    chosen: dict[str, list[np.ndarray]] = {v: [] for v in variables}
    weights: dict[str, list[np.ndarray]] = {v: [] for v in variables}
    starts = np.searchsorted(d.site_of_day, np.arange(d.n_sites))
    ends = np.append(starts[1:], d.n)
    for i in np.flatnonzero(usable):
        for v in variables:
            valid = starts[i] + np.flatnonzero(np.isfinite(obs.values[v][starts[i]:ends[i]]))
            if valid.size == 0:
                continue
            pick = valid if valid.size <= MAX_DAYS else np.sort(
                rng.choice(valid, MAX_DAYS, replace=False))
            n_eff = min(pick.size, valid.size / CORRELATION_DAYS)
            chosen[v].append(pick)
            weights[v].append(np.full(pick.size, np.sqrt(n_eff / pick.size)))
            keep[pick] = True
    sub, kept = d.subset(keep)
    position = np.full(d.n, -1)
    position[kept] = np.arange(sub.n)
    index, values, obs_sd, weight = {}, {}, {}, {}
    n_eff_total = 0.0
    for v in variables:
        days = np.concatenate(chosen[v]) if chosen[v] else np.zeros(0, dtype=int)
        w = np.concatenate(weights[v]) if weights[v] else np.zeros(0)
        sigma = np.sqrt(obs.unc[v][days] ** 2 + MODEL_ERROR[v] ** 2)
        index[v] = position[days]
        values[v] = obs.values[v][days]
        obs_sd[v] = obs.unc[v][days]
        weight[v] = w / sigma
        n_eff_total += float(np.sum(w**2))
    return _Problem(drivers=sub, site_of_day=d.site_of_day[kept], index=index, obs=values,
                    obs_sd=obs_sd, weight=weight, n_eff=n_eff_total)


def calibrate(model: FictionalModel, scenario: int, variables: tuple[str, ...], d: Drivers,
              obs: Observations, site_ids: list[str], roles: list[str],
              rng: np.random.Generator) -> Calibration:
    """Calibrate ``model`` for one scenario.

    Parameters
    ----------
    model : FictionalModel
        The model (structure, parameters, priors).
    scenario : int
        Scenario number (recorded only).
    variables : tuple of str
        Observed variables the scenario optimises.
    d : Drivers
        Drivers of all sites (whole records).
    obs : Observations
        Observations on the same days.
    site_ids, roles : list of str
        Site id and role (``Cal``/``Val``) of each site index of ``d``.
    rng : numpy.random.Generator
        Chooses the subsample of days.

    Returns
    -------
    Calibration
    """
    from scipy.optimize import least_squares

    prob = _problem(model, d, obs, site_ids, roles, variables, rng)
    prior = np.array([p.prior for p in model.parameters])
    scale = np.array([p.sd for p in model.parameters])
    lower = (np.array([p.lower for p in model.parameters]) - prior) / scale
    upper = (np.array([p.upper for p in model.parameters]) - prior) / scale
    n_par = prior.size
    n_obs = {v: int(prob.index[v].size) for v in variables}
    if sum(n_obs.values()) == 0:  # no observation to calibrate against: posterior = prior
        return Calibration(model=model, scenario=scenario, variables=variables,
                           x=np.zeros(n_par), cov=np.eye(n_par), sensitivity=np.zeros(n_par),
                           chi2_scale=1.0, n_obs=n_obs, nfev=0)

    def data_residuals(xs: np.ndarray) -> np.ndarray:
        theta = prior + scale * np.atleast_2d(xs)
        out = comparison(fluxes(prob.drivers, parameter_dict(model, theta), model.structure))
        parts = [(out[v][:, prob.index[v]] - prob.obs[v]) * prob.weight[v] for v in variables]
        return np.concatenate(parts, axis=1)

    def fun(x: np.ndarray) -> np.ndarray:
        return np.concatenate([data_residuals(x)[0], x])

    def jac(x: np.ndarray) -> np.ndarray:
        xs = np.vstack([x, x + STEP * np.eye(n_par)])
        r = data_residuals(xs)
        j_data = ((r[1:] - r[0]) / STEP).T
        return np.vstack([j_data, np.eye(n_par)])

    # bounds by a smooth reparameterisation x = lower + (upper - lower) (1 + tanh u) / 2, so
    # that MINPACK's Levenberg-Marquardt (no BLAS threads, robust) can be used
    half = 0.5 * (upper - lower)

    def to_x(u: np.ndarray) -> np.ndarray:
        return lower + half * (1.0 + np.tanh(u))

    def fun_u(u: np.ndarray) -> np.ndarray:
        return fun(to_x(u))

    def jac_u(u: np.ndarray) -> np.ndarray:
        return jac(to_x(u)) * (half * (1.0 - np.tanh(u) ** 2))

    u0 = np.arctanh(np.clip((0.0 - lower) / half - 1.0, -0.999, 0.999))
    sensitivity = np.linalg.norm(jac(to_x(u0))[:-n_par], axis=0)
    res = least_squares(fun_u, u0, jac=jac_u, method="lm", x_scale="jac", ftol=1e-6,
                        xtol=1e-6, gtol=1e-8, max_nfev=200)
    x_hat = to_x(res.x)
    j_data = jac(x_hat)[:-n_par]
    r_data = fun(x_hat)[:-n_par]
    chi2 = float(np.sum(r_data**2)) / max(prob.n_eff - n_par, 1.0)
    chi2_scale = max(1.0, chi2)
    # einsum, not BLAS: the same bits whatever the number of threads (determinism)
    precision = np.einsum("ki,kj->ij", j_data, j_data) / chi2_scale + np.eye(n_par)
    cov = np.linalg.inv(precision)
    cov = 0.5 * (cov + cov.T)
    theta_hat = np.clip(prior + scale * x_hat, prior + scale * lower, prior + scale * upper)
    params = parameter_dict(model, theta_hat)
    site_values = _fit_site_parameters(model, prob, params, variables)
    sites = np.unique(prob.site_of_day)
    by_site = {k: {site_ids[int(i)]: float(v[j]) for j, i in enumerate(sites)}
               for k, v in site_values.items()}
    seen = comparison(fluxes(prob.drivers, {**params, **_per_day(site_values, prob)},
                             model.structure))
    structural = {v: StructuralError.fit(seen[v][prob.index[v]] - prob.obs[v], prob.obs_sd[v])
                  for v in variables if prob.index[v].size}
    return Calibration(model=model, scenario=scenario, variables=variables, x=x_hat, cov=cov,
                       sensitivity=sensitivity, chi2_scale=chi2_scale, n_obs=n_obs,
                       nfev=int(res.nfev), structural=structural, site_parameters=by_site)


def _per_day(site_values: dict[str, np.ndarray], prob: _Problem) -> dict[str, np.ndarray]:
    """Per-site values (one per site of ``prob.drivers``) broadcast to its days."""
    return {k: v[prob.drivers.site_of_day] for k, v in site_values.items()}


def _fit_site_parameters(model: FictionalModel, prob: _Problem, params: dict[str, float],
                         variables: tuple[str, ...]) -> dict[str, np.ndarray]:
    """Second stage: the site-level parameters of every calibration site, model fixed.

    Each site's parameters (:data:`SITE_PARAMETERS` that the scenario's variables inform) are
    fitted to that site's calibration days by a few Gauss-Newton steps with their Gaussian
    priors. A site's parameters affect only its own days, so every site is solved at once:
    one model run per parameter gives the whole (block-diagonal) Jacobian.

    Returns
    -------
    dict of numpy.ndarray
        Parameter name -> value per site of ``prob.drivers`` (in its site order).
    """
    names = [k for k, (_, _, _, informed_by) in SITE_PARAMETERS.items()
             if set(informed_by) & set(variables)]
    n_sites = prob.drivers.n_sites
    values = {k: np.full(n_sites, SITE_PARAMETERS[k][0]) for k in names}
    if not names:
        return values
    site_of = {v: prob.drivers.site_of_day[prob.index[v]] for v in variables}

    def residuals(vals: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
        seen = comparison(fluxes(prob.drivers, {**params, **_per_day(vals, prob)},
                                 model.structure))
        return {v: (seen[v][prob.index[v]] - prob.obs[v]) * prob.weight[v] for v in variables}

    k = len(names)
    for _ in range(SITE_ITERATIONS):
        base = residuals(values)
        jac = []
        for name in names:
            step = 1e-3 * SITE_PARAMETERS[name][1]
            bumped = residuals({**values, name: values[name] + step})
            jac.append({v: (bumped[v] - base[v]) / step for v in variables})
        # per-site normal equations with the Gaussian priors
        a = np.zeros((n_sites, k, k))
        g = np.zeros((n_sites, k))
        for v in variables:
            for i in range(k):
                g[:, i] += np.bincount(site_of[v], jac[i][v] * base[v], minlength=n_sites)
                for j in range(k):
                    a[:, i, j] += np.bincount(site_of[v], jac[i][v] * jac[j][v],
                                              minlength=n_sites)
        for i, name in enumerate(names):
            prior, sd, _, _ = SITE_PARAMETERS[name]
            a[:, i, i] += 1.0 / sd**2
            g[:, i] += (values[name] - prior) / sd**2
        delta = -np.linalg.solve(a, g[:, :, None])[:, :, 0]
        for i, name in enumerate(names):
            lo, hi = SITE_PARAMETERS[name][2]
            values[name] = np.clip(values[name] + delta[:, i], lo, hi)
    return values


def run_parameter_sets(model: FictionalModel, d: Drivers, thetas: np.ndarray,
                       names: tuple[str, ...] = ("nep", "le", "h"), chunk: int = 4,
                       extra: dict[str, np.ndarray] | None = None) -> dict[str, np.ndarray]:
    """Run many parameter vectors and keep a few outputs.

    Parameters
    ----------
    model : FictionalModel
        The model (structure, parameter names).
    d : Drivers
        Drivers of the days to simulate.
    thetas : numpy.ndarray
        Shape ``(B, P)``.
    names : tuple of str
        Outputs of :func:`~dashboard.demo.process_model.fluxes` to keep.
    chunk : int
        Parameter sets evaluated together (memory bound).
    extra : dict of numpy.ndarray, optional
        Per-day parameters shared by every set (the site-level parameters).

    Returns
    -------
    dict of numpy.ndarray
        Each of shape ``(B, N)``.
    """
    out: dict[str, list[np.ndarray]] = {k: [] for k in names}
    for i in range(0, thetas.shape[0], chunk):
        res = fluxes(d, {**parameter_dict(model, thetas[i : i + chunk]), **(extra or {})},
                     model.structure)
        for k in names:
            out[k].append(np.broadcast_to(res[k], (min(chunk, thetas.shape[0] - i), d.n)))
    return {k: np.concatenate(v, axis=0) for k, v in out.items()}
