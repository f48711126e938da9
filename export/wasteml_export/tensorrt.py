"""Build the TensorRT plan of the text encoder (``model_repository/text_encoder_trt/1/model.plan``).

The plan is built from ``text_encoder/1/model.onnx`` with the ``tensorrt`` Python API (or, when
only the CLI is installed, ``trtexec``) on the GPU that will serve it: a serialised engine runs
only on the TensorRT version and GPU compute capability it was built for, so both are recorded
in ``plan_info.json`` next to the plan and a change of either triggers a rebuild.

Build settings:

- one optimisation profile for both inputs (token ids and attention mask, int64, named as
  ``text_encoder_trt/config.pbtxt`` states): min ``1 x 8``, opt ``32 x 64``, max
  ``max_batch_size x 256`` (batch up to ``max_batch_size`` of that config, 64 today; sequence
  8..256 tokens: the server pads to buckets of 32..256);
- FP16 precision where TensorRT finds it faster (``BuilderFlag.FP16``), workspace 1 GiB.

Where there is no NVIDIA GPU (``nvidia-smi`` fails) or no TensorRT, :func:`main` prints why and
returns 0 without building anything (the local runs are CPU-only by design).
"""

from __future__ import annotations

import json
import re
import shutil
import subprocess
import time
from dataclasses import asdict, dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import numpy as np

from wasteml_export.text_encoder import model_path, sha256_file, signature_tensors, version_dir
from wasteml_models import TEXT_ENCODER, TEXT_ENCODER_TRT
from wasteml_models.config import EncoderSignature, ModelConfigError
from wasteml_models.tokenizer import MAX_SEQ_LEN

PLAN_FILE = "model.plan"
PLAN_INFO_FILE = "plan_info.json"
#: Workspace memory pool limit of the builder, bytes (1 GiB, as the ORT TensorRT accelerator).
WORKSPACE_BYTES = 1 << 30

Profile = dict[str, tuple[int, int]]


def profile(signature: EncoderSignature) -> Profile:
    """(batch, sequence) of the optimisation profile: min, opt, max; the largest batch is the
    config's ``max_batch_size``, the longest sequence the tokenizer's ``MAX_SEQ_LEN``."""
    return {
        "min": (1, 8),
        "opt": (min(32, signature.max_batch_size), 64),
        "max": (signature.max_batch_size, MAX_SEQ_LEN),
    }


def plan_signature(repository: Path) -> EncoderSignature:
    """The plan's signature (``text_encoder_trt/config.pbtxt``), checked against the ONNX
    source's (``text_encoder/config.pbtxt``): the plan is that graph, so the tensors agree.

    Raises:
        ModelConfigError: a config is invalid or the two state different tensors.
        OSError: a config cannot be read.
    """
    plan = EncoderSignature.load(repository, TEXT_ENCODER_TRT)
    onnx = EncoderSignature.load(repository, TEXT_ENCODER)
    if signature_tensors(plan) != signature_tensors(onnx):
        raise ModelConfigError(
            f"{TEXT_ENCODER_TRT}/config.pbtxt states {signature_tensors(plan)}, "
            f"{TEXT_ENCODER}/config.pbtxt {signature_tensors(onnx)}: the plan is built from that "
            "ONNX graph"
        )
    return plan


@dataclass(frozen=True)
class GpuInfo:
    """The first NVIDIA GPU as ``nvidia-smi`` reports it.

    Attributes:
        name: product name, e.g. ``NVIDIA H100 80GB HBM3``.
        compute_capability: e.g. ``9.0``.
        driver_version: e.g. ``550.54.15``.
    """

    name: str
    compute_capability: str
    driver_version: str


def gpu_info() -> GpuInfo | None:
    """The first GPU, or None when ``nvidia-smi`` is missing or fails (no GPU, no driver)."""
    exe = shutil.which("nvidia-smi")
    if exe is None:
        return None
    try:
        out = subprocess.run(
            [exe, "--query-gpu=name,compute_cap,driver_version", "--format=csv,noheader"],
            capture_output=True,
            text=True,
            timeout=30,
            check=True,
        ).stdout
    except (OSError, subprocess.SubprocessError):
        return None
    first = out.strip().splitlines()[0] if out.strip() else ""
    parts = [p.strip() for p in first.split(",")]
    if len(parts) != 3:
        return None
    return GpuInfo(*parts)


def _import_tensorrt() -> Any | None:
    try:
        import tensorrt
    except ImportError:
        return None
    return tensorrt


