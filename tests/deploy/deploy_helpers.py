"""Helpers of the deployment tests (imported by name: ``deploy_helpers``): locating the check tools and reading the compose stack.

The tools (docker compose v2, hadolint, promtool) are installed, pinned, by
``deploy/install_tools.sh`` into ``.venv/bin``; tests that need one skip with that hint when it
is missing. Nothing here needs a Docker engine.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

REPO_ROOT = Path(__file__).resolve().parents[2]
COMPOSE_FILE = REPO_ROOT / "docker-compose.gpu.yml"
ENV_EXAMPLE = REPO_ROOT / "deploy" / "env.example"
INSTALL_HINT = "run `bash deploy/install_tools.sh` (installs docker compose v2, hadolint and promtool into .venv/bin)"


def find_tool(name: str) -> str | None:
    """Path of an executable: beside the running Python (``.venv/bin``) first, then ``PATH``."""
    beside = Path(sys.executable).parent / name
    if beside.is_file() and os.access(beside, os.X_OK):
        return str(beside)
    return shutil.which(name)


def compose_command() -> list[str] | None:
    """``["docker", "compose"]`` when the docker CLI has the compose v2 plugin, else the
    standalone compose v2 binary (same program and semantics), else None."""
    docker = shutil.which("docker")
    if docker is not None:
        probe = subprocess.run([docker, "compose", "version"], capture_output=True, text=True, timeout=30)
        if probe.returncode == 0:
            return [docker, "compose"]
    standalone = find_tool("docker-compose")
    if standalone is not None:
        probe = subprocess.run([standalone, "version"], capture_output=True, text=True, timeout=30)
        if probe.returncode == 0 and " v2." in probe.stdout:
            return [standalone]
    return None


def read_env_file(path: Path) -> dict[str, str]:
    """``KEY=value`` lines of an env file (comments and blank lines skipped)."""
    values: dict[str, str] = {}
    for line in path.read_text().splitlines():
        line = line.strip()
        if line and not line.startswith("#"):
            key, _, value = line.partition("=")
            values[key.strip()] = value.strip()
    return values


def clean_env(**extra: str) -> dict[str, str]:
    """The process environment without any variable the compose file interpolates, plus ``extra``."""
    env = {
        k: v
        for k, v in os.environ.items()
        if not (k.startswith(("WASTEML_", "STACK_", "POSTGRES_", "MINIO_", "COMPOSE_")))
    }
    env.update(extra)
    return env


def run_compose(*args: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    """Run ``docker compose -f docker-compose.gpu.yml <args>`` in the repository root."""
    cmd = compose_command()
    if cmd is None:
        pytest.skip(f"docker compose v2 is not installed: {INSTALL_HINT}")
    return subprocess.run(
        [*cmd, "-f", str(COMPOSE_FILE), *args],
        cwd=REPO_ROOT,
        capture_output=True,
        text=True,
        timeout=120,
        env=env if env is not None else clean_env(**read_env_file(ENV_EXAMPLE)),
    )
