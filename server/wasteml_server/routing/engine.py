"""The engine interface and the stopping criteria shared by every engine.

Stopping follows PyVRP's ``pyvrp.stop`` protocol (a callable taking the best cost and answering
"stop now?"), extended with the remaining time so engines with a native time limit (OR-Tools)
can be given it up front. :class:`Budget` combines a time limit, an absolute deadline (the gRPC
caller's) and a cancellation flag (a ``multiprocessing.Event`` shared with the solver pool).
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Protocol

from wasteml_server.routing.options import EngineName, SolveOptions
from wasteml_server.routing.problem import Problem
from wasteml_server.routing.solution import Solution


@dataclass(frozen=True)
class Progress:
    """An improvement reported during a search.

    Attributes:
        engine: ORTOOLS or PYVRP.
        objective: best objective so far, cost units (as ``ObjectiveBreakdown.total``).
        elapsed_s: seconds since the engine started.
        feasible: whether that best solution is feasible (PyVRP also reports infeasible bests).
    """

    engine: EngineName
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

    name: EngineName

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
