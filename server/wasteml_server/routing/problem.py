"""The routing problem: depots, vehicle types, stops, facilities and the travel matrices.

The types carry the field names of ``wasteml.v1`` (``routing.proto``): a ``Stop`` has
``location_index``, ``optional_visit`` and ``skip_penalty``; a ``VehicleType`` has
``start_depot_index`` and ``reload_facility_indices``. A value object validates its own fields
by those names and the container that builds it adds its path (:func:`~wasteml_server.core.
errors.under`), so an error names the request field without any renaming.

Plain, frozen dataclasses validated on construction (PyVRP's ``ProblemData`` is the model). Use
:func:`wasteml_server.routing.builder.build_problem` to make a :class:`Problem` from sites that
give coordinates or matrix indices; the builder resolves the location model and the defaults,
so a ``Problem`` is always fully resolved: every site has its ``location_index``, every vehicle
type its ``shift``, ``end_depot_index`` and ``reload_facility_indices``.

Locations are indices into the matrices (``Problem.distance_m[i, j]`` is the road distance in
metres from location ``i`` to location ``j``), as in VROOM and OR-Tools: several stops may
share one location (two skips at one market).

Units: metres, seconds (time of day as whole seconds since the problem's time origin), cost in
the caller's cost unit; demand and capacity are non-negative integers per load dimension in
the caller's units (kg, litres, skips), identical between stops and vehicle types.
"""

from __future__ import annotations

import enum
import math
from dataclasses import InitVar, dataclass

import numpy as np

from wasteml_server.core.errors import InvalidArgumentError, shown
from wasteml_server.core.geo import GeoPoint
from wasteml_server.core.units import DAY_S

#: Latest time of day a window or shift may reach, seconds: two days (night shifts may run past
#: midnight of the service day).
HORIZON_S = 2 * DAY_S

# --- numeric ranges: what the engines' integer arithmetic holds ---------------------------------
#
# Both engines compute in signed 64-bit integers (OR-Tools: int64 arc costs, transits and
# cumuls; PyVRP 0.14: ``Distance``, ``Duration``, ``Cost`` and ``Load`` are ``Measure<int64_t>``,
# and its penalties are doubles cast back to ``Cost``). Costs enter both as integers of
# ``1 / COST_SCALE`` currency: an arc costs ``distance_m * round(cost_per_km * COST_SCALE /
# 1000)``, a vehicle ``round(fixed_cost * COST_SCALE)``, a skipped stop ``round(skip_penalty *
# COST_SCALE)``. Nothing of it saturates, so a value past the range wraps silently (a distance
# of 1e19 became -9.2e18 m, "OPTIMAL" with a negative objective). The problem model therefore
# bounds every value, and every total an engine may form, by the ranges below; a problem that
# passes cannot overflow either engine:
#
# * each value: distances and durations <= 1e9 (m, s), costs <= 1e12 currency units (1e17
#   engine units), demands and capacities <= 1e15, windows within [0, HORIZON_S];
# * totals: a solution has at most ``legs = depots + vehicles + stops * (1 + facilities) +
#   facilities`` arcs (every stop once, a facility visit at most after each stop; OR-Tools has
#   at most that many nodes); then ``legs * 2 * max distance * max per-metre cost + sum of
#   fixed costs + sum of penalties (x windows, PyVRP counts one client per window)``,
#   ``legs * (2 * max duration + max service)`` and every dimension's total demand must stay
#   within ENGINE_INT_MAX = 2^62 (half the int64 range, so that the sum of two such totals, e.g.
#   a cost and a penalty of PyVRP's penalised cost, still fits). The factor 2 covers the PyVRP
#   model's virtual end depots (leg to a facility plus leg to the depot).

