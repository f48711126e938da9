"""Issue 6 targets on the data README's holdout windows (full backtests: slow, ~1 min)."""

from __future__ import annotations

import pandas as pd
import pytest

from wasteml_server.forecasting import fill_level as fl
from wasteml_server.forecasting.demand import GRAINS
from wasteml_server.forecasting.features import DemandFeatureSpec, select_collection_holidays
from wasteml_tools.forecasting import backtest


@pytest.mark.slow
@pytest.mark.parametrize("grain", ["daily", "weekly"])
def test_demand_mase_below_one_vs_seasonal_naive(grain, daily, weekly) -> None:
    """LightGBM has MASE < 1 and a lower WAPE than both seasonal naive and naive on every
    scored group of the README protocol (daily: 8 weekly origins x 1-7 d, Mon-Fri; weekly:
    1 origin x 1-8 weeks, 140 routes); the 80 % Prophet interval covers 70-97 %."""
    garbage = daily.series("daily:garbage")
    names = select_collection_holidays(garbage[garbage.index < backtest.HOLDOUT_START])
    series = daily if grain == "daily" else weekly
    spec = DemandFeatureSpec(grain, series.series_ids, names)
    bt = backtest.backtest_demand(series, spec, GRAINS[grain], intervals=True)
    rows = backtest.score_demand(bt)
    print("\n" + backtest.format_demand_table(rows))
    by = {(r["group"], r["method"]): r for r in rows}
    for group in {r["group"] for r in rows}:
        lgbm = by[(group, "lightgbm")]
        assert lgbm["mase"] < 1.0, group
        assert lgbm["wape"] < by[(group, "seasonal_naive")]["wape"], group
        assert lgbm["wape"] < by[(group, "naive")]["wape"], group
        assert 0.70 <= lgbm["coverage"] <= 0.97, group


@pytest.mark.slow
def test_fill_level_beats_baselines_at_1_3_7_days(fullness, data_dir) -> None:
    """Rolling monthly origins from 2021-06: the model's MAE beats constant rate (own history and
    study Q1) at 1, 3 and 7 days, and persistence at 3 and 7 days."""
    study = fl.study_rates(data_dir, list(fullness.columns))
    bt = backtest.backtest_fill(fullness, study, start=pd.Timestamp("2021-06-01"))
    rows = backtest.score_fill(bt)
    print("\n" + backtest.format_fill_table(rows))
    for r in rows:
        assert r["lightgbm"] < r["rate_own"] and r["lightgbm"] < r["rate_study"], r
        if r["h"] >= 3:
            assert r["lightgbm"] < r["persistence"], r
