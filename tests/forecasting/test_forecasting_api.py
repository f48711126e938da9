"""Forecasting through the live server (real local Triton): PredictFillLevel and ForecastDemand
equal the in-process models of the served version, errors name the field, calls are audited."""

from __future__ import annotations

import time

import grpc
import numpy as np
import pandas as pd
import pytest
import sqlalchemy as sa
from wasteml_testing import DATA_DIR, REPO_ROOT, bad_request

from wasteml.client import WastemlClient
from wasteml.v1 import common_pb2, forecasting_pb2
from wasteml_server.adapters.storage.models import PredictionAudit
from wasteml_server.app import BackgroundServer
from wasteml_server.core.audit import request_hash
from wasteml_server.forecasting import fill_level as fl
from wasteml_server.forecasting import repository
from wasteml_server.forecasting.demand import DemandForecaster, ModelFamily, SeriesGrain
from wasteml_server.forecasting.inference import OnnxRuntimeInfer

MODEL_REPOSITORY = REPO_ROOT / "model_repository"
MODELS = ("fill_level", "demand_daily", "demand_route_weekly")
FILL_SKIPS = ("Naizi_inorganic_1", "Chigumula_inorganic_1", "Bangwe_Organic_1", "BCA_Organic_1")


@pytest.fixture(scope="module", autouse=True)
def trained_models() -> None:
    """Fail (not skip) when the forecasting models were not trained into model_repository."""
    missing = [m for m in MODELS if not repository.trained_versions(MODEL_REPOSITORY, m)]
    if missing:
        pytest.fail(f"no trained version of {', '.join(missing)} in {MODEL_REPOSITORY}: run "
                    "`.venv/bin/python -m wasteml_tools.forecasting.cli demand --no-backtest "
                    "--no-register` and `... fill-level --no-backtest --no-register`")


def _ts(seconds: float):
    from google.protobuf.timestamp_pb2 import Timestamp

    return Timestamp(seconds=int(seconds))


def real_bins() -> list[fl.BinReadings]:
    """Readings of four Blantyre skips (12 days of real logs each) at 0.5..7 days ahead."""
    fullness = fl.load_fullness(DATA_DIR)
    out = []
    for k, (col, ahead_days) in enumerate(zip(FILL_SKIPS, (0.5, 1.0, 3.0, 7.0), strict=True)):
        s = fullness[col][f"2021-0{6 + k % 3}-01":f"2021-0{6 + k % 3}-12"].dropna()
        ts = (s.index - pd.Timestamp("1970-01-01")).total_seconds().to_numpy()
        out.append(fl.BinReadings(col, ts, s.to_numpy(), ts[-1] + ahead_days * 86400.0))
    return out


def fill_request(bins: list[fl.BinReadings], **kw) -> forecasting_pb2.PredictFillLevelRequest:
    """The protobuf request for domain bins."""
    req = forecasting_pb2.PredictFillLevelRequest(**kw)
    for b in bins:
        m = req.bins.add(bin_id=b.bin_id, capacity_l=7000.0, target_time=_ts(b.target_time_s))
        for t, f in zip(b.times_s, b.fill_fractions, strict=True):
            m.recent_readings.add(time=_ts(t), fill_fraction=float(f))
    return req


def in_process_fill(bins, version: int, coverage: float = 0.8, top_k: int = 0):
    """The same version's predictor and model.onnx through in-process ONNX Runtime."""
    pred = fl.FillLevelPredictor.load(MODEL_REPOSITORY, version)
    x = pred.features(bins)
    vdir = repository.version_dir(MODEL_REPOSITORY, "fill_level", version)
    out = pred.postprocess(x, OnnxRuntimeInfer(vdir / "model.onnx")(x), [b.bin_id for b in bins],
                           coverage)
    contribs = (pred.explain(repository.load_booster(MODEL_REPOSITORY, "fill_level", version), x,
                             top_k) if top_k else None)
    return out, contribs


