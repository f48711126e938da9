"""The server end to end: reflection, health, errors, metrics, deadlines, auth, Embed parity."""

from __future__ import annotations

import time

import grpc
import numpy as np
import onnxruntime as ort
import pytest
from google.protobuf.descriptor_pool import DescriptorPool
from grpc_reflection.v1alpha.proto_reflection_descriptor_database import (
    ProtoReflectionDescriptorDatabase,
)
from prometheus_client import REGISTRY
from wasteml_testing import ENCODER_ONNX, bad_request, server_settings

from wasteml.client import WastemlClient
from wasteml.v1 import admin_pb2, admin_pb2_grpc, forecasting_pb2, search_pb2
from wasteml_models.tokenizer import TextTokenizer
from wasteml_server.adapters.storage import ModelRegistry
from wasteml_server.admin.service import ModelAdmin
from wasteml_server.app import ADMIN
from wasteml_server.transport.server import ServiceBinding, create_server
from wasteml_server.transport.servicers.admin import ModelAdminServicer

API_SERVICES = {
    "wasteml.v1.SemanticSearch",
    "wasteml.v1.RouteOptimizer",
    "wasteml.v1.Forecasting",
    "wasteml.v1.CollectionPlanner",
    "wasteml.v1.ModelAdmin",
}

REAL_TEXTS = [
    "Pick up Dead Animal. Dead raccoon on the sidewalk in front of 12 Elm St.",
    "Overflowing or Un-kept Dumpster. Dumpster behind the market is overflowing.",
    "Needle Pickup. Needles found near the playground in the park.",
]


def test_reflection_lists_every_service_without_proto_files(client: WastemlClient) -> None:
    """A reflection client discovers all five API services and their methods from the server."""
    channel = grpc.insecure_channel(client.address)
    try:
        db = ProtoReflectionDescriptorDatabase(channel)
        services = set(db.get_services())
        assert API_SERVICES <= services
        assert "grpc.health.v1.Health" in services
        pool = DescriptorPool(db)
        search = pool.FindServiceByName("wasteml.v1.SemanticSearch")
        assert {m.name for m in search.methods} >= {"Embed", "IndexDocuments", "Search", "DeleteDocuments"}
        plan = pool.FindServiceByName("wasteml.v1.CollectionPlanner").FindMethodByName("PlanDay")
        assert plan.server_streaming
    finally:
        channel.close()


def test_health_is_serving_once_triton_is_ready(client: WastemlClient) -> None:
    """Overall health and the Triton-backed services report SERVING with Triton up."""
    assert client.health_status("") == "SERVING"
    assert client.health_status("wasteml.v1.ModelAdmin") == "SERVING"
    assert client.health_status("wasteml.v1.SemanticSearch") == "SERVING"


def test_list_models_shows_the_encoder_ready(client: WastemlClient) -> None:
    """ModelAdmin lists text_encoder with a READY version and its tensor signature."""
    reply = client.list_models()
    models = {m.name: m for m in reply.models}
    encoder = models["text_encoder"]
    assert any(v.state == admin_pb2.MODEL_STATE_READY for v in encoder.versions)
    assert encoder.max_batch_size > 0
    assert {t.name for t in encoder.inputs} == {"input_ids", "attention_mask"}
    assert [(t.name, t.datatype, list(t.shape)) for t in encoder.outputs] == [("embedding", "FP32", [-1, 384])]


def test_unknown_model_is_not_found(client: WastemlClient) -> None:
    """GetModel of a name Triton does not know gives NOT_FOUND."""
    with pytest.raises(grpc.RpcError) as info:
        client.admin.GetModel(admin_pb2.GetModelRequest(name="no_such_model"), timeout=30)
    assert info.value.code() == grpc.StatusCode.NOT_FOUND


def test_embed_through_the_server_equals_in_process_onnx_runtime(client: WastemlClient) -> None:
    """Embeddings via client -> server -> Triton equal in-process ONNX Runtime to 1e-5."""
    reply = client.embed(REAL_TEXTS)
    got = np.array([e.values for e in reply.embeddings], dtype=np.float32)
    assert got.shape == (3, 384) and reply.dimension == 384
    assert (reply.model.name, reply.model.version) == ("text_encoder", "1")
    tokenizer = TextTokenizer.from_repository(ENCODER_ONNX.parents[2])
    session = ort.InferenceSession(str(ENCODER_ONNX), providers=["CPUExecutionProvider"])
    want = np.concatenate(
        [
            session.run(["embedding"], {"input_ids": ids[None], "attention_mask": mask[None]})[0]
            for ids, mask in zip(*tokenizer.encode(REAL_TEXTS), strict=True)
        ]
    )
    np.testing.assert_allclose(got, want, atol=1e-5)
    np.testing.assert_allclose(np.linalg.norm(got, axis=1), 1.0, atol=1e-5)
    assert [e.token_count for e in reply.embeddings] == list(tokenizer.token_counts(REAL_TEXTS))


