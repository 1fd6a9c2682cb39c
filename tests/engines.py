"""The GEMM engines this machine has (SPEC 3): every byte-identity test runs under each of them, so a suite run on
an Intel Xeon (where ``auto`` means torch) also exercises the OpenBLAS engine that ``auto`` takes elsewhere."""

from sepgraph.graph.gemm import numpy_openblas

ENGINES = ("torch", "openblas") if numpy_openblas() is not None else ("torch",)
