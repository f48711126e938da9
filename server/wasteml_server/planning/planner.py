"""PlanDay: predicted fill + nearby complaints -> must/optional bins -> routes -> stored plan.

``CollectionPlanner.plan_day`` is an async generator: it yields a ``StageProgress`` at the start
and end of every stage (and for every solver improvement), then the ``DayPlan``. Its
dependencies are injected as small protocols so the planner is transport-free:

* ``FillPredictor``  - stage (a): fill fraction at the service time (Triton ``fill_level``);
* ``ComplaintFinder`` - stage (b): semantic + geo + time search of service requests (Milvus);
* ``RouteSolver``    - stage (d): the solver pool, streaming improvements;
* ``PlanSaver``      - stage (e): writes the plan in one transaction.

Cancellation and deadlines: the caller's cancellation arrives as ``asyncio.CancelledError`` at
whichever stage is awaiting; the solver job is cancelled in a ``finally`` and nothing is
persisted before stage (e), which writes in one transaction, so no half-written plan remains.

Bins without usable readings (none within the model's horizon) get a declared fallback
forecast: the constant-rate model ``min(1, prior_rate x days since the last emptying)`` (the
study's filling-rate estimates); with neither, the fill is unknown and the bin is optional at
the base penalty. Must-visit bins are given to the solver as optional stops with a very large
penalty (``MUST_VISIT_PENALTY``) so that a day with more must-visit bins than the fleet can
serve still yields the best partial plan, with the rest reported as unserved.
"""

from __future__ import annotations

import asyncio
import time
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable, Sequence
from dataclasses import dataclass, field, replace
from datetime import date, datetime, timedelta
from typing import Protocol

import numpy as np

from wasteml_server.core.errors import InvalidArgumentError
from wasteml_server.planning.selection import (
    DAY_S,
    BinDecision,
    Complaint,
    FillForecast,
    PlanPolicy,
    Selection,
    decide,
)
from wasteml_server.routing.engine import SolveOptions
from wasteml_server.routing.problem import Problem, Solution, Stop, TimeWindow

#: Safety factor of the must-visit penalty over the dearest possible detour (see ``must_visit_penalty``).
MUST_VISIT_FACTOR = 2.0
#: Forecast horizon of the fill model, seconds (``forecasting.fill_level.MAX_HORIZON_DAYS``).
MODEL_HORIZON_S = 14 * DAY_S
#: Complaints fetched per bin before the radius post-filter.
COMPLAINTS_PER_BIN = 20


class Stage:
    """Stage names, in order (``wasteml.v1.PlanStage``)."""

    PREDICT = "PREDICT"
    COMPLAINTS = "COMPLAINTS"
    SELECT = "SELECT"
    SOLVE = "SOLVE"
    PERSIST = "PERSIST"


@dataclass(frozen=True)
class PlanBin:
    """One bin/skip of the plan.

    Attributes:
        bin_id: caller's id.
        location: index into the problem's locations.
        lat_deg, lon_deg: WGS84 position (for the complaint radius search).
        readings_s: ``(unix seconds, fill fraction 0..1)`` in time order.
        last_emptied_s: last emptying, unix seconds, or None.
        prior_rate_per_day: typical filling rate, fraction per day, or None.
        demand: load per dimension when lifted (e.g. ``(1,)`` skip).
        service_s: lift/service time, seconds.
        time_windows: when it may be served, seconds since the plan's time origin.
    """

    bin_id: str
    location: int
    lat_deg: float
    lon_deg: float
    readings_s: tuple[tuple[float, float], ...]
    last_emptied_s: float | None
    prior_rate_per_day: float | None
    demand: tuple[int, ...]
    service_s: int
    time_windows: tuple[TimeWindow, ...] = ()


@dataclass(frozen=True)
class DayPlanRequest:
    """A day to plan.

    Attributes:
        service_date: the day.
        time_origin: the instant that is ``t = 0`` of the problem's times (day start, local).
        service_time: when the fill is predicted for (default: the fleet's earliest shift start).
        base: depots, vehicle types, facilities, locations and matrices; its ``stops`` are
            ignored (the planner makes one stop per chosen bin).
        bins: the bins.
        policy: the planning rules.
        solve_options: engine and time limit of stage (d).
    """

    service_date: date
    time_origin: datetime
    service_time: datetime
    base: Problem
    bins: tuple[PlanBin, ...]
    policy: PlanPolicy
    solve_options: SolveOptions


