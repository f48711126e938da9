"""Hostile input to PredictFillLevel and ForecastDemand through the live server (real local
Triton): every bad value is INVALID_ARGUMENT naming its request field with a bounded message,
never INTERNAL, UNKNOWN, a Triton outage (UNAVAILABLE) or an oversized status
(RESOURCE_EXHAUSTED); sizes are refused before they are decoded (issue 12, #6 and #10)."""

from __future__ import annotations

import asyncio
import time

import grpc
import pytest
from google.protobuf.timestamp_pb2 import Timestamp
from test_forecasting_api import demand_request, fill_request, real_bins
from wasteml_testing import bad_request

from wasteml.client import WastemlClient
from wasteml.v1 import common_pb2, forecasting_pb2
from wasteml_server.app import BackgroundServer
from wasteml_server.core.settings import Settings
from wasteml_server.forecasting.service import ForecastLimits
from wasteml_server.transport.servicers.forecasting import ForecastingServicer

DAILY = forecasting_pb2.SERIES_GRAIN_SERVICE_LINE_DAILY
NAN, INF = float("nan"), float("inf")
LIMITS = Settings()
BAD_VERSIONS = ["²", "٣", "0", "-3", "9" * 40, str(2**63)]


def _one_bin(change) -> forecasting_pb2.PredictFillLevelRequest:
    request = fill_request(real_bins()[:1])
    change(request.bins[0])
    return request


def _readings(n_bins: int, per_bin: int) -> forecasting_pb2.PredictFillLevelRequest:
    """``n_bins`` bins with ``per_bin`` readings each, one a minute, target an hour later."""
    request = forecasting_pb2.PredictFillLevelRequest()
    t0 = 1_623_000_000
    for k in range(n_bins):
        b = request.bins.add(bin_id=f"bin-{k}", target_time=Timestamp(seconds=t0 + per_bin * 60 + 3600))
        for i in range(per_bin):
            b.recent_readings.add(time=Timestamp(seconds=t0 + 60 * i), fill_fraction=0.5)
    return request


def _invalid(client: WastemlClient, call, field: str) -> None:
    with pytest.raises(grpc.RpcError) as info:
        call(client)
    err = info.value
    assert err.code() == grpc.StatusCode.INVALID_ARGUMENT, (err.code(), err.details())
    assert [v.field for v in bad_request(err).field_violations] == [field]
    assert len(err.details()) < 1000


FILL_CASES = [
    (lambda: _one_bin(lambda b: setattr(b, "capacity_l", INF)), "bins[0].capacity_l"),
    (lambda: _one_bin(lambda b: setattr(b, "capacity_l", NAN)), "bins[0].capacity_l"),
    (lambda: _one_bin(lambda b: setattr(b, "capacity_l", -1.0)), "bins[0].capacity_l"),
    (lambda: _one_bin(lambda b: setattr(b.recent_readings[0], "fill_fraction", NAN)),
     "bins[0].recent_readings"),
    (lambda: _one_bin(lambda b: setattr(b.recent_readings[0], "fill_fraction", -INF)),
     "bins[0].recent_readings"),
    (lambda: _one_bin(lambda b: setattr(b, "prior_fill_rate_per_day", 1e300)),
     "bins[0].prior_fill_rate_per_day"),
    (lambda: _one_bin(lambda b: setattr(b, "prior_fill_rate_per_day", NAN)),
     "bins[0].prior_fill_rate_per_day"),
    (lambda: _one_bin(lambda b: b.target_time.CopyFrom(Timestamp(seconds=253_402_300_799))),
     "bins[0].target_time"),
    (lambda: _one_bin(lambda b: b.target_time.CopyFrom(Timestamp(seconds=2**62))),
     "bins[0].target_time"),
    (lambda: _one_bin(lambda b: b.recent_readings[0].time.CopyFrom(Timestamp(seconds=-2**62))),
     "bins[0].recent_readings[0].time"),
    (lambda: _one_bin(lambda b: b.last_emptied_at.CopyFrom(Timestamp(seconds=-2**62))),
     "bins[0].last_emptied_at"),
    (lambda: _one_bin(lambda b: setattr(b, "bin_id", "b" * (LIMITS.forecast_max_bin_id_chars + 1))),
     "bins[0].bin_id"),
    (lambda: fill_request(real_bins()[:1], interval_coverage=NAN), "interval_coverage"),
    (lambda: fill_request(real_bins()[:1], interval_coverage=-INF), "interval_coverage"),
    (lambda: fill_request(real_bins()[:1], top_contributions=-(2**31)), "top_contributions"),
    (lambda: fill_request(real_bins()[:1], model=common_pb2.ModelRef(name="n" * 100_000)),
     "model.name"),
    *[(lambda v=v: fill_request(real_bins()[:1], model=common_pb2.ModelRef(version=v)),
       "model.version") for v in BAD_VERSIONS],
    (lambda: fill_request(real_bins()[:1] * (LIMITS.forecast_max_bins + 1)), "bins"),
    (lambda: _readings(1, LIMITS.forecast_max_readings_per_bin + 1), "bins[0].recent_readings"),
    (lambda: _readings(LIMITS.forecast_max_readings // LIMITS.forecast_max_readings_per_bin + 1,
                       LIMITS.forecast_max_readings_per_bin), "bins"),
]


