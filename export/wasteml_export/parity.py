"""Parity of the exported text encoders on real service-request texts (in-process only).

Compares, on the same token batches (length-bucketed, as the server sends them):

- fp32 ONNX Runtime vs the torch reference (same pooling): every text's cosine must be
  >= :data:`~wasteml_export.text_encoder.FP32_MIN_COSINE` (0.9999, issue 3);
- INT8 ONNX Runtime vs the torch reference and vs fp32: minimum and mean cosine, reported.

The comparison through a running Triton (served outputs vs in-process ONNX Runtime) needs the
server's Triton and lives in the tools: ``wasteml export parity --triton``
(:mod:`wasteml_tools.export.parity`).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

from wasteml_export.text_encoder import (
    FP32_MIN_COSINE,
    Agreement,
    EncoderSource,
    embed_texts,
    encoder_signature,
    load_reference,
    onnxruntime_embedder,
    service_request_texts,
    torch_embedder,
)
from wasteml_models import TEXT_ENCODER, TEXT_ENCODER_INT8
from wasteml_models.tokenizer import TextTokenizer


@dataclass
class ParityReport:
    """Parity figures; ``ok`` is False when a required bound is missed.

    Attributes:
        texts: number of real texts compared.
        fp32_vs_torch: fp32 ONNX Runtime vs torch.
        int8_vs_torch: INT8 ONNX Runtime vs torch.
        int8_vs_fp32: INT8 vs fp32 ONNX Runtime.
        failures: human-readable reasons for ``ok == False``.
    """

    texts: int
    fp32_vs_torch: Agreement
    int8_vs_torch: Agreement
    int8_vs_fp32: Agreement
    failures: list[str] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        """True when every bound holds."""
        return not self.failures

    def rows(self) -> list[tuple[str, Agreement]]:
        """``(label, agreement)`` per comparison, in report order."""
        return [
            ("onnxruntime fp32 vs torch", self.fp32_vs_torch),
            ("onnxruntime int8 vs torch", self.int8_vs_torch),
            ("onnxruntime int8 vs fp32", self.int8_vs_fp32),
        ]


def run_parity(repository: Path, data_dir: Path, n_texts: int = 512) -> ParityReport:
    """Measure parity of ``text_encoder`` and ``text_encoder_int8`` on real texts.

    Args:
        repository: model repository holding the exported models (version 1) and their
            committed ``config.pbtxt``.
        data_dir: real data directory with ``service_requests/``.
        n_texts: how many distinct real texts (seeded sample, see ``service_request_texts``).

    Raises:
        FileNotFoundError: a model is not exported yet, or the data is missing.
    """
    ort = {
        name: onnxruntime_embedder(repository, name) for name in (TEXT_ENCODER, TEXT_ENCODER_INT8)
    }
    texts = service_request_texts(data_dir, n_texts)
    tokenizer = TextTokenizer.from_repository(repository, TEXT_ENCODER)
    model, _ = load_reference(EncoderSource.locate(), encoder_signature(repository))
    reference = embed_texts(torch_embedder(model), tokenizer, texts)
    local = {name: embed_texts(run, tokenizer, texts) for name, run in ort.items()}
    report = ParityReport(
        texts=len(texts),
        fp32_vs_torch=Agreement.between(local[TEXT_ENCODER], reference),
        int8_vs_torch=Agreement.between(local[TEXT_ENCODER_INT8], reference),
        int8_vs_fp32=Agreement.between(local[TEXT_ENCODER_INT8], local[TEXT_ENCODER]),
    )
    if report.fp32_vs_torch.min_cosine < FP32_MIN_COSINE:
        report.failures.append(
            f"fp32 vs torch: min cosine {report.fp32_vs_torch.min_cosine:.7f} < {FP32_MIN_COSINE}"
        )
    return report


def format_rows(rows: list[tuple[str, Agreement]]) -> list[str]:
    """Comparison rows as aligned plain-text lines (no header)."""
    return [
        f"{label:<44} {a.min_cosine:>12.7f} {a.mean_cosine:>12.7f} {a.max_abs_diff:>11.2e}"
        for label, a in rows
    ]


def format_report(
    report: ParityReport,
    extra_rows: list[tuple[str, Agreement]] | None = None,
    extra_failures: list[str] | None = None,
) -> str:
    """The report as an aligned plain-text table (for the CLI).

    Args:
        report: the in-process figures.
        extra_rows: further comparisons to list under them (e.g. through Triton); when None,
            the table says Triton was not compared.
        extra_failures: failures of those comparisons; any of them makes the verdict FAIL.
    """
    failures = report.failures + list(extra_failures or ())
    lines = [
        f"parity on {report.texts} real texts (Boston 311 sanitation requests)",
        f"{'comparison':<44} {'min cosine':>12} {'mean cosine':>12} {'max |diff|':>11}",
        *format_rows(report.rows() + list(extra_rows or ())),
    ]
    if extra_rows is None:
        lines.append("triton: not compared (wasteml export parity --triton)")
    lines.append("PASS" if not failures else "FAIL: " + "; ".join(failures))
    return "\n".join(lines)
