"""The server end to end: reflection, health, errors, metrics, deadlines, auth, Embed parity."""

from __future__ import annotations

import time

import grpc
import numpy as np
import onnxruntime as ort
import pytest
from google.protobuf.descriptor_pool import DescriptorPool
from grpc_health.v1 import health_pb2, health_pb2_grpc
from grpc_reflection.v1alpha.proto_reflection_descriptor_database import (
    ProtoReflectionDescriptorDatabase,
)
from prometheus_client import REGISTRY
from wasteml_testing import DATA_DIR, ENCODER_ONNX, bad_request, server_settings

from wasteml.client import WastemlClient
from wasteml.v1 import (
    admin_pb2,
    admin_pb2_grpc,
    forecasting_pb2,
    routing_pb2,
    routing_pb2_grpc,
    search_pb2,
)
from wasteml_models.tokenizer import TextTokenizer
from wasteml_server.adapters.storage import ModelRegistry
from wasteml_server.admin.service import ModelAdmin
from wasteml_server.app import ADMIN
from wasteml_server.codecs.routing import problem_to_proto
from wasteml_server.transport.server import ServiceBinding, create_server
from wasteml_server.transport.servicers.admin import ModelAdminServicer
from wasteml_tools.routing.instances import load_instance

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


# --- transport hardening (issue 12): floods, undecodable bytes, bounded statuses ------------

def _first_or_code(call) -> grpc.StatusCode | None:
    """None when a server stream delivered its first message (it stays open), else its code."""
    try:
        next(call)
    except grpc.RpcError as err:
        return err.code()
    return None


def test_a_health_watch_flood_cannot_lock_the_api_out(client: WastemlClient) -> None:
    """Finding 3: 300 Health/Watch streams without a token from one client. Beyond the
    per-peer cap (16) they are refused with RESOURCE_EXHAUSTED, and Health/Check and an API
    call (ListModels) still answer OK within 2 s (milliseconds when the box is quiet)."""
    channel = grpc.insecure_channel(client.address)
    calls = []
    try:
        watch = health_pb2_grpc.HealthStub(channel).Watch
        calls = [watch(health_pb2.HealthCheckRequest(), timeout=60) for _ in range(300)]
        codes = [_first_or_code(c) for c in calls]
        # (the session's server is shared: a stream of another test would take one of the 16)
        assert 1 <= codes.count(None) <= 16
        assert codes.count(grpc.StatusCode.RESOURCE_EXHAUSTED) == 300 - codes.count(None)
        start = time.monotonic()
        assert client.health_status("", timeout_s=5) == "SERVING"
        assert any(m.name == "text_encoder" for m in client.list_models(timeout_s=10).models)
        assert time.monotonic() - start < 2.0
    finally:
        for call in calls:
            call.cancel()
        channel.close()


def test_a_watchjob_flood_leaves_getjob_and_health_served(client: WastemlClient) -> None:
    """Finding 11: 270 WatchJob streams on a running job from one client. 32 (the per-peer
    cap of streaming calls) stay open, the rest get OUR RESOURCE_EXHAUSTED (naming the cap);
    GetJob and Health/Check answer OK meanwhile."""
    problem = problem_to_proto(load_instance(DATA_DIR / "vrp", "R101").problem)
    options = routing_pb2.SolveOptions()
    options.time_limit.FromSeconds(30)
    job = client.routing.SubmitJob(routing_pb2.SubmitJobRequest(problem=problem, options=options), timeout=60).job
    channel = grpc.insecure_channel(client.address)
    calls = []
    try:
        stub = routing_pb2_grpc.RouteOptimizerStub(channel)
        calls = [stub.WatchJob(routing_pb2.WatchJobRequest(job_id=job.job_id), timeout=60) for _ in range(270)]
        refused = []
        for call in calls:
            try:
                next(call)
            except grpc.RpcError as err:
                refused.append(err)
        assert 270 - 32 <= len(refused) < 270  # at most 32 open (the shared server may hold others)
        assert {e.code() for e in refused} == {grpc.StatusCode.RESOURCE_EXHAUSTED}
        assert "at most 32 concurrent streaming API calls per client address" in (refused[0].details() or "")
        start = time.monotonic()
        assert client.health_status("", timeout_s=5) == "SERVING"
        got = client.routing.GetJob(routing_pb2.GetJobRequest(job_id=job.job_id), timeout=10).job
        assert got.job_id == job.job_id
        assert time.monotonic() - start < 2.0
    finally:
        for call in calls:
            call.cancel()
        channel.close()
        client.routing.CancelJob(routing_pb2.CancelJobRequest(job_id=job.job_id), timeout=30)


def test_undecodable_request_bytes_are_invalid_argument(client: WastemlClient) -> None:
    """Finding 10: bytes that are no GetModelRequest get INVALID_ARGUMENT naming the message
    (grpc alone answers UNKNOWN)."""
    channel = grpc.insecure_channel(client.address)
    try:
        raw = channel.unary_unary("/wasteml.v1.ModelAdmin/GetModel")
        with pytest.raises(grpc.RpcError) as info:
            raw(b"\xff", timeout=10)
        assert info.value.code() == grpc.StatusCode.INVALID_ARGUMENT
        assert info.value.details() == "request: not a valid wasteml.v1.GetModelRequest (1 bytes)"
    finally:
        channel.close()


def test_a_20kb_model_name_keeps_its_error_code(client: WastemlClient) -> None:
    """Finding 10: GetModel of a 20 KB name answers NOT_FOUND or INVALID_ARGUMENT, never the
    RESOURCE_EXHAUSTED of an oversized status, and the message stays small."""
    with pytest.raises(grpc.RpcError) as info:
        client.admin.GetModel(admin_pb2.GetModelRequest(name="m" * 20_000), timeout=30)
    assert info.value.code() in (grpc.StatusCode.NOT_FOUND, grpc.StatusCode.INVALID_ARGUMENT)
    assert len((info.value.details() or "").encode()) <= 1024
