"""RoutingService behind its ports, no processes and no database: a fake pool whose jobs the
test drives (real ``JobHandle`` objects), an in-memory job repository, a real Solomon slice."""

from __future__ import annotations

import asyncio
import datetime as dt
import uuid
from dataclasses import dataclass, field, replace

import pytest
from routing_checker import DATA_DIR

from wasteml_server.core.errors import (
    AlreadyExistsError,
    CancelledError,
    FailedPreconditionError,
    InvalidArgumentError,
    NotFoundError,
    UnavailableError,
)
from wasteml_server.core.settings import Settings
from wasteml_server.routing.jobs import RESTART_FAILURE_REASON, JobRecord, JobStatus
from wasteml_server.routing.options import EngineName, SolveOptions
from wasteml_server.routing.pool import JobHandle, ProgressEvent
from wasteml_server.routing.portfolio import engines_for
from wasteml_server.routing.problem import Problem, TimeWindow
from wasteml_server.routing.service import RoutingService
from wasteml_server.routing.solution import Solution, SolveStatus, UnassignedReason
from wasteml_tools.routing.instances import load_instance


class FakePool:
    """Hands out real job handles and lets the test start, advance and finish them."""

    def __init__(self) -> None:
        self.jobs: list[JobHandle] = []
        self.max_time_limit_s = 60.0

    async def submit(self, problem: Problem, options: SolveOptions, *, deadline: float | None = None) -> JobHandle:
        from wasteml_server.routing.feasibility import screen

        options = options.limited(self.max_time_limit_s)
        screen(problem)
        job = JobHandle(self, problem, options, engines_for(problem, options.engine), deadline)
        self.jobs.append(job)
        return job

    def _cancel(self, job: JobHandle) -> bool:
        if job.done:
            return False
        job._finish(JobStatus.CANCELLED, CancelledError(f"job {job.id} was cancelled"))
        return True


@dataclass
class MemoryJobs:
    """The job repository port over a dict, with the store's transition rules."""

    rows: dict[uuid.UUID, JobRecord] = field(default_factory=dict)
    solutions: dict[uuid.UUID, Solution] = field(default_factory=dict)

    def _move(self, job_id, allowed, **values) -> JobRecord:
        key = uuid.UUID(str(job_id))
        if key not in self.rows:
            raise NotFoundError(f"job {job_id} does not exist")
        if self.rows[key].status not in allowed:
            raise FailedPreconditionError(f"job {job_id} is {self.rows[key].status}")
        self.rows[key] = replace(self.rows[key], **values)
        return self.rows[key]

    def create(self, engine, problem, time_limit_s, *, job_id=None) -> JobRecord:
        key = uuid.UUID(str(job_id)) if job_id else uuid.uuid4()
        if key in self.rows:
            raise AlreadyExistsError(f"job {key} exists")
        self.rows[key] = JobRecord(key, JobStatus.QUEUED, None, engine, problem, time_limit_s,
                                   dt.datetime.now(dt.UTC), None, None, None, None)
        return self.rows[key]

    def get(self, job_id) -> JobRecord:
        key = uuid.UUID(str(job_id))
        if key not in self.rows:
            raise NotFoundError(f"job {job_id} does not exist")
        return self.rows[key]

    def mark_running(self, job_id) -> JobRecord:
        return self._move(job_id, (JobStatus.QUEUED,), status=JobStatus.RUNNING, started_at=dt.datetime.now(dt.UTC))

    def update_progress(self, job_id, best_objective) -> JobRecord:
        return self._move(job_id, (JobStatus.RUNNING,), best_objective=best_objective)

    def finish(self, job_id, solution, *, best_objective=None) -> JobRecord:
        self.solutions[uuid.UUID(str(job_id))] = solution
        return self._move(job_id, (JobStatus.RUNNING,), status=JobStatus.SUCCEEDED, result=b"solution",
                          best_objective=best_objective, finished_at=dt.datetime.now(dt.UTC))

    def fail(self, job_id, reason) -> JobRecord:
        return self._move(job_id, (JobStatus.QUEUED, JobStatus.RUNNING), status=JobStatus.FAILED,
                          failure_reason=reason, finished_at=dt.datetime.now(dt.UTC))

    def cancel(self, job_id, reason=None) -> JobRecord:
        return self._move(job_id, (JobStatus.QUEUED, JobStatus.RUNNING), status=JobStatus.CANCELLED,
                          failure_reason=reason, finished_at=dt.datetime.now(dt.UTC))

    def recover_after_restart(self) -> list[JobRecord]:
        stale = [r for r in self.rows.values() if not r.status.terminal]
        return [self.fail(r.id, RESTART_FAILURE_REASON) for r in stale]


