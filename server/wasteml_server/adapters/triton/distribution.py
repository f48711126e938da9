"""Locate the Triton server that the ``nvidia-pytriton`` wheel bundles, and prepare it to run.

Layout of the wheel (nvidia-pytriton 0.7.0, Triton 2.51.0), inside
``<env>/lib/python3.X/site-packages/``:

- ``pytriton/tritonserver/bin/tritonserver``: the server binary (RPATH reaches
  ``nvidia_pytriton.libs`` relative to itself, so it runs in place);
- ``nvidia_pytriton.libs/``: ``libtritonserver``, ``libarchive``, ``libcudart``, ...;
- ``pytriton/tritonserver/backends/python/``: ``libtriton_python.so`` and
  ``triton_python_backend_utils.py``, but no stub;
- ``pytriton/tritonserver/python_backend_stubs/<3.X>/triton_python_backend_stub``: one stub
  per Python version. The backend launches ``<backend dir>/triton_python_backend_stub``, so
  the stub matching the execution environment's Python must be placed there. PyTriton does
  the same: it copies the ``tritonserver`` tree into a workspace and copies the stub into
  ``backends/python/`` (``pytriton/triton.py``, ``_prepare_triton_inference_server``).

Because the backend files are copied out of the wheel, their RPATH
(``$ORIGIN/../../../../nvidia_pytriton.libs``) no longer resolves, so the server runs with
``LD_LIBRARY_PATH`` including ``nvidia_pytriton.libs`` (as PyTriton's ``TritonServer._get_env``
sets it).
"""

from __future__ import annotations

import filecmp
import os
import shutil
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

from wasteml_server.core.errors import UnavailableError

SETUP_HINT = "run scripts/setup_triton_env.sh to create it"


@dataclass(frozen=True)
class TritonDistribution:
    """Paths of the Triton bundled in one ``nvidia-pytriton`` virtual environment.

    Attributes:
        env_dir: the virtual environment (also the Python backend's execution environment).
        python_version: ``"3.11"``-style version of the environment's Python.
        site_packages: its site-packages directory.
    """

    env_dir: Path
    python_version: str
    site_packages: Path

    @classmethod
    def locate(cls, env_dir: Path) -> TritonDistribution:
        """Find the bundle in ``env_dir``.

        Raises:
            UnavailableError: the environment, the binary or the matching stub is missing
                (dependency ``"triton"``; the message says how to create it).
        """
        env_dir = env_dir.resolve()
        candidates = sorted(
            env_dir.glob("lib/python3.*/site-packages/pytriton/tritonserver/bin/tritonserver")
        )
        if not (env_dir / "bin" / "activate").is_file() or not candidates:
            raise UnavailableError(
                "triton", f"no nvidia-pytriton environment at {env_dir}; {SETUP_HINT}"
            )
        site_packages = candidates[-1].parents[3]
        dist = cls(env_dir, site_packages.parent.name.removeprefix("python"), site_packages)
        for path in (dist.binary, dist.stub, dist.python_backend_source / "libtriton_python.so"):
            if not path.is_file():
                raise UnavailableError("triton", f"{path} is missing; {SETUP_HINT}")
        return dist

    @property
    def root(self) -> Path:
        """``pytriton/tritonserver`` inside site-packages."""
        return self.site_packages / "pytriton" / "tritonserver"

    @property
    def binary(self) -> Path:
        """The ``tritonserver`` executable."""
        return self.root / "bin" / "tritonserver"

    @property
    def libs_dir(self) -> Path:
        """``nvidia_pytriton.libs``: shared libraries the server and its backends need."""
        return self.site_packages / "nvidia_pytriton.libs"

    @property
    def stub(self) -> Path:
        """The Python-backend stub built for the environment's Python version."""
        return (
            self.root / "python_backend_stubs" / self.python_version / "triton_python_backend_stub"
        )

    @property
    def python_backend_source(self) -> Path:
        """The wheel's ``backends/python`` (without stub)."""
        return self.root / "backends" / "python"

    @property
    def caches_dir(self) -> Path:
        """The wheel's response-cache implementations (``--cache-directory``)."""
        return self.root / "caches"

    def prepare_backends(self, dest: Path) -> Path:
        """Build a backend directory: ``dest/python`` = the wheel's Python backend + the stub.

        Files are copied only when they differ, so repeated starts are cheap.

        Args:
            dest: the backend directory to fill (``--backend-directory``).

        Returns:
            ``dest`` as an absolute path.
        """
        dest = dest.resolve()
        python_dir = dest / "python"
        python_dir.mkdir(parents=True, exist_ok=True)
        sources = [p for p in self.python_backend_source.iterdir() if p.is_file()] + [self.stub]
        for source in sources:
            target = python_dir / source.name
            if not target.is_file() or not filecmp.cmp(source, target, shallow=False):
                tmp = target.with_name(f".{target.name}.{os.getpid()}")
                shutil.copy2(source, tmp)
                tmp.replace(target)
        return dest

    def environment(self, base: Mapping[str, str] | None = None) -> dict[str, str]:
        """Process environment for ``tritonserver``: ``base`` (default ``os.environ``) with
        ``nvidia_pytriton.libs`` prepended to ``LD_LIBRARY_PATH``."""
        env = dict(os.environ if base is None else base)
        previous = env.get("LD_LIBRARY_PATH", "")
        env["LD_LIBRARY_PATH"] = str(self.libs_dir) + (f":{previous}" if previous else "")
        return env
