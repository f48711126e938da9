"""Integration tests against the real local Triton (the tritonserver binary of nvidia-pytriton)
serving a production-style repository rendered for CPU, through TritonClient."""

from __future__ import annotations

import asyncio
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import onnxruntime as ort
import pytest
import pytest_asyncio
from triton_testutils import REPO_ROOT, write_affine_onnx

from wasteml_server.adapters.triton.client import TritonClient
from wasteml_server.adapters.triton.manager import LocalTriton, free_port
from wasteml_server.core.errors import (
    DeadlineExceededError,
    InternalError,
    NotFoundError,
    UnavailableError,
)
from wasteml_server.core.settings import Settings


def _settings(repository: Path, var_dir: Path, env: Path, **extra: object) -> Settings:
    values: dict[str, object] = {
        "model_repository": repository,
        "var_dir": var_dir,
        "triton_env_dir": env,
        "triton_instance_count": 2,
        "triton_startup_timeout_s": 120,
        "triton_stop_grace_s": 2,
    }
    return Settings(**{**values, **extra})


def _ort(path: Path) -> ort.InferenceSession:
    return ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])


def _group_pids(pgid: int) -> list[int]:
    """Processes of a process group (tritonserver and its Python stubs)."""
    out = subprocess.run(
        ["ps", "-o", "pid=", "-g", str(pgid)], capture_output=True, text=True
    ).stdout
    return [int(p) for p in out.split()]


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    return Path(f"/proc/{pid}/stat").read_text().split()[2] != "Z"


@pytest_asyncio.fixture(scope="module")
async def triton(
    production_repository: Path, triton_env: Path, tmp_path_factory: pytest.TempPathFactory
):
    """One real local Triton for the module, serving ``affine`` (version 2 by its policy)."""
    settings = _settings(production_repository, tmp_path_factory.mktemp("var"), triton_env)
    async with LocalTriton(settings) as local:
        yield local


async def test_batch1_matches_in_process_ort(
    triton: LocalTriton, production_repository: Path
) -> None:
    """A batch-1 request through Triton equals in-process ONNX Runtime to 1e-5 (version 2)."""
    x = np.random.default_rng(1).normal(size=(1, 4)).astype(np.float32)
    out = await triton.client.infer("affine", {"x": x}, ["y", "z"])
    y, z = _ort(production_repository / "affine" / "2" / "model.onnx").run(["y", "z"], {"x": x})
    assert out["y"].shape == (1, 3) and out["y"].dtype == np.float32
    np.testing.assert_allclose(out["y"], y, atol=1e-5, rtol=0)
    np.testing.assert_allclose(out["z"], z, atol=1e-5, rtol=0)


async def test_concurrent_requests_are_batched_and_split(
    triton: LocalTriton, production_repository: Path
) -> None:
    """24 concurrent requests of batch 1..3 each get their own rows (1e-5 to in-process ORT)
    and the dynamic batcher merged them into fewer model executions."""
    client = triton.client
    before = await client.model_statistics("affine")
    rng = np.random.default_rng(2)
    xs = [rng.normal(size=(int(rng.integers(1, 4)), 4)).astype(np.float32) for _ in range(24)]
    outs = await asyncio.gather(*(client.infer("affine", {"x": x}, ["y"]) for x in xs))
    session = _ort(production_repository / "affine" / "2" / "model.onnx")
    for x, out in zip(xs, outs, strict=True):
        np.testing.assert_allclose(out["y"], session.run(["y"], {"x": x})[0], atol=1e-5, rtol=0)
    after = await client.model_statistics("affine")
    rows = int(after["inference_count"]) - int(before.get("inference_count", 0))
    executions = int(after["execution_count"]) - int(before.get("execution_count", 0))
    assert rows == sum(x.shape[0] for x in xs)
    assert executions < len(xs), f"{executions} executions for {len(xs)} requests: nothing merged"


async def test_bad_input_raises_internal(triton: LocalTriton) -> None:
    """A wrong shape, dtype or input name that Triton refuses is InternalError (this server
    built the tensors), naming the model and the input Triton objected to."""
    with pytest.raises(InternalError, match=r"^triton infer affine rejected .*shape for input 'x'"):
        await triton.client.infer("affine", {"x": np.zeros((1, 5), np.float32)}, ["y"])
    with pytest.raises(InternalError, match=r"^triton infer affine rejected .*input 'x' data-type is 'FP64'"):
        await triton.client.infer("affine", {"x": np.zeros((1, 4), np.float64)}, ["y"])
    with pytest.raises(InternalError, match=r"^triton infer affine rejected .*input 'w'"):
        await triton.client.infer("affine", {"w": np.zeros((1, 4), np.float32)}, ["y"])


