"""One analysis across processes (SPEC 18): the ring covers every tile once with equal work, two gloo
processes under torchrun write the same bytes as one process, and a killed rank ends the job, which
--resume then finishes."""

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from engines import ENGINES
from sepgraph.cli import main
from sepgraph.graph.tiles import TilePlan
from sepgraph.parallel.ring import ring_schedule

ARGS = ["analyze", "--model", "resnet20", "--data", "digits:all", "--normalize", "none", "--vertices", "300",
        "--edges", "1500", "--lu-batch-size", "100", "--lu-batches", "3", "--tile-rows", "256", "--no-report"]


@pytest.mark.parametrize("world", [1, 2, 3, 4, 5, 6])
def test_the_ring_computes_every_tile_once_with_equal_work(world):
    for count in range(world, 14):
        plan = TilePlan(n_rows=count * 10 - 3, tile_rows=10, world=world)  # the last tile row is shorter
        seen, work = [], []
        for rank in range(world):
            tiles = [tile for step in ring_schedule(plan, rank) for tile in step]
            seen += tiles
            work.append(sum((b - a) * (d - c) for a, b, c, d in tiles))
            assert all(a <= c for a, _, c, _ in tiles)  # the lower tile row on the left, as in one process
        bounds = [*plan.starts, plan.n_rows]
        expected = [(bounds[i], bounds[i + 1], bounds[j], bounds[j + 1])
                    for i in range(count) for j in range(i, count)]
        assert sorted(seen) == sorted(expected)
        if count % world == 0:  # equal slices: equal work up to the diagonal tiles and the parity split
            assert max(work) - min(work) <= 100 * (count // world + 1)


def torchrun(*args: str, processes: int = 2) -> subprocess.Popen:
    return subprocess.Popen([sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc-per-node",
                             str(processes), "-m", "sepgraph", *args], stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                            text=True, env={**os.environ, "OMP_NUM_THREADS": "1"})


def same_results(first: Path, second: Path) -> None:
    assert (first / "layers.csv").read_bytes() == (second / "layers.csv").read_bytes()
    assert (first / "depth.csv").read_bytes() == (second / "depth.csv").read_bytes()  # SPEC 22, gathered by rank
    names = sorted(path.name for path in (first / "edges").iterdir())
    assert names == sorted(path.name for path in (second / "edges").iterdir()) and names
    for name in names:
        assert (first / "edges" / name).read_bytes() == (second / "edges" / name).read_bytes()


@pytest.mark.parametrize(("hist", "gemm"), [("700", "torch"), *(("all", gemm) for gemm in ENGINES)])
def test_two_processes_write_what_one_writes_byte_for_byte(tmp_path, hist, gemm):
    """hist "all": one scan of every extracted sample; a number: the histogram counts a subset of the rows. The
    ranks run one thread each, the one process two: for either engine the threads change no float."""
    args = [*ARGS, "--hist-samples", hist, "--gemm", gemm]
    job = torchrun(*args, "--out", str(tmp_path / "two"))
    out, err = job.communicate(timeout=600)
    assert job.returncode == 0, err[-3000:]
    assert main([*args, "--out", str(tmp_path / "one")]) == 0
    same_results(tmp_path / "one", tmp_path / "two")
    manifest = json.loads((tmp_path / "two" / "manifest.json").read_text())
    assert manifest["run"]["processes"] == 2 and manifest["status"] == "complete"
    assert manifest["run"]["gemm"] == gemm and manifest["parameters"]["gemm"].startswith(gemm)
    assert out.count("layer points in") == 1  # rank 0 alone reports


def worker_pids(agent: int) -> dict[int, int]:
    """The torchrun workers of ``agent`` by rank, from their environment (Linux /proc)."""
    found = {}
    for child in Path("/proc").iterdir():
        if not child.name.isdigit():
            continue
        try:
            status = (child / "status").read_text()
            environ = (child / "environ").read_bytes().split(b"\0")
        except OSError:
            continue
        parent = next((line.split()[1] for line in status.splitlines() if line.startswith("PPid:")), None)
        rank = next((entry.split(b"=", 1)[1] for entry in environ if entry.startswith(b"RANK=")), None)
        if parent == str(agent) and rank is not None:
            found[int(rank)] = int(child.name)
    return found


@pytest.mark.parametrize("gemm", ENGINES)
def test_a_killed_rank_ends_the_job_and_resume_finishes_it(tmp_path, gemm):
    args = [*ARGS, "--gemm", gemm]
    folder = tmp_path / "killed"
    job = torchrun(*args, "--out", str(folder))
    deadline = time.monotonic() + 300
    while time.monotonic() < deadline and job.poll() is None and len(list((folder / "rows").glob("*.json"))) < 3:
        time.sleep(0.05)
    workers = worker_pids(job.pid)
    assert job.poll() is None and 1 in workers, "the job ended before a rank could be killed"
    os.kill(workers[1], signal.SIGKILL)
    _, err = job.communicate(timeout=120)  # no hang: the job ends
    assert job.returncode != 0 and "rank 1" in err.replace("rank: 1", "rank 1")
    manifest = json.loads((folder / "manifest.json").read_text())
    assert manifest["status"] in ("failed", "interrupted")
    done = len(list((folder / "rows").glob("*.json")))
    assert 3 <= done < 19 and not (folder / "layers.csv").exists()
    resumed = torchrun(*args, "--out", str(folder), "--resume")
    _, err = resumed.communicate(timeout=600)
    assert resumed.returncode == 0, err[-3000:]
    assert main([*args, "--out", str(tmp_path / "straight")]) == 0
    same_results(tmp_path / "straight", folder)
