"""The shared pretrained CIFAR ResNets on the shared CIFAR-10 JPEG export (skipped when absent)."""

import numpy as np
import pytest

from sepgraph import create_model, evaluate, extract_features, layer_points, load_dataset, load_weights
from sepgraph.cli import main

# From an independent numpy forward pass over the same images (../shared/data/README.md).
EXPECTED = {"resnet20": ("resnet20-12fca82f.th", 81.03), "resnet56": ("resnet56-4bfd9763.th", 83.20)}


@pytest.mark.integration
@pytest.mark.parametrize("name", sorted(EXPECTED))
def test_accuracy_on_the_jpeg_test_set(shared_data, name):
    file, accuracy = EXPECTED[name]
    model = create_model(name)
    load_weights(model, shared_data / "weights" / file)
    dataset = load_dataset(f"npz:{shared_data}/cifar10-jpeg/cifar10_test.npz")
    result = evaluate(model, dataset, normalize="imagenet", progress=False)
    assert result.total == 10_000
    assert result.accuracy == pytest.approx(accuracy, abs=0.05)


@pytest.mark.integration
def test_eval_command_as_a_newcomer_types_it(shared_data, capsys):
    code = main(["eval", "--model", "resnet20", "--weights", f"{shared_data}/weights/resnet20-12fca82f.th",
                 "--data", f"npz:{shared_data}/cifar10-jpeg/cifar10_test.npz", "--normalize", "imagenet"])
    out = capsys.readouterr().out
    assert code == 0
    assert "CIFAR-10 test (JPEG q75 export)" in out and "accuracy   81.03% (8103/10000)" in out


@pytest.mark.integration
def test_trained_features_separate_classes_more_deeply(shared_data):
    """Real features: the last point's same-class cosine similarity exceeds the cross-class one
    by clearly more than the stem's does (the paper's premise; 200 stratified images)."""
    from sepgraph import select_vertices

    model = create_model("resnet20")
    load_weights(model, shared_data / "weights" / "resnet20-12fca82f.th")
    dataset = load_dataset(f"npz:{shared_data}/cifar10-jpeg/cifar10_test.npz")
    indices = select_vertices(dataset.labels, 200, seed=0)
    points = layer_points(model, "paper")
    gaps = []
    for item in extract_features(model, [points[0], points[-1]], dataset, indices, normalize="imagenet",
                                 progress=False):
        unit = item.features / np.linalg.norm(item.features, axis=1, keepdims=True)
        similarity = unit @ unit.T
        same = dataset.labels[indices][:, None] == dataset.labels[indices][None, :]
        off_diagonal = ~np.eye(len(indices), dtype=bool)
        gaps.append(similarity[same & off_diagonal].mean() - similarity[~same].mean())
    assert gaps[1] > gaps[0] + 0.1  # measured: 0.026 at the stem, 0.171 at the last point
