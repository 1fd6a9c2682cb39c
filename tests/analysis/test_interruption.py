"""Analyses as separate processes: one killed with SIGKILL mid-way resumes and ends exactly like an
uninterrupted run; concurrent runs in separate folders agree; a shared folder is refused."""

import json
import os
import signal
import subprocess
import sys
import time

import numpy as np
import pytest

from engines import ENGINES
from sepgraph.cli import main

ARGS = ["analyze", "--model", "resnet20", "--data", "digits:all", "--normalize", "none", "--vertices", "300",
        "--edges", "1500", "--lu-batch-size", "100", "--lu-batches", "3", "--max-memory", "200M", "--no-report"]


@pytest.mark.parametrize("gemm", ENGINES)
def test_kill_and_resume(tmp_path, gemm):
    args = [*ARGS, "--gemm", gemm]
    killed = tmp_path / "killed"
    process = subprocess.Popen([sys.executable, "-m", "sepgraph", *args, "--out", str(killed)],
                               stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline and process.poll() is None:
        if len(list((killed / "rows").glob("*.json"))) >= 3:
            break
        time.sleep(0.01)
    assert process.poll() is None, "the analysis ended before it could be killed"
    os.kill(process.pid, signal.SIGKILL)
    process.wait()
    done_before = len(list((killed / "rows").glob("*.json")))
    assert process.returncode == -signal.SIGKILL and 3 <= done_before < 19
    assert not (killed / "layers.csv").exists()

    assert main([*args, "--out", str(killed), "--resume"]) == 0
    straight = tmp_path / "straight"
    assert main([*args, "--out", str(straight)]) == 0
    assert (killed / "layers.csv").read_bytes() == (straight / "layers.csv").read_bytes()
    assert (killed / "depth.csv").read_bytes() == (straight / "depth.csv").read_bytes()
    assert (killed / "cka_matrix.csv").read_bytes() == (straight / "cka_matrix.csv").read_bytes()
    assert not (killed / ".grams").exists()  # the Grams kept for the matrix go once it is written
    assert not list(killed.rglob("*.tmp"))
    for edges in (straight / "edges").glob("*.npz"):
        with np.load(edges) as a, np.load(killed / "edges" / edges.name) as b:
            assert all(np.array_equal(a[k], b[k]) for k in a.files)


@pytest.mark.parametrize("gemm", ENGINES)
def test_concurrent_runs_need_separate_folders(tmp_path, capsys, gemm):
    args = [*ARGS, "--gemm", gemm]
    first, second = tmp_path / "first", tmp_path / "second"
    processes = [subprocess.Popen([sys.executable, "-m", "sepgraph", *args, "--out", str(out)],
                                  stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL) for out in (first, second)]
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline and not list((first / "rows").glob("*.json")):
        time.sleep(0.01)
    assert processes[0].poll() is None, "the first analysis ended before a second one could aim at its folder"
    assert main([*args, "--out", str(first), "--resume"]) != 0
    assert "is in use by another sepgraph analysis" in capsys.readouterr().err
    assert [process.wait(timeout=300) for process in processes] == [0, 0]
    assert (first / "layers.csv").read_bytes() == (second / "layers.csv").read_bytes()


def running_manifest():
    """The smallest manifest of a running analysis."""
    from sepgraph import GraphSettings
    from sepgraph.results.manifest import Manifest, Parameters, RunRecord

    parameters = Parameters("features", None, None, "features", None, "none", "explicit", ("a",),
                            GraphSettings(vertices=20, edges=10), 2, None)
    return Manifest("0", "now", "running", parameters, "samples", ["0", "1"], None, 0,
                    RunRecord("cpu", 1, None, None, 1, 1, 1), {})


def test_a_stop_request_while_a_failure_is_recorded_leaves_the_failure_recorded(tmp_path, monkeypatch):
    """torchrun sends SIGTERM to the other ranks when one dies, often while rank 0 is recording its failure."""
    from sepgraph.results.folder import ResultsFolder

    previous = signal.signal(signal.SIGTERM, lambda *_: (_ for _ in ()).throw(KeyboardInterrupt))
    original = ResultsFolder.write_manifest

    def write_while_stopped(folder):
        if folder.manifest.status != "running":
            os.kill(os.getpid(), signal.SIGTERM)  # arrives in the middle of the final write
        original(folder)

    monkeypatch.setattr(ResultsFolder, "write_manifest", write_while_stopped)
    try:
        try:
            with ResultsFolder(tmp_path / "run", running_manifest()):
                raise RuntimeError("another rank stopped")
        except RuntimeError:
            pass
    finally:
        signal.signal(signal.SIGTERM, previous)
    assert json.loads((tmp_path / "run" / "manifest.json").read_text())["status"] == "failed"
