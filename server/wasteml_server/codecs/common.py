"""Codecs of the ``wasteml.v1`` common messages and well-known types: instants, durations,
calendar dates, points, model references and fallback notices.

Instants: ``google.protobuf.Timestamp`` <-> timezone-aware ``datetime`` (UTC) or Unix seconds.
Durations: ``google.protobuf.Duration`` <-> seconds (float). Nothing here validates domain
rules; a value the domain cannot hold (a date that does not exist) is an
``InvalidArgumentError`` naming the field.
"""

from __future__ import annotations

import datetime as dt
import math
from collections.abc import Callable, Iterable
from typing import TypeVar

from google.protobuf.duration_pb2 import Duration
from google.protobuf.timestamp_pb2 import Timestamp

from wasteml.v1 import common_pb2
from wasteml_server.core.common import FallbackNotice, ModelRef
from wasteml_server.core.errors import InvalidArgumentError, under
from wasteml_server.core.geo import GeoPoint

M = TypeVar("M")
T = TypeVar("T")


def each(items: Iterable[M], field: str, decode: Callable[[M], T]) -> list[T]:
    """``decode`` every element of a repeated field, each under ``<field>[i]`` for its errors."""
    out: list[T] = []
    for i, item in enumerate(items):
        with under(f"{field}[{i}]"):
            out.append(decode(item))
    return out


def timestamp(when: dt.datetime) -> Timestamp:
    """An aware ``datetime`` as a ``Timestamp``."""
    out = Timestamp()
    out.FromDatetime(when.astimezone(dt.UTC))
    return out


def timestamp_s(seconds: float) -> Timestamp:
    """Unix seconds as a ``Timestamp`` (nanosecond resolution)."""
    whole = math.floor(seconds)
    return Timestamp(seconds=int(whole), nanos=int(round((seconds - whole) * 1e9)) % 1_000_000_000)


#: Range of a valid Timestamp's seconds (0001-01-01 .. 9999-12-31, google/protobuf/timestamp.proto).
_TIMESTAMP_SECONDS = (-62_135_596_800, 253_402_300_799)
#: Range of a valid Duration's seconds (about +-10,000 years, google/protobuf/duration.proto).
_DURATION_SECONDS = 315_576_000_000


def _check_timestamp(ts: Timestamp, field: str) -> None:
    if not (_TIMESTAMP_SECONDS[0] <= ts.seconds <= _TIMESTAMP_SECONDS[1] and 0 <= ts.nanos < 1_000_000_000):
        raise InvalidArgumentError(field, f"not a valid Timestamp (seconds {ts.seconds}, nanos {ts.nanos}): "
                                   "seconds within years 1..9999, nanos in 0..999999999")


def instant(ts: Timestamp, field: str) -> dt.datetime:
    """A ``Timestamp`` as an aware UTC ``datetime``.

    Raises:
        InvalidArgumentError: not a valid Timestamp (naming ``field``).
    """
    _check_timestamp(ts, field)
    return ts.ToDatetime(tzinfo=dt.UTC)


def seconds_of(ts: Timestamp, field: str) -> float:
    """A ``Timestamp`` as Unix seconds.

    Raises:
        InvalidArgumentError: not a valid Timestamp (naming ``field``).
    """
    _check_timestamp(ts, field)
    return (ts.seconds * 1_000_000_000 + ts.nanos) / 1_000_000_000  # int / int: one correct rounding


def duration_s(d: Duration, field: str) -> float:
    """A ``Duration`` in seconds.

    Raises:
        InvalidArgumentError: not a valid Duration (seconds and nanos of different signs, or
            out of range), naming ``field``.
    """
    if not (abs(d.seconds) <= _DURATION_SECONDS and abs(d.nanos) < 1_000_000_000
            and (d.seconds == 0 or d.nanos == 0 or (d.seconds > 0) == (d.nanos > 0))):
        raise InvalidArgumentError(field, f"not a valid Duration (seconds {d.seconds}, nanos {d.nanos})")
    return (d.seconds * 1_000_000_000 + d.nanos) / 1_000_000_000  # int / int: one correct rounding


def duration(seconds: float) -> Duration:
    """Seconds as a ``Duration`` (nanosecond resolution)."""
    out = Duration()
    out.FromNanoseconds(int(round(seconds * 1e9)))
    return out


def date_from_proto(value: common_pb2.CalendarDate) -> dt.date:
    """``CalendarDate`` -> ``date``.

    Raises:
        InvalidArgumentError: no such calendar date (field "", to be named by the caller's scope).
    """
    try:
        return dt.date(value.year, value.month, value.day)
    except ValueError as err:
        raise InvalidArgumentError("", f"not a calendar date: {err}") from None


def date_to_proto(day: dt.date) -> common_pb2.CalendarDate:
    """``date`` -> ``CalendarDate``."""
    return common_pb2.CalendarDate(year=day.year, month=day.month, day=day.day)


def point_from_proto(p: common_pb2.GeoPoint) -> GeoPoint:
    """``GeoPoint`` -> domain point (validated where it is used)."""
    return GeoPoint(p.latitude_deg, p.longitude_deg)


def point_to_proto(p: GeoPoint, out: common_pb2.GeoPoint | None = None) -> common_pb2.GeoPoint:
    """Domain point -> ``GeoPoint`` (written into ``out`` when given)."""
    out = out if out is not None else common_pb2.GeoPoint()
    out.latitude_deg, out.longitude_deg = p.latitude_deg, p.longitude_deg
    return out


def model_ref_from_proto(ref: common_pb2.ModelRef) -> ModelRef:
    """``ModelRef`` of a request -> domain ref (version "" = latest).

    Raises:
        InvalidArgumentError: a version that is not a positive integer (field ``version``).
    """
    return ModelRef(ref.name, ModelRef.parse_version(ref.version, "version"))


def model_ref_to_proto(ref: ModelRef) -> common_pb2.ModelRef:
    """Domain ref -> ``ModelRef`` (a reply always names the serving version)."""
    return common_pb2.ModelRef(name=ref.name, version="" if ref.version is None else str(ref.version))


def fallback_to_proto(notice: FallbackNotice) -> common_pb2.FallbackNotice:
    """Domain notice -> ``FallbackNotice``."""
    return common_pb2.FallbackNotice(dependency=notice.dependency, served_by=notice.served_by,
                                     reason=notice.reason)
