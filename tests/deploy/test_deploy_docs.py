"""docs/DEPLOYMENT.md: the one place where the WASTEML_* variables are documented matches the
Settings class, and the Triton/TensorRT statements match the pinned images."""

from __future__ import annotations

import re
import sys

from deploy_helpers import COMPOSE_FILE, REPO_ROOT

sys.path.insert(0, str(REPO_ROOT / "deploy"))
import settings_table  # noqa: E402

from wasteml_server.core.settings import Settings  # noqa: E402

DOC = REPO_ROOT / "docs" / "DEPLOYMENT.md"


def test_deploy_docs_settings_table_up_to_date() -> None:
    """The committed table equals the one generated from Settings (run deploy/settings_table.py --write)."""
    assert settings_table.current(DOC.read_text()) == settings_table.render(), (
        "docs/DEPLOYMENT.md is out of date: run `.venv/bin/python deploy/settings_table.py --write`"
    )


def test_deploy_docs_settings_table_lists_every_field() -> None:
    """Every Settings field has exactly one row, with its docstring as the meaning."""
    rows = [r for r in settings_table.current(DOC.read_text()).splitlines() if r.startswith("| `WASTEML_")]
    names = [re.match(r"\| `WASTEML_([A-Z0-9_]+)`", r).group(1).lower() for r in rows]
    assert names == list(Settings.model_fields)
    for row, (name, field) in zip(rows, Settings.model_fields.items(), strict=True):
        assert field.description, f"Settings.{name} has no docstring"
        assert " ".join(field.description.split())[:40].replace("|", "\\|") in row


def test_deploy_docs_triton_tag_matches_compose() -> None:
    """The doc's pinned Triton image is the compose file's, and it names its TensorRT version."""
    image = re.search(r"image: (nvcr\.io/nvidia/tritonserver:\S+)", COMPOSE_FILE.read_text()).group(1)
    row = next(line for line in DOC.read_text().splitlines() if f"`{image}` (pinned)" in line)
    assert re.search(r"\| \d+\.\d+\.\d+(\.\d+)? \|", row), row
