"""The solver pool with real worker processes: queue bound, cancellation, kill -9, overrun, close."""

from __future__ import annotations

import asyncio
import multiprocessing
import os
import signal
import time
from dataclasses import replace

import numpy as np
import pytest
from routing_checker import DATA_DIR, violations

from wasteml_server.core.errors import (
    CancelledError,
    InfeasibleProblemError,
    InvalidArgumentError,
    ResourceExhaustedError,
    UnavailableError,
)
from wasteml_server.core.geo import GeoPoint
from wasteml_server.core.settings import Settings
from wasteml_server.routing.builder import TravelMatrix, build_problem
from wasteml_server.routing.jobs import JobStatus
from wasteml_server.routing.options import EngineName, SolveOptions
from wasteml_server.routing.pool import SolverPool
from wasteml_server.routing.problem import Depot, Problem, Stop, TimeWindow, VehicleType
from wasteml_server.routing.solution import SolveStatus
from wasteml_tools.routing.instances import load_instance


@pytest.fixture(scope="module")
def r101():
    """Solomon R101, 100 customers (real benchmark data)."""
    return load_instance(DATA_DIR / "vrp", "R101").problem


def _settings(**kw) -> Settings:
    values = dict(solver_workers=2, solver_queue_size=4, solver_kill_grace_s=1.0,
                  solver_max_time_limit_s=60.0)
    values.update(kw)
    return Settings(**values)


def _alive(pid: int) -> bool:
    try:
        with open(f"/proc/{pid}/stat") as fh:
            return fh.read().split()[2] != "Z"
    except FileNotFoundError:
        return False


async def _first_event(job, timeout: float = 20.0):
    async def first():
        async for event in job.events():
            return event
    return await asyncio.wait_for(first(), timeout)


async def test_portfolio_job_streams_both_engines_and_returns_feasible_plan(r101):
    """A portfolio job on R101 streams improvements from both engines, ends SUCCEEDED with a
    feasible plan (independently checked) naming the winning engine and one engine run per engine;
    close leaves no children."""
    pool = await SolverPool(_settings()).start()
    try:
        assert pool.size == 2 and pool.live_workers == 2
        job = await pool.submit(r101, SolveOptions(time_limit_s=3.0, engine=EngineName.PORTFOLIO))
        events = [e async for e in job.events()]
        sol = await job.result()
        assert job.state is JobStatus.SUCCEEDED and sol.status is SolveStatus.FEASIBLE
        assert violations(r101, sol) == []
        assert {e.engine for e in events} == {EngineName.ORTOOLS, EngineName.PYVRP}
        best = {e.engine: min(x.objective for x in events if x.engine == e.engine) for e in events}
        assert sol.engine == min(best, key=best.get)
        assert sol.objective.total == pytest.approx(min(best.values()))
        runs = {run.engine: run for run in sol.engine_runs}
        assert len(sol.engine_runs) == 2 and set(runs) == {EngineName.ORTOOLS, EngineName.PYVRP}
        assert all(run.status.feasible for run in runs.values()) and not sol.fallbacks
        assert runs[sol.engine].objective == pytest.approx(sol.objective.total)
        assert sol.objective.total == pytest.approx(min(run.objective for run in runs.values()))
        pids = pool.worker_pids
    finally:
        await pool.close()
    assert not any(_alive(p) for p in pids)
    # other pools may live in this process (the session's live server): only ours must be gone
    assert [c for c in multiprocessing.active_children() if c.pid in pids] == []


