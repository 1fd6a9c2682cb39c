"""The engines that compute a scan's tile products ``U[I] @ U[J].T`` in exact float32 (SPEC 3).

``torch``: torch's own BLAS (Intel MKL in x86 builds, in its strict reproducible mode, cuBLAS without TF32 on
CUDA), one product per tile off the diagonal. ``openblas``: the OpenBLAS that numpy ships, with each tile cut into
a fixed partition of row strips (:data:`STRIP_ROWS`) that each run on one thread of a pool; numpy releases the
GIL, so the strips run side by side, and since the partition does not depend on the number of threads, neither do
the floats. A diagonal tile is computed as those strips by both engines (by the torch engine on the CPU only; on
CUDA it is one product), each strip only from its own first row's column on (what is left is zero: those entries
are not pairs, SPEC 3): 5/8 of the square at 4 strips, and a 1,024-row diagonal tile in 0.71-0.77 of the time of
the whole square on the 2-core Xeon of ``benchmarks/``.

``auto`` (:data:`DEFAULT_GEMM`, the default of every entry point) is a rule, never a timing: OpenBLAS on a CPU
whose vendor is not Intel (where torch's MKL takes a path without AVX-512) when numpy's own OpenBLAS (the library
numpy's extension module names as its dependency, never another package's copy) is a version checked here
(:data:`CHECKED_OPENBLAS` or newer); torch everywhere else. Nothing that varies between processes enters the rule
(the order in which libraries are listed, hash seeds, thread counts, what else was imported first), so every run,
rank and resume of one machine makes the same choice.
"""

from __future__ import annotations

import os
import struct
from dataclasses import dataclass
from functools import cache
from pathlib import Path

import numpy as np
import torch
from threadpoolctl import ThreadpoolController

from ..devices import ieee_float32_matmul, mkl_strict, processor, thread_pool
from ..errors import SepgraphError

GEMM_CHOICES = ("auto", "torch", "openblas")

DEFAULT_GEMM = "auto"
"""The engine of every entry point that is not told one (:class:`~sepgraph.graph.tiles.TilePlan`, ``scan_pairs``,
``analyze``, the dynamics, ``--gemm``, the benchmarks), so a library call and the command line compute the same
floats."""

CHECKED_OPENBLAS = (0, 3, 31)
"""The oldest OpenBLAS whose float32 products were checked against float64 here (older builds compute wrong
results on some processors)."""

STRIP_ROWS = 256
"""Rows of one strip of a tile: one product each (a single-threaded one on the ``openblas`` engine, and on the
``torch`` engine the strips of diagonal tiles only)."""


@dataclass(frozen=True)
class GemmEngine:
    """How tile products are computed.

    Attributes:
        name: ``torch`` or ``openblas``.
        library: what computes them, for the manifest, e.g. ``openblas 0.3.31 SkylakeX``; a different library
            gives other floats, so resuming a folder under another one is refused.
        threads: strips computed at once (``openblas``); never changes a float.
    """

    name: str
    library: str
    threads: int = 1

    def product(self, left: torch.Tensor, right: torch.Tensor, diagonal: bool = False) -> torch.Tensor:
        """(m, n) float32 ``left @ right.T`` of (m, D) and (n, D) rows; with ``diagonal`` (left is right) the
        entries below the diagonal strips (:data:`STRIP_ROWS`) are left at zero."""
        if self.name == "torch" or left.device.type != "cpu":
            with ieee_float32_matmul():
                strips = diagonal and left.device.type == "cpu" and left.shape[0] > STRIP_ROWS
                return _diagonal_strips(left, right) if strips else left @ right.T
        return _strips(left.contiguous().numpy(), right.contiguous().numpy(), diagonal, self.threads)


def choose_engine(requested: str | None = None, device: torch.device | None = None) -> GemmEngine:
    """The engine ``requested`` (``auto``, ``torch`` or ``openblas``; None: :data:`DEFAULT_GEMM`) on ``device``;
    ``openblas`` where numpy has no OpenBLAS, or on CUDA, is a clear error."""
    requested = requested or DEFAULT_GEMM
    if requested not in GEMM_CHOICES:
        raise SepgraphError(f"gemm {requested!r} is not an engine; use one of {', '.join(GEMM_CHOICES)}",
                            arguments=("gemm",))
    on_cpu = device is None or device.type == "cpu"
    if requested == "torch" or (requested == "auto" and not on_cpu):
        return GemmEngine("torch", _torch_library(device))
    openblas = numpy_openblas()
    if requested == "openblas":
        if not on_cpu:
            raise SepgraphError(f"gemm 'openblas' runs on the CPU only, not on {device}; use gemm auto or torch",
                                arguments=("gemm",))
        if openblas is None:
            raise SepgraphError("gemm 'openblas': numpy here is not built with OpenBLAS (threadpoolctl finds "
                                "none); use gemm auto or torch", arguments=("gemm",))
    use_openblas = requested == "openblas" or (openblas is not None and _openblas_checked(openblas[0])
                                                and not _intel_cpu())
    if use_openblas:
        return GemmEngine("openblas", f"openblas {openblas[0]} {openblas[1]}", torch.get_num_threads())
    return GemmEngine("torch", _torch_library(device))


