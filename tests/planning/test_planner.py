"""The planner behind its ports, no network: fakes for the fill predictor, the complaint search,
the solver session and the plan store, a real routing engine in-process, real Blantyre sites."""

from __future__ import annotations

import asyncio
import contextlib
from dataclasses import dataclass, field, replace
from datetime import UTC, date, datetime, timedelta

import pytest
from contract_paths import field_exists
from wasteml_testing import DATA_DIR

from wasteml.v1 import planning_pb2
from wasteml_server.core.common import ModelRef
from wasteml_server.core.errors import InvalidArgumentError
from wasteml_server.core.geo import GeoPoint
from wasteml_server.planning.plan import DayPlan, PlanStage, StageProgress
from wasteml_server.planning.planner import CollectionPlanner
from wasteml_server.planning.ports import BinFill, ComplaintQuery
from wasteml_server.planning.request import DayPlanRequest, FillReading, PlanBin
from wasteml_server.planning.selection import Complaint, FillForecast, PlanPolicy, Selection
from wasteml_server.routing.engine import Budget
from wasteml_server.routing.options import EngineName, SolveOptions
from wasteml_server.routing.pool import ProgressEvent
from wasteml_server.routing.portfolio import make_engine
from wasteml_server.routing.problem import Depot, Facility, Problem, TimeWindow, VehicleType
from wasteml_server.routing.service import SolveSession
from wasteml_server.routing.solution import Solution
from wasteml_tools.routing.blantyre import DEPOT_ID, DUMP_ID, load_sites

SERVICE_DAY = date(2021, 5, 31)
SHIFT = TimeWindow(7 * 3600, 15 * 3600)


@dataclass
class FakePredictor:
    """Fill = the last reading + 0.1 per day; records what it was asked."""

    asked: list[list[str]] = field(default_factory=list)

    async def predict(self, bins: list[BinFill]) -> tuple[dict[str, FillForecast], ModelRef]:
        self.asked.append([b.bin_id for b in bins])
        out = {}
        for b in bins:
            days = (b.target_s - b.readings_s[-1][0]) / 86_400
            fill = min(1.0, b.readings_s[-1][1] + 0.1 * days)
            out[b.bin_id] = FillForecast(fill, max(0.0, fill - 0.1), min(1.0, fill + 0.1),
                                         0.0 if fill >= 1.0 else (1.0 - fill) / 0.1 * 86_400)
        return out, ModelRef("fill_level", 3)


@dataclass
class FakeComplaints:
    """One complaint beside the bin at ``complaint_at``; records every call."""

    complaint_at: int = 0
    calls: list[tuple[int, ComplaintQuery]] = field(default_factory=list)

    async def near(self, points, query: ComplaintQuery):
        self.calls.append((len(points), query))
        hits = [[] for _ in points]
        hits[self.complaint_at] = [Complaint("101001234", 0.8, 40.0, query.until - timedelta(days=2),
                                             "Overflowing dumpster, rubbish on the street")]
        return hits, ModelRef("text_encoder", 1)


class FakeJob:
    """A pool job whose search is the real PyVRP engine run in a thread."""

    def __init__(self, problem: Problem, options: SolveOptions) -> None:
        self.engines = (EngineName.PYVRP,)
        self.cancelled = False
        self._task = asyncio.ensure_future(asyncio.to_thread(
            make_engine(EngineName.PYVRP).solve, problem, Budget(options.limit_s), None, options))

    async def events(self):
        yield ProgressEvent("job", EngineName.PYVRP, 1234.5, 0.1)

    async def result(self) -> Solution:
        return await self._task

    def cancel(self) -> bool:
        self.cancelled = True
        return not self._task.done()


@dataclass
class FakeSolver:
    """The routing service's ``open``: records the options field and hands out fake jobs."""

    opened: list[tuple[Problem, str]] = field(default_factory=list)
    jobs: list[FakeJob] = field(default_factory=list)
    fail_with: BaseException | None = None

    async def open(self, problem: Problem, options: SolveOptions, *, options_field: str = "options",
                   deadline: float | None = None, within_call: bool = True) -> SolveSession:
        self.opened.append((problem, options_field))
        if self.fail_with is not None:
            raise self.fail_with
        job = FakeJob(problem, options.limited(60.0))
        self.jobs.append(job)
        return SolveSession(job)  # type: ignore[arg-type]


@dataclass
class FakePlans:
    """Stores plans in a list."""

    saved: list[DayPlan] = field(default_factory=list)

    def save(self, plan: DayPlan) -> None:
        self.saved.append(plan)


