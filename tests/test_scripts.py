"""Every script of examples/ and benchmarks/ starts and prints its help, so a broken import cannot hide there."""

import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
SCRIPTS = sorted(path for folder in ("examples", "benchmarks") for path in (ROOT / folder).glob("*.py")
                 if path.name != "common.py")


@pytest.mark.parametrize("script", SCRIPTS, ids=lambda path: f"{path.parent.name}/{path.name}")
def test_script_prints_its_help(script):
    result = subprocess.run([sys.executable, str(script), "--help"], capture_output=True, text=True, cwd=ROOT,
                            timeout=120)
    assert result.returncode == 0, result.stderr
    assert "usage:" in result.stdout


def test_the_gpu_check_says_so_in_one_line_and_exits_0_without_cuda():
    import torch

    if torch.cuda.is_available():
        pytest.skip("a CUDA device is here: run benchmarks/gpu_check.sh itself (minutes)")
    result = subprocess.run(["bash", str(ROOT / "benchmarks" / "gpu_check.sh")], capture_output=True, text=True,
                            cwd=ROOT, timeout=120, env={"PATH": "/usr/bin:/bin", "PYTHON": sys.executable})
    assert result.returncode == 0, result.stderr
    assert result.stdout.splitlines() == ["gpu_check: no CUDA device here (torch.cuda.is_available() is False); "
                                          "nothing to check"]
