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
    result = subprocess.run([sys.executable, "-m", "sepgraph", "--version"], capture_output=True, text=True)
    assert result.returncode == 0 and result.stdout.startswith("sepgraph ")


BAD_FLAGS = [
    (["analyze", "--model", "resnet20", "--vertices", "0"], "--vertices must be at least 2"),
    (["analyze", "--model", "resnet20", "--edges", "-3"], "--edges -3 must be between 1"),
    (["analyze", "--model", "resnet20", "--bins", "0"], "--bins must be at least 1"),
    (["analyze", "--model", "resnet20", "--hist-samples", "1"], "--hist-samples must be 'all' or a number"),
    (["analyze", "--model", "resnet20", "--seed", "-1"], "--seed must be 0 or more"),
    (["analyze", "--model", "resnet20", "--lu-k", "0"], "--lu-k 0 must be between 1"),
    (["analyze", "--model", "resnet20", "--lu-batch-size", "1"], "batches of at least 2 samples"),
    (["analyze", "--model", "resnet20", "--lu-batches", "0"], "--lu-batches 0"),
    (["analyze", "--model", "resnet20", "--batch-size", "0"], "--batch-size must be at least 1"),
    (["analyze", "--model", "resnet20", "--tile-rows", "0"], "--tile-rows must be at least 1"),
    (["analyze", "--model", "resnet20", "--dpi", "0"], "--dpi must be at least 1"),
    (["analyze", "--model", "resnet20", "--ring-edges", "0"], "--ring-edges must be at least 1"),
    (["analyze", "--model", "resnet20", "--image-size", "0"], "--image-size must be at least 1"),
    (["analyze", "--model", "resnet20", "--num-classes", "0"], "num_classes must be at least 1"),
    (["eval", "--model", "resnet20", "--batch-size", "0"], "--batch-size must be at least 1"),
    (["points", "resnet20", "--input-size", "0"], "--input-size must be at least 1"),
    (["train", "--model", "resnet20", "--epochs", "0"], "--epochs must be at least 1"),
    (["train", "--model", "resnet20", "--momentum", "-1"], "--momentum -1.0"),
    (["train", "--model", "resnet20", "--weight-decay", "-1"], "--weight-decay -1.0"),
    (["train", "--model", "resnet20", "--gamma", "0"], "--gamma 0.0"),
    (["train", "--model", "resnet20", "--lr", "nan"], "--lr nan"),
    (["report", "folder", "--tau", "nan"], "tau must be a finite number"),
    (["analyze", "--model", "resnet20", "--tau", "-1"], "tau must be a finite number"),
    (["train", "--model", "resnet20", "--milestones", "5,x"], "--milestones must be comma-separated"),
    (["prune", "folder", "--train-data", "digits:train", "--head-epochs", "-1"], "--head-epochs"),
    (["prune", "folder", "--train-data", "digits:train", "--model", "resnet20", "--edges", "0"], "--edges 0"),
]


@pytest.mark.parametrize("argv, message", BAD_FLAGS, ids=[" ".join(argv) for argv, _ in BAD_FLAGS])
def test_every_bad_flag_value_is_one_line(capsys, tmp_path, monkeypatch, argv, message):
    monkeypatch.chdir(tmp_path)  # nothing may be written before the error, and nowhere that matters
    assert main(argv) == 2
    err = capsys.readouterr().err
    assert err.startswith("sepgraph: error: ") and message in err and err.count("\n") == 1, err
    assert not (tmp_path / "results").exists() and not (tmp_path / "folder").exists()


@pytest.mark.parametrize("argv", [["analyze", "--model", "resnet20", "--max-memory", "lots"],
                                  ["analyze", "--model", "resnet20", "--max-memory", "-2G"],
                                  ["analyze", "--model", "resnet20", "--vertices", "many"],
                                  ["analyze", "--model", "resnet20", "--timeout", "0"],
                                  ["prune", "f", "--train-data", "digits", "--rule", "plateau=-1"],
                                  ["prune", "f", "--train-data", "digits", "--rule", "knee"]])
def test_unreadable_flag_values_are_argparse_errors_without_traceback(capsys, argv):
    with pytest.raises(SystemExit) as exit_info:
        main(argv)
    err = capsys.readouterr().err
    assert exit_info.value.code == 2 and "Traceback" not in err
    assert err.strip().splitlines()[-1].startswith(f"sepgraph {argv[0]}: error: argument")
