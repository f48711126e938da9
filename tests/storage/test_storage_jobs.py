"""Solver jobs on SQLite and PostgreSQL: life cycle, refused transitions, recovery after restart."""

from __future__ import annotations

import datetime as dt
import uuid

import pytest

from wasteml.v1 import routing_pb2
from wasteml_server.adapters.storage import Database, JobStore
from wasteml_server.core.errors import (
    AlreadyExistsError,
    FailedPreconditionError,
    InternalError,
    NotFoundError,
)
from wasteml_server.routing.jobs import RESTART_FAILURE_REASON, JobStatus
from wasteml_server.routing.options import EngineName
from wasteml_server.routing.solution import Solution, SolveStatus

PROBLEM = b"\x0a\x05depot\x12\x03bin" * 100  # opaque serialized bytes, as the servicer stores them


def _aware_utc(value: dt.datetime | None) -> bool:
    return value is not None and value.utcoffset() == dt.timedelta(0)


def test_successful_life_cycle(db):
    """QUEUED -> RUNNING -> progress -> SUCCEEDED keeps payloads, objective and UTC timestamps."""
    jobs = JobStore(db)
    job = jobs.create("ortools", PROBLEM, 30.0)
    assert (
        job.status is JobStatus.QUEUED and job.started_at is None and _aware_utc(job.submitted_at)
    )
    running = jobs.mark_running(job.id)
    assert running.status is JobStatus.RUNNING and _aware_utc(running.started_at)
    assert jobs.update_progress(job.id, 1234.5).best_objective == 1234.5
    assert jobs.update_progress(str(job.id), 1200.0).best_objective == 1200.0
    done = jobs.finish(job.id, b"routes", best_objective=1190.25)
    assert done.status is JobStatus.SUCCEEDED
    got = jobs.get(job.id)
    assert got.problem == PROBLEM and got.result == b"routes"
    assert got.best_objective == 1190.25 and got.time_limit_s == 30.0 and got.engine == "ortools"
    assert _aware_utc(got.finished_at) and got.submitted_at <= got.started_at <= got.finished_at
    assert got.elapsed_s is not None and got.elapsed_s >= 0


def test_finish_stores_a_domain_solution_in_the_wire_format(db):
    """A domain Solution given to finish() is stored as wasteml.v1.Solution bytes."""
    jobs = JobStore(db)
    job = jobs.create("ortools", PROBLEM, 5)
    jobs.mark_running(job.id)
    solution = Solution(SolveStatus.INFEASIBLE, EngineName.ORTOOLS, solve_time_s=0.25,
                        infeasibility_reasons=("stop 3 is out of every vehicle's reach",))
    jobs.finish(job.id, solution)
    stored = routing_pb2.Solution.FromString(jobs.get(job.id).result)
    assert stored.status == routing_pb2.SOLUTION_STATUS_INFEASIBLE
    assert stored.engine == routing_pb2.ENGINE_ORTOOLS and stored.solve_time_s == 0.25
    assert list(stored.infeasibility_reasons) == ["stop 3 is out of every vehicle's reach"]
    other = jobs.create("ortools", PROBLEM, 5)
    jobs.mark_running(other.id)
    with pytest.raises(InternalError, match="Solution or bytes"):
        jobs.finish(other.id, "routes")
    assert jobs.get(other.id).status is JobStatus.RUNNING


def test_refused_transitions(db):
    """Transitions from the wrong state raise FailedPreconditionError and change nothing."""
    jobs = JobStore(db)
    job = jobs.create("pyvrp", PROBLEM, 5)
    with pytest.raises(FailedPreconditionError):
        jobs.update_progress(job.id, 10.0)  # not running yet
    with pytest.raises(FailedPreconditionError):
        jobs.finish(job.id, b"x")  # not running yet
    jobs.mark_running(job.id)
    with pytest.raises(FailedPreconditionError):
        jobs.mark_running(job.id)
    jobs.cancel(job.id, "cancelled by client")
    for attempt in (
        lambda: jobs.cancel(job.id),
        lambda: jobs.fail(job.id, "boom"),
        lambda: jobs.finish(job.id, b"late result"),
        lambda: jobs.update_progress(job.id, 1.0),
    ):
        with pytest.raises(FailedPreconditionError):
            attempt()
    got = jobs.get(job.id)
    assert got.status is JobStatus.CANCELLED and got.failure_reason == "cancelled by client"
    assert got.result is None


