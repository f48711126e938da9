"""ModelAdmin servicer: decode, call ``admin.service``, encode (``codecs.admin``)."""

from __future__ import annotations

import grpc

from wasteml.v1 import admin_pb2, admin_pb2_grpc
from wasteml_server.admin.service import ModelAdmin
from wasteml_server.codecs.admin import model_to_proto, registry_to_proto


class ModelAdminServicer(admin_pb2_grpc.ModelAdminServicer):
    """``wasteml.v1.ModelAdmin`` over a ``ModelAdmin``."""

    def __init__(self, admin: ModelAdmin) -> None:
        self._admin = admin

    async def ListModels(self, request: admin_pb2.ListModelsRequest, context: grpc.aio.ServicerContext):
        models = await self._admin.list_models(ready_only=request.ready_only)
        return admin_pb2.ListModelsResponse(models=[model_to_proto(m) for m in models])

    async def GetModel(self, request: admin_pb2.GetModelRequest, context: grpc.aio.ServicerContext):
        model = await self._admin.get_model(request.name)
        rows, _ = await self._admin.registry_entries(name=request.name, page_size=100)
        return admin_pb2.GetModelResponse(
            model=model_to_proto(model), registry_entries=[registry_to_proto(r) for r in rows]
        )

    async def LoadModel(self, request: admin_pb2.LoadModelRequest, context: grpc.aio.ServicerContext):
        model = await self._admin.load(request.name, request.version)
        return admin_pb2.LoadModelResponse(model=model_to_proto(model))

    async def UnloadModel(self, request: admin_pb2.UnloadModelRequest, context: grpc.aio.ServicerContext):
        model = await self._admin.unload(request.name, request.version)
        return admin_pb2.UnloadModelResponse(model=model_to_proto(model))

    async def ListRegistryEntries(
        self, request: admin_pb2.ListRegistryEntriesRequest, context: grpc.aio.ServicerContext
    ):
        rows, token = await self._admin.registry_entries(
            request.name, request.kind, request.page_size, request.page_token
        )
        return admin_pb2.ListRegistryEntriesResponse(
            entries=[registry_to_proto(r) for r in rows], next_page_token=token
        )