#: Engine integer cost units per currency unit (both engines; resolution 1e-5).
COST_SCALE = 100_000
#: Largest total an engine may form, in its integer units (module comment): 2^62.
ENGINE_INT_MAX = 2**62
#: Largest distance of one matrix entry, metres (a million km: no road leg is longer; a
#: forbidden arc is any duration beyond HORIZON_S).
MAX_DISTANCE_M = 10**9
#: Largest duration of one matrix entry, service time or maximum route duration, seconds.
MAX_DURATION_S = 10**9
#: Largest cost value (``fixed_cost``, ``cost_per_km``, ``skip_penalty``), currency units.
MAX_COST = 1e12
#: Largest demand or capacity of one load dimension, the caller's units.
MAX_LOAD = 10**15

_NOT_SUPPORTED = "is not supported by this server's routing model; leave it unset"


def _fail(path: str, description: str) -> None:
    raise InvalidArgumentError(path, description)


def _check_finite_nonneg(path: str, value: float, most: float | None = None) -> None:
    if not math.isfinite(value) or value < 0:
        _fail(path, f"must be a finite number >= 0, got {value!r}")
    if most is not None and value > most:
        _fail(path, f"must be at most {most:g} (the engines' 64-bit integer range), got {value:g}")


def _check_count(path: str, value: object, most: int, what: str) -> None:
    """A whole number in ``[0, most]`` (seconds, load units)."""
    if not _is_int(value) or not 0 <= value <= most:  # type: ignore[operator]
        _fail(path, f"must be a whole number of {what} in [0, {most:g}] (the engines' 64-bit integer "
              f"range), got {shown(value)}")


def _is_int(value: object) -> bool:
    return isinstance(value, int | np.integer) and not isinstance(value, bool)


@dataclass(frozen=True)
class TimeWindow:
    """A closed interval ``[start_s, end_s]`` of service start times (``wasteml.v1.TimeWindow``),
    whole seconds since the time origin.

    Raises:
        InvalidArgumentError: ``start_s``/``end_s`` outside ``[0, 2 * DAY_S]`` or ``start_s > end_s``.
    """

    start_s: int
    end_s: int

    def __post_init__(self) -> None:
        for name in ("start_s", "end_s"):
            value = getattr(self, name)
            if not _is_int(value) or not 0 <= value <= HORIZON_S:
                _fail(name, f"must be a whole number of seconds in [0, {HORIZON_S}]")
        if self.start_s > self.end_s:
            _fail("end_s", f"end {self.end_s} s is before start {self.start_s} s")


@dataclass(frozen=True)
class CapacityDimension:
    """One load dimension shared by capacities and demands (``wasteml.v1.CapacityDimension``)."""

    name: str = ""
    unit: str = ""


@dataclass(frozen=True)
class Depot:
    """Where vehicle routes start and end (``wasteml.v1.Depot``).

    Attributes:
        id: caller's id, echoed in visits.
        location: coordinates, or None.
        location_index: row/column in the matrices (set in a built problem).
        time_window: opening hours; None = always open.
    """

    id: str = ""
    location: GeoPoint | None = None
    location_index: int | None = None
    time_window: TimeWindow | None = None


class FacilityKind(enum.Enum):
    """Kind of facility (``wasteml.v1.FacilityKind``); every kind empties the vehicle."""

    DUMP = "DUMP"
    TRANSFER_STATION = "TRANSFER_STATION"
    PROCESSING_SITE = "PROCESSING_SITE"


@dataclass(frozen=True)
class Facility:
    """A reload/dump point where a vehicle empties its load (all dimensions) and continues
    (``wasteml.v1.Facility``).

    Visiting a facility starts a new trip (multi-trip routes). A facility may be visited any
    number of times by any vehicle type that lists it in ``reload_facility_indices``.

    Attributes:
        id: caller's id.
        location, location_index: as for :class:`Depot`.
        kind: dump, transfer station or processing site.
        service_duration_s: time to tip/unload, whole seconds (>= 0).
        time_windows: opening hours (start of unloading); empty = always open. At most one
            window is supported.

    Raises:
        InvalidArgumentError: a negative tip time, or more than one opening window.
    """

    id: str = ""
    location: GeoPoint | None = None
    location_index: int | None = None
    kind: FacilityKind = FacilityKind.DUMP
    service_duration_s: int = 0
    time_windows: tuple[TimeWindow, ...] = ()

    def __post_init__(self) -> None:
        object.__setattr__(self, "time_windows", tuple(self.time_windows))
        _check_count("service_duration_s", self.service_duration_s, MAX_DURATION_S, "seconds")
        if len(self.time_windows) > 1:
            _fail("time_windows", f"more than one opening window per facility {_NOT_SUPPORTED}")

    @property
    def time_window(self) -> TimeWindow | None:
        """The opening window, or None when always open."""
        return self.time_windows[0] if self.time_windows else None