def build_with_python_api(
    trt: Any, onnx_path: Path, plan_path: Path, signature: EncoderSignature, fp16: bool = True
) -> None:
    """Parse the ONNX file and serialise an engine with the profile :func:`profile`.

    Raises:
        RuntimeError: the parser rejects the graph or the build fails (messages included).
    """
    logger = trt.Logger(trt.Logger.WARNING)
    builder = trt.Builder(logger)
    flags = 0
    if hasattr(trt.NetworkDefinitionCreationFlag, "EXPLICIT_BATCH"):  # TensorRT < 10
        flags = 1 << int(trt.NetworkDefinitionCreationFlag.EXPLICIT_BATCH)
    network = builder.create_network(flags)
    parser = trt.OnnxParser(network, logger)
    if not parser.parse_from_file(str(onnx_path)):
        errors = [str(parser.get_error(i)) for i in range(parser.num_errors)]
        raise RuntimeError(f"TensorRT could not parse {onnx_path}: {errors}")
    config = builder.create_builder_config()
    config.set_memory_pool_limit(trt.MemoryPoolType.WORKSPACE, WORKSPACE_BYTES)
    if fp16:
        config.set_flag(trt.BuilderFlag.FP16)
    shapes = profile(signature)
    trt_profile = builder.create_optimization_profile()
    for name in (signature.input_ids, signature.attention_mask):
        trt_profile.set_shape(name, shapes["min"], shapes["opt"], shapes["max"])
    config.add_optimization_profile(trt_profile)
    serialized = builder.build_serialized_network(network, config)
    if serialized is None:
        raise RuntimeError("TensorRT engine build failed (see the TensorRT log above)")
    plan_path.write_bytes(bytes(serialized))


def build_with_trtexec(
    exe: str, onnx_path: Path, plan_path: Path, signature: EncoderSignature, fp16: bool = True
) -> str:
    """Build with the ``trtexec`` CLI; returns the TensorRT version it reports.

    Raises:
        RuntimeError: trtexec failed (its last output lines included).
    """
    bounds = profile(signature)

    def shapes(which: str) -> str:
        b, s = bounds[which]
        return ",".join(f"{n}:{b}x{s}" for n in (signature.input_ids, signature.attention_mask))

    cmd = [
        exe,
        f"--onnx={onnx_path}",
        f"--saveEngine={plan_path}",
        f"--minShapes={shapes('min')}",
        f"--optShapes={shapes('opt')}",
        f"--maxShapes={shapes('max')}",
        f"--memPoolSize=workspace:{WORKSPACE_BYTES // 2**20}M",
        "--skipInference",
    ] + (["--fp16"] if fp16 else [])
    proc = subprocess.run(cmd, capture_output=True, text=True, timeout=3600, check=False)
    if proc.returncode != 0:
        raise RuntimeError(f"trtexec failed: {(proc.stdout + proc.stderr)[-2000:]}")
    match = re.search(r"TensorRT v(\d+)", proc.stdout + proc.stderr)
    if not match:
        return "unknown"
    code = int(match.group(1))  # e.g. 100300 -> 10.3.0
    return f"{code // 10000}.{code // 100 % 100}.{code % 100}"


def plan_parity(
    trt: Any, plan_path: Path, repository: Path, signature: EncoderSignature, texts: list[str]
) -> dict[str, Any]:
    """Cosine agreement of the plan with fp32 ONNX Runtime (CPU) on real texts.

    Runs the engine through ``torch`` CUDA tensors (TensorRT 10 ``execute_async_v3``).

    Returns:
        ``Agreement`` fields as a dict, or ``{"skipped": reason}`` without CUDA-enabled torch.
    """
    try:
        import torch
    except ImportError:
        return {"skipped": "torch not installed"}
    if not torch.cuda.is_available():
        return {"skipped": "torch has no CUDA here; plan parity not measured"}
    from wasteml_export.text_encoder import Agreement, embed_texts, onnxruntime_embedder
    from wasteml_models.tokenizer import TextTokenizer

    runtime = trt.Runtime(trt.Logger(trt.Logger.WARNING))
    engine = runtime.deserialize_cuda_engine(plan_path.read_bytes())
    context = engine.create_execution_context()
    stream = torch.cuda.Stream()

    def run(ids: np.ndarray, mask: np.ndarray) -> np.ndarray:
        feeds = {
            signature.input_ids: torch.from_numpy(ids).cuda(),
            signature.attention_mask: torch.from_numpy(mask).cuda(),
        }
        out = torch.empty((ids.shape[0], signature.dimension), dtype=torch.float32, device="cuda")
        for name, tensor in feeds.items():
            context.set_input_shape(name, tuple(tensor.shape))
            context.set_tensor_address(name, tensor.data_ptr())
        context.set_tensor_address(signature.embedding, out.data_ptr())
        if not context.execute_async_v3(stream.cuda_stream):
            raise RuntimeError("TensorRT execution failed")
        stream.synchronize()
        return out.cpu().numpy()

    tokenizer = TextTokenizer.from_repository(repository, TEXT_ENCODER)
    plan = embed_texts(run, tokenizer, texts)
    ref = embed_texts(onnxruntime_embedder(repository, TEXT_ENCODER), tokenizer, texts)
    return asdict(Agreement.between(plan, ref))


