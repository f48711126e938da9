"""docker-compose.gpu.yml, checked without a Docker engine: it resolves, pins every image,
reserves GPUs for Triton, orders start-up by health, and sets only settings that exist."""

from __future__ import annotations

import re

import pytest
from deploy_helpers import COMPOSE_FILE, ENV_EXAMPLE, clean_env, read_env_file, run_compose

from wasteml_server.core.settings import Settings

#: Settings that the production stack must set: the embedded defaults (local Triton child,
#: SQLite file, Milvus Lite file, loopback bind) are wrong in a container.
REQUIRED_IN_PRODUCTION = ("triton_url", "database_url", "milvus_uri", "host")

SETTINGS_ENV = {f"WASTEML_{name.upper()}" for name in Settings.model_fields}


def test_deploy_compose_config_succeeds() -> None:
    """`docker compose -f docker-compose.gpu.yml config` resolves the stack with the documented .env."""
    result = run_compose("config", "--quiet")
    assert result.returncode == 0, result.stderr


@pytest.mark.parametrize("secret", ["WASTEML_AUTH_TOKEN", "POSTGRES_PASSWORD", "MINIO_SECRET_KEY"])
def test_deploy_compose_requires_secrets(secret: str) -> None:
    """Without a secret the stack refuses to resolve and names the missing variable (no default password)."""
    values = read_env_file(ENV_EXAMPLE)
    values.pop(secret)
    result = run_compose("config", "--quiet", env=clean_env(**values))
    assert result.returncode != 0
    assert secret in result.stderr


def test_deploy_compose_images_pinned(compose_config: dict) -> None:
    """Every image names an explicit, non-floating tag."""
    for name, service in compose_config["services"].items():
        image = service["image"]
        tag = image.rsplit(":", 1)[1] if ":" in image.rsplit("/", 1)[-1] else ""
        assert tag and tag not in {"latest", "main", "master", "nightly"}, f"{name}: {image} is not pinned"
        if not image.startswith("wasteml-"):  # third-party images carry a version number
            assert re.search(r"\d", tag), f"{name}: {image} has no version in its tag"


def test_deploy_compose_triton_gpu_and_model_control(compose_config: dict) -> None:
    """Triton is the NGC py3 image on reserved NVIDIA GPUs, serving the shared model volume with
    explicit model control, all models loaded, metrics on :8002."""
    triton = compose_config["services"]["triton"]
    assert re.fullmatch(r"nvcr\.io/nvidia/tritonserver:\d\d\.\d\d-py3", triton["image"])
    devices = triton["deploy"]["resources"]["reservations"]["devices"]
    assert any(d["driver"] == "nvidia" and "gpu" in d["capabilities"] for d in devices)
    command = triton["command"]
    assert "--model-control-mode=explicit" in command
    assert "--load-model=*" in command
    assert "--metrics-port=8002" in command
    assert {"source": "models", "target": "/models"}.items() <= triton["volumes"][0].items()


def test_deploy_compose_tensorrt_matches_triton_release(compose_config: dict) -> None:
    """The plan builder's TensorRT comes from the same NGC release as Triton (plans are bound to it)."""
    dockerfile = (ENV_EXAMPLE.parents[1] / "Dockerfile").read_text()
    trt = re.search(r"^FROM nvcr\.io/nvidia/tensorrt:(\d\d\.\d\d)-py3 AS tensorrt$", dockerfile, re.M)
    assert trt is not None
    triton_release = compose_config["services"]["triton"]["image"].split(":")[1].removesuffix("-py3")
    assert trt.group(1) == triton_release
    assert compose_config["services"]["tensorrt-build"]["build"]["target"] == "tensorrt"


