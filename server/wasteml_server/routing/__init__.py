"""Route optimisation: the problem model, two engines (OR-Tools, PyVRP), a portfolio and the solver pool.

Modules: ``problem`` (the problem's types, named as in ``routing.proto``), ``builder`` (sites
as a request gives them -> a resolved problem: location model, default shifts, depot hours),
``solution`` (the answer as the contract states it), ``options`` (engine choice, solve options),
``feasibility`` (up-front infeasibility screening, with the contract's reasons), ``schedule``
(timing and costing of routes, shared by the engines), ``engine`` (interface, stopping),
``capabilities`` (what each engine can express), ``ortools_engine``, ``pyvrp_engine``,
``portfolio`` (engine choice, the winner), ``pool`` (worker processes), ``jobs`` (the job-state
enum, the persisted job, the job repository port), ``service`` (solve sessions and jobs).
Benchmarks, instances and the Blantyre instance are tools (``wasteml_tools.routing``).
"""