def main(repository: Path, force: bool = False, data_dir: Path | None = None) -> int:
    """The ``tensorrt`` command: build the plan where a GPU and TensorRT are present.

    Args:
        repository: model repository with ``text_encoder/1/model.onnx`` and the committed
            ``text_encoder*/config.pbtxt``; the plan goes to ``text_encoder_trt/1/``.
        force: rebuild even when up to date.
        data_dir: real data directory for the plan's parity check; None skips it.

    Returns:
        0 when built, up to date, or skipped for lack of GPU/TensorRT (with a message);
        1 when the ONNX source or a config is missing or invalid, or the build fails.
    """
    onnx_path = model_path(repository, TEXT_ENCODER)
    out_dir = version_dir(repository, TEXT_ENCODER_TRT)
    gpu = gpu_info()
    if gpu is None:
        print(
            "tensorrt: skipped: no NVIDIA GPU here (nvidia-smi missing or failing); "
            "build the plan on the GPU host that serves it"
        )
        return 0
    trt = _import_tensorrt()
    trtexec = shutil.which("trtexec")
    if trt is None and trtexec is None:
        print("tensorrt: skipped: neither the tensorrt Python package nor trtexec is installed")
        return 0
    if not onnx_path.is_file():
        print(f"tensorrt: {onnx_path} missing: run 'python -m wasteml_export text-encoder' first")
        return 1
    try:
        signature = plan_signature(repository)
    except (OSError, ModelConfigError) as error:
        print(f"tensorrt: {error}")
        return 1
    shapes = profile(signature)
    profile_info = {k: {"batch": v[0], "sequence": v[1]} for k, v in shapes.items()}
    onnx_sha = sha256_file(onnx_path)
    info_path = out_dir / PLAN_INFO_FILE
    plan_path = out_dir / PLAN_FILE
    trt_version = trt.__version__ if trt is not None else None
    if not force and plan_path.is_file() and info_path.is_file():
        info = json.loads(info_path.read_text())
        if (
            info.get("source_onnx_sha256") == onnx_sha
            and info.get("gpu", {}).get("compute_capability") == gpu.compute_capability
            and (trt_version is None or info.get("tensorrt_version") == trt_version)
            and info.get("profile") == profile_info
            and info.get("plan_sha256") == sha256_file(plan_path)
        ):
            print(
                f"tensorrt: plan up to date ({info['tensorrt_version']}, sm {gpu.compute_capability})"
            )
            return 0
    out_dir.mkdir(parents=True, exist_ok=True)
    info_path.unlink(missing_ok=True)
    tmp_plan = plan_path.with_suffix(".plan.tmp")
    started = time.perf_counter()
    try:
        if trt is not None:
            build_with_python_api(trt, onnx_path, tmp_plan, signature)
        else:
            assert trtexec is not None  # checked above: one of the two is installed
            trt_version = build_with_trtexec(trtexec, onnx_path, tmp_plan, signature)
    except RuntimeError as error:
        tmp_plan.unlink(missing_ok=True)
        print(f"tensorrt: build failed: {error}")
        return 1
    tmp_plan.replace(plan_path)
    build_s = time.perf_counter() - started
    parity: dict[str, Any] = {"skipped": "tensorrt Python package absent (built with trtexec)"}
    if trt is not None and data_dir is not None:
        from wasteml_export.text_encoder import service_request_texts

        texts = service_request_texts(data_dir, 512)
        parity = plan_parity(trt, plan_path, repository, signature, texts)
    info = {
        "model": TEXT_ENCODER_TRT,
        "tensorrt_version": trt_version,
        "gpu": asdict(gpu),
        "source_onnx": str(onnx_path.relative_to(repository)),
        "source_onnx_sha256": onnx_sha,
        "plan_sha256": sha256_file(plan_path),
        "plan_bytes": plan_path.stat().st_size,
        "precision": "FP16 (BuilderFlag.FP16)",
        "workspace_bytes": WORKSPACE_BYTES,
        "profile": profile_info,
        "build_seconds": round(build_s, 1),
        "parity_vs_onnxruntime_fp32": parity,
        "built_at": datetime.now(UTC).isoformat(timespec="seconds"),
    }
    info_path.write_text(json.dumps(info, indent=2) + "\n")
    print(
        f"tensorrt: built {plan_path} in {build_s:.1f} s on {gpu.name} (sm {gpu.compute_capability})"
    )
    print(f"tensorrt: parity vs ONNX Runtime fp32: {json.dumps(parity)}")
    return 0
