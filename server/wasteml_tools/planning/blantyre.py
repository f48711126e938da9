"""The state of the 53 Blantyre skips on a service day, from the real logs.

Sources (``Settings.data_dir / "collection"``; CC BY 4.0, N. Seemann-Ricard, ETH Zurich Global
Health Engineering, "Optimization of solid waste collections in Blantyre, Malawi"):

* ``blantyre_skip_fullness_daily_2020_2021.csv`` — daily readings of 16 skip columns at four
  sites (Bangwe, BCA, Naizi, Chigumula), 0..8 in steps of 1.75; fill fraction =
  ``min(reading / 7, 1)`` as in ``forecasting.fill_level``.
* ``blantyre_skip_deliveries_mzedi_dump.csv`` — every skip tipped at the Mzedi dump, by skip
  origin name: the emptying log of the other skips.
* ``blantyre_skip_filling_rate_estimates.csv`` — the study's ``Q1`` filling rate per skip
  (fraction of a skip per day), the prior rate.

Assumptions (the data does not say; stated so they can be checked):

* **Column -> skip.** The fullness log names sites, not skip ids. Each site's columns that hold
  readings, in the order ``Organic_1, Organic_2, inorganic_1, inorganic_2``, are assigned to
  the skips whose name contains the site name, in ascending ``bin_ID``; extra columns are
  unused. (Bangwe -> 11, 12, 13, 14; BCA -> 25, 26, 27; Chigumula -> 23, 24, 28; Naizi -> 3, 10.)
* **Dump log -> skip.** An arrival from a site with several skips empties the one emptied
  longest ago (round robin in time order).
"""

from __future__ import annotations

import csv
from dataclasses import dataclass
from datetime import UTC, date, datetime, time, timedelta
from pathlib import Path

from wasteml_server.core.errors import InvalidArgumentError

FULLNESS_FILE = "collection/blantyre_skip_fullness_daily_2020_2021.csv"
DUMP_LOG_FILE = "collection/blantyre_skip_deliveries_mzedi_dump.csv"
RATES_FILE = "collection/blantyre_skip_filling_rate_estimates.csv"
SITES_FILE = "collection/blantyre_skips_indexed_with_dump.csv"
#: Fullness reading of a full 7 m3 skip (the data README's inference).
FULL_READING = 7.0
#: Readings are daily; they are taken as made at this local hour (Africa/Blantyre, UTC+2).
READING_HOUR_UTC = 6
SITE_COLUMNS = ("Organic_1", "Organic_2", "inorganic_1", "inorganic_2")
#: Readings older than this before the service day are not sent (the model's horizon).
LOOKBACK_DAYS = 14


@dataclass(frozen=True)
class SkipState:
    """What is known about one skip before its service day.

    Attributes:
        bin_id: the study's ``bin_ID`` (1..53); matrix index ``bin_id - 1``.
        name: the skip's place name.
        lat_deg, lon_deg: WGS84 position.
        readings: ``(time, fill fraction 0..1)`` in time order, within ``LOOKBACK_DAYS``.
        last_emptied_at: last emptying before the service day (from the readings or the dump
            log), or None.
        prior_rate_per_day: the study's Q1 filling rate, fraction per day, or None.
        source: ``"fullness log"``, ``"dump log"`` or ``"none"``.
    """

    bin_id: int
    name: str
    lat_deg: float
    lon_deg: float
    readings: tuple[tuple[datetime, float], ...]
    last_emptied_at: datetime | None
    prior_rate_per_day: float | None
    source: str


def _read(path: Path) -> list[dict[str, str]]:
    with open(path, newline="", encoding="utf-8-sig") as fh:
        return list(csv.DictReader(fh))


def column_assignment(data_dir: Path) -> dict[str, int]:
    """Fullness-log column -> skip ``bin_ID`` (rule in the module docstring)."""
    sites = _read(data_dir / SITES_FILE)
    fullness = _read(data_dir / FULLNESS_FILE)
    out: dict[str, int] = {}
    for site in ("Bangwe", "BCA", "Naizi", "Chigumula"):
        skips = sorted(int(r["bin_ID"]) for r in sites if r["Type"] == "skip" and site.lower() in r["Name"].lower())
        columns = [f"{site}_{c}" for c in SITE_COLUMNS
                   if any(row.get(f"{site}_{c}", "").strip() not in ("", ".") for row in fullness)]
        out.update(dict(zip(columns, skips, strict=False)))
    return out


def skip_states(service_date: date, data_dir: Path) -> list[SkipState]:
    """The state of every skip (``bin_ID`` 1..53) at the start of ``service_date``.

    Raises:
        InvalidArgumentError: ``service_date`` outside the logs (2020-10-21..2021-09-30).
    """
    if not date(2020, 10, 21) <= service_date <= date(2021, 9, 30):
        raise InvalidArgumentError("service_date", "the Blantyre logs cover 2020-10-21..2021-09-30")
    sites = [r for r in _read(data_dir / SITES_FILE) if r["Type"] == "skip"]
    rates = {int(r["bin_ID"]): float(r["Q1"]) for r in _read(data_dir / RATES_FILE) if r["Q1"].strip()}
    day_start = datetime.combine(service_date, time(0), tzinfo=UTC)
    since = day_start - timedelta(days=LOOKBACK_DAYS)

    readings: dict[int, list[tuple[datetime, float]]] = {}
    emptied: dict[int, datetime] = {}
    assignment = column_assignment(data_dir)
    for row in _read(data_dir / FULLNESS_FILE):
        day = datetime.strptime(row["date"], "%d-%b-%y").replace(hour=READING_HOUR_UTC, tzinfo=UTC)
        if day >= day_start:
            continue
        for column, bin_id in assignment.items():
            raw = row.get(column, "").strip()
            if raw in ("", "."):
                continue
            fill = min(float(raw) / FULL_READING, 1.0)
            series = readings.setdefault(bin_id, [])
            if fill == 0.0 and series and series[-1][1] > 0.0:
                emptied[bin_id] = day
            series.append((day, fill))

    by_name: dict[str, list[int]] = {}
    for r in sites:
        by_name.setdefault(r["Name"].strip().lower(), []).append(int(r["bin_ID"]))
    arrivals = sorted(
        (datetime.fromisoformat(r["start"]).astimezone(UTC), r["skip_origin"].strip().lower())
        for r in _read(data_dir / DUMP_LOG_FILE)
        if r["skip_origin"].strip() and r["start"].startswith(("2020", "2021"))
    )
    dump_emptied: dict[int, datetime] = {}
    for when, origin in arrivals:
        if when >= day_start or origin not in by_name:
            continue
        ids = by_name[origin]
        oldest = min(ids, key=lambda b: dump_emptied.get(b, datetime.min.replace(tzinfo=UTC)))
        dump_emptied[oldest] = when

    out = []
    for r in sites:
        bin_id = int(r["bin_ID"])
        recent = tuple((t, f) for t, f in readings.get(bin_id, []) if t >= since)
        if recent:
            last = emptied.get(bin_id)
            source = "fullness log"
        else:
            last = dump_emptied.get(bin_id)
            source = "dump log" if last is not None else "none"
            if last is not None and last >= since:
                recent = ((last, 0.0),)
        out.append(SkipState(bin_id, r["Name"].strip(), float(r["lat"]), float(r["long"]), recent, last,
                             rates.get(bin_id), source))
    return out
