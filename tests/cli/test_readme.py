"""Every `sepgraph` command in the README parses as written (nothing is run)."""

import re
import shlex
from pathlib import Path

import pytest

from sepgraph.cli import build_parser
from sepgraph.cli.main import HANDLERS

README = Path(__file__).resolve().parents[2] / "README.md"


def readme_commands() -> list[str]:
    blocks = re.findall(r"```([a-z]*)\n(.*?)```", README.read_text(), flags=re.S)
    blocks = [body for language, body in blocks if language in ("", "sh", "bash")]
    text = "\n".join(blocks).replace("\\\n", " ")
    lines = [line.split("#")[0].strip() for line in text.splitlines()]
    launched = ["sepgraph " + line.split(" -m sepgraph ", 1)[1] for line in lines
                if line.startswith("torchrun ") and " -m sepgraph " in line]  # torchrun ... -m sepgraph ARGS
    return [line for line in lines if line.startswith("sepgraph ")] + launched


def test_readme_has_the_workflows():
    commands = " ".join(readme_commands())
    for command in ("demo", "eval", "analyze", "report", "train", "prune", "models", "points"):
        assert f"sepgraph {command}" in commands


@pytest.mark.parametrize("command", readme_commands())
def test_readme_command_parses(command):
    args = build_parser().parse_args(shlex.split(command)[1:])
    assert args.command in HANDLERS


def test_readme_starts_with_the_two_commands():
    head = README.read_text().splitlines()[:6]
    assert any(line.startswith("make demo") for line in head) and any(line.startswith("make test") for line in head)
