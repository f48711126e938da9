"""Helpers shared by the tests (importable as ``wasteml_testing``: pytest puts tests/ on the path)."""

from __future__ import annotations

from pathlib import Path

import grpc
import pytest
from google.rpc import error_details_pb2
from grpc_status import rpc_status

from wasteml_server.core.settings import Settings

REPO_ROOT = Path(__file__).resolve().parents[1]
DATA_DIR = REPO_ROOT.parent / "shared" / "data"
TRITON_ENV = REPO_ROOT / ".venv-triton"
ENCODER_ONNX = REPO_ROOT / "model_repository" / "text_encoder" / "1" / "model.onnx"


def server_settings(var_dir: Path, **overrides: object) -> Settings:
    """Settings of a test server: free port, state under ``var_dir``, the repo's models and data."""
    values: dict[str, object] = {
        "host": "127.0.0.1",
        "port": 0,
        "var_dir": var_dir,
        "database_url": f"sqlite:///{var_dir / 'wasteml.db'}",
        "milvus_uri": str(var_dir / "milvus.db"),
        "model_repository": REPO_ROOT / "model_repository",
        "triton_env_dir": TRITON_ENV,
        "data_dir": DATA_DIR,
        "triton_url": None,
        "auth_token": None,
        "metrics_port": None,
        "shutdown_grace_s": 10.0,
        "solver_workers": 2,
    }
    values.update(overrides)
    return Settings(**values)


def require_local_stack() -> None:
    """Fail with the fix when the local Triton venv or the exported encoder is missing."""
    missing = []
    if not (TRITON_ENV / ".wasteml-triton-env").is_file():
        missing.append(f"{TRITON_ENV} (make triton-env)")
    if not ENCODER_ONNX.is_file():
        missing.append(f"{ENCODER_ONNX} (make models)")
    if missing:
        pytest.fail("the live-server tests need " + ", ".join(missing) + "; run `make test`")


def bad_request(err: grpc.RpcError) -> error_details_pb2.BadRequest:
    """The ``google.rpc.BadRequest`` detail of a rich gRPC error status (fails when absent)."""
    status = rpc_status.from_call(err)
    assert status is not None, "error carries no google.rpc.Status"
    for detail in status.details:
        if detail.Is(error_details_pb2.BadRequest.DESCRIPTOR):
            out = error_details_pb2.BadRequest()
            detail.Unpack(out)
            return out
    raise AssertionError("no BadRequest detail in the status")
