"""Inference functions the forecasting domain accepts (``InferFn``), over the model server or
in-process.

The domain code (``DemandForecaster`` recursion, ``FillLevelPredictor``) is synchronous and
calls ``infer(features float32 [n, f]) -> [n]``. In the asyncio server it runs in a worker
thread (``asyncio.to_thread``) and :func:`served_infer_fn` bridges each call back to the event
loop that owns the model-server client (the ``InferenceServer`` port). :class:`OnnxRuntimeInfer`
runs the same ``model.onnx`` in-process (tools, tests); both give the same numbers (ONNX Runtime
CPU in both; checked by ``tests/forecasting/test_triton_parity.py`` against the local Triton).

Tensor names are the model's (``wasteml_models.config.TabularSignature``, from its committed
``config.pbtxt``; in-process, the ONNX graph's own).
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from pathlib import Path

import numpy as np

from wasteml_models.config import TabularSignature
from wasteml_server.core.inference import InferenceServer

InferFn = Callable[[np.ndarray], np.ndarray]
"""``infer(features float32 [n, f]) -> predictions [n] or [n, 1]`` in the target's unit."""


def chunked(infer: InferFn, max_rows: int) -> InferFn:
    """Split calls into pieces of at most ``max_rows`` rows (a model's ``max_batch_size``).

    Raises:
        ValueError: ``max_rows < 1``.
    """
    if max_rows < 1:
        raise ValueError(f"max_rows must be >= 1, got {max_rows}")

    def run(features: np.ndarray) -> np.ndarray:
        parts = [np.asarray(infer(features[i : i + max_rows])).reshape(-1)
                 for i in range(0, len(features), max_rows)]
        return np.concatenate(parts) if parts else np.zeros(0, dtype=np.float32)

    return run


def served_infer_fn(server: InferenceServer, model: str, signature: TabularSignature,
                    loop: asyncio.AbstractEventLoop, version: str = "",
                    timeout_s: float | None = None) -> InferFn:
    """A synchronous ``InferFn`` over the model server's client living on ``loop``.

    Call the returned function from a worker thread, never from ``loop`` itself (it blocks on
    the result). Batches larger than the signature's ``max_batch_size`` are split.

    Args:
        server: the model-server client (``adapters.triton.TritonClient`` in the server).
        model: e.g. ``"demand_daily"``.
        signature: the model's tensors.
        loop: the event loop that owns ``server``.
        version: model version as a string ("" = the server's latest ready).
        timeout_s: per-call timeout (None = the client's default).

    Returns:
        ``infer(features float32 [n, f]) -> float32 [n]``; errors are the client's
        (``UnavailableError``, ``NotFoundError``, ...).
    """

    def infer(features: np.ndarray) -> np.ndarray:
        x = np.ascontiguousarray(features, dtype=np.float32)
        fut = asyncio.run_coroutine_threadsafe(
            server.infer_versioned(model, {signature.features: x}, [signature.prediction],
                                   version=version, timeout_s=timeout_s), loop)
        outputs, _ = fut.result()
        return np.asarray(outputs[signature.prediction]).reshape(-1)

    return chunked(infer, signature.max_batch_size)


class OnnxRuntimeInfer:
    """In-process ONNX Runtime inference of an exported forecasting model (CPU, 1 thread).

    Callable as ``infer(features float32 [n, f]) -> float32 [n]``; the same contract as the
    function the server injects. The graph's first input and output are used.

    Args:
        model: path of ``model.onnx`` or its bytes.
    """

    def __init__(self, model: Path | bytes) -> None:
        import onnxruntime as ort

        opts = ort.SessionOptions()
        opts.intra_op_num_threads = 1
        opts.inter_op_num_threads = 1
        # spinning threads cost ~2x under CPU contention on shared boxes (issue 3 notes)
        opts.add_session_config_entry("session.intra_op.allow_spinning", "0")
        src = str(model) if isinstance(model, Path) else model
        self._session = ort.InferenceSession(src, opts, providers=["CPUExecutionProvider"])
        self._input = self._session.get_inputs()[0].name
        self._output = self._session.get_outputs()[0].name

    def __call__(self, features: np.ndarray) -> np.ndarray:
        x = np.ascontiguousarray(features, dtype=np.float32)
        return self._session.run([self._output], {self._input: x})[0].reshape(-1)
