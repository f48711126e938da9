"""Fixtures of the export tests: the exported text encoders in the real model repository."""

from __future__ import annotations

import pytest
from export_testutils import DATA_DIR, MODEL_REPOSITORY

from wasteml_export.text_encoder import ExportResult, export_text_encoder


@pytest.fixture(scope="session")
def exported() -> ExportResult:
    """``text_encoder`` and ``text_encoder_int8`` exported into model_repository/ (the export is
    idempotent: when the files there are fresh this only hashes them, about a second)."""
    if not (DATA_DIR / "service_requests").is_dir():
        pytest.skip(f"real data missing under {DATA_DIR}")
    return export_text_encoder(MODEL_REPOSITORY, DATA_DIR)
