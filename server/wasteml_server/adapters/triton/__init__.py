"""Triton integration: the local CPU Triton (manager, repository rendering) and the aio client.

- :class:`~wasteml_server.adapters.triton.manager.LocalTriton` starts the real ``tritonserver`` bundled
  in ``nvidia-pytriton`` (or uses ``settings.triton_url``);
  :func:`~wasteml_server.adapters.triton.manager.run_local_triton` is the ``wasteml triton`` command.
- :func:`~wasteml_server.adapters.triton.repository.render_cpu_repository` derives the CPU
  (Python backend + ONNX Runtime) repository from the production one.
- :class:`~wasteml_server.adapters.triton.client.TritonClient` is the one long-lived gRPC client.

``ort_runner`` and ``python_model/model.py`` run inside Triton's execution environment and
are not imported here.
"""

from wasteml_server.adapters.triton.client import ModelVersionState, TritonClient
from wasteml_server.adapters.triton.manager import LocalTriton, run_local_triton
from wasteml_server.adapters.triton.repository import RenderResult, render_cpu_repository

__all__ = [
    "LocalTriton",
    "ModelVersionState",
    "RenderResult",
    "TritonClient",
    "render_cpu_repository",
    "run_local_triton",
]
