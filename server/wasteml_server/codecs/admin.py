"""ModelAdmin protobuf <-> domain: models, versions, tensors and registry rows."""

from __future__ import annotations

from wasteml.v1 import admin_pb2
from wasteml_server.admin.registry import RegisteredModel
from wasteml_server.admin.service import ModelInfo

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
