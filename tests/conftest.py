"""Shared fixtures: one live server (real local Triton, SQLite, gRPC on a free loopback port)
per test session, used by every test that calls the API end to end."""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path

import pytest

from wasteml.client import WastemlClient
from wasteml_server.app import BackgroundServer
from wasteml_server.settings import Settings

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


@pytest.fixture(scope="session")
def live_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[BackgroundServer]:
    """The whole server with the real local Triton, started once per session."""
    require_local_stack()
    os.environ.pop("WASTEML_TRITON_URL", None)
    server = BackgroundServer(server_settings(tmp_path_factory.mktemp("live")))
    server.start(timeout_s=600)
    yield server
    server.stop()


@pytest.fixture(scope="session")
def client(live_server: BackgroundServer) -> Iterator[WastemlClient]:
    """A client of the live server, after it reports SERVING."""
    with WastemlClient(f"127.0.0.1:{live_server.app.port}", timeout_s=60) as c:
        c.wait_until_serving(timeout_s=120)
        yield c
