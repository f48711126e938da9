"""The routing problem: depots, vehicle types, stops, facilities and the travel matrices.

Plain, frozen dataclasses validated on construction (PyVRP's ``ProblemData`` is the model).
Bad input raises :class:`wasteml_server.core.errors.InvalidArgumentError` naming the dotted field,
e.g. ``"stops[3].time_windows[0]"``, so the gRPC layer can return it as a field violation.

Locations are indices into the matrices (``Problem.distance_m[i, j]`` is the road distance in
metres from location ``i`` to location ``j``), as in VROOM and OR-Tools: several stops may
share one location (two skips at one market). Matrices are given by the caller (asymmetric
is normal for road networks) or computed from WGS84 coordinates by :func:`haversine_matrices`.

Units: metres, seconds (time of day as seconds since the start of the service day), cost in the
caller's currency; demand and capacity are non-negative integers per load dimension in the
caller's units (kg, litres, skips), identical between stops and vehicle types.
"""

from __future__ import annotations

import contextlib
import enum
import math
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field

import numpy as np

from wasteml_server.core.errors import FieldViolation, InvalidArgumentError

#: Seconds in a day; time windows and shifts must lie within [0, 2 * DAY_S] (night shifts may run
#: past midnight of the service day).
DAY_S = 86_400

#: Mean Earth radius in metres (IUGG mean radius R1 = 6,371,008.8 m; Moritz 2000, "Geodetic
#: Reference System 1980", J. Geodesy 74:128-133).
EARTH_RADIUS_M = 6_371_008.8

#: Road distance / great-circle distance (circuity). Boscoe, Henry & Zdeb (2012), "A nationwide
#: comparison of driving distance versus straight-line distance to hospitals", Prof. Geogr.
#: 64(2):188-196, report a mean of 1.417 in the US; the real Blantyre road matrix in
#: ``data/collection`` gives a median of 1.44 over its 3,080 off-diagonal pairs (road km over
#: haversine km of the sites' coordinates). Override per call.
DEFAULT_DETOUR_FACTOR = 1.4

#: Mean urban speed of a collection truck between stops, km/h. 25 km/h is an assumption in the
#: middle of the 20-30 km/h urban average speeds used for refuse trucks (e.g. the US EPA MOVES
#: "urban unrestricted" drive cycle for refuse trucks averages ~ 24 km/h); override per call.
DEFAULT_SPEED_KMH = 25.0


class SolveStatus(enum.Enum):
    """Outcome of a solve, as in the RouteOptimizer contract."""

    OPTIMAL = "OPTIMAL"
    """The engine proved optimality (OR-Tools after a complete search; rare)."""
    FEASIBLE = "FEASIBLE"
    """A feasible solution was found; not proven optimal."""
    INFEASIBLE = "INFEASIBLE"
    """The engine proved there is no feasible solution."""
    NO_SOLUTION_IN_TIME = "NO_SOLUTION_IN_TIME"
    """No feasible solution was found before the time limit, deadline or cancellation."""


def _fail(path: str, description: str) -> None:
    raise InvalidArgumentError(path, description)


def _check_finite_nonneg(path: str, value: float) -> None:
    if not math.isfinite(value) or value < 0:
        _fail(path, f"must be a finite number >= 0, got {value!r}")


@dataclass(frozen=True)
class TimeWindow:
    """A closed interval ``[start_s, end_s]`` of service start times, seconds from day start.

    Raises:
        InvalidArgumentError: ``start_s``/``end_s`` outside ``[0, 2 * DAY_S]`` or ``start_s > end_s``
            (field paths relative to the window; containers re-raise with their own prefix).
    """

    start_s: int
    end_s: int

    def __post_init__(self) -> None:
        for name in ("start_s", "end_s"):
            value = getattr(self, name)
            if not isinstance(value, (int, np.integer)) or not 0 <= value <= 2 * DAY_S:
                _fail(name, f"must be an integer number of seconds in [0, {2 * DAY_S}]")
        if self.start_s > self.end_s:
            _fail("end_s", f"end {self.end_s} s is before start {self.start_s} s")


