"""The problem builder: sites as a request gives them -> a resolved :class:`Problem`.

The rules a request's routing part is read with (``RouteOptimizer`` problems and the routing
part of ``PlanDayRequest`` alike):

* **Location model.** With a matrix (``matrix.size > 0``) the locations are the matrix rows and
  every depot, facility and stop must give ``location_index`` (a ``location`` alongside is kept
  as that row's coordinates). Without one, the locations are the sites' coordinates in the
  order depots, facilities, stops, and the matrices are computed from them by
  :func:`haversine_matrices` (haversine x ``speed_model.detour_factor``, at
  ``speed_model.speed_m_per_s``; the defaults below where unset).
* **Durations.** A matrix without ``durations_s`` gets ``distances_m`` / the speed.
* **Shifts.** A vehicle type without a shift may work ``[0, 2 * DAY_S]``; the opening hours of
  its start and end depots narrow the shift.
* **Reloads.** A vehicle type listing no reload facilities may use all of them.

Errors name the request fields through :class:`~wasteml_server.routing.problem.ProblemFields`
(``matrix.distances_m[17]``, ``fleet[0].shift``, ``bins[3].location_index``).

Sizes are checked before anything of the request's declared size is allocated: a matrix must
hold ``size * size`` values before locations are laid out for it, and with ``limits``
(``routing.limits``) the counts of every part, the fleet and the sites whose matrices would be
computed from coordinates are checked first. Values are checked against the engines' integer
range (``routing.problem``): a caller's matrix entry by its index, derived durations by the
speed that makes them.
"""

from __future__ import annotations

import math
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field, replace

import numpy as np

from wasteml_server.core.errors import FieldViolation, InvalidArgumentError
from wasteml_server.core.geo import EARTH_RADIUS_M, GeoPoint, haversine_m
from wasteml_server.routing.limits import ProblemLimits
from wasteml_server.routing.problem import (
    HORIZON_S,
    MAX_DISTANCE_M,
    MAX_DURATION_S,
    ROUTING_FIELDS,
    CapacityDimension,
    Depot,
    Facility,
    Problem,
    ProblemFields,
    Stop,
    TimeWindow,
    VehicleType,
)

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

#: The shift of a vehicle type that gives none, seconds since the time origin.
DEFAULT_SHIFT = TimeWindow(0, HORIZON_S)

#: Largest ``speed_model.detour_factor``: road/great-circle ratios are 1.2-2 in cities (see
#: :data:`DEFAULT_DETOUR_FACTOR`); 10 leaves room for mountain roads, and keeps every
#: coordinate-derived distance (at most half the Earth's circumference, 20,000 km, times the
#: factor) within ``MAX_DISTANCE_M``.
MAX_DETOUR_FACTOR = 10.0

#: Rows of the haversine matrices computed at once: the temporaries of a block are
#: ``HAVERSINE_BLOCK_ROWS x L`` float64 (2 MB each for L = 2,000) next to the two int64 results.
HAVERSINE_BLOCK_ROWS = 128

#: Longest great-circle distance, metres (half the circumference of the haversine sphere).
_HALF_CIRCUMFERENCE_M = math.pi * EARTH_RADIUS_M


@dataclass(frozen=True)
class TravelMatrix:
    """A caller's matrix (``wasteml.v1.TravelMatrix``): row-major, ``size * size`` values each.

    Attributes:
        size: number of rows (= columns), > 0.
        distances_m: metres, float64, ``size * size`` values (entry ``i * size + j`` is i -> j).
        durations_s: seconds, same layout, or empty for ``distances_m`` / the speed model.
    """

    size: int
    distances_m: np.ndarray
    durations_s: np.ndarray = field(default_factory=lambda: np.zeros(0))

    @classmethod
    def from_arrays(cls, distance_m: np.ndarray, duration_s: np.ndarray | None = None) -> TravelMatrix:
        """A matrix from square arrays (tools, benchmark instances)."""
        d = np.asarray(distance_m, dtype=np.float64)
        t = np.zeros(0) if duration_s is None else np.asarray(duration_s, dtype=np.float64).ravel()
        return cls(d.shape[0], d.ravel(), t)


