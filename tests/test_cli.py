import json
import subprocess
import sys

import pytest

from sepgraph import list_models
from sepgraph.cli import main


def test_help_lists_the_commands(capsys):
    with pytest.raises(SystemExit) as exit_info:
        main(["--help"])
    assert exit_info.value.code == 0
    out = capsys.readouterr().out
    for command in ("models", "points", "eval"):
        assert command in out


def test_models_lists_every_zoo_model_with_counts(capsys):
    assert main(["models"]) == 0
    lines = capsys.readouterr().out.splitlines()
    rows = {line.split()[0]: line.split() for line in lines[1:] if line and line.split()[0] in list_models()}
    assert set(rows) == set(list_models())
    assert rows["resnet56"][2:] == ["853,018", "55", "28", "28"]
    assert rows["resnet18"][2:] == ["11,173,962", "17", "9", "9"]


def test_points_prints_names_and_dims(capsys):
    assert main(["points", "resnet56", "--convention", "lu2022"]) == 0
    out = capsys.readouterr().out
    assert "28 layer points" in out
    assert "stem.conv" in out and "layer3.8" in out and "16x32x32" in out


def test_points_of_a_torchvision_model_with_explicit_modules(capsys):
    assert main(["points", "torchvision:resnet18", "--points", "layer1,layer2.0.relu:1", "--input-size", "64"]) == 0
    out = capsys.readouterr().out
    assert "2 layer points (explicit list)" in out and "128x8x8" in out


def test_eval_on_embedded_digits(capsys):
    assert main(["eval", "--model", "resnet20", "--data", "digits", "--normalize", "none", "--json"]) == 0
    result = json.loads(capsys.readouterr().out)
    assert result["total"] == 364 and 0 <= result["accuracy"] <= 100
    assert result["correct"] == round(result["accuracy"] * result["total"] / 100)


@pytest.mark.parametrize("argv, message", [
    (["eval", "--model", "resnet57"], "unknown model 'resnet57'"),
    (["eval", "--model", "resnet20", "--data", "npz:/absent.npz"], "does not exist"),
    (["eval", "--model", "resnet20", "--weights", "/absent.pt"], "does not exist"),
    (["eval", "--model", "resnet20", "--device", "cuda:7"], "cuda:7"),
    (["points", "resnet20", "--points", "layer9"], "unknown layer 'layer9'"),
])
def test_errors_print_one_line_and_exit_2(capsys, argv, message):
    assert main(argv) == 2
    err = capsys.readouterr().err
    assert err.startswith("sepgraph: error: ") and message in err and "Traceback" not in err


def test_console_script_entry_point():
    result = subprocess.run([sys.executable, "-m", "sepgraph.cli", "--version"], capture_output=True, text=True)
    assert result.returncode == 0 and result.stdout.startswith("sepgraph ")