def test_fill_level_equals_in_process_model(client: WastemlClient) -> None:
    """PredictFillLevel on real skip readings equals the in-process model of the served version
    (fill, interval, quantiles, time to full) to 1e-5."""
    bins = real_bins()
    reply = client.predict_fill_level(fill_request(bins))
    assert reply.model.name == "fill_level"
    version = int(reply.model.version)
    assert version == repository.trained_versions(MODEL_REPOSITORY, "fill_level")[-1]
    expected, _ = in_process_fill(bins, version)
    assert [p.bin_id for p in reply.predictions] == [b.bin_id for b in bins]
    for got, want, b in zip(reply.predictions, expected, bins, strict=True):
        assert got.target_time.seconds == int(b.target_time_s)
        assert got.fill_fraction == pytest.approx(want.fill_fraction, abs=1e-5)
        assert got.interval.lower == pytest.approx(want.lower, abs=1e-5)
        assert got.interval.upper == pytest.approx(want.upper, abs=1e-5)
        assert (got.interval.lower_quantile, got.interval.upper_quantile) == (0.1, 0.9)
        assert got.interval.coverage == pytest.approx(0.8)
        assert got.interval.lower <= got.fill_fraction <= got.interval.upper
        assert got.HasField("time_to_full_s") == (want.time_to_full_s is not None)
        if want.time_to_full_s is not None:
            assert got.time_to_full_s == pytest.approx(want.time_to_full_s, rel=1e-5, abs=1.0)
        assert not got.contributions
    assert any(p.HasField("time_to_full_s") for p in reply.predictions)


def test_fill_level_contributions_and_coverage(client: WastemlClient) -> None:
    """Asked-for contributions equal the in-process pred_contrib of the served version's
    booster, and a 0.5 coverage narrows the interval to quantiles 0.25/0.75."""
    bins = real_bins()
    reply = client.predict_fill_level(fill_request(bins, top_contributions=3,
                                                   interval_coverage=0.5))
    expected, contribs = in_process_fill(bins, int(reply.model.version), 0.5, top_k=3)
    for got, want, top in zip(reply.predictions, expected, contribs, strict=True):
        assert (got.interval.lower_quantile, got.interval.upper_quantile) == (0.25, 0.75)
        assert got.interval.upper == pytest.approx(want.upper, abs=1e-5)
        assert [c.feature for c in got.contributions] == [c.feature for c in top]
        np.testing.assert_allclose([c.contribution for c in got.contributions],
                                   [c.contribution for c in top], atol=1e-9)
        np.testing.assert_allclose([c.value for c in got.contributions],
                                   [c.value for c in top], rtol=1e-6)


def demand_request(grain, sid, horizon, quantiles=(), **kw) -> forecasting_pb2.ForecastDemandRequest:
    """A ForecastDemand request."""
    return forecasting_pb2.ForecastDemandRequest(
        series=forecasting_pb2.SeriesId(grain=grain, id=sid), horizon=horizon,
        quantiles=list(quantiles), **kw)


@pytest.mark.parametrize(
    ("grain", "grain_name", "sid", "horizon", "quantiles", "top_k"),
    [
        (forecasting_pb2.SERIES_GRAIN_SERVICE_LINE_DAILY, "daily", "garbage", 21,
         (0.1, 0.5, 0.9), 0),
        (forecasting_pb2.SERIES_GRAIN_ROUTE_WEEKLY, "weekly", "PAM03", 8, (0.05, 0.95), 2),
    ],
)
def test_forecast_demand_equals_in_process_model(client, grain, grain_name, sid, horizon,
                                                 quantiles, top_k) -> None:
    """ForecastDemand (daily garbage; one weekly route with contributions) equals the
    in-process DemandForecaster of the served version to 1e-5 relative, in kilograms, with
    quantiles and the model and interval-model versions in the reply."""
    reply = client.forecast_demand(demand_request(grain, sid, horizon, quantiles,
                                                  top_contributions=top_k), timeout_s=120)
    name = "demand_daily" if grain_name == "daily" else "demand_route_weekly"
    version = int(reply.model.version)
    assert reply.model.name == name
    assert version == repository.trained_versions(MODEL_REPOSITORY, name)[-1]
    assert (reply.interval_model.name, reply.interval_model.version) == (f"{name}_prophet",
                                                                         str(version))
    local = DemandForecaster.load(MODEL_REPOSITORY, DATA_DIR, SeriesGrain(grain_name), version)
    want = local.forecast(f"{grain_name}:{sid}", horizon, quantiles, top_k=top_k)
    assert len(reply.points) == horizon
    last = reply.last_observed_date
    assert pd.Timestamp(last.year, last.month, last.day) == want.origin
    got_dates = [pd.Timestamp(p.date.year, p.date.month, p.date.day) for p in reply.points]
    assert got_dates == list(want.period_ends)
    np.testing.assert_allclose([p.point_kg for p in reply.points], want.point_kg, rtol=1e-5)
    assert want.point_kg.mean() > 1000.0  # kilograms of a city line / route, not tonnes
    for q, level in enumerate(quantiles):
        assert [p.quantiles[q].quantile for p in reply.points] == [level] * horizon
        np.testing.assert_allclose([p.quantiles[q].value_kg for p in reply.points],
                                   want.quantile_kg[q], rtol=1e-5)
    for point, step in zip(reply.points, want.contributions or [()] * horizon, strict=True):
        assert [c.feature for c in point.contributions] == [c.feature for c in step]
        assert len(point.contributions) == top_k


