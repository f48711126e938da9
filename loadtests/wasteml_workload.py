"""Request builders of the load test, from the real data in ``../shared/data`` (client side:
only the generated ``wasteml.v1`` stubs and the CSV files, nothing from the server's package).

* Search and Embed: Boston 311 sanitation cases of 2015. Queries are what a dispatcher types
  about a case: the case type in plain words with the real street, or the case title as the
  city logged it; filters use the case's real type, location and month.
* PredictFillLevel: the Blantyre skip fullness log (16 skips, daily readings, m3 in a 7 m3
  skip, so fraction = reading / 7): a batch of skips with their last week of readings.
* Solve: a Blantyre skip-loader day: 12 skips drawn from the 53 real ones, the storage yard as
  depot, the Mzedi dump as reload facility, the study's road-distance matrix, 3 trucks that
  carry one skip each (the city's operations model, as in ``wasteml_tools.routing.blantyre``).
* The probe: which of these RPCs the server implements (anything but UNIMPLEMENTED to an
  empty request; such requests are rejected by validation before any work is done).
"""

from __future__ import annotations

import csv
import random
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from functools import cached_property
from pathlib import Path
from zoneinfo import ZoneInfo

import grpc
from google.protobuf.duration_pb2 import Duration
from google.protobuf.timestamp_pb2 import Timestamp

from wasteml.v1 import (
    common_pb2,
    forecasting_pb2,
    forecasting_pb2_grpc,
    routing_pb2,
    routing_pb2_grpc,
    search_pb2,
    search_pb2_grpc,
)

BOSTON = ZoneInfo("America/New_York")
#: Boston's fallback geocode (City Hall) that ~3.9% of the 311 rows carry (data README).
CITY_HALL = (42.3594, -71.0587)
#: Blantyre skips hold 7 m3; fullness readings are m3 (data README, section 3).
SKIP_M3 = 7.0
SKIP_L = 7000.0
BLANTYRE_UTC_OFFSET_H = 2
#: Blantyre instance ids (blantyre_skips_indexed_with_dump.csv): skips 1-53, dump 54, yard 56.
SKIP_IDS = range(1, 54)
DUMP_ID = 54
YARD_ID = 56
#: Skip-loader operations (see wasteml_tools.routing.blantyre): 25 km/h, 300 s lift, 300 s tip.
SPEED_M_PER_S = 25.0 / 3.6
LIFT_S = 300.0
TIP_S = 300.0

#: Dispatcher phrasings of each Boston 311 case type ({street} is the case's real street).
DISPATCHER_PHRASES = {
    "Schedule a Bulk Item Pickup SS": "bulk item pickup, furniture left on the curb at {street}",
    "CE Collection": "missed trash collection reported at {street}",
    "Empty Litter Basket": "litter basket full and needs emptying on {street}",
    "Request for Recycling Cart": "resident needs a new recycling cart at {street}",
    "Pick up Dead Animal": "dead animal in the road near {street}",
    "Needle Pickup": "used needles found near {street}",
    "Recycling Cart Return": "recycling cart to be returned, {street}",
    "Trash on Vacant Lot": "trash dumped on a vacant lot by {street}",
    "Overflowing or Un-kept Dumpster": "overflowing dumpster behind {street}",
    "Recycling Cart Inquiry": "question about a recycling cart at {street}",
    "Request for Litter Basket Installation": "request for a new litter basket on {street}",
    "Litter Basket Maintenance": "broken litter basket on {street}",
    "Illegal Dumping": "illegal dumping reported at {street}",
    "Improper Storage of Trash (Barrels)": "trash barrels stored improperly at {street}",
    "Construction Debris": "construction debris left at {street}",
}


@dataclass(frozen=True)
class Case:
    """One Boston 311 row, as the load test uses it."""

    case_id: str
    kind: str
    title: str
    closure: str
    street: str
    lat_deg: float
    lon_deg: float
    opened: datetime
    source: str

    @property
    def approximate(self) -> bool:
        """True at the City Hall fallback geocode."""
        return (round(self.lat_deg, 4), round(self.lon_deg, 4)) == CITY_HALL


def _ts(when: datetime) -> Timestamp:
    ts = Timestamp()
    ts.FromDatetime(when.astimezone(UTC))
    return ts


