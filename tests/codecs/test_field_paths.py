"""Hostile requests through the codecs and the domain's validation, no network: every error is a
domain error whose field paths exist in the request message, and named cases point where they
should (a duplicate or empty PlanDay ``bin_id`` is ``bins[i].bin_id``).

The fuzzer (``proto_fuzz.mutated``) walks a real request's descriptor tree, picks fields at
random and gives them hostile values (NaN, infinities, negatives, extremes, empty, huge or odd
strings, unknown enums, cleared messages, removed, duplicated or thousands of elements), then
decodes the request as the servicer would. Anything but
success or ``InvalidArgumentError`` (an ``IndexError``, ``TypeError``, a bare ``ValueError``) is a
bug: hostile input must get a clear error naming the field.
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, datetime

import pytest
from contract_paths import field_exists
from google.protobuf.message import Message
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from proto_fuzz import mutated
from wasteml_testing import DATA_DIR, REPO_ROOT

from wasteml.v1 import common_pb2, routing_pb2, search_pb2
from wasteml_server.codecs.common import timestamp
from wasteml_server.codecs.planning import request_from_proto
from wasteml_server.codecs.routing import options_from_proto, problem_from_proto, problem_to_proto
from wasteml_server.codecs.search import document_from_proto, filters_from_proto
from wasteml_server.core.errors import InvalidArgumentError, under
from wasteml_server.planning.request import prepare
from wasteml_server.routing.portfolio import engines_for
from wasteml_server.search.documents import validate_collection_name, validate_documents
from wasteml_server.search.filters import validate_search
from wasteml_server.transport.validation import check_enums
from wasteml_tools.planning.blantyre_request import plan_day_request
from wasteml_tools.routing.instances import load_instance


def _decode_routing(request: routing_pb2.SolveRequest) -> None:
    """What RouteOptimizer.Solve does before solving: decode and check the options."""
    with under("problem"):
        problem = problem_from_proto(request.problem)
    with under("options"):
        options = options_from_proto(request.options).limited(300.0)
        engines_for(problem, options.engine)


def _decode_plan_day(request) -> None:
    """What PlanDay does before its first stage."""
    prepare(request_from_proto(request))


def _decode_search(request: search_pb2.SearchRequest) -> None:
    validate_search(request.query, request.top_k, filters_from_proto(request))
    if request.collection:
        validate_collection_name(request.collection)


def _decode_documents(request: search_pb2.IndexDocumentsRequest) -> None:
    docs = []
    for i, doc in enumerate(request.documents):
        with under(f"documents[{i}]"):
            docs.append(document_from_proto(doc))
    validate_documents(docs)
    if request.collection:
        validate_collection_name(request.collection)


def _check(request: Message, decode: Callable[[Message], None]) -> None:
    try:
        check_enums(request)  # the validation interceptor runs first
        decode(request)
    except InvalidArgumentError as err:
        for v in err.violations:
            assert field_exists(request.DESCRIPTOR, v.field), (v.field, v.description)
            assert v.description


@pytest.fixture(scope="module")
def solve_request() -> routing_pb2.SolveRequest:
    """A real Solomon slice (C101, 6 customers) as a matrix problem with a time limit."""
    problem = load_instance(DATA_DIR / "vrp", "C101", max_customers=6).problem
    request = routing_pb2.SolveRequest(problem=problem_to_proto(problem))
    request.options.time_limit.FromSeconds(5)
    return request


@pytest.fixture(scope="module")
def coordinate_request() -> routing_pb2.SolveRequest:
    """Three real Blantyre sites by coordinates (no matrix), one vehicle with a shift."""
    p = routing_pb2.Problem(name="coords")
    p.depots.add(id="yard", location=common_pb2.GeoPoint(latitude_deg=-15.7861, longitude_deg=35.0058))
    p.vehicle_types.add(id="truck", count=1, capacity=[4], shift=routing_pb2.TimeWindow(start_s=25200, end_s=54000))
    for i, (lat, lon) in enumerate([(-15.80, 35.02), (-15.77, 34.99)]):
        p.stops.add(id=f"s{i}", location=common_pb2.GeoPoint(latitude_deg=lat, longitude_deg=lon), demand=[1],
                    service_duration_s=300, time_windows=[routing_pb2.TimeWindow(start_s=25200, end_s=50000)],
                    optional_visit=bool(i), skip_penalty=10.0)
    return routing_pb2.SolveRequest(problem=p)


@pytest.fixture(scope="module")
def plan_request():
    """The real Blantyre PlanDay request (53 skips, road matrix, 3 trucks)."""
    return plan_day_request(DATA_DIR, trucks=3, time_limit_s=5)


@pytest.fixture(scope="module")
def search_request() -> search_pb2.SearchRequest:
    """A search with every filter set."""
    request = search_pb2.SearchRequest(query="overflowing dumpster", top_k=10, collection="service_requests")
    f = request.filters
    f.kinds.append("Request for Pothole Repair")
    f.sources.append("Constituent Call")
    f.created_at.start_time.CopyFrom(timestamp(datetime(2015, 1, 1, tzinfo=UTC)))
    f.created_at.end_time.CopyFrom(timestamp(datetime(2015, 6, 1, tzinfo=UTC)))
    f.radius.center.latitude_deg, f.radius.center.longitude_deg = 42.36, -71.06
    f.radius.radius_m = 500.0
    f.min_score = 0.2
    return request


@pytest.fixture(scope="module")
def documents_request() -> search_pb2.IndexDocumentsRequest:
    """Two documents as an IndexDocuments message."""
    request = search_pb2.IndexDocumentsRequest(collection="service_requests")
    for i in range(2):
        d = request.documents.add(id=f"case-{i}", text="Missed trash pickup on Elm St", kind="Missed Trash",
                                  source="Self Service", location_approximate=False)
        d.location.latitude_deg, d.location.longitude_deg = 42.35, -71.05
        d.created_at.CopyFrom(timestamp(datetime(2015, 3, 1, 12, tzinfo=UTC)))
    return request


_FUZZ = settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture,
                                                                          HealthCheck.too_slow])


@_FUZZ
@given(data=st.data())
def test_hostile_solve_requests_name_real_fields(solve_request, data) -> None:
    """Mutated Solve requests (matrix problem) decode or fail with paths that exist in SolveRequest."""
    _check(data.draw(mutated(solve_request)), _decode_routing)


@_FUZZ
@given(data=st.data())
def test_hostile_coordinate_problems_name_real_fields(coordinate_request, data) -> None:
    """Mutated coordinate problems decode or fail with paths that exist in SolveRequest."""
    _check(data.draw(mutated(coordinate_request)), _decode_routing)


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture,
                                                                 HealthCheck.too_slow])
@given(data=st.data())
def test_hostile_plan_day_requests_name_real_fields(plan_request, data) -> None:
    """Mutated real PlanDay requests decode or fail with paths that exist in PlanDayRequest."""
    _check(data.draw(mutated(plan_request)), _decode_plan_day)


@_FUZZ
@given(data=st.data())
def test_hostile_searches_name_real_fields(search_request, data) -> None:
    """Mutated searches validate or fail with paths that exist in SearchRequest."""
    _check(data.draw(mutated(search_request)), _decode_search)


@_FUZZ
@given(data=st.data())
def test_hostile_documents_name_real_fields(documents_request, data) -> None:
    """Mutated IndexDocuments messages validate or fail with paths that exist in the request."""
    _check(data.draw(mutated(documents_request)), _decode_documents)


def _plan_error(request) -> InvalidArgumentError:
    with pytest.raises(InvalidArgumentError) as err:
        _decode_plan_day(request)
    return err.value


def test_duplicate_bin_id_is_named_bin_id(plan_request) -> None:
    """A repeated bin id is INVALID_ARGUMENT on bins[i].bin_id of the later bin."""
    request = type(plan_request)()
    request.CopyFrom(plan_request)
    request.bins[5].bin_id = request.bins[2].bin_id
    err = _plan_error(request)
    assert err.field == "bins[5].bin_id" and "bins[2]" in err.violations[0].description
    assert field_exists(request.DESCRIPTOR, err.field)


def test_empty_bin_id_is_named_bin_id(plan_request) -> None:
    """An empty bin id is INVALID_ARGUMENT on bins[i].bin_id."""
    request = type(plan_request)()
    request.CopyFrom(plan_request)
    request.bins[7].bin_id = ""
    assert _plan_error(request).field == "bins[7].bin_id"


def test_plan_day_routing_fields_use_the_plan_names(plan_request) -> None:
    """Routing errors of a PlanDay name its own fields: fleet[i] for vehicle types, bins[i] for stops."""
    request = type(plan_request)()
    request.CopyFrom(plan_request)
    request.fleet[0].start_depot_index = 4
    assert _plan_error(request).field == "fleet[0].start_depot_index"
    request.CopyFrom(plan_request)
    request.bins[3].location_index = 999
    assert _plan_error(request).field == "bins[3].location_index"
    request.CopyFrom(plan_request)
    request.bins[3].time_windows.add(start_s=100.0, end_s=50.0)
    assert _plan_error(request).field == "bins[3].time_windows[0].end_s"


def test_the_repository_fixtures_are_real() -> None:
    """The fuzz bases come from the shared real data and the committed model repository."""
    assert (DATA_DIR / "vrp" / "bks.csv").is_file()
    assert (REPO_ROOT / "model_repository" / "text_encoder" / "config.pbtxt").is_file()
