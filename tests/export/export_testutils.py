"""Paths shared by the export tests (a module of its own: ``conftest`` names are ambiguous)."""

from __future__ import annotations

from pathlib import Path

REPO_ROOT = Path(__file__).resolve().parents[2]
MODEL_REPOSITORY = REPO_ROOT / "model_repository"
DATA_DIR = REPO_ROOT.parent / "shared" / "data"
TRITON_ENV = REPO_ROOT / ".venv-triton"
