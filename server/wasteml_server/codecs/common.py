"""Codecs of the ``wasteml.v1`` common messages and well-known types: instants, durations,
calendar dates, points, model references and fallback notices.

Instants: ``google.protobuf.Timestamp`` <-> timezone-aware ``datetime`` (UTC) or Unix seconds.
Durations: ``google.protobuf.Duration`` <-> seconds (float). Nothing here validates domain
rules; a value the domain cannot hold (a date that does not exist) is an
``InvalidArgumentError`` naming the field.

**Representable range** (the one place every codec checks it, routing, planning and
forecasting alike): a Timestamp is valid when its ``seconds`` lie in
:data:`TIMESTAMP_SECONDS_RANGE` (0001-01-01T00:00:00Z .. 9999-12-31T23:59:59Z, the range
``google/protobuf/timestamp.proto`` defines and Python's ``datetime`` holds) and its ``nanos``
in ``0..999,999,999``; a Duration when ``|seconds| <= MAX_DURATION_SECONDS`` (about 10,000
years, ``duration.proto``), ``|nanos| < 1e9`` and both have the same sign. Anything else is
INVALID_ARGUMENT naming the field (``check_timestamp``, ``check_duration``), before any
conversion that could overflow. Rules of a domain on top of that (PlanDay's years 2..9998, a
positive time limit) are the domain's.
"""

from __future__ import annotations

import datetime as dt
import math
import time
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


#: Elements :func:`each` decodes between two offers of the GIL to other threads.
YIELD_EVERY = 64


def each(items: Iterable[M], field: str, decode: Callable[[M], T]) -> list[T]:
    """``decode`` every element of a repeated field, each under ``<field>[i]`` for its errors.

    Every :data:`YIELD_EVERY` elements it lets other threads run (``time.sleep(0)`` releases
    the GIL): decoding runs in a worker thread next to the server's event loop, which would
    otherwise wait up to the interpreter's switch interval (5 ms) for the GIL at every step of
    answering a call.
    """
    out: list[T] = []
    for i, item in enumerate(items):
        with under(f"{field}[{i}]"):
            out.append(decode(item))
        if i % YIELD_EVERY == YIELD_EVERY - 1:
            time.sleep(0)
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


#: Seconds of a valid Timestamp: 0001-01-01T00:00:00Z .. 9999-12-31T23:59:59Z (timestamp.proto).
TIMESTAMP_SECONDS_RANGE = (-62_135_596_800, 253_402_300_799)
#: Largest ``|seconds|`` of a valid Duration: 10,000 years of 365.25 days (duration.proto).
MAX_DURATION_SECONDS = 315_576_000_000


def check_timestamp(ts: Timestamp, field: str) -> None:
    """Refuse a Timestamp outside the representable range (module docstring).

    Raises:
        InvalidArgumentError: naming ``field``, stating the range.
    """
    lo, hi = TIMESTAMP_SECONDS_RANGE
    if not (lo <= ts.seconds <= hi and 0 <= ts.nanos < 1_000_000_000):
        raise InvalidArgumentError(field, f"not a valid Timestamp (seconds {ts.seconds}, nanos {ts.nanos}): "
                                   f"seconds within years 1..9999 ({lo}..{hi}), nanos in 0..999999999")


def check_duration(d: Duration, field: str) -> None:
    """Refuse a Duration outside the representable range or with mixed signs (module docstring).

    Raises:
        InvalidArgumentError: naming ``field``, stating the range.
    """
    if not (abs(d.seconds) <= MAX_DURATION_SECONDS and abs(d.nanos) < 1_000_000_000
            and (d.seconds == 0 or d.nanos == 0 or (d.seconds > 0) == (d.nanos > 0))):
        raise InvalidArgumentError(field, f"not a valid Duration (seconds {d.seconds}, nanos {d.nanos}): "
                                   f"|seconds| at most {MAX_DURATION_SECONDS} (10,000 years), |nanos| "
                                   "below 1e9, both of the same sign")


def instant(ts: Timestamp, field: str) -> dt.datetime:
    """A ``Timestamp`` as an aware UTC ``datetime``.

    Raises:
        InvalidArgumentError: not a valid Timestamp (naming ``field``).
    """
    check_timestamp(ts, field)
    return ts.ToDatetime(tzinfo=dt.UTC)


def seconds_of(ts: Timestamp, field: str) -> float:
    """A ``Timestamp`` as Unix seconds.

    Raises:
        InvalidArgumentError: not a valid Timestamp (naming ``field``).
    """
    check_timestamp(ts, field)
    return (ts.seconds * 1_000_000_000 + ts.nanos) / 1_000_000_000  # int / int: one correct rounding


def duration_s(d: Duration, field: str) -> float:
    """A ``Duration`` in seconds.

    Raises:
        InvalidArgumentError: not a valid Duration (seconds and nanos of different signs, or
            out of range), naming ``field``.
    """
    check_duration(d, field)
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
