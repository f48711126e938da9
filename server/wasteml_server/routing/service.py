"""Route optimisation as an async domain service: solve sessions and persisted jobs over the pool.

Used by the ``RouteOptimizer`` servicer and by the collection planner; takes and returns domain
objects. A job persists the caller's request as given (opaque bytes) and its solution through
the :class:`~wasteml_server.routing.jobs.JobRepository` port (the SQL store keeps it in the
contract's wire format).

* **Solve sessions** (:meth:`RoutingService.open`): the one road into the pool, for the unary
  ``Solve`` and for the planner's SOLVE stage alike. A session is one pool job bounded by its
  time limit and by the RPC deadline (``wasteml_server.core.deadlines``) less
  :data:`REPLY_MARGIN_S`, so the caller keeps time to answer (and the planner to persist); it
  streams progress events, gives the result, and is cancelled when its ``async with`` block is
  left early (a caller that went away cancels the pool job). A problem whose required stops
  can never be served (``feasibility.screen``) opens a session that is already finished with
  an INFEASIBLE solution listing each such stop with its reason: infeasible input is a reply,
  not an error (the contract's SolutionStatus INFEASIBLE points to ``unassigned_stops`` and
  ``infeasibility_reasons`` for this).
* **Jobs** (:meth:`submit`, :meth:`get`, :meth:`watch`, :meth:`cancel`): persisted QUEUED at
  submit, RUNNING when a worker takes it, the best objective at most every
  :data:`PROGRESS_PERSIST_INTERVAL_S` (not per event), then SUCCEEDED with the solution,
  FAILED with the reason (a dead worker: "solver-pool unavailable: solver worker (pid N) died
  (killed by signal 9) ..."), or CANCELLED.
* **Cancelling a finished job** returns it unchanged (the contract: "cancelling a finished job
  changes nothing"; a retried CancelJob must not fail because the first one succeeded).
* **Restart**: :meth:`start` runs ``recover_after_restart``: jobs left QUEUED/RUNNING by a
  previous process become FAILED with ``RESTART_FAILURE_REASON`` (see ``adapters.storage.jobs``
  for why they are not re-queued); :meth:`aclose` marks this process's unfinished jobs the same
  way on shutdown, so they read the same however the server stopped.
* **Idempotency**: a ``request_id`` maps to a fixed job id (UUID5), so a repeated submit returns
  the first job, even across restarts.
* **Cancelled jobs keep no solution**: the pool answers a cancellation at once and discards the
  worker's late answer (so that the search stops within a second).

Field paths: the options of a request sit under ``options`` (``RouteOptimizer``) or
``solve_options`` (``PlanDay``); callers say which (``options_field``).
"""

from __future__ import annotations

import asyncio
import dataclasses
import logging
import time
import uuid
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass
from types import TracebackType

from wasteml_server.core.deadlines import remaining_s
from wasteml_server.core.errors import (
    AlreadyExistsError,
    CancelledError,
    FailedPreconditionError,
    InfeasibleProblemError,
    NotFoundError,
    WastemlError,
    shown,
    under,
)
from wasteml_server.core.settings import Settings
from wasteml_server.routing.feasibility import unservable
from wasteml_server.routing.jobs import RESTART_FAILURE_REASON, JobRecord, JobRepository
from wasteml_server.routing.limits import ProblemLimits
from wasteml_server.routing.options import EngineName, SolveOptions
from wasteml_server.routing.pool import JobHandle, ProgressEvent, SolverPool
from wasteml_server.routing.portfolio import engines_for
from wasteml_server.routing.problem import Problem
from wasteml_server.routing.solution import Solution, SolveStatus, UnassignedReason, UnassignedStop

logger = logging.getLogger(__name__)

#: Least interval between two progress writes of one job to the SQL store, seconds.
PROGRESS_PERSIST_INTERVAL_S = 1.0

#: Time kept back from the RPC deadline to send the reply (at most this, or a tenth of it), s.
REPLY_MARGIN_S = 0.5

