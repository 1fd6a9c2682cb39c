"""Reproduce the paper's claims on the shared pretrained CIFAR ResNets and write FINDINGS.md.

Usage (from the repository root; about 15 minutes on a 2-core CPU):

    .venv/bin/python examples/reproduce.py --data-dir ../shared/data --out results/reproduction

For each model: the full analysis (histograms over all 10,000 test images, N = 4000,
|E| = 40000, Lu et al.'s Q on 5 x 500) with vertex seed 0, and the subgraph metrics again
with vertex seeds 1 and 2 (their histograms use 500 samples only; they are not read), so
M and Q can be shown with a band over vertex samples. Claim (e) under a rule is judged on ``sepgraph prune``'s
table when ``--pruning DIR`` holds one pruned results folder per model (``DIR/MODEL/pruning.csv``); at equal size
it is the Table 1 run's (examples/table1.py, docs/FINDINGS.md). Reruns resume what is complete.
The images are a lossy JPEG export of CIFAR-10 (quality 75): results are stated as such.
"""

from __future__ import annotations

import argparse
from pathlib import Path

import numpy as np

from sepgraph import GraphSettings, RunSettings, analyze, build_model, evaluate, load_dataset
from sepgraph.files import atomic_text
from sepgraph.pruning.criterion import PAPER_CURVES, curve_values, recommend
from sepgraph.pruning.table import load_pruning
from sepgraph.report.html import render_report
from sepgraph.reproduction.claims import evaluate_claims, findings_markdown, peer_sentences
from sepgraph.reproduction.seed_bands import seed_bands
from sepgraph.results.folder import is_complete, load_results

WEIGHTS = {"resnet20": "resnet20-12fca82f.th", "resnet56": "resnet56-4bfd9763.th"}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data-dir", default="../shared/data", help="the shared data folder")
    parser.add_argument("--out", default="results/reproduction")
    parser.add_argument("--models", nargs="+", default=list(WEIGHTS), choices=list(WEIGHTS))
    parser.add_argument("--seeds", nargs="+", type=int, default=[0, 1, 2])
    parser.add_argument("--device", default="auto")
    parser.add_argument("--pruning", default=None, metavar="DIR",
                        help="claim (e) under a rule: DIR/MODEL is a results folder `sepgraph prune` ran on")
    args = parser.parse_args()
    data_dir, out = Path(args.data_dir), Path(args.out)
    data = f"npz:{data_dir}/cifar10-jpeg/cifar10_test.npz"
    dataset = load_dataset(data)
    sections = []
    for name in args.models:
        weights = data_dir / "weights" / WEIGHTS[name]
        runs = []
        for position, seed in enumerate(args.seeds):
            extra = {} if position == 0 else {"hist_samples": 500}
            folder = out / name / f"seed{seed}"
            if not is_complete(folder):  # a finished analysis is read as it is, in any readable results format
                analyze(name, dataset, GraphSettings(seed=seed, **extra), weights=weights, normalize="imagenet",
                        run=RunSettings(device=args.device), out=folder, resume=True)
            runs.append(load_results(folder)[1])
        full = out / name / f"seed{args.seeds[0]}"
        render_report(full)
        rows = runs[0]
        vertices = load_results(full)[0].parameters.settings.vertices
        model = build_model(name, dataset.num_classes, weights).model
        accuracy = evaluate(model, dataset, normalize="imagenet", device=args.device, progress=False).accuracy
        cuts = recommend(rows)
        pruning = load_pruning(Path(args.pruning) / name) if args.pruning else None
        curves = {key: np.array([curve_values(run, key) for run in runs]) for key in PAPER_CURVES}
        figure = seed_bands(curves, [r.name for r in rows], f"{name} on {dataset.description}")
        figure.savefig(out / f"confidence_{name}.png", dpi=150)
        claims = evaluate_claims(rows, pruning, curves)
        notes = [
            f"{name}, shared pretrained weights `{WEIGHTS[name]}`: {accuracy:.2f}% on this data.",
            f"Criterion I (plateau, tau 0.02): M keeps up to {rows[cuts['M'].cut_index].name} "
            f"({len(cuts['M'].removed)} points removed); Q keeps up to {rows[cuts['lu_q'].cut_index].name} "
            f"({len(cuts['lu_q'].removed)} removed).",
            f"Claim (e) under a rule from `{args.pruning}/{name}/pruning.csv` (`sepgraph prune`)" if pruning else
            "Claim (e) at equal size: the Table 1 run (examples/table1.py, docs/FINDINGS.md).",
            f"Vertex seeds {', '.join(map(str, args.seeds))}: `confidence_{name}.png`; the full analysis, figures "
            f"and report: `{name}/seed{args.seeds[0]}/report.html`.",
            *(f"Beside M, on the same {vertices:,} vertices: {sentence}" for sentence in peer_sentences(rows)),
        ]
        sections.append(findings_markdown(f"{name} on {dataset.description}", claims, notes))
    text = ("# Findings: the paper's claims on pretrained CIFAR ResNets\n\n"
            "Measured by `examples/reproduce.py` with sepgraph's defaults (SPEC 2-8). The test images are a "
            "lossy JPEG export of CIFAR-10 (quality 75, 4:2:0 chroma): **CIFAR-10 (JPEG q75 export)**, not "
            "CIFAR-10; the models lose about 10 points of accuracy on it.\n\n"
            "Smoothness (d) is the total variation of the curve rescaled to [0, 1] (1 for a monotone curve; "
            "more means more back and forth) and the number of its turns.\n\n" + "\n".join(sections))
    atomic_text(out / "FINDINGS.md", text)
    print(text)
    print(f"findings: {out / 'FINDINGS.md'}")


if __name__ == "__main__":
    main()
