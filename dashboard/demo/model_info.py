"""The model-information files of the demo's fictional models (protocol v2 §12).

Each file says what the demo really did (:mod:`dashboard.demo.calibration`): every model is
calibrated by bounded least squares over all calibration sites at once, with the scenario's
fluxes in one cost function, a Laplace posterior and a structural error per variable; the
site-level initial soil carbon is fitted at the calibration sites. The models differ in their
parameters, their optional scenarios and whether they write posterior ensembles.
"""

from __future__ import annotations

from pathlib import Path

import yaml

from dashboard.demo.models import FictionalModel


def model_info(model: FictionalModel) -> dict:
    """The model-information mapping of a fictional model (keys of :mod:`loaders.model_info`)."""
    info = {
        "model": model.name,
        "version": model.version,
        "description": f"SYNTHETIC demo model: {model.description}",
        "references": ["none: a fictional model of the CalLMIP Explorer demo archive"],
        "n_cycle": False, "fire": False, "dynamic_vegetation": False,
        "method": "gradient",
        "method_detail": ("bounded non-linear least squares (scipy least_squares, trust-region "
                          "reflective) over all calibration sites, residuals weighted by the "
                          "observation and model error, Gaussian prior terms; Laplace "
                          "posterior"),
        "sensitivity_analysis": False,
        "selection_detail": "every parameter of the toy model's processes",
        "n_parameters_selected": len(model.parameters),
        "spin_up": "soil carbon spun up to the site's mean inputs, with a disequilibrium "
                   "fraction of NPP left as a sink",
        "initial_conditions": "calibrated",
        "multi_stream": "simultaneous",
        "global_parameters": "multi_site",
        "pfts": "all",
        "other_uncertainties": ["structural"],
        "optional_scenarios": [s for s in model.scenarios if s != 1],
        "lai": "prognostic",
    }
    if model.ensemble:
        info["ensemble_size"] = model.ensemble
    return info


def write_model_info(folder: Path, model: FictionalModel) -> Path:
    """Write ``<model>.<version>_model_info.yaml`` into ``folder`` and return its path."""
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / f"{model.model_id}_model_info.yaml"
    text = ("# CalLMIP model information table (protocol v2 section 12); SYNTHETIC demo data\n"
            + yaml.safe_dump(model_info(model), sort_keys=False, allow_unicode=True,
                             width=100))
    path.write_text(text, encoding="utf-8")
    return path
