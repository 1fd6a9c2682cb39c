"""SPEC 23: a user's data: any map-style torch Dataset, a function that returns one (py:), or a Hugging Face dataset on
disk (hf:), through the one data seam; the same numbers as the arrays they hold; bad input in one line."""

import json
import sys

import numpy as np
import pytest
import torch
from torchvision import transforms

from sepgraph import GraphSettings, SepgraphError, analyze, load_dataset
from sepgraph.cli import main
from sepgraph.data.dataset import NORMALIZATIONS
from sepgraph.data.sources import as_dataset
from sepgraph.data.user import OWN_TRANSFORM, TorchDataset

SMALL = GraphSettings(vertices=100, edges=400, hist_samples=200, lu_batch_size=40, lu_batches=2)


class Digits(torch.utils.data.Dataset):
    """The bundled digits as a user would wrap them: uint8 arrays, torchvision's ToTensor and Normalize."""

    def __init__(self, split="all", transform=None, item=None):
        data = load_dataset(f"digits:{split}")
        self.images, self.labels = data.read(np.arange(len(data))), data.labels
        mean, std = NORMALIZATIONS["cifar10"]
        self.transform = transform or transforms.Compose([transforms.ToTensor(), transforms.Normalize(mean, std)])
        self.item = item

    def __len__(self):
        return len(self.labels)

    def __getitem__(self, index):
        if self.item is not None:
            return self.item(self, index)
        return self.transform(self.images[index]), int(self.labels[index])


def make_digits():
    """What ``--data py:test_user_data:make_digits`` calls."""
    return Digits()


def test_a_dataset_with_totensor_and_normalize_gives_the_arrays_numbers_byte_for_byte(tmp_path):
    arrays = analyze("resnet20", "digits:all", SMALL, out=tmp_path / "arrays", progress=False)
    user = analyze("resnet20", Digits(), SMALL, out=tmp_path / "user", progress=False)
    for name in ("layers.csv", "depth.csv"):  # ToTensor and Normalize compute what the named normalisation does
        assert (user.path / name).read_bytes() == (arrays.path / name).read_bytes(), name
    assert user.manifest.parameters.normalize == OWN_TRANSFORM
    assert arrays.manifest.parameters.normalize == "cifar10"


def test_a_python_function_names_a_dataset_on_the_command_line(tmp_path, monkeypatch, capsys):
    monkeypatch.syspath_prepend(str(__import__("pathlib").Path(__file__).parent))
    args = ["analyze", "--model", "resnet20", "--vertices", "100", "--edges", "400", "--hist-samples", "200",
            "--lu-batch-size", "40", "--lu-batches", "2", "--no-report"]
    assert main([*args, "--data", "py:test_user_data:make_digits", "--out", str(tmp_path / "py")]) == 0
    assert main([*args, "--data", "digits:all", "--out", str(tmp_path / "npz")]) == 0
    assert (tmp_path / "py" / "layers.csv").read_bytes() == (tmp_path / "npz" / "layers.csv").read_bytes()
    manifest = json.loads((tmp_path / "py" / "manifest.json").read_text())
    assert manifest["parameters"]["data"] == "py:test_user_data:make_digits"


def test_labels_are_read_once_or_given_and_training_keeps_the_users_augmentation():
    data = as_dataset(Digits("test"))
    assert isinstance(data, TorchDataset) and len(data) == 364 and data.num_classes == 10
    assert np.array_equal(data.labels, load_dataset("digits:test").labels)
    given = TorchDataset.of(Digits("test"), labels=load_dataset("digits:test").labels)
    assert np.array_equal(given.labels, data.labels)
    chosen = np.arange(8)
    flipped = data.training_batch(chosen, "cifar10", lambda images: images.flip(3))
    assert torch.equal(flipped, data.tensors(chosen))  # sepgraph's crop and flip stay off...
    asked = TorchDataset.of(Digits("test"), crop_and_flip=True)
    assert torch.equal(asked.training_batch(chosen, "cifar10", lambda images: images.flip(3)),
                       data.tensors(chosen).flip(3))  # ...unless asked for
    half = data.subset(np.array([3, 1]), "half")
    assert torch.equal(half.tensors([0, 1]), data.tensors([3, 1])) and list(half.labels) == list(data.labels[[3, 1]])


