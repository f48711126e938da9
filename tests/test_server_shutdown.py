"""Graceful shutdown of a real ``wasteml serve`` process on SIGTERM."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import threading
import time
from pathlib import Path

import grpc
import pytest
from grpc_health.v1 import health_pb2, health_pb2_grpc
from wasteml_testing import DATA_DIR, REPO_ROOT, TRITON_ENV, require_local_stack

from wasteml.client import WastemlClient

TEXTS = [
    f"Overflowing or Un-kept Dumpster {i}: dumpster behind the market is overflowing again, "
    "bags on the ground next to it and the lid will not close"
    for i in range(1024)
]


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _running(pid: int) -> bool:
    """True while ``pid`` exists and is not a zombie."""
    try:
        return "zombie" not in Path(f"/proc/{pid}/status").read_text().lower()
    except FileNotFoundError:
        return False


def _children(pid: int) -> list[int]:
    out = subprocess.run(["ps", "-o", "pid=", "--ppid", str(pid)], capture_output=True, text=True, check=False)
    return [int(p) for p in out.stdout.split()]


@pytest.fixture()
def serve_process(tmp_path: Path):
    """``wasteml serve`` as a child process on a free port with its own state directory."""
    require_local_stack()
    port = _free_port()
    env = {
        **os.environ,
        "WASTEML_PORT": str(port),
        "WASTEML_VAR_DIR": str(tmp_path),
        "WASTEML_DATABASE_URL": f"sqlite:///{tmp_path / 'wasteml.db'}",
        "WASTEML_MILVUS_URI": str(tmp_path / "milvus.db"),
        "WASTEML_MODEL_REPOSITORY": str(REPO_ROOT / "model_repository"),
        "WASTEML_TRITON_ENV_DIR": str(TRITON_ENV),
        "WASTEML_DATA_DIR": str(DATA_DIR),
        "WASTEML_SHUTDOWN_GRACE_S": "30",
        "WASTEML_SOLVER_WORKERS": "1",
    }
    env.pop("WASTEML_TRITON_URL", None)
    log = open(tmp_path / "serve.log", "w+b")  # noqa: SIM115 - closed below
    proc = subprocess.Popen(
        [sys.executable, "-m", "wasteml_tools.cli", "serve"], cwd=REPO_ROOT, env=env, stdout=log, stderr=log
    )
    try:
        yield proc, port, log
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait(timeout=30)
        log.close()


def test_sigterm_drains_in_flight_calls_and_refuses_new_ones(serve_process) -> None:
    """On SIGTERM: health goes NOT_SERVING, the call in flight completes, new calls are refused,
    and the process exits 0 leaving no Triton behind."""
    proc, port, log = serve_process
    with WastemlClient(f"127.0.0.1:{port}", timeout_s=120, max_attempts=1) as client:
        client.wait_until_serving(timeout_s=300)
        triton_children = _children(proc.pid)
        assert triton_children, "the server should run the local Triton as a child process"

        statuses: list[int] = []
        channel = grpc.insecure_channel(f"127.0.0.1:{port}")
        watch = health_pb2_grpc.HealthStub(channel).Watch(health_pb2.HealthCheckRequest(service=""), timeout=120)

        def follow() -> None:
            try:
                for reply in watch:
                    statuses.append(reply.status)
            except grpc.RpcError:
                pass

        watcher = threading.Thread(target=follow, daemon=True)
        watcher.start()

        result: dict[str, object] = {}

        def in_flight() -> None:
            try:
                result["reply"] = client.embed(TEXTS, timeout_s=120)
            except grpc.RpcError as err:
                result["error"] = err

        call = threading.Thread(target=in_flight)
        call.start()
        time.sleep(1.0)  # the call is now being served (1024 texts take seconds on CPU)
        assert call.is_alive(), "the in-flight call finished before SIGTERM; make it longer"
        proc.send_signal(signal.SIGTERM)
        time.sleep(0.5)

        with pytest.raises(grpc.RpcError) as refused:
            client.embed(["a new call after SIGTERM"], timeout_s=10)
        assert refused.value.code() == grpc.StatusCode.UNAVAILABLE

        call.join(timeout=120)
        assert "error" not in result, f"in-flight call failed: {result.get('error')}"
        assert len(result["reply"].embeddings) == len(TEXTS)
        assert proc.wait(timeout=60) == 0, log.seek(0) or log.read().decode(errors="replace")[-3000:]
        watcher.join(timeout=10)
        channel.close()
        assert health_pb2.HealthCheckResponse.SERVING in statuses
        assert statuses[-1] == health_pb2.HealthCheckResponse.NOT_SERVING
        # children may take a moment to exit after the server (multiprocessing's resource tracker
        # leaves when it sees its parent's pipe close); one still running after 10 s is an orphan
        deadline = time.monotonic() + 10.0
        while time.monotonic() < deadline and any(_running(pid) for pid in triton_children):
            time.sleep(0.1)
        assert not [pid for pid in triton_children if _running(pid)], "orphaned child processes"
