"""Run the local Triton: the real ``tritonserver`` binary bundled in ``nvidia-pytriton``.

:class:`LocalTriton` renders the CPU repository (``repository.render_cpu_repository``),
prepares a backend directory with the Python backend and its stub
(``distribution.TritonDistribution``), and starts ``tritonserver`` as a child process:

- bound to loopback only (``--grpc-address/--http-address/--metrics-address 127.0.0.1``)
  on free ports (a socket bound to port 0 picks each; on the rare bind race Triton exits and
  the start is retried with new ports);
- ``--model-control-mode=explicit`` with every rendered model loaded at start
  (``--load-model``), so ``ModelAdmin`` can load/unload later;
- its stdout/stderr lines are forwarded to the ``wasteml.triton`` logger at the level Triton
  prints (``I``/``W``/``E``/``F`` prefix);
- readiness means server live + ready and every rendered model ready, within
  ``settings.triton_startup_timeout_s``;
- it never outlives us: its own session (process group), ``PR_SET_PDEATHSIG`` = SIGKILL (the
  kernel kills it if this process dies), an ``atexit`` finalizer, and on stop SIGTERM, a
  wait of ``settings.triton_stop_grace_s``, then SIGKILL to the whole group (the Python
  stubs included). The death signal follows the *thread* that forked the child (prctl(2)),
  so ``start()`` spawns from the event-loop thread, never from a worker thread.

When ``settings.triton_url`` is set nothing is started and that URL is used as it is.
"""

from __future__ import annotations

import asyncio
import atexit
import collections
import contextlib
import ctypes
import logging
import os
import secrets
import shutil
import signal
import socket
import subprocess
import threading
import time
from pathlib import Path

from wasteml_server.adapters.triton.client import TritonClient
from wasteml_server.adapters.triton.distribution import TritonDistribution
from wasteml_server.adapters.triton.repository import (
    RenderedModel,
    RenderResult,
    _render_model,
    render_cpu_repository,
)
from wasteml_server.core.common import ModelRef
from wasteml_server.core.errors import NotFoundError, UnavailableError
from wasteml_server.core.settings import Settings

logger = logging.getLogger(__name__)
triton_log = logging.getLogger("wasteml.triton")

LOOPBACK = "127.0.0.1"
_PR_SET_PDEATHSIG = 1  # <linux/prctl.h>
_LEVELS = {"I": logging.INFO, "W": logging.WARNING, "E": logging.ERROR, "F": logging.CRITICAL}
#: Lines Triton prints on every machine without an NVIDIA driver; expected here, so DEBUG.
_CPU_ONLY_NOISE = (
    "CUDA driver version is insufficient",
    "CudaDriverHelper has not been initialized",
    "Failed to initialize NVML",
    "DCGM unable to start",
    "CUDA memory pool disabled",
    "pinned system memory",
)
_PORT_IN_USE = (
    "address already in use",
    "failed to bind",
    "failed to start grpc",
    "failed to start http",
    "failed to start metrics",
)
_START_ATTEMPTS = 3
_AT_FDCWD = -100  # <fcntl.h>
_RENAME_EXCHANGE = 2  # <linux/fs.h>: renameat2 swaps the two paths atomically


