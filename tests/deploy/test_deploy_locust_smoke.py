"""A bounded headless locust run against the live server (loopback, 3 users, 12 s): every
implemented RPC of the load test is exercised and no call fails with an undeclared status.

The RPCs run are those the server implements, found by the load test's probe (an empty request
per RPC; UNIMPLEMENTED means the servicer is not wired yet). Locust runs as a subprocess, so its
gevent patching stays out of the test process.
"""

from __future__ import annotations

import json
import logging
import subprocess
import sys
from pathlib import Path

import pytest
from deploy_helpers import REPO_ROOT, find_tool

sys.path.insert(0, str(REPO_ROOT / "loadtests"))
from wasteml_workload import PROBES, probe  # noqa: E402

logger = logging.getLogger(__name__)
LOCUSTFILE = REPO_ROOT / "loadtests" / "locustfile.py"
DATA_DIR = REPO_ROOT.parent / "shared" / "data"

#: (method, status) outcomes the API declares for load, with the reason; anything else fails.
DECLARED = {
    ("/wasteml.v1.RouteOptimizer/Solve", "RESOURCE_EXHAUSTED"): "solver pool queue full (backpressure)",
}


def _locust(port: int, out: Path, *args: str, timeout_s: float = 60.0) -> tuple[int, dict, str]:
    locust = find_tool("locust")
    assert locust is not None, "locust is in the dev extra of pyproject.toml"
    outcomes = out / "outcomes.json"
    cmd = [
        locust, "-f", str(LOCUSTFILE), "--headless", "--only-summary", "--host", f"127.0.0.1:{port}",
        "--exit-code-on-error", "1", "--stop-timeout", "10", "--csv", str(out / "run"),
        "--wasteml-data-dir", str(DATA_DIR), "--wasteml-outcomes-json", str(outcomes), *args,
    ]
    result = subprocess.run(cmd, cwd=out, capture_output=True, text=True, timeout=timeout_s)
    assert outcomes.is_file(), f"locust wrote no outcomes (exit {result.returncode}):\n{result.stderr[-3000:]}"
    return result.returncode, json.loads(outcomes.read_text())["calls"], result.stderr


def test_deploy_locust_smoke(client, live_server, tmp_path: Path) -> None:
    """3 users for 12 s: each implemented RPC gets calls, every non-OK outcome is declared."""
    port = live_server.app.port
    codes = probe(f"127.0.0.1:{port}")
    tags = [t for t, code in codes.items() if code != "UNIMPLEMENTED"]
    logger.info("probe: %s; running %s", codes, tags)
    if not tags:
        pytest.fail(f"the server implements none of the load test's RPCs: {codes}")
    rc, calls, stderr = _locust(port, tmp_path, "-u", "3", "-r", "3", "-t", "12s", "--tags", *tags,
                                "--wasteml-index-docs", "200", "--wasteml-wait-max-s", "0.5")
    undeclared = {
        (method, code): n
        for method, outcome in calls.items()
        for code, n in outcome.items()
        if code != "OK" and (method, code) not in DECLARED
    }
    assert not undeclared, f"undeclared errors {undeclared}; locust stderr:\n{stderr[-3000:]}"
    assert rc in (0, 1), f"locust exited {rc}:\n{stderr[-3000:]}"
    if rc == 1:  # locust's exit code on any failure: only declared ones may have caused it
        assert any(code != "OK" for outcome in calls.values() for code in outcome)
    for tag in tags:
        for method, _ in PROBES[tag]:
            assert calls.get(method, {}).get("OK", 0) > 0, f"{method} got no successful call: {calls}"
    if "search" in tags:
        assert calls["/wasteml.v1.SemanticSearch/IndexDocuments"] == {"OK": 1}


def test_deploy_locust_reports_failures(client, live_server, tmp_path: Path) -> None:
    """A call that fails (a deadline no call can meet) reaches locust as a failure with its
    status code, and locust exits non-zero."""
    rc, calls, stderr = _locust(live_server.app.port, tmp_path, "-u", "1", "-r", "1", "-t", "2s",
                                "--tags", "embed", "--wasteml-timeout-s", "0.000001")
    assert rc == 1, stderr[-3000:]
    embed = calls["/wasteml.v1.SemanticSearch/Embed"]
    assert embed.get("DEADLINE_EXCEEDED", 0) > 0 and "OK" not in embed, calls
