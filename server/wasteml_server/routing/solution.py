"""A solution to a routing problem, as the contract states it (``wasteml.v1.Solution``).

Every number a reply carries is computed once, where the schedule is built
(``schedule.build_solution``): visit times and loads, the distance and travel time from the
previous visit, driving time, dump trips, costs and the objective. The codec copies fields.

Why a stop is unassigned is decided where it is found out and carried as the contract's enum
(:class:`UnassignedReason`) next to the words (``detail``); what each engine of a run achieved
is carried as :class:`EngineRun` rows, never as prose to be parsed back.
"""

from __future__ import annotations

import enum
from dataclasses import dataclass

from wasteml_server.core.common import FallbackNotice
from wasteml_server.routing.options import EngineName


class SolveStatus(enum.Enum):
    """Outcome of a solve (``wasteml.v1.SolutionStatus``)."""

    OPTIMAL = "OPTIMAL"
    """The engine proved optimality (OR-Tools after a complete search; rare)."""
    FEASIBLE = "FEASIBLE"
    """A feasible solution was found; not proven optimal."""
    INFEASIBLE = "INFEASIBLE"
    """The engine (or the up-front screening) proved there is no feasible solution."""
    NO_SOLUTION_IN_TIME = "NO_SOLUTION_IN_TIME"
    """No feasible solution was found before the time limit, deadline or cancellation."""

    @property
    def feasible(self) -> bool:
        """True for OPTIMAL and FEASIBLE."""
        return self in (SolveStatus.FEASIBLE, SolveStatus.OPTIMAL)


class VisitKind(enum.Enum):
    """What a route visits (``wasteml.v1.VisitKind``)."""

    DEPOT = "DEPOT"
    STOP = "STOP"
    FACILITY = "FACILITY"


@dataclass(frozen=True)
class Visit:
    """One visit on a route (``wasteml.v1.Visit``).

    Attributes:
        kind: a depot (route start and end), a stop or a facility (dump/reload).
        index: index into ``Problem.depots``, ``Problem.stops`` or ``Problem.facilities``.
        id: the site's id.
        arrival_s: arrival time, seconds since the time origin.
        service_start_s: service start (after any wait for the time window), seconds.
        departure_s: ``service_start_s`` + service duration, seconds.
        load_after: load on board per dimension after the visit (0 after a facility).
        distance_from_previous_m: metres from the previous visit (0 for the first).
        travel_time_from_previous_s: seconds from the previous visit (0 for the first).
    """

    kind: VisitKind
    index: int
    id: str
    arrival_s: int
    service_start_s: int
    departure_s: int
    load_after: tuple[int, ...]
    distance_from_previous_m: int = 0
    travel_time_from_previous_s: int = 0


@dataclass(frozen=True)
class Route:
    """The ordered visits of one vehicle, from its start depot to its end depot
    (``wasteml.v1.Route``).

    Attributes:
        vehicle_type_index: index into ``Problem.vehicle_types``.
        vehicle_index: vehicle number within its type (0..count-1).
        vehicle_id: ``"<vehicle type id>-<vehicle_index>"`` (``type<i>`` when the type has no id).
        visits: ordered visits, starting and ending with a depot visit.
        distance_m: driven distance, metres.
        duration_s: ``end_s - start_s``, seconds.
        driving_s: time spent driving, seconds.
        facility_visits: dump trips on the route.
        start_s: departure from the start depot, seconds since the time origin.
        end_s: arrival at the end depot, seconds.
        cost: ``fixed_cost + cost_per_km * distance_m / 1000``, cost units.
    """

    vehicle_type_index: int
    vehicle_index: int
    vehicle_id: str
    visits: tuple[Visit, ...]
    distance_m: int
    duration_s: int
    driving_s: int
    facility_visits: int
    start_s: int
    end_s: int
    cost: float

    @property
    def stop_indices(self) -> tuple[int, ...]:
        """Indices of the stops visited, in order (depots and facilities left out)."""
        return tuple(v.index for v in self.visits if v.kind is VisitKind.STOP)