#: How often ``watch`` re-reads a job that runs in another process (or is lost), seconds.
FOREIGN_POLL_S = 1.0

#: Namespace of job ids derived from ``request_id`` (UUID5).
REQUEST_ID_NAMESPACE = uuid.UUID("7b0c8f0e-8a55-4f57-9d49-1c3e6f1f2a10")


class SolveSession:
    """One solve as its caller follows it: progress events, the result, cancellation.

    Made by :meth:`RoutingService.open`; use it as ``async with`` so that leaving the block
    before the end (an error, a cancelled caller) cancels the pool job.

    Args:
        handle: the pool job, or None when the session is settled at once.
        settled: the solution of a session that needs no solve (infeasible input).
    """

    def __init__(self, handle: JobHandle | None, settled: Solution | None = None) -> None:
        if (handle is None) == (settled is None):
            raise ValueError("give a pool job or a settled solution")
        self.handle = handle
        self._settled = settled

    async def __aenter__(self) -> SolveSession:
        return self

    async def __aexit__(self, exc_type: type[BaseException] | None, exc: BaseException | None,
                        tb: TracebackType | None) -> None:
        self.cancel()

    @property
    def engine(self) -> EngineName:
        """The engine label of the session (PORTFOLIO when several engines run)."""
        if self.handle is None:
            assert self._settled is not None
            return self._settled.engine
        engines = self.handle.engines
        return EngineName.PORTFOLIO if len(engines) > 1 else engines[0]

    async def events(self) -> AsyncIterator[ProgressEvent]:
        """Improvements from the start of the solve until it ends (none for a settled one)."""
        if self.handle is not None:
            async for event in self.handle.events():
                yield event

    async def result(self) -> Solution:
        """The solution.

        Raises:
            CancelledError: the solve was cancelled.
            UnavailableError: its worker died, or the pool was closed.
        """
        if self.handle is None:
            assert self._settled is not None
            return self._settled
        return await self.handle.result()

    def cancel(self) -> bool:
        """Stop the solve if it still runs; True if it did."""
        return self.handle.cancel() if self.handle is not None else False


@dataclass(frozen=True)
class JobProgress:
    """Progress of a job.

    Attributes:
        engine: engine of the best solution so far, or the job's engine label when read from
            the store.
        best_objective: best total objective so far, cost units; None before the first.
        elapsed_s: seconds since the job started running (0 while queued).
        solutions_found: improving solutions reported so far (0 when read from the store).
    """

    engine: EngineName
    best_objective: float | None
    elapsed_s: float
    solutions_found: int


@dataclass(frozen=True)
class JobSnapshot:
    """A job as the API shows it.

    Attributes:
        record: the persisted job (status, reason, stored request and result, times).
        progress: live progress when this process runs the job, else from the record.
    """

    record: JobRecord
    progress: JobProgress | None

    @property
    def final(self) -> bool:
        """True once the job succeeded, failed or was cancelled."""
        return self.record.status.terminal


class _LiveJob:
    """A job of this process: its pool handle, progress, and a change signal for watchers."""

    def __init__(self, job_id: str, handle: JobHandle) -> None:
        self.id = job_id
        self.handle = handle
        self.best: float | None = None
        self.best_engine = handle.engines[0]
        self.solutions = 0
        self.settled = False  # the final state is in the store
        self.signal = asyncio.Event()
        """Set (and replaced by a fresh one) at each change of the job."""

    def progress(self) -> JobProgress:
        started = self.handle.started_at
        end = self.handle.finished_at or time.time()
        return JobProgress(self.best_engine, self.best, max(0.0, end - started) if started else 0.0,
                           self.solutions)

    def bump(self) -> None:
        old, self.signal = self.signal, asyncio.Event()
        old.set()


