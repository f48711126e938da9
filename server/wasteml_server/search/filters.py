"""Search filters: validation, Milvus boolean expressions, exact geo post-filter.

A search narrows by kind, source, creation time, place (a radius around a point, or a
bounding box) and a minimum score; every set filter must hold (logical AND), as in
``wasteml.v1.SearchFilters``.

How each filter is executed:

- ``kinds`` / ``sources``: ``kind in [...]`` in the Milvus expression (scalar index on ``kind``).
  Every string that enters an expression (kinds, sources, document ids in the store's gets,
  deletes and paging) is written by :func:`quote_string`, the one quoting function, so caller
  text can never change an expression's meaning.
- ``created_at``: ``created_at >= start and created_at < end`` on int64 epoch seconds
  (start inclusive, end exclusive; whole-second resolution, times floored).
- ``bounding_box``: ``lat``/``lon`` ranges in the expression (inclusive edges). A box must have
  ``south_west`` <= ``north_east`` in both coordinates; a box across the antimeridian is
  rejected (send two searches), as is an inverted latitude range.
- ``radius``: the expression holds the bounding box that encloses the circle (a prefilter,
  a superset), and every candidate is then checked exactly with the haversine distance
  (:func:`wasteml_server.core.geo.haversine_m`); the store over-fetches until ``top_k`` hits pass or the filtered
  slice is exhausted (see ``MilvusStore.search``). The enclosing box follows J. P. Matuschek,
  "Finding Points Within a Distance of a Latitude/Longitude Using Bounding Coordinates"
  (2011): angular radius d = r / R, latitude range lat +- d, longitude range
  lon +- asin(sin d / cos lat). Limits: when the circle reaches a pole (lat + d >= 90 or
  lat - d <= -90) the longitude range is the whole circle; when it crosses the antimeridian
  the longitude range is split in two (``or``); a radius of half the Earth's circumference
  or more covers every point. Distances are on a sphere of radius :data:`wasteml_server.core.geo.EARTH_RADIUS_M`;
  against the WGS84 ellipsoid the haversine error is below 0.5 % (so a point 0.5 % inside
  or outside the radius may be classified differently from a geodesic computation).
- ``min_score``: applied to hits in score order (scores are cosine similarities in -1..1).

Documents without a location are stored with the sentinel coordinates
:data:`NO_LOCATION_DEG`, outside every valid range, so they never pass a geo filter.
"""

from __future__ import annotations

import math
import re
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import datetime

import numpy as np

from wasteml_server.core.errors import FieldViolation
from wasteml_server.core.geo import EARTH_RADIUS_M, GeoPoint, haversine_m
from wasteml_server.search.documents import (
    DEFAULT_MAX_TEXT_CHARS,
    MAX_LABEL_BYTES,
    epoch_s,
    label_violations,
    raise_violations,
    text_violations,
)

#: Stored latitude and longitude of a document that has no location: outside -180..180, so
#: no geo expression selects it.
NO_LOCATION_DEG = 1000.0

#: Largest ``top_k`` a search may ask for (``SearchRequest.top_k``: 1..1000).
MAX_TOP_K = 1000

#: Largest number of kinds or sources in one filter.
MAX_FILTER_VALUES = 256

#: Degrees added around the circle's enclosing box so float rounding never drops a point that
#: the exact haversine check would keep (1e-9 deg is ~0.1 mm).
_BOX_MARGIN_DEG = 1e-9


@dataclass(frozen=True, slots=True)
class TimeRange:
    """A creation-time range (``wasteml.v1.TimeRange``).

    Attributes:
        start_time: inclusive lower bound (aware ``datetime``); ``None`` = unbounded.
        end_time: exclusive upper bound; ``None`` = unbounded. Must be after ``start_time``.
    """

    start_time: datetime | None = None
    end_time: datetime | None = None


@dataclass(frozen=True, slots=True)
class GeoCircle:
    """Points within ``radius_m`` metres (great circle) of ``center`` (``wasteml.v1.GeoCircle``)."""

    center: GeoPoint
    radius_m: float


@dataclass(frozen=True, slots=True)
class GeoBoundingBox:
    """Points with south_west <= (lat, lon) <= north_east (``wasteml.v1.GeoBoundingBox``)."""

    south_west: GeoPoint
    north_east: GeoPoint


@dataclass(frozen=True, slots=True)
class SearchFilters:
    """Filters of one search (``wasteml.v1.SearchFilters``); every set filter must hold.

    Attributes:
        kinds: keep only these document kinds; empty = any.
        created_at: keep only documents created in this range; ``None`` = any time.
        radius: keep only documents within a circle (exclusive with ``bounding_box``).
        bounding_box: keep only documents inside a box (exclusive with ``radius``).
        min_score: keep only hits with cosine similarity >= this (-1..1); ``None`` = no minimum.
        sources: keep only documents from these sources; empty = any.
    """

    kinds: tuple[str, ...] = ()
    created_at: TimeRange | None = None
    radius: GeoCircle | None = None
    bounding_box: GeoBoundingBox | None = None
    min_score: float | None = None
    sources: tuple[str, ...] = field(default=())


