"""A day to plan, as the contract states it (``wasteml.v1.PlanDayRequest``), and the rules that
turn it into the planner's working set (the day-plan defaults).

``DayPlanRequest`` carries the contract's fields (units converted at the edge: instants are
aware datetimes, times of day whole seconds). :func:`prepare` applies the domain's rules and
validates with the request's own field paths:

* the time origin is local midnight of ``service_date`` in ``time_zone`` (UTC when empty);
* the routing part (``depots``, ``facilities``, ``fleet``, ``matrix``, ``speed_model``) is read
  by the routing problem builder with the plan's field names (``fleet[i]``, ``bins[i]``), one
  optional stop per bin; a bin without ``demand`` loads one unit of each dimension (one skip
  lift for the usual single dimension);
* every bin needs coordinates (its own ``location``, or the matrix row's) for the complaint
  search, an id that is non-empty and unique, and readings with fills within 0..1;
* the fill is predicted for ``prediction_time``, or the fleet's earliest shift start;
* ``solve_options.time_limit`` is required (the SOLVE stage must be bounded by the caller);
* ``service_date`` and ``prediction_time`` lie in years 2..9998 (:data:`PLAN_YEARS`), so that
  every instant of the plan (local midnight and up to two days after it, time zone offsets,
  the complaint look-back of at most 366 days) is a valid Timestamp; readings of one bin are
  at distinct times;
* sizes within :class:`PlanLimits` (bins, readings, and the routing limits for the rest),
  checked by the codec on the parsed request before anything is decoded, and again here.
"""

from __future__ import annotations

import math
from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, timedelta
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from wasteml_server.core.errors import InvalidArgumentError, shown, under
from wasteml_server.core.geo import GeoPoint
from wasteml_server.core.settings import Settings
from wasteml_server.planning.selection import PlanPolicy
from wasteml_server.routing.builder import SpeedModel, TravelMatrix, build_problem
from wasteml_server.routing.limits import ProblemLimits, at_most
from wasteml_server.routing.options import SolveOptions
from wasteml_server.routing.problem import (
    CapacityDimension,
    Depot,
    Facility,
    Problem,
    ProblemFields,
    Stop,
    TimeWindow,
    VehicleType,
)

#: Where the routing parts sit in a ``PlanDayRequest`` (field paths of errors).
PLAN_FIELDS = ProblemFields(vehicle_types="fleet", stops="bins")

#: Years a plan's ``service_date`` and ``prediction_time`` may lie in (module docstring).
PLAN_YEARS = (2, 9998)


@dataclass(frozen=True)
class PlanLimits:
    """The largest PlanDay this server takes (``Settings.planning_max_*``, and the routing and
    forecasting limits its stages run under).

    Attributes:
        routing: the limits of the routing part (bins count as stops).
        max_bins: bins of one request.
        max_readings: fill readings of one request, summed over its bins.
        max_readings_per_bin: fill readings of one bin.
    """

    routing: ProblemLimits
    max_bins: int
    max_readings: int
    max_readings_per_bin: int

    @classmethod
    def from_settings(cls, settings: Settings) -> PlanLimits:
        """The limits a server runs with: PlanDay's own, narrowed so that the fill forecast
        (which gets every reading plus the last emptying of each bin) never refuses a plan
        that passed them."""
        max_bins = min(settings.planning_max_bins, settings.forecast_max_bins)
        return cls(
            ProblemLimits.from_settings(settings),
            max_bins,
            max(1, min(settings.planning_max_readings, settings.forecast_max_readings - max_bins)),
            max(1, settings.forecast_max_readings_per_bin - 1),
        )

    def check_bins(self, bins: int) -> None:
        """The number of bins.

        Raises:
            InvalidArgumentError: on ``bins``.
        """
        at_most("bins", bins, self.max_bins, "bins")

    def check_readings(self, readings_per_bin: Iterable[int]) -> None:
        """The readings of each bin and their running total over the bins.

        Raises:
            InvalidArgumentError: on ``bins[i].recent_readings`` of a bin with too many readings
                or of the bin that takes the total past ``max_readings``.
        """
        total = 0
        for i, n in enumerate(readings_per_bin):
            if n > self.max_readings_per_bin:
                raise InvalidArgumentError(f"bins[{i}].recent_readings",
                                           f"at most {self.max_readings_per_bin} fill readings per bin, got {n}")
            total += n
            if total > self.max_readings:
                raise InvalidArgumentError(f"bins[{i}].recent_readings",
                                           f"at most {self.max_readings} fill readings in all bins, got "
                                           f"{total} up to this bin")


