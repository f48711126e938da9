"""Benchmark instances (Solomon, Gehring-Homberger, CVRPLIB X) read with ``vrplib`` into a :class:`Problem`.

Data: ``Settings().data_dir / "vrp"`` (README and ``bks.csv`` there). Conventions, from that
README:

* **VRPTW (Solomon, Gehring & Homberger), DIMACS:** ``d_ij = floor(10 * euclid(i, j)) / 10``,
  travel time = distance, objective = total distance only. We work in the x10 integer form:
  ``distance_m = duration_s = int(10 * euclid)``, time windows and service times x10, so
  ``objective = distance_m / 10``. The fleet is the instance's vehicle count.
* **CVRP X (Uchoa et al. 2017), TSPLIB:** ``d_ij = nint(euclid(i, j))``, objective = total
  distance. The fleet is unlimited; we offer ``k + max(3, ceil(k / 5))`` vehicles (``k`` = the
  minimum number of routes, in the name), which exceeds every BKS route count in ``bks.csv``.

``cost_per_km = 1000`` makes the cost objective equal to the (scaled) distance in "metres".
"""

from __future__ import annotations

import csv
import math
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import vrplib

from wasteml_server.core.errors import InvalidArgumentError, NotFoundError
from wasteml_server.routing.builder import TravelMatrix, build_problem
from wasteml_server.routing.problem import HORIZON_S, Depot, Problem, Stop, TimeWindow, VehicleType


@dataclass(frozen=True)
class BksRow:
    """One row of ``bks.csv``."""

    instance: str
    n_customers: int
    problem_type: str
    bks_objective: float
    bks_vehicles: int
    distance_convention: str
    fleet_limit: int | None
    capacity: int
    file: str


@dataclass(frozen=True, eq=False)
class BenchInstance:
    """A benchmark instance as a :class:`Problem`, with its best-known solution value.

    Attributes:
        problem: the problem (matrices in the convention's integer form).
        bks: the best-known row.
        scale: divide ``Solution.objective.distance_m`` by this to get the instance objective
            (10 for DIMACS VRPTW, 1 for X).
    """

    problem: Problem
    bks: BksRow
    scale: int

    def objective(self, distance_m: int) -> float:
        """The instance's objective (total distance in its own units) from our distance."""
        return distance_m / self.scale

    def gap_pct(self, distance_m: int) -> float:
        """``100 * (objective - bks) / bks``."""
        return 100.0 * (self.objective(distance_m) - self.bks.bks_objective) / self.bks.bks_objective


def read_bks(vrp_dir: Path) -> dict[str, BksRow]:
    """``bks.csv`` by instance name."""
    rows = {}
    with open(vrp_dir / "bks.csv", newline="") as fh:
        for r in csv.DictReader(fh):
            rows[r["instance"]] = BksRow(
                r["instance"], int(r["n_customers"]), r["problem_type"], float(r["bks_objective"]),
                int(r["bks_vehicles"]), r["distance_convention"],
                int(r["fleet_limit"]) if r["fleet_limit"] else None, int(r["capacity"]), r["file"])
    return rows


def load_instance(vrp_dir: Path, name: str, *, max_customers: int | None = None) -> BenchInstance:
    """Read one instance of ``bks.csv`` as a :class:`BenchInstance`.

    Args:
        vrp_dir: the ``data/vrp`` folder.
        name: instance name, e.g. ``"C101"``, ``"R1_10_1"``, ``"X-n101-k25"``.
        max_customers: keep only the first customers (tests); the BKS no longer applies then.

    Raises:
        NotFoundError: unknown instance name.
        InvalidArgumentError: ``max_customers`` < 1.
    """
    rows = read_bks(vrp_dir)
    if name not in rows:
        raise NotFoundError(f"no benchmark instance {name!r} in {vrp_dir / 'bks.csv'}")
    row = rows[name]
    if max_customers is not None and max_customers < 1:
        raise InvalidArgumentError("max_customers", "must be >= 1")
    path = vrp_dir / row.file
    fmt = "solomon" if path.suffix == ".txt" else "vrplib"
    data = vrplib.read_instance(str(path), instance_format=fmt, compute_edge_weights=False)
    coords = np.asarray(data["node_coord"], dtype=np.float64)
    demand = np.asarray(data["demand"], dtype=np.int64)
    n = len(coords) if max_customers is None else min(len(coords), max_customers + 1)
    coords, demand = coords[:n], demand[:n]
    euclid = np.sqrt(((coords[:, None, :] - coords[None, :, :]) ** 2).sum(axis=2))
    dimacs = row.distance_convention == "dimacs_trunc_1dec"
    if dimacs:
        scale = 10
        dist = np.floor(10 * euclid).astype(np.int64)
        tw = np.asarray(data["time_window"], dtype=np.int64)[:n] * 10
        raw_service = np.asarray(data["service_time"], dtype=np.int64) * 10
        service = (np.full(n, raw_service) if raw_service.ndim == 0 else raw_service[:n]).copy()
        service[0] = 0
        shift = TimeWindow(int(tw[0, 0]), int(tw[0, 1]))
        count = int(data.get("vehicles", row.fleet_limit))
    else:
        scale = 1
        dist = np.floor(euclid + 0.5).astype(np.int64)
        tw = None
        service = np.zeros(n, dtype=np.int64)
        shift = TimeWindow(0, HORIZON_S)
        k = int(name.rsplit("-k", 1)[1])
        count = k + max(3, math.ceil(k / 5))
    stops = tuple(
        Stop(id=str(i), location_index=i, demand=(int(demand[i]),), service_duration_s=int(service[i]),
             time_windows=(TimeWindow(int(tw[i, 0]), int(tw[i, 1])),) if tw is not None else ())
        for i in range(1, n))
    vehicle = VehicleType(count=count, capacity=(int(data["capacity"]),), shift=shift,
                          cost_per_km=1000.0, id="benchmark")
    problem = build_problem(depots=(Depot("depot", location_index=0),), vehicle_types=(vehicle,), stops=stops,
                            matrix=TravelMatrix.from_arrays(dist, dist), name=name)
    return BenchInstance(problem, row, scale)
