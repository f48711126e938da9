#!/usr/bin/env bash
# Create the local Triton virtual environment (default: .venv-triton).
#
# It holds nvidia-pytriton, whose wheel bundles the real `tritonserver` binary and its
# Python backend, plus numpy<2 and onnxruntime. It is also the Python backend's execution
# environment (EXECUTION_ENV_PATH): under numpy 2 the bundled backend returns empty outputs,
# so the main .venv (numpy 2) must never get nvidia-pytriton.
#
# Idempotent: a marker file inside the venv records the requirements it was built with; when
# it matches, nothing is done. Usage: scripts/setup_triton_env.sh [VENV_DIR]
# Environment: PYTHON (interpreter, default python3.11 or python3).
set -euo pipefail

VENV_DIR="${1:-.venv-triton}"
PYTHON="${PYTHON:-$(command -v python3.11 || command -v python3)}"
REQUIREMENTS=("nvidia-pytriton==0.7.0" "numpy<2" "onnxruntime")
MARKER="${VENV_DIR}/.wasteml-triton-env"
WANT="$("${PYTHON}" -c 'import sys; print("python%d.%d" % sys.version_info[:2])') ${REQUIREMENTS[*]}"

if [[ -f "${MARKER}" && "$(cat "${MARKER}")" == "${WANT}" && -x "${VENV_DIR}/bin/python" ]]; then
  echo "setup_triton_env: ${VENV_DIR} is up to date (${WANT})"
  exit 0
fi

echo "setup_triton_env: creating ${VENV_DIR} with ${PYTHON} (${WANT})"
rm -f "${MARKER}"
"${PYTHON}" -m venv "${VENV_DIR}"
"${VENV_DIR}/bin/python" -m pip install --quiet --upgrade pip
"${VENV_DIR}/bin/python" -m pip install --quiet "${REQUIREMENTS[@]}"

# The Python-backend stub embeds libpython3.X.so.1.0. Triton starts it with
# LD_LIBRARY_PATH=<env>/lib first (as for a conda-pack environment), so link the base
# interpreter's own shared libpython there: the stub then runs the same patch release as the
# venv's stdlib instead of whatever libpython the system has (if any).
"${VENV_DIR}/bin/python" - "${VENV_DIR}" <<'PY'
import pathlib
import sys
import sysconfig

venv_lib = pathlib.Path(sys.argv[1]) / "lib"
name = sysconfig.get_config_var("INSTSONAME")
source = pathlib.Path(sysconfig.get_config_var("LIBDIR") or "") / (name or "")
if sysconfig.get_config_var("Py_ENABLE_SHARED") and name and source.is_file():
    link = venv_lib / name
    if link.is_symlink() or link.exists():
        link.unlink()
    link.symlink_to(source)
    print(f"setup_triton_env: linked {link} -> {source}")
else:
    print("setup_triton_env: base Python has no shared libpython; the stub uses the system's")
PY

# Check what the local Triton relies on before declaring the environment ready.
"${VENV_DIR}/bin/python" - <<'PY'
import pathlib
import sys

import numpy
import onnxruntime
import pytriton

assert int(numpy.__version__.split(".")[0]) < 2, f"numpy {numpy.__version__} must be <2"
root = pathlib.Path(pytriton.__file__).parent / "tritonserver"
binary = root / "bin" / "tritonserver"
stub = root / "python_backend_stubs" / f"{sys.version_info[0]}.{sys.version_info[1]}" / "triton_python_backend_stub"
for path in (binary, stub, root / "backends" / "python" / "libtriton_python.so"):
    assert path.exists(), f"missing {path}"
import subprocess
env_lib = pathlib.Path(sys.prefix) / "lib"
libs = pathlib.Path(pytriton.__file__).parent.parent / "nvidia_pytriton.libs"
ldd = subprocess.run(["ldd", str(stub)], capture_output=True, text=True,
                     env={"LD_LIBRARY_PATH": f"{env_lib}:{libs}"}).stdout
assert "not found" not in ldd, f"the stub misses libraries:\n{ldd}"
print(f"setup_triton_env: numpy {numpy.__version__}, onnxruntime {onnxruntime.__version__}, tritonserver at {binary}")
PY

echo "${WANT}" > "${MARKER}"