def test_train_and_prune_take_a_users_dataset(tmp_path):
    from sepgraph.pruning.halves import analyse_selection
    from sepgraph.pruning.options import PruningOptions
    from sepgraph.pruning.rows import compare_pruning
    from sepgraph.training.loop import train
    from sepgraph.training.recipe import Recipe

    torch.manual_seed(0)
    model = __import__("sepgraph").create_model("resnet20")
    history = train(model, Digits("train"), normalize="none", recipe=Recipe(epochs=1, batch_size=200),
                    out=tmp_path / "train", progress=False)
    assert len(history.metrics) == 1
    analyse_selection("resnet20", Digits("test"), GraphSettings(vertices=60, edges=300, lu_batch_size=30,
                                                                lu_batches=2), out=tmp_path / "analysis",
                      progress=False)
    table = compare_pruning(tmp_path / "analysis", Digits("train"),
                            PruningOptions(curves=("M", "block_influence"), target_params=[20], proxy_only=True),
                            test_data=Digits("test"), progress=False)
    assert [row.kind for row in table][:1] == ["control"] and all(row.accuracy_proxy is not None for row in table)


def adrift():
    return [1, 2, 3]


def not_a_pair(dataset, index):
    return dataset.images[index]


def wrong_label(dataset, index):
    return torch.zeros(3, 32, 32), "seven"


def uneven(dataset, index):
    return torch.zeros(3, 32 if index < 5 else 28, 32), 0


@pytest.mark.parametrize(("make", "message"), [
    (lambda: Digits(item=not_a_pair), "item 0 is a ndarray, not (image tensor C x H x W, int label); add a "
                                      "transform such as torchvision's ToTensor() and return (image, label)"),
    (lambda: Digits(item=wrong_label), "item 0's label is 'seven' (str), not an int"),
    (lambda: Digits(item=uneven), "item 5 is an image of shape (3, 28, 32), but item 0 is (3, 32, 32); make the "
                                  "transform give every image one size"),
])
def test_bad_items_are_one_line_and_write_nothing(tmp_path, make, message):
    with pytest.raises(SepgraphError) as error:
        analyze("resnet20", make(), SMALL, out=tmp_path / "out", progress=False)
    assert message in str(error.value) and "\n" not in str(error.value)
    assert not (tmp_path / "out").exists()


def test_labels_of_another_length_are_refused():
    with pytest.raises(SepgraphError, match="3 labels were given for a dataset of 364 items; give one label per item"):
        TorchDataset.of(Digits("test"), labels=[0, 1, 2])


@pytest.mark.parametrize(("spec", "message"), [
    ("py:no_such_module_here:make", "cannot import 'no_such_module_here'"),
    ("py:test_user_data:no_function", "module 'test_user_data' has no function 'no_function'"),
    ("py:test_user_data:not_a_pair", "not_a_pair() cannot be called with no arguments (missing a required argument: "
                                     "'dataset'); give a function that takes none"),
    ("py:test_user_data", "write py:package.module:function"),
    ("py:test_user_data:adrift", "adrift() returned a list, not a map-style torch.utils.data.Dataset"),
])
def test_bad_python_specs_are_one_line_and_write_nothing(tmp_path, monkeypatch, capsys, spec, message):
    monkeypatch.syspath_prepend(str(__import__("pathlib").Path(__file__).parent))
    assert main(["analyze", "--model", "resnet20", "--data", spec, "--out", str(tmp_path / "out")]) == 2
    errors = [line for line in capsys.readouterr().err.splitlines() if line.startswith("sepgraph: error: ")]
    assert len(errors) == 1 and message in errors[0], errors
    assert not (tmp_path / "out").exists()


@pytest.fixture(scope="module")
def hf_digits(tmp_path_factory):
    datasets = pytest.importorskip("datasets", reason="the optional 'datasets' package (pip install 'sepgraph[hf]')")
    from PIL import Image

    data = load_dataset("digits:all")
    images = data.read(np.arange(len(data)))
    features = datasets.Features({"img": datasets.Image(), "digit": datasets.ClassLabel(names=data.classes)})
    table = datasets.Dataset.from_dict({"img": [Image.fromarray(image) for image in images],
                                        "digit": data.labels.tolist()}, features=features)
    path = tmp_path_factory.mktemp("hf") / "digits"
    datasets.DatasetDict({"all": table}).save_to_disk(str(path))
    return path


