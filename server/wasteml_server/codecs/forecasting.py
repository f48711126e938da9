"""Forecasting protobuf <-> domain: fill-level and demand requests and replies.

Units converted at the edge: Timestamps <-> Unix seconds, ``CalendarDate`` <-> ``date``; the
contract's enums <-> ``SeriesGrain`` / ``ModelFamily``; a request's ``ModelRef`` <-> the
domain's (version "" = latest). The domain validates the values and names the fields.
"""

from __future__ import annotations

import datetime as dt
import math

import numpy as np

from wasteml.v1 import common_pb2, forecasting_pb2
from wasteml_server.codecs.common import (
    date_from_proto,
    date_to_proto,
    each,
    model_ref_from_proto,
    model_ref_to_proto,
    seconds_of,
)
from wasteml_server.core.common import ModelRef
from wasteml_server.core.errors import InvalidArgumentError, under
from wasteml_server.forecasting.demand import DemandForecast, ModelFamily, SeriesGrain
from wasteml_server.forecasting.explain import Contribution
from wasteml_server.forecasting.fill_level import BinReadings, FillPrediction
from wasteml_server.forecasting.service import ForecastLimits

GRAIN_FROM_PROTO: dict[int, SeriesGrain] = {
    forecasting_pb2.SERIES_GRAIN_SERVICE_LINE_DAILY: SeriesGrain.SERVICE_LINE_DAILY,
    forecasting_pb2.SERIES_GRAIN_ROUTE_WEEKLY: SeriesGrain.ROUTE_WEEKLY,
}
FAMILY_FROM_PROTO: dict[int, ModelFamily] = {
    forecasting_pb2.DEMAND_MODEL_UNSPECIFIED: ModelFamily.LIGHTGBM,
    forecasting_pb2.DEMAND_MODEL_LIGHTGBM: ModelFamily.LIGHTGBM,
    forecasting_pb2.DEMAND_MODEL_PROPHET: ModelFamily.PROPHET,
}


def contributions_to_proto(items: tuple[Contribution, ...]) -> list[common_pb2.FeatureContribution]:
    """Domain contributions -> ``FeatureContribution`` messages."""
    return [common_pb2.FeatureContribution(feature=c.feature, value=c.value, contribution=c.contribution)
            for c in items]


def bin_from_proto(b: forecasting_pb2.BinFillInput) -> BinReadings:
    """``BinFillInput`` -> ``BinReadings`` (Unix seconds, fill fractions).

    Raises:
        InvalidArgumentError: a reading without a time, a missing target time, a Timestamp out
            of range, or a capacity that is negative, NaN or infinite; the rest is validated by
            the domain.
    """
    if not (0.0 <= b.capacity_l < math.inf):  # NaN fails too
        raise InvalidArgumentError("capacity_l", f"must be > 0 litres and finite, or 0 (not "
                                   f"given), got {b.capacity_l}")
    for j, r in enumerate(b.recent_readings):
        if not r.HasField("time"):
            raise InvalidArgumentError(f"recent_readings[{j}].time", "is required")
    if not b.HasField("target_time"):
        raise InvalidArgumentError("target_time", "is required")
    return BinReadings(
        bin_id=b.bin_id,
        times_s=np.array([seconds_of(r.time, f"recent_readings[{j}].time") for j, r in enumerate(b.recent_readings)],
                         dtype=np.float64),
        fill_fractions=np.array([r.fill_fraction for r in b.recent_readings], dtype=np.float64),
        target_time_s=seconds_of(b.target_time, "target_time"),
        last_emptied_s=seconds_of(b.last_emptied_at, "last_emptied_at") if b.HasField("last_emptied_at") else None,
        prior_fill_rate_per_day=b.prior_fill_rate_per_day if b.HasField("prior_fill_rate_per_day") else None,
    )


def fill_request_from_proto(request: forecasting_pb2.PredictFillLevelRequest,
                            limits: ForecastLimits | None = None) -> tuple[list[BinReadings], ModelRef]:
    """``PredictFillLevelRequest`` -> the bins and the requested model.

    The counts are checked against ``limits`` (default ``ForecastLimits()``) before any bin is
    decoded. Request-sized work: call it from a worker thread in the server.

    Raises:
        InvalidArgumentError: too many bins or readings, a too-long bin id (``ForecastLimits``),
            a bad model reference (``model.version``), or a bad bin (``bins[i]...``).
    """
    limits = limits if limits is not None else ForecastLimits()
    with under("model"):
        model = model_ref_from_proto(request.model)
    limits.check_bins(len(request.bins))
    total = 0
    for i, b in enumerate(request.bins):
        n = len(b.recent_readings)
        limits.check_bin(i, b.bin_id, n)
        total += n
    limits.check_total_readings(total)
    bins = each(request.bins, "bins", bin_from_proto)
    return bins, model


def fill_reply_to_proto(request: forecasting_pb2.PredictFillLevelRequest, preds: list[FillPrediction],
                        model: ModelRef) -> forecasting_pb2.PredictFillLevelResponse:
    """Predictions (request order) -> ``PredictFillLevelResponse``; each echoes its target time."""
    reply = forecasting_pb2.PredictFillLevelResponse(model=model_ref_to_proto(model))
    for b, p in zip(request.bins, preds, strict=True):
        out = reply.predictions.add(
            bin_id=p.bin_id, fill_fraction=p.fill_fraction,
            interval=forecasting_pb2.PredictionInterval(
                lower=p.lower, upper=p.upper, lower_quantile=p.lower_quantile,
                upper_quantile=p.upper_quantile, coverage=round(p.upper_quantile - p.lower_quantile, 9)),
            contributions=contributions_to_proto(p.contributions),
        )
        out.target_time.CopyFrom(b.target_time)
        if p.time_to_full_s is not None:
            out.time_to_full_s = p.time_to_full_s
    return reply


def grain_from_proto(value: int) -> SeriesGrain:
    """``SeriesGrain`` -> domain grain.

    Raises:
        InvalidArgumentError: UNSPECIFIED (field "", named by the caller's scope).
    """
    grain = GRAIN_FROM_PROTO.get(value)
    if grain is None:
        raise InvalidArgumentError("", "set SERIES_GRAIN_SERVICE_LINE_DAILY or SERIES_GRAIN_ROUTE_WEEKLY")
    return grain


def demand_origin_from_proto(request: forecasting_pb2.ForecastDemandRequest) -> dt.date | None:
    """The request's forecast origin, or None for the last period of the data."""
    if not request.HasField("forecast_origin"):
        return None
    with under("forecast_origin"):
        return date_from_proto(request.forecast_origin)


def demand_reply_to_proto(request: forecasting_pb2.ForecastDemandRequest,
                          result: DemandForecast) -> forecasting_pb2.ForecastDemandResponse:
    """A domain forecast -> ``ForecastDemandResponse``."""
    reply = forecasting_pb2.ForecastDemandResponse(
        series=request.series, last_observed_date=date_to_proto(result.origin.date()),
        model=model_ref_to_proto(result.model))
    if result.interval_model is not None:
        reply.interval_model.CopyFrom(model_ref_to_proto(result.interval_model))
    for h, end in enumerate(result.period_ends):
        point = reply.points.add(date=date_to_proto(end.date()), point_kg=float(result.point_kg[h]))
        for q, level in enumerate(result.quantiles):
            point.quantiles.add(quantile=float(level), value_kg=float(result.quantile_kg[q, h]))
        if result.contributions:
            point.contributions.extend(contributions_to_proto(result.contributions[h]))
    return reply
