"""The real Blantyre day as a ``PlanDayRequest``: what a dispatch client would send.

53 public skips (state from ``planning.blantyre.skip_states``), the storage yard (``bin_ID``
56) as depot, the Mzedi dump (54) as the facility where a skip loader tips, the study's real
asymmetric road-distance matrix (km -> m) and durations at ``routing.blantyre.SPEED_KMH``;
skip loaders carry one skip (capacity 1 lift), lift in ``LIFT_S`` and tip in ``TIP_S`` seconds,
over an 8-hour shift 07:00-15:00 Africa/Blantyre, and park empty.
"""

from __future__ import annotations

from datetime import date
from pathlib import Path

from google.protobuf.duration_pb2 import Duration

from wasteml.v1 import common_pb2, planning_pb2, routing_pb2
from wasteml_server.codecs.common import timestamp
from wasteml_tools.planning.blantyre import skip_states
from wasteml_tools.routing.blantyre import (
    DEPOT_ID,
    DUMP_ID,
    LIFT_S,
    SPEED_KMH,
    TIP_S,
    load_road_distance_m,
    load_sites,
)

TIME_ZONE = "Africa/Blantyre"
#: Default service day: the readings of the fullness log are dense in the two weeks before it.
DEFAULT_SERVICE_DATE = date(2021, 5, 31)
SHIFT_START_S = 7 * 3600
SHIFT_END_S = 15 * 3600


def plan_day_request(
    data_dir: Path,
    service_date: date = DEFAULT_SERVICE_DATE,
    trucks: int = 3,
    time_limit_s: float = 20.0,
    complaint_radius_m: float = 250.0,
    complaint_lookback_days: int = 14,
) -> planning_pb2.PlanDayRequest:
    """The Blantyre ``PlanDayRequest`` for ``service_date`` with ``trucks`` skip loaders."""
    sites = load_sites(data_dir)
    dist = load_road_distance_m(data_dir)
    speed_m_s = SPEED_KMH / 3.6
    size = dist.shape[0]
    req = planning_pb2.PlanDayRequest(
        service_date=common_pb2.CalendarDate(year=service_date.year, month=service_date.month, day=service_date.day),
        time_zone=TIME_ZONE,
        dimensions=[routing_pb2.CapacityDimension(name="lifts", unit="skip")],
        matrix=routing_pb2.TravelMatrix(
            size=size,
            distances_m=[float(x) for x in dist.ravel()],
            durations_s=[float(round(x / speed_m_s)) for x in dist.ravel()],
        ),
        policy=planning_pb2.PlanningPolicy(
            must_visit_fill_fraction=0.8,
            overflow_penalty=200.0,
            base_skip_penalty=5.0,
            complaint_radius_m=complaint_radius_m,
            complaint_lookback=Duration(seconds=complaint_lookback_days * 86400),
            complaint_query="overflowing skip, rubbish piling up around the dumpster",
            complaint_min_score=0.3,
            complaint_makes_must_visit=True,
        ),
        solve_options=routing_pb2.SolveOptions(time_limit=Duration(seconds=int(time_limit_s))),
    )
    yard, dump = sites[DEPOT_ID - 1], sites[DUMP_ID - 1]
    req.depots.add(id=yard.name, location=common_pb2.GeoPoint(latitude_deg=yard.lat_deg, longitude_deg=yard.lon_deg),
                   location_index=DEPOT_ID - 1)
    req.facilities.add(id=dump.name, kind=routing_pb2.FACILITY_KIND_DUMP, location_index=DUMP_ID - 1,
                       location=common_pb2.GeoPoint(latitude_deg=dump.lat_deg, longitude_deg=dump.lon_deg),
                       service_duration_s=TIP_S)
    req.fleet.add(id="skip-loader", count=trucks, capacity=[1],
                  shift=routing_pb2.TimeWindow(start_s=SHIFT_START_S, end_s=SHIFT_END_S),
                  start_depot_index=0, end_depot_index=0, cost_per_km=1.0, reload_facility_indices=[0],
                  end_empty=True)
    for s in skip_states(service_date, data_dir):
        b = req.bins.add(bin_id=f"skip-{s.bin_id}", location_index=s.bin_id - 1, capacity_l=7000.0,
                         demand=[1], service_duration_s=LIFT_S,
                         location=common_pb2.GeoPoint(latitude_deg=s.lat_deg, longitude_deg=s.lon_deg))
        for when, fill in s.readings:
            b.recent_readings.add(time=timestamp(when), fill_fraction=fill)
        if s.last_emptied_at is not None:
            b.last_emptied_at.CopyFrom(timestamp(s.last_emptied_at))
        if s.prior_rate_per_day is not None:
            b.prior_fill_rate_per_day = s.prior_rate_per_day
    return req