@pytest.fixture(scope="module")
def problem() -> Problem:
    """The first 10 customers of Solomon C101."""
    return load_instance(DATA_DIR / "vrp", "C101", max_customers=10).problem


def _service() -> tuple[RoutingService, FakePool, MemoryJobs]:
    pool, jobs = FakePool(), MemoryJobs()
    return RoutingService(pool, jobs, Settings(solver_max_time_limit_s=60.0)), pool, jobs  # type: ignore[arg-type]


async def _until(predicate, timeout_s: float = 5.0) -> None:
    end = asyncio.get_running_loop().time() + timeout_s
    while not predicate():
        assert asyncio.get_running_loop().time() < end, "condition not reached"
        await asyncio.sleep(0.01)


def _solved(problem: Problem) -> Solution:
    return Solution(SolveStatus.FEASIBLE, EngineName.PYVRP)


async def test_a_job_is_persisted_through_its_life(problem: Problem) -> None:
    """QUEUED at submit, RUNNING when a worker takes it, progress, then SUCCEEDED with its solution."""
    service, pool, jobs = _service()
    snap = await service.submit(problem, SolveOptions(time_limit_s=5.0), request_bytes=b"req")
    assert snap.record.status is JobStatus.QUEUED and snap.record.problem == b"req"
    handle = pool.jobs[0]
    handle._start()
    await _until(lambda: jobs.get(snap.record.id).status is JobStatus.RUNNING)
    handle._add_event(ProgressEvent(handle.id, EngineName.PYVRP, 812.5, 0.2))
    await _until(lambda: jobs.get(snap.record.id).best_objective == 812.5)
    live = await service.get(str(snap.record.id))
    assert live.progress.best_objective == 812.5 and live.progress.solutions_found == 1
    solution = _solved(problem)
    handle._finish(JobStatus.SUCCEEDED, solution)
    await _until(lambda: jobs.get(snap.record.id).status is JobStatus.SUCCEEDED)
    assert jobs.solutions[snap.record.id] is solution


async def test_watch_streams_improvements_and_ends_final(problem: Problem) -> None:
    """watch yields the job now, each improvement, and ends with the final state."""
    service, pool, _ = _service()
    snap = await service.submit(problem, SolveOptions(time_limit_s=5.0), request_bytes=b"")
    seen: list = []

    async def watch() -> None:
        async for s in service.watch(str(snap.record.id)):
            seen.append(s)

    watcher = asyncio.ensure_future(watch())
    handle = pool.jobs[0]
    handle._start()
    await asyncio.sleep(0.05)
    for k, objective in enumerate((900.0, 850.0)):
        handle._add_event(ProgressEvent(handle.id, EngineName.PYVRP, objective, 0.1 * (k + 1)))
        await asyncio.sleep(0.05)
    handle._finish(JobStatus.SUCCEEDED, _solved(problem))
    await asyncio.wait_for(watcher, 5)
    assert seen[-1].final and seen[-1].record.status is JobStatus.SUCCEEDED
    assert [s.progress.best_objective for s in seen if s.progress and s.progress.solutions_found] \
        [:2] == [900.0, 850.0]


