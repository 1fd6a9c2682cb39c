import numpy as np
import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from sepgraph import ImageDataset, SepgraphError, load_dataset, select_vertices
from sepgraph.data.dataset import to_tensor


def test_digits_is_real_embedded_data_with_disjoint_splits():
    test, train, everything = (load_dataset(f"digits:{s}") for s in ("test", "train", "all"))
    assert len(everything) == 1797 and len(test) + len(train) == 1797
    assert 350 <= len(test) <= 370
    image = test.read([0])
    assert image.shape == (1, 32, 32, 3) and image.dtype == np.uint8
    assert image.max() > 200 and image.min() == 0
    assert np.array_equal(image[..., 0], image[..., 2])
    assert set(np.unique(test.labels)) == set(range(10))
    assert load_dataset("digits").spec == "digits" and len(load_dataset("digits")) == len(test)


def test_to_tensor_normalises_per_channel():
    images = np.full((2, 4, 4, 3), 255, dtype=np.uint8)
    tensor = to_tensor(images, "imagenet")
    assert tensor.shape == (2, 3, 4, 4) and tensor.dtype == torch.float32
    expected = [(1 - m) / s for m, s in zip((0.485, 0.456, 0.406), (0.229, 0.224, 0.225), strict=True)]
    assert torch.allclose(tensor[0, :, 0, 0], torch.tensor(expected))
    assert torch.equal(to_tensor(images, "none"), torch.ones(2, 3, 4, 4))
    with pytest.raises(SepgraphError, match="unknown normalisation"):
        to_tensor(images, "imagenet1k")
    with pytest.raises(SepgraphError, match="3 channels but the images have 1"):
        to_tensor(images[..., :1], "cifar10")


def _write_npz(path, **arrays):
    np.savez(path, **arrays)
    return f"npz:{path}"


def test_npz_dataset(tmp_path):
    images = np.random.default_rng(0).integers(0, 256, (12, 8, 8, 3), dtype=np.uint8)
    spec = _write_npz(tmp_path / "d.npz", images=images, labels=np.arange(12) % 3, classes=np.array(["a", "b", "c"]))
    dataset = load_dataset(spec)
    assert dataset.classes == ["a", "b", "c"] and dataset.num_classes == 3
    assert np.array_equal(dataset.read([3, 1]), images[[3, 1]])
    batches = list(dataset.batches(np.arange(12), 5, "none"))
    assert [len(b[0]) for b in batches] == [5, 5, 2]
    assert torch.equal(batches[1][1], torch.tensor([2, 0, 1, 2, 0]))
    assert dataset.description == "npz file d.npz" and len(dataset.sha256) == 64


@pytest.mark.parametrize("arrays, message", [
    ({"images": np.zeros((2, 4, 4, 3), np.uint8)}, "no 'labels' array"),
    ({"labels": np.zeros(2, np.int64)}, "no 'images' array"),
    ({"images": np.zeros((2, 4, 4, 3), np.float32), "labels": np.zeros(2)}, "uint8"),
    ({"images": np.zeros((2, 4, 4, 5), np.uint8), "labels": np.zeros(2, np.int64)}, "C = 1 or 3"),
    ({"images": np.zeros((2, 4, 4, 3), np.uint8), "labels": np.zeros(3, np.int64)}, "expected 2 labels"),
    ({"images": np.zeros((2, 4, 4, 3), np.uint8), "labels": np.array([0, -1]), "classes": np.array(["a", "b"])},
     "label -1 is out of range"),
    ({"images": np.zeros((2, 4, 4, 3), np.uint8), "labels": np.array([0.0, 1.0])}, "integers"),
    ({"images": np.zeros((2, 4, 4, 3), np.uint8), "labels": np.array([0, 2]), "classes": np.array(["a", "b"])},
     "out of range"),
])
def test_npz_errors(tmp_path, arrays, message):
    spec = _write_npz(tmp_path / "bad.npz", **arrays)
    with pytest.raises(SepgraphError, match=message):
        load_dataset(spec)


def test_unknown_specs_and_missing_files(tmp_path):
    for spec in ("mnist", "npz:", "digits:val"):
        with pytest.raises(SepgraphError, match="unknown"):
            load_dataset(spec)
    with pytest.raises(SepgraphError, match="does not exist"):
        load_dataset(f"npz:{tmp_path}/absent.npz")
    (tmp_path / "junk.npz").write_bytes(b"junk")
    with pytest.raises(SepgraphError, match="not a readable"):
        load_dataset(f"npz:{tmp_path}/junk.npz")


def test_cifar10_never_downloads_unasked(tmp_path):
    with pytest.raises(SepgraphError, match="--download"):
        load_dataset("cifar10", data_root=tmp_path)


