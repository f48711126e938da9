"""ModelAdmin servicer: protobuf <-> ``wasteml_server.admin.service``."""

from __future__ import annotations

import grpc

from wasteml.v1 import admin_pb2, admin_pb2_grpc
from wasteml_server.adapters.storage import RegisteredModel
from wasteml_server.admin.service import ModelAdmin, ModelInfo

_STATE = {
    "READY": admin_pb2.MODEL_STATE_READY,
    "LOADING": admin_pb2.MODEL_STATE_LOADING,
    "UNLOADING": admin_pb2.MODEL_STATE_UNLOADING,
    "UNAVAILABLE": admin_pb2.MODEL_STATE_UNAVAILABLE,
}


def model_to_proto(model: ModelInfo) -> admin_pb2.ModelInfo:
    """``ModelInfo`` -> ``wasteml.v1.ModelInfo``."""
    return admin_pb2.ModelInfo(
        name=model.name,
        versions=[
            admin_pb2.ModelVersionStatus(
                version=v.version, state=_STATE.get(v.state, admin_pb2.MODEL_STATE_UNSPECIFIED), reason=v.reason
            )
            for v in model.versions
        ],
        runtime=admin_pb2.MODEL_RUNTIME_TRITON,
        platform=model.platform,
        backend=model.backend,
        max_batch_size=model.max_batch_size,
        inputs=[admin_pb2.TensorSpec(name=t.name, datatype=t.datatype, shape=t.shape) for t in model.inputs],
        outputs=[admin_pb2.TensorSpec(name=t.name, datatype=t.datatype, shape=t.shape) for t in model.outputs],
    )


def registry_to_proto(row: RegisteredModel) -> admin_pb2.RegistryEntry:
    """A registry row -> ``wasteml.v1.RegistryEntry`` (registry ``kind`` is the artefact format)."""
    entry = admin_pb2.RegistryEntry(
        name=row.name,
        version=str(row.version),
        kind=str(row.export_settings.get("task", row.name)),
        format=row.kind,
        source_package=row.source_package or "",
        source_version=row.source_version or "",
        file_hashes=row.file_hashes,
        export_settings={k: str(v) for k, v in row.export_settings.items()},
        metrics=row.metrics,
    )
    if row.training_data_hash:
        entry.source_hashes["training_data"] = row.training_data_hash
    entry.created_at.FromDatetime(row.created_at)
    return entry


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
