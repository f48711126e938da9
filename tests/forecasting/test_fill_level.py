"""Fill-level data, features, predictor API and the backtest against the constant-rate baseline."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from wasteml_testing import REPO_ROOT

from wasteml_export.lightgbm import add_input_column, booster_to_onnx
from wasteml_models import FILL_LEVEL
from wasteml_models.config import TabularSignature
from wasteml_server.core.errors import InvalidArgumentError
from wasteml_server.forecasting import fill_level as fl
from wasteml_server.forecasting.inference import OnnxRuntimeInfer
from wasteml_tools.forecasting import backtest


def test_readings_map_to_fractions(fullness, data_dir) -> None:
    """Readings 0..7 map to reading/7 and the overflow reading 8 maps to 1; '.' is missing."""
    raw = pd.read_csv(data_dir / fl.FULLNESS_FILE, encoding="utf-8-sig", dtype=str)
    col = "Bangwe_inorganic_1"
    assert raw[col].iloc[1] == "8" and fullness[col].iloc[1] == 1.0
    assert raw["Bangwe_Organic_1"].iloc[0] == "1.75" and fullness["Bangwe_Organic_1"].iloc[0] == 0.25
    dots = raw[col].str.strip() == "."
    assert fullness[col].isna().to_numpy()[dots.to_numpy()].all()
    vals = fullness.to_numpy()
    assert np.nanmin(vals) == 0.0 and np.nanmax(vals) == 1.0
    assert set(np.unique(vals[~np.isnan(vals)])) <= {0.0, 0.25, 0.5, 0.75, 1.0}


def test_study_rates_by_site(fullness, data_dir) -> None:
    """Each site's skips get the study's Q1 (e.g. Bangwe market 0.6535 per day)."""
    rates = fl.study_rates(data_dir, list(fullness.columns))
    assert rates["Bangwe_inorganic_1"] == pytest.approx(0.6535)
    assert rates["BCA_Organic_1"] == pytest.approx(0.0505)


def test_samples_exclude_emptyings(fullness) -> None:
    """No training pair spans an emptying: the target never drops more than one step below the
    origin, and no 0 reading lies after a non-zero origin before the target."""
    s = fl.build_samples(fullness, fl.own_rates(fullness))
    assert np.all(s.y >= s.fill_now - fl.STEP_FRACTION - 1e-9)
    assert np.all(s.horizon <= fl.MAX_HORIZON_DAYS)
    # spot-check: Bangwe_Organic_1 emptied on 2020-11-18 (5.25 -> 7 -> 0)
    bad = (s.skip == "Bangwe_Organic_1") & (s.origin == pd.Timestamp("2020-11-16")) & (
        s.target_day >= pd.Timestamp("2020-11-18"))
    assert not bad.any()


def test_state_features_from_readings() -> None:
    """Days since empty, rate since empty, recent rate and days at level from a hand-made log."""
    t = np.array([0.0, 1, 2, 3, 4, 5])
    f = np.array([0.5, 0.0, 0.25, 0.25, 0.5, 0.5])
    since, rate, recent, at_level = fl.state_features(t, f, 0.2)[1:5]
    assert since == 4 and rate == pytest.approx(0.5 / 4)
    assert recent == pytest.approx((0.5 - 0.25) / 3)  # reading at day 2
    assert at_level == 1


def _fold(fullness, start="2021-07-01"):
    start = pd.Timestamp(start)
    own = fl.own_rates(fullness[fullness.index < start])
    samples = fl.build_samples(fullness, own)
    train = samples.subset(np.asarray(samples.target_day < start))
    test = samples.subset(np.asarray((samples.origin >= start) & (samples.horizon >= 1)))
    return own, train, test


def test_model_beats_constant_rate_on_held_out_slice(fullness, data_dir) -> None:
    """Trained on readings before 2021-07-01, the model's MAE of fill fraction on origins from
    July 2021 beats the per-skip constant-rate baselines (own history and study Q1) at 1, 3, 7 days."""
    own, train, test = _fold(fullness)
    study = fl.study_rates(data_dir, list(fullness.columns))
    booster = fl.fit_fill_booster(train)
    pred = fl.predict_fill(booster, test.x)
    f0, h = test.fill_now, test.horizon.astype(float)
    own_r = np.array([own[s] for s in test.skip])
    study_r = np.array([study[s] for s in test.skip])
    for days in (1, 3, 7):
        m = test.horizon == days
        model_mae = np.mean(np.abs(test.y[m] - pred[m]))
        own_mae = np.mean(np.abs(test.y[m] - np.minimum(1, f0[m] + own_r[m] * h[m])))
        study_mae = np.mean(np.abs(test.y[m] - np.minimum(1, f0[m] + study_r[m] * h[m])))
        assert m.sum() > 200
        assert model_mae < own_mae and model_mae < study_mae, (days, model_mae, own_mae,
                                                               study_mae)


@pytest.fixture(scope="module")
def predictor_and_model(fullness):
    """A predictor with calibrated residual quantiles and its ONNX model, trained before July."""
    own, train, _ = _fold(fullness)
    booster = fl.fit_fill_booster(train, num_boost_round=80)
    resid = fl.calibrate(train, num_boost_round=80)
    signature = TabularSignature.load(REPO_ROOT / "model_repository", FILL_LEVEL)
    model = add_input_column(booster_to_onnx(booster, signature), 0)
    pred = fl.FillLevelPredictor(1, resid, own)
    return pred, OnnxRuntimeInfer(model.SerializeToString()), booster


def _bin(fullness, col, start, end, ahead_days):
    s = fullness[col][start:end].dropna()
    ts = (s.index - pd.Timestamp("1970-01-01")).total_seconds().to_numpy()
    return fl.BinReadings(col, ts, s.to_numpy(), ts[-1] + ahead_days * 86400.0)


def test_predictor_matches_in_process_model(fullness, predictor_and_model) -> None:
    """features -> ONNX -> postprocess gives the in-process booster's fill, an interval around
    it, and the constant-rate time to full from that fill."""
    pred, infer, booster = predictor_and_model
    bins = [_bin(fullness, "Naizi_inorganic_1", "2021-07-01", "2021-07-10", 3),
            _bin(fullness, "BCA_inorganic_1", "2021-07-01", "2021-07-12", 1.5)]
    x = pred.features(bins)
    assert x.shape == (2 * pred.rows_per_bin, len(fl.FEATURE_NAMES)) and x.dtype == np.float32
    out = pred.postprocess(x, infer(x), [b.bin_id for b in bins], coverage=0.8)
    ref = fl.predict_fill(booster, x[:: pred.rows_per_bin])
    for p, r in zip(out, ref, strict=True):
        assert p.fill_fraction == pytest.approx(r, abs=1e-6)
        assert 0.0 <= p.lower <= p.fill_fraction <= p.upper <= 1.0
        assert (p.lower_quantile, p.upper_quantile) == (0.1, 0.9)
        assert p.time_to_full_s is None or p.time_to_full_s >= 0.0
    row = x[0].astype(np.float64)
    days = fl.time_to_full_days(np.array([out[0].fill_fraction]), row[3:4], row[6:7], row[4:5])
    assert out[0].time_to_full_s == pytest.approx(days[0] * 86400.0)
    wide = pred.postprocess(x, infer(x), [b.bin_id for b in bins], coverage=0.95)
    assert all(w.upper - w.lower >= p.upper - p.lower for w, p in zip(wide, out, strict=True))


def test_time_to_full_days_constant_rate() -> None:
    """Time to full = (1 - fill) / mean(known rates); recent rate only when both are unknown;
    0 when full; inf without a positive rate."""
    nan = np.nan
    got = fl.time_to_full_days(np.array([0.5, 0.5, 0.5, 0.97, 0.5]),
                               np.array([0.25, nan, nan, 0.1, nan]),
                               np.array([0.05, 0.1, nan, nan, nan]),
                               np.array([9.0, 9.0, 0.25, 0.0, -0.1]))
    np.testing.assert_allclose(got, [0.5 / 0.15, 5.0, 2.0, 0.0, np.inf])


def test_time_to_full_is_zero_for_a_full_skip(predictor_and_model) -> None:
    """A skip read full for days is full at the target time (time to full 0)."""
    pred, infer, _ = predictor_and_model
    ts = np.arange(5) * 86400.0
    b = fl.BinReadings("x", ts, np.ones(5), ts[-1] + 86400.0)
    x = pred.features([b])
    (p,) = pred.postprocess(x, infer(x), ["x"])
    assert p.fill_fraction >= fl.FULL_FRACTION and p.time_to_full_s == 0.0


@pytest.mark.parametrize(("kwargs", "field"), [
    ({"fill_fractions": np.array([0.2, 1.3])}, "bins[0].recent_readings"),
    ({"times_s": np.array([10.0, 5.0])}, "bins[0].recent_readings"),
    ({"target_time_s": -86400.0}, "bins[0].target_time"),
    ({"target_time_s": 30 * 86400.0}, "bins[0].target_time"),
    ({"prior_fill_rate_per_day": -0.1}, "bins[0].prior_fill_rate_per_day"),
    ({"last_emptied_s": 99 * 86400.0}, "bins[0].last_emptied_at"),
])
def test_bad_bins_name_the_field(predictor_and_model, kwargs, field) -> None:
    """Invalid readings, times or rates raise InvalidArgumentError naming the request field."""
    pred, _, _ = predictor_and_model
    base = {"bin_id": "b", "times_s": np.array([0.0, 86400.0]),
            "fill_fractions": np.array([0.0, 0.25]), "target_time_s": 2 * 86400.0}
    base.update(kwargs)
    with pytest.raises(InvalidArgumentError) as err:
        pred.features([fl.BinReadings(**base)])
    assert err.value.field == field


def test_backtest_scores_all_methods_on_same_pairs(fullness, data_dir) -> None:
    """The fill backtest table has one row per horizon with every baseline scored on equal n."""
    study = fl.study_rates(data_dir, list(fullness.columns))
    bt = backtest.backtest_fill(fullness, study, start=pd.Timestamp("2021-09-01"),
                                num_boost_round=40)
    rows = backtest.score_fill(bt, (1, 3))
    assert [r["h"] for r in rows] == [1, 3]
    assert all(r["n"] > 50 for r in rows)
    assert "| 1 |" in backtest.format_fill_table(rows)


def test_explanations_sum_to_fill(fullness, predictor_and_model) -> None:
    """Fill contributions (fill_now carrying its own value) plus the bias equal the unclipped
    fill prediction of each bin; the largest comes first."""
    from wasteml_server.forecasting.explain import contributions

    pred, infer, booster = predictor_and_model
    bins = [_bin(fullness, "Chigumula_inorganic_1", "2021-07-01", "2021-07-09", 2),
            fl.BinReadings("new", np.array([0.0]), np.array([0.0]), 86400.0)]
    x = pred.features(bins)
    top = pred.explain(booster, x, top_k=3)
    assert len(top) == 2 and all(len(t) == 3 for t in top)
    assert abs(top[0][0].contribution) >= abs(top[0][2].contribution)
    rows = x[:: pred.rows_per_bin]
    contrib, bias = contributions(booster, rows, base_column=0)
    np.testing.assert_allclose(contrib.sum(1) + bias, infer(rows), rtol=1e-5, atol=1e-6)
