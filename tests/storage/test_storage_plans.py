"""Collection plans on SQLite and PostgreSQL: saved whole or not at all, read back by id and day."""

from __future__ import annotations

import dataclasses
import datetime as dt
import re
import uuid

import pytest
from sqlalchemy import event

from wasteml_server.adapters.storage import Database, PlanStore
from wasteml_server.adapters.storage.models import Plan
from wasteml_server.core.errors import AlreadyExistsError, InternalError, NotFoundError

DAY = dt.date(2026, 11, 23)
PLAN = {
    "status": "FEASIBLE",
    "request": b"\x08\x01request-bytes",
    "result": b"\x12\x04plan-bytes" * 50,
    "model_versions": {"fill_level": 2, "text_encoder": 1},
    "totals": {"distance_m": 84210.5, "driving_s": 19800.0, "bins_served": 31},
}


def test_save_get_and_list_by_day(db):
    """A saved plan reads back field for field; list filters by service day, newest first, payloads optional."""
    plans = PlanStore(db)
    first = plans.write(service_date=DAY, **PLAN)
    second = plans.write(service_date=DAY, **{**PLAN, "status": "OPTIMAL"})
    other = plans.write(service_date=DAY + dt.timedelta(days=1), **PLAN)
    got = plans.get(first.id)
    assert got == first
    assert got.request == PLAN["request"] and got.result == PLAN["result"]
    assert got.model_versions == PLAN["model_versions"] and got.totals == PLAN["totals"]
    assert got.service_date == DAY and got.created_at.utcoffset() == dt.timedelta(0)
    listed = plans.list(DAY)
    assert [p.id for p in listed] == [second.id, first.id]
    assert all(p.result is None for p in listed)
    assert plans.list(DAY, with_payloads=True)[0].result == PLAN["result"]
    assert {p.id for p in plans.list()} == {first.id, second.id, other.id}


def test_failure_mid_save_leaves_no_row(db_url):
    """If the save fails after the INSERT was sent, the transaction rolls back and no plan is visible."""
    db = Database(db_url)
    plans = PlanStore(db)

    class InterruptedSaveError(RuntimeError):
        pass

    def interrupt(mapper, connection, target):  # runs inside the transaction, after INSERT
        raise InterruptedSaveError("connection lost mid-save")

    plan_id = uuid.uuid4()
    event.listen(Plan, "after_insert", interrupt)
    try:
        with pytest.raises(InterruptedSaveError):
            plans.write(service_date=DAY, plan_id=plan_id, **PLAN)
    finally:
        event.remove(Plan, "after_insert", interrupt)
        db.dispose()

    fresh = Database(db_url)  # another connection, as another process would see it
    try:
        reader = PlanStore(fresh)
        with pytest.raises(NotFoundError):
            reader.get(plan_id)
        assert reader.list(DAY) == []
        saved = reader.write(service_date=DAY, plan_id=plan_id, **PLAN)  # the id is still free
        assert reader.get(plan_id) == saved
    finally:
        fresh.dispose()


def test_duplicate_id_keeps_the_first_plan(db):
    """Saving under an existing plan id raises AlreadyExistsError and leaves the first plan intact."""
    plans = PlanStore(db)
    first = plans.write(service_date=DAY, **PLAN)
    with pytest.raises(AlreadyExistsError):
        plans.write(service_date=DAY, plan_id=first.id, **{**PLAN, "status": "OPTIMAL"})
    assert plans.get(first.id).status == "FEASIBLE"
    assert len(plans.list(DAY)) == 1


