"""Text embeddings through Triton: tokenise here, run the encoder there.

The orchestration side tokenises with HF ``tokenizers`` from the same ``tokenizer.json`` the
export shipped (``search/tokenizer.py``), groups texts by padded length bucket so that
Triton's dynamic batcher (which only merges equal shapes) can merge requests, sends the
batches concurrently, and reassembles the 384-d embeddings (mean pooling and L2
normalisation happen inside the ONNX graph).
"""

from __future__ import annotations

import asyncio
import time
from dataclasses import dataclass

import numpy as np

from wasteml_models.tokenizer import TextTokenizer
from wasteml_server.adapters.triton.client import TritonClient
from wasteml_server.core import metrics
from wasteml_server.core.deadlines import bounded_timeout
from wasteml_server.core.errors import InvalidArgumentError, UnavailableError

#: Output dimension of all-MiniLM-L6-v2 (model card).
EMBEDDING_DIM = 384


@dataclass(frozen=True)
class Embeddings:
    """Embeddings of a list of texts, in input order.

    Attributes:
        vectors: float32 ``[n, 384]``, each row L2-normalised.
        token_counts: int64 ``[n]``, tokens consumed per text (specials included).
        truncated: bool ``[n]``, True where the text reached the maximum sequence length.
        model: the encoder model name.
        version: the model version that served the call (as Triton reported it).
    """

    vectors: np.ndarray
    token_counts: np.ndarray
    truncated: np.ndarray
    model: str
    version: str


class TextEncoder:
    """Embeds texts with the ``text_encoder`` model on Triton.

    Args:
        triton: the server's Triton client.
        tokenizer: the encoder's tokenizer (same ``tokenizer.json`` as the export).
        model: Triton model name (``text_encoder`` or ``text_encoder_int8``).
        max_batch_size: rows per Triton request; the model's ``max_batch_size`` (64).
        max_texts: most texts one call may embed.
        timeout_s: timeout of one Triton request when the call has no deadline, seconds.
    """

    def __init__(
        self,
        triton: TritonClient,
        tokenizer: TextTokenizer,
        model: str = "text_encoder",
        max_batch_size: int = 64,
        max_texts: int = 1024,
        timeout_s: float = 30.0,
    ) -> None:
        self._triton = triton
        self._tokenizer = tokenizer
        self.model = model
        self.max_batch_size = max_batch_size
        self.max_texts = max_texts
        self.timeout_s = timeout_s

    async def embed(self, texts: list[str], version: str = "", field: str = "texts") -> Embeddings:
        """Embed ``texts``.

        Args:
            texts: 1..``max_texts`` non-empty strings.
            version: model version to use ("" = latest ready).
            field: request field path for errors.

        Raises:
            InvalidArgumentError: no texts, too many, or an empty/blank text (field ``texts[i]``).
            UnavailableError, DeadlineExceededError, NotFoundError: from Triton.
        """
        if len(texts) == 0:
            raise InvalidArgumentError(field, "at least one text is required")
        if len(texts) > self.max_texts:
            raise InvalidArgumentError(field, f"at most {self.max_texts} texts per call, got {len(texts)}")
        for i, text in enumerate(texts):
            if not text.strip():
                raise InvalidArgumentError(f"{field}[{i}]", "must not be empty")
        batches = await asyncio.to_thread(self._tokenizer.encode_groups, texts, self.max_batch_size, field)
        n = len(texts)
        vectors = np.empty((n, EMBEDDING_DIM), dtype=np.float32)
        counts = np.empty(n, dtype=np.int64)
        served: set[str] = set()

        async def run(batch) -> None:
            start = time.perf_counter()
            out, served_version = await self._triton.infer_versioned(
                self.model,
                {"input_ids": batch.input_ids, "attention_mask": batch.attention_mask},
                ["embedding"],
                version=version,
                timeout_s=bounded_timeout(self.timeout_s),
            )
            metrics.INFERENCE_LATENCY.labels(self.model).observe(time.perf_counter() - start)
            served.add(served_version)
            emb = out["embedding"]
            if emb.shape != (len(batch.indices), EMBEDDING_DIM):
                raise UnavailableError("triton", f"{self.model} returned shape {emb.shape}")
            vectors[batch.indices] = emb
            counts[batch.indices] = batch.attention_mask.sum(axis=1)

        await asyncio.gather(*(run(b) for b in batches))
        return Embeddings(
            vectors=vectors,
            token_counts=counts,
            truncated=counts >= self._tokenizer.max_seq_len,
            model=self.model,
            version=",".join(sorted(served)),
        )