def test_imagefolder(tmp_path):
    from PIL import Image

    rng = np.random.default_rng(0)
    for label, size in (("cat", (10, 12)), ("dog", (10, 12))):
        (tmp_path / label).mkdir()
        for k in range(2):
            Image.fromarray(rng.integers(0, 256, (*size, 3), dtype=np.uint8)).save(tmp_path / label / f"{k}.png")
    dataset = load_dataset(f"imagefolder:{tmp_path}")
    assert dataset.classes == ["cat", "dog"] and list(dataset.labels) == [0, 0, 1, 1]
    assert dataset.read([0, 3]).shape == (2, 10, 12, 3)
    Image.fromarray(rng.integers(0, 256, (20, 9, 3), dtype=np.uint8)).save(tmp_path / "dog" / "odd.png")
    with pytest.raises(SepgraphError, match="image_size"):
        load_dataset(f"imagefolder:{tmp_path}").read(range(5))
    assert load_dataset(f"imagefolder:{tmp_path}", image_size=8).read(range(5)).shape == (5, 8, 8, 3)


def test_stratified_vertices():
    labels = np.repeat(np.arange(4), 50)
    chosen = select_vertices(labels, 42, seed=3)
    assert len(chosen) == 42 and len(set(chosen)) == 42 and np.all(np.diff(chosen) > 0)
    assert list(np.bincount(labels[chosen])) == [11, 11, 10, 10]
    assert np.array_equal(chosen, select_vertices(labels, 42, seed=3))
    assert not np.array_equal(chosen, select_vertices(labels, 42, seed=4))
    assert np.array_equal(select_vertices(labels, 5, method="first"), np.arange(5))


@pytest.mark.parametrize("count, kwargs, message", [
    (3, {}, "fewer than the 4 classes"),
    (300, {}, "cannot choose 300"),
    (0, {}, "cannot choose 0"),
    (20, {"method": "random"}, "unknown vertex choice"),
])
def test_vertex_choice_errors(count, kwargs, message):
    with pytest.raises(SepgraphError, match=message):
        select_vertices(np.repeat(np.arange(4), 50), count, **kwargs)


def test_class_with_too_few_samples():
    labels = np.array([0] * 50 + [1] * 3)
    with pytest.raises(SepgraphError, match="class 1 has 3 samples"):
        select_vertices(labels, 20)


@settings(max_examples=40, deadline=None)
@given(st.lists(st.integers(0, 5), min_size=6, max_size=80), st.integers(0, 2**31), st.data())
def test_stratified_property(label_list, seed, data):
    labels = np.array(label_list)
    classes = int(labels.max()) + 1
    smallest = min(np.bincount(labels, minlength=classes))
    if smallest == 0:
        with pytest.raises(SepgraphError):
            select_vertices(labels, classes, seed=seed)
        return
    count = data.draw(st.integers(classes, classes * smallest))
    chosen = select_vertices(labels, count, seed=seed)
    per_class = np.bincount(labels[chosen], minlength=classes)
    assert per_class.max() - per_class.min() <= 1 and per_class.sum() == count
    assert len(np.unique(chosen)) == count


def test_shared_jpeg_export_is_labelled_honestly(shared_data):
    dataset = load_dataset(f"npz:{shared_data}/cifar10-jpeg/cifar10_test.npz")
    assert dataset.description == "CIFAR-10 test (JPEG q75 export)"
    assert len(dataset) == 10_000 and dataset.classes[0] == "airplane"


def test_npz_labels_that_are_not_indices_become_classes_named_by_their_values(tmp_path):
    labels = np.array([100, 3, 7, 3, 100, -2])
    dataset = load_dataset(_write_npz(tmp_path / "odd.npz", images=np.zeros((6, 4, 4, 3), np.uint8), labels=labels))
    assert dataset.classes == ["-2", "3", "7", "100"] and dataset.num_classes == 4
    assert dataset.labels.tolist() == [3, 1, 2, 1, 3, 0]
    assert [dataset.classes[k] for k in dataset.labels] == [str(v) for v in labels]


def test_in_memory_datasets_have_a_public_constructor():
    images = np.arange(5 * 4 * 4, dtype=np.uint8).reshape(5, 4, 4)  # grey, no channel axis
    dataset = ImageDataset.from_arrays(images, np.array([0, 1, 1, 0, 1]), ["cat", "dog"], description="pets")
    assert len(dataset) == 5 and dataset.classes == ["cat", "dog"] and dataset.description == "pets"
    assert dataset.read([2]).shape == (1, 4, 4, 1) and np.array_equal(dataset.read([2])[0, ..., 0], images[2])
    with pytest.raises(SepgraphError, match="uint8"):
        ImageDataset.from_arrays(images.astype(np.float32), np.zeros(5, np.int64))


def test_npz_labels_with_a_class_absent_are_remapped_with_a_warning(tmp_path, caplog):
    labels = np.array([0, 1, 2, 4, 4, 2])  # class 3 absent
    spec = _write_npz(tmp_path / "subset.npz", images=np.zeros((6, 4, 4, 3), np.uint8), labels=labels)
    with caplog.at_level("WARNING"):
        dataset = load_dataset(spec)
    assert dataset.classes == ["0", "1", "2", "4"] and dataset.labels.tolist() == [0, 1, 2, 3, 3, 2]
    assert "add a 'classes' array" in caplog.text and "4 -> 3" in caplog.text
    with_names = _write_npz(tmp_path / "named.npz", images=np.zeros((6, 4, 4, 3), np.uint8), labels=labels,
                            classes=np.array(["a", "b", "c", "d", "e"]))
    assert load_dataset(with_names).labels.tolist() == labels.tolist()  # class names keep labels as indices