async def test_unknown_model_and_deadline(triton: LocalTriton) -> None:
    """An unknown model is NotFoundError; a call past its timeout is DeadlineExceededError."""
    x = np.zeros((1, 4), np.float32)
    with pytest.raises(NotFoundError):
        await triton.client.infer("no_such_model", {"x": x}, ["y"])
    with pytest.raises(DeadlineExceededError):
        await triton.client.infer("affine", {"x": x}, ["y"], timeout_s=1e-6)


async def test_repository_index_and_config(triton: LocalTriton) -> None:
    """The index lists affine version 2 READY; the served config is the rendered CPU one."""
    index = await triton.client.repository_index()
    assert [(m.name, m.version, m.state) for m in index] == [("affine", "2", "READY")]
    config = await triton.client.model_config("affine")
    assert config["backend"] == "python"
    assert config["instance_group"][0]["kind"] == "KIND_CPU"
    assert config["dynamic_batching"]["max_queue_delay_microseconds"] == "100000"


async def test_load_specific_version_then_unload(
    triton: LocalTriton, production_repository: Path
) -> None:
    """Loading version 1 (config override, version_policy specific) serves v1 weights; the
    repository policy brings back v2; a missing version is NOT_FOUND and keeps v2 serving;
    unload makes the model unready (infer: UNAVAILABLE); load restores it."""
    client = triton.client
    x = np.ones((2, 4), np.float32)
    await client.load_model("affine", versions=[1])
    assert await client.model_ready("affine", "1")
    assert not await client.model_ready("affine", "2")
    out = await client.infer("affine", {"x": x}, ["y"], version="1")
    v1 = _ort(production_repository / "affine" / "1" / "model.onnx").run(["y"], {"x": x})[0]
    np.testing.assert_allclose(out["y"], v1, atol=1e-5, rtol=0)
    with pytest.raises((NotFoundError, UnavailableError)):
        await client.infer("affine", {"x": x}, ["y"], version="2")

    await client.load_model("affine")
    assert await client.model_ready("affine", "2") and not await client.model_ready("affine", "1")
    with pytest.raises(NotFoundError):
        await client.load_model("affine", versions=[9])
    assert await client.model_ready("affine", "2")  # a failed reload keeps what was serving

    await client.unload_model("affine")
    for _ in range(100):
        if not await client.model_ready("affine"):
            break
        await asyncio.sleep(0.1)
    assert not await client.model_ready("affine")
    with pytest.raises(UnavailableError, match="no ready version"):
        await client.infer("affine", {"x": x}, ["y"])
    with pytest.raises(NotFoundError):
        await client.model_statistics("no_such_model")
    with pytest.raises(InternalError, match=r"^load affine: give version numbers >= 1, got \[\]$"):
        await client.load_model("affine", versions=[])
    with pytest.raises(NotFoundError):
        await client.load_model("no_such_model")
    await client.load_model("affine")
    assert await client.model_ready("affine", "2")


async def test_external_url_starts_nothing(triton: LocalTriton, tmp_path: Path) -> None:
    """With triton_url set, LocalTriton starts no process and its client reaches that URL."""
    settings = _settings(
        tmp_path / "unused", tmp_path / "var", tmp_path / "no-env", triton_url=triton.grpc_url
    )
    async with LocalTriton(settings) as external:
        assert external.external and external.pid is None
        assert await external.client.model_ready("affine")
    assert triton.pid is not None and await triton.client.is_ready()
    assert not (tmp_path / "var").exists()


async def test_down_server_is_unavailable() -> None:
    """Against a port nobody listens on: is_ready is False and infer raises UnavailableError."""
    async with TritonClient(f"127.0.0.1:{free_port()}", timeout_s=2.0) as client:
        assert not await client.is_ready()
        with pytest.raises(UnavailableError) as error:
            await client.infer("affine", {"x": np.zeros((1, 4), np.float32)}, ["y"])
        assert error.value.dependency == "triton"