@dataclass(frozen=True)
class SpeedModel:
    """How travel follows from coordinates (``wasteml.v1.SpeedModel``); None = the default.

    Attributes:
        speed_m_per_s: mean speed, > 0 (default :data:`DEFAULT_SPEED_KMH`).
        detour_factor: road / great-circle distance, >= 1 (default :data:`DEFAULT_DETOUR_FACTOR`).
    """

    speed_m_per_s: float | None = None
    detour_factor: float | None = None

    def resolved(self, field: str = "speed_model") -> tuple[float, float]:
        """``(speed km/h, detour factor)`` with the defaults applied.

        Raises:
            InvalidArgumentError: a speed that is not > 0 or a detour factor below 1.
        """
        speed, detour = self.speed_m_per_s, self.detour_factor
        if speed is not None and not (math.isfinite(speed) and speed > 0):
            raise InvalidArgumentError(f"{field}.speed_m_per_s", "must be > 0 m/s (or unset for the default)")
        if detour is not None and not (math.isfinite(detour) and 1 <= detour <= MAX_DETOUR_FACTOR):
            raise InvalidArgumentError(f"{field}.detour_factor",
                                       f"must be >= 1 and at most {MAX_DETOUR_FACTOR:g} (or unset for the default)")
        return (speed * 3.6 if speed is not None else DEFAULT_SPEED_KMH,
                detour if detour is not None else DEFAULT_DETOUR_FACTOR)


def haversine_matrices(
    lat_deg: np.ndarray,
    lon_deg: np.ndarray,
    *,
    detour_factor: float = DEFAULT_DETOUR_FACTOR,
    speed_kmh: float = DEFAULT_SPEED_KMH,
) -> tuple[np.ndarray, np.ndarray]:
    """Road distance and travel time estimated from coordinates.

    ``distance = detour_factor * haversine(i, j)`` (great-circle distance on a sphere of radius
    :data:`~wasteml_server.core.geo.EARTH_RADIUS_M`), ``duration = distance / speed``; both
    rounded to integers.

    Args:
        lat_deg: float array, shape (L,), WGS84 latitude in degrees.
        lon_deg: float array, shape (L,), WGS84 longitude in degrees.
        detour_factor: road/great-circle ratio (>= 1).
        speed_kmh: mean speed (> 0).

    Returns:
        ``(distance_m, duration_s)``: int64 arrays, shape (L, L), symmetric, zero diagonal,
        read-only. Computed :data:`HAVERSINE_BLOCK_ROWS` rows at a time, so memory peaks near
        the two results (2 x 8 B x L^2).

    Raises:
        ValueError: ``detour_factor`` < 1 or not finite, ``speed_kmh`` <= 0 or not finite, or
            values beyond ``MAX_DISTANCE_M`` / ``MAX_DURATION_S`` (possible only for factors
            above :data:`MAX_DETOUR_FACTOR` or speeds of centimetres per second).
    """
    if not (math.isfinite(detour_factor) and detour_factor >= 1.0):
        raise ValueError("detour_factor must be a finite number >= 1")
    if not (math.isfinite(speed_kmh) and speed_kmh > 0):
        raise ValueError("speed_kmh must be a finite number > 0")
    speed_m_s = speed_kmh / 3.6
    if detour_factor * _HALF_CIRCUMFERENCE_M > MAX_DISTANCE_M or (
            detour_factor * _HALF_CIRCUMFERENCE_M / speed_m_s > MAX_DURATION_S):
        raise ValueError(f"detour_factor {detour_factor:g} at {speed_kmh:g} km/h can give distances or "
                         f"durations beyond {MAX_DISTANCE_M:g} m / {MAX_DURATION_S:g} s")
    lat = np.asarray(lat_deg, dtype=np.float64).ravel()
    lon = np.asarray(lon_deg, dtype=np.float64).ravel()
    n = lat.shape[0]
    dist = np.empty((n, n), dtype=np.int64)
    dur = np.empty((n, n), dtype=np.int64)
    for r in range(0, n, HAVERSINE_BLOCK_ROWS):
        rows = slice(r, min(n, r + HAVERSINE_BLOCK_ROWS))
        block = np.asarray(haversine_m(lat[rows, None], lon[rows, None], lat[None, :], lon[None, :]))
        block *= detour_factor
        np.rint(block, out=dist[rows], casting="unsafe")
        block /= speed_m_s
        np.rint(block, out=dur[rows], casting="unsafe")
    dist.flags.writeable = False
    dur.flags.writeable = False
    return dist, dur


