"""Persisted collection plans (``CollectionPlanner.PlanDay``, stage "persist the plan").

A plan is written whole in ONE transaction or not at all: a failure (or a cancellation that
interrupts the call) leaves no row behind, so a cancelled PlanDay never leaves a half-written plan.
"""

from __future__ import annotations

import builtins
import datetime as dt
import math
import uuid
from collections.abc import Mapping
from dataclasses import dataclass, field

import sqlalchemy as sa
from sqlalchemy import exc
from sqlalchemy.orm import defer

from wasteml_server.adapters.storage.db import Database
from wasteml_server.adapters.storage.models import Plan, utcnow
from wasteml_server.codecs.planning import plan_to_proto
from wasteml_server.core.errors import AlreadyExistsError, InternalError, NotFoundError
from wasteml_server.planning.plan import DayPlan

#: Largest ``limit`` of :meth:`PlanStore.list`.
MAX_LIST_LIMIT = 1000


@dataclass(frozen=True)
class PlanRecord:
    """Snapshot of one saved plan.

    Attributes:
        id: plan id (UUID4).
        service_date: the service day.
        created_at: when it was saved, aware UTC.
        status: solve status, e.g. ``"OPTIMAL"``/``"FEASIBLE"``.
        request: serialized PlanDay request (protobuf bytes); None in listings without payloads.
        result: serialized plan (protobuf bytes); None in listings without payloads.
        model_versions: model name -> version used.
        totals: name -> number (e.g. ``distance_m``, ``driving_s``, ``bins_served``).
    """

    id: uuid.UUID
    service_date: dt.date
    created_at: dt.datetime
    status: str
    request: bytes | None
    result: bytes | None
    model_versions: dict[str, int] = field(hash=False)
    totals: dict[str, float] = field(hash=False)

    @classmethod
    def from_row(cls, row: Plan, *, with_payloads: bool = True) -> PlanRecord:
        """Snapshot of an ORM row (``request``/``result`` left None unless ``with_payloads``)."""
        return cls(
            id=row.id,
            service_date=row.service_date,
            created_at=row.created_at,
            status=row.status,
            request=row.request if with_payloads else None,
            result=row.result if with_payloads else None,
            model_versions={k: int(v) for k, v in row.model_versions.items()},
            totals=dict(row.totals),
        )


def _as_uuid(plan_id: uuid.UUID | str) -> uuid.UUID:
    if isinstance(plan_id, uuid.UUID):
        return plan_id
    try:
        return uuid.UUID(str(plan_id))
    except ValueError:
        raise InternalError(f"PlanStore: plan_id: not a UUID: {plan_id!r}") from None


