"""The solver pool: routing jobs run in worker processes, driven from asyncio.

* **Workers:** ``Settings.solver_workers`` processes from the ``spawn`` start method (no forked
  gRPC/asyncio state), each with a duplex pipe and a cancel flag (``multiprocessing.Event``)
  of its own. A worker imports OR-Tools and PyVRP once and then solves one task at a time.
* **Queue:** at most ``Settings.solver_queue_size`` jobs wait for a worker; one more raises
  :class:`~wasteml_server.core.errors.ResourceExhaustedError`.
* **Time limits enforced from outside:** a worker still busy ``solver_kill_grace_s`` after its
  task's time limit is killed and replaced; the task ends with status NO_SOLUTION_IN_TIME.
  OR-Tools checks its limit only now and then in the first-solution phase (measured here,
  OR-Tools 9.15 on the 1000-stop R1_10_1 with a 0.5 s limit: it returned after 0.72-1.02 s
  depending on the strategy; larger overruns were seen while planning), and a PyVRP
  iteration on a large instance is not interruptible either.
* **Cancellation** sets the worker's flag, which the engines check (OR-Tools at each solution,
  PyVRP at each iteration; ``SolveWithParameters`` holds the GIL, so no watcher thread inside
  the worker could interrupt it in between); a worker that has not stopped ``solver_cancel_grace_s`` later is killed
  and replaced. :meth:`JobHandle.result` raises ``CancelledError`` at once.
* **A dead worker** (crash, ``kill -9``) fails its job with ``UnavailableError`` naming the
  exit code and signal; a replacement is started.
* **Memory bound:** each worker limits its address space to ``solver_worker_memory_mib``
  (``RLIMIT_AS``; 0 = none, see ``worker``). A task that runs out of it fails with
  ``ResourceExhaustedError`` ("solver worker memory limit N MiB exceeded ..."), whether the
  worker reported a ``MemoryError`` or died of it (an OR-Tools ``std::bad_alloc`` aborts the
  process: recognised from the worker's stderr, which the pool reads, logs and keeps the tail
  of); the worker is replaced either way.
* **Off the loop:** handing a task to a worker pickles its problem (the matrices: 64 MB at the
  largest legal size) and writes it to the pipe; that runs in a thread, as does the up-front
  infeasibility screening of :meth:`SolverPool.submit`.
* **Progress** (engine, best objective, elapsed) streams from the workers over the pipes;
  :meth:`JobHandle.events` replays past events to late watchers, then follows live ones.
* **Portfolio** jobs run one task per engine on two workers; the best feasible answer wins,
  ``Solution.engine_runs`` holds one row per engine, and an engine that could not run (it
  cannot express the problem, or its worker died) is declared in ``Solution.fallbacks``.

Modules: ``messages`` (what crosses the pipes), ``worker`` (the worker process), ``jobs`` (the
caller's handle), ``dispatcher`` (this pool: slots, queue, timers, replacement).

The pool keeps no storage; the caller persists jobs. All methods must be called from the
event loop the pool was started on.
"""

from __future__ import annotations

import asyncio
import logging
import multiprocessing
import multiprocessing.connection
import os
import time
from collections import deque
from dataclasses import replace
from typing import Any

from wasteml_server.core.common import FallbackNotice
from wasteml_server.core.errors import (
    CancelledError,
    InternalError,
    ResourceExhaustedError,
    UnavailableError,
    WastemlError,
)
from wasteml_server.core.settings import Settings
from wasteml_server.routing.feasibility import screen
from wasteml_server.routing.jobs import JobStatus
from wasteml_server.routing.options import SolveOptions
from wasteml_server.routing.pool.jobs import JobHandle, ProgressEvent, _Task
from wasteml_server.routing.pool.messages import (
    Done,
    Failed,
    FromWorker,
    Improved,
    Ready,
    SolveTask,
    Started,
    send_task,
)
from wasteml_server.routing.pool.worker import (
    MEMORY_EXIT_CODE,
    memory_exceeded_message,
    worker_main,
)
from wasteml_server.routing.portfolio import choose, engines_for
from wasteml_server.routing.problem import Problem
from wasteml_server.routing.schedule import no_solution
from wasteml_server.routing.solution import EngineRun, Solution, SolveStatus

