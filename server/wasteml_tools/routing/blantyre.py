"""The real Blantyre (Malawi) skip-collection instance as a :class:`Problem`.

Data (``Settings().data_dir / "collection"``; CC BY 4.0, N. Seemann-Ricard, ETH Zurich Global
Health Engineering, "Optimization of solid waste collections in Blantyre, Malawi", repository
``Global-Health-Engineering/2022-msc-sem-proj-nseemann`` @ 8704014):

* ``blantyre_skips_indexed_with_dump.csv``: 56 sites with the study's ``bin_ID``: 53 public
  skips (IDs 1-53), the Mzedi dump (54), Limbe Composting (55, not a dump for mixed waste, so
  not used) and the storage yard in the city centre (56, the depot).
* ``blantyre_road_distance_matrix_km.csv``: the full 56 x 56 asymmetric road-distance matrix,
  km (converted to metres here).

Operations model (the city's skip loaders): a truck leaves the yard, lifts ONE full skip
(capacity 1 skip), drives it to the Mzedi dump, tips it, and continues to the next skip; it
must be empty when it parks at the yard. In the problem this is a facility (the dump) with
multi-trip routes, vehicle capacity ``(1,)``, stop demand ``(1,)`` and ``end_empty=True``.

Times (assumptions, stated because the data has no direct measurement):

* **Speed** :data:`SPEED_KMH` = 25 km/h on the road distances. The dump's arrival log
  (``blantyre_skip_deliveries_mzedi_dump.csv``) gives, for 935 same-day consecutive arrivals
  of one logging device (assumed one truck), a median gap of 68 min for a median
  dump -> skip -> dump road distance of 23.2 km: 56 min of driving at 25 km/h plus the 10 min
  of lifting and tipping below. A least-squares fit of gap on distance is meaningless there
  (slope 0.59 min/km, i.e. 100 km/h, intercept 53 min: the gaps are dominated by waiting), so
  the log only bounds the figures, it does not calibrate them.
* **Lift** :data:`LIFT_S` = 300 s (hook, lift and secure one 7 m3 skip) and **tip**
  :data:`TIP_S` = 300 s at the dump: assumptions, together consistent with the log above.
* **Shift** 07:00-15:00 (8 hours) by default.
"""

from __future__ import annotations

import csv
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from wasteml_server.core.errors import InvalidArgumentError
from wasteml_server.core.geo import GeoPoint
from wasteml_server.core.settings import Settings
from wasteml_server.routing.builder import TravelMatrix, build_problem
from wasteml_server.routing.problem import Depot, Facility, Problem, Stop, TimeWindow, VehicleType

#: ``bin_ID`` of the storage yard in the city centre (the depot).
DEPOT_ID = 56
#: ``bin_ID`` of the Mzedi dump (the facility).
DUMP_ID = 54
#: ``bin_ID`` range of the 53 skips.
SKIP_IDS = range(1, 54)
#: Mean truck speed on the road network, km/h (see the module docstring).
SPEED_KMH = 25.0
#: Time to lift one skip onto the truck, seconds (assumption).
LIFT_S = 300
#: Time to tip one skip at the dump, seconds (assumption).
TIP_S = 300
#: Default shift: 07:00-15:00, seconds from midnight.
DEFAULT_SHIFT = TimeWindow(7 * 3600, 15 * 3600)


@dataclass(frozen=True)
class Site:
    """One row of ``blantyre_skips_indexed_with_dump.csv``.

    Attributes:
        bin_id: the study's id, 1-56 (matrix row/column ``bin_id - 1``).
        name: site name.
        lat_deg: WGS84 latitude.
        lon_deg: WGS84 longitude.
        kind: ``skip``, ``dump``, ``compost`` or ``storage``.
        capacity_l: skip volume in litres (7000) or None for facilities (the file's ``capacity``,
            which the data README reads as litres of a 7 m3 skip).
    """

    bin_id: int
    name: str
    lat_deg: float
    lon_deg: float
    kind: str
    capacity_l: int | None


def _collection_dir(data_dir: Path | None) -> Path:
    return Path(data_dir if data_dir is not None else Settings().data_dir) / "collection"


def load_sites(data_dir: Path | None = None) -> tuple[Site, ...]:
    """The 56 sites, ordered by ``bin_id`` (index ``bin_id - 1``)."""
    rows = []
    with open(_collection_dir(data_dir) / "blantyre_skips_indexed_with_dump.csv", newline="",
              encoding="utf-8-sig") as fh:
        for r in csv.DictReader(fh):
            rows.append(Site(int(r["bin_ID"]), r["Name"], float(r["lat"]), float(r["long"]),
                             r["Type"], int(r["capacity"]) if r["capacity"] else None))
    rows.sort(key=lambda s: s.bin_id)
    if [s.bin_id for s in rows] != list(range(1, len(rows) + 1)):
        raise ValueError("blantyre sites: bin_ID must be 1..N without gaps")
    return tuple(rows)