@dataclass(frozen=True)
class StageProgress:
    """A progress event: stage, fraction of the stage done (0..1), words, best objective."""

    stage: str
    fraction: float
    message: str
    elapsed_s: float
    solver_best_objective: float | None = None


@dataclass(frozen=True)
class DayPlan:
    """The result of PlanDay.

    Attributes:
        plan_id: uuid hex under which the plan is stored.
        request: the request.
        problem: the routing problem solved (one stop per chosen bin, same order as
            ``stop_decisions``).
        decisions: one per bin, request order, ``served`` filled in.
        stop_decisions: decision of each stop of ``problem`` (index-aligned).
        solution: the solver's answer.
        models: ``(name, version)`` of every model used.
        fallbacks: ``(dependency, what happened)`` for every declared fallback used.
    """

    plan_id: str
    request: DayPlanRequest
    problem: Problem
    decisions: tuple[BinDecision, ...]
    stop_decisions: tuple[BinDecision, ...]
    solution: Solution
    models: tuple[tuple[str, str], ...]
    fallbacks: tuple[tuple[str, str], ...] = field(default=())

    @property
    def overflows_avoided(self) -> int:
        """Predicted overflows among served bins."""
        return sum(1 for d in self.decisions if d.served and d.predicted_overflow)

    @property
    def overflows_left(self) -> int:
        """Predicted overflows among unserved bins."""
        return sum(1 for d in self.decisions if not d.served and d.predicted_overflow)


@dataclass(frozen=True)
class BinFill:
    """What the fill predictor is asked for one bin (readings -> fill at ``target_s``)."""

    bin_id: str
    readings_s: tuple[tuple[float, float], ...]
    last_emptied_s: float | None
    prior_rate_per_day: float | None
    target_s: float


class FillPredictor(Protocol):
    """Stage (a): fill forecasts of a batch of bins at their target times."""

    async def predict(self, bins: Sequence[BinFill]) -> tuple[dict[str, FillForecast], tuple[str, str]]:
        """Return bin id -> forecast and the ``(model name, version)`` that made them."""
        ...


class ComplaintFinder(Protocol):
    """Stage (b): complaints matching a query near a point within a time range."""

    async def near(self, lat_deg: float, lon_deg: float, radius_m: float, since: datetime, until: datetime,
                   query: str, min_score: float, top_k: int) -> list[Complaint]:
        """Complaints within ``radius_m`` metres, created in ``[since, until)``, best first."""
        ...


class RouteSolver(Protocol):
    """Stage (d): solve a problem, reporting improvements."""

    async def solve(self, problem: Problem, options: SolveOptions,
                    on_progress: Callable[[str, float, float], None]) -> Solution:
        """Solve; ``on_progress(engine, best objective, elapsed_s)`` on each improvement."""
        ...


PlanSaver = Callable[[DayPlan], Awaitable[None]]


def fallback_forecast(b: BinFill) -> FillForecast:
    """The declared fallback when the model cannot be used for a bin (module docstring)."""
    if b.last_emptied_s is not None and b.prior_rate_per_day is not None:
        days = max(0.0, (b.target_s - b.last_emptied_s) / DAY_S)
        fill = min(1.0, b.prior_rate_per_day * days)
        rate = b.prior_rate_per_day / DAY_S
        ttf = 0.0 if fill >= 1.0 else ((1.0 - fill) / rate if rate > 0 else None)
        return FillForecast(fill, fill, fill, ttf, fallback="no recent readings: prior filling rate "
                            f"{b.prior_rate_per_day:.3f}/day since the last emptying {days:.0f} days ago")
    return FillForecast(0.0, 0.0, 1.0, None,
                        fallback="fill unknown: no recent readings, no emptying record or no filling rate")


def usable_by_model(b: BinFill) -> bool:
    """True when the bin has a reading within the model's horizon before its target time."""
    return bool(b.readings_s) and 0.0 <= b.target_s - b.readings_s[-1][0] <= MODEL_HORIZON_S


