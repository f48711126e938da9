"""PyVRP (iterated local search, ``pyvrp.solve``) as an :class:`~wasteml_server.routing.engine.Engine`.

Translation into ``pyvrp.ProblemData`` (built directly rather than through ``pyvrp.Model``:
``Model.add_edge`` would take one Python call per matrix entry, 10^6 for 1000 stops; the data
objects are the same ``Client``/``Depot``/``VehicleType`` classes the Model creates):

* **Depots** first (as in the problem), then each used **facility** as an extra PyVRP depot
  that vehicles list in ``reload_depots`` (its ``service_duration`` is the tip time, its
  ``tw_early/tw_late`` the opening hours), then one **virtual end depot** per (end depot,
  facility set) of ``end_empty`` vehicle types: travelling ``i -> virtual end`` means
  ``i -> best facility f*(i) -> end depot`` (f* minimises distance; its tip time is added to
  the duration), so the last trip must also be tipped. The facility is put back into the route
  when translating the answer. Facilities with opening hours cannot be expressed this way for
  end-empty vehicles (see :meth:`PyVrpEngine.unsupported`).
* **Stops** become clients with ``pickup = demand``; an optional stop has ``required=False``
  and ``prize = penalty``. A stop with several time windows becomes one client per window in a
  mutually exclusive ``ClientGroup`` (PyVRP's modelling of multiple time windows), required
  when the stop is.
* **Costs** are integers in units of ``1 / COST_SCALE`` currency, as in the OR-Tools engine:
  ``unit_distance_cost = round(cost_per_km * COST_SCALE / 1000)`` per metre, then all costs
  (distance, fixed, prizes) are divided by their greatest common divisor. PyVRP's penalty
  bounds are absolute (``PenaltyParams``: 0.1 .. 100,000 per unit of violation, tuned for unit
  distance cost 1), so they are multiplied by the largest remaining per-metre cost: measured,
  R101 with per-metre cost 100,000 and default penalties stayed infeasible after 5 s, while
  the same instance at unit cost reached its best-known 1637.7. The upper bound is also raised
  to 10x the largest prize, so one unit of violation can always cost more than any prize.
* **Stopping:** the :class:`StoppingCriterion` is called by PyVRP once per iteration with the
  best feasible cost; the wrapper also reports improvements (progress) there.
"""

from __future__ import annotations

import math
import time
from collections.abc import Mapping
from functools import reduce
from typing import Any

import numpy as np
import pyvrp

from wasteml_server.core.errors import InvalidArgumentError
from wasteml_server.routing.capabilities import pyvrp_unsupported
from wasteml_server.routing.engine import Progress, ProgressCallback, StoppingCriterion
from wasteml_server.routing.feasibility import screen
from wasteml_server.routing.options import EngineName, SolveOptions
from wasteml_server.routing.problem import (
    COST_SCALE,
    ENGINE_INT_MAX,
    HORIZON_S,
    MAX_DISTANCE_M,
    Problem,
    cost_units,
    max_legs,
    per_metre_cost_units,
)
from wasteml_server.routing.schedule import Step, build_solution
from wasteml_server.routing.solution import Solution, SolveStatus, VisitKind

__all__ = ["COST_SCALE", "PyVrpEngine"]  # COST_SCALE: integer cost units per currency unit (problem.py)

#: PyVRP reports the cost of an infeasible best solution as the largest int64 (``CostEvaluator.cost``).
_INFEASIBLE_COST = np.iinfo(np.int64).max // 2

#: Distance/duration of arcs that must never be used (out of a virtual end depot): above any
#: matrix entry (``MAX_DISTANCE_M``), and small enough that no route total can wrap.
_NEVER = 2 * MAX_DISTANCE_M


