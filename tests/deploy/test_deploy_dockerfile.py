"""The Dockerfile, linted without a Docker engine: hadolint when installed, and a parse that
checks the properties the deployment relies on (multi-stage, pinned bases, non-root runtime,
grpc.health.v1 health check, no remote ADD, only real settings in ENV)."""

from __future__ import annotations

import json
import os
import re
import shlex
import socket
import subprocess
import sys
from dataclasses import dataclass

import pytest
from deploy_helpers import INSTALL_HINT, REPO_ROOT, find_tool

from wasteml_server.core.settings import Settings

DOCKERFILE = REPO_ROOT / "Dockerfile"


@dataclass(frozen=True)
class Instruction:
    """One Dockerfile instruction: keyword (upper case) and its argument text."""

    keyword: str
    args: str


def parse(text: str) -> list[list[Instruction]]:
    """Instructions grouped by stage (each list starts with its FROM), continuations joined."""
    stages: list[list[Instruction]] = []
    logical = re.sub(r"\\\n", " ", text)
    for raw in logical.splitlines():
        line = raw.strip()
        if not line or line.startswith("#"):
            continue
        keyword, _, args = line.partition(" ")
        instruction = Instruction(keyword.upper(), args.strip())
        if instruction.keyword == "FROM":
            stages.append([])
        if stages:
            stages[-1].append(instruction)
    return stages


STAGES = parse(DOCKERFILE.read_text())


def _stage_name(stage: list[Instruction]) -> str | None:
    m = re.search(r"\bAS\s+(\S+)$", stage[0].args, re.I)
    return m.group(1) if m else None


def _json_args(instruction: Instruction) -> list[str]:
    return json.loads(instruction.args)


def _last(stage: list[Instruction], keyword: str) -> Instruction | None:
    found = [i for i in stage if i.keyword == keyword]
    return found[-1] if found else None


def _healthcheck_command() -> list[str]:
    check = _last(STAGES[-1], "HEALTHCHECK")
    assert check is not None
    return json.loads(check.args[check.args.index("CMD") + len("CMD") :].strip())


def test_deploy_dockerfile_hadolint() -> None:
    """hadolint reports nothing (all rules, info level included)."""
    hadolint = find_tool("hadolint")
    if hadolint is None:
        pytest.skip(f"hadolint is not installed: {INSTALL_HINT}")
    result = subprocess.run([hadolint, "--failure-threshold", "info", str(DOCKERFILE)],
                            capture_output=True, text=True, timeout=60)
    assert result.returncode == 0, result.stdout + result.stderr


def test_deploy_dockerfile_multi_stage_with_pinned_bases() -> None:
    """Several stages; every base is an earlier stage or an image with a versioned tag."""
    assert len(STAGES) >= 2
    names: set[str] = set()
    for stage in STAGES:
        base = stage[0].args.split()[0]
        if base not in names:
            tag = base.rsplit(":", 1)[1] if ":" in base.rsplit("/", 1)[-1] else ""
            assert re.search(r"\d", tag) and tag != "latest", f"base image {base} is not pinned"
        if name := _stage_name(stage):
            names.add(name)


def test_deploy_dockerfile_runtime_stage() -> None:
    """The last stage (the default build) runs `wasteml serve` as a non-root user and exposes the ports."""
    runtime = STAGES[-1]
    assert _stage_name(runtime) == "runtime"
    user = _last(runtime, "USER")
    assert user is not None
    uid = user.args.split(":")[0]
    assert uid not in {"root", "0"}, "the runtime runs as root"
    assert _json_args(_last(runtime, "ENTRYPOINT")) == ["wasteml"]
    assert _json_args(_last(runtime, "CMD")) == ["serve"]
    exposed = {p for i in runtime if i.keyword == "EXPOSE" for p in i.args.split()}
    assert {"50051", "9464"} <= exposed
    # the runtime copies the builder's venv instead of installing build tools itself
    assert any(i.keyword == "COPY" and "--from=builder" in i.args for i in runtime)
    # the server talks to an external Triton: no bundled Triton in any instruction
    assert not any("pytriton" in i.args for stage in STAGES for i in stage)


def test_deploy_dockerfile_no_remote_add() -> None:
    """No ADD fetches a remote URL (builds must be reproducible from the context and registries)."""
    for stage in STAGES:
        for i in stage:
            if i.keyword == "ADD":
                assert not re.search(r"https?://|git@", i.args), i.args


def test_deploy_dockerfile_env_are_settings() -> None:
    """Every WASTEML_* variable set by ENV is a Settings field."""
    fields = {f"WASTEML_{name.upper()}" for name in Settings.model_fields}
    for stage in STAGES:
        for i in stage:
            if i.keyword == "ENV":
                for token in shlex.split(i.args):
                    key = token.split("=", 1)[0]
                    if key.startswith("WASTEML_"):
                        assert key in fields, f"ENV {key} is not a setting"


def test_deploy_dockerfile_healthcheck_uses_grpc_health() -> None:
    """The HEALTHCHECK asks grpc.health.v1 for the overall status (service "") with a timeout."""
    command = _healthcheck_command()
    assert command[:2] == ["python", "-c"]
    code = command[2]
    assert "grpc_health.v1" in code and "HealthStub" in code and "service=''" in code
    assert "timeout=" in code


def _run_healthcheck(port: int) -> subprocess.CompletedProcess[str]:
    code = _healthcheck_command()[2]
    env = {**os.environ, "WASTEML_PORT": str(port)}
    return subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True, timeout=30)


def test_deploy_dockerfile_healthcheck_fails_without_server() -> None:
    """The health check command exits non-zero when nothing listens on the port."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        free_port = s.getsockname()[1]
    assert _run_healthcheck(free_port).returncode != 0


def test_deploy_dockerfile_healthcheck_passes_on_serving_server(client, live_server) -> None:
    """The health check command exits 0 against the real server once it reports SERVING."""
    result = _run_healthcheck(live_server.app.port)
    assert result.returncode == 0, result.stderr


def test_deploy_dockerfile_copy_sources_exist() -> None:
    """Every COPY from the build context names a path that exists in the repository and that
    .dockerignore does not exclude."""
    ignored = [
        line.strip().rstrip("/")
        for line in (REPO_ROOT / ".dockerignore").read_text().splitlines()
        if line.strip() and not line.startswith(("#", "!")) and "*" not in line
    ]
    for stage in STAGES:
        for i in stage:
            if i.keyword != "COPY" or "--from=" in i.args:
                continue
            sources = [a for a in i.args.split() if not a.startswith("--")][:-1]
            for src in sources:
                path = src.rstrip("/")
                assert (REPO_ROOT / path).exists(), f"COPY {src}: not in the repository"
                assert path not in ignored and not any(path.startswith(p + "/") for p in ignored), (
                    f"COPY {src}: excluded by .dockerignore"
                )
