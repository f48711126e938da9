"""Filter validation, expression building and the geo geometry, without Milvus."""

from __future__ import annotations

import math
from datetime import UTC, datetime

import numpy as np
import pytest

from wasteml_server.core.errors import InvalidArgumentError
from wasteml_server.search.documents import GeoPoint
from wasteml_server.search.filters import (
    EARTH_RADIUS_M,
    GeoBoundingBox,
    GeoCircle,
    SearchFilters,
    TimeRange,
    build_expression,
    circle_bounding_ranges,
    haversine_m,
    matches,
    validate_search,
)

T0 = datetime(2015, 3, 1, tzinfo=UTC)
T1 = datetime(2015, 4, 1, tzinfo=UTC)


@pytest.mark.parametrize(
    ("top_k", "filters", "field"),
    [
        (0, None, "top_k"),
        (1001, None, "top_k"),
        (10, SearchFilters(radius=GeoCircle(GeoPoint(91.0, -71.0), 500)), "filters.radius.center.latitude_deg"),
        (10, SearchFilters(radius=GeoCircle(GeoPoint(42.0, -181.0), 500)), "filters.radius.center.longitude_deg"),
        (10, SearchFilters(radius=GeoCircle(GeoPoint(42.0, -71.0), 0.0)), "filters.radius.radius_m"),
        (10, SearchFilters(radius=GeoCircle(GeoPoint(42.0, -71.0), -5.0)), "filters.radius.radius_m"),
        (10, SearchFilters(radius=GeoCircle(GeoPoint(42.0, -71.0), math.nan)), "filters.radius.radius_m"),
        (10, SearchFilters(created_at=TimeRange(T1, T0)), "filters.created_at.end_time"),
        (10, SearchFilters(created_at=TimeRange(T0, T0)), "filters.created_at.end_time"),
        (10, SearchFilters(min_score=1.5), "filters.min_score"),
        (10, SearchFilters(min_score=-1.01), "filters.min_score"),
        (
            10,
            SearchFilters(bounding_box=GeoBoundingBox(GeoPoint(42.4, -71.1), GeoPoint(42.3, -71.0))),
            "filters.bounding_box.north_east.latitude_deg",
        ),
        (
            10,
            SearchFilters(bounding_box=GeoBoundingBox(GeoPoint(42.3, -71.0), GeoPoint(42.4, -71.1))),
            "filters.bounding_box.north_east.longitude_deg",
        ),
        (
            10,
            SearchFilters(bounding_box=GeoBoundingBox(GeoPoint(-95, -71.0), GeoPoint(42.4, -71.1))),
            "filters.bounding_box.south_west.latitude_deg",
        ),
        (10, SearchFilters(kinds=("",)), "filters.kinds[0]"),
        (10, SearchFilters(created_at=TimeRange(datetime(2015, 1, 1), None)), "filters.created_at.start_time"),
    ],
)
def test_bad_filters_name_the_field(top_k: int, filters: SearchFilters | None, field: str) -> None:
    """Each invalid search argument raises InvalidArgumentError naming its dotted field."""
    with pytest.raises(InvalidArgumentError) as err:
        validate_search("dead raccoon", top_k, filters)
    assert field in [v.field for v in err.value.violations], err.value.violations


def test_every_violation_is_reported_and_query_checked() -> None:
    """A request with several bad fields lists them all, and a blank query is rejected."""
    bad = SearchFilters(radius=GeoCircle(GeoPoint(100.0, 200.0), 0), min_score=2)
    with pytest.raises(InvalidArgumentError) as err:
        validate_search("  ", 0, bad)
    fields = {v.field for v in err.value.violations}
    assert fields == {
        "query",
        "top_k",
        "filters.radius.center.latitude_deg",
        "filters.radius.center.longitude_deg",
        "filters.radius.radius_m",
        "filters.min_score",
    }
    assert err.value.field == "query"


