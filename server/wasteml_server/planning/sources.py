"""The planner's inputs over the server's own domain services (no network hop).

* ``ForecastFillPredictor`` -> ``forecasting.service.ForecastingService`` (Triton ``fill_level``),
* ``SearchComplaintFinder`` -> ``search.service.SemanticSearchService`` (Triton embeddings +
  Milvus): the query is embedded once per plan and searched around every bin.

The SOLVE stage uses ``routing.service.RoutingService`` directly (it is the ``RouteSolver``).
"""

from __future__ import annotations

import asyncio
from collections.abc import Sequence

import numpy as np

from wasteml_server.core.common import ModelRef
from wasteml_server.core.geo import GeoPoint
from wasteml_server.forecasting.fill_level import BinReadings
from wasteml_server.forecasting.service import ForecastingService
from wasteml_server.planning.ports import BinFill, ComplaintQuery
from wasteml_server.planning.selection import Complaint, FillForecast
from wasteml_server.search.filters import GeoCircle, SearchFilters, TimeRange
from wasteml_server.search.service import SemanticSearchService


class ForecastFillPredictor:
    """Stage (a) over the forecasting service (``fill_level`` on Triton, audited as the call
    it serves).

    Args:
        service: the server's forecasting service.
        coverage: nominal coverage of the fill interval (0.8 = 10 %..90 %).
    """

    def __init__(self, service: ForecastingService, coverage: float = 0.8) -> None:
        self._service = service
        self._coverage = coverage

    async def predict(self, bins: Sequence[BinFill]) -> tuple[dict[str, FillForecast], ModelRef]:
        """Fill forecasts at each bin's target time; an emptying after the last reading counts
        as a reading of 0 at that time. (The per-bin arrays are built off the event loop.)"""
        inputs = await asyncio.to_thread(_model_inputs, bins)
        predictions, ref = await self._service.predict_fill_level(inputs, self._coverage)
        out = {p.bin_id: FillForecast(p.fill_fraction, p.lower, p.upper, p.time_to_full_s)
               for p in predictions}
        return out, ref


def _model_inputs(bins: Sequence[BinFill]) -> list[BinReadings]:
    inputs = []
    for b in bins:
        readings = list(b.readings_s)
        last_emptied = b.last_emptied_s
        if last_emptied is not None and last_emptied > readings[-1][0]:
            readings.append((last_emptied, 0.0))
        times = np.array([t for t, _ in readings], dtype=np.float64)
        fills = np.array([f for _, f in readings], dtype=np.float64)
        inputs.append(BinReadings(b.bin_id, times, fills, b.target_s, last_emptied, b.prior_rate_per_day))
    return inputs


class SearchComplaintFinder:
    """Stage (b) over the semantic search service: a hybrid query — the policy's text, a radius
    around each bin (Milvus bounding-box prefilter + exact haversine post-filter) and the
    look-back window — with the minimum score applied by the search itself.

    Args:
        search: the server's search service.
    """

    def __init__(self, search: SemanticSearchService) -> None:
        self._search = search

    async def near(self, points: Sequence[tuple[float, float]], query: ComplaintQuery
                   ) -> tuple[list[list[Complaint]], ModelRef]:
        """Complaints within ``query.radius_m`` of each point, created in ``[since, until)``,
        best first; the query text is embedded once."""
        filters = [SearchFilters(created_at=TimeRange(query.since, query.until),
                                 radius=GeoCircle(GeoPoint(lat, lon), query.radius_m),
                                 min_score=query.min_score)
                   for lat, lon in points]
        results, encoder = await self._search.search_many(query.query, query.top_k, filters,
                                                          query.collection or None)
        return [[Complaint(h.id, float(h.score), float(h.distance_m or 0.0), h.created_at, h.text)
                 for h in result] for result in results], encoder