class PyVrpEngine:
    """PyVRP engine. Stateless; one instance can serve many solves (not at once)."""

    name = EngineName.PYVRP

    def unsupported(self, problem: Problem) -> str | None:
        """None, or why PyVRP cannot express ``problem`` (see ``capabilities.pyvrp_unsupported``)."""
        return pyvrp_unsupported(problem)

    def solve(
        self,
        problem: Problem,
        stop: StoppingCriterion,
        on_progress: ProgressCallback | None = None,
        options: SolveOptions | None = None,
    ) -> Solution:
        """Solve with PyVRP. See the module docstring for the translation.

        Raises:
            InfeasibleProblemError: a required stop can never be served (``feasibility.screen``).
            InvalidArgumentError: :meth:`unsupported` names a feature of the problem.
        """
        why = self.unsupported(problem)
        if why is not None:
            raise InvalidArgumentError("engine", f"pyvrp cannot solve this problem: {why}")
        options = options or SolveOptions()
        t0 = time.monotonic()
        screened = screen(problem)
        model = _Data(problem, screened)
        if not model.client_stop:  # nothing to visit
            return build_solution(problem, self.name, [], status=SolveStatus.FEASIBLE,
                                  elapsed_s=time.monotonic() - t0, first_feasible_s=0.0,
                                  screened=screened)
        tracker = _Tracker(stop, on_progress, t0, self.name, COST_SCALE / model.cost_gcd,
                           model.prize_offset)
        u = max(1, max(vt.unit_distance_cost for vt in model.data.vehicle_types()))
        # A violation must be able to cost more than the largest prize, or the search keeps
        # collecting prizes with overloaded routes (seen on the Blantyre day: no feasible plan).
        top_prize = max((c.prize for c in model.data.clients()), default=0)
        max_penalty = min(max(1e5 * u, 10.0 * top_prize), _penalty_cap(problem))
        params = pyvrp.SolveParams(penalty=pyvrp.PenaltyParams(
            min_penalty=min(0.1 * u, max_penalty), max_penalty=max_penalty))
        result = pyvrp.solve(model.data, tracker, seed=options.seed, collect_stats=False, params=params)
        elapsed = time.monotonic() - t0
        if not result.is_feasible():
            return build_solution(problem, self.name, [], status=SolveStatus.NO_SOLUTION_IN_TIME,
                                  elapsed_s=elapsed, first_feasible_s=None, screened=screened,
                                  reason="PyVRP found no feasible solution before it was stopped")
        return build_solution(problem, self.name, model.routes_of(result.best),
                              status=SolveStatus.FEASIBLE, elapsed_s=elapsed,
                              first_feasible_s=tracker.first_feasible_s, screened=screened)


def _penalty_cap(problem: Problem) -> float:
    """Largest penalty per unit of violation whose penalised cost stays in int64.

    PyVRP multiplies its penalties (doubles) by the violation (excess load, time warp) and
    casts the product to an int64 ``Cost``; that must not wrap. A violation is at most the
    total demand of a dimension, or a route's whole duration (``max_legs`` legs of the
    longest duration plus the longest service, plus the horizon).
    """
    demand = max((sum(s.demand[d] for s in problem.stops) for d in range(problem.num_dimensions)), default=0)
    service = max([s.service_duration_s for s in problem.stops]
                  + [f.service_duration_s for f in problem.facilities] + [0])
    warp = max_legs(problem) * (2 * int(problem.duration_s.max()) + service) + HORIZON_S
    return (ENGINE_INT_MAX / 4) / max(1, demand, warp)


class _Tracker:
    """PyVRP stopping criterion wrapping ours; records improvements and the first feasible time."""

    def __init__(self, stop: StoppingCriterion, on_progress: ProgressCallback | None,
                 t0: float, engine: EngineName, units_per_currency: float, offset: int = 0) -> None:
        self._stop = stop
        self._offset = offset
        self._scale = units_per_currency
        self._on_progress = on_progress
        self._t0 = t0
        self._engine = engine
        self._best = math.inf
        self.first_feasible_s: float | None = None

    def __call__(self, best_cost: float) -> bool:
        if best_cost >= _INFEASIBLE_COST:  # PyVRP's cost of an infeasible solution
            best_cost = math.inf
        else:
            best_cost -= self._offset
        if best_cost < self._best:
            self._best = best_cost
            elapsed = time.monotonic() - self._t0
            if self.first_feasible_s is None:
                self.first_feasible_s = elapsed
            if self._on_progress is not None:
                self._on_progress(Progress(self._engine, best_cost / self._scale, elapsed, True))
        return self._stop(best_cost / self._scale if math.isfinite(best_cost) else math.inf)


