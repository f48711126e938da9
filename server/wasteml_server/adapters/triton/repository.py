"""Render the CPU variant of the production Triton model repository for the local Triton.

The production repository (``settings.model_repository``) holds one directory per model with
a ``config.pbtxt`` for GPU Triton (ONNX Runtime backend, ``KIND_GPU`` instance groups,
TensorRT execution accelerator, dynamic batching, warmup) and version folders
``<n>/model.onnx`` built by ``export/``. The local Triton bundled in ``nvidia-pytriton`` has
only the Python backend, so each ONNX model is served there by one generic Python-backend
model (``python_model/model.py`` + ``ort_runner.py``) that runs ONNX Runtime on CPU.

The CPU config is *derived* from the production one, never written by hand: it is parsed with
Triton's own protobuf schema (``tritonclient.grpc.model_config_pb2``, the ``ModelConfig``
message of Triton's model_config.proto) and changed only where CPU serving requires:

- ``backend: "python"``, no ``platform``/``runtime``/``default_model_filename``/
  ``cc_model_filenames`` (the Python backend loads ``<version>/model.py``);
- ``instance_group``: one ``KIND_CPU`` group with ``count = instance_count``;
- ``optimization``: the GPU execution accelerators (TensorRT) and CUDA settings are dropped,
  the rest is kept;
- ``model_repository_agents`` dropped (none are bundled locally);
- ``parameters`` gains ``EXECUTION_ENV_PATH`` (the ``.venv-triton`` directory: the Python
  backend's custom execution environment; Triton 2.51 accepts an unpacked directory that
  holds ``bin/activate``) and the ONNX Runtime knobs read by ``model.py``.

Inputs, outputs, ``max_batch_size``, ``dynamic_batching``, ``version_policy``,
``model_warmup``, ``parameters`` and the rest are kept as production states them.
"""

from __future__ import annotations

import logging
import os
import shutil
from dataclasses import dataclass
from pathlib import Path

from google.protobuf import text_format
from tritonclient.grpc import model_config_pb2

from wasteml_models.config import load_model_config
from wasteml_server.core.common import version_number

logger = logging.getLogger(__name__)

#: Files of the generic Python-backend model, copied into every rendered version folder.
PYTHON_MODEL_FILES: tuple[Path, ...] = (
    Path(__file__).with_name("python_model") / "model.py",
    Path(__file__).with_name("ort_runner.py"),
)

#: Production platforms/backends that are served locally through ONNX Runtime.
ONNX_PLATFORMS = frozenset({"onnxruntime_onnx"})
ONNX_BACKENDS = frozenset({"onnxruntime"})


@dataclass(frozen=True)
class RenderedModel:
    """One model of the rendered CPU repository.

    Attributes:
        name: the model (directory) name.
        versions: version numbers that have a ``model.onnx``, ascending.
        path: the rendered model directory.
    """

    name: str
    versions: tuple[int, ...]
    path: Path


@dataclass(frozen=True)
class RenderResult:
    """What :func:`render_cpu_repository` produced.

    Attributes:
        repository: the rendered repository root (Triton ``--model-repository``).
        models: the rendered models, by name order.
        skipped: ``(model name, reason)`` for production models not served locally.
    """

    repository: Path
    models: tuple[RenderedModel, ...]
    skipped: tuple[tuple[str, str], ...]

    @property
    def model_names(self) -> tuple[str, ...]:
        """Names of the rendered models."""
        return tuple(m.name for m in self.models)


def is_onnx_model(config: model_config_pb2.ModelConfig) -> bool:
    """True when production serves the model with the ONNX Runtime backend."""
    return config.backend in ONNX_BACKENDS or config.platform in ONNX_PLATFORMS


def cpu_model_config(
    production: model_config_pb2.ModelConfig,
    *,
    name: str,
    instance_count: int,
    execution_env: Path,
    intra_op_threads: int = 1,
) -> model_config_pb2.ModelConfig:
    """The local CPU (Python backend + ONNX Runtime) config derived from a production config.

    Args:
        production: the parsed production config (not modified).
        name: the model name (its directory name).
        instance_count: Python-backend instances (stub processes) of the model, >= 1.
        execution_env: absolute path of the Python backend's execution environment
            (``.venv-triton``).
        intra_op_threads: ONNX Runtime intra-op threads per instance, >= 1.

    Returns:
        A new ``ModelConfig`` (see the module docstring for what changes).

    Raises:
        ValueError: ``instance_count`` or ``intra_op_threads`` below 1.
    """
    if instance_count < 1:
        raise ValueError(f"instance_count must be >= 1, got {instance_count}")
    if intra_op_threads < 1:
        raise ValueError(f"intra_op_threads must be >= 1, got {intra_op_threads}")
    config = model_config_pb2.ModelConfig()
    config.CopyFrom(production)
    config.name = name
    config.backend = "python"
    for field in (
        "platform",
        "runtime",
        "default_model_filename",
        "cc_model_filenames",
        "model_repository_agents",
    ):
        config.ClearField(field)
    del config.instance_group[:]
    config.instance_group.add(
        kind=model_config_pb2.ModelInstanceGroup.KIND_CPU, count=instance_count
    )
    if config.HasField("optimization"):
        config.optimization.execution_accelerators.ClearField("gpu_execution_accelerator")
        config.optimization.ClearField("cuda")
        if not config.optimization.execution_accelerators.ListFields():
            config.optimization.ClearField("execution_accelerators")
        if not config.optimization.ListFields():
            config.ClearField("optimization")
    config.parameters["EXECUTION_ENV_PATH"].string_value = str(execution_env)
    config.parameters["ORT_INTRA_OP_THREADS"].string_value = str(intra_op_threads)
    config.parameters["ORT_ALLOW_SPINNING"].string_value = "0"
    return config


