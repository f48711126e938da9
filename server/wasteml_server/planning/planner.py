"""PlanDay: predicted fill + nearby complaints -> must/optional bins -> routes -> stored plan.

``CollectionPlanner.plan_day`` is an async generator: it yields a ``StageProgress`` at the start
and end of every stage (and for every solver improvement), then the ``DayPlan``. Its
dependencies are injected as small protocols (``planning.ports``) so the planner is
transport-free:

* ``FillPredictor``  - stage (a): fill fraction at the service time (Triton ``fill_level``);
* ``ComplaintFinder`` - stage (b): semantic + geo + time search of service requests (Milvus),
  the query embedded once for all bins;
* ``RouteSolver``    - stage (d): a solve session of the routing service, streaming
  improvements, bounded by the call's deadline less the reply margin (time kept to persist);
* ``PlanRepository`` - stage (e): stores the plan in one transaction.

The request's rules (time origin, defaults, validation) are ``planning.request``; the plan and
its totals ``planning.plan``.

Request-sized work (validating the request and building its routing problem with the
matrices, pricing the stops) runs off the event loop (``asyncio.to_thread``). Field paths of
errors raised by the forecasting and search services, which name their own requests' fields,
are mapped to this request's (``bins[i]`` of the bins sent to the model -> the bin's index in
the request; the complaint query's fields -> ``policy.*``).

Cancellation and deadlines: the caller's cancellation arrives as ``asyncio.CancelledError`` at
whichever stage is awaiting (or closes the generator: the servicer uses ``aclosing``); the solve
session is cancelled when its ``async with`` block is left, and nothing is persisted before
stage (e), which writes in one transaction, so no half-written plan remains.

Bins without usable readings (none within the model's horizon) get a declared fallback
forecast: the constant-rate model ``min(1, prior_rate x days since the last emptying)`` (the
study's filling-rate estimates); with neither, the fill is unknown and the bin is optional at
the base penalty. Must-visit bins are given to the solver as optional stops with a very large
penalty (:func:`must_visit_penalty`) so that a day with more must-visit bins than the fleet can
serve still yields the best partial plan, with the rest reported as unserved.
"""

from __future__ import annotations

import asyncio
import re
import time
import uuid
from collections.abc import AsyncIterator, Callable, Sequence
from dataclasses import replace
from datetime import UTC, datetime, timedelta

import numpy as np

from wasteml_server.core.common import FallbackNotice, ModelRef
from wasteml_server.core.errors import FieldViolation, InvalidArgumentError, shown
from wasteml_server.core.units import DAY_S
from wasteml_server.forecasting.fill_level import MAX_HORIZON_DAYS
from wasteml_server.planning.plan import DayPlan, PlanStage, StageProgress
from wasteml_server.planning.ports import (
    BinFill,
    ComplaintFinder,
    ComplaintQuery,
    FillPredictor,
    PlanRepository,
    RouteSolver,
)
from wasteml_server.planning.request import (
    DEFAULT_PLAN_LIMITS,
    PLAN_FIELDS,
    DayPlanRequest,
    PlanLimits,
    PreparedDay,
    prepare,
)
from wasteml_server.planning.selection import (
    MAX_OVERFLOW,
    BinDecision,
    FillForecast,
    PlanPolicy,
    Selection,
    decide,
)
from wasteml_server.routing.problem import Problem, penalty_headroom

