"""OR-Tools routing (``pywrapcp.RoutingModel``) as an :class:`~wasteml_server.routing.engine.Engine`.

Translation:

* **Nodes:** depots (one node each), then the servable stops, then ``K`` optional copies of
  each facility (a dump can be visited several times per route: multi-trip). ``K`` is the
  number of trips the fleet could need, ``min(#stops, max_d ceil(sum demand_d / min capacity_d)
  + #vehicles)``.
* **Matrices** are registered with ``RegisterTransitMatrix`` / ``RegisterUnaryTransitVector``
  (measured while planning: 2-3.5x more solutions explored than a Python callback).
* **Costs** are integers in units of ``1 / COST_SCALE`` currency: arc cost per metre is
  ``round(cost_per_km * COST_SCALE / 1000)`` (resolution 0.01 currency per km), fixed costs
  and penalties are ``round(x * COST_SCALE)``. One arc-cost matrix per distinct ``cost_per_km``.
  The problem model bounds every value and total so that none of these int64s can wrap
  (``routing.problem``, "numeric ranges").
* **Capacity:** one dimension per load dimension; stop transit = its demand; a facility node
  has transit ``-max capacity`` with slack up to ``max capacity`` (the load may drop to
  anything >= 0: the reload idiom of the OR-Tools ``cvrp_reload`` sample); slack is fixed to 0
  elsewhere. ``end_empty`` vehicles get load 0 at their end node.
* **Time:** transit ``i -> j`` = service at ``i`` + travel time; waiting slack up to the
  horizon; several windows per stop = the cumul range minus the gaps (``RemoveInterval``);
  shift = start/end cumul ranges; max route duration = span upper bound.
* **Optional stops:** ``AddDisjunction([node], penalty)``; facility copies have penalty 0.
* **Search:** first-solution strategy and metaheuristic from :class:`SolveOptions`; a solution
  callback reports improvements and calls ``solver().FinishCurrentSearch()`` once the stopping
  criterion fires (cancel flag, deadline). ``SolveWithParameters`` returns None on time-out
  *and* on invalid settings, so ``routing.status()`` is always read.
"""

from __future__ import annotations

import logging
import math
import time
from collections.abc import Mapping

import numpy as np
from ortools.constraint_solver import pywrapcp, routing_enums_pb2

from wasteml_server.routing.capabilities import ortools_unsupported
from wasteml_server.routing.engine import Progress, ProgressCallback, StoppingCriterion
from wasteml_server.routing.feasibility import screen
from wasteml_server.routing.options import EngineName, SolveOptions
from wasteml_server.routing.problem import (
    COST_SCALE,
    HORIZON_S,
    Problem,
    cost_units,
    per_metre_cost_units,
)
from wasteml_server.routing.schedule import Step, build_solution
from wasteml_server.routing.solution import Solution, SolveStatus, VisitKind

logger = logging.getLogger(__name__)

__all__ = ["COST_SCALE", "OrToolsEngine"]  # COST_SCALE: integer cost units per currency unit (problem.py)


class OrToolsEngine:
    """OR-Tools routing engine. Stateless; one instance can serve many solves (not at once)."""

    name = EngineName.ORTOOLS

    def unsupported(self, problem: Problem) -> str | None:
        """OR-Tools expresses every feature of :class:`Problem`; always None."""
        return ortools_unsupported(problem)

    def solve(
        self,
        problem: Problem,
        stop: StoppingCriterion,
        on_progress: ProgressCallback | None = None,
        options: SolveOptions | None = None,
    ) -> Solution:
        """Solve with OR-Tools. See the module docstring for the translation.

        Raises:
            InfeasibleProblemError: a required stop can never be served (``feasibility.screen``).
        """
        options = options or SolveOptions()
        t0 = time.monotonic()
        screened = screen(problem)
        model = _Model(problem, screened)
        routing, manager = model.routing, model.manager

        params = pywrapcp.DefaultRoutingSearchParameters()
        params.first_solution_strategy = getattr(
            routing_enums_pb2.FirstSolutionStrategy, options.first_solution_strategy.value)
        params.local_search_metaheuristic = getattr(
            routing_enums_pb2.LocalSearchMetaheuristic, options.local_search_metaheuristic.value)
        remaining = stop.remaining_s()
        params.time_limit.FromMilliseconds(max(1, int(remaining * 1000)) if math.isfinite(remaining) else 3_600_000)

        first_feasible: list[float] = []
        best = [math.inf]

        def at_solution() -> None:
            cost = routing.CostVar().Value() / COST_SCALE
            elapsed = time.monotonic() - t0
            if not first_feasible:
                first_feasible.append(elapsed)
            if cost < best[0]:
                best[0] = cost
                if on_progress is not None:
                    on_progress(Progress(self.name, cost, elapsed, True))
            if stop(cost):
                routing.solver().FinishCurrentSearch()

        routing.AddAtSolutionCallback(at_solution)
        assignment = routing.SolveWithParameters(params)
        status_code = routing.status()
        elapsed = time.monotonic() - t0
        status, message = _status(status_code, assignment is not None)
        routes: list[tuple[int, int, list[Step]]] = []
        if assignment is not None and status in (SolveStatus.FEASIBLE, SolveStatus.OPTIMAL):
            for v in range(routing.vehicles()):
                steps: list[Step] = []
                index = assignment.Value(routing.NextVar(routing.Start(v)))
                while not routing.IsEnd(index):
                    step = model.step_of(manager.IndexToNode(index))
                    if not (step[0] is VisitKind.FACILITY and steps and steps[-1] == step):
                        steps.append(step)
                    index = assignment.Value(routing.NextVar(index))
                vt_index, vehicle = model.vehicle_of[v]
                routes.append((vt_index, vehicle, steps))
        return build_solution(problem, self.name, routes, status=status, elapsed_s=elapsed,
                              first_feasible_s=first_feasible[0] if first_feasible else None,
                              screened=screened, reason=message)


