"""The generated Python stubs (``wasteml.v1``) match the contracts in ``proto/wasteml/v1``.

Checks what other code relies on: every generated module imports, every service carries its
RPCs with the specified streaming kinds and message types, enum zero values are
``*_UNSPECIFIED``, and the generated stubs carry streaming calls over a real gRPC channel.
"""

from __future__ import annotations

import importlib
from collections.abc import Iterator
from concurrent import futures
from pathlib import Path

import grpc
import pytest
from google.protobuf import descriptor

from wasteml.v1 import (
    admin_pb2,
    common_pb2,
    forecasting_pb2,
    planning_pb2,
    planning_pb2_grpc,
    routing_pb2,
    search_pb2,
    search_pb2_grpc,
)

REPO_ROOT = Path(__file__).resolve().parents[2]
PROTO_DIR = REPO_ROOT / "proto" / "wasteml" / "v1"
GENERATED_DIR = REPO_ROOT / "clients" / "python" / "wasteml" / "v1"

UNARY = "unary"
CLIENT_STREAM = "client-streaming"
SERVER_STREAM = "server-streaming"

# service -> (proto module, {rpc: (streaming kind, request type, response type)})
EXPECTED_SERVICES: dict[str, tuple[object, dict[str, tuple[str, str, str]]]] = {
    "SemanticSearch": (
        search_pb2,
        {
            "Embed": (UNARY, "EmbedRequest", "EmbedResponse"),
            "IndexDocuments": (CLIENT_STREAM, "IndexDocumentsRequest", "IndexDocumentsResponse"),
            "Search": (UNARY, "SearchRequest", "SearchResponse"),
            "DeleteDocuments": (UNARY, "DeleteDocumentsRequest", "DeleteDocumentsResponse"),
            "GetCollectionStats": (
                UNARY,
                "GetCollectionStatsRequest",
                "GetCollectionStatsResponse",
            ),
        },
    ),
    "RouteOptimizer": (
        routing_pb2,
        {
            "Solve": (UNARY, "SolveRequest", "SolveResponse"),
            "SubmitJob": (UNARY, "SubmitJobRequest", "SubmitJobResponse"),
            "GetJob": (UNARY, "GetJobRequest", "GetJobResponse"),
            "WatchJob": (SERVER_STREAM, "WatchJobRequest", "WatchJobResponse"),
            "CancelJob": (UNARY, "CancelJobRequest", "CancelJobResponse"),
        },
    ),
    "Forecasting": (
        forecasting_pb2,
        {
            "PredictFillLevel": (UNARY, "PredictFillLevelRequest", "PredictFillLevelResponse"),
            "ForecastDemand": (UNARY, "ForecastDemandRequest", "ForecastDemandResponse"),
        },
    ),
    "CollectionPlanner": (
        planning_pb2,
        {"PlanDay": (SERVER_STREAM, "PlanDayRequest", "PlanDayResponse")},
    ),
    "ModelAdmin": (
        admin_pb2,
        {
            "ListModels": (UNARY, "ListModelsRequest", "ListModelsResponse"),
            "GetModel": (UNARY, "GetModelRequest", "GetModelResponse"),
            "LoadModel": (UNARY, "LoadModelRequest", "LoadModelResponse"),
            "UnloadModel": (UNARY, "UnloadModelRequest", "UnloadModelResponse"),
            "ListRegistryEntries": (
                UNARY,
                "ListRegistryEntriesRequest",
                "ListRegistryEntriesResponse",
            ),
        },
    ),
}

PROTO_STEMS = sorted(p.stem for p in PROTO_DIR.glob("*.proto"))


def _streaming_kind(method: descriptor.MethodDescriptor) -> str:
    if method.client_streaming and method.server_streaming:
        return "bidi-streaming"
    if method.client_streaming:
        return CLIENT_STREAM
    if method.server_streaming:
        return SERVER_STREAM
    return UNARY


def _all_file_descriptors() -> list[descriptor.FileDescriptor]:
    return [importlib.import_module(f"wasteml.v1.{stem}_pb2").DESCRIPTOR for stem in PROTO_STEMS]


@pytest.mark.parametrize("stem", PROTO_STEMS)
def test_every_proto_has_importable_generated_modules(stem: str) -> None:
    """Each proto file has a _pb2, a _pb2_grpc module and mypy stubs, and both modules import."""
    pb2 = importlib.import_module(f"wasteml.v1.{stem}_pb2")
    importlib.import_module(f"wasteml.v1.{stem}_pb2_grpc")
    assert pb2.DESCRIPTOR.name == f"wasteml/v1/{stem}.proto"
    assert pb2.DESCRIPTOR.package == "wasteml.v1"
    assert (GENERATED_DIR / f"{stem}_pb2.pyi").is_file()
    assert (GENERATED_DIR / f"{stem}_pb2_grpc.pyi").is_file()


