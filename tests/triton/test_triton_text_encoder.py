"""The exported text encoder (model_repository/text_encoder) served by the real local Triton
equals in-process ONNX Runtime to 1e-5 on real service-request texts (issue 3 parity item)."""

from __future__ import annotations

import asyncio
import csv
from pathlib import Path

import numpy as np
import onnxruntime as ort
import pytest
import pytest_asyncio
from triton_testutils import REPO_ROOT

from wasteml_server.settings import Settings
from wasteml_server.triton.manager import LocalTriton
from wasteml_server.triton.repository import load_model_config

MODEL = "text_encoder"
SOURCE = REPO_ROOT / "model_repository" / MODEL
ONNX_FILE = SOURCE / "1" / "model.onnx"
TEXTS_CSV = (
    REPO_ROOT.parent / "shared" / "data" / "service_requests" / "boston_311_2015_sanitation.csv"
)

pytestmark = pytest.mark.skipif(
    not ONNX_FILE.is_file() or not TEXTS_CSV.is_file(),
    reason=f"{ONNX_FILE} not exported (run the export) or real texts missing",
)


def _real_texts(n: int) -> list[str]:
    """The first ``n`` distinct case titles + closure reasons of the Boston 311 sanitation data."""
    texts: list[str] = []
    with TEXTS_CSV.open(newline="", encoding="utf-8") as f:
        for row in csv.DictReader(f):
            text = " ".join(t for t in (row["CASE_TITLE"], row["CLOSURE_REASON"]) if t).strip()
            if text and text not in texts:
                texts.append(text)
            if len(texts) == n:
                break
    return texts


@pytest.fixture(scope="module")
def encoder_repository(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A repository holding only the exported text encoder (version 1), linked, not copied."""
    root = tmp_path_factory.mktemp("encoder_repo")
    (root / MODEL / "1").mkdir(parents=True)
    (root / MODEL / "config.pbtxt").write_text((SOURCE / "config.pbtxt").read_text())
    (root / MODEL / "1" / "model.onnx").symlink_to(ONNX_FILE.resolve())
    return root


@pytest_asyncio.fixture(scope="module")
async def encoder_triton(
    encoder_repository: Path, triton_env: Path, tmp_path_factory: pytest.TempPathFactory
):
    """The real local Triton serving the text encoder on CPU."""
    settings = Settings(
        model_repository=encoder_repository,
        var_dir=tmp_path_factory.mktemp("var"),
        triton_env_dir=triton_env,
        triton_startup_timeout_s=300,
        triton_stop_grace_s=2,
    )
    async with LocalTriton(settings) as local:
        yield local


def _feeds(texts: list[str]) -> list[dict[str, np.ndarray]]:
    """Per text, the encoder inputs named as the config names them (input_ids, attention_mask),
    tokenised by the server's own tokenizer and padded to its length bucket."""
    from wasteml_server.search.tokenizer import TextTokenizer

    config = load_model_config(SOURCE / "config.pbtxt")
    names = [i.name for i in config.input]
    tokenizer = TextTokenizer.from_package()
    feeds = []
    for text in texts:
        ids, mask = tokenizer.encode([text])
        by_role = {"mask": mask, "ids": ids}
        feeds.append({n: by_role["mask" if "mask" in n else "ids"] for n in names})
    return feeds


async def test_encoder_through_triton_equals_in_process_ort(encoder_triton: LocalTriton) -> None:
    """Batch 1 and 16 concurrent requests through Triton equal in-process ORT to 1e-5."""
    config = load_model_config(SOURCE / "config.pbtxt")
    outputs = [o.name for o in config.output]
    session = ort.InferenceSession(str(ONNX_FILE), providers=["CPUExecutionProvider"])
    feeds = _feeds(_real_texts(16))
    replies = [await encoder_triton.client.infer(MODEL, feeds[0], outputs)]
    replies += await asyncio.gather(
        *(encoder_triton.client.infer(MODEL, f, outputs) for f in feeds[1:])
    )
    worst = 0.0
    for feed, reply in zip(feeds, replies, strict=True):
        expected = session.run(outputs, feed)
        for name, want in zip(outputs, expected, strict=True):
            np.testing.assert_allclose(reply[name], want, atol=1e-5, rtol=0)
            worst = max(worst, float(np.max(np.abs(reply[name] - want))))
    print(f"text encoder through local Triton vs in-process ORT: max abs diff {worst:.2e}")
