"""The one tile plan of a similarity scan (SPEC 3, 18): square tiles ``U[I] @ U[J].T`` of the upper triangle,
I <= J, and each rank's contiguous slice of the tile rows.

The tiles depend on the number of rows, the memory budget, the device and a requested size, never on the
number of processes, so every similarity is the same float whether one process or K ranks compute it.
"""

from __future__ import annotations

import math
from collections.abc import Iterator
from dataclasses import dataclass, field, replace

import torch

from ..errors import SepgraphError
from .gemm import DEFAULT_GEMM, GemmEngine, choose_engine

BYTES_PER_BLOCK_ENTRY = 16
"""Working memory per similarity entry of a tile: the float32 value plus bin indices and masks."""

TILE_SHARE = 4
"""A tile takes at most a quarter of the memory budget; the rest holds features."""

CPU_TILE_ROWS = 1024
"""Rows of a similarity tile on the CPU: smaller tiles repack their rows for more products (512: 5-11% slower on
the 2-core CPU), larger ones waste more of the diagonal squares."""

CUDA_TILE_ROWS = 4096
"""Rows of a similarity tile on CUDA, where larger products run faster."""

Tile = tuple[int, int, int, int]
"""A tile's row start, row stop, column start and column stop (rows of the whole scan)."""


@dataclass(frozen=True)
class TilePlan:
    """The tiles of a scan over ``n_rows`` rows: tile rows of ``tile_rows`` rows each (the last one shorter),
    dealt to ``world`` ranks as contiguous runs of whole tile rows, as equal as the tile count allows; ``engine``
    computes each tile's product."""

    n_rows: int
    tile_rows: int
    world: int = 1
    engine: GemmEngine = field(default_factory=lambda: choose_engine(DEFAULT_GEMM))

    @classmethod
    def create(cls, n_rows: int, max_memory: int, device: torch.device | None = None,
               requested: int | None = None, world: int = 1, gemm: str | None = None) -> TilePlan:
        """The plan of every scan (SPEC 3): tile rows ``requested``, else :data:`CPU_TILE_ROWS` on the CPU and
        :data:`CUDA_TILE_ROWS` on CUDA; fewer only when a :data:`TILE_SHARE` of ``max_memory`` (bytes) cannot
        hold one tile; products by the engine ``gemm`` chooses (:func:`~sepgraph.graph.gemm.choose_engine`; None:
        the default engine, :data:`~sepgraph.graph.gemm.DEFAULT_GEMM`)."""
        cap = requested or (CUDA_TILE_ROWS if device is not None and device.type == "cuda" else CPU_TILE_ROWS)
        tile_rows = min(cap, math.isqrt(max(max_memory, 0) // TILE_SHARE // BYTES_PER_BLOCK_ENTRY))
        if tile_rows < 1:
            raise SepgraphError(
                f"max_memory {max_memory / 2**20:.1f} MiB is too small for one similarity tile (a tile takes a "
                f"1/{TILE_SHARE} share: {TILE_SHARE * BYTES_PER_BLOCK_ENTRY} bytes at least); raise it",
                arguments=("max_memory",))
        return cls(n_rows, tile_rows, world, choose_engine(gemm, device))

    def over(self, n_rows: int) -> TilePlan:
        """The same tiles over the first ``n_rows`` rows."""
        return replace(self, n_rows=n_rows)

    @property
    def starts(self) -> list[int]:
        """The first row of each tile row."""
        return list(range(0, self.n_rows, self.tile_rows))

    def tile_rows_held(self, rank: int) -> range:
        """The tile rows (their positions in :attr:`starts`) held by ``rank``."""
        count = len(self.starts)
        return range(round(rank * count / self.world), round((rank + 1) * count / self.world))

    def slice_of(self, rank: int) -> tuple[int, int]:
        """The rows [start, stop) held by ``rank``."""
        held = self.tile_rows_held(rank)
        return min(held.start * self.tile_rows, self.n_rows), min(held.stop * self.tile_rows, self.n_rows)

    def tile(self, first: int, second: int) -> Tile:
        """The tile of tile rows ``first`` and ``second``."""
        bounds = [*self.starts, self.n_rows]
        return bounds[first], bounds[first + 1], bounds[second], bounds[second + 1]

    def product(self, tile: Tile, left: torch.Tensor, right: torch.Tensor) -> torch.Tensor:
        """The float32 product ``left @ right.T`` of ``tile``'s rows and columns (entries below a diagonal tile's
        diagonal are not pairs and may be 0)."""
        return self.engine.product(left, right, diagonal=tile[0] == tile[2])

    def tiles_among(self, held: range) -> Iterator[Tile]:
        """Every tile among tile rows ``held``, I <= J, in row-major order (one process: all of them)."""
        for first in held:
            for second in range(first, held.stop):
                yield self.tile(first, second)

    def check_ranks(self, what: str) -> None:
        """Every rank must hold at least one tile row."""
        count = len(self.starts)
        if count < self.world:
            raise SepgraphError(
                f"{what}: {self.n_rows} samples make {count} tile row{'s' * (count != 1)} of {self.tile_rows}, "
                f"fewer than the {self.world} processes; run fewer processes"
            )
