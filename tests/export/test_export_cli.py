"""The export commands: `python -m wasteml_export` stands alone with explicit paths, and
`wasteml export` runs the same functions with the settings' paths (plus parity and bench)."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest
from export_testutils import DATA_DIR, MODEL_REPOSITORY, REPO_ROOT
from typer.testing import CliRunner

from wasteml_export import cli as export_cli
from wasteml_models import TEXT_ENCODER, TEXT_ENCODER_INT8
from wasteml_models.config import CONFIG_FILE, load_model_config
from wasteml_tools.cli import app

EXPORT_MODULES = ("cli", "text_encoder", "parity", "bench", "tensorrt", "lightgbm", "minilm")


def _settings_env(**extra: str) -> dict[str, str]:
    return {
        "WASTEML_MODEL_REPOSITORY": str(MODEL_REPOSITORY),
        "WASTEML_DATA_DIR": str(DATA_DIR),
        "WASTEML_LOG_LEVEL": "WARNING",
        **extra,
    }


def test_export_package_loads_no_server_or_tools_module() -> None:
    """Importing every export module (and running the module CLI's --help) loads nothing of
    wasteml_server or wasteml_tools."""
    code = (
        "import sys\n"
        + "".join(f"import wasteml_export.{m}\n" for m in EXPORT_MODULES)
        + "from wasteml_export.cli import main\n"
        "try:\n    main(['text-encoder', '--help'])\nexcept SystemExit:\n    pass\n"
        "print(sorted(m for m in sys.modules if m.split('.')[0] in ('wasteml_server', 'wasteml_tools')))\n"
    )
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                            timeout=120, cwd=REPO_ROOT)
    assert result.returncode == 0, result.stderr[-2000:]
    assert result.stdout.strip().splitlines()[-1] == "[]"


def test_module_cli_has_the_pure_commands_with_checkout_defaults() -> None:
    """text-encoder and tensorrt default to model_repository and ../shared/data (relative to the
    working directory, as the settings default them); parity and bench are not module commands."""
    parser = export_cli.build_parser()
    for command in ("text-encoder", "tensorrt"):
        args = parser.parse_args([command])
        assert args.repository == Path("model_repository")
        assert args.data_dir == Path("../shared/data")
        assert args.force is False
    for command in ("parity", "bench"):
        with pytest.raises(SystemExit):
            parser.parse_args([command])


@pytest.mark.parametrize("command", ["text-encoder", "tensorrt"])
def test_both_clis_run_the_same_function(command: str, monkeypatch, tmp_path: Path) -> None:
    """`python -m wasteml_export <command>` and `wasteml export <command>` call the one function
    of wasteml_export.cli: the first with its arguments, the second with the settings' paths."""
    calls: list[tuple[Path, Path, bool]] = []

    def record(repository: Path, data_dir: Path, force: bool = False) -> int:
        calls.append((Path(repository), Path(data_dir), force))
        return 3

    monkeypatch.setattr(export_cli, command.replace("-", "_"), record)
    assert export_cli.main([command, "--repository", "r", "--data-dir", "d", "--force"]) == 3
    env = _settings_env(WASTEML_MODEL_REPOSITORY=str(tmp_path / "repo"),
                        WASTEML_DATA_DIR=str(tmp_path / "data"))
    result = CliRunner().invoke(app, ["export", command], env=env)
    assert result.exit_code == 3, result.output
    assert calls == [(Path("r"), Path("d"), True), (tmp_path / "repo", tmp_path / "data", False)]


def test_wasteml_export_parity_prints_pass_without_triton(exported) -> None:
    """`wasteml export parity --texts 16` (no --triton) prints the in-process table and PASS."""
    result = CliRunner().invoke(app, ["export", "parity", "--texts", "16"], env=_settings_env())
    assert result.exit_code == 0, result.output
    assert "parity on 16 real texts" in result.output
    assert "onnxruntime fp32 vs torch" in result.output and "triton: not compared" in result.output
    assert result.output.rstrip().endswith("PASS")


def test_wasteml_export_bench_in_process_writes_the_table(exported, tmp_path: Path) -> None:
    """`wasteml export bench --no-triton` measures both encoders in-process and writes the table."""
    out = tmp_path / "bench.md"
    result = CliRunner().invoke(
        app,
        ["export", "bench", "--no-triton", "--seconds", "0.05", "--batch", "1", "--batch", "8",
         "--output", str(out)],
        env=_settings_env(),
    )
    assert result.exit_code == 0, result.output
    rows = [line for line in out.read_text().splitlines() if line.startswith("| in-process ORT")]
    assert [row.split(" | ")[1:3] for row in rows] == [
        [TEXT_ENCODER, "1"], [TEXT_ENCODER, "8"], [TEXT_ENCODER_INT8, "1"], [TEXT_ENCODER_INT8, "8"]
    ]
    assert "Tokenisation (not timed above)" in out.read_text()
    assert "triton" not in out.read_text()


def test_bench_repository_adds_copies_without_dynamic_batching(exported, tmp_path: Path) -> None:
    """The Triton bench repository serves each encoder as configured and as `<name>_nodb`
    without dynamic_batching, both on the exported version folder."""
    from wasteml_tools.export.bench import NO_DB_SUFFIX, bench_repository

    names = bench_repository(MODEL_REPOSITORY, tmp_path)
    assert names == [TEXT_ENCODER, TEXT_ENCODER + NO_DB_SUFFIX,
                     TEXT_ENCODER_INT8, TEXT_ENCODER_INT8 + NO_DB_SUFFIX]
    for name in names:
        model = name.removesuffix(NO_DB_SUFFIX)
        config = load_model_config(tmp_path / name / CONFIG_FILE)
        production = load_model_config(MODEL_REPOSITORY / model / CONFIG_FILE)
        assert config.name == name
        assert config.HasField("dynamic_batching") == (name == model)
        assert list(config.output) == list(production.output)
        assert (tmp_path / name / "1").resolve() == (MODEL_REPOSITORY / model / "1").resolve()