@contextlib.contextmanager
def under(prefix: str) -> Iterator[None]:
    """Re-raise InvalidArgumentError from the block with ``prefix.`` before each field path.

    For converters that build nested objects::

        with under(f"stops[{i}]"):
            stop = Stop(...)          # a bad penalty is reported as "stops[3].penalty"
    """
    try:
        yield
    except InvalidArgumentError as err:
        fixed = [FieldViolation(f"{prefix}.{v.field}", v.description) for v in err.violations]
        raise InvalidArgumentError(fixed[0].field, fixed[0].description, *fixed[1:]) from None


@dataclass(frozen=True)
class Location:
    """A place. Coordinates are needed only when the matrices are computed from them.

    Attributes:
        lat_deg: WGS84 latitude in degrees, or None.
        lon_deg: WGS84 longitude in degrees, or None.
        name: free text for reports.
    """

    lat_deg: float | None = None
    lon_deg: float | None = None
    name: str = ""

    def __post_init__(self) -> None:
        if (self.lat_deg is None) != (self.lon_deg is None):
            _fail("lat_deg", "give both latitude and longitude or neither")
        if self.lat_deg is not None:
            if not (math.isfinite(self.lat_deg) and -90 <= self.lat_deg <= 90):
                _fail("lat_deg", "latitude must be in [-90, 90] degrees")
            if not (math.isfinite(self.lon_deg) and -180 <= self.lon_deg <= 180):
                _fail("lon_deg", "longitude must be in [-180, 180] degrees")


@dataclass(frozen=True)
class Depot:
    """Where vehicles start and end their routes. ``location`` indexes the matrices."""

    location: int
    name: str = ""


@dataclass(frozen=True)
class Facility:
    """A reload/dump point where a vehicle empties its load (all dimensions) and continues.

    Visiting a facility starts a new trip (multi-trip routes). A facility may be visited any
    number of times by any vehicle type that lists it in ``VehicleType.facilities``.

    Attributes:
        location: index into the matrices.
        service_duration_s: time to tip/unload, seconds (>= 0).
        time_window: opening hours (start of unloading), seconds from day start; None = always.
        name: free text for reports.
    """

    location: int
    service_duration_s: int = 0
    time_window: TimeWindow | None = None
    name: str = ""

    def __post_init__(self) -> None:
        if not isinstance(self.service_duration_s, (int, np.integer)) or self.service_duration_s < 0:
            _fail("service_duration_s", "must be an integer >= 0 seconds")


@dataclass(frozen=True)
class VehicleType:
    """A group of identical vehicles.

    Attributes:
        count: number of vehicles of this type available (>= 1).
        capacity: capacity per load dimension (non-negative integers, same units as demands).
        shift: the working window, seconds from day start: a route leaves its start depot no
            earlier than ``shift.start_s`` and is back at its end depot by ``shift.end_s``.
        start_depot: index into ``Problem.depots``.
        end_depot: index into ``Problem.depots``.
        fixed_cost: cost of using one vehicle of this type (currency units, >= 0).
        cost_per_km: cost per driven kilometre (currency units, >= 0; resolution 0.01).
        max_route_duration_s: longest route (end minus start, seconds), or None for no limit.
        facilities: indices into ``Problem.facilities`` where this type may empty its load.
        end_empty: the vehicle must reach its end depot empty, i.e. visit a facility after its
            last pickup (waste trucks must tip before parking at the yard).
        name: free text for reports.
    """

    count: int
    capacity: tuple[int, ...]
    shift: TimeWindow
    start_depot: int = 0
    end_depot: int = 0
    fixed_cost: float = 0.0
    cost_per_km: float = 1.0
    max_route_duration_s: int | None = None
    facilities: tuple[int, ...] = ()
    end_empty: bool = False
    name: str = ""

    def __post_init__(self) -> None:
        object.__setattr__(self, "capacity", tuple(int(c) for c in self.capacity))
        object.__setattr__(self, "facilities", tuple(int(f) for f in self.facilities))
        if not isinstance(self.count, (int, np.integer)) or self.count < 1:
            _fail("count", "must be an integer >= 1")
        for d, cap in enumerate(self.capacity):
            if cap < 0:
                _fail(f"capacity[{d}]", "must be >= 0")
        _check_finite_nonneg("fixed_cost", self.fixed_cost)
        _check_finite_nonneg("cost_per_km", self.cost_per_km)
        if self.max_route_duration_s is not None and self.max_route_duration_s <= 0:
            _fail("max_route_duration_s", "must be > 0 seconds or unset")
        if len(set(self.facilities)) != len(self.facilities):
            _fail("facilities", "lists a facility twice")
        if self.end_empty and not self.facilities:
            _fail("end_empty", "a vehicle that must end empty needs at least one facility")


