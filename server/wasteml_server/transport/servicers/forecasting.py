"""Forecasting servicer: protobuf <-> ``wasteml_server.forecasting.service``.

Conversions only: Timestamps <-> Unix seconds, ``CalendarDate`` <-> ``datetime.date``,
``SeriesGrain`` -> ``"daily"``/``"weekly"``, ``DemandModel`` -> model family, domain
predictions -> replies (kilograms, fill fractions, ``ModelRef`` of the served version).
"""

from __future__ import annotations

import datetime as dt
import math

import grpc
import numpy as np
from google.protobuf.timestamp_pb2 import Timestamp

from wasteml.v1 import common_pb2, forecasting_pb2, forecasting_pb2_grpc
from wasteml_server.core.errors import InvalidArgumentError
from wasteml_server.forecasting.explain import Contribution
from wasteml_server.forecasting.fill_level import BinReadings
from wasteml_server.forecasting.service import ForecastingService

_GRAIN = {
    forecasting_pb2.SERIES_GRAIN_SERVICE_LINE_DAILY: "daily",
    forecasting_pb2.SERIES_GRAIN_ROUTE_WEEKLY: "weekly",
}
_FAMILY = {
    forecasting_pb2.DEMAND_MODEL_UNSPECIFIED: "lightgbm",
    forecasting_pb2.DEMAND_MODEL_LIGHTGBM: "lightgbm",
    forecasting_pb2.DEMAND_MODEL_PROPHET: "prophet",
}


def _seconds(ts: Timestamp) -> float:
    return ts.seconds + ts.nanos / 1e9


def _timestamp(seconds: float) -> Timestamp:
    whole = math.floor(seconds)
    return Timestamp(seconds=int(whole), nanos=int(round((seconds - whole) * 1e9)) % 1_000_000_000)


def _contributions(items: tuple[Contribution, ...]) -> list[common_pb2.FeatureContribution]:
    return [common_pb2.FeatureContribution(feature=c.feature, value=c.value,
                                           contribution=c.contribution) for c in items]


def bins_from_proto(request: forecasting_pb2.PredictFillLevelRequest) -> list[BinReadings]:
    """``BinFillInput`` messages -> ``BinReadings`` (Unix seconds, fill fractions).

    Raises:
        InvalidArgumentError: a reading without a time, a missing target time, or a negative
            capacity (fields ``bins[i]...``). The rest is validated by the domain.
    """
    out = []
    for i, b in enumerate(request.bins):
        if b.capacity_l < 0 or math.isnan(b.capacity_l):
            raise InvalidArgumentError(f"bins[{i}].capacity_l", "must be > 0 litres (or unset)")
        for j, r in enumerate(b.recent_readings):
            if not r.HasField("time"):
                raise InvalidArgumentError(f"bins[{i}].recent_readings[{j}].time", "is required")
        if not b.HasField("target_time"):
            raise InvalidArgumentError(f"bins[{i}].target_time", "is required")
        out.append(BinReadings(
            bin_id=b.bin_id,
            times_s=np.array([_seconds(r.time) for r in b.recent_readings], dtype=np.float64),
            fill_fractions=np.array([r.fill_fraction for r in b.recent_readings],
                                    dtype=np.float64),
            target_time_s=_seconds(b.target_time),
            last_emptied_s=_seconds(b.last_emptied_at) if b.HasField("last_emptied_at") else None,
            prior_fill_rate_per_day=(b.prior_fill_rate_per_day
                                     if b.HasField("prior_fill_rate_per_day") else None),
        ))
    return out


def _date(value: common_pb2.CalendarDate, field: str) -> dt.date:
    try:
        return dt.date(value.year, value.month, value.day)
    except ValueError as err:
        raise InvalidArgumentError(field, f"not a calendar date: {err}") from err


def _calendar(day: dt.date) -> common_pb2.CalendarDate:
    return common_pb2.CalendarDate(year=day.year, month=day.month, day=day.day)


class ForecastingServicer(forecasting_pb2_grpc.ForecastingServicer):
    """``wasteml.v1.Forecasting`` over a ``ForecastingService``."""

    def __init__(self, service: ForecastingService) -> None:
        self._service = service

    async def PredictFillLevel(self, request: forecasting_pb2.PredictFillLevelRequest,
                               context: grpc.aio.ServicerContext):
        bins = bins_from_proto(request)
        preds, ref = await self._service.predict_fill_level(
            bins, request.interval_coverage, request.top_contributions, request.model.version,
            model_name=request.model.name,
            request_bytes=request.SerializeToString(deterministic=True))
        reply = forecasting_pb2.PredictFillLevelResponse(
            model=common_pb2.ModelRef(name=ref.name, version=str(ref.version)))
        for b, p in zip(request.bins, preds, strict=True):
            out = reply.predictions.add(
                bin_id=p.bin_id,
                fill_fraction=p.fill_fraction,
                interval=forecasting_pb2.PredictionInterval(
                    lower=p.lower, upper=p.upper, lower_quantile=p.lower_quantile,
                    upper_quantile=p.upper_quantile,
                    coverage=round(p.upper_quantile - p.lower_quantile, 9)),
                contributions=_contributions(p.contributions),
            )
            out.target_time.CopyFrom(b.target_time)
            if p.time_to_full_s is not None:
                out.time_to_full_s = p.time_to_full_s
        return reply

    async def ForecastDemand(self, request: forecasting_pb2.ForecastDemandRequest,
                             context: grpc.aio.ServicerContext):
        grain = _GRAIN.get(request.series.grain)
        if grain is None:
            raise InvalidArgumentError("series.grain", "set SERIES_GRAIN_SERVICE_LINE_DAILY or "
                                       "SERIES_GRAIN_ROUTE_WEEKLY")
        family = _FAMILY.get(request.model_family)
        if family is None:
            raise InvalidArgumentError("model_family", f"unknown value {request.model_family}")
        origin = (_date(request.forecast_origin, "forecast_origin")
                  if request.HasField("forecast_origin") else None)
        result = await self._service.forecast_demand(
            grain, request.series.id, request.horizon, list(request.quantiles),
            request.top_contributions, family, origin, request.model.version,
            model_name=request.model.name,
            request_bytes=request.SerializeToString(deterministic=True))
        if origin is None:
            origin = (await self._service.last_observed(grain, result.model_version)).date()
        name = result.model_name if family == "lightgbm" else f"{result.model_name}_prophet"
        reply = forecasting_pb2.ForecastDemandResponse(
            series=request.series,
            last_observed_date=_calendar(origin),
            model=common_pb2.ModelRef(name=name, version=str(result.model_version)),
        )
        if result.interval_model is not None:
            iname, iversion = result.interval_model
            reply.interval_model.CopyFrom(common_pb2.ModelRef(name=iname, version=str(iversion)))
        for h, end in enumerate(result.period_ends):
            point = reply.points.add(date=_calendar(end.date()), point_kg=float(result.point_kg[h]))
            for q, level in enumerate(result.quantiles):
                point.quantiles.add(quantile=float(level), value_kg=float(result.quantile_kg[q, h]))
            if result.contributions:
                point.contributions.extend(_contributions(result.contributions[h]))
        return reply