def test_bad_plans_name_the_field(db):
    """Malformed plans raise InternalError (a caller bug, not the client's) naming the field, and
    write nothing."""
    plans = PlanStore(db)
    cases = [
        ({"service_date": dt.datetime(2026, 11, 23, tzinfo=dt.UTC)}, "service_date"),
        ({"status": ""}, "status"),
        ({"result": "not bytes"}, "result"),
        ({"model_versions": {"fill_level": 0}}, "model_versions.fill_level"),
        ({"totals": {"distance_m": float("inf")}}, "totals.distance_m"),
        ({"plan_id": "nope"}, "plan_id"),
    ]
    for override, field in cases:
        kwargs = {"service_date": DAY, **PLAN, **override}
        with pytest.raises(InternalError, match=rf"^PlanStore: {re.escape(field)}: "):
            plans.write(**kwargs)
    assert plans.list() == []


def _day_plan():
    """A real small plan: three Blantyre skips by coordinates, decided and routed in-process."""
    from wasteml_testing import DATA_DIR

    from wasteml_server.core.common import ModelRef
    from wasteml_server.core.geo import GeoPoint
    from wasteml_server.planning.plan import DayPlan
    from wasteml_server.planning.planner import build_problem
    from wasteml_server.planning.request import DayPlanRequest, PlanBin, prepare
    from wasteml_server.planning.selection import FillForecast, PlanPolicy, decide
    from wasteml_server.routing.engine import Budget
    from wasteml_server.routing.options import EngineName, SolveOptions
    from wasteml_server.routing.portfolio import make_engine
    from wasteml_server.routing.problem import Depot, TimeWindow, VehicleType
    from wasteml_tools.routing.blantyre import DEPOT_ID, load_sites

    sites = load_sites(DATA_DIR)
    yard = sites[DEPOT_ID - 1]
    bins = tuple(PlanBin(f"skip-{i + 1}", GeoPoint(s.lat_deg, s.lon_deg), demand=(1,), service_duration_s=300)
                 for i, s in enumerate(sites[:3]))
    request = DayPlanRequest(DAY, "Africa/Blantyre", (Depot(yard.name, GeoPoint(yard.lat_deg, yard.lon_deg)),),
                             (VehicleType(count=1, capacity=(5,), shift=TimeWindow(25200, 54000), id="truck"),),
                             bins, PlanPolicy(), solve_options=SolveOptions(time_limit_s=1.0),
                             request_bytes=b"\x08\x01request")
    day = prepare(request)
    forecasts = {b.bin_id: FillForecast(0.5 + 0.2 * i, 0.4, 0.9, None) for i, b in enumerate(bins)}
    decisions = decide([b.bin_id for b in bins], forecasts, {}, request.policy)
    problem = build_problem(day, decisions)
    solution = make_engine(EngineName.PYVRP).solve(problem, Budget(1.0), None, SolveOptions(time_limit_s=1.0))
    served = {i for r in solution.routes for i in r.stop_indices}
    decisions = [dataclasses.replace(d, served=i in served) for i, d in enumerate(decisions)]
    return DayPlan(uuid.uuid4().hex, day, problem, tuple(decisions), solution,
                   (ModelRef("fill_level", 3), ModelRef("text_encoder", 1)), dt.datetime.now(dt.UTC))


def test_save_stores_a_domain_plan_in_the_contracts_wire_format(db):
    """PlanStore.save (the planner's port) stores the request as given, the plan as
    wasteml.v1.Plan bytes equal to what PlanDay returns, its totals and model versions."""
    from wasteml.v1 import planning_pb2
    from wasteml_server.codecs.planning import plan_to_proto

    plan = _day_plan()
    record = PlanStore(db).save(plan)
    got = PlanStore(db).get(record.id)
    assert str(got.id.hex) == plan.plan_id and got.request == b"\x08\x01request"
    assert planning_pb2.Plan.FromString(got.result) == plan_to_proto(plan)
    assert got.model_versions == {"fill_level": 3, "text_encoder": 1}
    assert got.totals["bins_served"] == plan.totals.bins_served == sum(d.served for d in plan.decisions)
    assert got.totals["distance_m"] == plan.totals.distance_m and got.status == plan.solution.status.value