@dataclass(frozen=True)
class Stop:
    """A client to visit: a bin, skip or service request.

    Attributes:
        id: caller's identifier, unique within the problem (non-empty).
        location: index into the matrices.
        demand: load picked up per dimension (non-negative integers).
        service_duration_s: time spent at the stop, seconds (>= 0).
        time_windows: allowed service start intervals, sorted and disjoint; empty = any time.
        required: True: must be visited (else the problem is infeasible). False: optional.
        penalty: cost of leaving an optional stop unvisited (its prize), currency units >= 0.
    """

    id: str
    location: int
    demand: tuple[int, ...] = ()
    service_duration_s: int = 0
    time_windows: tuple[TimeWindow, ...] = ()
    required: bool = True
    penalty: float = 0.0

    def __post_init__(self) -> None:
        object.__setattr__(self, "demand", tuple(int(q) for q in self.demand))
        object.__setattr__(self, "time_windows", tuple(self.time_windows))
        if not self.id:
            _fail("id", "must be a non-empty string")
        for d, q in enumerate(self.demand):
            if q < 0:
                _fail(f"demand[{d}]", "must be >= 0")
        if not isinstance(self.service_duration_s, (int, np.integer)) or self.service_duration_s < 0:
            _fail("service_duration_s", "must be an integer >= 0 seconds")
        for k in range(1, len(self.time_windows)):
            if self.time_windows[k].start_s <= self.time_windows[k - 1].end_s:
                _fail(f"time_windows[{k}]", "time windows must be sorted and disjoint")
        _check_finite_nonneg("penalty", self.penalty)