#: The limits of ``Settings``' defaults.
DEFAULT_PLAN_LIMITS = PlanLimits.from_settings(Settings.model_construct())


def _check_year(field: str, year: int) -> None:
    lo, hi = PLAN_YEARS
    if not lo <= year <= hi:
        raise InvalidArgumentError(field, f"must lie in the years {lo}..{hi} (the plan's instants must be "
                                   f"valid Timestamps), got year {year}")


@dataclass(frozen=True)
class FillReading:
    """One fill reading (``wasteml.v1.FillReading``): an aware instant and a fill fraction 0..1."""

    time: datetime
    fill_fraction: float


@dataclass(frozen=True)
class PlanBin:
    """A bin or skip that may be collected (``wasteml.v1.PlanBin``).

    Attributes:
        bin_id: caller's id, non-empty and unique in the request.
        location: coordinates, or None (then the matrix row's coordinates are used).
        location_index: row of the bin in the matrix (required with a matrix).
        capacity_l: capacity in litres (0 = not given).
        recent_readings: fill readings, any order (sorted by :func:`prepare`).
        last_emptied_at: last emptying, or None.
        demand: load per capacity dimension when lifted; empty = one unit per dimension.
        service_duration_s: lift/service time, whole seconds.
        time_windows: when it may be served, seconds since local midnight.
        prior_fill_rate_per_day: an external filling-rate estimate, fraction per day, or None.
    """

    bin_id: str
    location: GeoPoint | None = None
    location_index: int | None = None
    capacity_l: float = 0.0
    recent_readings: tuple[FillReading, ...] = ()
    last_emptied_at: datetime | None = None
    demand: tuple[int, ...] = ()
    service_duration_s: int = 0
    time_windows: tuple[TimeWindow, ...] = ()
    prior_fill_rate_per_day: float | None = None


@dataclass(frozen=True)
class DayPlanRequest:
    """A day to plan (``wasteml.v1.PlanDayRequest``).

    Attributes:
        service_date: the day.
        time_zone: IANA time zone of the service area ("" = UTC).
        dimensions, depots, facilities, fleet, matrix, speed_model: the routing part.
        bins: the candidate bins.
        policy: the selection rules.
        solve_options: engine and time limit of the SOLVE stage (the limit is required).
        prediction_time: when the fill is predicted for; None = the fleet's earliest shift start.
        request_bytes: the caller's serialized request, stored with the plan as given (opaque).
    """

    service_date: date
    time_zone: str
    depots: tuple[Depot, ...]
    fleet: tuple[VehicleType, ...]
    bins: tuple[PlanBin, ...]
    policy: PlanPolicy = field(default_factory=PlanPolicy)
    facilities: tuple[Facility, ...] = ()
    dimensions: tuple[CapacityDimension, ...] = ()
    matrix: TravelMatrix | None = None
    speed_model: SpeedModel = SpeedModel()
    solve_options: SolveOptions = SolveOptions()
    prediction_time: datetime | None = None
    request_bytes: bytes = b""


@dataclass(frozen=True)
class BinState:
    """A validated bin with what the planner needs: coordinates, readings in time order (Unix
    seconds), and its stop in the base problem."""

    bin_id: str
    stop_index: int
    latitude_deg: float
    longitude_deg: float
    readings_s: tuple[tuple[float, float], ...]
    last_emptied_s: float | None
    prior_rate_per_day: float | None


@dataclass(frozen=True)
class PreparedDay:
    """A request with the day-plan rules applied (module docstring).

    Attributes:
        request: the request.
        time_origin: ``t = 0`` of the problem's times (local midnight).
        service_time: the instant the fill is predicted for.
        base: the routing problem with one optional stop per bin (penalties set by the SELECT
            stage), bins in request order.
        bins: one state per bin, request order.
    """

    request: DayPlanRequest
    time_origin: datetime
    service_time: datetime
    base: Problem
    bins: tuple[BinState, ...]