def _request(n_bins: int = 8, time_limit_s: float | None = 1.0, **changes) -> DayPlanRequest:
    """A real Blantyre day by coordinates: the yard, the Mzedi dump, the first skips; the first
    half of the bins read recently, the rest never (the fallback)."""
    sites = load_sites(DATA_DIR)
    yard, dump = sites[DEPOT_ID - 1], sites[DUMP_ID - 1]
    start = datetime(2021, 5, 31, 7, tzinfo=UTC)
    bins = []
    for i in range(n_bins):
        s = sites[i]
        readings = (FillReading(start - timedelta(days=1), 0.5 + 0.06 * i),) if i < n_bins // 2 else ()
        bins.append(PlanBin(f"skip-{i + 1}", GeoPoint(s.lat_deg, s.lon_deg), demand=(1,), service_duration_s=300,
                            recent_readings=readings, last_emptied_at=start - timedelta(days=9),
                            prior_fill_rate_per_day=0.12))
    values = dict(
        service_date=SERVICE_DAY, time_zone="Africa/Blantyre",
        depots=(Depot(yard.name, GeoPoint(yard.lat_deg, yard.lon_deg)),),
        fleet=(VehicleType(count=2, capacity=(1,), shift=SHIFT, reload_facility_indices=(0,), end_empty=True,
                           id="skip-loader"),),
        bins=tuple(bins), facilities=(Facility(dump.name, GeoPoint(dump.lat_deg, dump.lon_deg), service_duration_s=300),),
        policy=PlanPolicy(), solve_options=SolveOptions(time_limit_s=time_limit_s), request_bytes=b"request",
    )
    values.update(changes)
    return DayPlanRequest(**values)


def _planner(**fakes):
    parts = {"predictor": FakePredictor(), "complaints": FakeComplaints(), "solver": FakeSolver(),
             "plans": FakePlans(), **fakes}
    return CollectionPlanner(parts["predictor"], parts["complaints"], parts["solver"], parts["plans"]), parts


async def _run(planner: CollectionPlanner, request: DayPlanRequest) -> list:
    return [item async for item in planner.plan_day(request)]


async def test_stages_run_in_order_and_the_plan_is_stored_once() -> None:
    """PREDICT, COMPLAINTS, SELECT, SOLVE, PERSIST in order, the stored plan is the one yielded."""
    planner, fakes = _planner()
    items = await _run(planner, _request())
    events, plan = items[:-1], items[-1]
    assert isinstance(plan, DayPlan) and all(isinstance(e, StageProgress) for e in events)
    order = [e.stage for e in events]
    assert order == sorted(order, key=list(PlanStage).index)
    assert set(order) == set(PlanStage)
    assert fakes["plans"].saved == [plan]
    assert any(e.stage is PlanStage.SOLVE and e.solver_best_objective == 1234.5 for e in events)


async def test_one_complaint_query_for_all_bins() -> None:
    """The complaint search is asked once, with every bin's point and the policy's query."""
    planner, fakes = _planner()
    request = _request(n_bins=8)
    await _run(planner, request)
    ((n_points, query),) = fakes["complaints"].calls
    assert n_points == 8
    assert query.query == request.policy.complaint_query and query.radius_m == request.policy.complaint_radius_m
    assert query.until == datetime(2021, 5, 31, 5, tzinfo=UTC)  # 07:00 in Africa/Blantyre (UTC+2)


async def test_models_and_fallbacks_are_declared() -> None:
    """The plan names the fill model and the complaint encoder, and declares the fallback bins."""
    planner, fakes = _planner()
    plan = (await _run(planner, _request(n_bins=8)))[-1]
    assert plan.models == (ModelRef("fill_level", 3), ModelRef("text_encoder", 1))
    assert fakes["predictor"].asked == [["skip-1", "skip-2", "skip-3", "skip-4"]]
    (notice,) = plan.fallbacks
    assert notice.dependency == "fill_level" and "4 bins" in notice.reason


async def test_complaint_makes_the_bin_must_visit_and_it_is_served() -> None:
    """The complaint-backed bin is must-visit, priced above every optional bin, and served."""
    planner, fakes = _planner(complaints=FakeComplaints(complaint_at=6))
    plan = (await _run(planner, _request()))[-1]
    backed = plan.decisions[6]
    assert backed.selection is Selection.MUST_VISIT and backed.complaint_backed and backed.served
    assert plan.problem.stops[6].skip_penalty > max(s.skip_penalty for i, s in enumerate(plan.problem.stops)
                                                    if plan.decisions[i].selection is Selection.OPTIONAL)
    totals = plan.totals
    assert totals.bins_served == sum(d.served for d in plan.decisions)
    assert totals.distance_m == sum(r.distance_m for r in plan.solution.routes)
    assert totals.dump_trips == sum(r.facility_visits for r in plan.solution.routes)