class Workload:
    """Real-data request builders; loads each file once, on first use.

    Args:
        data_dir: the shared data folder (``service_requests/``, ``collection/``).
    """

    def __init__(self, data_dir: Path) -> None:
        self.data_dir = Path(data_dir)

    # ---- Boston 311 --------------------------------------------------------------------------
    @cached_property
    def cases(self) -> list[Case]:
        """The 20,832 Boston 311 sanitation cases of 2015, in file (open time) order."""
        path = self.data_dir / "service_requests" / "boston_311_2015_sanitation.csv"
        out = []
        with path.open(newline="", encoding="utf-8") as fh:
            for r in csv.DictReader(fh):
                opened = datetime.strptime(r["OPEN_DT"], "%m/%d/%Y %I:%M:%S %p").replace(tzinfo=BOSTON)
                out.append(Case(r["CASE_ENQUIRY_ID"], r["TYPE"], r["CASE_TITLE"].strip(),
                                r["CLOSURE_REASON"].strip(), r["LOCATION_STREET_NAME"].strip(),
                                float(r["LATITUDE"]), float(r["LONGITUDE"]), opened, r["Source"]))
        return out

    def document(self, case: Case) -> search_pb2.SearchDocument:
        """The search document of a case: title and closure note as text, real kind/place/time."""
        text = ". ".join(t for t in (case.title, case.closure) if t) or case.kind
        return search_pb2.SearchDocument(
            id=case.case_id, text=text, kind=case.kind,
            location=common_pb2.GeoPoint(latitude_deg=case.lat_deg, longitude_deg=case.lon_deg),
            location_approximate=case.approximate, created_at=_ts(case.opened),
            source="boston_311_2015",
        )

    def index_requests(self, count: int, batch: int = 100) -> Iterator[search_pb2.IndexDocumentsRequest]:
        """IndexDocuments stream messages for ``count`` cases spread over the whole year."""
        cases = self.cases
        step = max(1, len(cases) // max(count, 1))
        chosen = cases[::step][:count]
        for i in range(0, len(chosen), batch):
            yield search_pb2.IndexDocumentsRequest(documents=[self.document(c) for c in chosen[i : i + batch]])

    def query_text(self, rng: random.Random) -> tuple[str, Case]:
        """A dispatcher's query about a real case, and that case."""
        case = rng.choice(self.cases)
        phrase = DISPATCHER_PHRASES.get(case.kind)
        if phrase is not None and case.street and rng.random() < 0.7:
            return phrase.format(street=case.street.title()), case
        return (case.title or case.kind), case

    def search_request(self, rng: random.Random) -> search_pb2.SearchRequest:
        """A Search as dispatch sends them: top 10, often filtered by type, place or month."""
        text, case = self.query_text(rng)
        filters = search_pb2.SearchFilters()
        roll = rng.random()
        if roll < 0.3:
            filters.kinds.append(case.kind)
        elif roll < 0.55 and not case.approximate:
            filters.radius.center.latitude_deg = case.lat_deg
            filters.radius.center.longitude_deg = case.lon_deg
            filters.radius.radius_m = 1000.0
        elif roll < 0.7:
            start = case.opened.replace(day=1, hour=0, minute=0, second=0)
            filters.created_at.start_time.CopyFrom(_ts(start))
            filters.created_at.end_time.CopyFrom(_ts(start + timedelta(days=31)))
        return search_pb2.SearchRequest(query=text, top_k=10, filters=filters)

    def embed_request(self, rng: random.Random) -> search_pb2.EmbedRequest:
        """An Embed of 1-8 case texts (e.g. a triage service embedding incoming cases)."""
        texts = [self.query_text(rng)[0] for _ in range(rng.randint(1, 8))]
        return search_pb2.EmbedRequest(texts=texts)

    # ---- Blantyre fill levels ----------------------------------------------------------------
    @cached_property
    def fullness(self) -> tuple[list[datetime], dict[str, list[float | None]]]:
        """Days (08:00 local, as UTC) and per-skip readings in m3 (None = missing)."""
        path = self.data_dir / "collection" / "blantyre_skip_fullness_daily_2020_2021.csv"
        days: list[datetime] = []
        columns: dict[str, list[float | None]] = {}
        with path.open(newline="", encoding="utf-8-sig") as fh:
            reader = csv.DictReader(fh)
            names = [n for n in reader.fieldnames or [] if n != "date"]
            columns = {n: [] for n in names}
            for r in reader:
                day = datetime.strptime(r["date"], "%d-%b-%y")
                days.append(day.replace(hour=8 - BLANTYRE_UTC_OFFSET_H, tzinfo=UTC))
                for n in names:
                    v = r[n].strip()
                    columns[n].append(float(v) if v not in {"", "."} else None)
        return days, columns

    def fill_request(self, rng: random.Random, max_bins: int = 16,
                     max_fraction: float = 1.0) -> forecasting_pb2.PredictFillLevelRequest:
        """PredictFillLevel for the skips with readings on a real day: last week of readings,
        target 1-3 days ahead.

        Args:
            rng: the random source.
            max_bins: most bins per request.
            max_fraction: readings above this are sent as this. The contract's fill fraction
                is 0..1 with an overflowing skip at 1, so the log's overflow reading (8 m3 in a
                7 m3 skip) is sent as 1.0 by default.
        """
        days, columns = self.fullness
        for _ in range(100):
            d = rng.randrange(7, len(days))
            bins = []
            for name, values in columns.items():
                readings = [(days[i], values[i]) for i in range(d - 6, d + 1) if values[i] is not None]
                if len(readings) >= 3 and values[d] is not None:
                    target = days[d] + timedelta(days=rng.randint(1, 3))
                    bins.append(forecasting_pb2.BinFillInput(
                        bin_id=name, capacity_l=SKIP_L, target_time=_ts(target),
                        recent_readings=[forecasting_pb2.FillReading(time=_ts(t), fill_fraction=min(v / SKIP_M3, max_fraction))
                                         for t, v in readings]))
            if bins:
                rng.shuffle(bins)
                return forecasting_pb2.PredictFillLevelRequest(bins=bins[:max_bins])
        raise ValueError("no day with readings found in the Blantyre fullness log")

    # ---- Blantyre routing --------------------------------------------------------------------
    @cached_property
    def road_distance_m(self) -> list[list[float]]:
        """56 x 56 road distances, metres, ``[from_id - 1][to_id - 1]``."""
        n = 56
        out = [[0.0] * n for _ in range(n)]
        path = self.data_dir / "collection" / "blantyre_road_distance_matrix_km.csv"
        with path.open(newline="", encoding="utf-8") as fh:
            for r in csv.DictReader(fh):
                out[int(r["FROM_ID"]) - 1][int(r["TO_ID"]) - 1] = round(float(r["DIST_KM"]) * 1000.0)
        return out

    def solve_request(self, rng: random.Random, stops: int = 12, trucks: int = 3,
                      time_limit_s: float = 2.0) -> routing_pb2.SolveRequest:
        """A Blantyre day: ``stops`` real skips, ``trucks`` skip loaders 07:00-15:00, the dump."""
        ids = [YARD_ID, DUMP_ID, *sorted(rng.sample(list(SKIP_IDS), stops))]
        dist = self.road_distance_m
        matrix = routing_pb2.TravelMatrix(size=len(ids))
        for a in ids:
            for b in ids:
                matrix.distances_m.append(dist[a - 1][b - 1])
                matrix.durations_s.append(round(dist[a - 1][b - 1] / SPEED_M_PER_S))
        shift = routing_pb2.TimeWindow(start_s=7 * 3600, end_s=15 * 3600)
        problem = routing_pb2.Problem(
            name="blantyre-load-test",
            dimensions=[routing_pb2.CapacityDimension(name="skips", unit="skip")],
            depots=[routing_pb2.Depot(id=f"site-{YARD_ID}", location_index=0)],
            facilities=[routing_pb2.Facility(id=f"site-{DUMP_ID}", location_index=1,
                                             kind=routing_pb2.FACILITY_KIND_DUMP, service_duration_s=TIP_S)],
            vehicle_types=[routing_pb2.VehicleType(id="skip-loader", count=trucks, capacity=[1], shift=shift,
                                                   start_depot_index=0, cost_per_km=1.0)],
            stops=[routing_pb2.Stop(id=f"skip-{b}", location_index=i + 2, demand=[1], service_duration_s=LIFT_S)
                   for i, b in enumerate(ids[2:])],
            matrix=matrix,
        )
        limit = Duration()
        limit.FromNanoseconds(int(time_limit_s * 1e9))
        return routing_pb2.SolveRequest(problem=problem, options=routing_pb2.SolveOptions(time_limit=limit))


#: Load-test tag -> (full method names the tag needs, an empty request per method).
PROBES: dict[str, Sequence[tuple[str, object]]] = {
    "search": (("/wasteml.v1.SemanticSearch/Search", search_pb2.SearchRequest()),),
    "embed": (("/wasteml.v1.SemanticSearch/Embed", search_pb2.EmbedRequest()),),
    "fill": (("/wasteml.v1.Forecasting/PredictFillLevel", forecasting_pb2.PredictFillLevelRequest()),),
    "solve": (("/wasteml.v1.RouteOptimizer/Solve", routing_pb2.SolveRequest()),),
}

_STUBS = {
    "SemanticSearch": search_pb2_grpc.SemanticSearchStub,
    "Forecasting": forecasting_pb2_grpc.ForecastingStub,
    "RouteOptimizer": routing_pb2_grpc.RouteOptimizerStub,
}


def probe(address: str, token: str | None = None, timeout_s: float = 10.0) -> dict[str, str]:
    """Ask the server which load-test RPCs it implements.

    Sends each RPC an empty request (validation rejects it before any work) and reads the
    status: UNIMPLEMENTED means the servicer is not wired.

    Returns:
        tag -> the status code name each probe got (``"OK"``, ``"INVALID_ARGUMENT"``,
        ``"UNIMPLEMENTED"``, ...); a tag is usable when its code is not UNIMPLEMENTED.
    """
    metadata = (("authorization", f"Bearer {token}"),) if token else None
    out: dict[str, str] = {}
    with grpc.insecure_channel(address) as channel:
        for tag, calls in PROBES.items():
            code = "OK"
            for method, request in calls:
                service, name = method.strip("/").split("/")
                stub = _STUBS[service.split(".")[-1]](channel)
                try:
                    getattr(stub, name)(request, timeout=timeout_s, metadata=metadata)
                except grpc.RpcError as err:
                    if err.code() == grpc.StatusCode.UNIMPLEMENTED or code == "OK":
                        code = err.code().name
            out[tag] = code
    return out