def test_valid_filters_pass() -> None:
    """Valid filters at the edges of their ranges are accepted."""
    validate_search(
        "x",
        1000,
        SearchFilters(
            kinds=("Needle Pickup",),
            created_at=TimeRange(T0, T1),
            radius=GeoCircle(GeoPoint(90.0, 180.0), 1.0),
            min_score=-1.0,
        ),
    )


def test_expression_escapes_quotes_and_combines_filters() -> None:
    """Kinds are quoted with escapes and all filters are ANDed, time end exclusive."""
    expr = build_expression(
        SearchFilters(kinds=('a "quoted" kind', "b\\c"), created_at=TimeRange(T0, T1))
    )
    assert 'kind in ["a \\"quoted\\" kind", "b\\\\c"]' in expr
    assert f"created_at >= {int(T0.timestamp())}" in expr
    assert f"created_at < {int(T1.timestamp())}" in expr
    assert build_expression(None) == "" and build_expression(SearchFilters()) == ""


def test_haversine_one_degree_of_equator() -> None:
    """One degree of longitude on the equator is 2 pi R / 360 metres."""
    assert haversine_m(0.0, 0.0, 0.0, 1.0) == pytest.approx(2 * math.pi * EARTH_RADIUS_M / 360, rel=1e-9)
    # Boston City Hall to the State House, ~0.4 km (map distance)
    assert 300 < haversine_m(42.3604, -71.0580, 42.3588, -71.0638) < 600


def _destination(lat: float, lon: float, bearing: np.ndarray, dist_m: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Destination point on the sphere (Ed Williams' Aviation Formulary)."""
    p1, l1, d = math.radians(lat), math.radians(lon), dist_m / EARTH_RADIUS_M
    p2 = np.arcsin(np.sin(p1) * np.cos(d) + np.cos(p1) * np.sin(d) * np.cos(bearing))
    l2 = l1 + np.arctan2(np.sin(bearing) * np.sin(d) * np.cos(p1), np.cos(d) - np.sin(p1) * np.sin(p2))
    lon2 = (np.degrees(l2) + 540.0) % 360.0 - 180.0
    return np.degrees(p2), lon2


@pytest.mark.parametrize(
    ("lat", "lon", "radius_m"),
    [(42.3594, -71.0587, 800.0), (0.0, 179.99, 50_000.0), (-10.0, -179.9, 30_000.0), (89.9, 20.0, 20_000.0), (60.0, 10.0, 2_000_000.0)],
)
def test_circle_box_contains_every_point_of_the_circle(lat: float, lon: float, radius_m: float) -> None:
    """Points on and inside the circle (also across the antimeridian and near a pole) lie in
    the enclosing box, and the exact predicate keeps exactly the points within the radius."""
    rng = np.random.default_rng(0)
    bearing = rng.uniform(0, 2 * math.pi, 2000)
    dist = np.concatenate([np.full(1000, radius_m * 0.999999), rng.uniform(0, radius_m, 1000)])
    plat, plon = _destination(lat, lon, bearing, dist)
    lat_min, lat_max, lon_ranges = circle_bounding_ranges(GeoCircle(GeoPoint(lat, lon), radius_m))
    assert np.all((plat >= lat_min) & (plat <= lat_max))
    in_lon = np.zeros(len(plon), dtype=bool)
    for lo, hi in lon_ranges:
        in_lon |= (plon >= lo) & (plon <= hi)
    assert in_lon.all()
    circle = SearchFilters(radius=GeoCircle(GeoPoint(lat, lon), radius_m))
    kw = {"kind": "k", "source": "s", "created_at_s": 0}
    assert all(matches(circle, lat_deg=a, lon_deg=b, **kw) for a, b in zip(plat, plon, strict=True))
    far_lat, far_lon = _destination(lat, lon, bearing[:100], np.full(100, radius_m * 1.01))
    assert not any(matches(circle, lat_deg=a, lon_deg=b, **kw) for a, b in zip(far_lat, far_lon, strict=True))
