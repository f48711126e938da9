"""Forecasting servicer: decode, call ``forecasting.service``, encode (``codecs.forecasting``).

A fill request can carry thousands of bins and readings: its decoding (after the size checks of
``ForecastLimits``), its audit serialization and the reply's encoding run in a worker thread,
never on the event loop.
"""

from __future__ import annotations

import asyncio

import grpc

from wasteml.v1 import forecasting_pb2, forecasting_pb2_grpc
from wasteml_server.codecs.common import model_ref_from_proto
from wasteml_server.codecs.forecasting import (
    FAMILY_FROM_PROTO,
    demand_origin_from_proto,
    demand_reply_to_proto,
    fill_reply_to_proto,
    fill_request_from_proto,
    grain_from_proto,
)
from wasteml_server.core.errors import InvalidArgumentError, under
from wasteml_server.forecasting.service import ForecastingService


class ForecastingServicer(forecasting_pb2_grpc.ForecastingServicer):
    """``wasteml.v1.Forecasting`` over a ``ForecastingService``."""

    def __init__(self, service: ForecastingService) -> None:
        self._service = service

    async def PredictFillLevel(self, request: forecasting_pb2.PredictFillLevelRequest,
                               context: grpc.aio.ServicerContext):
        def decode():
            bins, model = fill_request_from_proto(request, self._service.limits)
            return bins, model, request.SerializeToString(deterministic=True)

        bins, model, request_bytes = await asyncio.to_thread(decode)
        preds, served = await self._service.predict_fill_level(
            bins, request.interval_coverage, request.top_contributions, model,
            request_bytes=request_bytes)
        return await asyncio.to_thread(fill_reply_to_proto, request, preds, served)

    async def ForecastDemand(self, request: forecasting_pb2.ForecastDemandRequest,
                             context: grpc.aio.ServicerContext):
        with under("series.grain"):
            grain = grain_from_proto(request.series.grain)
        with under("model"):
            model = model_ref_from_proto(request.model)
        family = FAMILY_FROM_PROTO.get(request.model_family)
        if family is None:  # an enum value this server does not know (proto3 enums are open)
            raise InvalidArgumentError("model_family", f"unknown DemandModel {request.model_family}")
        self._service.limits.check_quantiles(len(request.quantiles))  # before copying them
        result = await self._service.forecast_demand(
            grain, request.series.id, request.horizon, list(request.quantiles),
            request.top_contributions, family,
            demand_origin_from_proto(request), model,
            request_bytes=request.SerializeToString(deterministic=True))
        return demand_reply_to_proto(request, result)
