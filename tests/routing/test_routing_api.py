"""RouteOptimizer through the real server (real local Triton, SQLite, two solver workers):
Solve on a 100-customer Solomon VRPTW re-checked against the matrix, a 1000-customer job
watched then cancelled, a worker killed mid-job, bad input, unknown ids, and a job left
RUNNING by a previous server reported INTERRUPTED."""

from __future__ import annotations

import os
import signal
import time
import uuid
from pathlib import Path

import grpc
import numpy as np
import pytest
from google.rpc import error_details_pb2
from grpc_status import rpc_status
from wasteml_testing import DATA_DIR, server_settings

from wasteml.client import WastemlClient
from wasteml.v1 import routing_pb2
from wasteml_server.adapters.storage import Database, JobStore, migrate
from wasteml_server.app import BackgroundServer
from wasteml_server.codecs.routing import problem_to_proto
from wasteml_server.routing.jobs import RESTART_FAILURE_REASON
from wasteml_tools.routing.instances import load_instance

VRP = DATA_DIR / "vrp"


def _options(seconds: float, engine: int = routing_pb2.ENGINE_UNSPECIFIED) -> routing_pb2.SolveOptions:
    out = routing_pb2.SolveOptions(engine=engine)
    out.time_limit.FromNanoseconds(int(seconds * 1e9))
    return out


def _dimacs_proto(name: str, max_customers: int | None = None) -> routing_pb2.Problem:
    """A benchmark instance as sent by a client: distances only; durations = distances (1 m/s)."""
    problem = problem_to_proto(load_instance(VRP, name, max_customers=max_customers).problem)
    problem.matrix.ClearField("durations_s")
    problem.speed_model.speed_m_per_s = 1.0
    return problem


def _field_violations(err: grpc.RpcError) -> list[str]:
    status = rpc_status.from_call(err)
    assert status is not None
    out = []
    for detail in status.details:
        if detail.Is(error_details_pb2.BadRequest.DESCRIPTOR):
            bad = error_details_pb2.BadRequest()
            detail.Unpack(bad)
            out += [v.field for v in bad.field_violations]
    return out


def recheck(problem: routing_pb2.Problem, solution: routing_pb2.Solution) -> list[str]:
    """Independent check of a reply against the request alone (matrix, windows, capacity,
    depots); shares no code with the server. Durations = distances (speed 1 m/s)."""
    n = problem.matrix.size
    dist = np.asarray(problem.matrix.distances_m).reshape(n, n)
    dur = dist / problem.speed_model.speed_m_per_s
    out: list[str] = []
    seen: list[int] = []
    total = 0.0
    for r_i, route in enumerate(solution.routes):
        vt = problem.vehicle_types[route.vehicle_type_index]
        first, last = route.visits[0], route.visits[-1]
        if (first.kind, first.index) != (routing_pb2.VISIT_KIND_DEPOT, vt.start_depot_index):
            out.append(f"route {r_i} does not start at its depot")
        if (last.kind, last.index) != (routing_pb2.VISIT_KIND_DEPOT, vt.end_depot_index):
            out.append(f"route {r_i} does not end at its depot")
        if first.departure_s < vt.shift.start_s or last.arrival_s > vt.shift.end_s:
            out.append(f"route {r_i} outside the shift")
        prev = problem.depots[vt.start_depot_index].location_index
        t, load, distance = first.departure_s, 0, 0.0
        for k, v in enumerate(route.visits[1:-1], start=1):
            stop = problem.stops[v.index]
            loc = stop.location_index
            seen.append(v.index)
            if abs(v.arrival_s - (t + dur[prev, loc])) > 1e-6:
                out.append(f"route {r_i} visit {k}: arrival {v.arrival_s} != {t + dur[prev, loc]}")
            if not any(w.start_s <= v.service_start_s <= w.end_s for w in stop.time_windows):
                out.append(f"route {r_i} visit {k}: service at {v.service_start_s} outside its window")
            if v.service_start_s < v.arrival_s or v.departure_s != v.service_start_s + stop.service_duration_s:
                out.append(f"route {r_i} visit {k}: service times inconsistent")
            load += stop.demand[0]
            if load > vt.capacity[0] or v.load_after[0] != load:
                out.append(f"route {r_i} visit {k}: load {load} (reported {v.load_after[0]}) vs capacity")
            distance += dist[prev, loc]
            t, prev = v.departure_s, loc
        end_loc = problem.depots[vt.end_depot_index].location_index
        if abs(last.arrival_s - (t + dur[prev, end_loc])) > 1e-6:
            out.append(f"route {r_i}: end arrival inconsistent")
        distance += dist[prev, end_loc]
        if distance != route.distance_m:
            out.append(f"route {r_i}: distance {route.distance_m} != recomputed {distance}")
        total += distance
    if sorted(seen) != list(range(len(problem.stops))):
        out.append("not every stop visited exactly once")
    if total != solution.objective.distance_m:
        out.append(f"objective distance {solution.objective.distance_m} != {total}")
    return out