async def test_cancel_stops_the_job_and_records_it(problem: Problem) -> None:
    """CancelJob cancels the pool job and stores CANCELLED; a second cancel changes nothing."""
    service, pool, jobs = _service()
    snap = await service.submit(problem, SolveOptions(time_limit_s=5.0), request_bytes=b"")
    pool.jobs[0]._start()
    await _until(lambda: jobs.get(snap.record.id).status is JobStatus.RUNNING)
    after = await service.cancel(str(snap.record.id))
    assert after.record.status is JobStatus.CANCELLED and pool.jobs[0].done
    assert (await service.cancel(str(snap.record.id))).record.status is JobStatus.CANCELLED


async def test_a_dead_worker_fails_the_job_with_its_reason(problem: Problem) -> None:
    """A job whose worker died is FAILED with the pool's message."""
    service, pool, jobs = _service()
    snap = await service.submit(problem, SolveOptions(time_limit_s=5.0), request_bytes=b"")
    pool.jobs[0]._start()
    pool.jobs[0]._finish(JobStatus.FAILED, UnavailableError("solver-pool", "solver worker (pid 7) died"))
    await _until(lambda: jobs.get(snap.record.id).status is JobStatus.FAILED)
    assert "died" in jobs.get(snap.record.id).failure_reason


async def test_request_id_makes_submit_idempotent(problem: Problem) -> None:
    """Two submits with one request_id return one job."""
    service, pool, _ = _service()
    a = await service.submit(problem, SolveOptions(time_limit_s=5.0), request_bytes=b"", request_id="dispatch-42")
    b = await service.submit(problem, SolveOptions(time_limit_s=5.0), request_bytes=b"", request_id="dispatch-42")
    assert a.record.id == b.record.id and len(pool.jobs) == 1


async def test_an_unservable_required_stop_is_an_infeasible_reply(problem: Problem) -> None:
    """A required stop whose window closes before any vehicle can arrive: Solve answers
    INFEASIBLE naming it, and SubmitJob stores a finished job with that solution."""
    stops = list(problem.stops)
    stops[3] = replace(stops[3], time_windows=(TimeWindow(0, 1),))
    bad = replace(problem, stops=tuple(stops))
    service, pool, jobs = _service()
    solution = await service.solve(bad, SolveOptions(time_limit_s=5.0))
    assert solution.status is SolveStatus.INFEASIBLE and pool.jobs == []
    reasons = {u.stop_index: u.reason for u in solution.unassigned_stops}
    assert reasons[3] is UnassignedReason.TIME_WINDOW_UNREACHABLE
    snap = await service.submit(bad, SolveOptions(time_limit_s=5.0), request_bytes=b"")
    assert snap.record.status is JobStatus.SUCCEEDED
    assert jobs.solutions[snap.record.id].status is SolveStatus.INFEASIBLE


async def test_refused_options_name_the_callers_field(problem: Problem) -> None:
    """A time limit above the maximum names <options_field>.time_limit (options or solve_options)."""
    service, _, _ = _service()
    for options_field in ("options", "solve_options"):
        with pytest.raises(InvalidArgumentError) as err:
            await service.open(problem, SolveOptions(time_limit_s=120.0), options_field=options_field)
        assert err.value.field == f"{options_field}.time_limit"


async def test_restart_marks_unfinished_jobs_interrupted(problem: Problem) -> None:
    """Jobs a previous process left QUEUED/RUNNING read as interrupted after start()."""
    service, _, jobs = _service()
    stale = jobs.create("pyvrp", b"", 5.0)
    recovered = await service.start()
    assert [r.id for r in recovered] == [stale.id]
    assert jobs.get(stale.id).interrupted


async def test_unknown_job_ids_are_not_found() -> None:
    """A job id that is not a UUID, or an unknown one, is NOT_FOUND."""
    service, _, _ = _service()
    for job_id in ("not-a-uuid", str(uuid.uuid4())):
        with pytest.raises(NotFoundError):
            await service.get(job_id)
