# syntax=docker/dockerfile:1
# The wasteml orchestration server image, and the images of the one-shot model-export steps.
#
#   docker build --target runtime  -t wasteml-server .   # the server (default: last stage)
#   docker build --target export   -t wasteml-export .   # ONNX export + forecasting training (CPU)
#   docker build --target tensorrt -t wasteml-trt .      # TensorRT plan build (GPU host)
#
# The server talks to an external Triton (WASTEML_TRITON_URL), so it carries no Triton and no
# nvidia-pytriton. Base images are pinned; see docs/DEPLOYMENT.md for the Triton/TensorRT pairing.

# ---- builder: the package and its dependencies in a virtual environment ----------------------
FROM python:3.11.11-slim-bookworm AS builder
ENV PIP_NO_CACHE_DIR=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1 \
    PYTHONDONTWRITEBYTECODE=1
WORKDIR /src
COPY pyproject.toml README.md ./
COPY clients/python/ clients/python/
COPY server/ server/
COPY export/ export/
RUN python -m venv /opt/venv \
 && /opt/venv/bin/pip install ".[postgres,redis]" \
 && /opt/venv/bin/pip wheel --no-deps --wheel-dir /wheels .

# ---- export: ONNX export of the models (one-shot service, CPU) -------------------------------
# export_models.sh runs `wasteml export text-encoder`, `wasteml db upgrade` and `wasteml train`,
# which read the WASTEML_* settings below.
FROM builder AS export
# torch is pinned by the `export` extra; its CPU build comes from PyTorch's CPU wheel index.
RUN /opt/venv/bin/pip install --extra-index-url https://download.pytorch.org/whl/cpu ".[export]" \
 && groupadd --system --gid 10001 wasteml \
 && useradd --system --uid 10001 --gid wasteml --home-dir /srv/wasteml --create-home wasteml \
 && mkdir -p /models && chown wasteml:wasteml /models
# The committed Triton configs; export_models.sh copies them into the shared volume first.
COPY --chown=wasteml:wasteml model_repository/ /opt/wasteml/model_repository/
COPY --chmod=0755 deploy/export_models.sh /opt/wasteml/export_models.sh
ENV PATH=/opt/venv/bin:$PATH \
    WASTEML_MODEL_REPOSITORY=/models \
    WASTEML_DATA_DIR=/data
USER 10001:10001
WORKDIR /srv/wasteml
ENTRYPOINT ["/opt/wasteml/export_models.sh"]

# ---- tensorrt: builds TensorRT plans with the TensorRT of the Triton release in use ----------
# A plan runs only on the TensorRT version and GPU architecture it was built with: this image
# and the Triton image must be the same NGC release (25.01: TensorRT 10.8.0.43).
FROM nvcr.io/nvidia/tensorrt:25.01-py3 AS tensorrt
ENV PIP_NO_CACHE_DIR=1 PIP_DISABLE_PIP_VERSION_CHECK=1
COPY --from=builder /wheels/ /wheels/
# Into the image's own Python, beside its TensorRT bindings. --break-system-packages: that
# Python may be marked externally managed (PEP 668), and this image exists only for this step.
RUN python3 -m pip install --break-system-packages /wheels/*.whl \
 && groupadd --system --gid 10001 wasteml \
 && useradd --system --uid 10001 --gid wasteml --home-dir /srv/wasteml --create-home wasteml
USER 10001:10001
WORKDIR /srv/wasteml
# The pure export CLI (no settings): the paths are arguments, the volumes of docker-compose.gpu.yml.
ENTRYPOINT ["python3", "-m", "wasteml_export"]
CMD ["tensorrt", "--repository", "/models", "--data-dir", "/data"]

# ---- runtime: the orchestration server ---------------------------------------------------------
FROM python:3.11.11-slim-bookworm AS runtime
# libgomp1: OpenMP runtime of LightGBM and ONNX Runtime.
RUN apt-get update \
 && apt-get install -y --no-install-recommends libgomp1=12.2.0-14+deb12u1 \
 && rm -rf /var/lib/apt/lists/* \
 && groupadd --system --gid 10001 wasteml \
 && useradd --system --uid 10001 --gid wasteml --home-dir /srv/wasteml --create-home wasteml \
 && mkdir -p /srv/wasteml/var && chown wasteml:wasteml /srv/wasteml/var
COPY --from=builder /opt/venv /opt/venv
ENV PATH=/opt/venv/bin:$PATH \
    PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    WASTEML_HOST=0.0.0.0 \
    WASTEML_PORT=50051 \
    WASTEML_METRICS_PORT=9464 \
    WASTEML_VAR_DIR=/srv/wasteml/var \
    WASTEML_MODEL_REPOSITORY=/models \
    WASTEML_DATA_DIR=/data
USER 10001:10001
WORKDIR /srv/wasteml
EXPOSE 50051 9464
# grpc.health.v1 Check of the whole server (service ""): SERVING only while Triton and the
# database are ready. Health is exempt from auth, so no token is needed.
HEALTHCHECK --interval=15s --timeout=5s --start-period=180s --retries=3 \
  CMD ["python", "-c", "import os, sys, grpc; from grpc_health.v1 import health_pb2, health_pb2_grpc; channel = grpc.insecure_channel('127.0.0.1:' + os.environ.get('WASTEML_PORT', '50051')); reply = health_pb2_grpc.HealthStub(channel).Check(health_pb2.HealthCheckRequest(service=''), timeout=4); sys.exit(0 if reply.status == health_pb2.HealthCheckResponse.SERVING else 1)"]
ENTRYPOINT ["wasteml"]
CMD ["serve"]
