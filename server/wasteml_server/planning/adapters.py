"""The planner's dependencies over the server's own domain services (no network hop).

* ``ForecastFillPredictor`` -> ``forecasting.service.ForecastingService`` (Triton ``fill_level``),
* ``PoolRouteSolver``       -> ``routing.pool.SolverPool`` (worker processes),
* ``SearchComplaintFinder`` -> the semantic search service (Triton embeddings + Milvus).
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import Callable, Sequence
from datetime import datetime

import numpy as np

from wasteml_server.core import deadlines
from wasteml_server.forecasting.fill_level import BinReadings
from wasteml_server.forecasting.service import ForecastingService
from wasteml_server.planning.planner import BinFill
from wasteml_server.planning.selection import Complaint, FillForecast
from wasteml_server.routing.engine import SolveOptions
from wasteml_server.routing.pool import SolverPool
from wasteml_server.routing.problem import Problem, Solution

PLAN_DAY_METHOD = "wasteml.v1.CollectionPlanner/PlanDay"


class ForecastFillPredictor:
    """Stage (a) over the forecasting service (``fill_level`` on Triton, audited as PlanDay).

    Args:
        service: the server's forecasting service.
        coverage: nominal coverage of the fill interval (0.8 = 10 %..90 %).
    """

    def __init__(self, service: ForecastingService, coverage: float = 0.8) -> None:
        self._service = service
        self._coverage = coverage

    async def predict(self, bins: Sequence[BinFill]) -> tuple[dict[str, FillForecast], tuple[str, str]]:
        """Fill forecasts at each bin's target time; an emptying after the last reading counts
        as a reading of 0 at that time."""
        inputs = []
        for b in bins:
            readings = list(b.readings_s)
            last_emptied = b.last_emptied_s
            if last_emptied is not None and last_emptied > readings[-1][0]:
                readings.append((last_emptied, 0.0))
            times = np.array([t for t, _ in readings], dtype=np.float64)
            fills = np.array([f for _, f in readings], dtype=np.float64)
            inputs.append(BinReadings(b.bin_id, times, fills, b.target_s, last_emptied,
                                      b.prior_rate_per_day))
        predictions, ref = await self._service.predict_fill_level(
            inputs, self._coverage, rpc_method=PLAN_DAY_METHOD
        )
        out = {p.bin_id: FillForecast(p.fill_fraction, p.lower, p.upper, p.time_to_full_s)
               for p in predictions}
        return out, (ref.name, str(ref.version))


class PoolRouteSolver:
    """Stage (d) on the solver pool; cancelling the caller cancels the job in its worker.

    Args:
        pool: the server's solver pool.
    """

    def __init__(self, pool: SolverPool) -> None:
        self._pool = pool

    async def solve(self, problem: Problem, options: SolveOptions,
                    on_progress: Callable[[str, float, float], None]) -> Solution:
        """Submit, stream improvements to ``on_progress``, return the solution.

        The job's deadline is the RPC's (``wasteml_server.core.deadlines``), so the search stops
        when the caller would stop waiting.
        """
        left = deadlines.remaining_s()
        deadline = None if left is None else time.time() + left
        handle = await self._pool.submit(problem, options, deadline=deadline)

        async def pump() -> None:
            async for event in handle.events():
                on_progress(event.engine, event.objective, event.elapsed_s)

        pumping = asyncio.ensure_future(pump())
        try:
            solution = await handle.result()
            await pumping
            return solution
        finally:
            if not handle.done:
                handle.cancel()
            pumping.cancel()
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await pumping


def complaint_from_hit(hit, distance_m: float) -> Complaint:
    """A search hit as a complaint (``hit`` is ``search.documents.Hit``)."""
    created: datetime = hit.created_at
    return Complaint(hit.id, float(hit.score), float(distance_m), created, hit.text)


class SearchComplaintFinder:
    """Stage (b) over the semantic search service: a hybrid query — the policy's text, a radius
    around the bin (Milvus bounding-box prefilter + exact haversine post-filter) and the
    look-back window — with the minimum score applied by the search itself.

    Args:
        search: the server's ``SemanticSearchService``.
        collection: collection of service requests ("" = the server's default).
    """

    def __init__(self, search, collection: str = "") -> None:
        self._search = search
        self._collection = collection or None

    async def near(self, lat_deg: float, lon_deg: float, radius_m: float, since: datetime, until: datetime,
                   query: str, min_score: float, top_k: int) -> list[Complaint]:
        """Complaints within ``radius_m`` of the point, created in ``[since, until)``, best first."""
        from wasteml_server.search.documents import GeoPoint
        from wasteml_server.search.filters import GeoCircle, SearchFilters, TimeRange

        filters = SearchFilters(
            created_at=TimeRange(since, until),
            radius=GeoCircle(GeoPoint(lat_deg, lon_deg), radius_m),
            min_score=min_score,
        )
        result = await self._search.search(query, top_k, filters, self._collection)
        return [complaint_from_hit(h, h.distance_m if h.distance_m is not None else 0.0) for h in result.hits]