#: Safety factor of the must-visit penalty over the dearest possible detour (see ``must_visit_penalty``).
MUST_VISIT_FACTOR = 2.0
#: Forecast horizon of the fill model, seconds.
MODEL_HORIZON_S = MAX_HORIZON_DAYS * DAY_S
#: Complaints fetched per bin before the radius post-filter.
COMPLAINTS_PER_BIN = 20


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
        solver: solve sessions on the solver pool.
        plans: where finished plans are stored.
        limits: the largest request taken (the server passes ``PlanLimits.from_settings``;
            default: the settings' defaults).
    """

    def __init__(self, predictor: FillPredictor, complaints: ComplaintFinder, solver: RouteSolver,
                 plans: PlanRepository, limits: PlanLimits = DEFAULT_PLAN_LIMITS) -> None:
        self._predictor = predictor
        self._complaints = complaints
        self._solver = solver
        self._plans = plans
        self.limits = limits
        """The largest request this planner takes (the servicer checks requests against it)."""

    def _prepare(self, request: DayPlanRequest) -> PreparedDay:
        day = prepare(request, self.limits)
        check_penalty_range(day.base, request.policy)
        return day

    async def plan_day(self, request: DayPlanRequest) -> AsyncIterator[StageProgress | DayPlan]:
        """Run the stages; yields progress events, then the stored ``DayPlan`` (last item).

        Raises:
            InvalidArgumentError: a bad request field (``planning.request.prepare``), or solve
                options the routing service refuses (``solve_options.*``).
            UnavailableError: a dependency is down (Triton, Milvus, the solver pool, SQL).
            ResourceExhaustedError: the solver queue is full.
        """
        started = time.monotonic()

        def progress(stage: PlanStage, fraction: float, message: str, best: float | None = None) -> StageProgress:
            return StageProgress(stage, fraction, message, time.monotonic() - started, best)

        day = await asyncio.to_thread(self._prepare, request)
        target_s = day.service_time.timestamp()
        fills = [BinFill(b.bin_id, b.readings_s, b.last_emptied_s, b.prior_rate_per_day, target_s)
                 for b in day.bins]
        fallbacks: list[FallbackNotice] = []
        models: list[ModelRef] = []

        # (a) predict
        yield progress(PlanStage.PREDICT, 0.0, f"predicting the fill of {len(fills)} bins at "
                       f"{day.service_time.isoformat()}")
        usable = [b for b in fills if usable_by_model(b)]
        forecasts: dict[str, FillForecast] = {}
        if usable:
            try:
                predicted, model = await self._predictor.predict(usable)
            except InvalidArgumentError as err:
                index = {b.bin_id: i for i, b in enumerate(fills)}
                raise _bins_in_request(err, [index[b.bin_id] for b in usable]) from None
            forecasts.update(predicted)
            models.append(model)
        for b in fills:
            if b.bin_id not in forecasts:
                forecasts[b.bin_id] = fallback_forecast(b)
        n_fallback = len(fills) - len(usable)
        if n_fallback:
            fallbacks.append(FallbackNotice("fill_level", "constant-rate fill model",
                                            f"{n_fallback} bins without readings in the last "
                                            f"{MAX_HORIZON_DAYS} days use the constant-rate fallback"))
        yield progress(PlanStage.PREDICT, 1.0, f"{len(usable)} bins by the model, {n_fallback} by the fallback")

        # (b) complaints near each bin: one query, one embedding
        policy = request.policy
        yield progress(PlanStage.COMPLAINTS, 0.0, f"searching complaints like {shown(policy.complaint_query)} "
                       f"within {policy.complaint_radius_m:.0f} m")
        until = day.service_time
        query = ComplaintQuery(policy.complaint_query, policy.complaint_radius_m,
                               until - timedelta(seconds=policy.complaint_lookback_s), until,
                               policy.complaint_min_score, COMPLAINTS_PER_BIN, policy.complaint_collection)
        try:
            found, encoder = await self._complaints.near([(b.latitude_deg, b.longitude_deg) for b in day.bins],
                                                         query)
        except InvalidArgumentError as err:
            raise _query_in_request(err) from None
        models.append(encoder)
        complaints = {b.bin_id: hits for b, hits in zip(day.bins, found, strict=True)}
        n_backed = sum(1 for hits in found if hits)
        yield progress(PlanStage.COMPLAINTS, 1.0, f"{sum(map(len, found))} complaints near {n_backed} bins")

        # (c) select
        decisions = decide([b.bin_id for b in day.bins], forecasts, complaints, policy)
        must = [d for d in decisions if d.selection is Selection.MUST_VISIT]
        yield progress(PlanStage.SELECT, 1.0, f"{len(must)} must-visit, {len(decisions) - len(must)} optional bins")

        # (d) solve
        problem = await asyncio.to_thread(build_problem, day, decisions)
        limit = request.solve_options.time_limit_s or 0.0
        yield progress(PlanStage.SOLVE, 0.0, f"solving {len(problem.stops)} stops with {problem.num_vehicles} "
                       f"vehicles, {limit:g} s limit")
        async with await self._solver.open(problem, request.solve_options,
                                           options_field="solve_options") as session:
            async for event in session.events():
                yield progress(PlanStage.SOLVE, min(0.99, event.elapsed_s / max(limit, 1e-9)),
                               f"{event.engine.value} improved the plan", event.objective)
            solution = await session.result()
        served = {i for r in solution.routes for i in r.stop_indices}
        decisions = [replace(d, served=i in served) for i, d in enumerate(decisions)]
        yield progress(PlanStage.SOLVE, 1.0, f"{solution.status.value}: {len(served)} bins served on "
                       f"{len(solution.routes)} routes, objective {solution.objective.total:.1f}",
                       solution.objective.total)

        # (e) persist
        plan = DayPlan(uuid.uuid4().hex, day, problem, tuple(decisions), solution, tuple(models),
                       datetime.now(UTC), tuple(fallbacks) + solution.fallbacks)
        yield progress(PlanStage.PERSIST, 0.0, "storing the plan")
        await asyncio.to_thread(self._plans.save, plan)
        yield progress(PlanStage.PERSIST, 1.0, f"plan {plan.plan_id} stored")
        yield plan


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


def build_problem(day: PreparedDay, decisions: Sequence[BinDecision]) -> Problem:
    """The routing problem of the day: the base problem's stop per bin, each optional at its
    price: must-visit ones at ``must_visit_penalty`` (scaled up to 2x by predicted overflow so
    the worst go first when not all fit), optional ones at their skip penalty."""
    must = must_visit_penalty(day.base, decisions)
    stops = []
    for stop, d in zip(day.base.stops, decisions, strict=True):
        if d.selection is Selection.MUST_VISIT:
            penalty = must * (1.0 + min(1.0, max(0.0, d.fill_next - 1.0)))
        else:
            penalty = d.skip_penalty
        stops.append(replace(stop, skip_penalty=float(np.round(penalty, 3))))
    return replace(day.base, stops=tuple(stops), fields=PLAN_FIELDS)


def check_penalty_range(base: Problem, policy: PlanPolicy) -> None:
    """Refuse a day whose stop prices could overflow the engines' 64-bit cost arithmetic.

    The SELECT stage prices a bin at most at ``2 x must_visit_penalty`` (twice
    ``MUST_VISIT_FACTOR x max(detour bound, largest optional penalty, 1)``), an optional one at
    most at ``base_skip_penalty + overflow_penalty x (MAX_OVERFLOW + 1)``; that worst price must
    fit every stop (``routing.problem.penalty_headroom``).

    Raises:
        InvalidArgumentError: on the fleet's ``cost_per_km`` or ``fixed_cost``, or the policy's
            ``overflow_penalty`` or ``base_skip_penalty``: whichever drives the worst price.
    """
    longest_km = float(np.max(base.distance_m)) / 1000.0
    detours = [(vt.fixed_cost + vt.cost_per_km * 2.0 * longest_km, t) for t, vt in enumerate(base.vehicle_types)]
    detour, t = max(detours)
    optional = policy.base_skip_penalty + policy.overflow_penalty * (MAX_OVERFLOW + 1.0)
    worst = 2.0 * MUST_VISIT_FACTOR * max(detour, optional, 1.0)
    room = penalty_headroom(base)
    if worst <= room:
        return
    if detour >= optional:
        vt = base.vehicle_types[t]
        name = "cost_per_km" if vt.cost_per_km * 2.0 * longest_km >= vt.fixed_cost else "fixed_cost"
        field = f"{PLAN_FIELDS.vehicle_types}[{t}].{name}"
    else:
        name = ("overflow_penalty" if policy.overflow_penalty * (MAX_OVERFLOW + 1.0) >= policy.base_skip_penalty
                else "base_skip_penalty")
        field = f"policy.{name}"
    raise InvalidArgumentError(field, f"bins may be priced up to {worst:.3g} cost units (must-visit: "
                               f"{2.0 * MUST_VISIT_FACTOR:g} x the dearest detour or optional penalty), but with "
                               f"{len(base.stops)} bins and these distances the engines' 64-bit cost total allows "
                               f"at most {room:.3g} per bin")


_BIN = re.compile(r"^bins\[(\d+)\](.*)$")
#: Fields of the fill model's bins that a PlanDay bin has under the same name.
_BIN_FIELDS = (".recent_readings", ".last_emptied_at", ".prior_fill_rate_per_day", ".bin_id")


def _renamed(err: InvalidArgumentError, rename: Callable[[str], str]) -> InvalidArgumentError:
    out = [FieldViolation(rename(v.field), v.description) for v in err.violations]
    return InvalidArgumentError(out[0].field, out[0].description, *out[1:])


def _bins_in_request(err: InvalidArgumentError, request_index: Sequence[int]) -> InvalidArgumentError:
    """A fill-model error on ``bins[k]...`` of the bins sent to it, named as the request's bin."""

    def rename(field: str) -> str:
        m = _BIN.match(field)
        if m is None or int(m.group(1)) >= len(request_index):
            return "bins"
        rest = m.group(2)
        if rest.endswith("target_time"):
            return "prediction_time"
        keep = next((f for f in _BIN_FIELDS if rest.startswith(f)), "")
        return f"bins[{request_index[int(m.group(1))]}]{rest if keep else ''}"

    return _renamed(err, rename)


def _query_in_request(err: InvalidArgumentError) -> InvalidArgumentError:
    """A complaint-search error on the search's fields, named as the policy's."""

    def rename(field: str) -> str:
        for part, policy_field in (("query", "complaint_query"), ("collection", "complaint_collection"),
                                   ("radius", "complaint_radius_m"), ("min_score", "complaint_min_score"),
                                   ("created_at", "complaint_lookback"), ("top_k", "complaint_query")):
            if part in field:
                return f"policy.{policy_field}"
        return "policy"

    return _renamed(err, rename)