@pytest.mark.parametrize(("make", "field"), FILL_CASES)
def test_bad_fill_input_names_the_field(client: WastemlClient, make, field: str) -> None:
    """Infinite or NaN capacity, rates and readings, timestamps out of range, a too-long bin id,
    malformed versions ("²" gave INTERNAL, "٣" NOT_FOUND for version 3), a 100 KB model name
    (its echo gave RESOURCE_EXHAUSTED) and too many bins or readings are INVALID_ARGUMENT."""
    request = make()
    _invalid(client, lambda c: c.predict_fill_level(request), field)


def test_fill_limits_are_inclusive(client: WastemlClient) -> None:
    """A bin with exactly the maximum readings per bin and a bin id of exactly the maximum
    length are served."""
    request = _readings(1, LIMITS.forecast_max_readings_per_bin)
    request.bins[0].bin_id = "b" * LIMITS.forecast_max_bin_id_chars
    reply = client.predict_fill_level(request)
    assert [p.bin_id for p in reply.predictions] == [request.bins[0].bin_id]
    assert 0.0 <= reply.predictions[0].fill_fraction <= 1.0


def test_large_fill_request_is_decoded_off_the_event_loop(live_server: BackgroundServer) -> None:
    """The servicer decodes the largest legal fill request (every reading the limits allow),
    serializes it for the audit and encodes the reply off the event loop: a probe on the loop
    that sleeps 5 ms at a time sees no gap of 100 ms while the call runs on the live service
    (real Triton). Decoding on the loop stalled it for about 0.2 s.

    The servicer is called directly: the interceptors' own per-request work is the
    transport's (its enum check walks the request on the loop)."""
    per_bin = LIMITS.forecast_max_readings_per_bin
    request = _readings(LIMITS.forecast_max_readings // per_bin, per_bin)
    servicer = ForecastingServicer(live_server.app.forecasting)
    gaps: list[float] = []

    async def run() -> forecasting_pb2.PredictFillLevelResponse:  # on the server's loop
        stop = asyncio.Event()

        async def probe() -> None:
            last = time.perf_counter()
            while not stop.is_set():
                await asyncio.sleep(0.005)
                now = time.perf_counter()
                gaps.append(now - last)
                last = now

        task = asyncio.ensure_future(probe())
        await asyncio.sleep(0.02)
        try:
            return await servicer.PredictFillLevel(request, None)
        finally:
            stop.set()
            await task

    reply = live_server.call(run())
    print(f"PredictFillLevel of {len(request.bins)} bins x {per_bin} readings: longest event-loop "
          f"gap {max(gaps) * 1000:.1f} ms")
    assert len(reply.predictions) == len(request.bins)
    assert max(gaps) < 0.1, f"event loop stalled {max(gaps) * 1000:.0f} ms"


DEMAND_CASES = [
    (lambda: demand_request(DAILY, "garbage", 7, (0.5,) * (LIMITS.forecast_max_quantiles + 1)),
     "quantiles"),
    (lambda: demand_request(DAILY, "garbage", 7, (0.5, NAN)), "quantiles[1]"),
    (lambda: demand_request(DAILY, "garbage", 7, (INF,)), "quantiles[0]"),
    (lambda: demand_request(DAILY, "garbage", 7, (0.0,)), "quantiles[0]"),
    (lambda: demand_request(DAILY, "garbage", 2**31 - 1), "horizon"),
    (lambda: demand_request(DAILY, "garbage", -(2**31)), "horizon"),
    (lambda: demand_request(DAILY, "", 7), "series.id"),
    (lambda: demand_request(DAILY, "x" * 100_000, 7), "series.id"),
    (lambda: demand_request(DAILY, "garb\x00age", 7), "series.id"),
    (lambda: demand_request(99, "garbage", 7), "series.grain"),
    (lambda: demand_request(DAILY, "garbage", 7, model_family=99), "model_family"),
    (lambda: demand_request(DAILY, "garbage", 7, top_contributions=2**31 - 1), "top_contributions"),
    (lambda: demand_request(DAILY, "garbage", 7, model=common_pb2.ModelRef(name="n" * 100_000)),
     "model.name"),
    (lambda: demand_request(DAILY, "garbage", 7,
                            forecast_origin=common_pb2.CalendarDate(year=1, month=1, day=1)),
     "forecast_origin"),
    (lambda: demand_request(DAILY, "garbage", 7,
                            forecast_origin=common_pb2.CalendarDate(year=9999, month=12, day=31)),
     "forecast_origin"),
    (lambda: demand_request(DAILY, "garbage", 7,
                            forecast_origin=common_pb2.CalendarDate(year=2021, month=2, day=30)),
     "forecast_origin"),
    *[(lambda v=v: demand_request(DAILY, "garbage", 7, model=common_pb2.ModelRef(version=v)),
       "model.version") for v in BAD_VERSIONS],
    *[(lambda v=v: demand_request(DAILY, "garbage", 7, model_family=forecasting_pb2.DEMAND_MODEL_PROPHET,
                                  model=common_pb2.ModelRef(version=v)), "model.version")
      for v in BAD_VERSIONS],
]


@pytest.mark.parametrize(("make", "field"), DEMAND_CASES)
def test_bad_demand_input_names_the_field(client: WastemlClient, make, field: str) -> None:
    """Too many quantiles (20,000 made a 21 MB reply: RESOURCE_EXHAUSTED after 7 s), NaN/inf
    levels, int32 extremes, empty/huge/control-character series ids (100 KB gave
    RESOURCE_EXHAUSTED), unknown enum values, far dates and malformed versions (40 digits gave
    NOT_FOUND) are INVALID_ARGUMENT naming the field."""
    request = make()
    _invalid(client, lambda c: c.forecast_demand(request), field)


def test_duplicate_quantiles_are_answered_in_request_order(client: WastemlClient) -> None:
    """Repeated quantile levels are served, one value per level as asked."""
    reply = client.forecast_demand(demand_request(DAILY, "garbage", 3, (0.9, 0.5, 0.9)))
    for point in reply.points:
        assert [q.quantile for q in point.quantiles] == [0.9, 0.5, 0.9]
        assert point.quantiles[0].value_kg == point.quantiles[2].value_kg


def test_limit_defaults_are_the_settings_defaults() -> None:
    """ForecastLimits() (what a service built without settings uses) equals the limits of the
    default Settings, so docs/DEPLOYMENT.md states what such a service enforces."""
    assert ForecastLimits() == ForecastLimits.from_settings(Settings())