def test_empty_text_is_invalid_argument_naming_the_field(client: WastemlClient) -> None:
    """An empty text gets INVALID_ARGUMENT with a BadRequest violation on texts[1]."""
    with pytest.raises(grpc.RpcError) as info:
        client.embed(["a bin", "  "])
    assert info.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert [v.field for v in bad_request(info.value).field_violations] == ["texts[1]"]


def test_unknown_enum_value_is_invalid_argument_naming_the_field(client: WastemlClient) -> None:
    """An enum number the schema does not define is rejected before any servicer runs."""
    request = forecasting_pb2.ForecastDemandRequest(horizon=7)
    request.series.grain = 99
    request.series.id = "GARBAGE COLLECTIONS"
    with pytest.raises(grpc.RpcError) as info:
        client.forecast_demand(request)
    assert info.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    violation = bad_request(info.value).field_violations[0]
    assert violation.field == "series.grain"
    assert "SeriesGrain" in violation.description


def _requests_total(method: str, code: str) -> float:
    value = REGISTRY.get_sample_value(
        "wasteml_grpc_requests_total",
        {"service": "wasteml.v1.SemanticSearch", "method": method, "code": code},
    )
    return value or 0.0


def test_metrics_count_calls_by_method_and_code(client: WastemlClient) -> None:
    """The Prometheus counter moves by one per call, labelled with the status code."""
    ok_before = _requests_total("Embed", "OK")
    bad_before = _requests_total("Embed", "INVALID_ARGUMENT")
    client.embed(["bin overflowing"])
    with pytest.raises(grpc.RpcError):
        client.embed([""])
    # the server records a call just after its status is sent, so the client may look first
    deadline = time.monotonic() + 5.0
    while time.monotonic() < deadline and (
        _requests_total("Embed", "OK") < ok_before + 1
        or _requests_total("Embed", "INVALID_ARGUMENT") < bad_before + 1
    ):
        time.sleep(0.02)
    assert _requests_total("Embed", "OK") == ok_before + 1
    assert _requests_total("Embed", "INVALID_ARGUMENT") == bad_before + 1


def test_client_deadline_gives_deadline_exceeded(client: WastemlClient) -> None:
    """A call whose deadline is far too short ends with DEADLINE_EXCEEDED, promptly."""
    texts = [f"{t} ({i})" for i in range(200) for t in REAL_TEXTS][:600]
    start = time.monotonic()
    with pytest.raises(grpc.RpcError) as info:
        client.embed(texts, timeout_s=0.05)
    assert info.value.code() == grpc.StatusCode.DEADLINE_EXCEEDED
    assert time.monotonic() - start < 5.0


@pytest.fixture(scope="module")
def strict_server(live_server, tmp_path_factory):
    """A second server on the same back-ends with a bearer token and a tiny default deadline."""
    app = live_server.app
    settings = server_settings(
        tmp_path_factory.mktemp("strict"), auth_token="s3cret", default_deadline_s=0.001
    )
    servicer = ModelAdminServicer(ModelAdmin(app.triton_client, ModelRegistry(app.db)))
    binding = ServiceBinding(ADMIN, lambda s: admin_pb2_grpc.add_ModelAdminServicer_to_server(servicer, s))
    server, port = live_server.call(create_server(settings, [binding], {}))
    yield port
    live_server.call(server.stop())


def test_bearer_token_is_required(strict_server: int) -> None:
    """Without the token: UNAUTHENTICATED; health stays reachable without it."""
    with WastemlClient(f"127.0.0.1:{strict_server}", max_attempts=1) as anonymous:
        with pytest.raises(grpc.RpcError) as info:
            anonymous.list_models(timeout_s=10)
        assert info.value.code() == grpc.StatusCode.UNAUTHENTICATED
        assert anonymous.health_status("") == "SERVING"


def test_default_deadline_applies_to_calls_without_one(strict_server: int) -> None:
    """With the token, a call without a deadline runs under the server's default (1 ms here)."""
    with WastemlClient(f"127.0.0.1:{strict_server}", token="s3cret", max_attempts=1) as authed:
        with pytest.raises(grpc.RpcError) as info:
            authed.admin.ListModels(admin_pb2.ListModelsRequest())  # no client deadline
        assert info.value.code() == grpc.StatusCode.DEADLINE_EXCEEDED


def test_search_rejects_negative_top_k(client: WastemlClient) -> None:
    """Search with top_k = -1 gets INVALID_ARGUMENT naming top_k."""
    with pytest.raises(grpc.RpcError) as info:
        client.search_documents(search_pb2.SearchRequest(query="overflowing dumpster", top_k=-1))
    assert info.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert "top_k" in [v.field for v in bad_request(info.value).field_violations]
