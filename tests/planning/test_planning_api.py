"""CollectionPlanner.PlanDay end to end on the real Blantyre day (live server, real Triton,
Milvus Lite, solver pool), with the plan re-checked independently of the solver."""

from __future__ import annotations

import threading
import time
from datetime import UTC, datetime

import grpc
import numpy as np
import pytest
from wasteml_testing import DATA_DIR

from wasteml.client import WastemlClient
from wasteml.v1 import planning_pb2, routing_pb2, search_pb2
from wasteml_server.adapters.storage import PlanStore
from wasteml_tools.planning.blantyre_request import plan_day_request

COLLECTION = "plan_test_complaints"


def _run(client: WastemlClient, request) -> tuple[list, planning_pb2.Plan]:
    events, plan = [], None
    for event in client.plan_day(request, timeout_s=300):
        if event.HasField("plan"):
            plan = event.plan
        else:
            events.append(event.progress)
    assert plan is not None
    return events, plan


def _request(**kw):
    req = plan_day_request(DATA_DIR, trucks=3, time_limit_s=kw.pop("time_limit_s", 6))
    req.policy.complaint_collection = COLLECTION
    return req


@pytest.fixture(scope="module", autouse=True)
def complaint_collection(client: WastemlClient) -> str:
    """The plans' complaint collection, created by ingestion (reads never create one) with one
    complaint 12,000 km from Blantyre, so that no skip has a complaint nearby."""
    far = search_pb2.SearchDocument(id="far-away-1", kind="Overflowing or Un-kept Dumpster", source="test",
                                    text="Overflowing dumpster behind the library.")
    far.location.latitude_deg, far.location.longitude_deg = 42.3601, -71.0589  # Boston
    far.created_at.FromDatetime(datetime(2021, 5, 29, 9, 0, tzinfo=UTC))
    reply = client.search.IndexDocuments(
        iter([search_pb2.IndexDocumentsRequest(collection=COLLECTION, documents=[far])]), timeout=120)
    assert reply.documents_received == 1
    return COLLECTION


@pytest.fixture(scope="module")
def baseline(client: WastemlClient):
    """One plan of the real day, no complaint near any skip."""
    request = _request()
    events, plan = _run(client, request)
    return request, events, plan


def test_stages_stream_in_order_and_solver_progress_is_reported(baseline) -> None:
    """Progress events cover predict, complaints, select, solve and persist, in that order."""
    _, events, _ = baseline
    stages = [e.stage for e in events]
    assert stages == sorted(stages)
    assert set(stages) == {planning_pb2.PLAN_STAGE_PREDICT, planning_pb2.PLAN_STAGE_COMPLAINTS,
                           planning_pb2.PLAN_STAGE_SELECT, planning_pb2.PLAN_STAGE_SOLVE,
                           planning_pb2.PLAN_STAGE_PERSIST}
    assert any(e.HasField("solver_best_objective") for e in events if e.stage == planning_pb2.PLAN_STAGE_SOLVE)


def test_plan_is_feasible_against_the_road_matrix(baseline) -> None:
    """Every route starts and ends at the yard, each lift is followed by a dump visit, times follow
    the matrix plus lift/tip times, and no truck works past its shift."""
    request, _, plan = baseline
    assert plan.status == routing_pb2.SOLUTION_STATUS_FEASIBLE and plan.routes
    n = request.matrix.size
    dist = np.array(request.matrix.distances_m).reshape(n, n)
    dur = np.array(request.matrix.durations_s).reshape(n, n)
    index = {request.depots[0].id: request.depots[0].location_index,
             request.facilities[0].id: request.facilities[0].location_index}
    index.update({b.bin_id: b.location_index for b in request.bins})
    service = {request.facilities[0].id: request.facilities[0].service_duration_s}
    service.update({b.bin_id: b.service_duration_s for b in request.bins})
    origin = datetime(2021, 5, 30, 22, 0, tzinfo=UTC)  # 2021-05-31 00:00 Africa/Blantyre
    shift = request.fleet[0].shift
    total_km = 0.0
    for route in plan.routes:
        stops = list(route.stops)
        assert stops[0].kind == stops[-1].kind == planning_pb2.PLAN_STOP_KIND_DEPOT
        kinds = [s.kind for s in stops[1:-1]]
        for a, b in zip(kinds, kinds[1:] + [None], strict=True):
            if a == planning_pb2.PLAN_STOP_KIND_BIN:
                assert b == planning_pb2.PLAN_STOP_KIND_FACILITY, "a lifted skip must go to the dump next"
        assert kinds[-1] == planning_pb2.PLAN_STOP_KIND_FACILITY, "trucks park empty"
        t = (stops[0].departure_time.ToDatetime(tzinfo=UTC) - origin).total_seconds()
        assert t >= shift.start_s - 1
        km = 0.0
        for prev, cur in zip(stops, stops[1:], strict=False):
            leg = dist[index[prev.id], index[cur.id]]
            assert cur.distance_from_previous_m == pytest.approx(leg)
            km += leg / 1000
            t += dur[index[prev.id], index[cur.id]]
            arrival = (cur.arrival_time.ToDatetime(tzinfo=UTC) - origin).total_seconds()
            assert arrival >= t - 1, f"{cur.id} reached sooner than the matrix allows"
            t = max(t, arrival) + service.get(cur.id, 0)
        assert t <= shift.end_s + 1, "shift overrun"
        assert route.distance_m / 1000 == pytest.approx(km, rel=1e-6)
        total_km += km
    assert plan.totals.distance_m / 1000 == pytest.approx(total_km, rel=1e-6)
    served = {s.id for r in plan.routes for s in r.stops if s.kind == planning_pb2.PLAN_STOP_KIND_BIN}
    assert plan.totals.bins_served == len(served)
    assert {d.bin_id for d in plan.unserved_bins}.isdisjoint(served)


