"""The exported text encoder (model_repository/text_encoder) served by the real local Triton
equals in-process ONNX Runtime to 1e-5 on real service-request texts (issue 3 parity item)."""

from __future__ import annotations

import asyncio

import numpy as np
import onnxruntime as ort
import pytest
from triton_testutils import (
    ENCODER_MODEL,
    ENCODER_ONNX,
    ENCODER_SOURCE,
    encoder_feeds,
    real_texts,
    texts_csv,
)

from wasteml_server.adapters.triton.manager import LocalTriton
from wasteml_server.adapters.triton.repository import load_model_config

pytestmark = pytest.mark.skipif(
    not ENCODER_ONNX.is_file() or not texts_csv().is_file(),
    reason=f"{ENCODER_ONNX} not exported (run the export) or real texts missing",
)


async def test_encoder_through_triton_equals_in_process_ort(encoder_triton: LocalTriton) -> None:
    """Batch 1 and 15 concurrent requests through Triton equal in-process ORT to 1e-5."""
    config = load_model_config(ENCODER_SOURCE / "config.pbtxt")
    outputs = [o.name for o in config.output]
    session = ort.InferenceSession(str(ENCODER_ONNX), providers=["CPUExecutionProvider"])
    feeds = encoder_feeds(real_texts(16))
    client = encoder_triton.client
    replies = [await client.infer(ENCODER_MODEL, feeds[0], outputs)]
    replies += await asyncio.gather(*(client.infer(ENCODER_MODEL, f, outputs) for f in feeds[1:]))
    worst = 0.0
    for feed, reply in zip(feeds, replies, strict=True):
        expected = session.run(outputs, feed)
        for name, want in zip(outputs, expected, strict=True):
            np.testing.assert_allclose(reply[name], want, atol=1e-5, rtol=0)
            worst = max(worst, float(np.max(np.abs(reply[name] - want))))
    print(f"text encoder through local Triton vs in-process ORT: max abs diff {worst:.2e}")
