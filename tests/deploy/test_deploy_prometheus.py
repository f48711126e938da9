"""Prometheus configuration and rules of the compose stack: valid for promtool, alert logic
unit-tested by promtool, and every metric they read is one the server or Triton exports."""

from __future__ import annotations

import ast
import re
import subprocess
from pathlib import Path

import pytest
import yaml
from deploy_helpers import INSTALL_HINT, REPO_ROOT, find_tool

DEPLOY = REPO_ROOT / "deploy"
RULES = DEPLOY / "prometheus" / "rules.yml"
SERVER_SRC = REPO_ROOT / "server" / "wasteml_server"

#: Triton's metrics read by the rules, as documented in Triton's user guide (docs/user_guide/
#: metrics.md, "Inference Request Metrics": counts and cumulative durations in microseconds).
TRITON_METRICS = {
    "nv_inference_request_success",
    "nv_inference_request_failure",
    "nv_inference_count",
    "nv_inference_exec_count",
    "nv_inference_request_duration_us",
    "nv_inference_queue_duration_us",
    "nv_inference_compute_input_duration_us",
    "nv_inference_compute_infer_duration_us",
    "nv_inference_compute_output_duration_us",
    "nv_inference_pending_request_count",
}

#: Metrics the rules already alert on that the server does not export yet, with who adds them.
#: A name must leave this table as soon as the server exports it (checked below).
AWAITED: dict[str, str] = {}

_SUFFIXES = {
    "Counter": ("_total", "_created"),
    "Gauge": ("",),
    "Histogram": ("_bucket", "_sum", "_count", "_created"),
    "Summary": ("", "_sum", "_count", "_created"),
}


def exported_metrics(src: Path = SERVER_SRC) -> set[str]:
    """Sample names of every prometheus-client metric constructed in the server's sources."""
    names: set[str] = set()
    for path in src.rglob("*.py"):
        tree = ast.parse(path.read_text(), str(path))
        for node in ast.walk(tree):
            if not isinstance(node, ast.Call) or not node.args:
                continue
            func = node.func.attr if isinstance(node.func, ast.Attribute) else getattr(node.func, "id", "")
            first = node.args[0]
            if func in _SUFFIXES and isinstance(first, ast.Constant) and isinstance(first.value, str):
                base = first.value.removesuffix("_total") if func == "Counter" else first.value
                names.update(base + suffix for suffix in _SUFFIXES[func])
    return names


def _rules() -> list[dict]:
    doc = yaml.safe_load(RULES.read_text())
    return [rule for group in doc["groups"] for rule in group["rules"]]


def _metric_names(expr: str) -> set[str]:
    return set(re.findall(r"\b((?:wasteml|nv)_[a-z0-9_]+)\b", expr))


def _recorded_names(expr: str) -> set[str]:
    return set(re.findall(r"\b([a-z_]+:[a-z0-9_:]+)\b", expr))


def _promtool() -> str:
    promtool = find_tool("promtool")
    if promtool is None:
        pytest.skip(f"promtool is not installed: {INSTALL_HINT}")
    return promtool


def test_deploy_prometheus_promtool_check_config() -> None:
    """promtool accepts prometheus.yml and the rule file it loads."""
    result = subprocess.run([_promtool(), "check", "config", str(DEPLOY / "prometheus.yml")],
                            capture_output=True, text=True, timeout=60)
    assert result.returncode == 0, result.stdout + result.stderr
    assert "1 rule files found" in result.stdout


def test_deploy_prometheus_rule_unit_tests() -> None:
    """promtool's rule unit tests pass: each alert fires on the series it is meant for and not on the others."""
    result = subprocess.run([_promtool(), "test", "rules", str(DEPLOY / "prometheus" / "rules_test.yml")],
                            capture_output=True, text=True, timeout=60)
    assert result.returncode == 0, result.stdout + result.stderr


def test_deploy_prometheus_rules_read_exported_metrics() -> None:
    """Every server metric a rule reads is constructed in the server's code (or listed as awaited),
    every Triton metric is a documented one, and every recorded name used is recorded here."""
    exported = exported_metrics()
    rules = _rules()
    recorded = {r["record"] for r in rules if "record" in r}
    for rule in rules:
        label = rule.get("record") or rule.get("alert")
        for name in _metric_names(rule["expr"]):
            if name.startswith("nv_"):
                assert name in TRITON_METRICS, f"{label}: {name} is not a Triton metric"
            else:
                assert name in exported or name in AWAITED, f"{label}: the server exports no {name}"
        for name in _recorded_names(rule["expr"]):
            assert name in recorded, f"{label}: {name} is not recorded by any rule"


def test_deploy_prometheus_awaited_metrics_not_yet_exported() -> None:
    """The awaited list only names metrics the server does not export yet (keeps the list honest)."""
    exported = exported_metrics()
    assert not (set(AWAITED) & exported), "exported now: remove from AWAITED"


def test_deploy_prometheus_rules_cover_the_targets() -> None:
    """Alerts exist for inference latency > 200 ms, gRPC error rate, solver queue depth and Triton queue time."""
    alerts = {r["alert"]: r["expr"] for r in _rules() if "alert" in r}
    exprs = {r.get("record", r.get("alert")): r["expr"] for r in _rules()}
    assert "0.2" in alerts["WastemlInferenceLatencyHigh"]
    assert "wasteml_inference_duration_seconds_bucket" in exprs["wasteml:inference_duration_seconds:p95_5m"]
    assert "200" in alerts["TritonRequestLatencyHigh"]
    assert "wasteml_grpc_requests_total" in exprs["wasteml:grpc_server_errors:ratio_5m"]
    assert "wasteml_solver_queue_depth" in alerts["WastemlSolverQueueNearlyFull"]
    assert "nv_inference_queue_duration_us" in exprs["triton:queue_duration_ms:mean_5m"]


def test_deploy_prometheus_exported_metrics_scan_finds_server_metrics() -> None:
    """The source scan sees the server's known metrics (so the checks above are not vacuous)."""
    exported = exported_metrics()
    assert {"wasteml_grpc_requests_total", "wasteml_inference_duration_seconds_bucket",
            "wasteml_dependency_up"} <= exported


def test_deploy_grafana_dashboard_reads_known_series() -> None:
    """Every query of the Grafana dashboard reads a recorded series, an exported (or awaited)
    server metric or a documented Triton metric."""
    import json

    dashboard = json.loads((DEPLOY / "grafana" / "wasteml-dashboard.json").read_text())
    exported = exported_metrics()
    recorded = {r["record"] for r in _rules() if "record" in r}
    exprs = [t["expr"] for p in dashboard["panels"] for t in p["targets"]]
    assert exprs
    for expr in exprs:
        names = _metric_names(expr) | _recorded_names(expr)
        assert names or expr.startswith("vector("), expr
        for name in names:
            assert name in recorded or name in exported or name in AWAITED or name in TRITON_METRICS, (
                f"dashboard query {expr!r} reads unknown series {name}"
            )