def load_road_distance_m(data_dir: Path | None = None) -> np.ndarray:
    """The road-distance matrix: int64, shape (56, 56), metres, ``[from bin_id - 1, to bin_id - 1]``."""
    n = 56
    km = np.full((n, n), np.nan)
    with open(_collection_dir(data_dir) / "blantyre_road_distance_matrix_km.csv", newline="") as fh:
        for r in csv.DictReader(fh):
            km[int(r["FROM_ID"]) - 1, int(r["TO_ID"]) - 1] = float(r["DIST_KM"])
    if np.isnan(km).any():
        raise ValueError("blantyre road-distance matrix is incomplete")
    return np.rint(km * 1000.0).astype(np.int64)


def day_problem(
    required: Sequence[int],
    optional: Mapping[int, float] | None = None,
    *,
    trucks: int = 3,
    shift: TimeWindow = DEFAULT_SHIFT,
    speed_kmh: float = SPEED_KMH,
    lift_s: int = LIFT_S,
    tip_s: int = TIP_S,
    cost_per_km: float = 1.0,
    fixed_cost: float = 0.0,
    data_dir: Path | None = None,
) -> Problem:
    """One service day in Blantyre: which skips to empty, with how many skip-loader trucks.

    Args:
        required: ``bin_id`` of skips that must be emptied today (1-53).
        optional: ``{bin_id: penalty}`` of skips that may be emptied; ``penalty`` (currency
            units, same as ``cost_per_km``) is what leaving it full costs.
        trucks: skip loaders available (1 skip each), starting and ending at the yard (ID 56).
        shift: the trucks' working window, seconds from midnight (default 07:00-15:00).
        speed_kmh: mean speed; durations are ``distance / speed``, rounded to seconds.
        lift_s: service time at a skip, seconds.
        tip_s: service time at the dump, seconds.
        cost_per_km: driving cost, currency units per km.
        fixed_cost: cost per truck used, currency units.
        data_dir: the data folder (default ``Settings().data_dir``).

    Returns:
        A problem with all 56 sites as locations (index ``bin_id - 1``), the yard as depot 0, the
        dump as facility 0, and stops ``"skip-<bin_id>"`` in the order required then optional.

    Raises:
        InvalidArgumentError: a skip id out of 1-53 (``required[i]`` / ``optional[<id>]``), listed
            twice, or ``trucks``/``speed_kmh``/``lift_s``/``tip_s`` out of range.
    """
    optional = dict(optional or {})
    if trucks < 1:
        raise InvalidArgumentError("trucks", "must be >= 1")
    if not speed_kmh > 0:
        raise InvalidArgumentError("speed_kmh", "must be > 0 km/h")
    if lift_s < 0 or tip_s < 0:
        raise InvalidArgumentError("lift_s" if lift_s < 0 else "tip_s", "must be >= 0 seconds")
    seen: set[int] = set()
    for i, b in enumerate(required):
        if b not in SKIP_IDS:
            raise InvalidArgumentError(f"required[{i}]", f"skip id {b} is not in 1..53")
        if b in seen:
            raise InvalidArgumentError(f"required[{i}]", f"skip id {b} listed twice")
        seen.add(b)
    for b in optional:
        if b not in SKIP_IDS:
            raise InvalidArgumentError(f"optional[{b}]", f"skip id {b} is not in 1..53")
        if b in seen:
            raise InvalidArgumentError(f"optional[{b}]", f"skip id {b} is also required")
    sites = load_sites(data_dir)
    dist = load_road_distance_m(data_dir)
    dur = np.rint(dist / (speed_kmh / 3.6)).astype(np.int64)
    def point(i: int) -> GeoPoint:
        return GeoPoint(sites[i].lat_deg, sites[i].lon_deg)

    stops = [Stop(f"skip-{b}", point(b - 1), b - 1, (1,), lift_s) for b in required]
    stops += [Stop(f"skip-{b}", point(b - 1), b - 1, (1,), lift_s, optional_visit=True, skip_penalty=float(p))
              for b, p in optional.items()]
    vehicle = VehicleType(count=trucks, capacity=(1,), shift=shift, start_depot_index=0, end_depot_index=0,
                          fixed_cost=fixed_cost, cost_per_km=cost_per_km, reload_facility_indices=(0,),
                          end_empty=True, id="skip loader")
    return build_problem(
        depots=(Depot(sites[DEPOT_ID - 1].name, point(DEPOT_ID - 1), DEPOT_ID - 1),),
        vehicle_types=(vehicle,),
        stops=stops,
        facilities=(Facility(sites[DUMP_ID - 1].name, point(DUMP_ID - 1), DUMP_ID - 1, service_duration_s=tip_s),),
        matrix=TravelMatrix.from_arrays(dist, dur),
        name="blantyre-day",
    )