def test_no_generated_module_without_a_proto() -> None:
    """The generated folder holds modules only for existing proto files (no stale outputs)."""
    generated_stems = {p.name.removesuffix("_pb2.py") for p in GENERATED_DIR.glob("*_pb2.py")}
    assert generated_stems == set(PROTO_STEMS)


def test_services_are_exactly_the_five_of_the_design() -> None:
    """The protos declare exactly the services SemanticSearch, RouteOptimizer, Forecasting,
    CollectionPlanner and ModelAdmin."""
    declared = {name for fd in _all_file_descriptors() for name in fd.services_by_name}
    assert declared == set(EXPECTED_SERVICES)


@pytest.mark.parametrize("service_name", sorted(EXPECTED_SERVICES))
def test_service_rpcs_streaming_kinds_and_types(service_name: str) -> None:
    """Each service has exactly the specified RPCs, streaming kinds and request/response types."""
    module, rpcs = EXPECTED_SERVICES[service_name]
    service = module.DESCRIPTOR.services_by_name[service_name]  # type: ignore[attr-defined]
    assert service.full_name == f"wasteml.v1.{service_name}"
    assert set(service.methods_by_name) == set(rpcs)
    for rpc_name, (kind, request, response) in rpcs.items():
        method = service.methods_by_name[rpc_name]
        assert _streaming_kind(method) == kind, rpc_name
        assert method.input_type.full_name == f"wasteml.v1.{request}", rpc_name
        assert method.output_type.full_name == f"wasteml.v1.{response}", rpc_name


@pytest.mark.parametrize("service_name", sorted(EXPECTED_SERVICES))
def test_grpc_module_has_stub_servicer_and_registration(service_name: str) -> None:
    """Each service's _pb2_grpc module exposes <S>Stub, <S>Servicer and add_<S>Servicer_to_server."""
    module, _ = EXPECTED_SERVICES[service_name]
    grpc_module = importlib.import_module(module.__name__ + "_grpc")  # type: ignore[attr-defined]
    assert hasattr(grpc_module, f"{service_name}Stub")
    assert hasattr(grpc_module, f"{service_name}Servicer")
    assert hasattr(grpc_module, f"add_{service_name}Servicer_to_server")


def test_enum_zero_values_are_unspecified() -> None:
    """Every enum's zero value is <ENUM>_UNSPECIFIED, so an unset field is never a real choice."""
    enums: list[descriptor.EnumDescriptor] = []
    for fd in _all_file_descriptors():
        enums.extend(fd.enum_types_by_name.values())
        for message in fd.message_types_by_name.values():
            enums.extend(message.enum_types)
    assert enums, "the contracts declare enums"
    for enum in enums:
        zero = enum.values_by_number[0]
        assert zero.name.endswith("_UNSPECIFIED"), enum.full_name


def test_key_fields_have_the_specified_types() -> None:
    """Fields other code depends on have the specified types (top_k is a signed int32 so a
    negative value reaches validation; coordinates are WGS84 degree doubles)."""
    fd = descriptor.FieldDescriptor
    top_k = search_pb2.SearchRequest.DESCRIPTOR.fields_by_name["top_k"]
    assert top_k.type == fd.TYPE_INT32
    assert search_pb2.SearchRequest(top_k=-1).top_k == -1
    point = common_pb2.GeoPoint.DESCRIPTOR.fields_by_name
    assert point["latitude_deg"].type == fd.TYPE_DOUBLE
    assert point["longitude_deg"].type == fd.TYPE_DOUBLE
    geo = search_pb2.SearchFilters.DESCRIPTOR.oneofs_by_name["geo"]
    assert {f.name for f in geo.fields} == {"radius", "bounding_box"}
    event = planning_pb2.PlanDayResponse.DESCRIPTOR.oneofs_by_name["event"]
    assert {f.name for f in event.fields} == {"progress", "plan"}
    engines = routing_pb2.Engine.keys()
    assert engines == ["ENGINE_UNSPECIFIED", "ENGINE_ORTOOLS", "ENGINE_PYVRP", "ENGINE_PORTFOLIO"]
    statuses = set(routing_pb2.SolutionStatus.keys())
    assert {
        "SOLUTION_STATUS_OPTIMAL",
        "SOLUTION_STATUS_FEASIBLE",
        "SOLUTION_STATUS_INFEASIBLE",
        "SOLUTION_STATUS_NO_SOLUTION_IN_TIME",
    } <= statuses
    # Replies of calls that depend on Triton, Milvus or the solver pool can say that a fallback
    # served them (DESIGN.md error policy) instead of failing with UNAVAILABLE.
    for reply in (
        search_pb2.EmbedResponse,
        search_pb2.IndexDocumentsResponse,
        search_pb2.SearchResponse,
        forecasting_pb2.PredictFillLevelResponse,
        forecasting_pb2.ForecastDemandResponse,
        routing_pb2.Solution,
        planning_pb2.Plan,
    ):
        fallbacks = reply.DESCRIPTOR.fields_by_name["fallbacks"]
        assert fallbacks.message_type is not None, reply
        assert fallbacks.message_type.full_name == "wasteml.v1.FallbackNotice", reply
    stages = planning_pb2.PlanStage.keys()
    assert stages == [
        "PLAN_STAGE_UNSPECIFIED",
        "PLAN_STAGE_PREDICT",
        "PLAN_STAGE_COMPLAINTS",
        "PLAN_STAGE_SELECT",
        "PLAN_STAGE_SOLVE",
        "PLAN_STAGE_PERSIST",
    ]