class RoutingService:
    """Solve sessions and persisted, watchable, cancellable jobs on a :class:`SolverPool`.

    Args:
        pool: the started solver pool.
        jobs: where jobs persist (the SQL store).
        settings: ``solver_max_time_limit_s`` bounds every time limit; the ``routing_max_*``
            limits bound the problems callers may send (:attr:`limits`).

    Attributes:
        settings: the settings it was made with.
        limits: the largest problem taken (``ProblemLimits.from_settings``); the servicer
            checks requests against it before decoding them.

    All methods must run on the event loop the pool was started on.
    """

    def __init__(self, pool: SolverPool, jobs: JobRepository, settings: Settings) -> None:
        self.pool = pool
        self.jobs = jobs
        self.settings = settings
        self.limits = ProblemLimits.from_settings(settings)
        self.max_time_limit_s = settings.solver_max_time_limit_s
        self._live: dict[str, _LiveJob] = {}
        self._tasks: set[asyncio.Task[None]] = set()

    async def start(self) -> list[JobRecord]:
        """Mark jobs a previous process left unfinished as failed by restart; returns them."""
        recovered = await asyncio.to_thread(self.jobs.recover_after_restart)
        if recovered:
            logger.warning("%d routing job(s) interrupted by the previous shutdown: %s",
                           len(recovered), ", ".join(str(r.id) for r in recovered[:10]))
        return recovered

    async def aclose(self) -> None:
        """Stop following jobs; mark this process's unfinished jobs failed by restart."""
        for task in list(self._tasks):
            task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)
        for live in list(self._live.values()):
            if not live.settled:
                live.handle.cancel()
                await asyncio.to_thread(self._try, self.jobs.fail, live.id, RESTART_FAILURE_REASON)
        self._live.clear()

    # -- solve sessions ---------------------------------------------------------------------

    async def open(self, problem: Problem, options: SolveOptions, *,
                   options_field: str = "options", deadline: float | None = None,
                   within_call: bool = True) -> SolveSession:
        """Start a solve (module docstring): the one road into the pool.

        Args:
            problem: the problem.
            options: how to solve it; an unset time limit gets this server's default.
            options_field: path of the options in the request, for field violations.
            deadline: absolute ``time.time()`` by which the search must stop; None takes the
                RPC deadline less the reply margin (when ``within_call``).
            within_call: bound the solve by the current RPC's deadline (False for jobs, which
                outlive the call that submitted them).

        Raises:
            InvalidArgumentError: a time limit above the maximum, or an engine that cannot
                express the problem (``<options_field>.time_limit`` / ``.engine``).
            ResourceExhaustedError: the solver queue is full.
            UnavailableError: the pool is down.
        """
        with under(options_field):
            options = options.limited(self.max_time_limit_s)
            engines_for(problem, options.engine)
        if deadline is None and within_call:
            deadline = call_deadline()
        try:
            handle = await self.pool.submit(problem, options, deadline=deadline)
        except InfeasibleProblemError as err:  # explaining it screens every stop: off the loop
            return SolveSession(None, await asyncio.to_thread(infeasible_solution, problem, options, err))
        return SolveSession(handle)

    async def solve(self, problem: Problem, options: SolveOptions) -> Solution:
        """Solve within the time limit and the caller's deadline (the unary ``Solve``).

        Returns:
            the best solution; INFEASIBLE (each unservable required stop with its reason,
            nothing solved) when a required stop can never be served.

        Raises:
            as :meth:`open`, and UnavailableError when the worker dies during the solve.
        """
        async with await self.open(problem, options) as session:
            return await session.result()

    # -- jobs -------------------------------------------------------------------------------

    async def submit(self, problem: Problem, options: SolveOptions, *, request_bytes: bytes,
                     request_id: str = "") -> JobSnapshot:
        """Queue a job and persist it; returns at once (QUEUED, or further along).

        Args:
            problem: the problem.
            options: how to solve it (its time limit bounds the job; no RPC deadline applies).
            request_bytes: the caller's request, stored with the job as given.
            request_id: idempotency key: a job with the same key is returned instead.

        Raises:
            as :meth:`open`, and UnavailableError when the store is down.
        """
        job_id = str(uuid.uuid5(REQUEST_ID_NAMESPACE, request_id)) if request_id else None
        if job_id is not None:
            existing = await self._find(job_id)
            if existing is not None:
                return existing
        session = await self.open(problem, options, within_call=False)
        handle = session.handle
        limit_s = options.limited(self.max_time_limit_s).limit_s
        if handle is None:
            return await self._settled_job(job_id, request_bytes, limit_s, await session.result())
        try:
            record = await asyncio.to_thread(self.jobs.create, session.engine.value, request_bytes,
                                             limit_s, job_id=job_id or handle.id)
        except AlreadyExistsError:  # a concurrent submit with the same request_id won
            handle.cancel()
            return await self.get(job_id or handle.id)
        except BaseException:
            handle.cancel()
            raise
        live = _LiveJob(str(record.id), handle)
        self._live[live.id] = live
        task = asyncio.get_running_loop().create_task(self._follow(live), name=f"routing-job-{live.id}")
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)
        return JobSnapshot(record, live.progress())

    async def get(self, job_id: str) -> JobSnapshot:
        """The job now.

        Raises:
            NotFoundError: no such job (also for an id that is not a UUID).
            UnavailableError: the store is down.
        """
        record = await self._get_record(job_id)
        live = self._live.get(str(record.id))
        return JobSnapshot(record, live.progress() if live is not None else _stored_progress(record))

    async def watch(self, job_id: str) -> AsyncIterator[JobSnapshot]:
        """The job now, then at each improvement, ending with its final state.

        Works for a job of this process (live pool events) and for any job in the store (a
        finished one yields once; an unfinished one of another process is re-read every
        :data:`FOREIGN_POLL_S`).

        Raises:
            NotFoundError: no such job.
        """
        snap = await self.get(job_id)
        yield snap
        if snap.final:
            return
        key = str(snap.record.id)
        seen = snap.progress
        while True:
            live = self._live.get(key)
            if live is None:
                await asyncio.sleep(FOREIGN_POLL_S)
            else:
                signal = live.signal  # taken before the check, so no change is missed
                if not live.settled and live.solutions == (seen.solutions_found if seen else 0):
                    await signal.wait()
            snap = await self.get(key)
            if snap.final:
                yield snap
                return
            if snap.progress is not None and (seen is None or snap.progress.solutions_found
                                              != seen.solutions_found):
                seen = snap.progress
                yield snap

    async def cancel(self, job_id: str) -> JobSnapshot:
        """Cancel a queued or running job (its search stops within a second); a finished job is
        returned unchanged.

        Raises:
            NotFoundError: no such job.
        """
        record = await self._get_record(job_id)
        if record.status.terminal:
            return await self.get(job_id)
        key = str(record.id)
        live = self._live.get(key)
        if live is not None:
            live.handle.cancel()
        await asyncio.to_thread(self._try, self.jobs.cancel, key, "cancelled by CancelJob")
        if live is not None:
            live.bump()
        return await self.get(key)

    # -- internals --------------------------------------------------------------------------

    async def _settled_job(self, job_id: str | None, request_bytes: bytes, limit_s: float,
                           solution: Solution) -> JobSnapshot:
        """A job that is finished at submission (infeasible input): stored as SUCCEEDED."""

        def store() -> JobRecord:
            record = self.jobs.create(solution.engine.value, request_bytes, limit_s, job_id=job_id)
            self.jobs.mark_running(record.id)
            return self.jobs.finish(record.id, solution)

        try:
            record = await asyncio.to_thread(store)
        except AlreadyExistsError:  # a concurrent submit with the same request_id won
            assert job_id is not None
            return await self.get(job_id)
        return JobSnapshot(record, JobProgress(solution.engine, None, 0.0, 0))

    async def _get_record(self, job_id: str) -> JobRecord:
        try:
            uuid.UUID(job_id)
        except (ValueError, TypeError, AttributeError):
            raise NotFoundError(f"job {shown(job_id)} does not exist (job ids are UUIDs)") from None
        return await asyncio.to_thread(self.jobs.get, job_id)

    async def _find(self, job_id: str) -> JobSnapshot | None:
        try:
            return await self.get(job_id)
        except NotFoundError:
            return None

    @staticmethod
    def _try(fn: Callable[..., JobRecord], *args: object) -> JobRecord | None:
        """A store transition that may lose a race (the job already ended): None then."""
        try:
            return fn(*args)
        except FailedPreconditionError as err:
            logger.debug("job transition skipped: %s", err)
            return None

    async def _follow(self, live: _LiveJob) -> None:
        """Persist one job's life: RUNNING, throttled progress, and its final state."""
        handle, key = live.handle, live.id
        try:
            await handle.running()
            if handle.started_at is not None:  # taken by a worker (it may have finished since)
                await asyncio.to_thread(self._try, self.jobs.mark_running, key)
            live.bump()
            last_write = 0.0
            async for event in handle.events():
                live.solutions += 1
                if live.best is None or event.objective < live.best:
                    live.best, live.best_engine = event.objective, event.engine
                live.bump()
                now = time.monotonic()
                if now - last_write >= PROGRESS_PERSIST_INTERVAL_S and live.best is not None:
                    last_write = now
                    await asyncio.to_thread(self._try, self.jobs.update_progress, key, live.best)
            try:
                solution = await handle.result()
            except CancelledError:
                await asyncio.to_thread(self._try, self.jobs.cancel, key, "cancelled by CancelJob")
            except WastemlError as err:
                logger.warning("routing job %s failed: %s", key, err.message)
                await asyncio.to_thread(self._try, self.jobs.fail, key, err.message)
            except Exception:
                logger.exception("routing job %s failed unexpectedly", key)
                await asyncio.to_thread(self._try, self.jobs.fail, key, "the solver failed unexpectedly")
            else:
                best = solution.objective.total if solution.feasible else None
                await asyncio.to_thread(self._try, lambda: self.jobs.finish(key, solution, best_objective=best))
            live.settled = True
            live.bump()
        except asyncio.CancelledError:
            raise
        except Exception:
            logger.exception("following routing job %s failed", key)
            await asyncio.to_thread(self._try, self.jobs.fail, key, "the server lost track of the job")
            live.settled = True
            live.bump()
        finally:
            if live.settled:
                self._live.pop(key, None)


