"""Synchronous access to the text encoders through the local Triton, for parity and benchmarks.

The server's Triton pieces are asyncio (:class:`~wasteml_server.adapters.triton.LocalTriton`,
:class:`~wasteml_server.adapters.triton.TritonClient`); the export checks are synchronous. This
module runs one event loop in a background thread, starts the local Triton (or uses
``settings.triton_url``) there, and exposes blocking ``(input_ids, attention_mask) ->
embedding`` callables that submit KServe v2 ``ModelInfer`` calls to that loop. Tensor names
come from each model's ``config.pbtxt`` in ``settings.model_repository``.
"""

from __future__ import annotations

import asyncio
import threading
from collections.abc import Coroutine
from typing import Any, TypeVar

import numpy as np

from wasteml_export.text_encoder import Embedder
from wasteml_models.config import EncoderSignature
from wasteml_server.adapters.triton import LocalTriton, TritonClient
from wasteml_server.core.settings import Settings

T = TypeVar("T")


class TritonEmbedders:
    """The local Triton, started for the duration of a ``with`` block.

    Args:
        settings: Triton settings; ``model_repository`` must hold the exported encoders.

    Raises:
        UnavailableError: Triton could not start (e.g. ``.venv-triton`` missing: run
            ``make triton-env``).
    """

    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        self._loop = asyncio.new_event_loop()
        self._thread = threading.Thread(target=self._loop.run_forever, daemon=True)
        self.triton = LocalTriton(settings)
        self._signatures: dict[str, EncoderSignature] = {}

    def run(self, coro: Coroutine[Any, Any, T], timeout_s: float | None = None) -> T:
        """Run a coroutine on the background loop and wait for its result."""
        return asyncio.run_coroutine_threadsafe(coro, self._loop).result(timeout_s)

    def __enter__(self) -> TritonEmbedders:
        self._thread.start()
        try:
            self.run(self.triton.start())
        except BaseException:
            self.close()
            raise
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def close(self) -> None:
        """Stop Triton and the background loop."""
        if self._thread.is_alive():
            try:
                self.run(self.triton.stop())
            finally:
                self._loop.call_soon_threadsafe(self._loop.stop)
                self._thread.join(timeout=30)
        self._loop.close()

    def signature(self, model: str) -> EncoderSignature:
        """The encoder signature of ``model`` (its ``config.pbtxt``), read once."""
        if model not in self._signatures:
            self._signatures[model] = EncoderSignature.load(self.settings.model_repository, model)
        return self._signatures[model]

    def _client(self) -> TritonClient:
        client = self.triton.client
        if client is None:
            raise RuntimeError("Triton is not started")
        return client

    def embedder(self, model: str) -> Embedder:
        """A blocking ``(input_ids, attention_mask) -> embedding`` through Triton's ``model``.

        Inputs are int64 ``[batch, seq]``; the result is float32 ``[batch, dimension]``.
        """
        self._client()  # fail now, not at the first call

        def run(ids: np.ndarray, mask: np.ndarray) -> np.ndarray:
            return self.run(self.infer_async(model, ids, mask))

        return run

    async def infer_async(self, model: str, ids: np.ndarray, mask: np.ndarray) -> np.ndarray:
        """One inference as a coroutine (to be run on this object's loop, e.g. by benchmarks)."""
        sig = self.signature(model)
        out = await self._client().infer(
            model, {sig.input_ids: ids, sig.attention_mask: mask}, [sig.embedding]
        )
        return out[sig.embedding]