@cache
def _controller() -> ThreadpoolController:
    np.ones((2, 2)) @ np.ones((2, 2))  # numpy's BLAS loaded before threadpoolctl looks for it
    return ThreadpoolController()


@cache
def numpy_openblas() -> tuple[str, str] | None:
    """(version, architecture) of numpy's own OpenBLAS as threadpoolctl reports it; None where numpy uses another
    BLAS. Other packages' OpenBLAS copies (scipy's, in a listing whose order changes from process to process) are
    never taken for it."""
    own = _numpy_blas_files()
    for pool in _controller().info():
        if pool.get("internal_api") == "openblas" and _is_numpy_library(pool["filepath"], own):
            return str(pool.get("version")), str(pool.get("architecture"))
    return None


def _is_numpy_library(filepath: str, own: frozenset[str] | None) -> bool:
    """Whether the loaded library at ``filepath`` is one that numpy's extension module depends on (``own``, its
    ELF dependencies); where those cannot be read (not ELF), whether it lies in numpy's own vendored-library
    folder (``numpy.libs`` beside numpy, or ``numpy/.dylibs``), exactly that folder."""
    if own is not None:
        return os.path.basename(filepath) in own
    numpy_dir = Path(np.__file__).resolve().parent
    return Path(filepath).resolve().parent in (numpy_dir.parent / "numpy.libs", numpy_dir / ".dylibs")


def _numpy_blas_files() -> frozenset[str] | None:
    """The file names of the shared libraries numpy's extension module was linked against (ELF ``DT_NEEDED``);
    None where that module is not a 64-bit ELF file."""
    try:
        from numpy._core import _multiarray_umath  # the module that calls the BLAS (numpy.core before numpy 2)
    except ImportError:
        from numpy.core import _multiarray_umath
    return needed_libraries(Path(_multiarray_umath.__file__))


def needed_libraries(path: Path) -> frozenset[str] | None:
    """The ``DT_NEEDED`` entries of the 64-bit little-endian ELF file at ``path`` (the libraries the dynamic
    loader loads for it); None for any other file."""
    data = path.read_bytes()
    if data[:6] != b"\x7fELF\x02\x01":
        return None
    section_start, = struct.unpack_from("<Q", data, 0x28)
    entry_size, count = struct.unpack_from("<HH", data, 0x3A)
    sections = [struct.unpack_from("<IIQQQQII", data, section_start + k * entry_size) for k in range(count)]
    for _, kind, _, _, offset, size, link, _ in sections:
        if kind == 6:  # SHT_DYNAMIC; its link is the section of the names
            names = sections[link][4]
            entries = struct.iter_unpack("<qQ", data[offset:offset + size])
            return frozenset(_c_string(data, names + value) for tag, value in entries if tag == 1)  # DT_NEEDED
    return frozenset()


def _c_string(data: bytes, start: int) -> str:
    return data[start:data.index(b"\0", start)].decode()


def _openblas_checked(version: str) -> bool:
    """Whether an OpenBLAS ``version`` (e.g. ``0.3.31.188.0``) is :data:`CHECKED_OPENBLAS` or newer."""
    try:
        parts = tuple(int(part) for part in version.split(".")[:3])
    except ValueError:
        return False
    return parts >= CHECKED_OPENBLAS


def _intel_cpu() -> bool:
    """Whether the processor is Intel's, where torch's MKL has its AVX-512 path."""
    return processor().vendor == "GenuineIntel"


def _torch_library(device: torch.device | None) -> str:
    if device is not None and device.type == "cuda":
        return f"torch {torch.__version__} cublas"
    blas = "blas" if not torch.backends.mkl.is_available() else "mkl" if mkl_strict() is not False else \
        "mkl (not strict)"  # another mode, other floats: a resume under the other one is refused
    return f"torch {torch.__version__} {blas}"


def _diagonal_strips(left: torch.Tensor, right: torch.Tensor) -> torch.Tensor:
    """(m, m) ``left @ right.T`` of a diagonal tile (left is right) as row strips of :data:`STRIP_ROWS`, each
    from its own first row's column on, written in place; below the strips: zero."""
    out = left.new_zeros(left.shape[0], right.shape[0])
    for start in range(0, left.shape[0], STRIP_ROWS):
        stop = start + STRIP_ROWS
        torch.mm(left[start:stop], right[start:].T, out=out[start:stop, start:])
    return out


def _strips(left: np.ndarray, right: np.ndarray, diagonal: bool, threads: int) -> torch.Tensor:
    """``left @ right.T`` as row strips of :data:`STRIP_ROWS`, each one single-threaded OpenBLAS product."""
    out = np.zeros((left.shape[0], right.shape[0]), dtype=np.float32)
    starts = range(0, left.shape[0], STRIP_ROWS)

    def strip(start: int) -> None:
        stop = min(start + STRIP_ROWS, left.shape[0])
        first = start if diagonal else 0
        np.matmul(left[start:stop], right[first:].T, out=out[start:stop, first:])

    with _controller().limit(limits=1, user_api="blas"):
        if threads <= 1 or len(starts) == 1:
            for start in starts:
                strip(start)
        else:
            list(thread_pool(threads).map(strip, starts))
    return torch.from_numpy(out)
