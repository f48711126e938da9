"""Text embedders: the :class:`Embedder` protocol and its two real implementations.

- :class:`TritonEmbedder`: the server's embedder, an adapter of
  :class:`wasteml_server.search.encoder.TextEncoder` (tokenises with
  :class:`~wasteml_models.tokenizer.TextTokenizer` into length buckets, so Triton's
  dynamic batcher can merge requests of equal shape, and calls ``text_encoder`` on Triton).
- :class:`OnnxEmbedder`: the same exported ONNX graph run in-process by ONNX Runtime (CPU).
  Used where no Triton runs (tests of the search domain, the benchmark baseline, ingestion
  without a server).

Both return float32 ``[n, dimension]`` unit vectors: the exported graph
(``model_repository/text_encoder/1/model.onnx``, made by ``python -m wasteml_export
text-encoder``) does attention-mask mean pooling and L2 normalisation itself. Tensor names,
the dimension and the batch bound come from the model's ``config.pbtxt``
(``wasteml_models.config.EncoderSignature``).
"""

from __future__ import annotations

import asyncio
from collections.abc import Sequence
from pathlib import Path
from typing import Protocol, runtime_checkable

import numpy as np

from wasteml_models import TEXT_ENCODER
from wasteml_models.config import EncoderSignature
from wasteml_models.tokenizer import TextTokenizer
from wasteml_server.core.common import ModelRef, version_number
from wasteml_server.core.errors import InvalidArgumentError, UnavailableError
from wasteml_server.search.encoder import TextEncoder


@runtime_checkable
class Embedder(Protocol):
    """Anything that turns texts into unit-norm vectors of one model version.

    Attributes:
        model: the encoder and version (version None until a served call named it).
        dimension: the vector dimension.
    """

    model: ModelRef
    dimension: int

    async def embed(self, texts: Sequence[str]) -> np.ndarray:
        """Embed texts: float32 ``[len(texts), dimension]``, each row L2 norm 1.

        Raises:
            InvalidArgumentError: ``texts`` is empty or holds a non-string (field ``texts``).
            UnavailableError: the model back-end is down.
        """
        ...


def _check_output(out: np.ndarray, n: int, dimension: int, who: str) -> np.ndarray:
    out = np.asarray(out, dtype=np.float32)
    if out.shape != (n, dimension) or not np.all(np.isfinite(out)):
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
        model_path: ``<repository>/<model>/<version>/model.onnx``; its ``tokenizer.json`` lies
            beside it (the export puts it there) and the model's ``config.pbtxt`` two folders
            up states its signature.
        threads: ONNX Runtime intra-op threads; 0 = ONNX Runtime's default (all cores).

    Raises:
        FileNotFoundError: the model or its tokenizer is missing (run the export).
    """

    def __init__(self, model_path: Path | str, *, threads: int = 0) -> None:
        import onnxruntime as ort

        path = Path(model_path)
        if not path.is_file():
            raise FileNotFoundError(
                f"{path} does not exist: run 'python -m wasteml_export text-encoder'"
            )
        version_dir, model_dir = path.parent, path.parent.parent
        self.signature = EncoderSignature.load(model_dir.parent, model_dir.name)
        self.dimension = self.signature.dimension
        opts = ort.SessionOptions()
        opts.intra_op_num_threads = threads
        opts.inter_op_num_threads = 1
        self._session = ort.InferenceSession(
            str(path), sess_options=opts, providers=["CPUExecutionProvider"]
        )
        self._tokenizer = TextTokenizer.from_file(version_dir / "tokenizer.json")
        self.model = ModelRef(model_dir.name, version_number(version_dir.name))
        self.model_path = path

    @classmethod
    def from_repository(
        cls, repository: Path | str, model: str = TEXT_ENCODER, version: int = 1, threads: int = 0
    ) -> OnnxEmbedder:
        """Load ``<repository>/<model>/<version>/model.onnx`` (``settings.model_repository``)."""
        return cls(Path(repository) / model / str(version) / "model.onnx", threads=threads)

    def embed_sync(self, texts: Sequence[str]) -> np.ndarray:
        """Blocking :meth:`embed`: float32 ``[n, dimension]`` unit vectors."""
        _validate_texts(texts)
        sig = self.signature
        out = np.empty((len(texts), sig.dimension), dtype=np.float32)
        for batch in self._tokenizer.encode_groups(texts, max_batch_size=sig.max_batch_size):
            (emb,) = self._session.run(
                [sig.embedding], {sig.input_ids: batch.input_ids, sig.attention_mask: batch.attention_mask}
            )
            out[batch.indices] = emb
        return _check_output(out, len(texts), sig.dimension, "onnxruntime")

    async def embed(self, texts: Sequence[str]) -> np.ndarray:
        """Embed texts off the event loop (ONNX Runtime releases the GIL while it runs).

        Returns:
            float32 ``[len(texts), dimension]``, unit norm.

        Raises:
            InvalidArgumentError: empty list or a blank/non-string text (``texts[i]``).
        """
        _validate_texts(texts)
        return await asyncio.to_thread(self.embed_sync, list(texts))


class TritonEmbedder:
    """The server's embedder: a text-encoder model on Triton.

    An adapter of :class:`wasteml_server.search.encoder.TextEncoder` (tokenisation into length
    buckets, concurrent requests of at most ``max_batch_size`` rows, reassembly) to the
    :class:`Embedder` protocol.

    Args:
        encoder: the server's ``TextEncoder``.
        version: the model version to request; None lets Triton pick the latest ready one,
            and :attr:`model` then names what served the last call.
    """

    def __init__(self, encoder: TextEncoder, version: int | None = None) -> None:
        self._encoder = encoder
        self._version = version
        self.model = ModelRef(encoder.model, version)
        self.dimension = encoder.dimension

    async def resolve_version(self) -> ModelRef:
        """Pin :attr:`model` to the version Triton serves (one one-text call when the version
        was left to Triton), so vectors stored by ingestion carry a stable ``name:version``
        tag from the first batch on.

        Raises:
            UnavailableError / NotFoundError / DeadlineExceededError: from Triton.
        """
        if self.model.version is None:
            await self.embed(["version probe"])
        return self.model

    async def embed(self, texts: Sequence[str]) -> np.ndarray:
        """Embed texts through Triton.

        Returns:
            float32 ``[len(texts), dimension]``, unit norm, in input order.

        Raises:
            InvalidArgumentError: empty list or a blank/non-string text (``texts[i]``).
            UnavailableError / NotFoundError / DeadlineExceededError: from Triton.
        """
        _validate_texts(texts)
        result = await self._encoder.embed(list(texts), version=self._version)
        if self._version is None:
            self.model = result.model
        return _check_output(result.vectors, len(texts), self.dimension, "triton")