class UnassignedReason(enum.Enum):
    """Why a stop is on no route (``wasteml.v1.UnassignedReason``)."""

    UNSPECIFIED = "UNSPECIFIED"
    """No finer reason is known (e.g. a required stop the engine dropped)."""
    OPTIONAL_SKIPPED = "OPTIONAL_SKIPPED"
    """An optional stop whose penalty is lower than the cost of serving it."""
    TIME_WINDOW_UNREACHABLE = "TIME_WINDOW_UNREACHABLE"
    """No vehicle can reach it within any of its windows and return within its shift."""
    CAPACITY_EXCEEDED = "CAPACITY_EXCEEDED"
    """Its demand exceeds the capacity of every vehicle type."""
    NO_COMPATIBLE_VEHICLE = "NO_COMPATIBLE_VEHICLE"
    """Each vehicle type is ruled out, some by capacity and some by time."""
    TIME_LIMIT = "TIME_LIMIT"
    """The search ended before it could be inserted (no solution in time)."""


@dataclass(frozen=True)
class UnassignedStop:
    """A stop left out of every route (``wasteml.v1.UnassignedStop``).

    Attributes:
        stop_index: index into ``Problem.stops``.
        stop_id: its id.
        reason: why, as the contract's enum.
        detail: why, in words, e.g. "earliest arrival 08:25 is after its last time window closes".
    """

    stop_index: int
    stop_id: str
    reason: UnassignedReason
    detail: str


@dataclass(frozen=True)
class ObjectiveBreakdown:
    """The objective and its parts (``wasteml.v1.ObjectiveBreakdown``), cost units unless named
    otherwise: ``total = distance_cost + fixed_cost + time_cost + penalty``.

    Attributes:
        distance_m: total driven distance, metres.
        duration_s: total route duration, seconds.
        vehicles_used: number of routes.
        fixed_cost: sum of vehicle fixed costs over used vehicles.
        distance_cost: sum of ``cost_per_km * km`` over routes.
        time_cost: sum of ``cost_per_hour * hours`` over routes (0: no time cost is modelled).
        penalty: sum of skip penalties of unvisited optional stops.
    """

    distance_m: int = 0
    duration_s: int = 0
    vehicles_used: int = 0
    fixed_cost: float = 0.0
    distance_cost: float = 0.0
    time_cost: float = 0.0
    penalty: float = 0.0

    @property
    def total(self) -> float:
        """The minimised objective, cost units."""
        return self.distance_cost + self.fixed_cost + self.time_cost + self.penalty


@dataclass(frozen=True)
class EngineRun:
    """What one engine achieved in a run (``wasteml.v1.EngineRun``).

    Attributes:
        engine: ORTOOLS or PYVRP.
        status: its result.
        objective: its best total objective, or None when it found no solution.
        time_to_first_feasible_s: seconds until its first feasible solution, or None.
        note: why it found nothing or failed, e.g. "the worker died (killed by signal 9)".
    """

    engine: EngineName
    status: SolveStatus
    objective: float | None = None
    time_to_first_feasible_s: float | None = None
    note: str = ""


@dataclass(frozen=True)
class Solution:
    """An answer to a problem (``wasteml.v1.Solution``).

    Attributes:
        status: see :class:`SolveStatus`; routes are empty unless FEASIBLE or OPTIMAL.
        engine: the engine that produced the routes (never PORTFOLIO or AUTO).
        objective: parts of the objective (zeros when there is no solution).
        routes: used vehicles only.
        unassigned_stops: stops in no route, with reasons.
        infeasibility_reasons: problem-level explanations when infeasible or not solved.
        solve_time_s: wall time of the solve, seconds.
        time_to_first_feasible_s: seconds until the first feasible solution, or None.
        engine_runs: one row per engine that ran (two for the portfolio).
        fallbacks: declared fallbacks that served the solve.
    """

    status: SolveStatus
    engine: EngineName
    objective: ObjectiveBreakdown = ObjectiveBreakdown()
    routes: tuple[Route, ...] = ()
    unassigned_stops: tuple[UnassignedStop, ...] = ()
    infeasibility_reasons: tuple[str, ...] = ()
    solve_time_s: float = 0.0
    time_to_first_feasible_s: float | None = None
    engine_runs: tuple[EngineRun, ...] = ()
    fallbacks: tuple[FallbackNotice, ...] = ()

    @property
    def feasible(self) -> bool:
        """True when the solution has routes satisfying every constraint."""
        return self.status.feasible

    def run(self) -> EngineRun:
        """This solution's own engine row (what a single-engine run reports)."""
        return EngineRun(self.engine, self.status, self.objective.total if self.feasible else None,
                         self.time_to_first_feasible_s,
                         "; ".join(self.infeasibility_reasons) if not self.feasible else "")
