"""Parity of the text encoders through a running Triton vs in-process ONNX Runtime.

Each model (``text_encoder``, ``text_encoder_int8``) embeds the same real texts, on the same
token batches, through Triton (KServe v2 gRPC) and through in-process ONNX Runtime; the largest
absolute difference must be <= :data:`TRITON_MAX_ABS_DIFF`. The in-process figures (fp32 and
INT8 vs the torch reference) are :func:`wasteml_export.parity.run_parity`'s;
:func:`check_parity` is ``wasteml export parity``: both in one table.
"""

from __future__ import annotations

import tempfile
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

from wasteml_export.parity import format_report, run_parity
from wasteml_export.text_encoder import (
    Agreement,
    Embedder,
    embed_texts,
    onnxruntime_embedder,
    service_request_texts,
)
from wasteml_models import TEXT_ENCODER, TEXT_ENCODER_INT8
from wasteml_models.tokenizer import TextTokenizer
from wasteml_server.core.settings import Settings
from wasteml_tools.export.triton_embed import TritonEmbedders

#: Through Triton, outputs must equal in-process ONNX Runtime within this (issue 3).
TRITON_MAX_ABS_DIFF = 1e-5


@dataclass
class TritonParity:
    """Served vs in-process outputs per model; ``ok`` is False when a bound is missed.

    Attributes:
        texts: number of real texts compared.
        agreements: model name -> Triton vs in-process ONNX Runtime.
        failures: human-readable reasons for ``ok == False``.
    """

    texts: int
    agreements: dict[str, Agreement] = field(default_factory=dict)
    failures: list[str] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        """True when every model is within :data:`TRITON_MAX_ABS_DIFF`."""
        return not self.failures

    def rows(self) -> list[tuple[str, Agreement]]:
        """``(label, agreement)`` rows for :func:`wasteml_export.parity.format_report`."""
        return [(f"triton {name} vs onnxruntime", a) for name, a in self.agreements.items()]


def run_triton_parity(
    repository: Path,
    data_dir: Path,
    served: Callable[[str], Embedder],
    n_texts: int = 512,
    models: tuple[str, ...] = (TEXT_ENCODER, TEXT_ENCODER_INT8),
) -> TritonParity:
    """Compare each model through ``served`` with in-process ONNX Runtime on real texts.

    Args:
        repository: model repository with the exported models (the one Triton serves).
        data_dir: real data directory with ``service_requests/``.
        served: ``model name -> embedder`` through the server (``TritonEmbedders.embedder``).
        n_texts: how many distinct real texts (seeded sample).
        models: the models to compare.

    Raises:
        FileNotFoundError: a model is not exported yet, or the data is missing.
    """
    texts = service_request_texts(data_dir, n_texts)
    tokenizer = TextTokenizer.from_repository(repository, TEXT_ENCODER)
    result = TritonParity(texts=len(texts))
    for name in models:
        local = embed_texts(onnxruntime_embedder(repository, name), tokenizer, texts)
        agreement = Agreement.between(embed_texts(served(name), tokenizer, texts), local)
        result.agreements[name] = agreement
        if agreement.max_abs_diff > TRITON_MAX_ABS_DIFF:
            result.failures.append(
                f"{name} via Triton vs ONNX Runtime: max abs diff "
                f"{agreement.max_abs_diff:.2e} > {TRITON_MAX_ABS_DIFF:.0e}"
            )
    return result


def check_parity(settings: Settings, n_texts: int = 512, triton: bool = False) -> tuple[str, bool]:
    """``wasteml export parity``: the parity table and whether every bound holds.

    Args:
        settings: ``model_repository`` and ``data_dir`` locate the models and texts; with
            ``triton``, the Triton settings start the local Triton (or use ``triton_url``).
        n_texts: real texts to compare.
        triton: also compare through Triton.

    Returns:
        ``(table, ok)``: the table of :func:`wasteml_export.parity.format_report` (Triton rows
        added when compared) and False when a bound is missed.
    """
    repository, data_dir = settings.model_repository, settings.data_dir
    report = run_parity(repository, data_dir, n_texts)
    if not triton:
        return format_report(report), report.ok
    # The rendered CPU repository goes to a private var dir: a server using var/ is untouched.
    with tempfile.TemporaryDirectory(prefix="wasteml-parity-") as var_dir:
        local = settings.model_copy(update={"var_dir": Path(var_dir)})
        with TritonEmbedders(local) as embedders:
            served = run_triton_parity(repository, data_dir, embedders.embedder, n_texts)
    table = format_report(report, served.rows(), served.failures)
    return table, report.ok and served.ok
