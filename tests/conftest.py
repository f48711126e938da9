"""Shared fixtures: one live server (real local Triton, SQLite, gRPC on a free loopback port)
per test session, used by every test that calls the API end to end."""

from __future__ import annotations

import os
from collections.abc import Iterator

import pytest
from wasteml_testing import require_local_stack, server_settings

from wasteml.client import WastemlClient
from wasteml_server.app import BackgroundServer


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