def filter_violations(filters: SearchFilters, prefix: str = "filters") -> list[FieldViolation]:
    """Every reason ``filters`` is invalid, as field violations under ``prefix``.

    Checks: latitudes within -90..90 and longitudes within -180..180 (finite), ``radius_m`` > 0
    and finite, box corners not inverted, ``end_time`` after ``start_time``, aware times,
    ``min_score`` within -1..1, at most :data:`MAX_FILTER_VALUES` kinds/sources, each
    non-empty, at most 256 UTF-8 bytes and free of control characters (the rule of stored
    kinds and sources, ``documents.label_violations``), not both a radius and a box.
    """
    out: list[FieldViolation] = []
    for name in ("kinds", "sources"):
        values = getattr(filters, name)
        if isinstance(values, str):
            out.append(FieldViolation(f"{prefix}.{name}", "must be a list of strings"))
            continue
        if len(values) > MAX_FILTER_VALUES:
            out.append(FieldViolation(f"{prefix}.{name}", f"at most {MAX_FILTER_VALUES} values, got {len(values)}"))
            continue
        for i, v in enumerate(values):
            out += label_violations(v, f"{prefix}.{name}[{i}]", max_bytes=MAX_LABEL_BYTES, required=True)
    tr = filters.created_at
    if tr is not None:
        for name in ("start_time", "end_time"):
            t = getattr(tr, name)
            if t is not None and (not isinstance(t, datetime) or t.tzinfo is None):
                out.append(FieldViolation(f"{prefix}.created_at.{name}", "must be timezone-aware"))
        if (
            isinstance(tr.start_time, datetime)
            and isinstance(tr.end_time, datetime)
            and tr.start_time.tzinfo is not None
            and tr.end_time.tzinfo is not None
            and tr.end_time <= tr.start_time
        ):
            out.append(
                FieldViolation(
                    f"{prefix}.created_at.end_time",
                    f"must be after start_time ({tr.start_time.isoformat()}), "
                    f"got {tr.end_time.isoformat()}",
                )
            )
    if filters.radius is not None and filters.bounding_box is not None:
        out.append(FieldViolation(f"{prefix}.radius", "set either radius or bounding_box, not both"))
    if filters.radius is not None:
        c = filters.radius
        out.extend(c.center.violations(f"{prefix}.radius.center"))
        r = c.radius_m
        if not (isinstance(r, int | float) and math.isfinite(r) and r > 0):
            out.append(FieldViolation(f"{prefix}.radius.radius_m", f"must be > 0 metres, got {r}"))
    if filters.bounding_box is not None:
        b = filters.bounding_box
        sw_bad = b.south_west.violations(f"{prefix}.bounding_box.south_west")
        ne_bad = b.north_east.violations(f"{prefix}.bounding_box.north_east")
        out.extend(sw_bad + ne_bad)
        if not sw_bad and not ne_bad:
            if b.north_east.latitude_deg < b.south_west.latitude_deg:
                out.append(
                    FieldViolation(
                        f"{prefix}.bounding_box.north_east.latitude_deg",
                        "must be >= south_west.latitude_deg (inverted box)",
                    )
                )
            if b.north_east.longitude_deg < b.south_west.longitude_deg:
                out.append(
                    FieldViolation(
                        f"{prefix}.bounding_box.north_east.longitude_deg",
                        "must be >= south_west.longitude_deg (inverted box; a box across the "
                        "antimeridian is not supported, send two searches)",
                    )
                )
    s = filters.min_score
    if s is not None and not (isinstance(s, int | float) and math.isfinite(s) and -1 <= s <= 1):
        out.append(FieldViolation(f"{prefix}.min_score", f"must be within -1..1, got {s}"))
    return out


def validate_search(
    query: str | None,
    top_k: int,
    filters: SearchFilters | None,
    max_query_chars: int = DEFAULT_MAX_TEXT_CHARS,
) -> None:
    """Validate a search request (``wasteml.v1.SearchRequest``).

    Args:
        query: the query text; ``None`` skips the check (vector searches).
        top_k: hits wanted, 1..:data:`MAX_TOP_K`.
        filters: the filters or ``None``.
        max_query_chars: longest query in characters (``settings.search_max_text_chars``),
            checked before the query is tokenised.

    Raises:
        InvalidArgumentError: naming every bad field, e.g. ``top_k``, ``query``,
            ``filters.radius.radius_m``, ``filters.created_at.end_time``.
    """
    out: list[FieldViolation] = []
    if query is not None:
        out += text_violations(query, "query", max_query_chars)
    if isinstance(top_k, bool) or not isinstance(top_k, int) or not 1 <= top_k <= MAX_TOP_K:
        out.append(FieldViolation("top_k", f"must be within 1..{MAX_TOP_K}, got {top_k}"))
    if filters is not None:
        out.extend(filter_violations(filters))
    raise_violations(out, "filters")


