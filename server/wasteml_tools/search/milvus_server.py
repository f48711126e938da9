"""A real Milvus server on loopback, from the PyPI package ``milvus`` (embedded Milvus 2.3).

``pip install milvus`` ships the C++ Milvus 2.3 standalone binary (with embedded etcd and
local storage; 2.3.5 is the newest Linux wheel) and ``milvus.MilvusServer`` to run it as a
child process. It needs no network at run time. This module wraps it for tests and
benchmarks so the server-URI path of :class:`~wasteml_server.adapters.milvus.MilvusStore`
(HNSW, Trie/STL_SORT scalar indexes, reconnects) runs against the real thing:

- every component advertises ``127.0.0.1`` (the template's default is the first non-loopback
  address), so all traffic stays on loopback; the binary still binds its listening sockets
  on all interfaces (Milvus 2.3 has no bind-address setting);
- the proxy port is fixed across restarts (``restart()`` comes back on the same URI), which
  needs ``SO_REUSEADDR`` in the package's free-port probe: after a kill the old port sits in
  TIME_WAIT and the package's plain ``bind`` check refuses it, while the Go binary itself
  binds with ``SO_REUSEADDR``.
"""

from __future__ import annotations

import logging
import os
import signal
import socket
import time
from pathlib import Path
from typing import Any

logger = logging.getLogger(__name__)

#: Milvus components whose advertised address is pinned to loopback.
_COMPONENTS = (
    "rootCoord",
    "proxy",
    "queryCoord",
    "queryNode",
    "indexCoord",
    "indexNode",
    "dataCoord",
    "dataNode",
)


def _server_classes() -> tuple[Any, Any]:
    try:
        from milvus import MilvusServer, MilvusServerConfig
    except ImportError as exc:  # the package is a test/benchmark tool, not a server dependency
        raise RuntimeError(
            "the embedded Milvus server needs the PyPI package 'milvus' (pip install milvus)"
        ) from exc
    return MilvusServer, MilvusServerConfig


def _free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


class EmbeddedMilvus:
    """One Milvus 2.3 standalone process on loopback, with its data under ``data_dir``.

    Args:
        data_dir: directory for the server's etcd, segments and logs (kept across restarts).
        port: proxy (client) port; default a free port chosen once.
        startup_timeout_s: how long :meth:`start` waits for ``/healthz``, seconds.

    Raises:
        RuntimeError: the ``milvus`` package is not installed.
    """

    def __init__(
        self, data_dir: Path | str, port: int | None = None, startup_timeout_s: float = 120.0
    ) -> None:
        self.data_dir = Path(data_dir).resolve()
        self.port = port or _free_port()
        self.startup_timeout_s = startup_timeout_s
        self._server: Any = None
        _server_classes()

    @property
    def uri(self) -> str:
        """``http://127.0.0.1:<port>`` for ``MilvusStore`` / ``settings.milvus_uri``."""
        return f"http://127.0.0.1:{self.port}"

    @property
    def pid(self) -> int | None:
        """Process id of the running server, or ``None``."""
        proc = getattr(self._server, "server_proc", None)
        return proc.pid if proc is not None else None

    def _make(self) -> Any:
        server_cls, config_cls = _server_classes()

        class _LoopbackConfig(config_cls):  # type: ignore[misc, valid-type]
            def try_bind_port(self, port: int) -> socket.socket | None:
                sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
                try:
                    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
                    sock.bind(("127.0.0.1", port))
                    sock.listen()
                    return sock
                except OSError:
                    sock.close()
                    return None

        cfg = _LoopbackConfig(data_dir=str(self.data_dir), proxy_port=self.port)
        for comp in _COMPONENTS:
            cfg.set(f"{comp}.ip", "127.0.0.1")
        return server_cls(cfg, wait_for_started=False)

    def start(self) -> None:
        """Start the server and wait until ``/healthz`` says OK and the proxy port accepts.

        Raises:
            TimeoutError: not healthy within ``startup_timeout_s``.
            RuntimeError: the process exited during start-up (see ``data_dir/logs``).
        """
        if self._server is not None:
            return
        self.data_dir.mkdir(parents=True, exist_ok=True)
        server = self._make()
        t0 = time.monotonic()
        server.start()
        self._server = server
        try:
            server.wait_started(timeout=int(self.startup_timeout_s * 1000))
        except (TimeoutError, RuntimeError):
            self.stop()
            raise
        deadline = t0 + self.startup_timeout_s
        while time.monotonic() < deadline:
            with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
                s.settimeout(1.0)
                if s.connect_ex(("127.0.0.1", self.port)) == 0:
                    break
            time.sleep(0.1)
        logger.info(
            "embedded Milvus up on %s (pid %s) in %.1f s", self.uri, self.pid, time.monotonic() - t0
        )

    def _release(self) -> None:
        server = self._server
        self._server = None
        if server is None:
            return
        server.server_proc = None
        for fd in server.proc_fds.values():
            fd.close()
        server.proc_fds.clear()

    def kill(self) -> None:
        """SIGKILL the server process (a crash), leaving its data for :meth:`start`."""
        proc = getattr(self._server, "server_proc", None)
        if proc is not None:
            os.kill(proc.pid, signal.SIGKILL)
            proc.wait(timeout=30)
        self._release()

    def pause(self) -> None:
        """SIGSTOP the server process (a hung server: connections stay open, no replies)."""
        if self.pid is not None:
            os.kill(self.pid, signal.SIGSTOP)

    def resume(self) -> None:
        """SIGCONT a paused server."""
        if self.pid is not None:
            os.kill(self.pid, signal.SIGCONT)

    def stop(self) -> None:
        """Stop the server gracefully (SIGTERM, then SIGKILL after 10 s); idempotent."""
        proc = getattr(self._server, "server_proc", None)
        if proc is not None:
            try:
                os.kill(proc.pid, signal.SIGCONT)
            except ProcessLookupError:
                pass
            proc.terminate()
            try:
                proc.wait(timeout=10)
            except Exception:  # subprocess.TimeoutExpired
                proc.kill()
                proc.wait(timeout=10)
        self._release()

    def restart(self) -> None:
        """Start again on the same port and data after :meth:`kill` or :meth:`stop`."""
        self.stop()
        self.start()

    def __enter__(self) -> EmbeddedMilvus:
        self.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()