@dataclass(frozen=True)
class VehicleType:
    """A group of identical vehicles (``wasteml.v1.VehicleType``).

    Attributes:
        id: caller's id; vehicles are named ``"<id>-<n>"`` in routes.
        count: number of vehicles of this type available (>= 1).
        capacity: capacity per load dimension (integers in ``[0, MAX_LOAD]``, same units as
            demands).
        shift: the working window: a route leaves its start depot no earlier than
            ``shift.start_s`` and is back at its end depot by ``shift.end_s``; None = no limit
            (the builder makes it ``[0, 2 * DAY_S]`` narrowed by the depots' opening hours).
        start_depot_index: index into ``Problem.depots``.
        end_depot_index: index into ``Problem.depots``; None = the start depot.
        fixed_cost: cost of using one vehicle of this type (cost units, ``[0, MAX_COST]``).
        cost_per_km: cost per driven kilometre (cost units, ``[0, MAX_COST]``; resolution 0.01).
        cost_per_hour: cost per hour on route; only 0 is supported.
        max_route_duration_s: longest route (end minus start, whole seconds in
            ``(0, MAX_DURATION_S]``), or None.
        max_route_distance_m: longest route distance; only None is supported.
        reload_facility_indices: indices into ``Problem.facilities`` where this type may empty
            its load; empty = all of them (resolved by the builder).
        max_reloads: most facility visits per route; only None is supported.
        end_empty: the vehicle must reach its end depot empty, i.e. visit a facility after its
            last pickup (waste trucks must tip before parking at the yard).
    """

    count: int
    capacity: tuple[int, ...]
    shift: TimeWindow | None = None
    start_depot_index: int = 0
    end_depot_index: int | None = None
    fixed_cost: float = 0.0
    cost_per_km: float = 1.0
    cost_per_hour: float = 0.0
    max_route_duration_s: int | None = None
    max_route_distance_m: float | None = None
    reload_facility_indices: tuple[int, ...] = ()
    max_reloads: int | None = None
    end_empty: bool = False
    id: str = ""

    def __post_init__(self) -> None:
        object.__setattr__(self, "capacity", tuple(int(c) for c in self.capacity))
        object.__setattr__(self, "reload_facility_indices", tuple(int(f) for f in self.reload_facility_indices))
        if not _is_int(self.count) or self.count < 1:
            _fail("count", "must be an integer >= 1")
        for d, cap in enumerate(self.capacity):
            _check_count(f"capacity[{d}]", cap, MAX_LOAD, "load units")
        _check_finite_nonneg("fixed_cost", self.fixed_cost, MAX_COST)
        _check_finite_nonneg("cost_per_km", self.cost_per_km, MAX_COST)
        if self.cost_per_hour != 0:
            _fail("cost_per_hour", f"a cost per hour {_NOT_SUPPORTED}")
        if self.max_route_distance_m is not None:
            _fail("max_route_distance_m", f"a maximum route distance {_NOT_SUPPORTED}")
        if self.max_reloads is not None:
            _fail("max_reloads", f"a maximum number of reloads {_NOT_SUPPORTED}")
        if self.max_route_duration_s is not None and not (
                _is_int(self.max_route_duration_s) and 0 < self.max_route_duration_s <= MAX_DURATION_S):
            _fail("max_route_duration_s", f"must be > 0 seconds and at most {MAX_DURATION_S:g} (the engines' "
                  f"64-bit integer range), or unset; got {shown(self.max_route_duration_s)}")
        if len(set(self.reload_facility_indices)) != len(self.reload_facility_indices):
            _fail("reload_facility_indices", "lists a facility twice")

    @property
    def end_depot(self) -> int:
        """Index of the end depot (the start depot when ``end_depot_index`` is unset)."""
        return self.start_depot_index if self.end_depot_index is None else self.end_depot_index

    @property
    def window(self) -> TimeWindow:
        """The resolved shift of a built problem.

        Raises:
            ValueError: the shift is unset (the vehicle type was not built by ``build_problem``).
        """
        if self.shift is None:
            raise ValueError("vehicle type has no shift; build problems with build_problem")
        return self.shift


