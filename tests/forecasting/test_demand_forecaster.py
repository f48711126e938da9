"""DemandForecaster: recursive LightGBM points via an injected infer, Prophet quantiles,
explanations, validation -- on a daily model version trained from the real data."""

from __future__ import annotations

import shutil

import numpy as np
import pandas as pd
import pytest
from wasteml_testing import REPO_ROOT

from wasteml_models import DEMAND_DAILY
from wasteml_server.core.common import ModelRef
from wasteml_server.core.errors import InvalidArgumentError, NotFoundError
from wasteml_server.forecasting import repository
from wasteml_server.forecasting.demand import (
    GRAINS,
    DemandForecaster,
    ModelFamily,
    booster_infer,
    series_key,
)
from wasteml_server.forecasting.explain import contributions
from wasteml_tools.forecasting import training


@pytest.fixture(scope="module")
def repo(tmp_path_factory, data_dir):
    """A model repository with the committed demand_daily config and v1 trained into it (no
    backtest; Prophet intervals fitted)."""
    root = tmp_path_factory.mktemp("model_repository")
    (root / DEMAND_DAILY).mkdir()
    shutil.copy(REPO_ROOT / "model_repository" / DEMAND_DAILY / "config.pbtxt", root / DEMAND_DAILY)
    report = training.train_demand_grain(data_dir, root, "daily", run_backtest=False)
    assert report.version == 1 and report.parity.ok
    return root


@pytest.fixture(scope="module")
def forecaster(repo, data_dir) -> DemandForecaster:
    """The in-process (ONNX Runtime) forecaster of demand_daily v1."""
    return DemandForecaster.load(repo, data_dir, "daily")


def test_onnx_and_booster_infer_give_equal_forecasts(forecaster, repo, data_dir) -> None:
    """The same forecaster with the booster instead of ONNX Runtime gives the same 56-day
    forecast (1e-5 relative to the series' level): Triton and in-process agree by construction."""
    booster = repository.load_booster(repo, "demand_daily", 1)
    base = GRAINS["daily"].base_column(forecaster.spec)
    other = DemandForecaster.load(repo, data_dir, "daily", infer=booster_infer(booster, base))
    for sid in forecaster.series_ids:
        a = forecaster.forecast(sid, 56).point_kg
        b = other.forecast(sid, 56).point_kg
        scale = np.mean(forecaster._values[forecaster.series_ids.index(sid)])
        assert np.max(np.abs(a - b)) <= 1e-5 * scale


def test_forecast_shape_dates_and_quantiles(forecaster) -> None:
    """Points start the day after 2021-07-04, are >= 0, and quantiles are ordered with the
    0.5 quantile equal to the point forecast (Prophet spread re-centred on LightGBM)."""
    fc = forecaster.forecast("daily:garbage", 14, (0.1, 0.5, 0.9))
    assert fc.period_ends[0] == pd.Timestamp("2021-07-05") and len(fc.period_ends) == 14
    assert fc.model_name == "demand_daily" and fc.model_version == 1
    assert fc.model == ModelRef("demand_daily", 1) and fc.family is ModelFamily.LIGHTGBM
    assert fc.origin == pd.Timestamp("2021-07-04")
    assert fc.interval_model == ModelRef("demand_daily_prophet", 1)
    assert forecaster.forecast("daily:garbage", 2).interval_model is None
    assert (fc.point_kg >= 0).all()
    assert np.all(np.diff(fc.quantile_kg, axis=0) >= 0)
    np.testing.assert_allclose(fc.quantile_kg[1], fc.point_kg, rtol=1e-9, atol=1e-6)
    weekday = fc.period_ends.day_of_week < 5
    assert (fc.point_kg[weekday] > 2e5).all() and (fc.point_kg[~weekday] < 5e4).all()
    again = forecaster.forecast("daily:garbage", 14, (0.1, 0.5, 0.9))
    np.testing.assert_array_equal(again.quantile_kg, fc.quantile_kg)


def test_forecast_from_backtest_origin(forecaster, daily) -> None:
    """Forecasting from the holdout origin 2021-05-09 predicts the next week's weekdays within
    15 % of the actual garbage tonnage."""
    fc = forecaster.forecast("daily:garbage", 7, origin=pd.Timestamp("2021-05-09"))
    actual = daily.series("daily:garbage").reindex(fc.period_ends).to_numpy()
    wk = fc.period_ends.day_of_week < 5
    assert np.all(np.abs(fc.point_kg[wk] - actual[wk]) / actual[wk] < 0.15)


def test_prophet_family(forecaster) -> None:
    """The Prophet family returns Prophet's predictive median and ordered quantiles."""
    fc = forecaster.forecast("daily:recycling", 7, (0.1, 0.9), family=ModelFamily.PROPHET)
    assert fc.model == ModelRef("demand_daily_prophet", 1)
    assert (fc.quantile_kg[0] <= fc.point_kg).all() and (fc.point_kg <= fc.quantile_kg[1]).all()


def test_contributions_sum_to_prediction(forecaster, repo) -> None:
    """Contributions (incl. the base column's value) plus the bias equal the served forecast."""
    fc = forecaster.forecast("daily:garbage", 3, top_k=19)
    booster = repository.load_booster(repo, "demand_daily", 1)
    assert len(fc.contributions) == 3 and len(fc.contributions[0]) == 19
    names = list(forecaster.spec.names)
    x = np.array([[c.value for c in sorted(step, key=lambda c: names.index(c.feature))]
                  for step in fc.contributions], dtype=np.float32)
    contrib, bias = contributions(booster, x, GRAINS["daily"].base_column(forecaster.spec))
    np.testing.assert_allclose(contrib.sum(1) + bias, fc.point_kg, rtol=1e-5)
    top = fc.contributions[0]
    assert abs(top[0].contribution) >= abs(top[-1].contribution)


@pytest.mark.parametrize(("kwargs", "field"), [
    ({"series_id": "daily:compost"}, "series.id"),
    ({"horizon": 0}, "horizon"),
    ({"horizon": 57}, "horizon"),
    ({"quantiles": (0.5, 1.0)}, "quantiles[1]"),
    ({"origin": pd.Timestamp("2016-03-01")}, "forecast_origin"),
    ({"family": "arima"}, "model_family"),
    ({"top_k": 99}, "top_contributions"),
])
def test_bad_requests_name_the_field(forecaster, kwargs, field) -> None:
    """Invalid series, horizon, quantile, origin, family or top_k raise InvalidArgumentError on
    the request field."""
    args = {"series_id": "daily:garbage", "horizon": 7, **kwargs}
    with pytest.raises(InvalidArgumentError) as err:
        forecaster.forecast(**args)
    assert err.value.field == field


def test_series_key_and_missing_version(tmp_path, data_dir) -> None:
    """series_key maps the contract's (grain, id); loading from an empty repository is NOT_FOUND."""
    assert series_key("weekly", "PAM03") == "weekly:PAM03"
    with pytest.raises(InvalidArgumentError):
        series_key("monthly", "garbage")
    with pytest.raises(NotFoundError):
        DemandForecaster.load(tmp_path, data_dir, "daily")
