"""Inference functions the forecasting domain accepts (``InferFn``), over Triton or in-process.

The domain code (``DemandForecaster`` recursion, ``FillLevelPredictor``) is synchronous and
calls ``infer(features float32 [n, f]) -> [n]``. In the asyncio server it runs in a worker
thread (``asyncio.to_thread``) and ``triton_infer_fn`` bridges each call back to the event loop
that owns the aio ``TritonClient``. Tests use ``onnx_export.OnnxRuntimeInfer`` on the same
``model.onnx``; both give the same numbers (ONNX Runtime CPU in both; checked by
``tests/forecasting/test_triton_parity.py`` against the local Triton).
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable

import numpy as np

from wasteml_server.core.errors import InvalidArgumentError
from wasteml_server.forecasting.onnx_export import INPUT_NAME, OUTPUT_NAME

InferFn = Callable[[np.ndarray], np.ndarray]


def chunked(infer: InferFn, max_rows: int) -> InferFn:
    """Split calls into pieces of at most ``max_rows`` rows (a model's ``max_batch_size``).

    Raises:
        InvalidArgumentError: ``max_rows < 1`` (field ``max_rows``).
    """
    if max_rows < 1:
        raise InvalidArgumentError("max_rows", f"must be >= 1, got {max_rows}")

    def run(features: np.ndarray) -> np.ndarray:
        parts = [np.asarray(infer(features[i : i + max_rows])).reshape(-1)
                 for i in range(0, len(features), max_rows)]
        return np.concatenate(parts) if parts else np.zeros(0, dtype=np.float32)

    return run


def triton_infer_fn(client, model_name: str, loop: asyncio.AbstractEventLoop,
                    version: str = "", max_rows: int | None = None,
                    timeout_s: float | None = None) -> InferFn:
    """A synchronous ``InferFn`` over an aio ``TritonClient`` living on ``loop``.

    Call the returned function from a worker thread, never from ``loop`` itself (it blocks on
    the result).

    Args:
        client: ``wasteml_server.adapters.triton.client.TritonClient``.
        model_name: e.g. ``"fill_level"``.
        loop: the event loop that owns ``client``.
        version: model version as a string ("" = Triton's latest ready).
        max_rows: split larger batches (the model's ``max_batch_size``).
        timeout_s: per-call timeout (None = the client's default).

    Returns:
        ``infer(features float32 [n, f]) -> float32 [n]``; errors are the client's
        (``UnavailableError``, ``NotFoundError``, ...).
    """

    def infer(features: np.ndarray) -> np.ndarray:
        x = np.ascontiguousarray(features, dtype=np.float32)
        fut = asyncio.run_coroutine_threadsafe(
            client.infer(model_name, {INPUT_NAME: x}, [OUTPUT_NAME], version, timeout_s), loop)
        return np.asarray(fut.result()[OUTPUT_NAME]).reshape(-1)

    return chunked(infer, max_rows) if max_rows else infer