async def test_stop_leaves_no_process(
    production_repository: Path, triton_env: Path, tmp_path: Path
) -> None:
    """After stop, tritonserver and its Python stubs are gone; prints the startup time."""
    local = LocalTriton(_settings(production_repository, tmp_path / "var", triton_env))
    started = time.monotonic()
    await local.start()
    print(f"local Triton startup (1 model x 2 instances): {time.monotonic() - started:.2f} s")
    pid = local.pid
    assert pid is not None
    group = _group_pids(pid)
    assert len(group) >= 3  # tritonserver + 2 stub instances
    assert local.metrics_url and local.grpc_url.startswith("127.0.0.1:")
    await local.stop()
    assert not [p for p in group if _alive(p)]
    assert local.pid is None
    await local.stop()  # idempotent


async def test_model_load_failure_is_reported(triton_env: Path, tmp_path: Path) -> None:
    """A model whose ONNX graph does not match its config fails the start with
    UnavailableError carrying Triton's log, within the timeout and without leftovers."""
    from triton_testutils import AFFINE_CONFIG

    repo = tmp_path / "repo"
    (repo / "affine").mkdir(parents=True)
    (repo / "affine" / "config.pbtxt").write_text(
        AFFINE_CONFIG.replace('name: "y"', 'name: "y_wrong"')
    )
    write_affine_onnx(repo / "affine" / "1" / "model.onnx", seed=1)
    local = LocalTriton(_settings(repo, tmp_path / "var", triton_env, triton_startup_timeout_s=60))
    with pytest.raises(UnavailableError, match="y_wrong"):
        await local.start()
    assert local.pid is None


def test_parent_crash_kills_triton(
    production_repository: Path, triton_env: Path, tmp_path: Path
) -> None:
    """`run_local_triton` in a child process: SIGTERM stops it cleanly (exit 0); SIGKILL of
    the parent still takes tritonserver down (PR_SET_PDEATHSIG), no orphans either way."""
    env = dict(
        os.environ,
        WASTEML_MODEL_REPOSITORY=str(production_repository),
        WASTEML_TRITON_ENV_DIR=str(triton_env),
        WASTEML_TRITON_STOP_GRACE_S="2",
    )
    code = (
        "import logging, sys; logging.basicConfig(level=logging.INFO, stream=sys.stderr);"
        "from wasteml_server.core.settings import Settings;"
        "from wasteml_server.adapters.triton.manager import run_local_triton;"
        "sys.exit(run_local_triton(Settings()))"
    )
    for how in (signal.SIGTERM, signal.SIGKILL):
        env["WASTEML_VAR_DIR"] = str(tmp_path / f"var-{how.name}")
        parent = subprocess.Popen(
            [sys.executable, "-c", code], env=env, cwd=REPO_ROOT, stderr=subprocess.PIPE, text=True
        )
        try:
            pid = None
            for line in parent.stderr:
                if "local Triton ready" in line:
                    pid = int(line.split("(pid ")[1].split(",")[0])
                    break
            assert pid is not None, "run_local_triton never reported ready"
            group = _group_pids(pid)
            parent.send_signal(how)
            rc = parent.wait(timeout=30)
            if how == signal.SIGTERM:
                assert rc == 0
            deadline = time.monotonic() + 20
            while time.monotonic() < deadline and [p for p in group if _alive(p)]:
                time.sleep(0.2)
            assert not [p for p in group if _alive(p)], f"left behind after {how.name}: {group}"
        finally:
            if parent.poll() is None:
                parent.kill()
            parent.stderr.close()


async def test_port_taken_meanwhile_is_retried(
    production_repository: Path, triton_env: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """When a port picked as free is taken before Triton binds it, the start is retried on
    new ports instead of failing."""
    import socket

    from wasteml_server.adapters.triton import manager

    with socket.socket() as squatter:
        squatter.bind(("127.0.0.1", 0))
        squatter.listen()
        taken = squatter.getsockname()[1]
        picks = iter([taken])
        monkeypatch.setattr(manager, "free_port", lambda: next(picks, None) or free_port())
        async with LocalTriton(
            _settings(production_repository, tmp_path / "var", triton_env)
        ) as local:
            assert local.grpc_url != f"127.0.0.1:{taken}"
            assert await local.client.model_ready("affine")
