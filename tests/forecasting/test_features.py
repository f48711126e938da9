"""Demand features on real slices: lags, holidays, route weekdays, train/serve consistency."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from wasteml_server.core.errors import InvalidArgumentError
from wasteml_server.forecasting.demand import recursive_forecast, training_matrix
from wasteml_server.forecasting.features import (
    DemandFeatureSpec,
    feature_rows,
    lag_block,
    route_weekday,
)


def test_collection_holidays_selected_from_data(holiday_names) -> None:
    """Thanksgiving, Christmas and New Year's Day stop collection in Austin; Memorial Day does not."""
    assert {"Thanksgiving Day", "Christmas Day", "New Year's Day"} <= set(holiday_names)
    assert "Memorial Day" not in holiday_names


def test_daily_lags_are_shifted_values(daily, holiday_names) -> None:
    """lag_k of the row for day t is the series value at t - k days (real garbage slice)."""
    spec = DemandFeatureSpec("daily", daily.series_ids, holiday_names)
    pos = np.array([daily.index.get_loc(pd.Timestamp("2021-06-15"))])
    x = feature_rows(daily.values, daily.index, pos, spec)
    names = list(spec.names)
    for k in spec.lags:
        assert x[0, names.index(f"lag_{k}")] == pytest.approx(daily.values[0, pos[0] - k], rel=1e-6)
    same = daily.values[0, pos[0] - np.array([7, 14, 21, 28])].mean()
    assert x[0, names.index("mean_same_dow_4")] == pytest.approx(same, rel=1e-6)
    assert x[0, names.index("dow")] == 1  # 2021-06-15 is a Tuesday
    assert x[1, names.index("series")] == 1  # recycling row


def test_holiday_shift_features(daily, holiday_names) -> None:
    """Thanksgiving 2019 (Thu) is a holiday; the Friday after carries one shift; lag-7 flags
    follow one week later."""
    spec = DemandFeatureSpec("daily", daily.series_ids, holiday_names)
    names = list(spec.names)
    days = pd.to_datetime(["2019-11-28", "2019-11-29", "2019-12-05", "2019-11-27"])
    pos = np.array([daily.index.get_loc(d) for d in days])
    x = feature_rows(daily.values[:1], daily.index, pos, spec)
    assert x[:, names.index("hol")].tolist() == [1, 0, 0, 0]
    assert x[:, names.index("hol_shift")].tolist() == [0, 1, 0, 0]
    assert x[:, names.index("hol_lag7")].tolist() == [0, 0, 1, 0]
    assert x[:, names.index("hol_next")].tolist() == [0, 0, 0, 1]


def test_route_weekday_parsing() -> None:
    """The letter before the digits of a route code is its service weekday (M/T/W/H/F)."""
    assert route_weekday("weekly:PAM03") == 0
    assert route_weekday("weekly:RHF12") == 4
    assert route_weekday("weekly:XYZ") == -1


def test_recursive_rows_equal_training_rows_with_true_values(daily, holiday_names) -> None:
    """Recursive forecasting fed the true values builds exactly the training rows (no skew)."""
    spec = DemandFeatureSpec("daily", daily.series_ids, holiday_names)
    cut = daily.until(pd.Timestamp("2021-05-09"))
    t = len(cut.index)
    truth = daily.values[:, t : t + 10]
    step = iter(range(10))

    def oracle(features: np.ndarray) -> np.ndarray:
        return truth[:, next(step)]

    pred, rows = recursive_forecast(cut.values, cut.index, spec, 10, oracle)
    np.testing.assert_array_equal(pred, truth)
    x_all, _ = training_matrix(daily.until(daily.index[t + 9]), spec)
    n_per_series = len(x_all) // 2
    for s in range(2):
        expect = x_all[(s + 1) * n_per_series - 10 : (s + 1) * n_per_series]
        np.testing.assert_array_equal(rows[:, s, :], expect)


def test_weekly_training_rows_skip_weeks_before_route_start(weekly, holiday_names) -> None:
    """Weekly training rows start at each route's first loaded week (no rows for absent routes)."""
    spec = DemandFeatureSpec("weekly", weekly.series_ids, holiday_names)
    x, y = training_matrix(weekly, spec)
    first = np.argmax(weekly.values > 0, axis=1)
    t = weekly.values.shape[1]
    expected = sum(t - max(spec.max_lag, f) for f in first)
    assert len(y) == expected == len(x)


def test_lag_block_refuses_short_history(daily, holiday_names) -> None:
    """Asking for a position with less than max_lag periods of history is refused."""
    spec = DemandFeatureSpec("daily", daily.series_ids, holiday_names)
    with pytest.raises(InvalidArgumentError) as err:
        lag_block(daily.values, np.array([100]), spec)
    assert err.value.field == "history"
