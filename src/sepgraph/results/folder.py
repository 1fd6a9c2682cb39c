"""The results folder of one analysis (SPEC 12): manifest, per-layer rows and edges, layers.csv.

Every file is written atomically (a temporary file in the same folder, then a rename).
A layer is complete once its row file exists (written after its edges), so a rerun
with ``resume=True`` skips complete layers and recomputes only the rest.
"""

from __future__ import annotations

import csv
import fcntl
import io
import json
import os
import re
import shutil
import signal
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import numpy as np

from ..errors import SepgraphError
from ..files import atomic_text, atomic_write
from .formats import FORMAT_VERSION, READABLE_FORMATS, upgraded_row
from .layer_row import LayerRow
from .manifest import Manifest


def layer_stem(index: int, name: str) -> str:
    """File stem of a layer: ``NNN_<name>`` with characters unsafe in file names replaced."""
    return f"{index:03d}_{re.sub(r'[^A-Za-z0-9._-]', '_', name)}"


class ResultsFolder:
    """One analysis's folder: ``manifest.json``, ``rows/``, ``edges/``, ``layers.csv``.

    The folder is locked (``flock``) from opening to :meth:`close`, so a second process
    aimed at the same folder fails at once instead of interleaving its files; analyses in
    separate folders run side by side.
    """

    def __init__(self, path: str | Path, manifest: Manifest, *, resume: bool = False, overwrite: bool = False):
        self.path = Path(path)
        self.manifest = manifest
        if self.path.exists() and not self.path.is_dir():
            raise SepgraphError(f"output {str(self.path)!r} exists and is not a folder")
        try:
            self.path.mkdir(parents=True, exist_ok=True)
        except OSError as error:
            raise SepgraphError(f"cannot write to output folder {str(self.path)!r}: {error}") from error
        self._lock = _lock_folder(self.path)
        try:
            self._prepare(resume, overwrite)
        except BaseException:
            self.close()
            raise

    def _prepare(self, resume: bool, overwrite: bool) -> None:
        if any(self.path.iterdir()):
            if resume:
                self._check_resumable()
                for stale in self.path.rglob(".*.tmp"):  # left by a run killed mid-write
                    stale.unlink()
            elif overwrite:
                for child in self.path.iterdir():  # the folder itself stays: it carries the lock
                    if child.is_dir() and not child.is_symlink():
                        shutil.rmtree(child)
                    else:
                        child.unlink()
            else:
                raise SepgraphError(
                    f"output folder {str(self.path)!r} is not empty; pass --resume to continue the analysis in it "
                    "or --overwrite to replace it"
                )
        try:
            (self.path / "edges").mkdir(exist_ok=True)
            (self.path / "rows").mkdir(exist_ok=True)
            self.write_manifest()
        except OSError as error:
            raise SepgraphError(f"cannot write to output folder {str(self.path)!r}: {error}") from error

    def close(self) -> None:
        """Release the folder's lock."""
        if self._lock is not None:
            os.close(self._lock)
            self._lock = None

    def __enter__(self) -> ResultsFolder:
        return self

    def __exit__(self, kind: type[BaseException] | None, error: BaseException | None, _traceback) -> None:
        """Release the lock; a run that ends in an exception says so in its manifest instead of "running"."""
        try:
            if error is not None and self.manifest.status == "running":
                with _signals_held_back():  # torchrun's SIGTERM after a rank died must not cut the record short
                    self.manifest.status = "interrupted" if isinstance(error, KeyboardInterrupt) else "failed"
                    self.manifest.error = f"{kind.__name__}: {error}" if str(error) else kind.__name__
                    try:
                        self.write_manifest()
                    except OSError:
                        pass  # the original error says more than a failure to record it
        finally:
            self.close()

    def _check_resumable(self) -> None:
        try:
            previous = json.loads((self.path / "manifest.json").read_text())
        except (OSError, ValueError) as error:
            raise SepgraphError(
                f"cannot resume in {str(self.path)!r}: it has no readable manifest.json; use --overwrite"
            ) from error
        if previous.get("format_version") != FORMAT_VERSION:
            raise SepgraphError(
                f"cannot resume in {str(self.path)!r}: it was written by results format "
                f"{previous.get('format_version')}, this sepgraph writes {FORMAT_VERSION}; use --overwrite"
            )
        before, now = previous.get("parameters", {}), self.manifest.parameters.to_json()
        changed = sorted(key for key in set(before) | set(now) if before.get(key) != now.get(key))
        if changed:
            details = ", ".join(f"{k}: {before.get(k)!r} -> {now.get(k)!r}" for k in changed)
            raise SepgraphError(f"cannot resume in {str(self.path)!r}: parameters changed ({details}); use --overwrite")

    def write_manifest(self) -> None:
        atomic_text(self.path / "manifest.json", json.dumps(self.manifest.to_json(), indent=2) + "\n")

    def completed_row(self, index: int, name: str) -> LayerRow | None:
        """The stored row of a complete layer, or None."""
        path = self.path / "rows" / f"{layer_stem(index, name)}.json"
        return LayerRow.from_json(json.loads(path.read_text())) if path.is_file() else None

    def write_layer(self, row: LayerRow, edges: dict[str, np.ndarray]) -> None:
        """Store one layer: its subgraph ``edges/NNN_name.npz`` first, then its row (the completion mark)."""
        stem = layer_stem(row.index, row.name)
        atomic_write(edges_path(self.path, row.index, row.name), lambda handle: np.savez(handle, **edges))
        atomic_text(self.path / "rows" / f"{stem}.json", json.dumps(row.to_json(), indent=1) + "\n")

    def write_table(self, rows: list[LayerRow], bins: int) -> None:
        """Write layers.csv from the rows, in point order (SPEC 12)."""
        buffer = io.StringIO()
        writer = csv.writer(buffer, lineterminator="\n")
        writer.writerow(LayerRow.csv_columns(bins))
        writer.writerows(row.csv_values() for row in rows)
        atomic_text(self.path / "layers.csv", buffer.getvalue())


