"""Boston 311 (2015) sanitation requests as search documents (the real data of the search demo,
the ingestion CLI, the evaluation and the tests).

:func:`read_boston_311` turns each row of
``<data_dir>/service_requests/boston_311_2015_sanitation.csv`` (20,832 real requests; see
``shared/data/README-real-data.md`` section 1) into a :class:`Document`. The same documents
can be streamed to the gRPC ``IndexDocuments`` RPC or indexed in-process.

Text of a document: ``"<TYPE>. <CASE_TITLE>. <closure note>"``, where the title is left out
when it only repeats the type, and the closure note is ``CLOSURE_REASON`` without its
boilerplate prefix (see :func:`closure_note`). Time: ``OPEN_DT`` is Boston local time
(America/New_York, ``%m/%d/%Y %I:%M:%S %p``) converted to UTC; in the repeated hour when
daylight saving time ends the first occurrence is taken (``fold=0``). Location: ``LATITUDE`` /
``LONGITUDE`` as given; rows at the City Hall fallback point (42.3594, -71.0587; about 3.6 %
of rows) keep it and are flagged ``location_approximate=True``.
"""

from __future__ import annotations

import csv
import logging
import re
from collections.abc import Iterator, Sequence
from datetime import datetime
from pathlib import Path
from zoneinfo import ZoneInfo

from wasteml_server.core.geo import GeoPoint
from wasteml_server.search.documents import Document

logger = logging.getLogger(__name__)

#: The Boston 311 file, relative to ``settings.data_dir``.
BOSTON_311_FILE = Path("service_requests/boston_311_2015_sanitation.csv")
#: Rows in that file (README-real-data.md, section 1).
BOSTON_311_ROWS = 20_832
#: Boston's local time zone (OPEN_DT is local time).
BOSTON_TZ = ZoneInfo("America/New_York")
#: The City Hall point that Boston 311 uses when a request has no geocode
#: (README-real-data.md: "About 3.9% of rows sit at the City Hall fallback coordinate").
CITY_HALL_FALLBACK = (42.3594, -71.0587)
#: ``source`` of every Boston document is ``"boston_311_2015/<intake channel>"``.
SOURCE_PREFIX = "boston_311_2015"

# "Case Closed", optionally ". Closed date : 2015-09-04 13:21:40.123", then a closure status:
# "Case Resolved", "Case Noted", "Case Invalid", "Bulk Item Automation",
# "Duplicate of Existing Case", "Case Referred to External Agency", or a code with its description ("VIOCOR: Violation
# Corrected", "NOVIO: No Violation Found/No Cause", "TICKET: Ticket Issued", ...). The list was
# read off the data: every CLOSURE_REASON in the 2015 file starts with "Case Closed" or is empty.
_CLOSED = re.compile(
    r"^\s*Case Closed\.?(?:\s*Closed date\s*:\s*\d{4}-\d{2}-\d{2} \d{2}:\d{2}:\d{2}(?:\.\d+)?)?\s*"
)
_STATUS = re.compile(
    r"^(?:Case Resolved|Case Noted|Case Invalid|Case Referred to External Agency|Bulk Item Automation|Duplicate of Existing Case"
    r"|[A-Z]{2,8}: (?:Violation Corrected|No Violation Found/No Cause|Ticket Issued"
    r"|Closed/No Permit|Administratively Closed|Refer to Other Agency/Division|Corrected"
    r"|Violation Filed|No Basis)"
    r"|[A-Z]{2,8}: [A-Z][\w/ ]{0,40}?(?=$))\s*"
)
_SPACES = re.compile(r"\s+")


def closure_note(reason: str) -> str:
    """The free-text part of a ``CLOSURE_REASON``, without the closure boilerplate.

    Examples (real rows): ``"Case Closed Case Resolved trash picked up"`` -> ``"trash picked
    up"``; ``"Case Closed. Closed date : 2015-10-01 10:11:10.793 Case Resolved picked up"`` ->
    ``"picked up"``; ``"Case Closed Bulk Item Automation"`` -> ``""``;
    ``"Case Closed VIOCOR: Violation Corrected"`` -> ``""``.
    """
    text = _SPACES.sub(" ", reason or "").strip()
    m = _CLOSED.match(text)
    if not m:
        return text
    rest = text[m.end() :]
    s = _STATUS.match(rest)
    if s:
        rest = rest[s.end() :]
    return rest.strip(" .:-")


