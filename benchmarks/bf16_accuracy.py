"""Does bf16 cost accuracy? The same short schedule in float32 and bf16, two seeds each (issue 21, SPEC 10).

Usage (from the repository root; hours on a 2-core CPU, so run it in the background)::

    nohup .venv/bin/python benchmarks/bf16_accuracy.py > bf16.log 2>&1 &

Each run is ``sepgraph train`` of the zoo's resnet20 from scratch on the CIFAR-10 JPEG q75 export
(``--epochs`` epochs, lr 0.1 with steps at 50% and 75%, weight decay 5e-4, batch 256, crop and flip) into
``--out/<precision>-seed<k>/``. A run that is complete is read, a run with a checkpoint is resumed
(``--resume``), so an interrupted grid picks up where it stopped. The table of final-epoch test accuracies
(no best-epoch picking) is printed and written to ``--out/table.md``; bf16 is called free only if its mean
is within 0.5 points of float32's and every run of the grid has finished.
"""

from __future__ import annotations

import argparse
import json
import statistics
import subprocess
import sys
from pathlib import Path

from sepgraph.devices import processor
from sepgraph.files import atomic_text

DATA = "../shared/data/cifar10-jpeg"
PRECISIONS = ("fp32", "bf16")


def run_folder(out: Path, precision: str, seed: int) -> Path:
    return out / f"{precision}-seed{seed}"


def epochs_done(folder: Path) -> list[dict]:
    """The per-epoch metrics a run has written so far ([] if none)."""
    path = folder / "metrics.json"
    return json.loads(path.read_text())["epochs"] if path.exists() else []


def train(folder: Path, precision: str, seed: int, epochs: int) -> None:
    """Run (or resume) one cell of the grid with the sepgraph command a user would type."""
    command = [sys.executable, "-m", "sepgraph", "train", "--model", "resnet20",
               "--data", f"npz:{DATA}/cifar10_train.npz", "--test-data", f"npz:{DATA}/cifar10_test.npz",
               "--normalize", "cifar10", "--epochs", str(epochs), "--lr", "0.1", "--momentum", "0.9",
               "--weight-decay", "5e-4", "--batch-size", "256",
               "--milestones", f"{epochs // 2},{3 * epochs // 4}", "--gamma", "0.1",
               "--precision", precision, "--seed", str(seed), "--device", "cpu", "--out", str(folder)]
    if (folder / "state.pt").exists():
        command.append("--resume")
    print(" ".join(command), flush=True)
    subprocess.run(command, check=True)


def table(out: Path, seeds: int, epochs: int) -> str:
    """Markdown: final test accuracy per precision and seed, mean, and the verdict."""
    lines = [f"resnet20 from scratch, {epochs} epochs, CIFAR-10 (JPEG q75 export); final-epoch test accuracy (%);",
             f"processor: {processor().model}", "",
             "| precision | " + " | ".join(f"seed {s}" for s in range(seeds)) + " | mean | s per epoch |",
             "|---|" + "---|" * (seeds + 2)]
    means, complete = {}, True
    for precision in PRECISIONS:
        finals, seconds = [], []
        cells = []
        for seed in range(seeds):
            metrics = epochs_done(run_folder(out, precision, seed))
            if len(metrics) < epochs:
                complete = False
                cells.append(f"({len(metrics)}/{epochs} epochs)")
                continue
            finals.append(metrics[-1]["test_accuracy"])
            seconds += [epoch["seconds"] for epoch in metrics]
            cells.append(f"{finals[-1]:.2f}")
        means[precision] = statistics.mean(finals) if finals else None
        mean = f"{means[precision]:.2f}" if finals else "-"
        pace = f"{statistics.median(seconds):.0f}" if seconds else "-"
        lines.append(f"| {precision} | " + " | ".join(cells) + f" | {mean} | {pace} |")
    if complete:
        gap = means["bf16"] - means["fp32"]
        verdict = "free" if abs(gap) <= 0.5 else "not free"
        lines += ["", f"bf16 - fp32 = {gap:+.2f} points: bf16 is {verdict} on this schedule (rule: within 0.5)."]
    else:
        lines += ["", "Partial: the grid has not finished; no verdict."]
    return "\n".join(lines) + "\n"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--out", type=Path, default=Path("benchmarks/measurements/bf16-accuracy"))
    parser.add_argument("--epochs", type=int, default=15)
    parser.add_argument("--seeds", type=int, default=2)
    parser.add_argument("--table-only", action="store_true", help="print the table of what has run, train nothing")
    args = parser.parse_args()
    if not args.table_only:
        for seed in range(args.seeds):
            for precision in PRECISIONS:
                folder = run_folder(args.out, precision, seed)
                if len(epochs_done(folder)) < args.epochs:
                    train(folder, precision, seed, args.epochs)
    text = table(args.out, args.seeds, args.epochs)
    args.out.mkdir(parents=True, exist_ok=True)
    atomic_text(args.out / "table.md", text)
    print(text, end="")


if __name__ == "__main__":
    main()