@dataclass(frozen=True)
class Stop:
    """A client to visit: a bin, skip or service request (``wasteml.v1.Stop``).

    Attributes:
        id: caller's identifier, unique within the problem (non-empty).
        location, location_index: as for :class:`Depot`.
        demand: load picked up per dimension (integers in ``[0, MAX_LOAD]``).
        service_duration_s: time spent at the stop, whole seconds (``[0, MAX_DURATION_S]``).
        time_windows: allowed service start intervals, sorted and disjoint; empty = any time.
        optional_visit: True: may be left unvisited at ``skip_penalty``. False: required.
        skip_penalty: cost of leaving an optional stop unvisited (its prize), cost units in
            ``[0, MAX_COST]``; ignored for required stops.
        allowed_vehicle_type_indices: restricting a stop to vehicle types; only empty (all
            types) is supported.
    """

    id: str
    location: GeoPoint | None = None
    location_index: int | None = None
    demand: tuple[int, ...] = ()
    service_duration_s: int = 0
    time_windows: tuple[TimeWindow, ...] = ()
    optional_visit: bool = False
    skip_penalty: float = 0.0
    allowed_vehicle_type_indices: tuple[int, ...] = ()

    def __post_init__(self) -> None:
        object.__setattr__(self, "demand", tuple(int(q) for q in self.demand))
        object.__setattr__(self, "time_windows", tuple(self.time_windows))
        if not self.id:
            _fail("id", "must be a non-empty string")
        for d, q in enumerate(self.demand):
            _check_count(f"demand[{d}]", q, MAX_LOAD, "load units")
        _check_count("service_duration_s", self.service_duration_s, MAX_DURATION_S, "seconds")
        for k in range(1, len(self.time_windows)):
            if self.time_windows[k].start_s <= self.time_windows[k - 1].end_s:
                _fail(f"time_windows[{k}]", "time windows must be sorted and disjoint")
        if self.optional_visit:
            _check_finite_nonneg("skip_penalty", self.skip_penalty, MAX_COST)
        if self.allowed_vehicle_type_indices:
            _fail("allowed_vehicle_type_indices", f"restricting a stop to vehicle types {_NOT_SUPPORTED}")

    @property
    def required(self) -> bool:
        """True when the stop must be visited."""
        return not self.optional_visit

    @property
    def penalty(self) -> float:
        """Cost of leaving the stop unvisited: ``skip_penalty`` when optional, else 0."""
        return self.skip_penalty if self.optional_visit else 0.0


@dataclass(frozen=True)
class ProblemFields:
    """Where a problem's parts sit in a request, for field paths.

    ``RouteOptimizer`` requests carry them under their routing names (the defaults);
    ``PlanDayRequest`` calls its vehicle types ``fleet`` and its stops ``bins``.
    """

    depots: str = "depots"
    vehicle_types: str = "vehicle_types"
    stops: str = "stops"
    facilities: str = "facilities"
    matrix: str = "matrix"
    speed_model: str = "speed_model"
    dimensions: str = "dimensions"


ROUTING_FIELDS = ProblemFields()