def prepare(request: DayPlanRequest, limits: PlanLimits = DEFAULT_PLAN_LIMITS) -> PreparedDay:
    """Apply the day-plan rules and validate the request (module docstring).

    CPU work proportional to the request (the routing problem and its matrices): run it off
    the event loop.

    Raises:
        InvalidArgumentError: naming the request field, e.g. ``time_zone``, ``bins``,
            ``bins[3].bin_id``, ``bins[3].location_index``, ``fleet[0].shift``,
            ``bins[2].recent_readings[0].fill_fraction``, ``solve_options.time_limit``,
            ``service_date``.
    """
    limits.check_bins(len(request.bins))
    limits.check_readings(len(b.recent_readings) for b in request.bins)
    try:
        zone = ZoneInfo(request.time_zone or "UTC")
    except (ZoneInfoNotFoundError, ValueError, OSError):
        raise InvalidArgumentError("time_zone", f"unknown IANA time zone {shown(request.time_zone)}") from None
    d = request.service_date
    _check_year("service_date", d.year)
    if request.prediction_time is not None:
        _check_year("prediction_time", request.prediction_time.astimezone(UTC).year)
    origin = datetime(d.year, d.month, d.day, tzinfo=zone)
    if not request.bins:
        raise InvalidArgumentError("bins", "at least one bin is required")
    if request.solve_options.time_limit_s is None:
        raise InvalidArgumentError("solve_options.time_limit", "is required (seconds the solver may run)")
    seen: dict[str, int] = {}
    for i, b in enumerate(request.bins):
        if not b.bin_id:
            raise InvalidArgumentError(f"bins[{i}].bin_id", "must be a non-empty string")
        if b.bin_id in seen:
            raise InvalidArgumentError(f"bins[{i}].bin_id",
                                       f"duplicate id {shown(b.bin_id)} (also bins[{seen[b.bin_id]}])")
        seen[b.bin_id] = i
        if not (math.isfinite(b.capacity_l) and b.capacity_l >= 0):
            raise InvalidArgumentError(f"bins[{i}].capacity_l", "must be > 0 litres (or unset)")
        for k, r in enumerate(b.recent_readings):
            if not (math.isfinite(r.fill_fraction) and 0.0 <= r.fill_fraction <= 1.0):
                raise InvalidArgumentError(f"bins[{i}].recent_readings[{k}].fill_fraction", "must be within 0..1")
        at: dict[float, int] = {}
        for k, r in enumerate(b.recent_readings):
            t = r.time.timestamp()
            if t in at:
                raise InvalidArgumentError(f"bins[{i}].recent_readings[{k}].time",
                                           f"two readings at the same time (also recent_readings[{at[t]}])")
            at[t] = k
        rate = b.prior_fill_rate_per_day
        if rate is not None and not (math.isfinite(rate) and rate >= 0):
            raise InvalidArgumentError(f"bins[{i}].prior_fill_rate_per_day", "must be a finite rate >= 0 per day")
    n_dim = max(1, len(request.dimensions), *(len(v.capacity) for v in request.fleet))
    stops = []
    for i, b in enumerate(request.bins):
        with under(f"bins[{i}]"):
            stops.append(Stop(id=b.bin_id, location=b.location, location_index=b.location_index,
                              demand=b.demand or (1,) * n_dim, service_duration_s=b.service_duration_s,
                              time_windows=b.time_windows, optional_visit=True))
    base = build_problem(depots=request.depots, vehicle_types=request.fleet, stops=stops,
                         facilities=request.facilities, matrix=request.matrix, speed_model=request.speed_model,
                         dimensions=request.dimensions, name=f"plan-{d.isoformat()}", fields=PLAN_FIELDS,
                         limits=limits.routing)
    bins = []
    for i, b in enumerate(request.bins):
        where = b.location or base.locations[base.stop_location(i)]
        if where is None:
            raise InvalidArgumentError(f"bins[{i}].location", "coordinates are needed for the complaint search")
        readings = tuple(sorted((r.time.timestamp(), r.fill_fraction) for r in b.recent_readings))
        bins.append(BinState(b.bin_id, i, where.latitude_deg, where.longitude_deg, readings,
                             b.last_emptied_at.timestamp() if b.last_emptied_at is not None else None,
                             b.prior_fill_rate_per_day))
    if request.prediction_time is not None:
        service_time = request.prediction_time.astimezone(UTC)
    else:
        service_time = origin + timedelta(seconds=min(vt.window.start_s for vt in base.vehicle_types))
    return PreparedDay(request, origin, service_time, base, tuple(bins))