async def test_full_queue_raises_resource_exhausted(r101):
    """With 1 worker and a queue of 1, a third concurrent job is refused with RESOURCE_EXHAUSTED;
    a time limit above the maximum is an INVALID_ARGUMENT on time_limit, and a problem with an
    unreachable required stop is refused at submission with the explanation."""
    async with SolverPool(_settings(solver_workers=1, solver_queue_size=1)) as pool:
        opts = SolveOptions(time_limit_s=30.0, engine=EngineName.ORTOOLS)
        running = await pool.submit(r101, opts)
        waiting = await pool.submit(r101, opts)
        assert pool.queued == 1
        with pytest.raises(ResourceExhaustedError):
            await pool.submit(r101, opts)
        with pytest.raises(InvalidArgumentError) as err:
            await pool.submit(r101, SolveOptions(time_limit_s=61.0))
        assert err.value.field == "time_limit"
        stops = list(r101.stops)
        stops[7] = replace(stops[7], time_windows=(TimeWindow(0, 1),))
        with pytest.raises(InfeasibleProblemError) as infeasible:
            await pool.submit(replace(r101, stops=tuple(stops)), opts)
        assert f"stops[7] ({stops[7].id})" in infeasible.value.message
        waiting.cancel()
        running.cancel()
        with pytest.raises(CancelledError):
            await waiting.result()


async def test_cancel_stops_running_search_within_a_second(r101):
    """Cancelling a running 30 s OR-Tools search frees its worker within a second, the result
    raises CancelledError, and the pool keeps its size."""
    async with SolverPool(_settings(solver_workers=1)) as pool:
        job = await pool.submit(r101, SolveOptions(time_limit_s=30.0, engine=EngineName.ORTOOLS))
        await _first_event(job)
        t0 = time.monotonic()
        assert job.cancel()
        with pytest.raises(CancelledError):
            await job.result()
        while pool.running:
            await asyncio.sleep(0.02)
        assert time.monotonic() - t0 < 1.0
        assert job.state is JobStatus.CANCELLED and not job.cancel()
        await asyncio.sleep(0.1)
        assert pool.live_workers == 1


async def test_killed_worker_fails_job_cleanly_and_is_replaced(r101):
    """kill -9 of the worker running a job fails that job with UNAVAILABLE naming the signal;
    a replacement worker starts and the next job succeeds on it."""
    async with SolverPool(_settings(solver_workers=1)) as pool:
        job = await pool.submit(r101, SolveOptions(time_limit_s=30.0, engine=EngineName.PYVRP))
        await _first_event(job)
        (pid,) = pool.running_pid(job)
        os.kill(pid, signal.SIGKILL)
        with pytest.raises(UnavailableError) as err:
            await asyncio.wait_for(job.result(), 5.0)
        assert "signal 9" in err.value.message and job.state is JobStatus.FAILED
        deadline = time.monotonic() + 5.0
        while pool.live_workers < 1 and time.monotonic() < deadline:
            await asyncio.sleep(0.05)
        assert pool.live_workers == 1 and pool.worker_pids != [pid] and pool.restarts == 1
        sol = await pool.solve(r101, SolveOptions(time_limit_s=1.0, engine=EngineName.PYVRP))
        assert sol.status is SolveStatus.FEASIBLE


async def test_overrunning_search_is_stopped_from_outside():
    """A worker still busy past its time limit plus the kill grace (0 s here; translating and
    answering a 1000-stop R1_10_1 job takes longer than that) is killed from outside: the job
    answers NO_SOLUTION_IN_TIME saying so, promptly, and the worker is replaced."""
    big = load_instance(DATA_DIR / "vrp", "R1_10_1").problem
    async with SolverPool(_settings(solver_workers=1, solver_kill_grace_s=0.0)) as pool:
        job = await pool.submit(big, SolveOptions(time_limit_s=1.0, engine=EngineName.ORTOOLS))
        sol = await asyncio.wait_for(job.result(), 10.0)
        assert sol.status is SolveStatus.NO_SOLUTION_IN_TIME and "stopped" in sol.infeasibility_reasons[0]
        assert job.finished_at - job.started_at < 1.0 + 3.0  # limit + worker start-up
        deadline = time.monotonic() + 5.0
        while pool.live_workers < 1 and time.monotonic() < deadline:
            await asyncio.sleep(0.05)
        assert pool.restarts == 1 and pool.live_workers == 1