def infeasible_solution(problem: Problem, options: SolveOptions, err: InfeasibleProblemError) -> Solution:
    """The INFEASIBLE answer for a problem whose required stops can never be served.

    Every stop is unassigned: the unservable ones with the screening's reason (why each vehicle
    type cannot serve it), the others as not planned; the screening's summary is the reason.
    """
    found = unservable(problem)
    unassigned = tuple(
        UnassignedStop(i, s.id, found[i].reason, found[i].detail) if i in found
        else UnassignedStop(i, s.id, UnassignedReason.UNSPECIFIED,
                            "not planned: the problem has no feasible solution")
        for i, s in enumerate(problem.stops))
    engine = engines_for(problem, options.engine).engines[0]
    solution = Solution(SolveStatus.INFEASIBLE, engine, unassigned_stops=unassigned,
                        infeasibility_reasons=(err.message,))
    return dataclasses.replace(solution, engine_runs=(solution.run(),))


def call_deadline() -> float | None:
    """The RPC deadline as ``time.time()``, less the reply margin; None outside an RPC."""
    left = remaining_s()
    if left is None:
        return None
    return time.time() + max(0.0, left - min(REPLY_MARGIN_S, 0.1 * left))


def _stored_progress(record: JobRecord) -> JobProgress | None:
    if record.started_at is None:
        return None
    try:
        engine = EngineName(record.engine)
    except ValueError:
        engine = EngineName.AUTO
    return JobProgress(engine, record.best_objective, record.elapsed_s or 0.0, 0)