@dataclass(frozen=True, eq=False)
class Problem:
    """A rich VRP: multi-depot, heterogeneous fleet, time windows, optional stops, multi-trip.

    Attributes:
        depots: at least one.
        vehicle_types: at least one; all ``capacity`` tuples have the same length (the number
            of load dimensions), equal to every stop's ``demand`` length.
        stops: the clients.
        facilities: dump/reload points (may be empty).
        distance_m: int64 array, shape (L, L), metres in ``[0, MAX_DISTANCE_M]``; row = from,
            column = to.
        duration_s: int64 array, shape (L, L), seconds in ``[0, MAX_DURATION_S]``.
        locations: coordinates of each matrix row, or None where unknown; ``len(locations)``
            is L.
        dimensions: names and units of the load dimensions (may be empty).
        name: e.g. a benchmark instance "R101".
        fields: where the parts sit in the request (field paths of errors).

    The arrays are rounded to integers, copied and made read-only (a read-only int64 array
    that owns its data, as the builder makes them, is taken without a copy).

    Raises:
        InvalidArgumentError: any field out of range, or totals beyond the engines' 64-bit
            arithmetic (:func:`check_engine_range`), named by its request path.
    """

    depots: tuple[Depot, ...]
    vehicle_types: tuple[VehicleType, ...]
    stops: tuple[Stop, ...]
    distance_m: np.ndarray
    duration_s: np.ndarray
    facilities: tuple[Facility, ...] = ()
    locations: tuple[GeoPoint | None, ...] = ()
    dimensions: tuple[CapacityDimension, ...] = ()
    name: str = ""
    fields: InitVar[ProblemFields] = ROUTING_FIELDS

    def __post_init__(self, fields: ProblemFields) -> None:
        f = fields
        for attr in ("depots", "vehicle_types", "stops", "facilities", "locations", "dimensions"):
            object.__setattr__(self, attr, tuple(getattr(self, attr)))
        for name, most in (("distance_m", MAX_DISTANCE_M), ("duration_s", MAX_DURATION_S)):
            object.__setattr__(self, name, _matrix(getattr(self, name), name, most, f.matrix))
        n_loc = self.distance_m.shape[0]
        if self.duration_s.shape != (n_loc, n_loc):
            _fail(f.matrix, "distance and duration matrices differ in size")
        if not self.locations:
            object.__setattr__(self, "locations", (None,) * n_loc)
        elif len(self.locations) != n_loc:
            _fail(f.matrix, f"{len(self.locations)} locations for a matrix of size {n_loc}")
        if not self.depots:
            _fail(f.depots, "at least one depot is needed")
        for i, dep in enumerate(self.depots):
            self._check_loc(f"{f.depots}[{i}].location_index", dep.location_index)
        for i, fac in enumerate(self.facilities):
            self._check_loc(f"{f.facilities}[{i}].location_index", fac.location_index)
        if not self.vehicle_types:
            _fail(f.vehicle_types, "at least one vehicle type is needed")
        n_dim = len(self.dimensions) if self.dimensions else len(self.vehicle_types[0].capacity)
        ref = f.dimensions if self.dimensions else f"{f.vehicle_types}[0].capacity"
        for i, vt in enumerate(self.vehicle_types):
            p = f"{f.vehicle_types}[{i}]"
            if len(vt.capacity) != n_dim:
                _fail(f"{p}.capacity", f"has {len(vt.capacity)} entries, {ref} has {n_dim}")
            if vt.shift is None:
                _fail(f"{p}.shift", "must be resolved (build problems with build_problem)")
            for name in ("start_depot_index", "end_depot_index"):
                index = getattr(vt, name)
                if index is not None and not 0 <= index < len(self.depots):
                    _fail(f"{p}.{name}", f"must index {f.depots} (0..{len(self.depots) - 1}), got {index}")
            for k, reload in enumerate(vt.reload_facility_indices):
                if not 0 <= reload < len(self.facilities):
                    _fail(f"{p}.reload_facility_indices[{k}]",
                          f"must index {f.facilities} (0..{len(self.facilities) - 1}), got {reload}")
            if vt.end_empty and not vt.reload_facility_indices:
                _fail(f"{p}.end_empty", "a vehicle that must end empty needs at least one facility")
        ids: dict[str, int] = {}
        for i, stop in enumerate(self.stops):
            p = f"{f.stops}[{i}]"
            if stop.id in ids:
                _fail(f"{p}.id", f"duplicate id {shown(stop.id)} (also {f.stops}[{ids[stop.id]}])")
            ids[stop.id] = i
            self._check_loc(f"{p}.location_index", stop.location_index)
            if len(stop.demand) != n_dim:
                _fail(f"{p}.demand", f"has {len(stop.demand)} entries, {ref} has {n_dim}")
        check_engine_range(self, f)

    def _check_loc(self, path: str, loc: int | None) -> None:
        n = len(self.locations)
        if loc is None or not _is_int(loc) or not 0 <= loc < n:
            _fail(path, f"must index the matrix rows (0..{n - 1}), got {loc}")

    @property
    def num_dimensions(self) -> int:
        """Number of load dimensions (length of every capacity and demand tuple)."""
        return len(self.vehicle_types[0].capacity)

    @property
    def num_vehicles(self) -> int:
        """Total fleet size, summed over vehicle types."""
        return sum(vt.count for vt in self.vehicle_types)

    def stop_location(self, stop: int) -> int:
        """Matrix index of ``stops[stop]``."""
        loc = self.stops[stop].location_index
        assert loc is not None
        return loc

    def facility_location(self, facility: int) -> int:
        """Matrix index of ``facilities[facility]``."""
        loc = self.facilities[facility].location_index
        assert loc is not None
        return loc

    def depot_location(self, depot: int) -> int:
        """Matrix index of ``depots[depot]``."""
        loc = self.depots[depot].location_index
        assert loc is not None
        return loc