logger = logging.getLogger(__name__)

#: Seconds a cancelled task may take to stop by itself before its worker is killed.
CANCEL_GRACE_S = 0.5
"""Default of ``Settings.solver_cancel_grace_s``."""

#: A worker that dies sooner than this after its start is replaced only after this delay, s.
RESPAWN_BACKOFF_S = 2.0

#: Finished jobs kept for ``SolverPool.job`` lookups; older finished ones are forgotten (the
#: caller persists jobs).
FINISHED_JOBS_KEPT = 256

#: How long ``close`` waits for idle workers to exit before terminating them, seconds.
CLOSE_TIMEOUT_S = 2.0

#: Bytes of a worker's stderr kept to tell why it died.
STDERR_TAIL_BYTES = 8192

#: What a worker's stderr shows when an allocation failed past its memory limit.
_OUT_OF_MEMORY_MARKERS = (b"std::bad_alloc", b"MemoryError", b"Cannot allocate memory", b"out of memory")


class _Slot:
    """A worker process and its pipe, cancel flag and current task."""

    def __init__(self, index: int) -> None:
        self.index = index
        self.process: multiprocessing.process.BaseProcess | None = None
        self.conn: multiprocessing.connection.Connection | None = None
        self.cancel: Any = None
        self.task: _Task | None = None
        self.kill_reason: str | None = None
        self.timer: asyncio.TimerHandle | None = None
        self.spawned_at = 0.0
        self.ready = False
        self.stderr: multiprocessing.connection.Connection | None = None
        self.stderr_tail = b""
        self.retiring = False
        """The worker said it exits (out of memory): no task goes to it; it is replaced."""

    @property
    def proc(self) -> multiprocessing.process.BaseProcess:
        """The worker process (set from the first spawn on)."""
        assert self.process is not None, "slot not spawned"
        return self.process

    @property
    def pipe(self) -> multiprocessing.connection.Connection:
        """The pipe to the worker (set from the first spawn on)."""
        assert self.conn is not None, "slot not spawned"
        return self.conn