def test_a_hugging_face_dataset_on_disk_gives_the_arrays_numbers(hf_digits, tmp_path, capsys):
    args = ["analyze", "--model", "resnet20", "--vertices", "100", "--edges", "400", "--hist-samples", "200",
            "--lu-batch-size", "40", "--lu-batches", "2", "--no-report"]
    assert main([*args, "--data", f"hf:{hf_digits}:all", "--image-column", "img", "--label-column", "digit",
                 "--out", str(tmp_path / "hf")]) == 0
    assert main([*args, "--data", "digits:all", "--out", str(tmp_path / "arrays")]) == 0
    assert (tmp_path / "hf" / "layers.csv").read_bytes() == (tmp_path / "arrays" / "layers.csv").read_bytes()
    manifest = json.loads((tmp_path / "hf" / "manifest.json").read_text())
    assert manifest["classes"] == [str(d) for d in range(10)] and manifest["parameters"]["normalize"] == "cifar10"


@pytest.mark.parametrize(("suffix", "flags", "message"), [
    (":all", [], "has no column 'image' (it has: img, digit); name the image and label columns"),
    ("", ["--image-column", "img", "--label-column", "digit"], "name a split, one of all (hf:PATH:SPLIT)"),
    ("-missing:all", [], "does not exist (an hf: dataset is a folder written by save_to_disk)"),
])
def test_bad_hugging_face_specs_are_one_line(hf_digits, tmp_path, capsys, suffix, flags, message):
    assert main(["analyze", "--model", "resnet20", "--data", f"hf:{hf_digits}{suffix}", *flags,
                 "--out", str(tmp_path / "out")]) == 2
    errors = [line for line in capsys.readouterr().err.splitlines() if line.startswith("sepgraph: error: ")]
    assert len(errors) == 1 and message in errors[0], errors
    assert not (tmp_path / "out").exists()


def test_without_the_datasets_package_an_hf_spec_says_what_to_install(monkeypatch, tmp_path):
    monkeypatch.setitem(sys.modules, "datasets", None)
    with pytest.raises(SepgraphError, match=r"needs the 'datasets' package: pip install 'sepgraph\[hf\]'"):
        load_dataset(f"hf:{tmp_path}")


def flipping_digits():
    """A function may return a wrapped dataset, e.g. with sepgraph's crop and flip asked for."""
    return TorchDataset.of(Digits("test"), crop_and_flip=True)


def test_a_function_may_return_a_wrapped_dataset(monkeypatch):
    monkeypatch.syspath_prepend(str(__import__("pathlib").Path(__file__).parent))
    data = load_dataset("py:test_user_data:flipping_digits")
    assert isinstance(data, TorchDataset) and data.crop_and_flip and data.spec == "py:test_user_data:flipping_digits"


def test_a_users_transform_and_named_normalisation_do_not_mix(tmp_path):
    from sepgraph.pruning.halves import analyse_selection
    from sepgraph.pruning.options import PruningOptions
    from sepgraph.pruning.rows import compare_pruning

    analyse_selection("resnet20", Digits("test"), GraphSettings(vertices=60, edges=300, lu_batch_size=30,
                                                                lu_batches=2), out=tmp_path / "analysis",
                      progress=False)
    with pytest.raises(SepgraphError, match="the model's data was read through its own transform .* give this data "
                                            "as such a Dataset too"):
        compare_pruning(tmp_path / "analysis", "digits:train", PruningOptions(target_params=[20], proxy_only=True),
                        test_data=Digits("test"), progress=False)


def test_hugging_face_splits_and_unlabelled_items_are_refused(tmp_path):
    datasets = pytest.importorskip("datasets", reason="the optional 'datasets' package (pip install 'sepgraph[hf]')")
    from PIL import Image

    image = Image.fromarray(np.zeros((8, 8, 3), dtype=np.uint8))
    datasets.Dataset.from_dict({"image": [image] * 4, "label": [0, 1, 0, 1]}).save_to_disk(str(tmp_path / "one"))
    datasets.Dataset.from_dict({"image": [image] * 4, "label": [-1] * 4}).save_to_disk(str(tmp_path / "blank"))
    assert len(load_dataset(f"hf:{tmp_path / 'one'}")) == 4
    with pytest.raises(SepgraphError, match="holds one dataset without splits; leave out ':test'"):
        load_dataset(f"hf:{tmp_path / 'one'}:test")
    with pytest.raises(SepgraphError, match="4 items have label -1 \\(unlabelled\\); choose a labelled split"):
        load_dataset(f"hf:{tmp_path / 'blank'}")
