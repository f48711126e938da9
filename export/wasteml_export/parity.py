"""Parity of the exported text encoders on real service-request texts.

Compares, on the same token batches (length-bucketed, as the server sends them):

- fp32 ONNX Runtime vs the torch reference (same pooling): every text's cosine must be
  >= :data:`~wasteml_export.text_encoder.FP32_MIN_COSINE` (0.9999, issue 3);
- INT8 ONNX Runtime vs the torch reference and vs fp32: minimum and mean cosine, reported;
- optionally, each model through a running Triton (KServe v2 gRPC) vs in-process ONNX Runtime
  on the same inputs: the largest absolute difference must be <= :data:`TRITON_MAX_ABS_DIFF`.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

from wasteml_export.text_encoder import (
    FP32_MIN_COSINE,
    INT8_MODEL_NAME,
    MODEL_FILE,
    MODEL_NAME,
    Agreement,
    Embedder,
    EncoderSource,
    embed_texts,
    load_reference,
    ort_embedder,
    ort_session,
    service_request_texts,
    torch_embedder,
    version_dir,
)
from wasteml_models.tokenizer import TextTokenizer

#: Through Triton, outputs must equal in-process ONNX Runtime within this (issue 3).
TRITON_MAX_ABS_DIFF = 1e-5


@dataclass
class ParityReport:
    """Parity figures; ``ok`` is False when a required bound is missed.

    Attributes:
        texts: number of real texts compared.
        fp32_vs_torch: fp32 ONNX Runtime vs torch.
        int8_vs_torch: INT8 ONNX Runtime vs torch.
        int8_vs_fp32: INT8 vs fp32 ONNX Runtime.
        triton: per model name, Triton vs in-process ONNX Runtime (empty when not run).
        failures: human-readable reasons for ``ok == False``.
    """

    texts: int
    fp32_vs_torch: Agreement
    int8_vs_torch: Agreement
    int8_vs_fp32: Agreement
    triton: dict[str, Agreement] = field(default_factory=dict)
    failures: list[str] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        """True when every bound holds."""
        return not self.failures


def run_parity(
    repository: Path,
    data_dir: Path,
    n_texts: int = 512,
    triton: Callable[[str], Embedder] | None = None,
) -> ParityReport:
    """Measure parity of ``text_encoder`` and ``text_encoder_int8`` on real texts.

    Args:
        repository: model repository holding the exported models (version 1).
        data_dir: ``Settings.data_dir`` with ``service_requests/``.
        n_texts: how many distinct real texts (seeded sample, see ``service_request_texts``).
        triton: optional factory ``model_name -> embedder`` that runs a model through Triton;
            when given, both models are compared with in-process ONNX Runtime.

    Raises:
        FileNotFoundError: a model is not exported yet, or the data is missing.
    """
    fp32_path = version_dir(repository, MODEL_NAME) / MODEL_FILE
    int8_path = version_dir(repository, INT8_MODEL_NAME) / MODEL_FILE
    for p in (fp32_path, int8_path):
        if not p.is_file():
            raise FileNotFoundError(f"{p} missing: run 'python -m wasteml_export text-encoder'")
    texts = service_request_texts(data_dir, n_texts)
    tokenizer = TextTokenizer.from_repository(repository, MODEL_NAME)
    model, _ = load_reference(EncoderSource.locate())
    reference = embed_texts(torch_embedder(model), tokenizer, texts)
    ort = {
        MODEL_NAME: embed_texts(ort_embedder(ort_session(fp32_path)), tokenizer, texts),
        INT8_MODEL_NAME: embed_texts(ort_embedder(ort_session(int8_path)), tokenizer, texts),
    }
    report = ParityReport(
        texts=len(texts),
        fp32_vs_torch=Agreement.between(ort[MODEL_NAME], reference),
        int8_vs_torch=Agreement.between(ort[INT8_MODEL_NAME], reference),
        int8_vs_fp32=Agreement.between(ort[INT8_MODEL_NAME], ort[MODEL_NAME]),
    )
    if report.fp32_vs_torch.min_cosine < FP32_MIN_COSINE:
        report.failures.append(
            f"fp32 vs torch: min cosine {report.fp32_vs_torch.min_cosine:.7f} < {FP32_MIN_COSINE}"
        )
    if triton is not None:
        for name, local in ort.items():
            served = embed_texts(triton(name), tokenizer, texts)
            agreement = Agreement.between(served, local)
            report.triton[name] = agreement
            if agreement.max_abs_diff > TRITON_MAX_ABS_DIFF:
                report.failures.append(
                    f"{name} via Triton vs ONNX Runtime: max abs diff "
                    f"{agreement.max_abs_diff:.2e} > {TRITON_MAX_ABS_DIFF:.0e}"
                )
    return report


def format_report(report: ParityReport) -> str:
    """The report as an aligned plain-text table (for the CLI)."""
    rows: list[tuple[str, Agreement]] = [
        ("onnxruntime fp32 vs torch", report.fp32_vs_torch),
        ("onnxruntime int8 vs torch", report.int8_vs_torch),
        ("onnxruntime int8 vs fp32", report.int8_vs_fp32),
    ]
    rows += [(f"triton {name} vs onnxruntime", a) for name, a in report.triton.items()]
    lines = [
        f"parity on {report.texts} real texts (Boston 311 sanitation requests)",
        f"{'comparison':<44} {'min cosine':>12} {'mean cosine':>12} {'max |diff|':>11}",
    ]
    for label, a in rows:
        lines.append(
            f"{label:<44} {a.min_cosine:>12.7f} {a.mean_cosine:>12.7f} {a.max_abs_diff:>11.2e}"
        )
    if not report.triton:
        lines.append("triton: not compared (pass --triton)")
    lines.append("PASS" if report.ok else "FAIL: " + "; ".join(report.failures))
    return "\n".join(lines)