def _lock_folder(path: Path) -> int:
    """An exclusive, non-blocking ``flock`` on the folder itself; returns the descriptor holding it."""
    descriptor = os.open(path, os.O_RDONLY)
    try:
        fcntl.flock(descriptor, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        os.close(descriptor)
        raise SepgraphError(
            f"output folder {str(path)!r} is in use by another sepgraph analysis; "
            "give each concurrent run its own --out"
        ) from None
    return descriptor


def load_results(path: str | Path) -> tuple[Manifest, list[LayerRow]]:
    """The manifest and per-layer rows (in point order) of a complete results folder."""
    path = Path(path)
    try:
        manifest = json.loads((path / "manifest.json").read_text())
    except (OSError, ValueError) as error:
        raise SepgraphError(f"{str(path)!r} is not a sepgraph results folder (no readable manifest.json)") from error
    if manifest.get("format_version") not in READABLE_FORMATS:
        raise SepgraphError(f"{str(path)!r} was written by results format {manifest.get('format_version')}; this "
                            f"sepgraph reads formats {', '.join(map(str, READABLE_FORMATS))}: rerun the analysis")
    names = manifest.get("parameters", {}).get("points", [])
    version = manifest["format_version"]
    rows = []
    for index, name in enumerate(names):
        row_path = path / "rows" / f"{layer_stem(index, name)}.json"
        if not row_path.is_file():
            raise SepgraphError(
                f"the analysis in {str(path)!r} is not complete: layer point {index} ({name}) has no results; "
                "finish it with sepgraph analyze --resume"
            )
        stored = json.loads(row_path.read_text())
        rows.append(LayerRow.from_json(upgraded_row(stored, version)))
    return Manifest.from_json(manifest), rows


def is_complete(path: str | Path) -> bool:
    """Whether ``path`` holds a finished analysis in a readable results format."""
    try:
        load_results(path)
    except SepgraphError:
        return False
    return True


def edges_path(path: str | Path, index: int, name: str) -> Path:
    """Where a layer's subgraph is stored."""
    return Path(path) / "edges" / f"{layer_stem(index, name)}.npz"


@contextmanager
def _signals_held_back() -> Iterator[None]:
    """SIGINT and SIGTERM ignored while the block runs, in the main thread (where Python's handlers run): the run
    is already ending with an error, so a stop request arriving then has nothing left to stop but this write."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return
    previous = {number: signal.signal(number, signal.SIG_IGN) for number in (signal.SIGINT, signal.SIGTERM)}
    try:
        yield
    finally:
        for number, handler in previous.items():
            signal.signal(number, handler)