def _wait(predicate, timeout_s: float, poll_s: float = 0.02) -> float:
    """Seconds until ``predicate()`` held (fails after ``timeout_s``)."""
    t0 = time.monotonic()
    while not predicate():
        assert time.monotonic() - t0 < timeout_s, "condition not reached in time"
        time.sleep(poll_s)
    return time.monotonic() - t0


def test_solve_100_customer_vrptw_is_feasible_within_its_limit(client: WastemlClient, live_server) -> None:
    """Solve on Solomon R101 (100 customers, 5 s) answers FEASIBLE within the limit, and every
    route re-checks against the request's matrix, windows, capacity and depot."""
    assert live_server.app.pool.live_workers == live_server.app.pool.size
    client.wait_until_serving("wasteml.v1.RouteOptimizer", timeout_s=60)
    problem = _dimacs_proto("R101")
    t0 = time.monotonic()
    reply = client.routing.Solve(routing_pb2.SolveRequest(problem=problem, options=_options(5.0)), timeout=60)
    wall = time.monotonic() - t0
    sol = reply.solution
    assert sol.status == routing_pb2.SOLUTION_STATUS_FEASIBLE, sol.infeasibility_reasons
    assert wall < 5.0 + 3.0, f"Solve took {wall:.1f} s for a 5 s limit"
    assert recheck(problem, sol) == []
    assert sol.engine == routing_pb2.ENGINE_PYVRP and sol.engine_runs[0].engine == sol.engine
    assert sol.HasField("time_to_first_feasible_s") and sol.time_to_first_feasible_s < 5.0
    print(f"\nR101 Solve: {wall:.2f} s wall, first feasible {sol.time_to_first_feasible_s:.2f} s, "
          f"distance {sol.objective.distance_m / 10:.1f} (BKS 1637.7), {sol.objective.vehicles_used} vehicles")