class PlanStore:
    """Save and read collection plans.

    All methods are blocking; call them with ``asyncio.to_thread`` from async code.

    Args:
        db: the database (migrated to head).
    """

    def __init__(self, db: Database) -> None:
        self.db = db

    def save(self, plan: DayPlan) -> PlanRecord:
        """Store a finished plan (the planner's ``PlanRepository`` port) in one transaction: the
        caller's request as given, the plan in the contract's wire format
        (``wasteml.v1.Plan``, as the PlanDay stream returned it), its totals and model versions.

        Raises:
            AlreadyExistsError: ``plan.plan_id`` is already taken.
            UnavailableError: the database cannot be reached (nothing was written).
        """
        message = plan_to_proto(plan)
        totals = plan.totals
        return self.write(
            plan_id=plan.plan_id, service_date=plan.day.request.service_date,
            status=plan.solution.status.value, request=plan.day.request.request_bytes,
            result=message.SerializeToString(),
            model_versions={m.name: m.version for m in plan.models if m.version is not None},
            totals={"distance_m": totals.distance_m, "driving_s": totals.driving_s,
                    "bins_served": totals.bins_served,
                    "predicted_overflows_avoided": totals.predicted_overflows_avoided,
                    "predicted_overflows_left": totals.predicted_overflows_left,
                    "objective": totals.objective},
        )

    def write(
        self,
        *,
        service_date: dt.date,
        status: str,
        request: bytes,
        result: bytes,
        model_versions: Mapping[str, int],
        totals: Mapping[str, float],
        plan_id: uuid.UUID | str | None = None,
    ) -> PlanRecord:
        """Write a plan in one transaction (all of it or nothing).

        Args:
            service_date: the service day (a ``date``, not a ``datetime``).
            status: solve status, 1-32 characters.
            request: serialized PlanDay request (protobuf bytes).
            result: serialized plan (protobuf bytes).
            model_versions: model name -> integer version >= 1 used for the plan.
            totals: name -> finite number.
            plan_id: id to use; a new UUID4 when omitted.

        Returns:
            The saved plan.

        Raises:
            InternalError: a field is malformed (named in the error; a bug of the caller).
            AlreadyExistsError: ``plan_id`` is already taken.
            UnavailableError: the database cannot be reached (nothing was written).
        """
        if isinstance(service_date, dt.datetime) or not isinstance(service_date, dt.date):
            raise InternalError("PlanStore: service_date: must be a date (not a datetime)")
        if not isinstance(status, str) or not 0 < len(status) <= 32:
            raise InternalError("PlanStore: status: must be a non-empty string of at most 32 characters"
            )
        for name, payload in (("request", request), ("result", result)):
            if not isinstance(payload, bytes | bytearray | memoryview):
                raise InternalError(f"PlanStore: {name}: must be bytes (a serialized message)")
        versions: dict[str, int] = {}
        for model, version in dict(model_versions).items():
            if (
                not isinstance(model, str)
                or isinstance(version, bool)
                or not isinstance(version, int)
                or version < 1
            ):
                raise InternalError(f"PlanStore: model_versions.{model}: must map a model name to an integer >= 1"
                )
            versions[model] = version
        sums: dict[str, float] = {}
        for key, value in dict(totals).items():
            if (
                not isinstance(key, str)
                or isinstance(value, bool)
                or not isinstance(value, int | float)
                or not math.isfinite(value)
            ):
                raise InternalError(f"PlanStore: totals.{key}: must map a name to a finite number")
            sums[key] = value
        row = Plan(
            id=_as_uuid(plan_id) if plan_id is not None else uuid.uuid4(),
            service_date=service_date,
            created_at=utcnow(),
            status=status,
            request=bytes(request),
            result=bytes(result),
            model_versions=versions,
            totals=sums,
        )
        try:
            with self.db.session() as session:
                session.add(row)
                session.flush()
                return PlanRecord.from_row(row)
        except exc.IntegrityError:
            raise AlreadyExistsError(f"plan {row.id} already exists") from None

    def get(self, plan_id: uuid.UUID | str) -> PlanRecord:
        """The plan with ``plan_id``, with its payloads.

        Raises:
            InternalError: ``plan_id`` is not a UUID.
            NotFoundError: no such plan.
            UnavailableError: the database cannot be reached.
        """
        pid = _as_uuid(plan_id)
        with self.db.session() as session:
            row = session.get(Plan, pid)
            if row is None:
                raise NotFoundError(f"plan {pid} does not exist")
            return PlanRecord.from_row(row)

    def list(
        self,
        service_date: dt.date | None = None,
        *,
        limit: int = 100,
        with_payloads: bool = False,
    ) -> builtins.list[PlanRecord]:
        """Plans, newest first; only those for ``service_date`` if given.

        Args:
            service_date: the service day to filter on.
            limit: at most this many plans (1..``MAX_LIST_LIMIT``).
            with_payloads: include ``request`` and ``result`` bytes (left None otherwise).

        Raises:
            InternalError: ``limit`` out of range or ``service_date`` not a date.
            UnavailableError: the database cannot be reached.
        """
        if not 1 <= limit <= MAX_LIST_LIMIT:
            raise InternalError(f"PlanStore: limit: must be in 1..{MAX_LIST_LIMIT}")
        query = sa.select(Plan).order_by(Plan.created_at.desc(), Plan.id).limit(limit)
        if service_date is not None:
            if isinstance(service_date, dt.datetime) or not isinstance(service_date, dt.date):
                raise InternalError("PlanStore: service_date: must be a date (not a datetime)")
            query = query.where(Plan.service_date == service_date)
        if not with_payloads:
            query = query.options(defer(Plan.request), defer(Plan.result))
        with self.db.session() as session:
            return [
                PlanRecord.from_row(r, with_payloads=with_payloads) for r in session.scalars(query)
            ]