class _Data:
    """The PyVRP data of one problem and the maps back to our indices."""

    def __init__(self, problem: Problem, screened: Mapping[int, object]) -> None:
        self.problem = problem
        n_dep = len(problem.depots)
        self.facility_depots = sorted({f for vt in problem.vehicle_types for f in vt.reload_facility_indices})
        fac_depot_index = {f: n_dep + k for k, f in enumerate(self.facility_depots)}
        # virtual ends: one per (end depot, facilities) of end_empty types
        ends: list[tuple[int, tuple[int, ...]]] = sorted(
            {(vt.end_depot, vt.reload_facility_indices) for vt in problem.vehicle_types if vt.end_empty})
        self.virtual_end_depot = {key: n_dep + len(self.facility_depots) + k for k, key in enumerate(ends)}
        # PyVRP locations = problem locations + one per virtual end
        n_loc = len(problem.locations)
        size = n_loc + len(ends)
        dist = np.full((size, size), _NEVER, dtype=np.int64)
        dur = np.full((size, size), _NEVER, dtype=np.int64)
        dist[:n_loc, :n_loc] = problem.distance_m
        dur[:n_loc, :n_loc] = problem.duration_s
        np.fill_diagonal(dist, 0)
        np.fill_diagonal(dur, 0)
        self.tip_before_end: dict[int, np.ndarray] = {}  # virtual depot -> best facility per location
        locations = [pyvrp.Location(0, 0, name=str(i)) for i in range(len(problem.locations))]
        for k, (end, facs) in enumerate(ends):
            v = n_loc + k
            locations.append(pyvrp.Location(0, 0, name=f"virtual end {k}"))
            end_loc = problem.depot_location(end)
            fac_locs = np.array([problem.facility_location(f) for f in facs])
            via = problem.distance_m[:, fac_locs] + problem.distance_m[fac_locs, end_loc][None, :]
            best = np.argmin(via, axis=1)
            rows = np.arange(n_loc)
            svc = np.array([problem.facilities[f].service_duration_s for f in facs])
            dist[:n_loc, v] = via[rows, best]
            dur[:n_loc, v] = (problem.duration_s[rows, fac_locs[best]] + svc[best]
                              + problem.duration_s[fac_locs[best], end_loc])
            # already empty at a facility or the start depot: go straight to the end depot
            for loc in [*fac_locs, *(problem.depot_location(d) for d in range(n_dep))]:
                dist[loc, v] = problem.distance_m[loc, end_loc]
                dur[loc, v] = problem.duration_s[loc, end_loc]
            self.tip_before_end[n_dep + len(self.facility_depots) + k] = np.array(facs)[best]
        depots = [pyvrp.Depot(location=problem.depot_location(i), name=d.id) for i, d in enumerate(problem.depots)]
        for f in self.facility_depots:
            fac = problem.facilities[f]
            tw = fac.time_window
            depots.append(pyvrp.Depot(
                location=problem.facility_location(f), service_duration=fac.service_duration_s,
                tw_early=tw.start_s if tw else 0,
                tw_late=tw.end_s if tw else np.iinfo(np.int64).max, name=fac.id))
        depots += [pyvrp.Depot(location=n_loc + k, name=f"virtual end {k}") for k in range(len(ends))]

        prizes = {i: cost_units(s.penalty) if not s.required else 0
                  for i, s in enumerate(problem.stops)}
        unit = [per_metre_cost_units(vt.cost_per_km) for vt in problem.vehicle_types]
        fixed = [cost_units(vt.fixed_cost) for vt in problem.vehicle_types]
        g = reduce(math.gcd, [*prizes.values(), *unit, *fixed], 0) or 1
        #: integer cost units per PyVRP cost unit (all costs were divided by this)
        self.cost_gcd = g
        prizes = {i: p // g for i, p in prizes.items()}
        clients: list[pyvrp.Client] = []
        groups: list[pyvrp.ClientGroup] = []
        self.client_stop: list[int] = []
        #: constant part of PyVRP's cost that our objective does not have (PyVRP cost units)
        self.prize_offset = 0
        for i, stop in enumerate(problem.stops):
            if i in screened:
                continue
            prize = prizes[i]
            common: dict[str, Any] = dict(location=problem.stop_location(i), pickup=list(stop.demand),
                                          delivery=[0] * len(stop.demand),
                                          service_duration=stop.service_duration_s, name=stop.id)
            windows = stop.time_windows
            if len(windows) <= 1:
                bounds: dict[str, Any] = (dict(tw_early=windows[0].start_s, tw_late=windows[0].end_s)
                                          if windows else {})
                clients.append(pyvrp.Client(**common, **bounds, prize=prize, required=stop.required))
                self.client_stop.append(i)
            else:
                group = len(groups)
                members = []
                for w in windows:
                    members.append(len(clients))
                    clients.append(pyvrp.Client(**common, tw_early=w.start_s, tw_late=w.end_s,
                                                prize=prize, required=False, group=group))
                    self.client_stop.append(i)
                groups.append(pyvrp.ClientGroup(members, required=stop.required))
                # PyVRP counts the prize of every unvisited member, and at most one member is
                # visited: a constant (k - 1) * prize that is not part of our objective
                self.prize_offset += (len(windows) - 1) * prize

        vehicle_types = []
        for t, vt in enumerate(problem.vehicle_types):
            end = self.virtual_end_depot[(vt.end_depot, vt.reload_facility_indices)] if vt.end_empty else vt.end_depot
            kwargs: dict[str, Any] = {}
            if vt.max_route_duration_s is not None:
                kwargs["shift_duration"] = vt.max_route_duration_s
            vehicle_types.append(pyvrp.VehicleType(
                num_available=vt.count, capacity=list(vt.capacity),
                start_depot=vt.start_depot_index, end_depot=end,
                fixed_cost=fixed[t] // g,
                tw_early=vt.window.start_s, tw_late=vt.window.end_s,
                unit_distance_cost=unit[t] // g,
                reload_depots=[fac_depot_index[f] for f in vt.reload_facility_indices],
                name=vt.id, **kwargs))
        self.data = pyvrp.ProblemData(locations, clients, depots, vehicle_types, [dist], [dur], groups)  # type: ignore[list-item]
        self._fac_of_depot = {d: f for f, d in fac_depot_index.items()}

    def routes_of(self, solution: pyvrp.Solution) -> list[tuple[int, int, list[Step]]]:
        """``(vehicle type, vehicle, steps)`` for each route of a PyVRP solution."""
        used: dict[int, int] = {}
        out = []
        for route in solution.routes():
            t = route.vehicle_type()
            vehicle = used.get(t, 0)
            used[t] = vehicle + 1
            activities = list(route)[1:-1]
            steps: list[Step] = []
            for act in activities:
                if act.is_client():
                    steps.append((VisitKind.STOP, self.client_stop[act.idx]))
                elif act.is_depot() and act.idx in self._fac_of_depot:
                    steps.append((VisitKind.FACILITY, self._fac_of_depot[act.idx]))
            end_depot = route.end_depot()
            if end_depot in self.tip_before_end and steps and steps[-1][0] is VisitKind.STOP:
                last_loc = self.problem.stop_location(steps[-1][1])
                steps.append((VisitKind.FACILITY, int(self.tip_before_end[end_depot][last_loc])))
            out.append((t, vehicle, steps))
        return out
