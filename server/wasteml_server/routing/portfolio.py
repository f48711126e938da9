"""Engine choice and the portfolio: which engines run a job, and which answer wins.

A portfolio job runs both engines on the solver pool for the same wall time (two worker
processes); the best feasible solution wins and ``Solution.engine`` names the engine that
produced it. An engine that declares a feature of the problem unsupported is left out, so the
portfolio (and AUTO) fall back to the other engine.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from wasteml_server.core.errors import InvalidArgumentError
from wasteml_server.routing.capabilities import ortools_unsupported, pyvrp_unsupported
from wasteml_server.routing.engine import Engine
from wasteml_server.routing.options import DEFAULT_ENGINE, EngineName
from wasteml_server.routing.problem import Problem
from wasteml_server.routing.solution import Solution, SolveStatus


def make_engine(name: EngineName) -> Engine:
    """A concrete engine (imports OR-Tools or PyVRP on first use).

    Raises:
        InvalidArgumentError: ``name`` is AUTO or PORTFOLIO (not a single engine).
    """
    if name is EngineName.ORTOOLS:
        from wasteml_server.routing.ortools_engine import OrToolsEngine

        return OrToolsEngine()
    if name is EngineName.PYVRP:
        from wasteml_server.routing.pyvrp_engine import PyVrpEngine

        return PyVrpEngine()
    raise InvalidArgumentError("engine", f"{name.value} is not a single engine")


_UNSUPPORTED = {EngineName.ORTOOLS: ortools_unsupported, EngineName.PYVRP: pyvrp_unsupported}


@dataclass(frozen=True)
class EngineChoice:
    """The single engines that run for a request, and those left out with the reason."""

    engines: tuple[EngineName, ...]
    left_out: tuple[tuple[EngineName, str], ...] = ()


def engines_for(problem: Problem, requested: EngineName) -> EngineChoice:
    """The single engines that will run for ``requested``, after dropping unsupported ones.

    AUTO -> ``[DEFAULT_ENGINE]``, or the other engine when the default cannot express the
    problem. PORTFOLIO -> both, minus unsupported (named in ``left_out``). A single engine ->
    itself.

    Raises:
        InvalidArgumentError: (field ``engine``) a single engine was requested that cannot express
            the problem, or no engine can.
    """
    if requested is EngineName.PORTFOLIO:
        candidates = [EngineName.PYVRP, EngineName.ORTOOLS]
    elif requested is EngineName.AUTO:
        other = EngineName.ORTOOLS if DEFAULT_ENGINE is EngineName.PYVRP else EngineName.PYVRP
        candidates = [DEFAULT_ENGINE, other]
    else:
        candidates = [requested]
    usable: list[EngineName] = []
    left_out: list[tuple[EngineName, str]] = []
    for name in candidates:
        why = _UNSUPPORTED[name](problem)
        if why is None:
            usable.append(name)
        else:
            left_out.append((name, why))
    if not usable:
        reasons = "; ".join(f"{name.value}: {why}" for name, why in left_out)
        raise InvalidArgumentError("engine", "no engine can solve this problem: " + reasons)
    if requested is EngineName.AUTO:
        return EngineChoice((usable[0],))
    return EngineChoice(tuple(usable), tuple(left_out))


def choose(solutions: Sequence[Solution]) -> Solution:
    """The winner among engines' answers for one problem.

    Feasible (or optimal) solutions beat the rest; among them the smallest ``objective.total``
    wins (ties: the earlier first feasible time). Without any feasible one, a proven INFEASIBLE
    is preferred over NO_SOLUTION_IN_TIME.

    Raises:
        ValueError: ``solutions`` is empty.
    """
    if not solutions:
        raise ValueError("no solutions to choose from")
    feasible = [s for s in solutions if s.feasible]
    if feasible:
        return min(feasible, key=lambda s: (s.objective.total, s.time_to_first_feasible_s or 0.0))
    proven = [s for s in solutions if s.status is SolveStatus.INFEASIBLE]
    return proven[0] if proven else solutions[0]
