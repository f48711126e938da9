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


def _limit_rows() -> list[tuple[str, list[str]]]:
    text = DOC.read_text()
    section = text[text.index("## Limits"):text.index("## Settings")]
    rows = []
    for line in section.splitlines():
        cells = [c.strip() for c in line.strip().strip("|").split("|")]
        if len(cells) == 4 and "WASTEML_" in cells[2]:
            rows.append((cells[1], re.findall(r"`(WASTEML_[A-Z0-9_]+)`", cells[2])))
    return rows


def test_deploy_docs_limits_match_the_settings() -> None:
    """Every setting the Limits section names exists, and where a row gives one number per
    setting, each number is that setting's default."""
    rows = _limit_rows()
    assert len(rows) >= 15
    fields = Settings.model_fields
    checked = 0
    for limit, names in rows:
        for name in names:
            assert name.removeprefix("WASTEML_").lower() in fields, name
        numbers = [n.strip() for n in limit.split("/")]
        if len(numbers) == len(names) and all(re.fullmatch(r"\d+(\.\d+)?", n) for n in numbers):
            for name, number in zip(names, numbers, strict=True):
                default = fields[name.removeprefix("WASTEML_").lower()].default
                assert float(number) == float(default), f"{name}: doc says {number}, default is {default}"
                checked += 1
    assert checked >= 25


def test_deploy_docs_limits_list_every_limit_setting() -> None:
    """Every setting of the Limits sections of Settings appears in the Limits table."""
    named = {n for _, names in _limit_rows() for n in names}
    source = (REPO_ROOT / "server" / "wasteml_server" / "core" / "settings.py").read_text()
    limit_fields = set()
    for block in source.split("# --- Limits:")[1:]:
        block = block.split("# ---")[0]
        limit_fields |= set(re.findall(r"^    ([a-z_]+): [^=\n]+ = ", block, flags=re.M))
    assert limit_fields
    missing = sorted(f"WASTEML_{f.upper()}" for f in limit_fields - {"reflection"}
                     if f"WASTEML_{f.upper()}" not in named)
    assert not missing, f"limits not in docs/DEPLOYMENT.md's Limits table: {missing}"