#: Escapes inside a double-quoted Milvus string literal. Both back-ends read these the same:
#: Milvus Lite's lexer (``\" \' \\ \n \r \t``) and the Milvus server's (Go
#: ``strconv.Unquote`` after its ANTLR lexer, which refuses a raw CR or LF inside a string).
#: Every other character, control characters and non-ASCII included, stands for itself.
_LITERAL_ESCAPES = {"\\": "\\\\", '"': '\\"', "\n": "\\n", "\r": "\\r", "\t": "\\t"}
_NEEDS_ESCAPE = re.compile('[\\\\"\n\r\t]')


def quote_string(value: str) -> str:
    r"""``value`` as a Milvus expression string literal: the one way caller text enters an
    expression (filters here; ids in ``MilvusStore`` gets, deletes and paging).

    Double quotes around; backslash, double quote, LF, CR and tab escaped
    (:data:`_LITERAL_ESCAPES`); every other character as is. The literal always parses back to
    exactly ``value`` on Milvus Lite and on a Milvus server (tested on both), so an id such as
    ``zz'] or id not in ['d1`` is just an id that does not exist.

    Examples: ``quote_string("O'Brien")`` -> ``"O'Brien"``; ``quote_string('a"b\c')`` ->
    ``"a\"b\\c"``.

    Raises:
        TypeError: ``value`` is not a ``str`` (a bug of the caller, not input).
    """
    if not isinstance(value, str):
        raise TypeError(f"quote_string needs a str, got {type(value).__name__}")
    return '"' + _NEEDS_ESCAPE.sub(lambda m: _LITERAL_ESCAPES[m.group()], value) + '"'


def in_expression(field_name: str, values: Sequence[str]) -> str:
    """``field in ["a", "b"]`` with every value quoted by :func:`quote_string`.

    Args:
        field_name: a schema field name (this server's, never caller input).
        values: one or more strings.

    Raises:
        ValueError: ``values`` is empty (Milvus has no empty list literal semantics we rely on).
    """
    if not values:
        raise ValueError("in_expression needs at least one value")
    return f"{field_name} in [" + ", ".join(quote_string(v) for v in values) + "]"


def circle_bounding_ranges(circle: GeoCircle) -> tuple[float, float, list[tuple[float, float]]]:
    """The latitude range and longitude ranges of the box enclosing a circle.

    Args:
        circle: centre (WGS84 degrees) and radius in metres.

    Returns:
        ``(lat_min, lat_max, [(lon_min, lon_max), ...])`` in degrees: one longitude range, two
        when the circle crosses the antimeridian, ``[(-180, 180)]`` when it covers a pole. A
        small margin (1e-9 deg) is added so the box is a strict superset of the circle.
        Formula: Matuschek (2011), see the module docstring.
    """
    lat = math.radians(circle.center.latitude_deg)
    lon = circle.center.longitude_deg
    d = circle.radius_m / EARTH_RADIUS_M  # angular radius, radians
    if d >= math.pi:
        return -90.0, 90.0, [(-180.0, 180.0)]
    lat_min = math.degrees(lat - d) - _BOX_MARGIN_DEG
    lat_max = math.degrees(lat + d) + _BOX_MARGIN_DEG
    if lat_max >= 90.0 or lat_min <= -90.0:
        return max(lat_min, -90.0), min(lat_max, 90.0), [(-180.0, 180.0)]
    dlon = math.degrees(math.asin(min(1.0, math.sin(d) / math.cos(lat)))) + _BOX_MARGIN_DEG
    lo, hi = lon - dlon, lon + dlon
    if lo < -180.0:
        return lat_min, lat_max, [(lo + 360.0, 180.0), (-180.0, hi)]
    if hi > 180.0:
        return lat_min, lat_max, [(lo, 180.0), (-180.0, hi - 360.0)]
    return lat_min, lat_max, [(lo, hi)]


