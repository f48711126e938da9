"""How to solve: engine choice and the options of one solve (``wasteml.v1.SolveOptions``)."""

from __future__ import annotations

import enum
import math
from dataclasses import dataclass, replace

from wasteml_server.core.errors import InvalidArgumentError


class EngineName(enum.Enum):
    """Which engine solves a job (``wasteml.v1.Engine``)."""

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
    SWEEP = "SWEEP"
    """Not offered: needs coordinates OR-Tools is not given (rejected by :class:`SolveOptions`)."""
    CHRISTOFIDES = "CHRISTOFIDES"
    """Not offered (rejected by :class:`SolveOptions`)."""


class LocalSearchMetaheuristic(enum.Enum):
    """OR-Tools local-search metaheuristics offered (names as in ``routing_enums_pb2``)."""

    GUIDED_LOCAL_SEARCH = "GUIDED_LOCAL_SEARCH"
    TABU_SEARCH = "TABU_SEARCH"
    SIMULATED_ANNEALING = "SIMULATED_ANNEALING"
    GREEDY_DESCENT = "GREEDY_DESCENT"
    AUTOMATIC = "AUTOMATIC"
    GENERIC_TABU_SEARCH = "GENERIC_TABU_SEARCH"
    """Not offered (rejected by :class:`SolveOptions`)."""


#: Strategies the contract names that this server does not offer.
UNOFFERED_STRATEGIES = frozenset({FirstSolutionStrategy.SWEEP, FirstSolutionStrategy.CHRISTOFIDES})
UNOFFERED_METAHEURISTICS = frozenset({LocalSearchMetaheuristic.GENERIC_TABU_SEARCH})

#: Time limit of a solve whose options leave it unset, seconds (bounded by
#: ``Settings.solver_max_time_limit_s``).
DEFAULT_TIME_LIMIT_S = 10.0

_NOT_SUPPORTED = "is not supported by this server's routing model; leave it unset"

#: Largest seed: PyVRP's ``RandomNumberGenerator`` takes an unsigned 32-bit seed.
MAX_SEED = 2**32 - 1


@dataclass(frozen=True)
class SolveOptions:
    """How to solve (``wasteml.v1.SolveOptions``).

    Attributes:
        time_limit_s: wall-clock budget of the search, seconds (> 0), the contract's
            ``time_limit`` (a Duration) converted at the edge; None when the request left it
            unset: :meth:`limited` applies this server's default and maximum.
        engine: which engine; AUTO picks :data:`DEFAULT_ENGINE`.
        first_solution_strategy: OR-Tools first-solution heuristic. PARALLEL_CHEAPEST_INSERTION
            is the default: PATH_CHEAPEST_ARC found no solution on R101, R105, RC101 and RC105
            with the instances' fleet limit in 30 s (data/vrp/baseline_results.csv).
        local_search_metaheuristic: OR-Tools improvement phase; GUIDED_LOCAL_SEARCH beat
            greedy descent, tabu search and simulated annealing on R101/RC105/R201 at 10 s
            (same file, ``run_group=ablation``).
        seed: random seed (PyVRP), ``0..MAX_SEED``; OR-Tools is deterministic for given settings.
        no_improvement_limit_s: stop on stagnation after this long; not supported yet, so it
            must be None.

    Raises:
        InvalidArgumentError: ``time_limit`` not a positive finite number; a seed outside
            ``0..MAX_SEED``; a strategy,
            metaheuristic or stopping rule this server does not offer (named by its field).
    """

    time_limit_s: float | None = None
    engine: EngineName = EngineName.AUTO
    first_solution_strategy: FirstSolutionStrategy = FirstSolutionStrategy.PARALLEL_CHEAPEST_INSERTION
    local_search_metaheuristic: LocalSearchMetaheuristic = LocalSearchMetaheuristic.GUIDED_LOCAL_SEARCH
    seed: int = 0
    no_improvement_limit_s: float | None = None

    def __post_init__(self) -> None:
        if self.time_limit_s is not None and not (math.isfinite(self.time_limit_s) and self.time_limit_s > 0):
            raise InvalidArgumentError("time_limit", "must be a positive number of seconds")
        object.__setattr__(self, "engine", EngineName(self.engine))
        if not (isinstance(self.seed, int) and 0 <= self.seed <= MAX_SEED):
            raise InvalidArgumentError("seed", f"must be in 0..{MAX_SEED} (PyVRP's unsigned 32-bit seed), "
                                       f"got {self.seed}")
        if self.first_solution_strategy in UNOFFERED_STRATEGIES:
            raise InvalidArgumentError("first_solution_strategy",
                                       f"{self.first_solution_strategy.value} {_NOT_SUPPORTED}")
        if self.local_search_metaheuristic in UNOFFERED_METAHEURISTICS:
            raise InvalidArgumentError("local_search_metaheuristic",
                                       f"{self.local_search_metaheuristic.value} {_NOT_SUPPORTED}")
        if self.no_improvement_limit_s is not None:
            raise InvalidArgumentError("no_improvement_limit", f"stopping on stagnation {_NOT_SUPPORTED}")

    def limited(self, max_time_limit_s: float) -> SolveOptions:
        """These options with the time limit this server runs them with: unset means
        :data:`DEFAULT_TIME_LIMIT_S` (at most ``max_time_limit_s``), set must be within it.

        Raises:
            InvalidArgumentError: ``time_limit`` above ``max_time_limit_s``.
        """
        if self.time_limit_s is None:
            return replace(self, time_limit_s=min(DEFAULT_TIME_LIMIT_S, max_time_limit_s))
        if self.time_limit_s > max_time_limit_s:
            raise InvalidArgumentError(
                "time_limit", f"{self.time_limit_s:g} s is above this server's maximum of {max_time_limit_s:g} s")
        return self

    @property
    def limit_s(self) -> float:
        """The time limit of options returned by :meth:`limited`, seconds.

        Raises:
            ValueError: the options were not limited (a bug of the caller).
        """
        if self.time_limit_s is None:
            raise ValueError("SolveOptions.time_limit_s is unset; call limited() first")
        return self.time_limit_s
