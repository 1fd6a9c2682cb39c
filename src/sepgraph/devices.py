"""Choosing the compute device and the memory budget, and how a model runs there (eval mode, float32 products)."""

from __future__ import annotations

import ctypes
import os
import platform
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from functools import cache
from pathlib import Path
from typing import NamedTuple

import torch
from torch import nn

from .errors import SepgraphError

FREED_MEMORY_KEPT = 256 << 20
"""Freed heap memory glibc keeps for reuse instead of returning it to the system (``M_TRIM_THRESHOLD``): the
shared resnet20's feature extraction took 25 s at 64 MiB, 21 s at 128 MiB and 19 s at 256 MiB (28 s under glibc's
defaults), for up to about 0.1 GB more peak RSS in its full analysis."""

HEAP_BLOCKS_UP_TO = 64 << 20
"""Blocks up to this size come from the heap, where a freed block is reused (``M_MMAP_THRESHOLD``)."""


def keep_freed_memory() -> bool:
    """Let glibc reuse freed blocks of up to :data:`HEAP_BLOCKS_UP_TO` instead of mapping fresh zeroed pages for
    each: a forward pass frees and reallocates every activation of every batch, and glibc maps each block above
    its ceiling (32 MiB, lower until its threshold has adapted) afresh and faults its pages in again (8 million
    page faults, 24 s of system time, in the shared resnet20's feature extraction; 54 thousand and 7 s with
    this). Only where the C library is glibc and the user has not tuned its allocator (``MALLOC_*_`` variables or
    ``glibc.malloc`` tunables); the mmap threshold is set first and the trim threshold only if glibc took it, so
    a refusal leaves both as they were. Allocation only: no number changes. Returns whether both were set."""
    if any(key.startswith("MALLOC_") for key in os.environ) or "glibc.malloc" in os.environ.get("GLIBC_TUNABLES", ""):
        return False
    if platform.system() != "Linux" or platform.libc_ver()[0] != "glibc":
        return False
    mallopt = ctypes.CDLL("libc.so.6").mallopt
    trim, mmap = -1, -3  # M_TRIM_THRESHOLD and M_MMAP_THRESHOLD of <malloc.h>
    return bool(mallopt(mmap, HEAP_BLOCKS_UP_TO)) and bool(mallopt(trim, FREED_MEMORY_KEPT))


def resolve_device(name: str = "auto") -> torch.device:
    """``auto`` -> CUDA when available, else CPU; ``cpu``, ``cuda`` or ``cuda:N`` as given, checked."""
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    try:
        device = torch.device(name)
    except RuntimeError as error:
        raise SepgraphError(f"unknown device {name!r}; use auto, cpu, cuda or cuda:N") from error
    if device.type == "cuda":
        if not torch.cuda.is_available():
            raise SepgraphError(f"device {name!r} was asked for but CUDA is not available here; use --device cpu")
        if device.index is not None and device.index >= torch.cuda.device_count():
            raise SepgraphError(f"device {name!r} does not exist: {torch.cuda.device_count()} CUDA device(s) here")
    elif device.type != "cpu":
        raise SepgraphError(f"device {name!r} is not supported; use auto, cpu, cuda or cuda:N")
    return device


class Processor(NamedTuple):
    """What ``/proc/cpuinfo`` says of the CPU: vendor (``GenuineIntel``, ``AuthenticAMD``, ...), model name,
    instruction-set flags (``avx512f``, ``avx512_bf16``, ...), and family and model numbers as ``lscpu`` shows them
    (``25`` and ``17`` on an AMD EPYC Zen 4)."""

    vendor: str
    model: str
    flags: frozenset[str]
    family: str = ""
    model_number: str = ""

    def describe(self) -> str:
        """One line naming the processor and the flags its numbers depend on, for CI logs and results."""
        flags = ", ".join(f"{flag} {'yes' if flag in self.flags else 'no'}"
                          for flag in ("avx512f", "avx512_bf16", "amx_bf16"))
        return f"{self.vendor or '?'} {self.model} (family {self.family or '?'}, model {self.model_number or '?'}; " \
               f"{flags})"


@cache
def processor() -> Processor:
    """This machine's :class:`Processor` (its first CPU's entries); vendor and flags empty and the model
    ``platform``'s where ``/proc/cpuinfo`` cannot be read (not Linux)."""
    found: dict[str, str] = {}
    try:
        with open("/proc/cpuinfo") as info:
            for line in info:
                key, _, value = line.partition(":")
                found.setdefault(key.strip(), value.strip())
    except OSError:
        pass
    return Processor(found.get("vendor_id", ""), found.get("model name", platform.processor() or platform.machine()),
                     frozenset(found.get("flags", "").split()), found.get("cpu family", ""), found.get("model", ""))