class SolverPool:
    """A pool of solver worker processes with a bounded queue (see the module docstring).

    Args:
        settings: pool size (``solver_workers``), queue bound (``solver_queue_size``), longest
            time limit (``solver_max_time_limit_s``) and kill grace (``solver_kill_grace_s``).

    Use ``async with SolverPool(settings) as pool:`` or ``await pool.start()`` /
    ``await pool.close()``.
    """

    def __init__(self, settings: Settings | None = None) -> None:
        settings = settings or Settings()
        self.size = settings.solver_workers
        self.queue_size = settings.solver_queue_size
        self.max_time_limit_s = settings.solver_max_time_limit_s
        self.kill_grace_s = settings.solver_kill_grace_s
        self.cancel_grace_s = settings.solver_cancel_grace_s
        self.memory_limit_mib = settings.solver_worker_memory_mib
        self._ctx = multiprocessing.get_context("spawn")
        self._slots = [_Slot(i) for i in range(self.size)]
        self._queue: deque[_Task] = deque()
        self._jobs: dict[str, JobHandle] = {}
        self._loop: asyncio.AbstractEventLoop | None = None
        self._closing = False
        self._restarts = 0

    # -- lifecycle --

    async def start(self) -> SolverPool:
        """Start the worker processes (returns at once; workers import the engines in the background)."""
        self._loop = asyncio.get_running_loop()
        for slot in self._slots:
            self._spawn(slot)
        return self

    async def __aenter__(self) -> SolverPool:
        return await self.start()

    async def __aexit__(self, *exc: object) -> None:
        await self.close()

    async def close(self) -> None:
        """Fail queued and running jobs (UnavailableError), stop every worker, reap them all."""
        if self._closing:
            return
        self._closing = True
        if self._loop is None:  # never started
            return
        closed = UnavailableError("solver-pool", "the solver pool was shut down")
        while self._queue:
            task = self._queue.popleft()
            task.job._finish(JobStatus.FAILED, closed)
        for slot in self._slots:
            if slot.task is not None:
                slot.task.job._finish(JobStatus.FAILED, closed)
                slot.cancel.set()
            self._unwatch(slot)
            if slot.task is None and slot.process is not None and slot.proc.is_alive():
                try:
                    send_task(slot.pipe, None)
                except OSError:
                    pass
        end = time.monotonic() + CLOSE_TIMEOUT_S
        for slot in self._slots:
            proc = slot.process
            if proc is None:
                continue
            if slot.task is not None:
                proc.terminate()
            await asyncio.to_thread(proc.join, max(0.0, end - time.monotonic()))
            if proc.is_alive():
                proc.kill()
                await asyncio.to_thread(proc.join, 1.0)
            if slot.conn is not None:
                slot.pipe.close()
            self._close_stderr(slot)
            if slot.timer is not None:
                slot.timer.cancel()
            slot.task = None

    async def wait_ready(self, timeout_s: float = 60.0) -> None:
        """Wait until every worker has imported the engines (benchmarks start the clock after it).

        Raises:
            UnavailableError: not all workers were ready within ``timeout_s``.
        """
        end = time.monotonic() + timeout_s
        while not all(s.ready for s in self._slots):
            if time.monotonic() > end:
                raise UnavailableError("solver-pool", f"workers not ready after {timeout_s:g} s")
            await asyncio.sleep(0.05)

    # -- observability --

    @property
    def live_workers(self) -> int:
        """Worker processes alive now."""
        return sum(1 for s in self._slots if s.process is not None and s.proc.is_alive())

    @property
    def worker_pids(self) -> list[int]:
        """PIDs of the live worker processes."""
        return [s.proc.pid or 0 for s in self._slots if s.process is not None and s.proc.is_alive()]

    @property
    def queued(self) -> int:
        """Jobs waiting for a worker."""
        return len({t.job.id for t in self._queue})

    @property
    def running(self) -> int:
        """Tasks running now (a portfolio job runs two)."""
        return sum(1 for s in self._slots if s.task is not None)

    def job(self, job_id: str) -> JobHandle | None:
        """A job submitted to this pool, or None."""
        return self._jobs.get(job_id)

    def running_pid(self, job: JobHandle) -> list[int]:
        """PIDs of the workers running ``job`` now (for tests and diagnostics)."""
        return [s.proc.pid or 0 for s in self._slots if s.task is not None and s.task.job is job]

    # -- submission --

    async def submit(self, problem: Problem, options: SolveOptions | None = None, *,
                     deadline: float | None = None) -> JobHandle:
        """Queue a job.

        Args:
            problem: the problem.
            options: engine, time limit, seed, OR-Tools strategies; the time limit is applied
                here (:meth:`SolveOptions.limited`) when the caller has not.
            deadline: absolute ``time.time()`` by which the answer is needed (e.g. the gRPC
                deadline); the search stops at the earlier of it and the time limit.

        Raises:
            InvalidArgumentError: ``time_limit`` above ``solver_max_time_limit_s``, or the
                requested engine cannot express the problem (field ``engine``).
            InfeasibleProblemError: a required stop can never be served (``feasibility.screen``).
            ResourceExhaustedError: ``solver_queue_size`` jobs are already waiting.
            UnavailableError: the pool is closed or not started.
        """
        options = (options or SolveOptions()).limited(self.max_time_limit_s)
        if self._closing or self._loop is None:
            raise UnavailableError("solver-pool", "the solver pool is not running")
        choice = engines_for(problem, options.engine)
        # explain an infeasible problem now, not from a worker later (O(stops x vehicle types))
        await asyncio.to_thread(screen, problem)
        if self._closing:
            raise UnavailableError("solver-pool", "the solver pool is not running")
        if self.queued >= self.queue_size:
            raise ResourceExhaustedError(
                f"solver queue full: {self.queued} jobs waiting (limit {self.queue_size})")
        job = JobHandle(self, problem, options, choice, deadline)
        finished = [j for j in self._jobs.values() if j.done]
        for old in finished[: max(0, len(finished) - FINISHED_JOBS_KEPT)]:
            del self._jobs[old.id]
        self._jobs[job.id] = job
        self._queue.extend(job._tasks)
        self._dispatch()
        return job

    async def solve(self, problem: Problem, options: SolveOptions | None = None, *,
                    deadline: float | None = None) -> Solution:
        """Submit and wait for the result (the unary ``Solve``). Errors as :meth:`submit` and
        :meth:`JobHandle.result`."""
        job = await self.submit(problem, options, deadline=deadline)
        return await job.result()

    # -- internals --

    def _spawn(self, slot: _Slot) -> None:
        parent, child = self._ctx.Pipe(duplex=True)
        err_read, err_write = self._ctx.Pipe(duplex=False)
        slot.cancel = self._ctx.Event()
        slot.process = self._ctx.Process(target=worker_main,
                                         args=(child, slot.cancel, self.memory_limit_mib, err_write),
                                         name=f"wasteml-solver-{slot.index}", daemon=True)
        slot.proc.start()
        child.close()
        err_write.close()
        os.set_blocking(err_read.fileno(), False)
        slot.stderr, slot.stderr_tail = err_read, b""
        slot.conn = parent
        slot.task = None
        slot.kill_reason = None
        slot.spawned_at = time.monotonic()
        slot.ready = False
        slot.retiring = False
        assert self._loop is not None
        self._loop.add_reader(parent.fileno(), self._on_message, slot, slot.process)
        self._loop.add_reader(slot.proc.sentinel, self._on_exit, slot, slot.process)
        self._loop.add_reader(err_read.fileno(), self._on_stderr, slot, slot.process)
        logger.info("solver worker %d started (pid %d)", slot.index, slot.proc.pid)

    def _on_stderr(self, slot: _Slot, process: Any) -> None:
        """Log what a worker writes to stderr; keep its tail (why a worker died)."""
        if slot.process is not process or slot.stderr is None:
            return
        chunks = []
        try:
            while True:
                chunk = os.read(slot.stderr.fileno(), 65536)
                if not chunk:  # the worker closed it (exited)
                    assert self._loop is not None
                    self._loop.remove_reader(slot.stderr.fileno())
                    break
                chunks.append(chunk)
        except (BlockingIOError, InterruptedError):
            pass
        except OSError:
            return
        data = b"".join(chunks)
        if data:
            slot.stderr_tail = (slot.stderr_tail + data)[-STDERR_TAIL_BYTES:]
            for line in data.decode("utf-8", "replace").splitlines():
                if line.strip():
                    logger.warning("solver worker %d (pid %d): %s", slot.index, slot.proc.pid, line)

    def _close_stderr(self, slot: _Slot) -> None:
        if slot.stderr is not None and not slot.stderr.closed:
            assert self._loop is not None
            self._loop.remove_reader(slot.stderr.fileno())
            slot.stderr.close()
        slot.stderr = None

    def _out_of_memory(self, slot: _Slot, code: int | None) -> bool:
        """True when a dead worker ran out of memory (its exit code or its stderr says so)."""
        return code == MEMORY_EXIT_CODE or (
            self.memory_limit_mib > 0 and any(m in slot.stderr_tail for m in _OUT_OF_MEMORY_MARKERS))

    def _unwatch(self, slot: _Slot) -> None:
        assert self._loop is not None
        if slot.conn is not None and not slot.pipe.closed:  # closed: its worker died, already unwatched
            self._loop.remove_reader(slot.pipe.fileno())
        if slot.process is not None:
            self._loop.remove_reader(slot.proc.sentinel)

    def _dispatch(self) -> None:
        for slot in self._slots:
            if not self._queue or self._closing:
                return
            if slot.task is not None or slot.retiring or slot.process is None or not slot.proc.is_alive():
                continue
            task = self._queue.popleft()
            job = task.job
            remaining = job.options.limit_s
            if job.deadline is not None:
                remaining = min(remaining, job.deadline - time.time())
            slot.cancel.clear()
            slot.task, task.slot = task, slot
            job._start()
            task.remaining_s = remaining
            self._send(slot, SolveTask(task.id, job.problem, job.options, task.engine, job.deadline))

    def _send(self, slot: _Slot, message: SolveTask) -> None:
        """Pickle and write a task to its worker in a thread (the problem's matrices are large)."""
        assert self._loop is not None
        pipe = slot.pipe

        def sent(future: asyncio.Future[None]) -> None:
            error = None if future.cancelled() else future.exception()
            if error is not None:  # the worker died meanwhile: its exit settles the task
                logger.warning("solver worker %d unreachable: %s", slot.index, error)

        self._loop.run_in_executor(None, send_task, pipe, message).add_done_callback(sent)

    def _on_message(self, slot: _Slot, process: Any) -> None:
        if slot.process is not process:
            return
        try:
            while slot.pipe.poll():
                msg = slot.pipe.recv()
                self._handle(slot, msg)
        except (EOFError, OSError):
            assert self._loop is not None
            self._loop.remove_reader(slot.pipe.fileno())

    def _handle(self, slot: _Slot, msg: FromWorker) -> None:
        if isinstance(msg, Ready):
            slot.ready = True
            return
        task = slot.task
        if task is None or task.id != msg.task_id:
            return  # a late message of a task already settled (cancelled, killed)
        job = task.job
        if isinstance(msg, Started):  # the worker is past its start-up imports: the clock runs now
            assert self._loop is not None
            remaining = task.remaining_s
            if job.deadline is not None:
                remaining = min(remaining, job.deadline - time.time())
            if slot.timer is None:
                slot.timer = self._loop.call_later(max(0.0, remaining) + self.kill_grace_s,
                                                   self._kill, slot, task, "overrun")
        elif isinstance(msg, Improved):
            if not job.done:
                elapsed = time.time() - (job.started_at or time.time())
                job._add_event(ProgressEvent(job.id, msg.progress.engine, msg.progress.objective, elapsed))
        elif isinstance(msg, Done):
            self._settle(slot, task, msg.solution)
        elif isinstance(msg, Failed):
            slot.retiring = slot.retiring or msg.retiring
            if msg.error is None:
                logger.error("solver worker raised an unexpected error in %s:\n%s", task.id, msg.traceback)
            self._settle(slot, task, msg.error or InternalError(f"the {task.engine.value} engine failed "
                                                                f"unexpectedly (see the server log)"))

    def _settle(self, slot: _Slot, task: _Task, outcome: Solution | BaseException) -> None:
        if slot.timer is not None:
            slot.timer.cancel()
            slot.timer = None
        slot.task = None
        task.slot = None
        task.outcome = outcome
        job = task.job
        if not job.done and all(t.outcome is not None for t in job._tasks):
            self._complete(job)
        self._dispatch()

    def _complete(self, job: JobHandle) -> None:
        solutions = [t.outcome for t in job._tasks if isinstance(t.outcome, Solution)]
        if not solutions:
            failure = next(t.outcome for t in job._tasks)
            assert isinstance(failure, BaseException)
            job._finish(JobStatus.FAILED, failure)
            return
        best = choose(solutions)
        requested_several = len(job._tasks) > 1 or bool(job.choice.left_out)
        if requested_several:  # a portfolio: one row per engine, and what could not run
            runs: list[EngineRun] = []
            fallbacks: list[FallbackNotice] = []
            for task in job._tasks:
                if isinstance(task.outcome, Solution):
                    runs.extend(task.outcome.engine_runs or (task.outcome.run(),))
                else:
                    why = task.outcome.message if isinstance(task.outcome, WastemlError) else "failed"
                    runs.append(EngineRun(task.engine, SolveStatus.NO_SOLUTION_IN_TIME,
                                          note=f"{task.engine.value} failed: {why}"))
                    fallbacks.append(FallbackNotice(task.engine.value, f"ENGINE_{best.engine.name} only", why))
            for engine, why in job.choice.left_out:
                fallbacks.append(FallbackNotice(engine.value, f"ENGINE_{best.engine.name} only", why))
            best = replace(best, engine_runs=tuple(runs), fallbacks=best.fallbacks + tuple(fallbacks))
        job._finish(JobStatus.SUCCEEDED, best)

    def _kill(self, slot: _Slot, task: _Task, reason: str) -> None:
        if slot.task is not task or slot.process is None or not slot.proc.is_alive():
            return
        slot.kill_reason = reason
        logger.warning("killing solver worker %d (pid %d): task %s %s", slot.index,
                       slot.proc.pid, task.id, reason)
        slot.proc.kill()

    def _on_exit(self, slot: _Slot, process: multiprocessing.process.BaseProcess) -> None:
        if slot.process is not process:
            return
        self._unwatch(slot)
        slot.ready = False  # until its replacement has imported the engines
        try:  # a result sent just before the exit
            while slot.pipe.poll():
                self._handle(slot, slot.pipe.recv())
        except (EOFError, OSError):
            pass
        process.join(1.0)
        code = process.exitcode
        self._on_stderr(slot, process)  # what it wrote last
        self._close_stderr(slot)
        task = slot.task
        if task is not None:
            job = task.job
            how = f"killed by signal {-code}" if code is not None and code < 0 else f"exit code {code}"
            if slot.kill_reason == "overrun":
                outcome: Solution | BaseException = no_solution(
                    job.problem, task.engine, SolveStatus.NO_SOLUTION_IN_TIME,
                    elapsed_s=time.time() - (job.started_at or time.time()),
                    reason=f"{task.engine.value} was still searching {self.kill_grace_s:g} s "
                           "after its time limit and was stopped")
            elif slot.kill_reason is None and self._out_of_memory(slot, code):
                outcome = ResourceExhaustedError(memory_exceeded_message(
                    self.memory_limit_mib, f"worker pid {process.pid} died ({how}) running job {job.id}"))
            else:
                outcome = UnavailableError(
                    "solver-pool", f"solver worker (pid {process.pid}) died ({how}) while running job {job.id}")
            self._settle(slot, task, outcome)
        slot.pipe.close()
        if self._closing:
            return
        logger.warning("solver worker %d (pid %d) exited (code %s); starting a replacement",
                       slot.index, process.pid, code)
        self._restarts += 1
        assert self._loop is not None
        if time.monotonic() - slot.spawned_at < RESPAWN_BACKOFF_S:  # crashing at start-up: back off
            self._loop.call_later(RESPAWN_BACKOFF_S, self._respawn, slot, process)
        else:
            self._respawn(slot, process)

    def _respawn(self, slot: _Slot, dead: Any) -> None:
        if self._closing or slot.process is not dead:
            return
        self._spawn(slot)
        self._dispatch()

    def _cancel(self, job: JobHandle) -> bool:
        if job.done:
            return False
        for task in job._tasks:
            if task in self._queue:
                self._queue.remove(task)
            slot = task.slot
            if slot is not None and slot.task is task:
                slot.cancel.set()
                assert self._loop is not None
                if slot.timer is not None:
                    slot.timer.cancel()
                slot.timer = self._loop.call_later(self.cancel_grace_s, self._kill, slot, task, "cancelled")
        job._finish(JobStatus.CANCELLED, CancelledError(f"job {job.id} was cancelled"))
        return True

    @property
    def restarts(self) -> int:
        """Workers replaced since start (crashes, kills for overrun or cancellation)."""
        return self._restarts
