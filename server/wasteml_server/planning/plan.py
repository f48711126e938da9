"""What PlanDay produces: stage events and the day plan with its totals (``wasteml.v1.Plan``)."""

from __future__ import annotations

import enum
from dataclasses import dataclass, field
from datetime import datetime

from wasteml_server.core.common import FallbackNotice, ModelRef
from wasteml_server.planning.request import PreparedDay
from wasteml_server.planning.selection import BinDecision, Selection
from wasteml_server.routing.problem import Problem
from wasteml_server.routing.solution import Solution


class PlanStage(enum.Enum):
    """Stages of the planning pipeline, in order (``wasteml.v1.PlanStage``)."""

    PREDICT = "PREDICT"
    COMPLAINTS = "COMPLAINTS"
    SELECT = "SELECT"
    SOLVE = "SOLVE"
    PERSIST = "PERSIST"


@dataclass(frozen=True)
class StageProgress:
    """A progress event (``wasteml.v1.PlanProgress``).

    Attributes:
        stage: the current stage.
        fraction: fraction of the stage done, 0..1.
        message: words, e.g. "predicted 53/53 skips".
        elapsed_s: seconds since the call started.
        solver_best_objective: best solver objective so far (SOLVE only), or None.
    """

    stage: PlanStage
    fraction: float
    message: str
    elapsed_s: float
    solver_best_objective: float | None = None


@dataclass(frozen=True)
class PlanTotals:
    """Totals over a plan (``wasteml.v1.PlanTotals``): metres, seconds, counts, cost units."""

    distance_m: int
    driving_s: int
    duration_s: int
    bins_served: int
    bins_must_visit: int
    bins_optional: int
    dump_trips: int
    vehicles_used: int
    predicted_overflows_avoided: int
    predicted_overflows_left: int
    objective: float


@dataclass(frozen=True)
class DayPlan:
    """The result of PlanDay.

    Attributes:
        plan_id: uuid hex under which the plan is stored.
        day: the prepared request (time origin, service time, bins).
        problem: the routing problem solved (stop ``i`` is ``day.bins[i]``).
        decisions: one per bin, request order, ``served`` filled in.
        solution: the solver's answer.
        models: every model used (the fill model, the complaint encoder).
        fallbacks: every declared fallback used.
        created_at: when the plan was made (aware).
    """

    plan_id: str
    day: PreparedDay
    problem: Problem
    decisions: tuple[BinDecision, ...]
    solution: Solution
    models: tuple[ModelRef, ...]
    created_at: datetime
    fallbacks: tuple[FallbackNotice, ...] = field(default=())

    def decision(self, stop_index: int) -> BinDecision:
        """The decision of ``problem.stops[stop_index]`` (stops are the bins, in order)."""
        return self.decisions[stop_index]

    @property
    def totals(self) -> PlanTotals:
        """Distance, time, dump trips and bin counts over the routes, and the overflow tally."""
        routes = self.solution.routes
        must = sum(1 for d in self.decisions if d.selection is Selection.MUST_VISIT)
        return PlanTotals(
            distance_m=sum(r.distance_m for r in routes),
            driving_s=sum(r.driving_s for r in routes),
            duration_s=sum(r.duration_s for r in routes),
            bins_served=sum(len(r.stop_indices) for r in routes),
            bins_must_visit=must,
            bins_optional=len(self.decisions) - must,
            dump_trips=sum(r.facility_visits for r in routes),
            vehicles_used=len(routes),
            predicted_overflows_avoided=sum(1 for d in self.decisions if d.served and d.predicted_overflow),
            predicted_overflows_left=sum(1 for d in self.decisions if not d.served and d.predicted_overflow),
            objective=self.solution.objective.total,
        )
