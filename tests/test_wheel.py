"""The wheel (python -m build --no-isolation) installs into a fresh virtual environment and runs; without torch,
importing it says which torch to install; its version is the package metadata's everywhere."""

import importlib.metadata
import subprocess
import sys
from pathlib import Path

import torch
import torchvision

import sepgraph
from sepgraph.cli import main

ROOT = Path(__file__).parents[1]


def test_the_version_is_the_metadata(capsys):
    try:
        main(["--version"])
    except SystemExit:
        pass
    assert capsys.readouterr().out.strip() == f"sepgraph {importlib.metadata.version('sepgraph')}"
    assert sepgraph.__version__ == importlib.metadata.version("sepgraph")


def run(*command, check=True):
    return subprocess.run([str(part) for part in command], capture_output=True, text=True, check=check,
                          timeout=900)


def test_the_wheel_installs_and_runs_in_a_fresh_venv(tmp_path):
    run(sys.executable, "-m", "build", "--no-isolation", "--wheel", "--outdir", tmp_path / "dist", ROOT)
    wheel = next((tmp_path / "dist").glob("sepgraph-*.whl"))
    assert wheel.name.startswith(f"sepgraph-{sepgraph.__version__}-")
    run(sys.executable, "-m", "venv", tmp_path / "venv")
    python, script = tmp_path / "venv" / "bin" / "python", tmp_path / "venv" / "bin" / "sepgraph"
    run(python, "-m", "pip", "install", "--quiet", "--no-deps", wheel)
    missing = run(python, "-c", "import sepgraph", check=False)
    assert missing.returncode != 0
    assert missing.stderr.strip().splitlines()[-1].startswith("ImportError: sepgraph needs PyTorch, which is not "
                                                              "installed in this Python: pip install 'torch>=2.1'")
    # this machine's torch build, from its local package files (about a minute), then the wheel's other needs
    builds = [f"{module.__name__}=={module.__version__.split('+')[0]}" for module in (torch, torchvision)]
    run(python, "-m", "pip", "install", "--quiet", *builds, wheel)
    assert run(script, "--version").stdout.strip() == f"sepgraph {sepgraph.__version__}"
    out = tmp_path / "analysis"
    run(script, "analyze", "--model", "resnet20", "--data", "digits:all", "--normalize", "none", "--vertices", "100",
        "--edges", "300", "--hist-samples", "200", "--lu-batch-size", "50", "--lu-batches", "2", "--no-report",
        "--out", out)
    assert (out / "layers.csv").read_text().count("\n") == 1 + 19
