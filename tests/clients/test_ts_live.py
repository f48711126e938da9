"""The generated TypeScript client against the live server (Node's test runner)."""

from __future__ import annotations

import os
import shutil
import subprocess

import pytest
from wasteml_testing import REPO_ROOT

from wasteml.client import WastemlClient

TS_DIR = REPO_ROOT / "clients" / "ts"


def test_typescript_client_calls_the_live_server(client: WastemlClient) -> None:
    """`npm run test:live` (ListModels, and INVALID_ARGUMENT naming top_k) passes against the server."""
    if shutil.which("npm") is None:
        pytest.skip("npm is not installed")
    if not (TS_DIR / "node_modules").is_dir():
        pytest.fail("clients/ts/node_modules is missing; run `make test` (it runs npm ci)")
    result = subprocess.run(
        ["npm", "run", "--silent", "test:live"],
        cwd=TS_DIR,
        env={**os.environ, "WASTEML_ADDR": client.address},
        capture_output=True,
        text=True,
        timeout=180,
        check=False,
    )
    assert result.returncode == 0, result.stdout[-4000:] + result.stderr[-4000:]
    assert "# pass 2" in result.stdout, result.stdout[-2000:]
