"""Engine choice and the portfolio: which engines run a job, and which answer wins.

A portfolio job runs both engines on the solver pool for the same wall time (two worker
processes); the best feasible solution wins and ``Solution.engine`` names the engine that
produced it. An engine that declares a feature of the problem unsupported is left out, so the
portfolio (and AUTO) fall back to the other engine.
"""

from __future__ import annotations

from collections.abc import Sequence

from wasteml_server.core.errors import InvalidArgumentError
from wasteml_server.routing.capabilities import ortools_unsupported, pyvrp_unsupported
from wasteml_server.routing.engine import DEFAULT_ENGINE, Engine, EngineName
from wasteml_server.routing.problem import Problem, Solution, SolveStatus


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


def engines_for(problem: Problem, requested: EngineName) -> list[EngineName]:
    """The single engines that will run for ``requested``, after dropping unsupported ones.

    AUTO -> ``[DEFAULT_ENGINE]``, or the other engine when the default cannot express the
    problem. PORTFOLIO -> both, minus unsupported. A single engine -> itself.

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
    usable, reasons = [], []
    for name in candidates:
        why = _UNSUPPORTED[name](problem)
        if why is None:
            usable.append(name)
        else:
            reasons.append(f"{name.value}: {why}")
    if not usable:
        raise InvalidArgumentError("engine", "no engine can solve this problem: " + "; ".join(reasons))
    if requested is EngineName.AUTO:
        return usable[:1]
    return usable


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
        return min(feasible, key=lambda s: (s.objective.total, s.first_feasible_s or 0.0))
    proven = [s for s in solutions if s.status is SolveStatus.INFEASIBLE]
    return proven[0] if proven else solutions[0]