def test_1000_customer_job_streams_improvements_then_cancels_within_a_second(
        client: WastemlClient, live_server) -> None:
    """A 1000-customer Gehring-Homberger job streams improving objectives over WatchJob;
    CancelJob frees its worker within a second, the stream ends CANCELLED, and the pool is
    back to its size."""
    pool = live_server.app.pool
    problem = _dimacs_proto("R1_10_1")
    submitted = client.routing.SubmitJob(routing_pb2.SubmitJobRequest(
        problem=problem, options=_options(120.0), label="gh-1000"), timeout=60).job
    assert submitted.status in (routing_pb2.JOB_STATUS_QUEUED, routing_pb2.JOB_STATUS_RUNNING)
    stream = client.routing.WatchJob(routing_pb2.WatchJobRequest(job_id=submitted.job_id), timeout=120)
    objectives: list[float] = []
    t_submit = time.monotonic()
    for event in stream:
        if event.progress.HasField("best_objective"):
            objectives.append(event.progress.best_objective)
        if len(objectives) >= 3:
            break
    first_progress_s = time.monotonic() - t_submit
    assert objectives == sorted(objectives, reverse=True) and objectives[-1] < objectives[0]
    handle = pool.job(uuid.UUID(submitted.job_id).hex)
    assert handle is not None and pool.running_pid(handle)
    t0 = time.monotonic()
    cancelled = client.routing.CancelJob(routing_pb2.CancelJobRequest(job_id=submitted.job_id), timeout=10).job
    _wait(lambda: not pool.running_pid(handle), 5.0)
    latency = time.monotonic() - t0
    assert cancelled.status == routing_pb2.JOB_STATUS_CANCELLED
    assert latency < 1.0, f"search still running {latency:.2f} s after CancelJob"
    rest = list(stream)
    assert rest and rest[-1].status == routing_pb2.JOB_STATUS_CANCELLED
    assert time.monotonic() - t0 < 5.0
    _wait(lambda: pool.live_workers == pool.size, 10.0)
    job = client.routing.GetJob(routing_pb2.GetJobRequest(job_id=submitted.job_id), timeout=10).job
    assert job.status == routing_pb2.JOB_STATUS_CANCELLED and job.label == "gh-1000"
    print(f"\nR1_10_1 job: {len(objectives)} improvements in {first_progress_s:.1f} s "
          f"({objectives[0]:.0f} -> {objectives[-1]:.0f}); worker free {latency * 1000:.0f} ms after CancelJob")


def test_killed_worker_fails_its_job_and_the_server_keeps_serving(client: WastemlClient, live_server) -> None:
    """kill -9 of the worker running a job: GetJob shows FAILED naming the dead worker, the pool
    is back to its size, and a following Solve succeeds."""
    pool = live_server.app.pool
    problem = _dimacs_proto("R101")
    job = client.routing.SubmitJob(routing_pb2.SubmitJobRequest(
        problem=problem, options=_options(60.0, routing_pb2.ENGINE_PYVRP)), timeout=60).job
    handle = pool.job(uuid.UUID(job.job_id).hex)
    _wait(lambda: bool(pool.running_pid(handle)), 20.0)
    for event in client.routing.WatchJob(routing_pb2.WatchJobRequest(job_id=job.job_id), timeout=60):
        if event.progress.HasField("best_objective"):
            break
    (pid,) = pool.running_pid(handle)
    os.kill(pid, signal.SIGKILL)

    def failed() -> bool:
        got = client.routing.GetJob(routing_pb2.GetJobRequest(job_id=job.job_id), timeout=10).job
        return got.status == routing_pb2.JOB_STATUS_FAILED

    _wait(failed, 10.0, 0.1)
    got = client.routing.GetJob(routing_pb2.GetJobRequest(job_id=job.job_id), timeout=10).job
    assert f"pid {pid}" in got.error_message and "signal 9" in got.error_message
    _wait(lambda: pool.live_workers == pool.size and pid not in pool.worker_pids, 10.0)
    small = _dimacs_proto("R101", max_customers=25)
    reply = client.routing.Solve(routing_pb2.SolveRequest(problem=small, options=_options(2.0)), timeout=60)
    assert reply.solution.status == routing_pb2.SOLUTION_STATUS_FEASIBLE
    assert recheck(small, reply.solution) == []