def test_fail_and_cancel_from_queue(db):
    """A QUEUED job can fail or be cancelled directly, with the reason kept."""
    jobs = JobStore(db)
    a = jobs.create("ortools", PROBLEM, 1)
    b = jobs.create("ortools", PROBLEM, 1)
    assert jobs.fail(a.id, "worker crashed").failure_reason == "worker crashed"
    assert jobs.cancel(b.id).status is JobStatus.CANCELLED
    assert jobs.get(a.id).status is JobStatus.FAILED


def test_unknown_and_malformed_ids(db):
    """Unknown job ids raise NotFoundError; a non-UUID id or a bad time limit is this server's
    fault (the servicer validates requests first), so InternalError naming the argument."""
    jobs = JobStore(db)
    missing = uuid.uuid4()
    for call in (jobs.get, jobs.mark_running, jobs.cancel):
        with pytest.raises(NotFoundError):
            call(missing)
    with pytest.raises(InternalError, match="job_id"):
        jobs.get("not-a-uuid")
    with pytest.raises(InternalError, match="time_limit_s"):
        jobs.create("ortools", PROBLEM, 0)


def test_explicit_id_conflict(db):
    """Creating a job with an id that exists raises AlreadyExistsError."""
    jobs = JobStore(db)
    job = jobs.create("ortools", PROBLEM, 1)
    with pytest.raises(AlreadyExistsError):
        jobs.create("ortools", PROBLEM, 1, job_id=job.id)


def test_list_filters_and_omits_payloads(db):
    """list() returns newest first, filters by status and leaves payloads out unless asked."""
    jobs = JobStore(db)
    ids = [jobs.create("ortools", PROBLEM, 1).id for _ in range(3)]
    jobs.mark_running(ids[1])
    listed = jobs.list()
    assert [j.id for j in listed] == ids[::-1]
    assert all(j.problem is None for j in listed)
    assert [j.id for j in jobs.list(status=JobStatus.RUNNING)] == [ids[1]]
    assert {j.id for j in jobs.list(status=[JobStatus.QUEUED], with_payloads=True)} == {
        ids[0],
        ids[2],
    }
    assert all(j.problem == PROBLEM for j in jobs.list(with_payloads=True))
    assert len(jobs.list(limit=2)) == 2
    assert [j.id for j in jobs.list(status="RUNNING")] == [ids[1]]
    with pytest.raises(InternalError, match="status"):
        jobs.list(status="DONE")


def test_recovery_after_restart_fails_unfinished_jobs(db_url):
    """After a restart (new Database on the same URL) queued and running jobs become FAILED by restart; ended jobs stay."""
    first = Database(db_url)
    jobs = JobStore(first)
    queued = jobs.create("ortools", PROBLEM, 10)
    running = jobs.create("pyvrp", PROBLEM, 10)
    jobs.mark_running(running.id)
    jobs.update_progress(running.id, 99.5)
    done = jobs.create("ortools", PROBLEM, 10)
    jobs.mark_running(done.id)
    jobs.finish(done.id, b"ok")
    cancelled = jobs.create("ortools", PROBLEM, 10)
    jobs.cancel(cancelled.id)
    first.dispose()  # the old process is gone

    second = Database(db_url)
    try:
        restarted = JobStore(second)
        recovered = restarted.recover_after_restart()
        assert [j.id for j in recovered] == [queued.id, running.id]
        assert all(j.status is JobStatus.FAILED for j in recovered)
        for job_id in (queued.id, running.id):
            got = restarted.get(job_id)
            assert got.status is JobStatus.FAILED
            assert got.failure_reason == RESTART_FAILURE_REASON
            assert _aware_utc(got.finished_at)
        assert restarted.get(running.id).best_objective == 99.5
        assert restarted.get(done.id).status is JobStatus.SUCCEEDED
        assert restarted.get(cancelled.id).status is JobStatus.CANCELLED
        assert restarted.recover_after_restart() == []
    finally:
        second.dispose()
