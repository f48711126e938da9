"""Routing requests shared by tests and benchmarks (importable as ``routing_requests``; pytest and
the benchmarks put tests/ on the path)."""

from __future__ import annotations

import numpy as np

from wasteml.v1 import common_pb2, routing_pb2

#: The real Blantyre yard (``../shared/data`` Blantyre skips), the depot of the problems below.
BLANTYRE_YARD = (-15.7861, 35.0058)


def coordinate_problem(stops: int, count: int = 1, seed: int = 7) -> routing_pb2.Problem:
    """One depot at the Blantyre yard, one vehicle type of ``count`` trucks (capacity 10,000)
    and ``stops`` stops of demand 1 by coordinates within ~5 km of it (no matrix)."""
    rng = np.random.default_rng(seed)
    p = routing_pb2.Problem(name="coords")
    p.depots.add(id="yard", location=common_pb2.GeoPoint(latitude_deg=BLANTYRE_YARD[0],
                                                          longitude_deg=BLANTYRE_YARD[1]))
    p.vehicle_types.add(id="truck", count=count, capacity=[10_000])
    lat = -15.79 + rng.uniform(-0.05, 0.05, stops)
    lon = 35.01 + rng.uniform(-0.05, 0.05, stops)
    for i in range(stops):
        p.stops.add(id=f"s{i}", demand=[1], location=common_pb2.GeoPoint(latitude_deg=lat[i], longitude_deg=lon[i]))
    return p


def matrix_problem(n: int = 4, distance: float = 100.0, duration: float | None = None) -> routing_pb2.Problem:
    """A depot and ``n - 1`` stops on an ``n``-row matrix whose off-diagonal entries are
    ``distance`` metres (and ``duration`` seconds, when given; else durations are left out)."""
    p = routing_pb2.Problem(name="matrix")
    p.depots.add(id="d", location_index=0)
    p.vehicle_types.add(id="t", count=1, capacity=[100])
    for i in range(1, n):
        p.stops.add(id=f"s{i}", location_index=i, demand=[1])
    p.matrix.size = n
    off = ~np.eye(n, dtype=bool).ravel()
    p.matrix.distances_m.extend(np.where(off, distance, 0.0).tolist())
    if duration is not None:
        p.matrix.durations_s.extend(np.where(off, duration, 0.0).tolist())
    return p
