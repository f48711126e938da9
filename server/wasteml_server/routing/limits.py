"""Size limits of a routing problem, checked on counts before anything of that size is made.

A request has been parsed by protobuf when the codecs see it, but nothing of its *declared* or
*derived* size exists yet: no matrix (``matrix.size`` squared, or the haversine matrices of the
sites' coordinates, O(n^2)), no Python object per stop. :class:`ProblemLimits` states the
largest problem this server converts and solves, from ``Settings`` (the ``routing_max_*``
fields, documented there with their arithmetic). Its checks take *counts* (``len`` of a
repeated field, ``matrix.size``), so callers run them before converting the elements; an
excess is an ``InvalidArgumentError`` naming the field by its request path and stating the
limit ("at most 2000 stops, got 6000").

The codecs check every repeated field against these limits before decoding it
(``codecs.routing``, ``codecs.planning``); the problem builder checks the counts of the domain
objects again, for callers that build problems without a request.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass

from wasteml_server.core.errors import InvalidArgumentError
from wasteml_server.core.settings import Settings
from wasteml_server.routing.problem import ROUTING_FIELDS, ProblemFields


def at_most(field: str, count: int, limit: int, what: str) -> None:
    """Refuse ``count`` above ``limit``.

    Raises:
        InvalidArgumentError: on ``field``, "at most <limit> <what>, got <count>".
    """
    if count > limit:
        raise InvalidArgumentError(field, f"at most {limit} {what}, got {count}")


@dataclass(frozen=True)
class ProblemLimits:
    """The largest problem this server takes (``Settings.routing_max_*``; counts, not bytes).

    Attributes:
        max_stops: stops (PlanDay: bins).
        max_depots: depots.
        max_facilities: facilities, and entries of one ``reload_facility_indices``.
        max_matrix_size: ``matrix.size`` of a caller's matrix (locations).
        max_coordinate_locations: sites (depots + facilities + stops) of a problem without a
            matrix, whose travel matrices are computed from coordinates (O(n^2)).
        max_vehicles: the sum of ``count`` over the vehicle types (also bounds how many types).
        max_time_windows: time windows of one stop or facility.
        max_dimensions: load dimensions (``dimensions``, ``capacity``, ``demand`` entries).
    """

    max_stops: int
    max_depots: int
    max_facilities: int
    max_matrix_size: int
    max_coordinate_locations: int
    max_vehicles: int
    max_time_windows: int
    max_dimensions: int

    @classmethod
    def from_settings(cls, settings: Settings) -> ProblemLimits:
        """The limits a server runs with."""
        return cls(
            max_stops=settings.routing_max_stops, max_depots=settings.routing_max_depots,
            max_facilities=settings.routing_max_facilities, max_matrix_size=settings.routing_max_matrix_size,
            max_coordinate_locations=settings.routing_max_coordinate_locations,
            max_vehicles=settings.routing_max_vehicles, max_time_windows=settings.routing_max_time_windows,
            max_dimensions=settings.routing_max_dimensions,
        )

    def check_parts(self, *, depots: int, vehicle_types: int, stops: int, facilities: int,
                    dimensions: int = 0, fields: ProblemFields = ROUTING_FIELDS) -> None:
        """Counts of a problem's repeated parts.

        Raises:
            InvalidArgumentError: on ``depots``, ``vehicle_types``, ``stops``, ``facilities`` or
                ``dimensions`` (named by ``fields``).
        """
        f = fields
        at_most(f.stops, stops, self.max_stops, "stops")
        at_most(f.depots, depots, self.max_depots, "depots")
        at_most(f.facilities, facilities, self.max_facilities, "facilities")
        at_most(f.vehicle_types, vehicle_types, self.max_vehicles, "vehicle types (and vehicles in all)")
        at_most(f.dimensions, dimensions, self.max_dimensions, "load dimensions")

    def check_fleet(self, counts: Iterable[int], fields: ProblemFields = ROUTING_FIELDS) -> None:
        """The fleet size: the running sum of the vehicle types' ``count``.

        Raises:
            InvalidArgumentError: on ``vehicle_types[t].count`` of the type that takes the sum
                past ``max_vehicles``.
        """
        total = 0
        for t, count in enumerate(counts):
            total += max(0, count)
            if total > self.max_vehicles:
                raise InvalidArgumentError(
                    f"{fields.vehicle_types}[{t}].count",
                    f"at most {self.max_vehicles} vehicles in all (the sum of count over "
                    f"{fields.vehicle_types}), got {total} up to this vehicle type")

    def check_matrix(self, size: int, distances: int, durations: int,
                     fields: ProblemFields = ROUTING_FIELDS) -> None:
        """A caller's matrix: its size within the limit and ``size * size`` values sent.

        Args:
            size: ``matrix.size``.
            distances: number of ``distances_m`` values sent.
            durations: number of ``durations_s`` values sent (0: derived from the speed).

        Raises:
            InvalidArgumentError: on ``matrix.size``, ``matrix.distances_m`` or
                ``matrix.durations_s``.
        """
        m = fields.matrix
        if size <= 0:
            raise InvalidArgumentError(f"{m}.size", "must be > 0 when a matrix is given")
        at_most(f"{m}.size", size, self.max_matrix_size, "locations (matrix rows)")
        for name, count in (("distances_m", distances), ("durations_s", durations)):
            if (count or name == "distances_m") and count != size * size:
                raise InvalidArgumentError(f"{m}.{name}", f"must hold size * size = {size * size} values "
                                           f"(row-major), got {count}")

    def check_coordinate_sites(self, depots: int, facilities: int, stops: int,
                               fields: ProblemFields = ROUTING_FIELDS) -> None:
        """Sites of a problem without a matrix, whose matrices are computed from coordinates.

        Raises:
            InvalidArgumentError: on the largest group of sites (``stops`` usually).
        """
        total = depots + facilities + stops
        if total > self.max_coordinate_locations:
            group = max(((stops, fields.stops), (facilities, fields.facilities), (depots, fields.depots)))[1]
            raise InvalidArgumentError(
                group, f"at most {self.max_coordinate_locations} sites (depots + facilities + stops) "
                f"without a matrix, got {total}: their travel matrices are computed for every pair; "
                f"send a matrix for larger problems")

    def check_windows(self, field: str, count: int) -> None:
        """Time windows of one stop or facility (``field``: its ``time_windows``)."""
        at_most(field, count, self.max_time_windows, "time windows")

    def check_dimensions(self, field: str, count: int) -> None:
        """Entries of one ``capacity`` or ``demand`` (``field``)."""
        at_most(field, count, self.max_dimensions, "load dimensions")

    def check_reloads(self, field: str, count: int) -> None:
        """Entries of one ``reload_facility_indices`` (``field``)."""
        at_most(field, count, self.max_facilities, "reload facilities")


def _defaults() -> ProblemLimits:
    fields = Settings.model_fields
    return ProblemLimits(**{name: fields[f"routing_{name}"].default
                            for name in ProblemLimits.__dataclass_fields__})


#: The limits of ``Settings``' defaults (for tools and tests that build problems without a server).
DEFAULT_LIMITS = _defaults()