async def test_caller_deadline_ends_search_before_time_limit(r101):
    """A job with a 30 s time limit but a caller deadline 1.5 s away answers with a feasible plan
    shortly after the deadline, not after the time limit."""
    async with SolverPool(_settings(solver_workers=1)) as pool:
        await pool.wait_ready()
        t0 = time.monotonic()
        sol = await pool.solve(r101, SolveOptions(time_limit_s=30.0, engine=EngineName.PYVRP),
                               deadline=time.time() + 1.5)
        assert sol.status is SolveStatus.FEASIBLE and violations(r101, sol) == []
        assert time.monotonic() - t0 < 4.0


def _vm_mib(pid: int) -> float:
    """Address space (VmSize) of a process, MiB."""
    with open(f"/proc/{pid}/status") as fh:
        for line in fh:
            if line.startswith("VmSize:"):
                return int(line.split()[1]) / 1024
    raise AssertionError("no VmSize")


@pytest.fixture(scope="module")
def worker_baseline_mib() -> float:
    """The address space of an idle solver worker (both engines imported), measured on a pool
    without a memory limit."""
    async def measure() -> float:
        async with SolverPool(_settings(solver_workers=1, solver_worker_memory_mib=0)) as pool:
            await pool.wait_ready()
            return _vm_mib(pool.worker_pids[0])
    return asyncio.run(measure())


def _many_stops(n: int) -> Problem:
    """``n`` stops by coordinates around the real Blantyre yard (2,000: two 32 MB matrices)."""
    rng = np.random.default_rng(3)
    stops = [Stop(f"s{i}", location=GeoPoint(-15.79 + rng.uniform(-0.05, 0.05), 35.01 + rng.uniform(-0.05, 0.05)),
                  demand=(1,)) for i in range(n)]
    return build_problem(depots=[Depot("yard", GeoPoint(-15.7861, 35.0058))],
                         vehicle_types=[VehicleType(count=20, capacity=(200,))], stops=stops)


async def test_worker_out_of_its_memory_limit_fails_the_job_and_is_replaced(r101, worker_baseline_mib):
    """With a memory limit 100 MiB above an idle worker, a 2,000-stop job (its matrices alone
    are 61 MiB, and each engine copies them) fails with RESOURCE_EXHAUSTED naming the limit, in
    both engines; each time the worker is replaced and the next (small) job succeeds on it."""
    limit = int(worker_baseline_mib) + 100
    big = _many_stops(2000)
    small = load_instance(DATA_DIR / "vrp", "C101", max_customers=25).problem
    async with SolverPool(_settings(solver_workers=1, solver_worker_memory_mib=limit)) as pool:
        await pool.wait_ready()
        for engine in (EngineName.PYVRP, EngineName.ORTOOLS):
            job = await pool.submit(big, SolveOptions(time_limit_s=5.0, engine=engine))
            with pytest.raises(ResourceExhaustedError) as err:
                await asyncio.wait_for(job.result(), 30.0)
            print(f"\n{engine.value}, limit {limit} MiB (idle worker {worker_baseline_mib:.0f} MiB): {err.value.message}")
            assert f"solver worker memory limit {limit} MiB exceeded" in err.value.message
            assert job.state is JobStatus.FAILED
            sol = await pool.solve(small, SolveOptions(time_limit_s=1.0, engine=engine))
            assert sol.status.feasible and violations(small, sol) == []
        assert pool.restarts == 2 and pool.live_workers == 1


