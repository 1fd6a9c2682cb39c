"""The process-wide settings sepgraph makes at import (devices.keep_freed_memory)."""

import os
import platform
import subprocess
import sys

import pytest

REUSE = """
import resource, sys, torch
if sys.argv[1] == "sepgraph":
    import sepgraph
before = resource.getrusage(resource.RUSAGE_SELF).ru_minflt
for _ in range(40):
    torch.empty(12 << 20).fill_(1.0)  # 48 MiB, freed at once, as a forward pass's large activations are
print(resource.getrusage(resource.RUSAGE_SELF).ru_minflt - before)
"""


def faults(what: str, **env: str) -> int:
    """Page faults of the allocation loop above, importing sepgraph or torch alone."""
    environment = {key: value for key, value in os.environ.items() if not key.startswith("MALLOC_")} | env
    result = subprocess.run([sys.executable, "-c", REUSE, what], env=environment, capture_output=True, text=True,
                            check=True)
    return int(result.stdout)


@pytest.mark.skipif(platform.system() != "Linux" or platform.libc_ver()[0] != "glibc", reason="glibc only")
def test_freed_activations_are_reused_unless_the_user_tuned_glibc():
    fresh = faults("torch")  # glibc's defaults: a 48 MiB block is mapped afresh each time
    assert fresh >= 40 * 24 // 2  # at least one fault per 2 MiB huge page of every block
    assert faults("sepgraph") * 10 < fresh
    assert faults("sepgraph", MALLOC_ARENA_MAX="2") >= fresh // 2  # the user's own setting: left alone


def test_a_refused_or_tuned_allocator_is_left_alone(monkeypatch):
    from sepgraph.devices import keep_freed_memory

    monkeypatch.setenv("GLIBC_TUNABLES", "glibc.malloc.mmap_threshold=1048576")
    assert keep_freed_memory() is False


def test_the_processor_line_names_vendor_family_model_and_flags():
    from sepgraph.devices import Processor

    zen4 = Processor("AuthenticAMD", "AMD EPYC", frozenset({"avx512f", "avx512_bf16"}), "25", "17")
    assert zen4.describe() == "AuthenticAMD AMD EPYC (family 25, model 17; avx512f yes, avx512_bf16 yes, amx_bf16 no)"
    assert Processor("", "arm64", frozenset()).describe().startswith("? arm64 (family ?, model ?;")


MKL_MODE = """
import sys, warnings
import torch
if sys.argv[1] == "multiplied first":
    torch.ones(4, 4) @ torch.ones(4, 4)
with warnings.catch_warnings(record=True) as caught:
    warnings.simplefilter("always")
    import sepgraph
from sepgraph.graph.gemm import choose_engine
print(sepgraph.devices.mkl_strict(), choose_engine("torch").library.endswith("(not strict)"), len(caught))
"""


@pytest.mark.skipif(not __import__("torch").backends.mkl.is_available(), reason="torch here has no MKL")
def test_mkl_multiplying_before_sepgraph_is_said_and_recorded():
    """MKL fixes its reproducible mode at its first call: after a torch product, importing sepgraph is too late."""
    environment = {key: value for key, value in os.environ.items() if key != "MKL_CBWR"}
    outputs = [subprocess.run([sys.executable, "-c", MKL_MODE, order], env=environment, capture_output=True,
                              text=True, check=True).stdout.split() for order in ("imported first", "multiplied first")]
    if outputs[0][0] == "None":
        pytest.skip("torch's MKL here does not say its mode")
    assert outputs == [["True", "False", "0"], ["False", "True", "1"]]
