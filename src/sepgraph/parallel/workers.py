"""The processes of one torchrun job (SPEC 18): this process's rank, errors agreed across ranks, lost ranks
turned into one clear line, and the few exact collective operations the analysis needs.

``torchrun --nproc-per-node K -m sepgraph analyze ...`` starts K ranks; without torchrun this process is rank
0 of 1 and every operation here is the identity. The ring that shares the similarity tiles is
:mod:`sepgraph.parallel.ring`, the merge of the ranks' scans :mod:`sepgraph.parallel.merge`.
"""

from __future__ import annotations

import os
import re
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import timedelta
from typing import TypeVar

import numpy as np
import torch
import torch.distributed as dist

from ..errors import SepgraphError

Value = TypeVar("Value")


@dataclass(frozen=True)
class Workers:
    """This process's place in the job: rank ``rank`` of ``world`` (one process: rank 0 of 1)."""

    rank: int = 0
    world: int = 1
    device: torch.device = torch.device("cpu")
    """Where tensors for collective operations live: the rank's CUDA device under ``nccl``, else the CPU."""

    @classmethod
    def current(cls) -> Workers:
        """The initialised process group's rank and size, or a single process."""
        if dist.is_available() and dist.is_initialized():
            nccl = dist.get_backend() == "nccl"
            device = torch.device("cuda", torch.cuda.current_device()) if nccl else torch.device("cpu")
            return cls(dist.get_rank(), dist.get_world_size(), device)
        return cls()

    @property
    def leader(self) -> bool:
        """Rank 0: the one that writes the results and shows progress."""
        return self.rank == 0

    def agree(self, action: Callable[[], Value], who: str = "every rank", defer: bool = False
              ) -> Value | SepgraphError | None:
        """Run ``action`` (on rank 0 alone when ``who`` is ``"leader"``) and raise its SepgraphError on every
        rank when it fails on any (the first failing rank's, named), so no rank waits for one that stopped;
        with ``defer`` the error is returned instead. Returns this rank's result (with ``who="leader"``: rank
        0's, on every rank)."""
        result, error = None, None
        if who != "leader" or self.leader:
            try:
                result = action()
            except SepgraphError as failure:
                error = (str(failure), failure.arguments)
        outcomes = [(error, result)]
        if self.world > 1:
            outcomes = [None] * self.world
            dist.all_gather_object(outcomes, (error, result if who == "leader" and self.leader else None))
        failed = [(rank, message) for rank, (message, _) in enumerate(outcomes) if message is not None]
        if failed:
            rank, (message, arguments) = failed[0]
            failure = SepgraphError(message if rank == self.rank else f"rank {rank}: {message}", arguments=arguments)
            if defer:
                return failure
            raise failure
        return outcomes[0][1] if who == "leader" else result

    @contextmanager
    def watch(self) -> Iterator[None]:
        """Turn the error of a collective operation whose partner stopped (or did not answer within the
        timeout) into one clear line naming this rank; torchrun's summary names the process that stopped."""
        try:
            yield
        except RuntimeError as error:
            text = str(error)
            if self.world == 1 or not any(word in text for word in ("gloo", "NCCL", "Connection", "Timed out")):
                raise
            reason = re.sub(r"^\[[^\]]*\] ", "", text.splitlines()[0]).split(". This is typically")[0]
            raise SepgraphError(
                f"rank {self.rank}: another process of the job stopped or did not answer within --timeout ({reason}); "
                "torchrun's summary names it; the finished points are kept: rerun with --resume"
            ) from error


def start(device: str = "auto", timeout: float = 600.0) -> tuple[Workers, str]:
    """Join the job that ``torchrun`` started (its RANK, WORLD_SIZE, LOCAL_RANK, MASTER_* variables).

    Backend ``nccl`` with one CUDA device per local rank when ``device`` asks for CUDA (``auto``: when CUDA
    is there), else ``gloo`` on the CPU. Collective operations give up after ``timeout`` seconds, so a rank
    that stops never leaves the others waiting. Returns the workers and the device each rank uses.
    """
    if "WORLD_SIZE" not in os.environ or int(os.environ["WORLD_SIZE"]) < 2:
        return Workers(), device
    local = int(os.environ.get("LOCAL_RANK", "0"))
    cuda = device.startswith("cuda") or (device == "auto" and torch.cuda.is_available())
    if cuda and not torch.cuda.is_available():
        raise SepgraphError(f"device {device} asks for CUDA, but CUDA is not available here; use cpu",
                            arguments=("device",))
    if cuda:
        torch.cuda.set_device(local)
    dist.init_process_group("nccl" if cuda else "gloo", timeout=timedelta(seconds=timeout))
    return Workers.current(), f"cuda:{local}" if cuda else "cpu"


def stop() -> None:
    """Leave the job (after the last collective operation)."""
    if dist.is_available() and dist.is_initialized():
        dist.destroy_process_group()


def sum_over_ranks(value: int, workers: Workers) -> int:
    """An integer summed over the ranks (exact)."""
    if workers.world == 1:
        return value
    total = torch.tensor([value], dtype=torch.int64, device=workers.device)
    dist.all_reduce(total)
    return int(total)


def gather_leading(values: np.ndarray, workers: Workers) -> np.ndarray:
    """The ranks' (n_rank,) float64 ``values`` concatenated in rank order (every rank gets all)."""
    if workers.world == 1:
        return values
    parts = gather_rows(torch.as_tensor(values, dtype=torch.float64).reshape(-1, 1), workers)
    return torch.cat(parts).reshape(-1).cpu().numpy()


def gather_rows(rows: torch.Tensor, workers: Workers) -> list[torch.Tensor]:
    """Every rank's (n_rank, C) float64 ``rows``, in rank order, on every rank (padded for the transfer)."""
    rows = rows.to(workers.device)
    counts = [torch.zeros(1, dtype=torch.int64, device=workers.device) for _ in range(workers.world)]
    dist.all_gather(counts, torch.tensor([len(rows)], device=workers.device))
    counts = [int(count) for count in counts]
    padded = rows.new_zeros((max(counts), rows.shape[1]))
    padded[:len(rows)] = rows
    parts = [torch.empty_like(padded) for _ in range(workers.world)]
    dist.all_gather(parts, padded)
    return [part[:count] for part, count in zip(parts, counts, strict=True)]