async def test_engine_out_of_its_memory_limit_fails_the_job_and_the_worker_is_replaced(worker_baseline_mib):
    """2,000 stops on two locations: a small problem to send, but OR-Tools builds a node x node
    matrix (4 M Python ints, > 100 MiB): with a limit 100 MiB above an idle worker the engine's
    MemoryError fails the job with RESOURCE_EXHAUSTED naming the limit; the worker exits and is
    replaced, and the next job succeeds."""
    limit = int(worker_baseline_mib) + 100
    dist = np.array([[0.0, 1500.0], [1500.0, 0.0]])
    crowded = build_problem(depots=[Depot("yard", location_index=0)],
                            vehicle_types=[VehicleType(count=20, capacity=(200,))],
                            stops=[Stop(f"s{i}", location_index=1, demand=(1,)) for i in range(2000)],
                            matrix=TravelMatrix.from_arrays(dist, dist.copy()))
    small = load_instance(DATA_DIR / "vrp", "C101", max_customers=25).problem
    async with SolverPool(_settings(solver_workers=1, solver_worker_memory_mib=limit)) as pool:
        await pool.wait_ready()
        job = await pool.submit(crowded, SolveOptions(time_limit_s=5.0, engine=EngineName.ORTOOLS))
        with pytest.raises(ResourceExhaustedError) as err:
            await asyncio.wait_for(job.result(), 30.0)
        print(f"\nortools, 2000 stops on 2 locations, limit {limit} MiB: {err.value.message}")
        assert f"solver worker memory limit {limit} MiB exceeded" in err.value.message
        sol = await pool.solve(small, SolveOptions(time_limit_s=1.0, engine=EngineName.ORTOOLS))
        assert sol.status.feasible and pool.restarts == 1


async def test_worker_that_dies_of_its_memory_limit_fails_with_resource_exhausted(worker_baseline_mib):
    """OR-Tools aborts the worker on std::bad_alloc (seen from its stderr): with a limit 30 MiB
    above an idle worker, a 1,000-vehicle model fails its job with RESOURCE_EXHAUSTED naming
    the limit (not UNAVAILABLE) whichever way the allocation failed, and a replacement starts."""
    limit = int(worker_baseline_mib) + 30
    c101 = load_instance(DATA_DIR / "vrp", "C101", max_customers=100).problem
    fleet = replace(c101, vehicle_types=(replace(c101.vehicle_types[0], count=1000),))
    async with SolverPool(_settings(solver_workers=1, solver_worker_memory_mib=limit)) as pool:
        await pool.wait_ready()
        job = await pool.submit(fleet, SolveOptions(time_limit_s=5.0, engine=EngineName.ORTOOLS))
        with pytest.raises(ResourceExhaustedError) as err:
            await asyncio.wait_for(job.result(), 30.0)
        print(f"\nortools, 1000 vehicles, limit {limit} MiB: {err.value.message}")
        assert f"solver worker memory limit {limit} MiB exceeded" in err.value.message
        await pool.wait_ready(timeout_s=30.0)
        assert pool.restarts == 1 and pool.live_workers == 1


def test_worker_memory_limit_defaults_to_4_gib() -> None:
    """The default limit is 4 GiB per worker (two workers fit the reference machine's 23 GiB)."""
    assert Settings().solver_worker_memory_mib == 4096


async def test_handing_the_largest_problem_to_a_worker_keeps_the_loop_responsive():
    """Submitting a 2,000-site problem (two 32 MB matrices) pickles and writes it to the worker
    off the event loop: the loop's lag stays under 50 ms meanwhile (pickling in band and writing
    on the loop stalled it for 142 ms here)."""
    big = _many_stops(1999)
    async with SolverPool(_settings(solver_workers=1)) as pool:
        await pool.wait_ready()
        lags: list[float] = []
        stop = asyncio.Event()

        async def ticker() -> None:
            while not stop.is_set():
                t0 = time.perf_counter()
                await asyncio.sleep(0.002)
                lags.append(time.perf_counter() - t0 - 0.002)

        task = asyncio.get_running_loop().create_task(ticker())
        await asyncio.sleep(0.05)
        job = await pool.submit(big, SolveOptions(time_limit_s=5.0, engine=EngineName.PYVRP))
        await _first_event(job, timeout=30.0)  # the worker has received and started it
        stop.set()
        await task
        job.cancel()
        print(f"\nloop lag while handing over 2,000 sites: max {max(lags) * 1000:.1f} ms over {len(lags)} ticks")
        assert max(lags) < 0.050