@dataclass(frozen=True, eq=False)
class Problem:
    """A rich VRP: multi-depot, heterogeneous fleet, time windows, optional stops, multi-trip.

    Attributes:
        locations: the places; ``len(locations)`` is the matrix size L.
        depots: at least one.
        vehicle_types: at least one; all ``capacity`` tuples have the same length (the number
            of load dimensions), equal to every stop's ``demand`` length.
        stops: the clients.
        facilities: dump/reload points (may be empty).
        distance_m: int64 array, shape (L, L), metres, non-negative; row = from, column = to.
        duration_s: int64 array, shape (L, L), seconds, non-negative.

    Use :meth:`from_coordinates` to compute the matrices from the locations' coordinates.
    The arrays are copied and made read-only.

    Raises:
        InvalidArgumentError: any field out of range, with its dotted path.
    """

    locations: tuple[Location, ...]
    depots: tuple[Depot, ...]
    vehicle_types: tuple[VehicleType, ...]
    stops: tuple[Stop, ...]
    distance_m: np.ndarray
    duration_s: np.ndarray
    facilities: tuple[Facility, ...] = ()
    name: str = ""

    def __post_init__(self) -> None:
        for attr in ("locations", "depots", "vehicle_types", "stops", "facilities"):
            object.__setattr__(self, attr, tuple(getattr(self, attr)))
        n_loc = len(self.locations)
        if n_loc == 0:
            _fail("locations", "at least one location is needed")
        for name in ("distance_m", "duration_s"):
            arr = np.asarray(getattr(self, name))
            if arr.shape != (n_loc, n_loc):
                _fail(name, f"shape must be ({n_loc}, {n_loc}) for {n_loc} locations, got {arr.shape}")
            if not np.all(np.isfinite(arr)):
                _fail(name, "must be finite")
            if np.any(arr < 0):
                i, j = np.argwhere(arr < 0)[0]
                _fail(f"{name}[{i}][{j}]", "must be >= 0")
            arr = np.array(np.rint(arr), dtype=np.int64)
            arr.flags.writeable = False
            object.__setattr__(self, name, arr)
        if not self.depots:
            _fail("depots", "at least one depot is needed")
        for i, dep in enumerate(self.depots):
            self._check_loc(f"depots[{i}].location", dep.location)
        for i, fac in enumerate(self.facilities):
            self._check_loc(f"facilities[{i}].location", fac.location)
        if not self.vehicle_types:
            _fail("vehicle_types", "at least one vehicle type is needed")
        n_dim = len(self.vehicle_types[0].capacity)
        for i, vt in enumerate(self.vehicle_types):
            p = f"vehicle_types[{i}]"
            if len(vt.capacity) != n_dim:
                _fail(f"{p}.capacity", f"has {len(vt.capacity)} dimensions, vehicle_types[0] has {n_dim}")
            for name in ("start_depot", "end_depot"):
                if not 0 <= getattr(vt, name) < len(self.depots):
                    _fail(f"{p}.{name}", f"must index depots (0..{len(self.depots) - 1})")
            for k, f in enumerate(vt.facilities):
                if not 0 <= f < len(self.facilities):
                    _fail(f"{p}.facilities[{k}]", f"must index facilities (0..{len(self.facilities) - 1})")
        ids: dict[str, int] = {}
        for i, stop in enumerate(self.stops):
            p = f"stops[{i}]"
            if stop.id in ids:
                _fail(f"{p}.id", f"duplicate id {stop.id!r} (also stops[{ids[stop.id]}])")
            ids[stop.id] = i
            self._check_loc(f"{p}.location", stop.location)
            if len(stop.demand) != n_dim:
                _fail(f"{p}.demand", f"has {len(stop.demand)} dimensions, vehicle capacities have {n_dim}")

    def _check_loc(self, path: str, loc: int) -> None:
        if not isinstance(loc, (int, np.integer)) or not 0 <= loc < len(self.locations):
            _fail(path, f"must index locations (0..{len(self.locations) - 1})")

    @property
    def num_dimensions(self) -> int:
        """Number of load dimensions (length of every capacity and demand tuple)."""
        return len(self.vehicle_types[0].capacity)

    @property
    def num_vehicles(self) -> int:
        """Total fleet size, summed over vehicle types."""
        return sum(vt.count for vt in self.vehicle_types)

    @classmethod
    def from_coordinates(
        cls,
        locations: Sequence[Location],
        depots: Sequence[Depot],
        vehicle_types: Sequence[VehicleType],
        stops: Sequence[Stop],
        facilities: Sequence[Facility] = (),
        *,
        detour_factor: float = DEFAULT_DETOUR_FACTOR,
        speed_kmh: float = DEFAULT_SPEED_KMH,
        name: str = "",
    ) -> Problem:
        """Build a problem whose matrices come from :func:`haversine_matrices`.

        Raises:
            InvalidArgumentError: a location without coordinates (``locations[i]``), or any
                invalid field as in the constructor.
        """
        for i, loc in enumerate(locations):
            if loc.lat_deg is None:
                _fail(f"locations[{i}]", "coordinates are needed when no matrix is given")
        lat = np.array([loc.lat_deg for loc in locations], dtype=np.float64)
        lon = np.array([loc.lon_deg for loc in locations], dtype=np.float64)
        dist, dur = haversine_matrices(lat, lon, detour_factor=detour_factor, speed_kmh=speed_kmh)
        return cls(tuple(locations), tuple(depots), tuple(vehicle_types), tuple(stops),
                   dist, dur, tuple(facilities), name)


def haversine_matrices(
    lat_deg: np.ndarray,
    lon_deg: np.ndarray,
    *,
    detour_factor: float = DEFAULT_DETOUR_FACTOR,
    speed_kmh: float = DEFAULT_SPEED_KMH,
) -> tuple[np.ndarray, np.ndarray]:
    """Road distance and travel time estimated from coordinates.

    ``distance = detour_factor * haversine(i, j)`` (great-circle distance on a sphere of radius
    :data:`EARTH_RADIUS_M`), ``duration = distance / speed``; both rounded to integers.

    Args:
        lat_deg: float array, shape (L,), WGS84 latitude in degrees.
        lon_deg: float array, shape (L,), WGS84 longitude in degrees.
        detour_factor: road/great-circle ratio (>= 1), default :data:`DEFAULT_DETOUR_FACTOR`.
        speed_kmh: mean speed (> 0), default :data:`DEFAULT_SPEED_KMH`.

    Returns:
        ``(distance_m, duration_s)``: int64 arrays, shape (L, L), symmetric, zero diagonal.

    Raises:
        InvalidArgumentError: ``detour_factor`` < 1 or ``speed_kmh`` <= 0.
    """
    if not detour_factor >= 1.0:
        _fail("detour_factor", "must be >= 1")
    if not speed_kmh > 0:
        _fail("speed_kmh", "must be > 0 km/h")
    lat = np.radians(np.asarray(lat_deg, dtype=np.float64))
    lon = np.radians(np.asarray(lon_deg, dtype=np.float64))
    dlat = lat[:, None] - lat[None, :]
    dlon = lon[:, None] - lon[None, :]
    a = np.sin(dlat / 2) ** 2 + np.cos(lat[:, None]) * np.cos(lat[None, :]) * np.sin(dlon / 2) ** 2
    great_circle_m = 2 * EARTH_RADIUS_M * np.arcsin(np.sqrt(np.clip(a, 0.0, 1.0)))
    dist = detour_factor * great_circle_m
    dur = dist / (speed_kmh / 3.6)
    return np.rint(dist).astype(np.int64), np.rint(dur).astype(np.int64)