MKL_CBWR_STRICT = 0x10000
"""The strict bit of MKL's conditional numerical reproducibility mode (``mkl_cbwr.h``)."""


@cache
def mkl_strict() -> bool | None:
    """Whether torch's MKL runs in its strict reproducible mode (``MKL_CBWR=AUTO,STRICT``, which importing sepgraph
    sets unless the user set ``MKL_CBWR``): matrix products whose floats do not depend on the number of threads
    (SPEC 18). MKL fixes its mode at its first call, so a process in which torch multiplied before sepgraph was
    imported keeps MKL's default: False. None where torch has no MKL that can be asked. Asking is itself MKL's
    first call where nothing came before, so the mode is fixed from then on."""
    if not torch.backends.mkl.is_available():
        return None
    try:
        query = ctypes.CDLL(str(Path(torch.__file__).parent / "lib" / "libtorch_cpu.so")).mkl_serv_cbwr_get
    except (OSError, AttributeError):
        return None
    query.argtypes, query.restype = [ctypes.c_int], ctypes.c_int
    return bool(query(-1) & MKL_CBWR_STRICT)  # -1: MKL_CBWR_ALL, the whole mode


def physical_memory() -> int:
    """Bytes of RAM on this machine."""
    return os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES")


DEFAULT_MEMORY_CAP = 2 << 30


def default_max_memory(largest_point: int = 0) -> int:
    """The default budget for features held at once: a quarter of RAM, at most 2 GiB, raised to
    ``largest_point`` bytes (one layer point's features) when that fits in half of RAM."""
    budget = min(physical_memory() // 4, DEFAULT_MEMORY_CAP)
    return largest_point if budget < largest_point <= physical_memory() // 2 else budget


@contextmanager
def ieee_float32_matmul() -> Iterator[None]:
    """Full float32 matrix products on CUDA while the block is active, whatever the global setting.

    TF32 keeps 10 mantissa bits, so similarities move by about 1e-3: enough to change
    histogram bins and top-|E| membership. CPUs never use TF32.
    """
    matmul = torch.backends.cuda.matmul
    # torch >= 2.9 has fp32_precision, and mixing it with the older allow_tf32 is an error there
    name, exact = ("fp32_precision", "ieee") if hasattr(matmul, "fp32_precision") else ("allow_tf32", False)
    saved = getattr(matmul, name)
    setattr(matmul, name, exact)
    try:
        yield
    finally:
        setattr(matmul, name, saved)


@cache
def thread_pool(threads: int) -> ThreadPoolExecutor:
    """One pool of ``threads`` Python threads per size, for pieces of work that release the GIL (numpy's BLAS,
    torch's single-threaded kernels) and whose results do not depend on which thread ran them. Its workers must
    not submit to it (a nested ``map`` would wait on itself) nor start thread teams of their own."""
    return ThreadPoolExecutor(threads, thread_name_prefix="sepgraph")


@contextmanager
def one_thread() -> Iterator[None]:
    """torch on one CPU thread while the block is active: for the few operations whose floats depend on the number
    of threads (reductions, MKL's Cholesky factorisation), so K processes of any thread count agree (SPEC 18)."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        yield
    finally:
        torch.set_num_threads(threads)


def parse_memory(text: str) -> int:
    """``'2G'``, ``'512M'``, ``'300000000'`` -> bytes (binary units)."""
    units = {"K": 1 << 10, "M": 1 << 20, "G": 1 << 30, "T": 1 << 40}
    cleaned = text.strip().upper().removesuffix("IB").removesuffix("B")
    try:
        if cleaned and cleaned[-1] in units:
            value = int(float(cleaned[:-1]) * units[cleaned[-1]])
        else:
            value = int(cleaned)
    except ValueError as error:
        raise SepgraphError(f"cannot read memory size {text!r}; write e.g. 4G, 512M or a number of bytes") from error
    if value <= 0:
        raise SepgraphError(f"memory size must be positive, got {text!r}")
    return value


@contextmanager
def evaluation_mode(model: nn.Module) -> Iterator[nn.Module]:
    """``model`` in eval mode for the block; afterwards every module gets its own mode back (e.g. a frozen
    batch norm inside a model that is training)."""
    modes = [(module, module.training) for module in model.modules()]
    try:
        yield model.eval()
    finally:
        for module, training in modes:
            module.train(training)
