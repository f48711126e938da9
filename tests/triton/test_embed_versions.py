"""Embed's ``model.version`` through the live server (real local Triton): a version that is
not ASCII digits 1..2^63-1 is INVALID_ARGUMENT naming ``model.version`` before Triton is called
(a long one came back as a Triton fault, which clients read as an outage and retry); a
well-formed version Triton does not have is NOT_FOUND (issue 12, #10)."""

from __future__ import annotations

import grpc
import pytest
from wasteml_testing import REPO_ROOT, bad_request

from wasteml.client import WastemlClient
from wasteml.v1 import common_pb2, search_pb2
from wasteml_models import TEXT_ENCODER
from wasteml_models.config import EncoderSignature
from wasteml_models.tokenizer import TextTokenizer
from wasteml_server.adapters.triton.client import TritonClient
from wasteml_server.adapters.triton.manager import free_port
from wasteml_server.core.common import MAX_MODEL_VERSION
from wasteml_server.core.errors import InvalidArgumentError, UnavailableError
from wasteml_server.search.encoder import TextEncoder

MODEL_REPOSITORY = REPO_ROOT / "model_repository"


def _embed(client: WastemlClient, version: str) -> search_pb2.EmbedResponse:
    return client.search.Embed(search_pb2.EmbedRequest(
        texts=["Overflowing dumpster behind the market."],
        model=common_pb2.ModelRef(version=version)), timeout=60)


@pytest.mark.parametrize("version", ["9" * 40, str(2**63), str(2**64), "²", "٣", "0", "07"])
def test_malformed_embed_version_is_invalid_argument(client: WastemlClient, version: str) -> None:
    """A long, int64-overflowing, non-ASCII or zero-led version is INVALID_ARGUMENT on
    model.version, never INTERNAL or UNAVAILABLE."""
    with pytest.raises(grpc.RpcError) as info:
        _embed(client, version)
    err = info.value
    assert err.code() == grpc.StatusCode.INVALID_ARGUMENT, (err.code(), err.details())
    assert [v.field for v in bad_request(err).field_violations] == ["model.version"]


@pytest.mark.parametrize("version", ["2", "99999999", str(MAX_MODEL_VERSION)])
def test_missing_embed_version_is_not_found(client: WastemlClient, version: str) -> None:
    """A well-formed version the encoder does not have is NOT_FOUND."""
    with pytest.raises(grpc.RpcError) as info:
        _embed(client, version)
    assert info.value.code() == grpc.StatusCode.NOT_FOUND, info.value.details()


def test_embed_served_version_is_named(client: WastemlClient) -> None:
    """Version 1 pinned is served and named in the reply."""
    reply = _embed(client, "1")
    assert (reply.model.name, reply.model.version) == ("text_encoder", "1")


async def test_encoder_checks_an_integer_version_before_triton() -> None:
    """TextEncoder.embed given an int version outside 1..2^63-1 (a caller that skipped the
    codec) raises InvalidArgumentError on model.version without calling the model server: here
    a port nobody listens on, which would answer UnavailableError."""
    async with TritonClient(f"127.0.0.1:{free_port()}", timeout_s=2.0) as server:
        encoder = TextEncoder(server, TextTokenizer.from_repository(MODEL_REPOSITORY),
                              TEXT_ENCODER, EncoderSignature.load(MODEL_REPOSITORY, TEXT_ENCODER))
        for version in (0, -1, 2**63):
            with pytest.raises(InvalidArgumentError) as info:
                await encoder.embed(["a bin"], version=version)
            assert info.value.field == "model.version"
        with pytest.raises(UnavailableError):
            await encoder.embed(["a bin"], version=1)
