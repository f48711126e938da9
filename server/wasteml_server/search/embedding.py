"""Text embedders: the :class:`Embedder` protocol and its two real implementations.

- :class:`TritonEmbedder`: the server's embedder, an adapter of
  :class:`wasteml_server.search.encoder.TextEncoder` (tokenises with
  :class:`~wasteml_models.tokenizer.TextTokenizer` into length buckets, so Triton's
  dynamic batcher can merge requests of equal shape, and calls ``text_encoder`` on Triton).
- :class:`OnnxEmbedder`: the same exported ONNX graph run in-process by ONNX Runtime (CPU).
  Used where no Triton runs (tests of the search domain, the benchmark baseline, ingestion
  without a server).

Both return float32 ``[n, 384]`` unit vectors: the exported graph
(``model_repository/text_encoder/1/model.onnx``, made by ``python -m wasteml_export
text-encoder``) does attention-mask mean pooling and L2 normalisation itself; inputs
``input_ids`` / ``attention_mask`` int64 ``[batch, seq]``, output ``embedding``.
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import Sequence
from pathlib import Path
from typing import Any, Protocol, runtime_checkable

import numpy as np

from wasteml_models.tokenizer import TextTokenizer
from wasteml_server.core.errors import InvalidArgumentError, UnavailableError
from wasteml_server.search.documents import EMBEDDING_DIM

#: Triton / repository name of the fp32 text encoder.
TEXT_ENCODER = "text_encoder"
#: Input and output tensor names of the exported graph.
INPUT_IDS, ATTENTION_MASK, OUTPUT = "input_ids", "attention_mask", "embedding"
#: Largest batch one model call takes (the model's ``max_batch_size`` in config.pbtxt).
MAX_MODEL_BATCH = 64


@runtime_checkable
class Embedder(Protocol):
    """Anything that turns texts into unit-norm 384-d vectors.

    Attributes:
        model_name: encoder name, e.g. ``"text_encoder"``.
        model_version: encoder version, e.g. ``"1"``.
    """

    model_name: str
    model_version: str

    async def embed(self, texts: Sequence[str]) -> np.ndarray:
        """Embed texts: float32 ``[len(texts), 384]``, each row L2 norm 1.

        Raises:
            InvalidArgumentError: ``texts`` is empty or holds a non-string (field ``texts``).
            UnavailableError: the model back-end is down.
        """
        ...


def model_tag(embedder: Embedder) -> str:
    """``"name:version"`` of an embedder, stored with each vector."""
    return f"{embedder.model_name}:{embedder.model_version}"


def _check_output(out: np.ndarray, n: int, who: str) -> np.ndarray:
    out = np.asarray(out, dtype=np.float32)
    if out.shape != (n, EMBEDDING_DIM) or not np.all(np.isfinite(out)):
        raise UnavailableError(who, f"encoder returned shape {list(out.shape)} or non-finite values")
    return out


def _validate_texts(texts: Sequence[str]) -> None:
    if isinstance(texts, str):
        raise InvalidArgumentError("texts", "must be a list of strings, not one string")
    if len(texts) == 0:
        raise InvalidArgumentError("texts", "at least one text is required")
    for i, t in enumerate(texts):
        if not isinstance(t, str) or not t.strip():
            raise InvalidArgumentError(f"texts[{i}]", "must be a non-blank string")


class OnnxEmbedder:
    """The exported text encoder run in-process by ONNX Runtime on the CPU.

    Args:
        model_path: ``model.onnx`` of a text-encoder version folder; its ``tokenizer.json``
            must lie beside it (the export puts it there).
        threads: ONNX Runtime intra-op threads; 0 = ONNX Runtime's default (all cores).
        model_name: name reported with vectors (default ``text_encoder``).
        model_version: version reported; default the version folder's name.

    Raises:
        FileNotFoundError: the model or its tokenizer is missing (run the export).
    """

    def __init__(
        self,
        model_path: Path | str,
        *,
        threads: int = 0,
        model_name: str = TEXT_ENCODER,
        model_version: str | None = None,
    ) -> None:
        import onnxruntime as ort

        path = Path(model_path)
        if not path.is_file():
            raise FileNotFoundError(
                f"{path} does not exist: run 'python -m wasteml_export text-encoder'"
            )
        opts = ort.SessionOptions()
        opts.intra_op_num_threads = threads
        opts.inter_op_num_threads = 1
        self._session = ort.InferenceSession(
            str(path), sess_options=opts, providers=["CPUExecutionProvider"]
        )
        self._tokenizer = TextTokenizer.from_file(path.parent / "tokenizer.json")
        self.model_name = model_name
        self.model_version = model_version or path.parent.name
        self.model_path = path

    @classmethod
    def from_repository(
        cls, repository: Path | str, model: str = TEXT_ENCODER, version: int = 1, threads: int = 0
    ) -> OnnxEmbedder:
        """Load ``<repository>/<model>/<version>/model.onnx`` (``settings.model_repository``)."""
        return cls(
            Path(repository) / model / str(version) / "model.onnx",
            threads=threads,
            model_name=model,
            model_version=str(version),
        )

    def embed_sync(self, texts: Sequence[str]) -> np.ndarray:
        """Blocking :meth:`embed`: float32 ``[n, 384]`` unit vectors."""
        _validate_texts(texts)
        out = np.empty((len(texts), EMBEDDING_DIM), dtype=np.float32)
        for batch in self._tokenizer.encode_groups(texts, max_batch_size=MAX_MODEL_BATCH):
            (emb,) = self._session.run(
                [OUTPUT], {INPUT_IDS: batch.input_ids, ATTENTION_MASK: batch.attention_mask}
            )
            out[batch.indices] = emb
        return _check_output(out, len(texts), "onnxruntime")

    async def embed(self, texts: Sequence[str]) -> np.ndarray:
        """Embed texts off the event loop (ONNX Runtime releases the GIL while it runs).

        Returns:
            float32 ``[len(texts), 384]``, unit norm.

        Raises:
            InvalidArgumentError: empty list or a blank/non-string text (``texts[i]``).
        """
        _validate_texts(texts)
        return await asyncio.to_thread(self.embed_sync, list(texts))


class TritonEmbedder:
    """The server's embedder: the ``text_encoder`` model on Triton.

    An adapter of :class:`wasteml_server.search.encoder.TextEncoder` (tokenisation into length
    buckets, concurrent Triton requests of at most 64 rows, reassembly) to the
    :class:`Embedder` protocol.

    Args:
        encoder: the server's ``TextEncoder``.
        model_version: Triton model version to request; ``""`` lets Triton pick the latest
            ready one, and :attr:`model_version` then reports what served the last call.
    """

    def __init__(self, encoder: Any, model_version: str = "1") -> None:
        self._encoder = encoder
        self._version = model_version
        self.model_name = str(encoder.model)
        self.model_version = model_version or "latest"

    async def resolve_version(self) -> str:
        """Pin :attr:`model_version` to the version Triton serves (one one-text call when the
        version was left to Triton), so vectors stored by ingestion carry a stable
        ``name:version`` tag from the first batch on.

        Raises:
            UnavailableError / NotFoundError / DeadlineExceededError: from Triton.
        """
        if not self._version and self.model_version == "latest":
            await self.embed(["version probe"])
        return self.model_version

    async def embed(self, texts: Sequence[str]) -> np.ndarray:
        """Embed texts through Triton.

        Returns:
            float32 ``[len(texts), 384]``, unit norm, in input order.

        Raises:
            InvalidArgumentError: empty list or a blank/non-string text (``texts[i]``).
            UnavailableError / NotFoundError / DeadlineExceededError: from Triton.
        """
        _validate_texts(texts)
        result = await self._encoder.embed(list(texts), version=self._version)
        if not self._version and result.version:
            self.model_version = str(result.version)
        return _check_output(result.vectors, len(texts), "triton")


def export_info(model_path: Path | str) -> dict[str, Any]:
    """The ``export_info.json`` beside a model file (source, hashes, parity), or ``{}``."""
    info = Path(model_path).parent / "export_info.json"
    return json.loads(info.read_text()) if info.is_file() else {}