def test_prophet_family_equals_in_process_prophet(client: WastemlClient) -> None:
    """ForecastDemand with DEMAND_MODEL_PROPHET serves Prophet's median and quantiles of the
    version's stored models (equal to in-process) and names the Prophet model in the reply."""
    origin = common_pb2.CalendarDate(year=2021, month=5, day=9)
    reply = client.forecast_demand(demand_request(
        forecasting_pb2.SERIES_GRAIN_SERVICE_LINE_DAILY, "recycling", 10, (0.25, 0.75),
        model_family=forecasting_pb2.DEMAND_MODEL_PROPHET, forecast_origin=origin))
    version = int(reply.model.version)
    assert reply.model.name == "demand_daily_prophet"
    assert reply.last_observed_date == origin
    local = DemandForecaster.load(MODEL_REPOSITORY, DATA_DIR, SeriesGrain.SERVICE_LINE_DAILY, version)
    want = local.forecast("daily:recycling", 10, (0.25, 0.75),
                          origin=pd.Timestamp("2021-05-09"), family=ModelFamily.PROPHET)
    assert pd.Timestamp(reply.points[0].date.year, reply.points[0].date.month,
                        reply.points[0].date.day) == pd.Timestamp("2021-05-10")
    np.testing.assert_allclose([p.point_kg for p in reply.points], want.point_kg, rtol=1e-5)
    np.testing.assert_allclose([p.quantiles[1].value_kg for p in reply.points],
                               want.quantile_kg[1], rtol=1e-5)


@pytest.mark.parametrize(
    ("call", "field"),
    [
        (lambda c: c.forecast_demand(demand_request(
            forecasting_pb2.SERIES_GRAIN_SERVICE_LINE_DAILY, "garbage", 0)), "horizon"),
        (lambda c: c.forecast_demand(demand_request(
            forecasting_pb2.SERIES_GRAIN_ROUTE_WEEKLY, "PAM03", 9)), "horizon"),
        (lambda c: c.forecast_demand(demand_request(
            forecasting_pb2.SERIES_GRAIN_SERVICE_LINE_DAILY, "compost_of_mars", 7)), "series.id"),
        (lambda c: c.forecast_demand(demand_request(
            forecasting_pb2.SERIES_GRAIN_UNSPECIFIED, "garbage", 7)), "series.grain"),
        (lambda c: c.forecast_demand(demand_request(
            forecasting_pb2.SERIES_GRAIN_SERVICE_LINE_DAILY, "garbage", 7, (0.5, 1.2))),
         "quantiles[1]"),
        (lambda c: c.forecast_demand(demand_request(
            forecasting_pb2.SERIES_GRAIN_SERVICE_LINE_DAILY, "garbage", 7,
            forecast_origin=common_pb2.CalendarDate(year=2030, month=1, day=1))),
         "forecast_origin"),
        (lambda c: c.forecast_demand(demand_request(
            forecasting_pb2.SERIES_GRAIN_SERVICE_LINE_DAILY, "garbage", 7,
            model=common_pb2.ModelRef(name="demand_route_weekly"))), "model.name"),
        (lambda c: c.forecast_demand(demand_request(
            forecasting_pb2.SERIES_GRAIN_SERVICE_LINE_DAILY, "garbage", 7, model_family=7)),
         "model_family"),
        (lambda c: c.predict_fill_level(forecasting_pb2.PredictFillLevelRequest()), "bins"),
        (lambda c: c.predict_fill_level(fill_request(real_bins(), interval_coverage=1.5)),
         "interval_coverage"),
        (lambda c: c.predict_fill_level(fill_request(real_bins(), top_contributions=99)),
         "top_contributions"),
        (lambda c: c.predict_fill_level(fill_request(
            real_bins(), model=common_pb2.ModelRef(name="text_encoder"))), "model.name"),
        (lambda c: c.predict_fill_level(fill_request(
            real_bins(), model=common_pb2.ModelRef(version="latest"))), "model.version"),
        (lambda c: c.predict_fill_level(fill_request(
            [fl.BinReadings("x", np.array([0.0, 86400.0]), np.array([0.5, 1.25]), 2 * 86400.0)])),
         "bins[0].recent_readings"),
        (lambda c: c.predict_fill_level(fill_request(
            [fl.BinReadings("x", np.array([0.0]), np.array([0.5]), 30 * 86400.0)])),
         "bins[0].target_time"),
    ],
)
def test_bad_input_is_invalid_argument_naming_the_field(client: WastemlClient, call,
                                                        field) -> None:
    """Bad forecasting input gives INVALID_ARGUMENT with a BadRequest violation on the field."""
    with pytest.raises(grpc.RpcError) as info:
        call(client)
    assert info.value.code() == grpc.StatusCode.INVALID_ARGUMENT, info.value.details()
    assert [v.field for v in bad_request(info.value).field_violations] == [field]


