"""Compare two results folders: the before/after check of a change that must not move a number.

Compared: ``layers.csv``, every ``edges/*.npz`` (each array) and ``pruning.csv`` without its
``train_seconds`` column (the time a row trained), byte for byte by default, or with ``--tolerance T``
numbers within T of each other (absolute) and everything else equal. Prints one line per file and exits
0 when every file agrees, 1 otherwise::

    python benchmarks/compare_results.py results-before/demo/analysis results-after/demo/analysis
    python benchmarks/compare_results.py before/r20 after/r20 --tolerance 1e-7
"""

from __future__ import annotations

import argparse
import csv
import io
import math
import sys
from pathlib import Path

import numpy as np

IGNORED_COLUMNS = {"pruning.csv": ("train_seconds",)}
"""Columns that measure the run rather than its result."""


def _csv_rows(path: Path, ignored: tuple[str, ...]) -> list[list[str]]:
    rows = list(csv.reader(io.StringIO(path.read_text())))
    keep = [k for k, name in enumerate(rows[0]) if name not in ignored] if rows else []
    return [[row[k] for k in keep] for row in rows]


def _cells_differ(first: str, second: str, tolerance: float) -> float | None:
    """None when the cells agree; else how far apart they are (inf for non-numbers)."""
    if first == second:
        return None
    try:
        a, b = float(first), float(second)
    except ValueError:
        return math.inf
    gap = abs(a - b) if math.isfinite(a) and math.isfinite(b) else math.inf
    return None if gap <= tolerance else gap


def compare_csv(before: Path, after: Path, tolerance: float) -> str | None:
    """None when the two CSV files agree (``IGNORED_COLUMNS`` left out), else what differs."""
    ignored = IGNORED_COLUMNS.get(before.name, ())
    first, second = _csv_rows(before, ignored), _csv_rows(after, ignored)
    if not ignored and tolerance == 0:
        return None if before.read_bytes() == after.read_bytes() else _first_difference(first, second)
    if len(first) != len(second) or any(len(a) != len(b) for a, b in zip(first, second, strict=False)):
        return f"shape differs: {len(first)} against {len(second)} rows"
    if first[0] != second[0]:
        return f"header differs: {first[0]} against {second[0]}"
    gaps = [(gap, row, first[0][column]) for row, (a, b) in enumerate(zip(first[1:], second[1:], strict=True), 1)
            for column, (x, y) in enumerate(zip(a, b, strict=True))
            if (gap := _cells_differ(x, y, tolerance)) is not None]
    if not gaps:
        return None
    gap, row, column = max(gaps)
    return f"{len(gaps)} cell(s) differ; the largest gap {gap:.3g} at row {row}, column {column}"


def _first_difference(first: list[list[str]], second: list[list[str]]) -> str:
    for row, (a, b) in enumerate(zip(first, second, strict=False)):
        if a != b:
            return f"bytes differ, first at row {row}: {a} against {b}"
    return f"bytes differ: {len(first)} against {len(second)} rows"


def compare_npz(before: Path, after: Path, tolerance: float) -> str | None:
    """None when the two archives hold the same arrays (within ``tolerance`` for floats), else what differs."""
    with np.load(before) as first, np.load(after) as second:
        if sorted(first.files) != sorted(second.files):
            return f"arrays differ: {sorted(first.files)} against {sorted(second.files)}"
        for name in sorted(first.files):
            a, b = first[name], second[name]
            if a.shape != b.shape or a.dtype != b.dtype:
                return f"{name}: {a.dtype}{a.shape} against {b.dtype}{b.shape}"
            if np.array_equal(a, b):
                continue
            if tolerance == 0 or a.dtype.kind != "f":
                return f"{name}: {int((a != b).sum())} of {a.size} entries differ"
            gap = float(np.max(np.abs(a.astype(np.float64) - b.astype(np.float64))))
            if gap > tolerance:
                return f"{name}: entries differ by up to {gap:.3g}"
    return None


def compare_folders(before: Path, after: Path, tolerance: float = 0.0) -> list[tuple[str, str | None]]:
    """(file, None or what differs) for every compared file present in either folder."""
    names = [name for name in ("layers.csv", "pruning.csv") if (before / name).exists() or (after / name).exists()]
    names += sorted({path.relative_to(folder).as_posix() for folder in (before, after)
                     for path in folder.glob("edges/*.npz")})
    outcome = []
    for name in names:
        first, second = before / name, after / name
        if not (first.is_file() and second.is_file()):
            outcome.append((name, f"only in {before if first.is_file() else after}"))
        elif name.endswith(".npz"):
            outcome.append((name, compare_npz(first, second, tolerance)))
        else:
            outcome.append((name, compare_csv(first, second, tolerance)))
    return outcome


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("before", type=Path, help="results folder written before the change")
    parser.add_argument("after", type=Path, help="results folder written after it")
    parser.add_argument("--tolerance", type=float, default=0.0,
                        help="largest absolute difference of two numbers that still agree (default: 0, byte for "
                             "byte)")
    args = parser.parse_args(argv)
    for folder in (args.before, args.after):
        if not (folder / "layers.csv").is_file() and not (folder / "pruning.csv").is_file():
            print(f"compare_results: {str(folder)!r} holds no layers.csv or pruning.csv; give two results folders",
                  file=sys.stderr)
            return 2
    outcome = compare_folders(args.before, args.after, args.tolerance)
    for name, difference in outcome:
        print(f"{'same' if difference is None else 'DIFFERS'}  {name}" + (f": {difference}" if difference else ""))
    differing = sum(difference is not None for _, difference in outcome)
    mode = "byte for byte" if args.tolerance == 0 else f"within {args.tolerance:g}"
    print(f"{len(outcome) - differing} of {len(outcome)} files agree ({mode})")
    return 1 if differing else 0


if __name__ == "__main__":
    sys.exit(main())
