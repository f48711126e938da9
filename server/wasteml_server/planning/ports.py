"""What the planner needs from the rest of the server, as small protocols (fakes in tests).

The server wires them to its own domain services (``planning.sources``, ``routing.service``)
and to the SQL store (``adapters.storage.PlanStore``).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Protocol

from wasteml_server.core.common import ModelRef
from wasteml_server.planning.plan import DayPlan
from wasteml_server.planning.selection import Complaint, FillForecast
from wasteml_server.routing.options import SolveOptions
from wasteml_server.routing.problem import Problem
from wasteml_server.routing.service import SolveSession


@dataclass(frozen=True)
class BinFill:
    """What the fill predictor is asked for one bin: readings -> fill at ``target_s``.

    Attributes:
        bin_id: the bin.
        readings_s: ``(Unix seconds, fill fraction)`` in time order.
        last_emptied_s: last emptying, Unix seconds, or None.
        prior_rate_per_day: filling rate, fraction per day, or None.
        target_s: when the fill is wanted, Unix seconds.
    """

    bin_id: str
    readings_s: tuple[tuple[float, float], ...]
    last_emptied_s: float | None
    prior_rate_per_day: float | None
    target_s: float


@dataclass(frozen=True)
class ComplaintQuery:
    """The complaint search of a plan: one query text, the same filters around every bin."""

    query: str
    radius_m: float
    since: datetime
    until: datetime
    min_score: float
    top_k: int
    collection: str = ""


class FillPredictor(Protocol):
    """Stage PREDICT: fill forecasts of a batch of bins at their target times."""

    async def predict(self, bins: Sequence[BinFill]) -> tuple[dict[str, FillForecast], ModelRef]:
        """Bin id -> forecast, and the model (with its version) that made them."""
        ...


class ComplaintFinder(Protocol):
    """Stage COMPLAINTS: complaints like a query near points within a time range."""

    async def near(self, points: Sequence[tuple[float, float]], query: ComplaintQuery
                   ) -> tuple[list[list[Complaint]], ModelRef]:
        """One list per ``(latitude, longitude)`` point, best first, and the encoder that
        embedded the query (embedded once for all points)."""
        ...


class RouteSolver(Protocol):
    """Stage SOLVE: a solve session on the solver pool (``RoutingService.open``)."""

    async def open(self, problem: Problem, options: SolveOptions, *, options_field: str = "options",
                   deadline: float | None = None, within_call: bool = True) -> SolveSession:
        """Start a solve bounded by the call's deadline less a reply margin."""
        ...


class PlanRepository(Protocol):
    """Stage PERSIST: where plans are stored, each in one transaction (blocking)."""

    def save(self, plan: DayPlan) -> object:
        """Store the whole plan or nothing."""
        ...
