"""WGS84 points and great-circle distances (``wasteml.v1.GeoPoint``), shared by every domain."""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

from wasteml_server.core.errors import FieldViolation

#: Mean Earth radius in metres (IUGG mean radius R1 = 6,371,008.8 m; Moritz 2000, "Geodetic
#: Reference System 1980", J. Geodesy 74:128-133).
EARTH_RADIUS_M = 6_371_008.8


@dataclass(frozen=True, slots=True)
class GeoPoint:
    """A point in WGS84 (EPSG:4326) geographic coordinates (``wasteml.v1.GeoPoint``).

    Attributes:
        latitude_deg: degrees north, -90..90.
        longitude_deg: degrees east, -180..180.

    Not validated on construction (a request may carry several bad points, all to be named):
    see :meth:`violations`.
    """

    latitude_deg: float
    longitude_deg: float

    def violations(self, prefix: str) -> list[FieldViolation]:
        """Latitude outside -90..90, longitude outside -180..180, NaN, named under ``prefix``
        (e.g. ``"filters.radius.center"``)."""
        out: list[FieldViolation] = []
        lat, lon = self.latitude_deg, self.longitude_deg
        if not (isinstance(lat, int | float) and math.isfinite(lat) and -90.0 <= lat <= 90.0):
            out.append(FieldViolation(f"{prefix}.latitude_deg", f"must be within -90..90, got {lat}"))
        if not (isinstance(lon, int | float) and math.isfinite(lon) and -180.0 <= lon <= 180.0):
            out.append(FieldViolation(f"{prefix}.longitude_deg", f"must be within -180..180, got {lon}"))
        return out


def haversine_m(
    lat1_deg: float | np.ndarray,
    lon1_deg: float | np.ndarray,
    lat2_deg: float | np.ndarray,
    lon2_deg: float | np.ndarray,
) -> float | np.ndarray:
    """Great-circle distance in metres by the haversine formula on a sphere of radius R.

    Source: R. W. Sinnott, "Virtues of the Haversine", Sky and Telescope 68(2), 1984;
    R = :data:`EARTH_RADIUS_M`. Arguments broadcast (numpy); WGS84 degrees in, metres out.
    """
    p1, p2 = np.radians(lat1_deg), np.radians(lat2_deg)
    dp = p2 - p1
    dl = np.radians(np.asarray(lon2_deg) - np.asarray(lon1_deg))
    a = np.sin(dp / 2.0) ** 2 + np.cos(p1) * np.cos(p2) * np.sin(dl / 2.0) ** 2
    d = 2.0 * EARTH_RADIUS_M * np.arcsin(np.sqrt(np.clip(a, 0.0, 1.0)))
    return float(d) if np.ndim(d) == 0 else d
