"""A wasteml server as its own process for the benchmarks (as in production, so the benchmark's
client threads do not share the server's interpreter lock), on the embedded defaults: the
bundled local Triton, Milvus Lite and SQLite under a fresh temporary directory."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "tests"))

from wasteml_testing import DATA_DIR, REPO_ROOT, TRITON_ENV  # noqa: E402

from wasteml.client import WastemlClient  # noqa: E402


@contextmanager
def server_process(**settings: str) -> Iterator[tuple[subprocess.Popen[bytes], str]]:
    """Start ``wasteml serve`` on a free loopback port and wait until it is SERVING.

    Args:
        settings: extra ``WASTEML_*`` variables (names without the prefix, e.g.
            ``SOLVER_WORKERS="1"``).

    Yields:
        ``(process, "127.0.0.1:<port>")``; the server gets SIGTERM on exit.
    """
    var = Path(tempfile.mkdtemp(prefix="wasteml-bench-"))
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    env = {**os.environ, "WASTEML_PORT": str(port), "WASTEML_VAR_DIR": str(var),
           "WASTEML_DATABASE_URL": f"sqlite:///{var / 'wasteml.db'}", "WASTEML_MILVUS_URI": str(var / "milvus.db"),
           "WASTEML_MODEL_REPOSITORY": str(REPO_ROOT / "model_repository"), "WASTEML_TRITON_ENV_DIR": str(TRITON_ENV),
           "WASTEML_DATA_DIR": str(DATA_DIR), "WASTEML_SOLVER_WORKERS": "1", "WASTEML_LOG_LEVEL": "WARNING",
           **{f"WASTEML_{k}": v for k, v in settings.items()}}
    env.pop("WASTEML_TRITON_URL", None)
    server = subprocess.Popen([sys.executable, "-m", "wasteml_tools.cli", "serve"], cwd=REPO_ROOT, env=env,
                              stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    address = f"127.0.0.1:{port}"
    try:
        with WastemlClient(address) as client:
            client.wait_until_serving(timeout_s=300)
        yield server, address
    finally:
        server.send_signal(signal.SIGTERM)
        server.wait(timeout=60)
