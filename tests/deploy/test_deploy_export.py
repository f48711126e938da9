"""The one-shot model steps of the compose stack call commands that exist, with options they accept."""

from __future__ import annotations

import json
import re
import shlex
import subprocess
import sys

import pytest
from deploy_helpers import REPO_ROOT

from wasteml_export.cli import build_parser

SCRIPT = REPO_ROOT / "deploy" / "export_models.sh"


def _python_commands() -> list[list[str]]:
    commands = []
    for line in SCRIPT.read_text().splitlines():
        line = line.strip()
        if line.startswith(("python -m ", "wasteml ")):
            commands.append(shlex.split(line))
    return commands


def test_deploy_export_script_syntax() -> None:
    """deploy/export_models.sh parses as POSIX sh and exits on the first failing step."""
    assert subprocess.run(["sh", "-n", str(SCRIPT)], capture_output=True).returncode == 0
    assert re.search(r"^set -eu$", SCRIPT.read_text(), re.M)


@pytest.mark.parametrize("command", _python_commands(), ids=lambda c: " ".join(c[:4]))
def test_deploy_export_commands_accept_their_options(command: list[str]) -> None:
    """Each step's command exists (its --help runs) and lists every option the script passes."""
    if command[0] == "python":
        prefix, rest = [sys.executable, "-m", command[2]], command[3:]
    else:
        prefix, rest = [sys.executable, "-c", "from wasteml_tools.cli import app; app()"], command[1:]
    positional = [a for a in rest if not a.startswith(("-", "$"))]
    options = [a.split("=")[0] for a in rest if a.startswith("--")]
    result = subprocess.run([*prefix, *positional, "--help"], capture_output=True, text=True, timeout=120,
                            cwd=REPO_ROOT)
    assert result.returncode == 0, result.stderr[-2000:]
    for option in options:
        assert option in result.stdout, f"{' '.join(command)}: {option} is not an option"


def test_deploy_tensorrt_step_command() -> None:
    """The tensorrt-build service's command is a `python -m wasteml_export` subcommand with its options."""
    result = subprocess.run([sys.executable, "-m", "wasteml_export", "tensorrt", "--help"],
                            capture_output=True, text=True, timeout=120, cwd=REPO_ROOT)
    assert result.returncode == 0, result.stderr[-2000:]
    for option in ("--repository", "--data-dir"):
        assert option in result.stdout


def _tensorrt_stage(keyword: str) -> list[str]:
    """The JSON-form ENTRYPOINT or CMD of the Dockerfile's ``tensorrt`` stage."""
    text = (REPO_ROOT / "Dockerfile").read_text()
    stage = re.split(r"^FROM ", text.split(" AS tensorrt\n", 1)[1], maxsplit=1, flags=re.M)[0]
    match = re.search(rf"^{keyword} (\[.*\])$", stage, re.M)
    assert match, f"the tensorrt stage has no JSON-form {keyword}"
    return json.loads(match.group(1))


def test_deploy_tensorrt_step_passes_the_volume_paths(compose_config: dict) -> None:
    """The pure export CLI reads no settings: the tensorrt image's default command and the
    tensorrt-build service's command both name the mounted model and data volumes."""
    assert _tensorrt_stage("ENTRYPOINT") == ["python3", "-m", "wasteml_export"]
    service = compose_config["services"]["tensorrt-build"]
    mounts = {v["target"] for v in service["volumes"]}
    for argv in (_tensorrt_stage("CMD"), service["command"]):
        args = build_parser().parse_args(argv)
        assert args.command == "tensorrt"
        assert {str(args.repository), str(args.data_dir)} <= mounts
        assert (str(args.repository), str(args.data_dir)) == ("/models", "/data")