def _status(code: int, has_assignment: bool) -> tuple[SolveStatus, str]:
    """Map ``RoutingModel.status()`` to our status and a note."""
    rm = routing_enums_pb2.RoutingSearchStatus
    if code == rm.ROUTING_OPTIMAL and has_assignment:
        return SolveStatus.OPTIMAL, ""
    if code in (rm.ROUTING_SUCCESS, rm.ROUTING_PARTIAL_SUCCESS_LOCAL_OPTIMUM_NOT_REACHED) and has_assignment:
        return SolveStatus.FEASIBLE, ""
    if code == rm.ROUTING_INFEASIBLE:
        return SolveStatus.INFEASIBLE, "OR-Tools proved the problem infeasible"
    if code == rm.ROUTING_INVALID:
        raise RuntimeError("OR-Tools rejected the model or search parameters as invalid (ROUTING_INVALID)")
    if code == rm.ROUTING_FAIL_TIMEOUT:
        return SolveStatus.NO_SOLUTION_IN_TIME, "OR-Tools found no solution before the time limit"
    if has_assignment:
        return SolveStatus.FEASIBLE, ""
    return SolveStatus.NO_SOLUTION_IN_TIME, f"OR-Tools found no solution (routing status {code})"


class _Model:
    """The OR-Tools model of one problem and the node <-> (kind, index) maps."""

    def __init__(self, problem: Problem, screened: Mapping[int, object]) -> None:
        self.problem = problem
        n_dep = len(problem.depots)
        self.stop_nodes = [i for i in range(len(problem.stops)) if i not in screened]
        # node -> (kind, index); depots first
        self.steps: list[Step | None] = [None] * n_dep
        self.steps += [(VisitKind.STOP, i) for i in self.stop_nodes]
        used_facilities = sorted({f for vt in problem.vehicle_types for f in vt.reload_facility_indices})
        copies = self._facility_copies(problem) if used_facilities else 0
        copy_nodes: list[list[int]] = []
        for f in used_facilities:
            copy_nodes.append(list(range(len(self.steps), len(self.steps) + copies)))
            self.steps += [(VisitKind.FACILITY, f)] * copies
        locs = [problem.depot_location(i) for i in range(n_dep)]
        svc = [0] * n_dep
        for node_step in self.steps[n_dep:]:
            assert node_step is not None
            kind, idx = node_step
            if kind is VisitKind.STOP:
                locs.append(problem.stop_location(idx))
                svc.append(problem.stops[idx].service_duration_s)
            else:
                locs.append(problem.facility_location(idx))
                svc.append(problem.facilities[idx].service_duration_s)
        n_nodes = len(locs)

        self.vehicle_of: list[tuple[int, int]] = []
        starts, ends = [], []
        for t, vt in enumerate(problem.vehicle_types):
            for k in range(vt.count):
                self.vehicle_of.append((t, k))
                starts.append(vt.start_depot_index)
                ends.append(vt.end_depot)
        n_veh = len(self.vehicle_of)
        self.manager = pywrapcp.RoutingIndexManager(n_nodes, n_veh, starts, ends)
        self.routing = routing = pywrapcp.RoutingModel(self.manager)
        manager = self.manager

        dist = problem.distance_m[np.ix_(locs, locs)]
        dur = problem.duration_s[np.ix_(locs, locs)]

        # arc costs, one matrix per distinct per-metre cost
        cost_cb: dict[int, int] = {}
        for v, (t, _) in enumerate(self.vehicle_of):
            per_m = per_metre_cost_units(problem.vehicle_types[t].cost_per_km)
            if per_m not in cost_cb:
                cost_cb[per_m] = routing.RegisterTransitMatrix((dist * per_m).tolist())
            routing.SetArcCostEvaluatorOfVehicle(cost_cb[per_m], v)
            routing.SetFixedCostOfVehicle(cost_units(problem.vehicle_types[t].fixed_cost), v)

        # capacity dimensions with reload at facility nodes
        for d in range(problem.num_dimensions):
            max_cap = max(vt.capacity[d] for vt in problem.vehicle_types)
            transit = [0] * n_nodes
            for node in range(n_dep, n_nodes):
                kind, idx = self.step_of(node)
                transit[node] = problem.stops[idx].demand[d] if kind is VisitKind.STOP else -max_cap
            cb = routing.RegisterUnaryTransitVector(transit)
            caps = [problem.vehicle_types[t].capacity[d] for t, _ in self.vehicle_of]
            name = f"load{d}"
            routing.AddDimensionWithVehicleCapacity(cb, max_cap if used_facilities else 0, caps, True, name)
            dim = routing.GetDimensionOrDie(name)
            for node in range(n_dep, n_nodes):
                if self.step_of(node)[0] is VisitKind.STOP and used_facilities:
                    dim.SlackVar(manager.NodeToIndex(node)).SetValue(0)
            for v, (t, _) in enumerate(self.vehicle_of):
                if used_facilities:
                    dim.SlackVar(routing.Start(v)).SetValue(0)
                if problem.vehicle_types[t].end_empty:
                    dim.CumulVar(routing.End(v)).SetMax(0)

        # time dimension
        svc_arr = np.asarray(svc, dtype=np.int64)[:, None]
        time_cb = routing.RegisterTransitMatrix((dur + svc_arr).tolist())
        routing.AddDimension(time_cb, HORIZON_S, HORIZON_S, False, "time")
        tdim = routing.GetDimensionOrDie("time")
        for v, (t, _) in enumerate(self.vehicle_of):
            vt = problem.vehicle_types[t]
            tdim.CumulVar(routing.Start(v)).SetRange(vt.window.start_s, vt.window.end_s)
            tdim.CumulVar(routing.End(v)).SetRange(vt.window.start_s, vt.window.end_s)
            if vt.max_route_duration_s is not None:
                tdim.SetSpanUpperBoundForVehicle(vt.max_route_duration_s, v)
            routing.AddVariableMinimizedByFinalizer(tdim.CumulVar(routing.End(v)))
            routing.AddVariableMaximizedByFinalizer(tdim.CumulVar(routing.Start(v)))
        for node in range(n_dep, n_nodes):
            kind, idx = self.step_of(node)
            index = manager.NodeToIndex(node)
            if kind is VisitKind.STOP:
                windows = problem.stops[idx].time_windows
                stop = problem.stops[idx]
                if not stop.required:
                    routing.AddDisjunction([index], cost_units(stop.penalty))
            else:
                tw = problem.facilities[idx].time_window
                windows = (tw,) if tw is not None else ()
                routing.AddDisjunction([index], 0)
                barred = [v for v, (t, _) in enumerate(self.vehicle_of)
                          if idx not in problem.vehicle_types[t].reload_facility_indices]
                if barred:
                    routing.VehicleVar(index).RemoveValues(barred)
            if windows:
                cumul = tdim.CumulVar(index)
                cumul.SetRange(windows[0].start_s, windows[-1].end_s)
                for a, b in zip(windows, windows[1:], strict=False):
                    if b.start_s - a.end_s > 1:
                        cumul.RemoveInterval(a.end_s + 1, b.start_s - 1)

        # a copy never follows another copy of the same facility (tipping twice is pointless and
        # would only let the search park spare copies there at zero distance)
        for nodes in copy_nodes:
            indices = [manager.NodeToIndex(n) for n in nodes]
            for i in indices:
                routing.NextVar(i).RemoveValues([j for j in indices if j != i])

    def _facility_copies(self, problem: Problem) -> int:
        n_stops = len(self.stop_nodes)
        trips = 0
        for d in range(problem.num_dimensions):
            caps = [vt.capacity[d] for vt in problem.vehicle_types if vt.reload_facility_indices]
            total = sum(problem.stops[i].demand[d] for i in self.stop_nodes)
            if caps and min(caps) > 0:
                trips = max(trips, math.ceil(total / min(caps)))
        return max(1, min(n_stops, trips + problem.num_vehicles))

    def step_of(self, node: int) -> Step:
        """The (kind, index) visited at OR-Tools node ``node`` (never a depot)."""
        step = self.steps[node]
        assert step is not None
        return step