def test_reasons_and_models_are_reported(baseline) -> None:
    """Each served skip carries its predicted fill and selection; the fill model and the complaint
    encoder versions are named; each route names its own vehicle as "<vehicle type id>-<n>"."""
    request, _, plan = baseline
    reasons = [s.reason for r in plan.routes for s in r.stops if s.kind == planning_pb2.PLAN_STOP_KIND_BIN]
    assert all(r.served and 0.0 <= r.predicted_fill_fraction <= 1.0 and r.explanation for r in reasons)
    assert any(r.selection == planning_pb2.BIN_SELECTION_MUST_VISIT for r in reasons)
    assert [(m.name, m.version) for m in plan.models_used] == [("fill_level", "1"), ("text_encoder", "1")]
    vehicles = [r.vehicle_id for r in plan.routes]
    assert len(set(vehicles)) == len(vehicles)
    for r in plan.routes:
        vt = request.fleet[r.vehicle_type_index]
        assert r.vehicle_id in {f"{vt.id}-{n}" for n in range(vt.count)}
    assert plan.totals.predicted_overflows_avoided + plan.totals.predicted_overflows_left == sum(
        1 for r in [*reasons, *plan.unserved_bins] if r.predicted_overflow)


def test_complaint_next_to_a_skip_makes_it_must_visit(client: WastemlClient, baseline) -> None:
    """A complaint indexed beside a skip the forecast alone would leave makes it must-visit, and
    its reason names the complaint."""
    request, _, plan = baseline
    optional = [d for d in plan.unserved_bins if d.selection == planning_pb2.BIN_SELECTION_OPTIONAL]
    assert optional, "the real day should leave some low skips optional and unserved"
    target = min(optional, key=lambda d: d.predicted_fill_fraction)
    where = next(b.location for b in request.bins if b.bin_id == target.bin_id)
    complaint = search_pb2.SearchDocument(
        id="complaint-test-1", kind="Overflowing or Un-kept Dumpster",
        text="Overflowing or Un-kept Dumpster. Skip overflowing, rubbish piling up around the dumpster.",
        source="test")
    complaint.location.latitude_deg = where.latitude_deg + 0.0005  # ~55 m north
    complaint.location.longitude_deg = where.longitude_deg
    complaint.created_at.FromDatetime(datetime(2021, 5, 29, 9, 0, tzinfo=UTC))
    reply = client.search.IndexDocuments(
        iter([search_pb2.IndexDocumentsRequest(collection=COLLECTION, documents=[complaint])]), timeout=60)
    assert reply.documents_received == 1
    try:
        _, again = _run(client, _request())
        decision = next(s.reason for r in again.routes for s in r.stops if s.id == target.bin_id)
    except StopIteration:
        decision = next(d for d in again.unserved_bins if d.bin_id == target.bin_id)
    finally:
        client.search.DeleteDocuments(
            search_pb2.DeleteDocumentsRequest(collection=COLLECTION, ids=["complaint-test-1"]), timeout=30)
    assert decision.selection == planning_pb2.BIN_SELECTION_MUST_VISIT
    assert decision.complaint_backed and not decision.over_fill_threshold
    assert [c.complaint_id for c in decision.complaints] == ["complaint-test-1"]
    assert "complaint-test-1" in decision.explanation
    assert 0 < decision.complaints[0].distance_m < 250


def test_cancel_mid_solve_is_prompt_and_leaves_no_plan(client: WastemlClient, live_server) -> None:
    """Cancelling PlanDay during the solve ends it with CANCELLED within seconds; no plan is stored
    and the solver pool is back to its size."""
    request = _request(time_limit_s=60)
    request.service_date.day = 30  # a day no other test plans
    store = PlanStore(live_server.app.db)
    before = len(store.list(service_date=datetime(2021, 5, 30).date()))
    call = client.planning.PlanDay(request, timeout=300)
    solving = threading.Event()

    def consume() -> None:
        try:
            for event in call:
                if event.HasField("progress") and event.progress.stage == planning_pb2.PLAN_STAGE_SOLVE:
                    solving.set()
        except grpc.RpcError:
            pass

    reader = threading.Thread(target=consume)
    reader.start()
    assert solving.wait(120), "PlanDay never reached the solve stage"
    time.sleep(1.0)
    start = time.monotonic()
    call.cancel()
    reader.join(10)
    assert call.code() == grpc.StatusCode.CANCELLED
    assert time.monotonic() - start < 2.0
    pool = live_server.app.pool
    deadline = time.monotonic() + 5
    while (pool.running or pool.live_workers < pool.size) and time.monotonic() < deadline:
        time.sleep(0.1)
    assert pool.running == 0 and pool.live_workers == pool.size
    time.sleep(0.5)
    assert len(store.list(service_date=datetime(2021, 5, 30).date())) == before
