"""ModelAdmin through the live server (real local Triton, real SQLite registry): bad names,
versions and page tokens get INVALID_ARGUMENT naming the field, unknown models and versions
NOT_FOUND, and a load of a version that does not exist never reports success (issue 12, #6)."""

from __future__ import annotations

import grpc
import pytest
from wasteml_testing import bad_request

from wasteml.client import WastemlClient
from wasteml.v1 import admin_pb2
from wasteml_server.adapters.storage import ModelRegistry
from wasteml_server.admin.service import ModelAdmin
from wasteml_server.app import BackgroundServer
from wasteml_server.core.errors import NotFoundError

BAD_VERSIONS = ["²", "٣", "0", "01", "-1", " 1", "1.0", "latest", str(2**63), "9" * 40, "9" * 5000]
BAD_NAMES = ["a" * 300, "../fill_level", "fill_level/1", "a\\b", ".", "..", "-x", "x\x00y",
             "bin é"]


def _error(call) -> grpc.RpcError:
    with pytest.raises(grpc.RpcError) as info:
        call()
    return info.value


def _ready_versions(client: WastemlClient) -> dict[str, list[str]]:
    return {m.name: sorted(v.version for v in m.versions if v.state == admin_pb2.MODEL_STATE_READY)
            for m in client.list_models().models}


def _invalid(err: grpc.RpcError, field: str) -> None:
    assert err.code() == grpc.StatusCode.INVALID_ARGUMENT, (err.code(), err.details())
    assert [v.field for v in bad_request(err).field_violations] == [field]
    assert len(err.details()) < 1000


@pytest.mark.parametrize("version", BAD_VERSIONS)
def test_malformed_version_is_invalid_argument(client: WastemlClient, version: str) -> None:
    """LoadModel/UnloadModel with a version that is not ASCII digits 1..2^63-1 (the fuzz run's
    "²" and 5,000 digits gave INTERNAL, "٣" loaded "version 3") is INVALID_ARGUMENT on
    ``version``, and nothing changes on the model server."""
    before = _ready_versions(client)
    _invalid(_error(lambda: client.admin.LoadModel(
        admin_pb2.LoadModelRequest(name="fill_level", version=version), timeout=60)), "version")
    _invalid(_error(lambda: client.admin.UnloadModel(
        admin_pb2.UnloadModelRequest(name="fill_level", version=version), timeout=60)), "version")
    assert _ready_versions(client) == before


@pytest.mark.parametrize("name", BAD_NAMES)
def test_malformed_name_is_invalid_argument(client: WastemlClient, name: str) -> None:
    """A model name that is not one plain directory name of at most 128 characters (300
    characters gave INTERNAL: ENAMETOOLONG) is INVALID_ARGUMENT on ``name`` for every call."""
    calls = [
        lambda: client.admin.LoadModel(admin_pb2.LoadModelRequest(name=name), timeout=60),
        lambda: client.admin.UnloadModel(admin_pb2.UnloadModelRequest(name=name), timeout=60),
        lambda: client.admin.GetModel(admin_pb2.GetModelRequest(name=name), timeout=60),
        lambda: client.admin.ListRegistryEntries(
            admin_pb2.ListRegistryEntriesRequest(name=name), timeout=60),
    ]
    for call in calls:
        _invalid(_error(call), "name")


def test_empty_name_is_invalid_argument(client: WastemlClient) -> None:
    """LoadModel, UnloadModel and GetModel need a name (INVALID_ARGUMENT on ``name``)."""
    for call in (lambda: client.admin.LoadModel(admin_pb2.LoadModelRequest(), timeout=60),
                 lambda: client.admin.UnloadModel(admin_pb2.UnloadModelRequest(), timeout=60),
                 lambda: client.admin.GetModel(admin_pb2.GetModelRequest(), timeout=60)):
        _invalid(_error(call), "name")


def test_unknown_model_is_not_found(client: WastemlClient) -> None:
    """LoadModel and UnloadModel of a well-formed name that no repository holds are NOT_FOUND
    (the fuzz run's LoadModel of an unknown name gave INTERNAL)."""
    for call in (
        lambda: client.admin.LoadModel(admin_pb2.LoadModelRequest(name="no_such_model"), timeout=60),
        lambda: client.admin.LoadModel(
            admin_pb2.LoadModelRequest(name="no_such_model", version="1"), timeout=60),
        lambda: client.admin.UnloadModel(admin_pb2.UnloadModelRequest(name="no_such_model"), timeout=60),
    ):
        err = _error(call)
        assert err.code() == grpc.StatusCode.NOT_FOUND, (err.code(), err.details())


@pytest.mark.parametrize("version", ["99", "99999999", str(2**63 - 1)])
def test_load_of_a_missing_version_is_not_found(client: WastemlClient, version: str) -> None:
    """LoadModel(fill_level, version 99) of a version that was never trained is NOT_FOUND, not
    OK reporting version 1 READY; what was serving keeps serving."""
    before = _ready_versions(client)
    err = _error(lambda: client.admin.LoadModel(
        admin_pb2.LoadModelRequest(name="fill_level", version=version), timeout=60))
    assert err.code() == grpc.StatusCode.NOT_FOUND, (err.code(), err.details())
    assert version in err.details()
    assert _ready_versions(client) == before


def test_load_is_verified_when_the_repository_cannot_be_checked(
        live_server: BackgroundServer) -> None:
    """With no repository listing to check first (an external Triton: no ``refresh``), a load
    of a missing version reaches Triton, which reloads what it has; the load is then checked
    and fails with NotFoundError instead of reporting success. Version 1 still serves."""
    app = live_server.app
    admin = ModelAdmin(app.triton_client, ModelRegistry(app.db))
    with pytest.raises(NotFoundError, match="has no version 99"):
        live_server.call(admin.load("text_encoder_int8", "99"))
    model = live_server.call(admin.get_model("text_encoder_int8"))
    assert model.ready_versions == [1]


@pytest.mark.parametrize("token", ["²", "٣", "-1", "1e3", " 1", "9" * 19, "9" * 5000])
def test_malformed_page_token_is_invalid_argument(client: WastemlClient, token: str) -> None:
    """A page token that is not ASCII digits (at most 18) is INVALID_ARGUMENT on
    ``page_token`` ("²" and 5,000 digits gave INTERNAL)."""
    _invalid(_error(lambda: client.admin.ListRegistryEntries(
        admin_pb2.ListRegistryEntriesRequest(page_token=token), timeout=60)), "page_token")


def test_pages_cover_every_row_and_a_token_past_the_end_is_refused(client: WastemlClient) -> None:
    """Paging with page_size 1 visits every registry row once; a token at or past the row count
    (never returned by the server) is INVALID_ARGUMENT on ``page_token``."""
    everything = client.admin.ListRegistryEntries(
        admin_pb2.ListRegistryEntriesRequest(page_size=1000), timeout=60).entries
    assert everything, "the live server's registry is synced from model_repository at start"
    seen, token = [], ""
    while True:
        page = client.admin.ListRegistryEntries(
            admin_pb2.ListRegistryEntriesRequest(page_size=1, page_token=token), timeout=60)
        seen.extend((e.name, e.version) for e in page.entries)
        token = page.next_page_token
        if not token:
            break
        assert token.isascii() and token.isdigit()
    assert seen == [(e.name, e.version) for e in everything]
    for past in (str(len(everything)), str(len(everything) + 7), "9" * 18):
        _invalid(_error(lambda past=past: client.admin.ListRegistryEntries(
            admin_pb2.ListRegistryEntriesRequest(page_token=past), timeout=60)), "page_token")