class CollectionPlanner:
    """Plans a collection day (stages a-e; see the module docstring).

    Args:
        predictor: fill forecasts (Triton).
        complaints: complaint search (Milvus + Triton embeddings).
        solver: the solver pool.
        save: persists the finished plan in one transaction.
    """

    def __init__(self, predictor: FillPredictor, complaints: ComplaintFinder, solver: RouteSolver,
                 save: PlanSaver) -> None:
        self._predictor = predictor
        self._complaints = complaints
        self._solver = solver
        self._save = save

    async def plan_day(self, request: DayPlanRequest) -> AsyncIterator[StageProgress | DayPlan]:
        """Run the stages; yields progress events, then the ``DayPlan`` (last item).

        Raises:
            InvalidArgumentError: bins referencing unknown locations, duplicate bin ids,
                demand dimensions that do not match the fleet.
            UnavailableError: a dependency is down (Triton, Milvus, the solver pool, SQL).
            ResourceExhaustedError: the solver queue is full.
        """
        started = time.monotonic()

        def progress(stage: str, fraction: float, message: str, best: float | None = None) -> StageProgress:
            return StageProgress(stage, fraction, message, time.monotonic() - started, best)

        _validate(request)
        target_s = request.service_time.timestamp()
        fills = [BinFill(b.bin_id, b.readings_s, b.last_emptied_s, b.prior_rate_per_day, target_s)
                 for b in request.bins]
        fallbacks: list[tuple[str, str]] = []

        # (a) predict
        yield progress(Stage.PREDICT, 0.0, f"predicting the fill of {len(fills)} bins at "
                       f"{request.service_time.isoformat()}")
        usable = [b for b in fills if usable_by_model(b)]
        forecasts: dict[str, FillForecast] = {}
        models: list[tuple[str, str]] = []
        if usable:
            predicted, model = await self._predictor.predict(usable)
            forecasts.update(predicted)
            models.append(model)
        for b in fills:
            if b.bin_id not in forecasts:
                forecasts[b.bin_id] = fallback_forecast(b)
        n_fallback = len(fills) - len(usable)
        if n_fallback:
            fallbacks.append(("fill_level", f"{n_fallback} bins without readings in the last "
                              f"{MODEL_HORIZON_S / DAY_S:.0f} days use the constant-rate fallback"))
        yield progress(Stage.PREDICT, 1.0, f"{len(usable)} bins by the model, {n_fallback} by the fallback")

        # (b) complaints near each bin
        policy = request.policy
        yield progress(Stage.COMPLAINTS, 0.0, f"searching complaints like {policy.complaint_query!r} within "
                       f"{policy.complaint_radius_m:.0f} m")
        until = request.service_time
        since = until - timedelta(seconds=policy.complaint_lookback_s)
        found = await asyncio.gather(*(
            self._complaints.near(b.lat_deg, b.lon_deg, policy.complaint_radius_m, since, until,
                                  policy.complaint_query, policy.complaint_min_score, COMPLAINTS_PER_BIN)
            for b in request.bins
        ))
        complaints = {b.bin_id: hits for b, hits in zip(request.bins, found, strict=True)}
        n_backed = sum(1 for hits in found if hits)
        yield progress(Stage.COMPLAINTS, 1.0, f"{sum(map(len, found))} complaints near {n_backed} bins")

        # (c) select
        decisions = decide([b.bin_id for b in request.bins], forecasts, complaints, policy)
        must = [d for d in decisions if d.selection is Selection.MUST_VISIT]
        yield progress(Stage.SELECT, 1.0, f"{len(must)} must-visit, {len(decisions) - len(must)} optional bins")

        # (d) solve
        problem, stop_decisions = build_problem(request, decisions)
        yield progress(Stage.SOLVE, 0.0, f"solving {len(problem.stops)} stops with {problem.num_vehicles} "
                       f"vehicles, {request.solve_options.time_limit_s:g} s limit")
        queue: asyncio.Queue[tuple[str, float, float]] = asyncio.Queue()
        solve = asyncio.ensure_future(self._solver.solve(
            problem, request.solve_options, lambda e, obj, t: queue.put_nowait((e, obj, t))))
        getter: asyncio.Future | None = None
        try:
            while not solve.done():
                getter = asyncio.ensure_future(queue.get())
                await asyncio.wait({solve, getter}, return_when=asyncio.FIRST_COMPLETED)
                if getter.done():
                    engine, best, elapsed = getter.result()
                    limit = max(request.solve_options.time_limit_s, 1e-9)
                    yield progress(Stage.SOLVE, min(0.99, elapsed / limit), f"{engine} improved the plan",
                                   best)
            solution = solve.result()
        finally:
            for pending in (getter, solve):
                if pending is not None and not pending.done():
                    pending.cancel()
                    await asyncio.gather(pending, return_exceptions=True)
        served = {problem.stops[i].id for r in solution.routes for i in r.stop_indices}
        decisions = [replace(d, served=d.bin_id in served) for d in decisions]
        by_id = {d.bin_id: d for d in decisions}
        stop_decisions = tuple(by_id[d.bin_id] for d in stop_decisions)
        yield progress(Stage.SOLVE, 1.0, f"{solution.status.value}: {len(served)} bins served on "
                       f"{len(solution.routes)} routes, objective {solution.objective.total:.1f}",
                       solution.objective.total)

        # (e) persist
        plan = DayPlan(uuid.uuid4().hex, request, problem, tuple(decisions), stop_decisions, solution,
                       tuple(models), tuple(fallbacks))
        yield progress(Stage.PERSIST, 0.0, "storing the plan")
        await self._save(plan)
        yield progress(Stage.PERSIST, 1.0, f"plan {plan.plan_id} stored")
        yield plan


