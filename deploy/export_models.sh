#!/bin/sh
# The one-shot model step of docker-compose.gpu.yml (service `model-export`, image target
# `export`): fills the shared model repository volume before Triton starts.
#
# 1. copy the committed Triton configs (config.pbtxt, .gitkeep) over the volume, so a changed
#    config reaches Triton on the next `up`;
# 2. export the text encoders to ONNX (idempotent: kept when export_info.json matches);
#    `wasteml export` reads WASTEML_MODEL_REPOSITORY and WASTEML_DATA_DIR, like the steps after it;
# 3. migrate the SQL store and train + export the forecasting models (LightGBM -> ONNX), each
#    only when no trained version exists yet, recording versions in the model registry.
# The TensorRT plan is built afterwards by the `tensorrt-build` service on the GPU.
set -eu
: "${WASTEML_MODEL_REPOSITORY:?}" "${WASTEML_DATA_DIR:?}" "${WASTEML_DATABASE_URL:?}"

cp -rT /opt/wasteml/model_repository "$WASTEML_MODEL_REPOSITORY"
wasteml export text-encoder
wasteml db upgrade
wasteml train fill-level --skip-if-trained --no-backtest
wasteml train demand --skip-if-trained --no-backtest
