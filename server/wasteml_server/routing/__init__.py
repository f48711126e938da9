"""Route optimisation: the problem model, two engines (OR-Tools, PyVRP), a portfolio and the solver pool.

Modules: ``problem`` (validated problem and solution dataclasses), ``feasibility`` (up-front
infeasibility screening), ``schedule`` (timing/costing of routes, shared by the engines),
``engine`` (interface, options, stopping), ``capabilities`` (what each engine can express),
``ortools_engine``, ``pyvrp_engine``, ``portfolio``,
``pool`` (worker processes), ``blantyre`` (the real Blantyre skip instance), ``instances`` and
``bench`` (benchmarks), ``cli`` (``wasteml bench routing``).
"""
