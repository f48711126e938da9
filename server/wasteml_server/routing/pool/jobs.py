"""A job on the pool as its caller sees it: state, progress events, result, cancellation."""

from __future__ import annotations

import asyncio
import math
import time
import uuid
from collections.abc import AsyncIterator
from dataclasses import dataclass
from typing import Any, Protocol

from wasteml_server.routing.jobs import JobStatus
from wasteml_server.routing.options import EngineName, SolveOptions
from wasteml_server.routing.portfolio import EngineChoice
from wasteml_server.routing.problem import Problem
from wasteml_server.routing.solution import Solution


class _Pool(Protocol):
    """What a handle needs of its pool (``dispatcher.SolverPool``)."""

    def _cancel(self, job: JobHandle) -> bool: ...


@dataclass(frozen=True)
class ProgressEvent:
    """One improvement of a running job.

    Attributes:
        job_id: the job.
        engine: ORTOOLS or PYVRP.
        objective: best objective of that engine so far, cost units.
        elapsed_s: seconds since the job started running.
    """

    job_id: str
    engine: EngineName
    objective: float
    elapsed_s: float


class _Task:
    """One engine run of a job."""

    def __init__(self, job: JobHandle, engine: EngineName) -> None:
        self.id = f"{job.id}/{engine.value}"
        self.job = job
        self.engine = engine
        self.outcome: Solution | BaseException | None = None
        self.slot: Any = None  # the dispatcher's worker slot while running
        self.remaining_s = math.inf


class JobHandle:
    """A submitted job: its state, progress events, result and cancellation.

    Attributes:
        id: unique job id (uuid4 hex).
        problem: the problem.
        options: the limited solve options.
        choice: the single engines that run (two for a portfolio) and those left out.
        deadline: absolute ``time.time()`` by which the search stops, or None.
        submitted_at, started_at, finished_at: ``time.time()`` instants (None until reached).
        state: QUEUED, RUNNING, then SUCCEEDED, FAILED or CANCELLED.
    """

    def __init__(self, pool: _Pool, problem: Problem, options: SolveOptions,
                 choice: EngineChoice, deadline: float | None) -> None:
        self.id = uuid.uuid4().hex
        self.problem = problem
        self.options = options
        self.choice = choice
        self.deadline = deadline
        self.submitted_at = time.time()
        self.started_at: float | None = None
        self.finished_at: float | None = None
        self.state = JobStatus.QUEUED
        self._pool = pool
        self._tasks = [_Task(self, e) for e in choice.engines]
        loop = asyncio.get_running_loop()
        self._future: asyncio.Future[Solution] = loop.create_future()
        self._running = asyncio.Event()
        self._events: list[ProgressEvent] = []
        self._waiters: list[asyncio.Future[None]] = []

    @property
    def engines(self) -> tuple[EngineName, ...]:
        """The single engines that run."""
        return self.choice.engines

    @property
    def done(self) -> bool:
        """True once the job succeeded, failed or was cancelled."""
        return self._future.done()

    async def running(self) -> None:
        """Wait until a worker took the job (returns at once when it has, or has ended)."""
        await self._running.wait()

    async def result(self) -> Solution:
        """The solution.

        Raises:
            CancelledError: the job was cancelled.
            UnavailableError: its worker died, or the pool was closed.
            InvalidArgumentError: the chosen engine cannot express the problem.
            InternalError: an engine failed unexpectedly.
        """
        return await asyncio.shield(self._future)

    async def events(self) -> AsyncIterator[ProgressEvent]:
        """Progress events from the start of the job, then live ones until it ends."""
        i = 0
        while True:
            while i < len(self._events):
                yield self._events[i]
                i += 1
            if self.done:
                return
            waiter = asyncio.get_running_loop().create_future()
            self._waiters.append(waiter)
            await waiter

    def cancel(self) -> bool:
        """Cancel the job; True if it was still queued or running."""
        return self._pool._cancel(self)

    def _notify(self) -> None:
        for w in self._waiters:
            if not w.done():
                w.set_result(None)
        self._waiters.clear()

    def _start(self) -> None:
        if self.state is JobStatus.QUEUED:
            self.state = JobStatus.RUNNING
            self.started_at = time.time()
            self._running.set()

    def _add_event(self, event: ProgressEvent) -> None:
        self._events.append(event)
        self._notify()

    def _finish(self, state: JobStatus, outcome: Solution | BaseException) -> None:
        if self._future.done():
            return
        self.state = state
        self.finished_at = time.time()
        if isinstance(outcome, BaseException):
            self._future.set_exception(outcome)
            self._future.exception()  # mark retrieved: a job nobody awaits must not log noise
        else:
            self._future.set_result(outcome)
        self._running.set()
        self._notify()