def _raise(violations: list[FieldViolation]) -> None:
    if violations:
        first, *more = violations
        raise InvalidArgumentError(first.field, first.description, *more)


def _matrix_values(path: str, values: np.ndarray, size: int, most: int) -> np.ndarray:
    """``values`` as a (size, size) float64 array, after checking its length and entries
    (finite, in ``[0, most]``: the engines' integer range)."""
    if len(values) != size * size:
        raise InvalidArgumentError(path, f"must hold size * size = {size * size} values (row-major), "
                                   f"got {len(values)}")
    arr = np.asarray(values, dtype=np.float64)
    bad = np.flatnonzero(~(np.isfinite(arr) & (arr >= 0) & (arr <= most)))
    if bad.size:
        raise InvalidArgumentError(f"{path}[{int(bad[0])}]", f"must be a finite number >= 0 and at most {most:g} "
                                   f"(the engines' 64-bit integer range), got {float(arr[bad[0]])!r}")
    return arr.reshape(size, size)


Site = Depot | Facility | Stop


def _sites(f: ProblemFields, depots: Sequence[Depot], facilities: Sequence[Facility],
           stops: Sequence[Stop]) -> Iterator[tuple[str, Site]]:
    groups: tuple[tuple[str, Sequence[Site]], ...] = ((f.depots, depots), (f.facilities, facilities),
                                                      (f.stops, stops))
    for name, group in groups:
        for i, site in enumerate(group):
            yield f"{name}[{i}]", site


def _shift(vt: VehicleType, path: str, depots: Sequence[Depot], f: ProblemFields) -> TimeWindow:
    """The vehicle type's shift (default :data:`DEFAULT_SHIFT`) within its depots' hours."""
    shift = vt.shift or DEFAULT_SHIFT
    lo, hi = shift.start_s, shift.end_s
    for index, which, name in ((vt.start_depot_index, "start", "start_depot_index"),
                               (vt.end_depot, "end", "end_depot_index")):
        if not 0 <= index < len(depots):
            raise InvalidArgumentError(f"{path}.{name}", f"must index {f.depots} (0..{len(depots) - 1}), got {index}")
        window = depots[index].time_window
        if window is not None:
            lo, hi = max(lo, window.start_s), min(hi, window.end_s)
            if lo > hi:
                raise InvalidArgumentError(f"{path}.shift", f"does not overlap the opening hours of its {which} "
                                           f"depot ({f.depots}[{index}].time_window)")
    return TimeWindow(lo, hi)


