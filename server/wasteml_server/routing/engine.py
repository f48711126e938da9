"""The engine interface, solve options and stopping criteria shared by every engine.

Stopping follows PyVRP's ``pyvrp.stop`` protocol (a callable taking the best cost and answering
"stop now?"), extended with the remaining time so engines with a native time limit (OR-Tools)
can be given it up front. :class:`Budget` combines a time limit, an absolute deadline (the gRPC
caller's) and a cancellation flag (a ``multiprocessing.Event`` shared with the solver pool).
"""

from __future__ import annotations

import enum
import math
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Protocol

from wasteml_server.core.errors import InvalidArgumentError
from wasteml_server.routing.problem import Problem, Solution


class EngineName(enum.Enum):
    """Which engine solves a job."""

    AUTO = "auto"
    """The measured default (see ``DEFAULT_ENGINE``), or the other engine when it cannot express the problem."""
    ORTOOLS = "ortools"
    PYVRP = "pyvrp"
    PORTFOLIO = "portfolio"
    """Both engines race for the same wall time; the best feasible solution wins."""


#: Chosen by measurement (benchmarks/routing.md): PyVRP reaches a smaller gap to the best-known
#: solutions than OR-Tools guided local search at equal wall time on Solomon, Gehring-Homberger
#: and X instances on this 2-core machine.
DEFAULT_ENGINE = EngineName.PYVRP


class FirstSolutionStrategy(enum.Enum):
    """OR-Tools first-solution strategies offered (names as in ``routing_enums_pb2``)."""

    PARALLEL_CHEAPEST_INSERTION = "PARALLEL_CHEAPEST_INSERTION"
    PATH_CHEAPEST_ARC = "PATH_CHEAPEST_ARC"
    SAVINGS = "SAVINGS"
    LOCAL_CHEAPEST_INSERTION = "LOCAL_CHEAPEST_INSERTION"
    AUTOMATIC = "AUTOMATIC"


class LocalSearchMetaheuristic(enum.Enum):
    """OR-Tools local-search metaheuristics offered (names as in ``routing_enums_pb2``)."""

    GUIDED_LOCAL_SEARCH = "GUIDED_LOCAL_SEARCH"
    TABU_SEARCH = "TABU_SEARCH"
    SIMULATED_ANNEALING = "SIMULATED_ANNEALING"
    GREEDY_DESCENT = "GREEDY_DESCENT"
    AUTOMATIC = "AUTOMATIC"


@dataclass(frozen=True)
class SolveOptions:
    """How to solve.

    Attributes:
        time_limit_s: wall-clock budget of the search, seconds (> 0).
        engine: which engine; AUTO picks :data:`DEFAULT_ENGINE`.
        seed: random seed (PyVRP); OR-Tools is deterministic for given settings.
        first_solution_strategy: OR-Tools first-solution heuristic. PARALLEL_CHEAPEST_INSERTION
            is the default: PATH_CHEAPEST_ARC found no solution on R101, R105, RC101 and RC105
            with the instances' fleet limit in 30 s (data/vrp/baseline_results.csv).
        local_search_metaheuristic: OR-Tools improvement phase; GUIDED_LOCAL_SEARCH beat
            greedy descent, tabu search and simulated annealing on R101/RC105/R201 at 10 s
            (same file, ``run_group=ablation``).

    Raises:
        InvalidArgumentError: ``time_limit_s`` not a positive finite number.
    """

    time_limit_s: float = 10.0
    engine: EngineName = EngineName.AUTO
    seed: int = 0
    first_solution_strategy: FirstSolutionStrategy = FirstSolutionStrategy.PARALLEL_CHEAPEST_INSERTION
    local_search_metaheuristic: LocalSearchMetaheuristic = LocalSearchMetaheuristic.GUIDED_LOCAL_SEARCH

    def __post_init__(self) -> None:
        if not (math.isfinite(self.time_limit_s) and self.time_limit_s > 0):
            raise InvalidArgumentError("time_limit_s", "must be a positive number of seconds")
        object.__setattr__(self, "engine", EngineName(self.engine))


@dataclass(frozen=True)
class Progress:
    """An improvement reported during a search.

    Attributes:
        engine: ``"ortools"`` or ``"pyvrp"``.
        objective: best objective so far, currency units (as ``ObjectiveParts.total``).
        elapsed_s: seconds since the engine started.
        feasible: whether that best solution is feasible (PyVRP also reports infeasible bests).
    """

    engine: str
    objective: float
    elapsed_s: float
    feasible: bool = True


#: Callback receiving improvements; must be cheap (it runs inside the search).
ProgressCallback = Callable[[Progress], None]


class StoppingCriterion(Protocol):
    """When to stop a search (PyVRP ``pyvrp.stop`` protocol plus the remaining time)."""

    def __call__(self, best_cost: float) -> bool:
        """True when the search must stop now."""
        ...

    def remaining_s(self) -> float:
        """Seconds left before the criterion stops the search (``inf`` when unbounded)."""
        ...


class _EventLike(Protocol):
    def is_set(self) -> bool: ...


class Budget:
    """Stop at a time limit, an absolute deadline, or when a cancel flag is set.

    Args:
        time_limit_s: seconds from construction (> 0).
        deadline: absolute wall-clock time (``time.time()`` seconds) or None.
        cancel: an object with ``is_set()`` (``threading.Event``/``multiprocessing.Event``) or None.
    """

    def __init__(self, time_limit_s: float, deadline: float | None = None,
                 cancel: _EventLike | None = None) -> None:
        self._end = time.monotonic() + time_limit_s
        if deadline is not None:
            self._end = min(self._end, time.monotonic() + (deadline - time.time()))
        self._cancel = cancel

    @property
    def cancelled(self) -> bool:
        """True once the cancel flag is set."""
        return self._cancel is not None and self._cancel.is_set()

    def remaining_s(self) -> float:
        """Seconds left, 0 when cancelled or expired."""
        if self.cancelled:
            return 0.0
        return max(0.0, self._end - time.monotonic())

    def __call__(self, best_cost: float = math.inf) -> bool:
        """True when out of time or cancelled (``best_cost`` is unused, kept for the protocol)."""
        return self.remaining_s() <= 0.0


class Engine(Protocol):
    """A routing engine: translates a :class:`Problem`, searches, translates back."""

    name: str

    def unsupported(self, problem: Problem) -> str | None:
        """A sentence naming a feature of ``problem`` this engine cannot express, or None."""
        ...

    def solve(self, problem: Problem, stop: StoppingCriterion, on_progress: ProgressCallback | None = None,
              options: SolveOptions | None = None) -> Solution:
        """Solve ``problem`` until ``stop`` says so; report improvements to ``on_progress``.

        Raises:
            InfeasibleProblemError: a required stop can never be served (see ``feasibility.screen``).
            InvalidArgumentError: the problem uses a feature this engine cannot express.
        """
        ...
