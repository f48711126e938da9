"""What each engine can express, checked without importing the solvers.

The server process uses these to pick engines (``portfolio.engines_for``) without loading
OR-Tools or PyVRP itself; only the pool's worker processes import the solvers.
"""

from __future__ import annotations

from wasteml_server.routing.problem import Problem


def ortools_unsupported(problem: Problem) -> str | None:
    """OR-Tools expresses every feature of :class:`Problem`; always None."""
    return None


def pyvrp_unsupported(problem: Problem) -> str | None:
    """None, or why PyVRP cannot express ``problem``.

    The one gap: a vehicle type that must end empty and may tip at a facility with opening
    hours (the PyVRP engine models the final tip as a virtual end depot, which cannot carry the
    facility's time window; see ``pyvrp_engine``).
    """
    for t, vt in enumerate(problem.vehicle_types):
        if vt.end_empty:
            for f in vt.reload_facility_indices:
                if problem.facilities[f].time_window is not None:
                    return (f"vehicle_types[{t}] must end empty and facilities[{f}] has opening "
                            "hours; PyVRP cannot express a timed final tip")
    return None