def _norm(s: str) -> str:
    return re.sub(r"[^a-z0-9]+", " ", s.lower()).strip()


def document_text(case_type: str, title: str, note: str) -> str:
    """``"<type>. <title>. <note>"``, skipping a title that repeats the type and empty parts."""
    parts = [case_type.strip()]
    t = title.strip()
    if t and _norm(t) not in _norm(case_type) and _norm(case_type) not in _norm(t):
        parts.append(t)
    elif t and _norm(case_type) in _norm(t) and _norm(t) != _norm(case_type):
        parts[0] = t  # the title extends the type (rare): keep the longer one
    if note:
        parts.append(note)
    return ". ".join(p.rstrip(".") for p in parts if p)


def boston_local_to_utc(open_dt: str) -> datetime:
    """Parse ``OPEN_DT`` (``%m/%d/%Y %I:%M:%S %p``, Boston local time) to an aware UTC time.

    Raises:
        ValueError: the text does not have that format.
    """
    local = datetime.strptime(open_dt.strip(), "%m/%d/%Y %I:%M:%S %p")
    return local.replace(tzinfo=BOSTON_TZ, fold=0).astimezone(ZoneInfo("UTC"))


def is_city_hall_fallback(lat: float, lon: float) -> bool:
    """True at the City Hall fallback point (to the file's 4 decimals, ~11 m)."""
    return round(lat, 4) == CITY_HALL_FALLBACK[0] and round(lon, 4) == CITY_HALL_FALLBACK[1]


def boston_row_to_document(row: dict[str, str]) -> Document:
    """One CSV row (``csv.DictReader``) as a :class:`Document`.

    id = ``CASE_ENQUIRY_ID``; kind = ``TYPE``; source = ``"boston_311_2015/<Source>"``.

    Raises:
        ValueError: a missing id/type or unparsable time or coordinates.
    """
    case_id = row["CASE_ENQUIRY_ID"].strip()
    case_type = row["TYPE"].strip()
    if not case_id or not case_type:
        raise ValueError("row without CASE_ENQUIRY_ID or TYPE")
    lat, lon = float(row["LATITUDE"]), float(row["LONGITUDE"])
    channel = row.get("Source", "").strip()
    return Document(
        id=case_id,
        text=document_text(case_type, row.get("CASE_TITLE", ""), closure_note(row.get("CLOSURE_REASON", ""))),
        kind=case_type,
        location=GeoPoint(lat, lon),
        created_at=boston_local_to_utc(row["OPEN_DT"]),
        source=f"{SOURCE_PREFIX}/{channel}" if channel else SOURCE_PREFIX,
        location_approximate=is_city_hall_fallback(lat, lon),
    )


def read_boston_311(path: Path | str, limit: int | None = None, every: int = 1) -> Iterator[Document]:
    """Documents of the Boston 311 file, in file order (sorted by OPEN_DT).

    Args:
        path: the CSV (``settings.data_dir / BOSTON_311_FILE``).
        limit: stop after this many documents; ``None`` = all.
        every: take every ``every``-th row (1 = all), for a slice spread over the year and
            the case types.

    Raises:
        FileNotFoundError: the file is missing.
        ValueError: a malformed row (with its line number).
    """
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"{path} does not exist (settings.data_dir?)")
    n = 0
    with path.open(newline="", encoding="utf-8") as f:
        for i, row in enumerate(csv.DictReader(f)):
            if i % every:
                continue
            try:
                yield boston_row_to_document(row)
            except (KeyError, ValueError) as exc:
                raise ValueError(f"{path}:{i + 2}: {exc}") from exc
            n += 1
            if limit is not None and n >= limit:
                return


def stratified_slice(docs: Sequence[Document], per_kind: int) -> list[Document]:
    """At most ``per_kind`` documents of each kind, in input order (small test/eval slices)."""
    counts: dict[str, int] = {}
    out = []
    for d in docs:
        if counts.get(d.kind, 0) < per_kind:
            counts[d.kind] = counts.get(d.kind, 0) + 1
            out.append(d)
    return out
