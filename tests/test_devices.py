"""The process-wide settings sepgraph makes at import (devices.keep_freed_memory)."""

import os
import platform
import subprocess
import sys

import pytest

REUSE = """
import resource, torch, sepgraph
from sepgraph.devices import keep_freed_memory
before = resource.getrusage(resource.RUSAGE_SELF).ru_minflt
for _ in range(40):
    torch.empty(4 << 20).fill_(1.0)  # 16 MiB, freed at once, as a forward pass's activations are
print(keep_freed_memory(), resource.getrusage(resource.RUSAGE_SELF).ru_minflt - before)
"""


def faults(**env: str) -> tuple[str, int]:
    """What the allocation loop above reports: whether sepgraph changed glibc's settings, and its page faults."""
    environment = {key: value for key, value in os.environ.items() if not key.startswith("MALLOC_")} | env
    applied, count = subprocess.run([sys.executable, "-c", REUSE], env=environment, capture_output=True, text=True,
                                    check=True).stdout.split()
    return applied, int(count)


@pytest.mark.skipif(platform.system() != "Linux" or platform.libc_ver()[0] != "glibc", reason="glibc only")
def test_freed_activations_are_reused_unless_the_user_set_glibc_himself():
    applied, reused = faults()
    kept, fresh = faults(MALLOC_MMAP_THRESHOLD_=str(128 << 10))  # glibc's own default, set by the user: left alone
    assert (applied, kept) == ("True", "False")
    assert fresh > 40 * 4096 // 2  # every 16 MiB block mapped and faulted in again (4,096 pages each)
    assert reused < fresh / 10