def test_bad_input_is_invalid_argument_naming_the_field(client: WastemlClient) -> None:
    """A window ending before it starts, a too long time limit and a stop without a matrix
    index are INVALID_ARGUMENT naming the request field."""
    problem = _dimacs_proto("R101", max_customers=5)
    bad_window = routing_pb2.Problem()
    bad_window.CopyFrom(problem)
    bad_window.stops[0].time_windows[0].end_s = bad_window.stops[0].time_windows[0].start_s - 10
    no_index = routing_pb2.Problem()
    no_index.CopyFrom(problem)
    no_index.stops[3].ClearField("location_index")
    cases = [
        (routing_pb2.SolveRequest(problem=bad_window, options=_options(1.0)), "problem.stops[0].time_windows[0]"),
        (routing_pb2.SolveRequest(problem=problem, options=_options(10_000.0)), "options.time_limit"),
        (routing_pb2.SolveRequest(problem=problem, options=_options(-1.0)), "options.time_limit"),
        (routing_pb2.SolveRequest(problem=no_index, options=_options(1.0)), "problem.stops[3].location_index"),
    ]
    for request, field in cases:
        with pytest.raises(grpc.RpcError) as err:
            client.routing.Solve(request, timeout=30)
        assert err.value.code() == grpc.StatusCode.INVALID_ARGUMENT
        assert any(f.startswith(field) for f in _field_violations(err.value)), (field, err.value.details())
    with pytest.raises(grpc.RpcError) as err:
        client.routing.SubmitJob(routing_pb2.SubmitJobRequest(problem=bad_window, options=_options(1.0)), timeout=30)
    assert err.value.code() == grpc.StatusCode.INVALID_ARGUMENT


def test_unknown_job_ids_are_not_found(client: WastemlClient) -> None:
    """GetJob, WatchJob and CancelJob of an id that was never issued (UUID or not) are NOT_FOUND."""
    for job_id in (str(uuid.uuid4()), "no-such-job"):
        for call in (lambda j=job_id: client.routing.GetJob(routing_pb2.GetJobRequest(job_id=j), timeout=10),
                     lambda j=job_id: list(client.routing.WatchJob(routing_pb2.WatchJobRequest(job_id=j), timeout=10)),
                     lambda j=job_id: client.routing.CancelJob(routing_pb2.CancelJobRequest(job_id=j), timeout=10)):
            with pytest.raises(grpc.RpcError) as err:
                call()
            assert err.value.code() == grpc.StatusCode.NOT_FOUND


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    return True


def test_job_running_when_the_previous_server_died_is_interrupted(tmp_path: Path) -> None:
    """A job left RUNNING in the store by a dead server reads INTERRUPTED with the restart reason
    after the next start (GetJob and WatchJob), keeps its label, and CancelJob leaves it so;
    stopping that server leaves no solver worker behind."""
    settings = server_settings(tmp_path, solver_workers=1)
    migrate(settings.database_url)
    db = Database.from_settings(settings)
    request = routing_pb2.SubmitJobRequest(problem=_dimacs_proto("R101", max_customers=5),
                                           options=_options(30.0), label="before-the-crash")
    store = JobStore(db)
    record = store.create("pyvrp", request.SerializeToString(deterministic=True), 30.0)
    store.mark_running(record.id)
    db.dispose()
    server = BackgroundServer(settings)
    try:
        port = server.start(timeout_s=600)
        with WastemlClient(f"127.0.0.1:{port}", timeout_s=30) as c:
            job = c.routing.GetJob(routing_pb2.GetJobRequest(job_id=str(record.id)), timeout=30).job
            assert job.status == routing_pb2.JOB_STATUS_INTERRUPTED
            assert job.error_message == RESTART_FAILURE_REASON and job.label == "before-the-crash"
            events = list(c.routing.WatchJob(routing_pb2.WatchJobRequest(job_id=str(record.id)), timeout=30))
            assert [e.status for e in events] == [routing_pb2.JOB_STATUS_INTERRUPTED]
            again = c.routing.CancelJob(routing_pb2.CancelJobRequest(job_id=str(record.id)), timeout=30).job
            assert again.status == routing_pb2.JOB_STATUS_INTERRUPTED
        workers = server.app.pool.worker_pids
        assert len(workers) == 1
    finally:
        server.stop()
    assert not any(_alive(pid) for pid in workers)