def _matrix(value: np.ndarray, name: str, most: int, field: str) -> np.ndarray:
    """``value`` as a read-only int64 (L, L) array with entries in ``[0, most]`` (rounded).

    An int64 array that owns its data and is read-only already (the builder's) is taken as it
    is; anything else is copied once.
    """
    arr = np.asarray(value)
    if arr.ndim != 2 or arr.shape[0] != arr.shape[1] or arr.shape[0] == 0:
        _fail(field, f"{name} must be a non-empty square matrix, got shape {arr.shape}")
    if arr.dtype.kind in "iu":
        if arr.min() < 0 or arr.max() > most:
            _fail(field, f"{name} must hold values in [0, {most:g}] (the engines' 64-bit integer range)")
        if arr.dtype == np.int64 and arr.flags.owndata and arr.flags.c_contiguous and not arr.flags.writeable:
            return arr
        out = arr.astype(np.int64)
    else:
        arr = arr.astype(np.float64, copy=False)
        if not np.all(np.isfinite(arr)):
            _fail(field, f"{name} must hold finite values >= 0")
        if arr.min() < 0 or arr.max() > most:
            _fail(field, f"{name} must hold values in [0, {most:g}] (the engines' 64-bit integer range)")
        out = np.empty(arr.shape, dtype=np.int64)
        np.rint(arr, out=out, casting="unsafe")
    out.flags.writeable = False
    return out


def per_metre_cost_units(cost_per_km: float) -> int:
    """Engine cost units per metre of a ``cost_per_km`` (resolution 0.01 currency per km)."""
    return round(cost_per_km * COST_SCALE / 1000)


def cost_units(cost: float) -> int:
    """Engine cost units of a cost in currency units (fixed costs, penalties)."""
    return round(cost * COST_SCALE)


def max_legs(problem: Problem) -> int:
    """Most arcs a solution of ``problem`` can have in either engine (module comment)."""
    n_stops, n_fac = len(problem.stops), len(problem.facilities)
    return len(problem.depots) + problem.num_vehicles + n_stops * (1 + n_fac) + n_fac


@dataclass(frozen=True)
class CostTotals:
    """The largest engine cost totals of a problem, engine integer units (module comment).

    Attributes:
        legs: :func:`max_legs`.
        distance: ``legs * 2 * longest leg * largest per-metre cost``.
        fixed: fixed costs of every vehicle.
        penalty: skip penalties of every stop, each times its number of windows (at least 1).
        penalty_weight: the sum of those window counts (how many penalties a uniform bound pays).
    """

    legs: int
    distance: int
    fixed: int
    penalty: int
    penalty_weight: int

    @property
    def total(self) -> int:
        """``distance + fixed + penalty``."""
        return self.distance + self.fixed + self.penalty


