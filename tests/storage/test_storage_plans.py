"""Collection plans on SQLite and PostgreSQL: saved whole or not at all, read back by id and day."""

from __future__ import annotations

import datetime as dt
import uuid

import pytest
from sqlalchemy import event

from wasteml_server.adapters.storage import Database, PlanStore
from wasteml_server.adapters.storage.models import Plan
from wasteml_server.core.errors import AlreadyExistsError, InvalidArgumentError, NotFoundError

DAY = dt.date(2026, 11, 23)
PLAN = {
    "status": "FEASIBLE",
    "request": b"\x08\x01request-bytes",
    "result": b"\x12\x04plan-bytes" * 50,
    "model_versions": {"fill_level": 2, "text_encoder": 1},
    "totals": {"distance_m": 84210.5, "driving_s": 19800.0, "bins_served": 31},
}


def test_save_get_and_list_by_day(db):
    """A saved plan reads back field for field; list filters by service day, newest first, payloads optional."""
    plans = PlanStore(db)
    first = plans.save(service_date=DAY, **PLAN)
    second = plans.save(service_date=DAY, **{**PLAN, "status": "OPTIMAL"})
    other = plans.save(service_date=DAY + dt.timedelta(days=1), **PLAN)
    got = plans.get(first.id)
    assert got == first
    assert got.request == PLAN["request"] and got.result == PLAN["result"]
    assert got.model_versions == PLAN["model_versions"] and got.totals == PLAN["totals"]
    assert got.service_date == DAY and got.created_at.utcoffset() == dt.timedelta(0)
    listed = plans.list(DAY)
    assert [p.id for p in listed] == [second.id, first.id]
    assert all(p.result is None for p in listed)
    assert plans.list(DAY, with_payloads=True)[0].result == PLAN["result"]
    assert {p.id for p in plans.list()} == {first.id, second.id, other.id}


def test_failure_mid_save_leaves_no_row(db_url):
    """If the save fails after the INSERT was sent, the transaction rolls back and no plan is visible."""
    db = Database(db_url)
    plans = PlanStore(db)

    class InterruptedSaveError(RuntimeError):
        pass

    def interrupt(mapper, connection, target):  # runs inside the transaction, after INSERT
        raise InterruptedSaveError("connection lost mid-save")

    plan_id = uuid.uuid4()
    event.listen(Plan, "after_insert", interrupt)
    try:
        with pytest.raises(InterruptedSaveError):
            plans.save(service_date=DAY, plan_id=plan_id, **PLAN)
    finally:
        event.remove(Plan, "after_insert", interrupt)
        db.dispose()

    fresh = Database(db_url)  # another connection, as another process would see it
    try:
        reader = PlanStore(fresh)
        with pytest.raises(NotFoundError):
            reader.get(plan_id)
        assert reader.list(DAY) == []
        saved = reader.save(service_date=DAY, plan_id=plan_id, **PLAN)  # the id is still free
        assert reader.get(plan_id) == saved
    finally:
        fresh.dispose()


def test_duplicate_id_keeps_the_first_plan(db):
    """Saving under an existing plan id raises AlreadyExistsError and leaves the first plan intact."""
    plans = PlanStore(db)
    first = plans.save(service_date=DAY, **PLAN)
    with pytest.raises(AlreadyExistsError):
        plans.save(service_date=DAY, plan_id=first.id, **{**PLAN, "status": "OPTIMAL"})
    assert plans.get(first.id).status == "FEASIBLE"
    assert len(plans.list(DAY)) == 1


def test_bad_plans_name_the_field(db):
    """Malformed plans raise InvalidArgumentError naming the field and write nothing."""
    plans = PlanStore(db)
    cases = [
        ({"service_date": dt.datetime(2026, 11, 23, tzinfo=dt.UTC)}, "service_date"),
        ({"status": ""}, "status"),
        ({"result": "not bytes"}, "result"),
        ({"model_versions": {"fill_level": 0}}, "model_versions.fill_level"),
        ({"totals": {"distance_m": float("inf")}}, "totals.distance_m"),
        ({"plan_id": "nope"}, "plan_id"),
    ]
    for override, field in cases:
        kwargs = {"service_date": DAY, **PLAN, **override}
        with pytest.raises(InvalidArgumentError) as info:
            plans.save(**kwargs)
        assert info.value.field == field, override
    assert plans.list() == []
