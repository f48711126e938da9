"""Fixtures of the deployment tests (helpers live in ``deploy_helpers``)."""

from __future__ import annotations

import json

import pytest
from deploy_helpers import run_compose


@pytest.fixture(scope="session")
def compose_config() -> dict:
    """The stack as ``docker compose config --format json`` resolves it with deploy/env.example."""
    result = run_compose("config", "--format", "json")
    assert result.returncode == 0, result.stderr
    return json.loads(result.stdout)
