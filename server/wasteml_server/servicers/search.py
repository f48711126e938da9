"""SemanticSearch servicer: protobuf <-> the text encoder and the search domain."""

from __future__ import annotations

import grpc

from wasteml.v1 import common_pb2, search_pb2, search_pb2_grpc
from wasteml_server.errors import InvalidArgumentError
from wasteml_server.text_encoder import EMBEDDING_DIM, TextEncoder


class SemanticSearchServicer(search_pb2_grpc.SemanticSearchServicer):
    """``wasteml.v1.SemanticSearch``.

    Args:
        encoder: embeds texts through Triton.
    """

    def __init__(self, encoder: TextEncoder) -> None:
        self._encoder = encoder

    async def Embed(self, request: search_pb2.EmbedRequest, context: grpc.aio.ServicerContext):
        if request.model.name and request.model.name != self._encoder.model:
            raise InvalidArgumentError(
                "model.name", f"unknown encoder {request.model.name!r}; this server serves {self._encoder.model!r}"
            )
        result = await self._encoder.embed(list(request.texts), version=request.model.version)
        return search_pb2.EmbedResponse(
            embeddings=[
                search_pb2.Embedding(values=vec.tolist(), token_count=int(n), truncated=bool(t))
                for vec, n, t in zip(result.vectors, result.token_counts, result.truncated, strict=True)
            ],
            model=common_pb2.ModelRef(name=result.model, version=result.version),
            dimension=EMBEDDING_DIM,
        )