def _validate(request: DayPlanRequest) -> None:
    if not request.bins:
        raise InvalidArgumentError("bins", "at least one bin is required")
    seen: dict[str, int] = {}
    n_loc = len(request.base.locations)
    n_dim = request.base.num_dimensions
    for i, b in enumerate(request.bins):
        if b.bin_id in seen:
            raise InvalidArgumentError(f"bins[{i}].bin_id", f"duplicate id (also bins[{seen[b.bin_id]}])")
        seen[b.bin_id] = i
        if not 0 <= b.location < n_loc:
            raise InvalidArgumentError(f"bins[{i}].location_index", f"must index the matrix (0..{n_loc - 1})")
        if len(b.demand) != n_dim:
            raise InvalidArgumentError(f"bins[{i}].demand", f"needs {n_dim} values, one per capacity dimension")


def must_visit_penalty(base: Problem, decisions: Sequence[BinDecision]) -> float:
    """Penalty of leaving a must-visit bin, cost units.

    ``MUST_VISIT_FACTOR x max(detour bound, largest optional penalty)`` where the detour bound is
    the dearest vehicle's ``fixed_cost + cost_per_km x 2 x`` the longest matrix leg (km): serving
    one more bin never costs more than driving to it and on from it, so the solver leaves a
    must-visit bin only when the fleet cannot reach it, and never for an optional one.
    """
    longest_km = float(np.max(base.distance_m)) / 1000.0
    detour = max(vt.fixed_cost + vt.cost_per_km * 2.0 * longest_km for vt in base.vehicle_types)
    optional = max((d.skip_penalty for d in decisions if d.selection is Selection.OPTIONAL), default=0.0)
    return MUST_VISIT_FACTOR * max(detour, optional, 1.0)


def build_problem(request: DayPlanRequest, decisions: Sequence[BinDecision]) -> tuple[Problem, tuple[BinDecision, ...]]:
    """The routing problem of the day: one stop per bin, must-visit ones at ``must_visit_penalty``
    (scaled up to 2x by predicted overflow so the worst go first when not all fit).

    Returns:
        ``(problem, stop_decisions)`` with ``stop_decisions[i]`` the decision of stop ``i``.
    """
    by_id = {b.bin_id: b for b in request.bins}
    must = must_visit_penalty(request.base, decisions)
    stops = []
    for d in decisions:
        b = by_id[d.bin_id]
        if d.selection is Selection.MUST_VISIT:
            penalty = must * (1.0 + min(1.0, max(0.0, d.fill_next - 1.0)))
        else:
            penalty = d.skip_penalty
        stops.append(Stop(id=b.bin_id, location=b.location, demand=b.demand, service_duration_s=b.service_s,
                          time_windows=b.time_windows, required=False, penalty=float(np.round(penalty, 3))))
    problem = replace(request.base, stops=tuple(stops), name=f"plan-{request.service_date.isoformat()}")
    return problem, tuple(decisions)
