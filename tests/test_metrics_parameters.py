"""Parameter diagnostics on a table read by loaders.read_parameters."""

from __future__ import annotations

import math

import pandas as pd
import pytest

from dashboard.metrics import parameter_metrics
from loaders import read_parameters

CSV = (
    "parameter,long_name,process,pft,units,prior_value,prior_min,prior_max,prior_sd,"
    "posterior_value,posterior_sd,posterior_p05,posterior_p95,sensitivity_rank\n"
) + """vcmax,Max carboxylation,photosynthesis,DBF,umol m-2 s-1,50,20,80,10,60,4,,,1
q10,Q10 of respiration,respiration,,1,2,1,3,,2.99,0.1,,,2
slope,Stomatal slope,water,ENF,1,9,4,14,,4.1,,3.0,6.29,3
kn,Extinction,light,DBF,1,0.5,,,0.1,0.45,0.05,,,4
"""


@pytest.fixture
def table(tmp_path):
    path = tmp_path / "A.v1_Phase1b_Scen1_parameters.csv"
    path.write_text(CSV)
    return parameter_metrics(read_parameters(path)).set_index("parameter")


def test_uncertainty_reduction(table):
    # given prior_sd
    assert table.loc["vcmax", "uncertainty_reduction"] == pytest.approx(1 - 4 / 10)
    assert table.loc["vcmax", "prior_sd_source"] == "prior_sd"
    # uniform prior over [1, 3]: sd = 2 / sqrt(12)
    assert table.loc["q10", "prior_sd_used"] == pytest.approx(2 / math.sqrt(12))
    assert table.loc["q10", "uncertainty_reduction"] == pytest.approx(1 - 0.1 / (2 / 12**0.5))
    assert table.loc["q10", "prior_sd_source"] == "uniform_range"
    # posterior sd from the 5-95 % interval of a Gaussian: (6.29 - 3.0) / (2 * 1.6449)
    assert table.loc["slope", "posterior_sd_used"] == pytest.approx(3.29 / 3.2897, rel=1e-4)
    assert table.loc["slope", "posterior_sd_source"] == "p05_p95"


def test_range_position_and_edge_hitting(table):
    assert table.loc["vcmax", "prior_range_position"] == pytest.approx((60 - 20) / 60)
    assert not table.loc["vcmax", "edge_hitting"]
    # 2.99 in [1, 3]: 0.995 of the range -> within 2 % of the upper bound
    assert table.loc["q10", "prior_range_position"] == pytest.approx(0.995)
    assert table.loc["q10", "edge_hitting"] and table.loc["q10", "edge"] == "upper"
    # 4.1 in [4, 14]: 0.01 -> lower edge
    assert table.loc["slope", "edge_hitting"] and table.loc["slope", "edge"] == "lower"
    # no range: unknown, not False
    assert pd.isna(table.loc["kn", "prior_range_position"])
    assert pd.isna(table.loc["kn", "edge_hitting"])
    assert table.loc["kn", "uncertainty_reduction"] == pytest.approx(0.5)
    # pft defaults to "all"; input columns are kept
    assert table.loc["q10", "pft"] == "all"
    assert table.loc["vcmax", "model"] == "A" and table.loc["vcmax", "scenario"] == 1