def build_expression(filters: SearchFilters | None) -> str:
    """The Milvus boolean expression selecting the (pre)filtered slice.

    The expression is exact for kinds, sources, time range and bounding box; for a radius it
    selects the enclosing box and :func:`within_radius` must be applied to the candidates.

    Args:
        filters: validated filters (see :func:`validate_search`) or ``None``.

    Returns:
        e.g. ``'kind in ["Pick up Dead Animal"] and created_at >= 1420070400 and lat >= ...'``;
        ``""`` for no filter.
    """
    if filters is None:
        return ""
    parts: list[str] = []
    if filters.kinds:
        parts.append(in_expression("kind", filters.kinds))
    if filters.sources:
        parts.append(in_expression("source", filters.sources))
    tr = filters.created_at
    if tr is not None:
        if tr.start_time is not None:
            parts.append(f"created_at >= {epoch_s(tr.start_time)}")
        if tr.end_time is not None:
            # end exclusive at whole seconds: created_at < ceil(end)
            parts.append(f"created_at < {math.ceil(tr.end_time.timestamp())}")
    if filters.bounding_box is not None:
        b = filters.bounding_box
        parts.append(
            f"lat >= {b.south_west.latitude_deg!r} and lat <= {b.north_east.latitude_deg!r} and "
            f"lon >= {b.south_west.longitude_deg!r} and lon <= {b.north_east.longitude_deg!r}"
        )
    if filters.radius is not None:
        lat_min, lat_max, lon_ranges = circle_bounding_ranges(filters.radius)
        lon_expr = " or ".join(f"(lon >= {lo!r} and lon <= {hi!r})" for lo, hi in lon_ranges)
        parts.append(f"lat >= {lat_min!r} and lat <= {lat_max!r} and ({lon_expr})")
    return " and ".join(f"({p})" for p in parts)


def within_radius(circle: GeoCircle, lat_deg: float, lon_deg: float) -> tuple[bool, float]:
    """Exact radius check of one stored point: ``(inside, distance_m)``.

    A document without a location (sentinel :data:`NO_LOCATION_DEG`) is never inside.
    """
    if abs(lat_deg) > 90.0 or abs(lon_deg) > 180.0:
        return False, math.inf
    dist = float(
        haversine_m(circle.center.latitude_deg, circle.center.longitude_deg, lat_deg, lon_deg)
    )
    return dist <= circle.radius_m, dist


def matches(
    filters: SearchFilters | None,
    *,
    kind: str,
    source: str,
    created_at_s: int,
    lat_deg: float,
    lon_deg: float,
) -> bool:
    """Whether one stored document passes the filters (``min_score`` excluded).

    The reference predicate, independent of Milvus: used by the evaluation and tests to
    check that every hit satisfies its filter and to build the brute-force slice.
    """
    if filters is None:
        return True
    if filters.kinds and kind not in filters.kinds:
        return False
    if filters.sources and source not in filters.sources:
        return False
    tr = filters.created_at
    if tr is not None:
        if tr.start_time is not None and created_at_s < epoch_s(tr.start_time):
            return False
        if tr.end_time is not None and created_at_s >= math.ceil(tr.end_time.timestamp()):
            return False
    if filters.bounding_box is not None:
        b = filters.bounding_box
        if not (
            b.south_west.latitude_deg <= lat_deg <= b.north_east.latitude_deg
            and b.south_west.longitude_deg <= lon_deg <= b.north_east.longitude_deg
        ):
            return False
    if filters.radius is not None and not within_radius(filters.radius, lat_deg, lon_deg)[0]:
        return False
    return True


def matches_mask(
    filters: SearchFilters | None,
    *,
    kind: Sequence[str],
    source: Sequence[str],
    created_at_s: np.ndarray,
    lat_deg: np.ndarray,
    lon_deg: np.ndarray,
) -> np.ndarray:
    """Vectorised :func:`matches` over n documents: bool ``[n]`` (numpy, for brute force)."""
    n = len(created_at_s)
    mask = np.ones(n, dtype=bool)
    if filters is None:
        return mask
    if filters.kinds:
        mask &= np.isin(np.asarray(kind, dtype=object), list(filters.kinds))
    if filters.sources:
        mask &= np.isin(np.asarray(source, dtype=object), list(filters.sources))
    tr = filters.created_at
    if tr is not None:
        if tr.start_time is not None:
            mask &= created_at_s >= epoch_s(tr.start_time)
        if tr.end_time is not None:
            mask &= created_at_s < math.ceil(tr.end_time.timestamp())
    if filters.bounding_box is not None:
        b = filters.bounding_box
        mask &= (lat_deg >= b.south_west.latitude_deg) & (lat_deg <= b.north_east.latitude_deg)
        mask &= (lon_deg >= b.south_west.longitude_deg) & (lon_deg <= b.north_east.longitude_deg)
    if filters.radius is not None:
        c = filters.radius
        located = (np.abs(lat_deg) <= 90.0) & (np.abs(lon_deg) <= 180.0)
        dist = haversine_m(c.center.latitude_deg, c.center.longitude_deg, lat_deg, lon_deg)
        mask &= located & (np.asarray(dist) <= c.radius_m)
    return mask