def build_problem(
    *,
    depots: Sequence[Depot],
    vehicle_types: Sequence[VehicleType],
    stops: Sequence[Stop],
    facilities: Sequence[Facility] = (),
    matrix: TravelMatrix | None = None,
    speed_model: SpeedModel = SpeedModel(),
    dimensions: Sequence[CapacityDimension] = (),
    name: str = "",
    fields: ProblemFields = ROUTING_FIELDS,
    limits: ProblemLimits | None = None,
) -> Problem:
    """A resolved :class:`Problem` from sites as a request gives them (module docstring).

    Args:
        depots, vehicle_types, stops, facilities: the problem's parts; sites give
            ``location_index`` (with a matrix) or ``location`` (without).
        matrix: the caller's matrix, or None to compute it from the coordinates.
        speed_model: for coordinates, and for durations when the matrix has none.
        dimensions: names and units of the load dimensions (may be empty).
        name: e.g. ``"R101"``.
        fields: where the parts sit in the request, for field paths.
        limits: the size limits to check first (None: none, for tools and benchmarks).

    Raises:
        InvalidArgumentError: a missing or bad location, matrix, shift, depot or facility index,
            a part beyond ``limits``, a value beyond the engines' integer range, or any invalid
            field, named by its request path.
    """
    f = fields
    has_matrix = matrix is not None and (matrix.size != 0 or len(matrix.distances_m) > 0)
    if limits is not None:
        limits.check_parts(depots=len(depots), vehicle_types=len(vehicle_types), stops=len(stops),
                           facilities=len(facilities), dimensions=len(dimensions), fields=f)
        limits.check_fleet((vt.count for vt in vehicle_types), f)
        if has_matrix:
            assert matrix is not None
            limits.check_matrix(matrix.size, len(matrix.distances_m), len(matrix.durations_s), f)
        else:
            limits.check_coordinate_sites(len(depots), len(facilities), len(stops), f)
    if not depots:
        raise InvalidArgumentError(f.depots, "at least one depot is needed")
    if not vehicle_types:
        raise InvalidArgumentError(f.vehicle_types, "at least one vehicle type is needed")
    speed_kmh, detour = speed_model.resolved(f.speed_model)
    sites = list(_sites(f, depots, facilities, stops))
    violations: list[FieldViolation] = []
    for path, site in sites:
        if site.location is not None:
            violations += site.location.violations(f"{path}.location")
    _raise(violations)

    index_of: dict[str, int] = {}
    if has_matrix:
        assert matrix is not None
        size = matrix.size
        if size <= 0:
            raise InvalidArgumentError(f"{f.matrix}.size", "must be > 0 when a matrix is given")
        dist = _matrix_values(f"{f.matrix}.distances_m", matrix.distances_m, size, MAX_DISTANCE_M)
        if len(matrix.durations_s):
            dur = _matrix_values(f"{f.matrix}.durations_s", matrix.durations_s, size, MAX_DURATION_S)
        else:
            dur = dist / (speed_kmh / 3.6)
            if float(dur.max()) > MAX_DURATION_S:
                raise InvalidArgumentError(
                    f"{f.speed_model}.speed_m_per_s", f"distances / speed give durations above "
                    f"{MAX_DURATION_S:g} s (the engines' 64-bit integer range); send durations_s or a higher speed")
        locations: list[GeoPoint | None] = [None] * size
        for path, site in sites:
            index = site.location_index
            if index is None:
                raise InvalidArgumentError(f"{path}.location_index", "is required when a matrix is given")
            if not 0 <= index < size:
                raise InvalidArgumentError(f"{path}.location_index",
                                           f"must index the matrix rows (0..{size - 1}), got {index}")
            index_of[path] = index
            if site.location is not None and locations[index] is None:
                locations[index] = site.location
    else:
        points: list[GeoPoint] = []
        for path, site in sites:
            if site.location is None:
                raise InvalidArgumentError(f"{path}.location", "is required when no matrix is given")
            index_of[path] = len(points)
            points.append(site.location)
        if detour * _HALF_CIRCUMFERENCE_M / (speed_kmh / 3.6) > MAX_DURATION_S:
            raise InvalidArgumentError(
                f"{f.speed_model}.speed_m_per_s", f"at {speed_kmh / 3.6:g} m/s the durations between coordinates "
                f"may exceed {MAX_DURATION_S:g} s (the engines' 64-bit integer range); give a higher speed")
        lat = np.array([p.latitude_deg for p in points], dtype=np.float64)
        lon = np.array([p.longitude_deg for p in points], dtype=np.float64)
        dist, dur = haversine_matrices(lat, lon, detour_factor=detour, speed_kmh=speed_kmh)
        locations = list(points)

    def placed(site: Site, path: str) -> Site:
        return replace(site, location_index=index_of[path])

    built_depots = [placed(d, f"{f.depots}[{i}]") for i, d in enumerate(depots)]
    built_facilities = [placed(x, f"{f.facilities}[{i}]") for i, x in enumerate(facilities)]
    built_stops = [placed(s, f"{f.stops}[{i}]") for i, s in enumerate(stops)]
    built_types = []
    for t, vt in enumerate(vehicle_types):
        path = f"{f.vehicle_types}[{t}]"
        for k, fac in enumerate(vt.reload_facility_indices):
            if not 0 <= fac < len(facilities):
                raise InvalidArgumentError(f"{path}.reload_facility_indices[{k}]",
                                           f"must index {f.facilities} (0..{len(facilities) - 1}), got {fac}")
        built_types.append(replace(
            vt, shift=_shift(vt, path, depots, f), end_depot_index=vt.end_depot,
            reload_facility_indices=vt.reload_facility_indices or tuple(range(len(facilities)))))
    return Problem(
        depots=tuple(built_depots), vehicle_types=tuple(built_types), stops=tuple(built_stops),  # type: ignore[arg-type]
        distance_m=dist, duration_s=dur, facilities=tuple(built_facilities),  # type: ignore[arg-type]
        locations=tuple(locations), dimensions=tuple(dimensions), name=name, fields=f,
    )