def _link_or_copy(source: Path, target: Path) -> None:
    try:
        os.symlink(source.resolve(), target)
    except OSError:
        shutil.copy2(source, target)


def _render_model(
    model_dir: Path, dest: Path, *, instance_count: int, execution_env: Path
) -> RenderedModel | str:
    """Render one production model into ``dest / model_dir.name``; a reason string if skipped."""
    config_path = model_dir / "config.pbtxt"
    production = load_model_config(config_path)
    if production.platform == "tensorrt_plan" or production.backend == "tensorrt":
        return "TensorRT plan: needs a GPU, not served by the local CPU Triton"
    if not is_onnx_model(production):
        kind = production.platform or production.backend or "unknown"
        return f"platform/backend {kind!r} is not served by the local CPU Triton"
    onnx_name = production.default_model_filename or "model.onnx"
    versions = sorted(
        number
        for p in model_dir.iterdir()
        if (number := version_number(p.name)) is not None and p.is_dir() and (p / onnx_name).is_file()
    )
    if not versions:
        return f"no version folder holds {onnx_name} (run the export first)"
    target = dest / model_dir.name
    target.mkdir(parents=True)
    cpu = cpu_model_config(
        production, name=model_dir.name, instance_count=instance_count, execution_env=execution_env
    )
    (target / "config.pbtxt").write_text(text_format.MessageToString(cpu), encoding="utf-8")
    for extra in ("warmup",):  # model_warmup input_data_file lives in <model>/warmup/
        if (model_dir / extra).is_dir():
            _link_or_copy(model_dir / extra, target / extra)
    for version in versions:
        version_dir = target / str(version)
        version_dir.mkdir()
        _link_or_copy(model_dir / str(version) / onnx_name, version_dir / "model.onnx")
        for file in PYTHON_MODEL_FILES:
            shutil.copy2(file, version_dir / file.name)
    skipped_versions = sorted(
        p.name
        for p in model_dir.iterdir()
        if p.is_dir() and (number := version_number(p.name)) is not None and number not in versions
    )
    if skipped_versions:
        logger.info(
            "model %s: versions %s have no %s, skipped", model_dir.name, skipped_versions, onnx_name
        )
    return RenderedModel(model_dir.name, tuple(versions), target)


def render_cpu_repository(
    source: Path, dest: Path, *, instance_count: int, execution_env: Path
) -> RenderResult:
    """Render the CPU variant of the production repository ``source`` into ``dest``.

    ``dest`` is replaced as a whole (rendered next to it, then swapped in), so stale models
    never survive. TensorRT-plan models and versions without an ONNX file are skipped with
    a log line.

    Args:
        source: production repository (one directory with ``config.pbtxt`` per model).
        dest: the rendered repository, e.g. ``settings.var_dir / "triton_repository"``.
        instance_count: CPU instances per model (``settings.triton_instance_count``).
        execution_env: the Python backend's execution environment (``.venv-triton``).

    Returns:
        The rendered and skipped models.

    Raises:
        NotADirectoryError, ModelConfigError: ``source`` is not a directory, a ``config.pbtxt`` does not
            parse, or ``instance_count < 1``.
    """
    if not source.is_dir():
        raise NotADirectoryError(f"model repository {source} is not a directory")
    execution_env = execution_env.resolve()
    staging = dest.with_name(f"{dest.name}.tmp-{os.getpid()}")
    if staging.exists():
        shutil.rmtree(staging)
    staging.mkdir(parents=True)
    models: list[RenderedModel] = []
    skipped: list[tuple[str, str]] = []
    try:
        for model_dir in sorted(p for p in source.iterdir() if (p / "config.pbtxt").is_file()):
            outcome = _render_model(
                model_dir, staging, instance_count=instance_count, execution_env=execution_env
            )
            if isinstance(outcome, str):
                logger.info("model %s skipped by the local CPU Triton: %s", model_dir.name, outcome)
                skipped.append((model_dir.name, outcome))
            else:
                models.append(RenderedModel(outcome.name, outcome.versions, dest / outcome.name))
    except BaseException:
        shutil.rmtree(staging, ignore_errors=True)
        raise
    if dest.exists():
        old = dest.with_name(f"{dest.name}.old-{os.getpid()}")
        dest.rename(old)
        shutil.rmtree(old, ignore_errors=True)
    staging.rename(dest)
    logger.info(
        "rendered CPU model repository %s: %d models (%s), %d skipped",
        dest,
        len(models),
        ", ".join(m.name for m in models),
        len(skipped),
    )
    return RenderResult(dest, tuple(models), tuple(skipped))