def free_port(host: str = LOOPBACK) -> int:
    """A TCP port on ``host`` that was free a moment ago (bound to port 0, then released)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind((host, 0))
        return int(sock.getsockname()[1])


def _set_parent_death_signal() -> None:  # runs in the child between fork and exec
    libc = ctypes.CDLL("libc.so.6", use_errno=True)
    libc.prctl(_PR_SET_PDEATHSIG, signal.SIGKILL)


def _kill_group(pgid: int) -> None:
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.killpg(pgid, signal.SIGKILL)


class LocalTriton:
    """The local Triton child process (or an external Triton when ``triton_url`` is set).

    Use as ``async with LocalTriton(settings) as triton: ...`` or ``await start()`` /
    ``await stop()``. After start, :attr:`grpc_url` is ``host:port`` of the gRPC endpoint and
    :attr:`client` a ready :class:`TritonClient` on it.

    Args:
        settings: uses ``triton_url``, ``model_repository``, ``triton_env_dir``, ``var_dir``,
            ``triton_instance_count``, ``triton_startup_timeout_s``, ``triton_stop_grace_s``,
            ``triton_timeout_s``, ``max_message_bytes``.
    """

    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        self.grpc_url: str | None = settings.triton_url
        self.http_url: str | None = None
        self.metrics_url: str | None = None
        self.rendered: RenderResult | None = None
        self.client: TritonClient | None = None
        self._process: subprocess.Popen[bytes] | None = None
        self._log_thread: threading.Thread | None = None
        self._log_tail: collections.deque[str] = collections.deque(maxlen=200)
        self._atexit_registered = False
        self._execution_env: Path | None = None
        self._refresh_lock = asyncio.Lock()

    @property
    def external(self) -> bool:
        """True when ``settings.triton_url`` points at a Triton this object does not run."""
        return self.settings.triton_url is not None

    @property
    def pid(self) -> int | None:
        """Process id of the running ``tritonserver``, None when none runs."""
        return (
            self._process.pid
            if self._process is not None and self._process.poll() is None
            else None
        )

    @property
    def model_names(self) -> tuple[str, ...]:
        """Models of the rendered repository (empty for an external Triton)."""
        return self.rendered.model_names if self.rendered else ()

    async def __aenter__(self) -> LocalTriton:
        await self.start()
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.stop()

    async def start(self) -> None:
        """Start Triton and wait until it and every rendered model are ready.

        Raises:
            UnavailableError: the environment is missing (run scripts/setup_triton_env.sh),
                Triton exited during start (the message carries its last log lines), or it
                was not ready within ``settings.triton_startup_timeout_s``.
            ModelConfigError: a production ``config.pbtxt`` does not parse.
        """
        if self.client is not None:
            return
        if self.external:
            logger.info("using external Triton at %s; nothing started", self.grpc_url)
            self.client = TritonClient.from_settings(self.settings, self.settings.triton_url)
            return
        started = time.monotonic()
        dist = TritonDistribution.locate(self.settings.triton_env_dir)
        self._execution_env = dist.env_dir
        var_dir = self.settings.var_dir
        self.rendered = await asyncio.to_thread(
            render_cpu_repository,
            self.settings.model_repository,
            var_dir / "triton_repository",
            instance_count=self.settings.triton_instance_count,
            execution_env=dist.env_dir,
        )
        backends = await asyncio.to_thread(dist.prepare_backends, var_dir / "triton_backends")
        for attempt in range(1, _START_ATTEMPTS + 1):
            ports = {name: free_port() for name in ("grpc", "http", "metrics")}
            self._spawn(dist, backends, ports)
            try:
                await self._wait_ready(started)
            except _PortRaceError:
                logger.warning("Triton could not bind its ports (attempt %d); retrying", attempt)
                await self._terminate()
                continue
            except BaseException:
                await self.stop()
                raise
            logger.info(
                "local Triton ready at grpc %s (pid %s, %d models) in %.1f s",
                self.grpc_url,
                self.pid,
                len(self.model_names),
                time.monotonic() - started,
            )
            return
        raise UnavailableError("triton", "could not bind free loopback ports after retries")

    async def refresh_model(self, name: str) -> tuple[int, ...] | None:
        """Re-render one model's CPU variant from the production repository, so that a version
        trained after start (``wasteml train ...``) becomes visible to the local Triton; the
        caller then asks Triton to (re)load the model (``ModelAdmin.load`` does both).

        The model is rendered into a staging folder next to the rendered repository and swapped
        in with one ``renameat2(RENAME_EXCHANGE)`` (Linux >= 3.15; elsewhere two renames), so a
        concurrent Triton load sees the old or the new folder, never a half-written one. A no-op
        for an external Triton (it reads the production repository itself) and before start.
        A model the local Triton does not serve (TensorRT plan, no exported version) is left
        as it is, with a log line.

        Returns:
            The version numbers the local Triton's repository now holds for ``name`` (ascending;
            empty when it holds none), or None when this process cannot tell (an external Triton,
            or before start).

        Raises:
            InvalidArgumentError: ``name`` is not a model name (``ModelRef.parse_name``; field
                ``name``).
            NotFoundError: the production repository has no ``<name>/config.pbtxt``.
        """
        if self.external or self.rendered is None or self._execution_env is None:
            return None
        ModelRef.parse_name(name, "name")  # before the name reaches a path
        source = self.settings.model_repository / name
        if not (source / "config.pbtxt").is_file():
            raise NotFoundError(f"model {name!r} is not in the model repository {source.parent}")
        async with self._refresh_lock:
            outcome = await asyncio.to_thread(self._refresh_sync, name, source)
        if isinstance(outcome, str):
            logger.info("model %s not refreshed for the local CPU Triton: %s", name, outcome)
            served = {m.name: m for m in self.rendered.models}.get(name)
            return served.versions if served is not None else ()
        models = {m.name: m for m in self.rendered.models}
        models[name] = outcome
        self.rendered = RenderResult(
            self.rendered.repository,
            tuple(models[k] for k in sorted(models)),
            tuple(s for s in self.rendered.skipped if s[0] != name),
        )
        logger.info("refreshed %s in the local CPU repository: versions %s", name, outcome.versions)
        return outcome.versions

    def _refresh_sync(self, name: str, source: Path) -> RenderedModel | str:
        assert self.rendered is not None and self._execution_env is not None
        live_root = self.rendered.repository
        staging_root = live_root.with_name(f"{live_root.name}.refresh-{os.getpid()}-{name}")
        shutil.rmtree(staging_root, ignore_errors=True)
        staging_root.mkdir(parents=True)
        try:
            outcome = _render_model(
                source,
                staging_root,
                instance_count=self.settings.triton_instance_count,
                execution_env=self._execution_env,
            )
            if isinstance(outcome, str):
                return outcome
            live = live_root / name
            if live.exists():
                _exchange(staging_root / name, live)  # the old folder is now in staging
            else:
                (staging_root / name).rename(live)
            return RenderedModel(name, outcome.versions, live)
        finally:
            shutil.rmtree(staging_root, ignore_errors=True)

    def _spawn(self, dist: TritonDistribution, backends: Path, ports: dict[str, int]) -> None:
        settings = self.settings
        shm_prefix = f"wasteml{os.getpid()}_{secrets.token_hex(3)}_"
        args = [
            str(dist.binary),
            f"--model-repository={self.rendered.repository.resolve()}",
            "--model-control-mode=explicit",
            *(f"--load-model={name}" for name in self.rendered.model_names),
            f"--backend-directory={backends}",
            f"--cache-directory={dist.caches_dir}",
            f"--backend-config=python,shm-region-prefix-name={shm_prefix}",
            "--disable-auto-complete-config",
            "--strict-readiness=false",  # a failed ModelAdmin load must not make the server unready
            f"--grpc-address={LOOPBACK}",
            f"--grpc-port={ports['grpc']}",
            f"--http-address={LOOPBACK}",
            f"--http-port={ports['http']}",
            "--allow-metrics=true",
            "--allow-gpu-metrics=false",
            f"--metrics-address={LOOPBACK}",
            f"--metrics-port={ports['metrics']}",
            f"--exit-timeout-secs={max(1, int(settings.triton_stop_grace_s))}",
            "--log-format=default",
        ]
        logger.debug("starting %s", " ".join(args))
        self._log_tail.clear()
        self._process = subprocess.Popen(  # noqa: S603 - fixed binary, argument list
            args,
            stdin=subprocess.DEVNULL,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            env=dist.environment(),
            cwd=str(self.rendered.repository.resolve()),
            start_new_session=True,
            preexec_fn=_set_parent_death_signal,  # noqa: PLW1509 - only prctl, async-signal-safe enough
        )
        self.grpc_url = f"{LOOPBACK}:{ports['grpc']}"
        self.http_url = f"http://{LOOPBACK}:{ports['http']}"
        self.metrics_url = f"http://{LOOPBACK}:{ports['metrics']}/metrics"
        self._log_thread = threading.Thread(
            target=self._forward_log, args=(self._process,), name="triton-log", daemon=True
        )
        self._log_thread.start()
        if not self._atexit_registered:
            atexit.register(self._kill_at_exit)
            self._atexit_registered = True

    def _forward_log(self, process: subprocess.Popen[bytes]) -> None:
        assert process.stdout is not None
        for raw in process.stdout:
            line = raw.decode("utf-8", errors="replace").rstrip()
            if not line:
                continue
            self._log_tail.append(line)
            level = (
                _LEVELS.get(line[0], logging.INFO)
                if line[:1] in _LEVELS and "0" <= line[1:2] <= "9"
                else logging.INFO
            )
            if level >= logging.WARNING and any(text in line for text in _CPU_ONLY_NOISE):
                level = logging.DEBUG
            elif line[:1] in "+|":  # the option/model/backend tables printed at start
                level = logging.DEBUG
            triton_log.log(level, "%s", line)
        process.stdout.close()

    async def _wait_ready(self, started: float) -> None:
        assert self._process is not None
        deadline = started + self.settings.triton_startup_timeout_s
        client = TritonClient.from_settings(self.settings, self.grpc_url)
        try:
            while True:
                code = self._process.poll()
                if code is not None:
                    await asyncio.to_thread(self._join_log, 5.0)
                    tail = "\n".join(self._log_tail)
                    if any(text in tail.lower() for text in _PORT_IN_USE):
                        raise _PortRaceError()
                    last = "\n".join(list(self._log_tail)[-15:])
                    raise UnavailableError(
                        "triton", f"tritonserver exited with code {code} during start:\n{last}"
                    )
                remaining = deadline - time.monotonic()
                if remaining <= 0:
                    raise UnavailableError(
                        "triton",
                        f"not ready within {self.settings.triton_startup_timeout_s:.0f} s "
                        "(settings.triton_startup_timeout_s)",
                    )
                probe = min(2.0, remaining)
                if await client.is_ready(timeout_s=probe):
                    states = [
                        await client.model_ready(name, timeout_s=probe) for name in self.model_names
                    ]
                    if all(states):
                        self.client = client
                        client = None
                        return
                await asyncio.sleep(0.2)
        finally:
            if client is not None:
                await client.close()

    def _join_log(self, timeout_s: float) -> None:
        if self._log_thread is not None:
            self._log_thread.join(timeout_s)

    async def stop(self) -> None:
        """Stop Triton: SIGTERM, wait ``settings.triton_stop_grace_s``, then SIGKILL the whole
        process group (Python stubs included). Safe to call twice or without start."""
        if self.client is not None:
            await self.client.close()
            self.client = None
        await self._terminate()

    async def _terminate(self) -> None:
        process = self._process
        if process is None:
            return
        await asyncio.to_thread(self._terminate_sync, process)
        self._process = None

    def _terminate_sync(self, process: subprocess.Popen[bytes]) -> None:
        grace = self.settings.triton_stop_grace_s
        if process.poll() is None:
            process.send_signal(signal.SIGTERM)
            try:
                process.wait(timeout=grace + 5.0)
            except subprocess.TimeoutExpired:
                logger.warning(
                    "tritonserver pid %d ignored SIGTERM for %.0f s; killing it",
                    process.pid,
                    grace + 5,
                )
        _kill_group(process.pid)  # leftovers: the stubs, or Triton itself after the grace
        with contextlib.suppress(subprocess.TimeoutExpired):
            process.wait(timeout=5.0)
        self._join_log(5.0)
        logger.info("local Triton stopped (pid %d, exit code %s)", process.pid, process.returncode)

    def _kill_at_exit(self) -> None:
        process = self._process
        if process is not None and process.poll() is None:
            _kill_group(process.pid)


def _exchange(a: Path, b: Path) -> None:
    """Swap two directories atomically (``renameat2(RENAME_EXCHANGE)``); where the kernel or
    libc lacks it, fall back to two renames (a short window without ``b``)."""
    libc = ctypes.CDLL(None, use_errno=True)
    renameat2 = getattr(libc, "renameat2", None)
    if renameat2 is not None:
        rc = renameat2(_AT_FDCWD, os.fsencode(a), _AT_FDCWD, os.fsencode(b), _RENAME_EXCHANGE)
        if rc == 0:
            return
        errno = ctypes.get_errno()
        if errno not in (22, 38, 95):  # EINVAL, ENOSYS, EOPNOTSUPP: not supported here
            raise OSError(errno, os.strerror(errno), str(b))
    parked = a.with_name(a.name + ".old")
    b.rename(parked)
    a.rename(b)
    parked.rename(a)


class _PortRaceError(Exception):
    """Triton exited because a port picked as free was taken meanwhile."""


async def _serve_until_signal(settings: Settings) -> int:
    loop = asyncio.get_running_loop()
    stop = asyncio.Event()
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, stop.set)
    async with LocalTriton(settings) as triton:
        logger.info(
            "local Triton serving %s: grpc %s, http %s, metrics %s; Ctrl-C stops it",
            ", ".join(triton.model_names) or "no models",
            triton.grpc_url,
            triton.http_url,
            triton.metrics_url,
        )
        while not stop.is_set():
            if triton.pid is None and not triton.external:
                logger.error("tritonserver exited unexpectedly")
                return 1
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(stop.wait(), timeout=1.0)
    return 0


def run_local_triton(settings: Settings) -> int:
    """Start the local Triton and block until Ctrl-C or SIGTERM (the ``wasteml triton`` command).

    Returns:
        Process exit code: 0 after a requested stop, 1 when Triton could not start (the reason
        is logged) or died on its own.
    """
    try:
        return asyncio.run(_serve_until_signal(settings))
    except UnavailableError as error:
        logger.error("%s", error.message)
        return 1