def test_unknown_version_is_not_found(client: WastemlClient) -> None:
    """A pinned fill_level version that was never trained gives NOT_FOUND."""
    with pytest.raises(grpc.RpcError) as info:
        client.predict_fill_level(fill_request(real_bins(),
                                               model=common_pb2.ModelRef(version="999")))
    assert info.value.code() == grpc.StatusCode.NOT_FOUND
    assert "999" in info.value.details()


def test_prediction_is_audited(client: WastemlClient, live_server: BackgroundServer) -> None:
    """A served PredictFillLevel lands in prediction_audit with the request's sha256, the
    model version, the predictions and a latency."""
    request = fill_request(real_bins()[:2], top_contributions=2)
    reply = client.predict_fill_level(request)
    digest = request_hash(request.SerializeToString(deterministic=True))
    app = live_server.app
    live_server.call(app.audit.flush())
    deadline = time.monotonic() + 10.0
    rows = []
    while not rows and time.monotonic() < deadline:
        with app.db.session() as session:
            rows = session.execute(sa.select(PredictionAudit).where(
                PredictionAudit.request_hash == digest)).scalars().all()
            rows = [(r.rpc_method, r.model_name, r.model_version, r.output, r.latency_ms)
                    for r in rows]
        time.sleep(0.05)
    assert rows, "no audit row for the call"
    method, name, version, output, latency_ms = rows[-1]
    assert method == "/wasteml.v1.Forecasting/PredictFillLevel"
    assert (name, str(version)) == ("fill_level", reply.model.version)
    assert [p["bin_id"] for p in output["predictions"]] == [p.bin_id for p in reply.predictions]
    assert output["predictions"][0]["fill"] == pytest.approx(reply.predictions[0].fill_fraction,
                                                             abs=1e-6)
    assert len(output["predictions"][0]["top"]) == 2
    assert latency_ms > 0


def test_demand_forecast_is_audited(client: WastemlClient, live_server: BackgroundServer) -> None:
    """A served ForecastDemand lands in prediction_audit with its points in kilograms."""
    request = demand_request(forecasting_pb2.SERIES_GRAIN_SERVICE_LINE_DAILY, "recycling", 5,
                             (0.2, 0.8))
    reply = client.forecast_demand(request)
    digest = request_hash(request.SerializeToString(deterministic=True))
    app = live_server.app
    live_server.call(app.audit.flush())
    with app.db.session() as session:
        row = session.execute(sa.select(PredictionAudit).where(
            PredictionAudit.request_hash == digest)).scalars().one()
        assert (row.model_name, str(row.model_version)) == ("demand_daily", reply.model.version)
        np.testing.assert_allclose(row.output["point_kg"], [p.point_kg for p in reply.points],
                                   atol=1e-3)
        assert row.output["interval_model"] == f"demand_daily_prophet:{int(reply.model.version)}"