def test_call_deadline_bounds_solve_and_a_cancelled_call_frees_its_worker(
        client: WastemlClient, live_server) -> None:
    """A 30 s Solve under a 3 s call deadline answers FEASIBLE before the deadline; a Solve
    whose caller cancels stops its search within a second."""
    pool = live_server.app.pool
    problem = _dimacs_proto("R101")
    request = routing_pb2.SolveRequest(problem=problem, options=_options(30.0))
    t0 = time.monotonic()
    reply = client.routing.Solve(request, timeout=3.0)
    assert time.monotonic() - t0 < 3.0
    assert reply.solution.status == routing_pb2.SOLUTION_STATUS_FEASIBLE
    assert recheck(problem, reply.solution) == []
    future = client.routing.Solve.future(request, timeout=60)
    _wait(lambda: pool.running > 0, 10.0)
    t0 = time.monotonic()
    future.cancel()
    _wait(lambda: pool.running == 0, 5.0)
    assert time.monotonic() - t0 < 1.0
    _wait(lambda: pool.live_workers == pool.size, 10.0)


def test_finished_job_is_watched_from_the_store_and_request_ids_are_idempotent(client: WastemlClient) -> None:
    """A short job ends SUCCEEDED with its solution on the stream and in GetJob; watching it again
    replays the final state only; CancelJob leaves it unchanged; a repeated request_id returns
    the first job."""
    problem = _dimacs_proto("R101", max_customers=25)
    request = routing_pb2.SubmitJobRequest(problem=problem, options=_options(1.0), label="short",
                                           request_id=f"test-{uuid.uuid4()}")
    job = client.routing.SubmitJob(request, timeout=60).job
    assert client.routing.SubmitJob(request, timeout=60).job.job_id == job.job_id
    events = list(client.routing.WatchJob(routing_pb2.WatchJobRequest(job_id=job.job_id), timeout=60))
    final = events[-1]
    assert final.status == routing_pb2.JOB_STATUS_SUCCEEDED and not final.error_message
    assert final.solution.status == routing_pb2.SOLUTION_STATUS_FEASIBLE and recheck(problem, final.solution) == []
    assert all(e.status != routing_pb2.JOB_STATUS_SUCCEEDED for e in events[:-1])
    got = client.routing.GetJob(routing_pb2.GetJobRequest(job_id=job.job_id), timeout=10).job
    assert got.solution == final.solution and got.label == "short"
    assert got.progress.best_objective == pytest.approx(final.solution.objective.total)
    assert got.options.time_limit.ToNanoseconds() == 1_000_000_000
    again = list(client.routing.WatchJob(routing_pb2.WatchJobRequest(job_id=job.job_id), timeout=10))
    assert len(again) == 1 and again[0].solution == final.solution
    cancelled = client.routing.CancelJob(routing_pb2.CancelJobRequest(job_id=job.job_id), timeout=10).job
    assert cancelled.status == routing_pb2.JOB_STATUS_SUCCEEDED and cancelled.solution == final.solution


def test_unservable_required_stop_is_an_explained_infeasible_reply(client: WastemlClient) -> None:
    """A required stop whose window closes before any truck can arrive makes Solve answer
    INFEASIBLE naming that stop and why, without running a search."""
    problem = _dimacs_proto("R101", max_customers=10)
    window = problem.stops[4].time_windows[0]
    window.start_s, window.end_s = 0.0, 1.0
    reply = client.routing.Solve(routing_pb2.SolveRequest(problem=problem, options=_options(5.0)), timeout=30)
    sol = reply.solution
    assert sol.status == routing_pb2.SOLUTION_STATUS_INFEASIBLE and not sol.routes
    assert sol.infeasibility_reasons and "stops[4]" in sol.infeasibility_reasons[0]
    by_index = {u.stop_index: u for u in sol.unassigned_stops}
    assert by_index[4].reason == routing_pb2.UNASSIGNED_REASON_TIME_WINDOW_UNREACHABLE
    assert "time window" in by_index[4].detail
    assert by_index[0].reason == routing_pb2.UNASSIGNED_REASON_UNSPECIFIED
    job = client.routing.SubmitJob(routing_pb2.SubmitJobRequest(problem=problem, options=_options(5.0)),
                                   timeout=30).job
    assert job.status == routing_pb2.JOB_STATUS_SUCCEEDED
    assert job.solution.status == routing_pb2.SOLUTION_STATUS_INFEASIBLE