# --- solutions ---------------------------------------------------------------------------------


class VisitKind(enum.Enum):
    """What a route visits."""

    STOP = "STOP"
    FACILITY = "FACILITY"


@dataclass(frozen=True)
class Visit:
    """One visit on a route.

    Attributes:
        kind: a stop or a facility (dump/reload).
        index: index into ``Problem.stops`` or ``Problem.facilities``.
        arrival_s: arrival time, seconds from day start.
        start_s: service start (after any wait for the time window), seconds.
        departure_s: ``start_s`` + service duration, seconds.
        load_after: load on board per dimension after the visit (0 after a facility).
    """

    kind: VisitKind
    index: int
    arrival_s: int
    start_s: int
    departure_s: int
    load_after: tuple[int, ...]


@dataclass(frozen=True)
class Route:
    """The ordered visits of one vehicle, from its start depot back to its end depot.

    Attributes:
        vehicle_type: index into ``Problem.vehicle_types``.
        vehicle: vehicle number within its type (0..count-1).
        visits: ordered visits, without the depots.
        start_s: departure from the start depot, seconds from day start.
        end_s: arrival at the end depot, seconds.
        distance_m: driven distance, metres.
        duration_s: ``end_s - start_s``, seconds.
        cost: ``fixed_cost + cost_per_km * distance_m / 1000``, currency units.
    """

    vehicle_type: int
    vehicle: int
    visits: tuple[Visit, ...]
    start_s: int
    end_s: int
    distance_m: int
    duration_s: int
    cost: float

    @property
    def stop_indices(self) -> tuple[int, ...]:
        """Indices of the stops visited, in order (facility visits left out)."""
        return tuple(v.index for v in self.visits if v.kind is VisitKind.STOP)


@dataclass(frozen=True)
class Unassigned:
    """A stop left out of every route, and why."""

    stop: int
    stop_id: str
    reason: str


@dataclass(frozen=True)
class ObjectiveParts:
    """The objective and its parts, currency units: ``total = distance + fixed + penalties``.

    Attributes:
        distance_cost: sum of ``cost_per_km * km`` over routes.
        fixed_cost: sum of vehicle fixed costs over used vehicles.
        penalty: sum of penalties of unvisited optional stops.
        distance_m: total driven distance, metres.
        vehicles: number of routes (used vehicles).
    """

    distance_cost: float
    fixed_cost: float
    penalty: float
    distance_m: int
    vehicles: int

    @property
    def total(self) -> float:
        """The minimised objective, currency units."""
        return self.distance_cost + self.fixed_cost + self.penalty


@dataclass(frozen=True)
class Solution:
    """An engine's answer.

    Attributes:
        status: see :class:`SolveStatus`; routes are empty unless FEASIBLE or OPTIMAL.
        engine: ``"ortools"`` or ``"pyvrp"`` (the engine that produced the routes).
        routes: used vehicles only.
        unassigned: stops in no route, with reasons.
        objective: parts of the objective (zeros when there is no solution).
        elapsed_s: wall time of the solve, seconds.
        first_feasible_s: seconds until the first feasible solution, or None.
        message: engine notes, e.g. why no solution was found.
    """

    status: SolveStatus
    engine: str
    routes: tuple[Route, ...] = ()
    unassigned: tuple[Unassigned, ...] = ()
    objective: ObjectiveParts = field(default_factory=lambda: ObjectiveParts(0.0, 0.0, 0.0, 0, 0))
    elapsed_s: float = 0.0
    first_feasible_s: float | None = None
    message: str = ""

    @property
    def feasible(self) -> bool:
        """True when the solution has routes satisfying every constraint."""
        return self.status in (SolveStatus.FEASIBLE, SolveStatus.OPTIMAL)