def test_deploy_compose_start_order(compose_config: dict) -> None:
    """Models are exported before Triton starts; the server waits for healthy Triton, Milvus and PostgreSQL."""
    services = compose_config["services"]
    assert services["tensorrt-build"]["depends_on"]["model-export"]["condition"] == "service_completed_successfully"
    assert services["triton"]["depends_on"]["tensorrt-build"]["condition"] == "service_completed_successfully"
    server_deps = services["server"]["depends_on"]
    for dep in ("triton", "milvus", "postgres"):
        assert server_deps[dep]["condition"] == "service_healthy", dep
        assert "healthcheck" in services[dep], f"{dep} has no healthcheck"
    for dep in ("etcd", "minio"):
        assert services["milvus"]["depends_on"][dep]["condition"] == "service_healthy"


def test_deploy_compose_env_vars_are_settings(compose_config: dict) -> None:
    """Every WASTEML_* variable of every service is a field of Settings."""
    for name, service in compose_config["services"].items():
        for key in service.get("environment") or {}:
            if key.startswith("WASTEML_"):
                assert key in SETTINGS_ENV, f"{name} sets {key}, which Settings does not have"


def test_deploy_compose_sets_production_settings(compose_config: dict) -> None:
    """The server sets every setting production needs, pointing at the stack's services."""
    env = compose_config["services"]["server"]["environment"]
    for field in REQUIRED_IN_PRODUCTION:
        assert f"WASTEML_{field.upper()}" in env, f"server does not set WASTEML_{field.upper()}"
    assert env["WASTEML_TRITON_URL"] == "triton:8001"
    assert env["WASTEML_MILVUS_URI"] == "http://milvus:19530"
    assert env["WASTEML_DATABASE_URL"].startswith("postgresql+psycopg://wasteml:")
    assert env["WASTEML_DATABASE_URL"].endswith("@postgres:5432/wasteml")
    assert env["WASTEML_HOST"] == "0.0.0.0"


def test_deploy_compose_server_env_validates(compose_config: dict, monkeypatch: pytest.MonkeyPatch) -> None:
    """The server's environment, read by Settings exactly as in the container, passes validation."""
    for key in list(SETTINGS_ENV):
        monkeypatch.delenv(key, raising=False)
    env = compose_config["services"]["server"]["environment"]
    for key, value in env.items():
        monkeypatch.setenv(key, value)
    settings = Settings()
    assert settings.triton_url == "triton:8001"
    assert settings.metrics_port is not None and settings.auth_token
    ports = compose_config["services"]["server"]["ports"]
    assert any(int(p["target"]) == settings.port for p in ports)


def test_deploy_compose_prometheus_scrapes_server_and_triton(compose_config: dict) -> None:
    """Prometheus's scrape targets are the server's metrics port and Triton's :8002."""
    import yaml

    root = ENV_EXAMPLE.parents[1]
    prometheus = yaml.safe_load((root / "deploy" / "prometheus.yml").read_text())
    targets = {t for job in prometheus["scrape_configs"] for sc in job["static_configs"] for t in sc["targets"]}
    metrics_port = compose_config["services"]["server"]["environment"]["WASTEML_METRICS_PORT"]
    assert f"server:{metrics_port}" in targets
    assert "triton:8002" in targets
    mounts = {v["target"]: v["source"] for v in compose_config["services"]["prometheus"]["volumes"]}
    assert mounts["/etc/prometheus/prometheus.yml"].endswith("deploy/prometheus.yml")


def test_deploy_compose_variables_documented() -> None:
    """Each variable the compose file interpolates is a server setting or documented in
    deploy/env.example, and every WASTEML_* name there is a setting (one place for settings)."""
    text = COMPOSE_FILE.read_text()
    used = set(re.findall(r"\$\{([A-Z0-9_]+)", text))
    example = ENV_EXAMPLE.read_text()
    documented = set(re.findall(r"^#?\s*([A-Z0-9_]+)=", example, re.M))
    for name in used:
        assert name in SETTINGS_ENV or name in documented, f"${{{name}}} is neither a setting nor in env.example"
    for name in documented:
        if name.startswith("WASTEML_"):
            assert name in SETTINGS_ENV, f"env.example names {name}, which Settings does not have"