async def test_solver_is_opened_with_the_plans_options_field() -> None:
    """The SOLVE stage names its options solve_options, so refused options name that field."""
    planner, fakes = _planner()
    await _run(planner, _request())
    ((problem, options_field),) = fakes["solver"].opened
    assert options_field == "solve_options" and len(problem.stops) == 8


async def test_a_failed_solve_stores_nothing() -> None:
    """An error opening the solve ends the call before PERSIST: no plan is stored."""
    planner, fakes = _planner(solver=FakeSolver(fail_with=InvalidArgumentError("solve_options.engine", "no")))
    with pytest.raises(InvalidArgumentError):
        await _run(planner, _request())
    assert fakes["plans"].saved == []


async def test_a_cancelled_call_cancels_the_solve_and_stores_nothing() -> None:
    """Cancelling the caller during SOLVE cancels the job and persists nothing."""
    planner, fakes = _planner()

    async def consume() -> None:  # as the servicer does: the stream closed when the call ends
        async with contextlib.aclosing(planner.plan_day(_request(time_limit_s=5.0))) as items:
            async for item in items:
                if isinstance(item, StageProgress) and item.solver_best_objective is not None:
                    await asyncio.sleep(10)

    task = asyncio.ensure_future(consume())
    await asyncio.sleep(0.5)
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task
    assert fakes["solver"].jobs[0].cancelled and fakes["plans"].saved == []


@pytest.mark.parametrize(("change", "field"), [
    ({"bins": ()}, "bins"),
    ({"time_zone": "Mars/Olympus"}, "time_zone"),
    ({"solve_options": SolveOptions()}, "solve_options.time_limit"),
])
async def test_bad_requests_name_their_field(change: dict, field: str) -> None:
    """The planner's own rules name the request field before any stage runs."""
    planner, fakes = _planner()
    with pytest.raises(InvalidArgumentError) as err:
        await _run(planner, _request(**change))
    assert err.value.field == field
    assert fakes["complaints"].calls == [] and fakes["plans"].saved == []


@dataclass
class RefusingPredictor(FakePredictor):
    """Refuses the batch as the fill model does, naming a field of *its* request."""

    field_path: str = "bins[1].recent_readings"

    async def predict(self, bins: list[BinFill]) -> tuple[dict[str, FillForecast], ModelRef]:
        self.asked.append([b.bin_id for b in bins])
        raise InvalidArgumentError(self.field_path, "reading times must be strictly increasing")


@dataclass
class RefusingComplaints(FakeComplaints):
    """Refuses the query as the search service does, naming a field of a SearchRequest."""

    field_path: str = "query"

    async def near(self, points, query: ComplaintQuery):
        raise InvalidArgumentError(self.field_path, "must be at most 8192 characters")


async def test_errors_of_the_services_name_the_plan_requests_fields() -> None:
    """The fill model names bins of the batch it was sent (only the bins with recent readings);
    the planner names the request's bin instead (bins[1] of the batch is the request's bins[5]
    when the read bins come last), its target time as prediction_time, and the complaint
    search's query as policy.complaint_query; every path exists in PlanDayRequest."""
    request = _request()
    reordered = replace(request, bins=request.bins[4:] + request.bins[:4])  # read bins are 4..7 now
    for batch_field, request_field in (("bins[1].recent_readings", "bins[5].recent_readings"),
                                       ("bins[0].target_time", "prediction_time"), ("bins", "bins")):
        planner, fakes = _planner(predictor=RefusingPredictor(field_path=batch_field))
        with pytest.raises(InvalidArgumentError) as err:
            await _run(planner, reordered)
        assert fakes["predictor"].asked[0][1] == reordered.bins[5].bin_id
        assert err.value.field == request_field
        assert field_exists(planning_pb2.PlanDayRequest.DESCRIPTOR, err.value.field)
    for search_field, request_field in (("query", "policy.complaint_query"),
                                        ("collection", "policy.complaint_collection"),
                                        ("filters[3].radius.radius_m", "policy.complaint_radius_m")):
        planner, _ = _planner(complaints=RefusingComplaints(field_path=search_field))
        with pytest.raises(InvalidArgumentError) as err:
            await _run(planner, request)
        assert err.value.field == request_field