class _CountingSearch(search_pb2_grpc.SemanticSearchServicer):
    """Counts streamed documents; only IndexDocuments is implemented (test of the stub's wiring)."""

    def IndexDocuments(  # noqa: N802 - gRPC method name
        self,
        request_iterator: Iterator[search_pb2.IndexDocumentsRequest],
        context: grpc.ServicerContext,
    ) -> search_pb2.IndexDocumentsResponse:
        received = 0
        collection = ""
        for message in request_iterator:
            collection = message.collection
            received += len(message.documents)
        return search_pb2.IndexDocumentsResponse(collection=collection, documents_received=received)


class _StagedPlanner(planning_pb2_grpc.CollectionPlannerServicer):
    """Streams one progress event per stage, then a plan (test of the stub's wiring)."""

    def PlanDay(  # noqa: N802 - gRPC method name
        self, request: planning_pb2.PlanDayRequest, context: grpc.ServicerContext
    ) -> Iterator[planning_pb2.PlanDayResponse]:
        for stage in planning_pb2.PlanStage.values()[1:]:
            yield planning_pb2.PlanDayResponse(
                progress=planning_pb2.PlanProgress(stage=stage, fraction=1.0)
            )
        yield planning_pb2.PlanDayResponse(
            plan=planning_pb2.Plan(plan_id="p1", service_date=request.service_date)
        )


def test_streaming_stubs_carry_calls_over_real_grpc() -> None:
    """The generated client-streaming and server-streaming stubs work over a real gRPC
    channel on a loopback port 0 server, in the declared direction."""
    server = grpc.server(futures.ThreadPoolExecutor(max_workers=2))
    # The other RPCs keep the generated base class's UNIMPLEMENTED behaviour (abstract in the stubs).
    search_pb2_grpc.add_SemanticSearchServicer_to_server(_CountingSearch(), server)  # type: ignore[abstract]
    planning_pb2_grpc.add_CollectionPlannerServicer_to_server(_StagedPlanner(), server)
    port = server.add_insecure_port("127.0.0.1:0")
    server.start()
    try:
        with grpc.insecure_channel(f"127.0.0.1:{port}") as channel:
            search = search_pb2_grpc.SemanticSearchStub(channel)
            batches = [
                search_pb2.IndexDocumentsRequest(
                    collection="c",
                    documents=[search_pb2.SearchDocument(id=f"{b}-{i}") for i in range(3)],
                )
                for b in range(4)
            ]
            reply = search.IndexDocuments(iter(batches), timeout=10)
            assert (reply.collection, reply.documents_received) == ("c", 12)

            planner = planning_pb2_grpc.CollectionPlannerStub(channel)
            day = common_pb2.CalendarDate(year=2021, month=3, day=1)
            events = list(
                planner.PlanDay(planning_pb2.PlanDayRequest(service_date=day), timeout=10)
            )
            kinds = [e.WhichOneof("event") for e in events]
            assert kinds == ["progress"] * 5 + ["plan"]
            assert [e.progress.stage for e in events[:5]] == planning_pb2.PlanStage.values()[1:]
            assert events[-1].plan.service_date == day

            with pytest.raises(grpc.RpcError) as raised:
                search.Search(search_pb2.SearchRequest(query="q", top_k=1), timeout=10)
            assert raised.value.code() == grpc.StatusCode.UNIMPLEMENTED  # type: ignore[attr-defined]
    finally:
        server.stop(grace=None)
