"""About: what CalLMIP is, the metrics in plain words, and the attributions the data require."""

from __future__ import annotations

import panel as pn
import param

ABOUT_MD = r"""
## About CalLMIP Explorer

**CalLMIP** — the Calibrated Land Model Intercomparison Project — asks how much the parameter
calibration that modelling groups already do (“come as you are”) reduces the misfit between land
models and observations, and the spread between models. In Phase 1 each group runs its model at
21 flux-tower **calibration** sites with default parameters (**prior**) and with parameters
calibrated against daily observations of net ecosystem exchange (NEE), latent heat (Qle) and
sensible heat (Qh) (**posterior**), and then at 10 held-out **validation** sites. Scenario 1
calibrates against NEE + Qle + Qh (required); Scenarios 2–6 against NEE, Qle, Qh, NEE + Qle and
Qle + Qh (optional).

### Signs and units
Observed **NEE** is a daily sum in gC m⁻² d⁻¹, **positive when CO₂ goes to the atmosphere**
(summer uptake is negative). Models report **nep** in kgC m⁻² s⁻¹, positive into the land, so the
Explorer compares **NEE = −nep × 1000 × 86400**. Qle and Qh are daily means in W m⁻², compared
with the models' hfls and hfss.

### Metrics (computed on the days where model and observation are both valid)
| metric | definition | reads as |
|---|---|---|
| n | number of valid days used | every number carries it; below the minimum (30 days by default) the cell says *insufficient data* |
| bias | mean(M − O) | systematic offset |
| RMSE | √mean((M − O)²) | typical error, in the variable's units |
| NME | Σ\|M − O\| / Σ\|O − mean(O)\| | < 1 beats the observed mean (PLUMBER) |
| r | Pearson correlation | timing and shape |
| SD ratio | σ_M / σ_O | too flat (< 1) or too variable (> 1) |
| χ² | mean(((M − O) / σ_O)²), σ_O the measurement uncertainty | ≈ 1 when errors match the data's uncertainty |
| misfit reduction | 1 − RMSE_post / RMSE_prior, on the **same days** for both (also for χ²) | 0 no change, > 0 better, < 0 worse |
| inter-model spread | mean over common days of the standard deviation across models | disagreement between models |
| spread reduction | 1 − spread_post / spread_prior, only models with both stages | > 0: models agree more after calibration |
| coverage | fraction of observations inside the 95 % **predictive** interval, observation error σ_O included: posterior ± 1.96 √(σ_post² + σ_O²) for a ±σ submission; ensemble mean ± √((t₍m−1₎ s √(1 + 1/m))² + (1.96 σ_O)²) for an m-member ensemble (s the members' standard deviation, t the 97.5 % Student-t quantile), which accounts for the ensemble size | ≈ 0.95 when both the posterior uncertainty and the observation uncertainty are right; lower: over-confident (too narrow), higher: under-confident (too wide) |
| CRPS | continuous ranked probability score, in the variable's units: the Gaussian closed form for a ±σ submission, the **fair** ensemble CRPS (Ferro 2014) for an ensemble, so that both forms and all ensemble sizes score alike; observation error not included | lower is better |
| uncertainty reduction | 1 − σ_post / σ_prior of a parameter | how much the data constrained it |
| edge hitting | posterior within 2 % of a prior bound | a sign of structural error |

Validation sites are scored the same way where observations exist (spatial validation); the
**generalisation gap** is the calibration-site improvement minus the validation-site improvement.

**Observation uncertainty of Qle and Qh.** The observed Qle and Qh values are the
**uncorrected** fluxes, but their uncertainties (σ_O) describe the **energy-balance-corrected**
fluxes (the files' Qle/Qh uncertainty is the FLUXNET2015 `Qle_cor`/`Qh_cor` joint uncertainty).
χ² and coverage combine the two: the gap between corrected and uncorrected fluxes is not part of
σ_O, so for a model that closes the energy balance χ² can come out larger, and coverage lower,
than the model's real error would give.

**Calibrated parameters** (the Parameters view) come from each group's parameter table
(`<model>.<version>_Phase1b_Scen<N>_parameters.csv`, format in the README). Each parameter is
placed in its prior range, (θ − prior_min) / (prior_max − prior_min): 0 is the prior minimum,
1 the maximum. The 5–95 % intervals are the table's p05–p95, else the value ± 1.645 σ (a uniform
prior's when no prior σ is given). Uncertainty reduction = 1 − σ_post / σ_prior (σ_prior from
the table, else the range / √12). A posterior within 2 % of a bound is flagged: the calibration
wanted to go further than the prior allowed, often a sign of structural error. Parameter shifts
(posterior − prior, in prior-range units) are shown next to the model's median misfit reduction
at the calibration sites, with the number of sites n.

**Global totals** weight each grid cell by its land area (cell area × the run's land fraction,
else the Natural Earth land mask): fluxes are per unit land area.

### Data and attribution
- CalLMIP Phase 1 protocol v2 (R. S. N. Deepak, N. MacBean and the CalLMIP steering committee),
  data and template from the CalLMIP Phase1 repository (MIT licence).
- Flux observations derive from **FLUXNET2015** (Pastorello et al., 2020, *Scientific Data* 7, 225),
  used under **CC-BY-4.0**; site metadata from PLUMBER2 (Abramowitz et al., 2024).
- The embedded **demo archive is synthetic**: fictional models calibrated against synthetic
  observations at the real site coordinates. It is for learning the tool, not for science.
- Land outline: Natural Earth (public domain).
"""


class AboutView(pn.viewable.Viewer):
    """Static About panel (only project-authored text, no file content)."""

    selection = param.Parameter(doc="The session's Selection (unused; kept for a uniform API)")

    def __panel__(self) -> pn.viewable.Viewable:
        return pn.pane.Markdown(ABOUT_MD, sizing_mode="stretch_width", max_width=1000)
