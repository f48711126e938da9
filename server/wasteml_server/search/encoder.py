"""Text embeddings through the model server: tokenise here, run the encoder there.

The orchestration side tokenises with HF ``tokenizers`` from the same ``tokenizer.json`` the
export shipped (``wasteml_models.tokenizer``), groups texts by padded length bucket so that
Triton's dynamic batcher (which only merges equal shapes) can merge requests, sends the
batches concurrently, and reassembles the embeddings (mean pooling and L2 normalisation
happen inside the ONNX graph). Tensor names, the embedding dimension and the batch bound are
the model's (``wasteml_models.config.EncoderSignature``, from its ``config.pbtxt``).

A call is served by one model version: if a reload lets two versions answer the batches of
one call, the call fails with ``UnavailableError`` (retry) rather than mix their vectors.
"""

from __future__ import annotations

import asyncio
import time
from dataclasses import dataclass

import numpy as np

from wasteml_models.config import EncoderSignature
from wasteml_models.tokenizer import EncodedBatch, TextTokenizer
from wasteml_server.core import metrics
from wasteml_server.core.common import ModelRef, version_number
from wasteml_server.core.deadlines import bounded_timeout
from wasteml_server.core.errors import InvalidArgumentError, UnavailableError
from wasteml_server.core.inference import InferenceServer
from wasteml_server.search.documents import (
    DEFAULT_MAX_TEXT_CHARS,
    raise_violations,
    text_violations,
)


@dataclass(frozen=True)
class Embeddings:
    """Embeddings of a list of texts, in input order.

    Attributes:
        vectors: float32 ``[n, dimension]``, each row L2-normalised.
        token_counts: int64 ``[n]``, tokens consumed per text (specials included).
        truncated: bool ``[n]``, True where the text reached the maximum sequence length.
        model: the encoder and the version that served the call.
    """

    vectors: np.ndarray
    token_counts: np.ndarray
    truncated: np.ndarray
    model: ModelRef


class TextEncoder:
    """Embeds texts with a text-encoder model on the model server.

    Args:
        server: the model server (``InferenceServer``; Triton in the server).
        tokenizer: the encoder's tokenizer (same ``tokenizer.json`` as the export).
        model: model name (``text_encoder`` or ``text_encoder_int8``).
        signature: the model's tensors, dimension and batch bound.
        max_texts: most texts one call may embed (``settings.search_max_embed_texts``).
        timeout_s: timeout of one request when the call has no deadline, seconds.
        max_text_chars: longest text in characters (``settings.search_max_text_chars``),
            checked before tokenising.
    """

    def __init__(
        self,
        server: InferenceServer,
        tokenizer: TextTokenizer,
        model: str,
        signature: EncoderSignature,
        max_texts: int = 1024,
        timeout_s: float = 30.0,
        max_text_chars: int = DEFAULT_MAX_TEXT_CHARS,
    ) -> None:
        self._server = server
        self._tokenizer = tokenizer
        self.model = model
        self.signature = signature
        self.max_texts = max_texts
        self.timeout_s = timeout_s
        self.max_text_chars = max_text_chars

    @property
    def dimension(self) -> int:
        """Embedding dimension."""
        return self.signature.dimension

    async def embed(self, texts: list[str], version: int | None = None, field: str = "texts") -> Embeddings:
        """Embed ``texts``.

        Args:
            texts: 1..``max_texts`` non-blank strings of at most ``max_text_chars`` characters.
            version: model version to use (None = the latest ready); checked by
                ``ModelRef.parse_version`` before the model server is called.
            field: request field path for errors.

        Raises:
            InvalidArgumentError: no texts, too many, or an empty/blank or too long text (field
                ``texts[i]``);
                a version outside 1..``MAX_MODEL_VERSION`` (field ``model.version``).
            UnavailableError, DeadlineExceededError, NotFoundError: from the model server.
        """
        if version is not None:  # the one version check, so a bad one never reaches Triton
            ModelRef.parse_version(str(version), "model.version")
        if len(texts) == 0:
            raise InvalidArgumentError(field, "at least one text is required")
        if len(texts) > self.max_texts:
            raise InvalidArgumentError(field, f"at most {self.max_texts} texts per call, got {len(texts)}")
        raise_violations([v for i, text in enumerate(texts)
                          for v in text_violations(text, f"{field}[{i}]", self.max_text_chars)], field)
        sig = self.signature
        batches = await asyncio.to_thread(self._tokenizer.encode_groups, texts, sig.max_batch_size, field)
        n = len(texts)
        vectors = np.empty((n, sig.dimension), dtype=np.float32)
        counts = np.empty(n, dtype=np.int64)
        served: set[str] = set()

        async def run(batch: EncodedBatch) -> None:
            start = time.perf_counter()
            out, served_version = await self._server.infer_versioned(
                self.model,
                {sig.input_ids: batch.input_ids, sig.attention_mask: batch.attention_mask},
                [sig.embedding],
                version="" if version is None else str(version),
                timeout_s=bounded_timeout(self.timeout_s),
            )
            metrics.INFERENCE_LATENCY.labels(self.model).observe(time.perf_counter() - start)
            served.add(served_version)
            emb = out[sig.embedding]
            if emb.shape != (len(batch.indices), sig.dimension):
                raise UnavailableError("triton", f"{self.model} returned shape {emb.shape}")
            vectors[batch.indices] = emb
            counts[batch.indices] = batch.attention_mask.sum(axis=1)

        await asyncio.gather(*(run(b) for b in batches))
        known = {number for v in served if (number := version_number(v)) is not None}
        if len(known) > 1:
            raise UnavailableError("triton", f"{self.model}: the call was served by versions "
                                   f"{sorted(known)} (a reload in progress); retry")
        served_version = known.pop() if known else version
        if served_version is None:
            raise UnavailableError("triton", f"{self.model}: the reply did not name its model version")
        return Embeddings(
            vectors=vectors,
            token_counts=counts,
            truncated=counts >= self._tokenizer.max_seq_len,
            model=ModelRef(self.model, served_version),
        )