def cost_totals(problem: Problem) -> CostTotals:
    """The engine cost totals of ``problem`` (Python integers: they do not wrap)."""
    legs = max_legs(problem)
    longest = 2 * int(problem.distance_m.max())
    per_m = max(per_metre_cost_units(vt.cost_per_km) for vt in problem.vehicle_types)
    fixed = sum(vt.count * cost_units(vt.fixed_cost) for vt in problem.vehicle_types)
    weights = [max(1, len(s.time_windows)) for s in problem.stops]
    penalty = sum(cost_units(s.penalty) * w for s, w in zip(problem.stops, weights, strict=True))
    return CostTotals(legs, legs * longest * per_m, fixed, penalty, sum(weights))


def penalty_headroom(problem: Problem) -> float:
    """The largest ``skip_penalty`` (cost units) that every stop of ``problem`` may have with
    its engine cost total still in range (at most :data:`MAX_COST`); for callers that price
    stops after building the problem (the planner)."""
    totals = cost_totals(problem)
    room = ENGINE_INT_MAX - totals.distance - totals.fixed
    if room <= 0:
        return 0.0
    return min(MAX_COST, room / COST_SCALE / max(1, totals.penalty_weight))


def check_engine_range(problem: Problem, fields: ProblemFields = ROUTING_FIELDS) -> None:
    """Refuse a problem whose totals could overflow an engine's 64-bit arithmetic (module
    comment); the values one by one are checked by the types.

    Raises:
        InvalidArgumentError: naming the field that drives the overflowing total: a vehicle
            type's ``cost_per_km`` or ``fixed_cost``, a stop's ``skip_penalty`` or ``demand[d]``,
            or the matrix (durations).
    """
    f = fields
    totals = cost_totals(problem)
    if totals.total > ENGINE_INT_MAX:
        vts = problem.vehicle_types
        term, _ = max((totals.distance, 0), (totals.fixed, 1), (totals.penalty, 2))
        if term == totals.distance:
            t = max(range(len(vts)), key=lambda i: vts[i].cost_per_km)
            path = f"{f.vehicle_types}[{t}].cost_per_km"
        elif term == totals.fixed:
            t = max(range(len(vts)), key=lambda i: vts[i].count * vts[i].fixed_cost)
            path = f"{f.vehicle_types}[{t}].fixed_cost"
        else:
            i = max(range(len(problem.stops)), key=lambda k: problem.stops[k].penalty)
            path = f"{f.stops}[{i}].skip_penalty"
        _fail(path, f"the engines count cost in 64-bit integers of 1/{COST_SCALE} cost unit: {totals.legs} "
              f"legs of up to {int(problem.distance_m.max())} m, the fixed costs and the skip penalties could "
              f"total {totals.total:.3g} units, above {ENGINE_INT_MAX:.3g}; lower the costs or the distances")
    longest_s = 2 * int(problem.duration_s.max())
    service = max([s.service_duration_s for s in problem.stops]
                  + [x.service_duration_s for x in problem.facilities] + [0])
    if totals.legs * (longest_s + service) + HORIZON_S > ENGINE_INT_MAX:
        _fail(f.matrix, f"durations of up to {longest_s // 2} s over {totals.legs} legs exceed the engines' "
              f"64-bit range ({ENGINE_INT_MAX:.3g})")
    for d in range(problem.num_dimensions):
        total = 0
        for i, stop in enumerate(problem.stops):
            total += stop.demand[d]
            if total > ENGINE_INT_MAX:
                _fail(f"{f.stops}[{i}].demand[{d}]", f"the demands of dimension {d} total more than "
                      f"{ENGINE_INT_MAX:.3g} up to this stop (the engines' 64-bit load range)")
