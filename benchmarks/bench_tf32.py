"""How far TF32 matrix products would move sepgraph's metrics, emulated on the CPU.

Usage (from the repository root, with the shared data beside it):

    .venv/bin/python benchmarks/bench_tf32.py --model resnet56 \\
        --weights ../shared/data/weights/resnet56-4bfd9763.th \\
        --data npz:../shared/data/cifar10-jpeg/cifar10_test.npz --normalize imagenet --json tf32.json

Why sepgraph keeps TF32 off on CUDA: for the N stratified vertices at a few layer points,
the unit rows are rounded to TF32's 10 mantissa bits (round to nearest even, as tensor
cores read float32 inputs) and multiplied with float32 accumulation; sepgraph's float32
path and this emulation are both compared with float64 on M, Newman Q, Lu et al.'s Q (first
batch), the similarity histogram of the vertices' pairs (pairs that change bin) and the
top-|E| edge set (edges that differ). Nothing is asserted.
"""

from __future__ import annotations

import argparse
import json

import numpy as np
import torch
from common import add_model_options, model_and_data

from sepgraph import extract_features, layer_points, select_vertices
from sepgraph.data.samples import lu_batch_indices
from sepgraph.graph.modularity import knn_edges, newman_modularity, paper_modularity


def tf32(unit: torch.Tensor) -> torch.Tensor:
    """float32 values rounded to 10 explicit mantissa bits, round to nearest even."""
    bits = unit.contiguous().view(torch.int32)
    rounded = (bits + 0x0FFF + ((bits >> 13) & 1)) & ~0x1FFF
    return rounded.view(torch.float32)


def metrics(similarity: torch.Tensor, labels: np.ndarray, edges: int, batch: np.ndarray) -> dict:
    """M, Newman Q, Lu's Q on ``batch``, bin of every pair and the top-|E| pairs of a full similarity matrix."""
    n = similarity.shape[0]
    i, j = torch.triu_indices(n, n, 1)
    values = similarity[i, j].double()
    order = np.lexsort((j.numpy(), i.numpy(), -values.numpy()))[:edges]
    ti, tj, tw = i.numpy()[order], j.numpy()[order], values.numpy()[order]
    lu_i, lu_j, lu_w = knn_edges(similarity[batch][:, batch], 3)
    return {"M": paper_modularity(ti, tj, tw, labels).M, "newman_q": newman_modularity(ti, tj, tw, labels),
            "lu_q": newman_modularity(lu_i, lu_j, lu_w, labels[batch]),
            "bins": torch.floor(values * 10).clamp(-1, 9).to(torch.int8).numpy(),
            "edges": set(zip(ti.tolist(), tj.tolist(), strict=True))}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    add_model_options(parser)
    parser.add_argument("--vertices", type=int, default=4000)
    parser.add_argument("--edges", type=int, default=40000)
    parser.add_argument("--points", type=int, default=6, help="layer points, evenly spread (default: 6)")
    parser.add_argument("--json")
    args = parser.parse_args()
    model, dataset = model_and_data(args)
    every = layer_points(model, "paper")
    points = [every[k] for k in np.linspace(0, len(every) - 1, args.points).round().astype(int)]
    vertices = select_vertices(dataset.labels, args.vertices, "stratified", 0, dataset.num_classes)
    labels = dataset.labels[vertices]
    batch = lu_batch_indices(labels, 500, 1, "stratified", 0, dataset.num_classes)[0]  # positions in vertices
    rows = []
    for item in extract_features(model, points, dataset, vertices, normalize=args.normalize, progress=False):
        x = torch.from_numpy(item.features)
        exact64 = x.double() / torch.linalg.vector_norm(x.double(), dim=1, keepdim=True)
        unit = (x / torch.linalg.vector_norm(x, dim=1, keepdim=True)).float()
        reference = metrics(exact64 @ exact64.T, labels, args.edges, batch)
        row = {"point": item.point.name, "dim": item.features.shape[1]}
        for name, rounded in (("float32", unit), ("tf32", tf32(unit))):
            found = metrics(rounded @ rounded.T, labels, args.edges, batch)
            row[name] = {key: abs(found[key] - reference[key]) for key in ("M", "newman_q", "lu_q")}
            row[name]["pairs_changing_bin"] = int((found["bins"] != reference["bins"]).sum())
            row[name]["edges_differing"] = len(reference["edges"] - found["edges"])
        rows.append(row)
    print(f"{args.model}, {args.vertices} vertices ({len(vertices) * (len(vertices) - 1) // 2} pairs), "
          f"|E| = {args.edges}; differences from float64")
    print(f"{'point':<18}{'D':>7}  {'':>4}{'|dM|':>10}{'|dQ|':>10}{'|dLuQ|':>10}{'pairs->bin':>12}{'edges':>7}")
    for row in rows:
        for name in ("float32", "tf32"):
            d = row[name]
            print(f"{row['point'] if name == 'float32' else '':<18}{row['dim'] if name == 'float32' else '':>7}  "
                  f"{name:>7}{d['M']:>10.1e}{d['newman_q']:>10.1e}{d['lu_q']:>10.1e}{d['pairs_changing_bin']:>12}"
                  f"{d['edges_differing']:>7}")
    if args.json:
        with open(args.json, "w") as handle:
            json.dump(rows, handle, indent=2)


if __name__ == "__main__":
    main()
