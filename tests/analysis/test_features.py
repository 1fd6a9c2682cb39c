import shutil

import numpy as np
import pytest
import torch

from sepgraph import SepgraphError, create_model, devices, extract_features, layer_points, load_dataset
from sepgraph.analysis.features import plan_groups
from sepgraph.data.dataset import to_tensor


@pytest.fixture(scope="module")
def digits():
    return load_dataset("digits:test")


@pytest.fixture(scope="module")
def resnet20():
    torch.manual_seed(0)
    return create_model("resnet20").eval()


def test_features_equal_a_direct_forward(digits, resnet20):
    indices = np.array([5, 0, 17, 3, 42])
    points = layer_points(resnet20, "paper")
    chosen = [points[0], points[2], points[-1]]
    result = list(extract_features(resnet20, chosen, digits, indices, normalize="cifar10", batch_size=2,
                                   progress=False))
    x = to_tensor(digits.read(indices), "cifar10")
    with torch.inference_mode():
        stem = resnet20.relu(resnet20.bn1(resnet20.conv1(x)))
        block = resnet20.layer1[0](stem)
        last = resnet20.layer3(resnet20.layer2(resnet20.layer1(stem)))
    assert [r.index for r in result] == [0, 1, 2]
    assert [r.shape for r in result] == [(16, 32, 32), (16, 32, 32), (64, 8, 8)]
    for got, want in zip(result, (stem, block, last), strict=True):
        assert got.features.dtype == np.float32 and got.features.shape == (5, want[0].numel())
        # batch size changes float32 summation order inside conv kernels: compare at float32 precision
        want = want.flatten(1).numpy()
        np.testing.assert_allclose(got.features, want, rtol=1e-5, atol=2e-6 * np.abs(want).max())


def test_groups_under_a_tight_budget_give_the_same_features(digits, resnet20):
    points = layer_points(resnet20, "paper")
    indices = np.arange(0, 60, 3)
    one_pass = list(extract_features(resnet20, points, digits, indices, normalize="none", progress=False))
    budget = len(indices) * 16384 * 4 * 2  # two of the largest points at a time
    many = list(extract_features(resnet20, points, digits, indices, normalize="none", max_memory=budget,
                                 batch_size=7, progress=False))
    assert [m.point for m in many] == points
    for a, b in zip(one_pass, many, strict=True):
        np.testing.assert_array_equal(a.features, b.features)


def test_spilled_features_equal_the_in_memory_ones_and_leave_no_files(digits, resnet20, tmp_path):
    points = layer_points(resnet20, "paper")
    indices = np.arange(0, 60, 3)
    budget = len(indices) * 16384 * 4 * 2
    grouped = list(extract_features(resnet20, points, digits, indices, normalize="none", max_memory=budget,
                                    batch_size=7, progress=False))
    spilled = extract_features(resnet20, points, digits, indices, normalize="none", max_memory=budget,
                               batch_size=7, spill_dir=tmp_path, progress=False)
    for a, b in zip(grouped, spilled, strict=True):
        assert a.point == b.point and a.shape == b.shape
        np.testing.assert_array_equal(a.features, b.features)
    assert list(tmp_path.iterdir()) == []
    stream = extract_features(resnet20, points, digits, indices, normalize="none", spill_dir=tmp_path,
                              progress=False)
    next(stream)
    assert len(list(next(tmp_path.iterdir()).iterdir())) == len(points) - 1  # the first file is read and gone
    stream.close()  # a consumer that stops early leaves nothing behind either
    assert list(tmp_path.iterdir()) == []


@pytest.mark.parametrize("spill", [False, True])
def test_reverse_yields_the_same_features_from_the_last_point(digits, resnet20, tmp_path, spill):
    points = layer_points(resnet20, "paper")
    indices = np.arange(0, 60, 3)
    budget = len(indices) * 16384 * 4 * 2  # several groups
    options = dict(normalize="none", max_memory=budget, batch_size=7, progress=False,
                   spill_dir=tmp_path if spill else None)
    forward = list(extract_features(resnet20, points, digits, indices, **options))
    backward = list(extract_features(resnet20, points, digits, indices, reverse=True, **options))
    assert [b.index for b in backward] == list(range(len(points) - 1, -1, -1))
    for a, b in zip(forward[::-1], backward, strict=True):
        assert a.point == b.point and a.shape == b.shape
        np.testing.assert_array_equal(a.features, b.features)


def test_spill_dir_must_exist_and_have_room(digits, resnet20, tmp_path, monkeypatch):
    points = layer_points(resnet20, "paper")
    with pytest.raises(SepgraphError, match="is not a folder"):
        next(extract_features(resnet20, points, digits, np.arange(10), normalize="none",
                              spill_dir=tmp_path / "missing", progress=False))
    monkeypatch.setattr("shutil.disk_usage", lambda _path: shutil._ntuple_diskusage(10**9, 10**9 - 1000, 1000))
    with pytest.raises(SepgraphError, match=r"has 0.0 GiB free, but spilling 19 points x 10 samples needs"):
        next(extract_features(resnet20, points, digits, np.arange(10), normalize="none", spill_dir=tmp_path,
                              progress=False))
    assert list(tmp_path.iterdir()) == []


def test_plan_groups_respects_the_budget():
    dims = [100, 100, 50, 50, 50, 10]
    assert plan_groups(dims, 10, 10 * 4 * 200) == [[0, 1], [2, 3, 4, 5]]
    assert plan_groups(dims, 10, 10 * 4 * 10_000) == [[0, 1, 2, 3, 4, 5]]
    with pytest.raises(SepgraphError, match="max_memory"):
        plan_groups(dims, 10, 10 * 4 * 99)


def test_default_budget_grows_to_one_point_within_half_of_ram(monkeypatch):
    gib = 1 << 30
    monkeypatch.setattr(devices, "physical_memory", lambda: 24 * gib)
    assert devices.default_max_memory() == 2 * gib
    assert devices.default_max_memory(int(2.6 * gib)) == int(2.6 * gib)  # CIFAR ResNet18's first layers, 10k images
    assert devices.default_max_memory(13 * gib) == 2 * gib  # too large: plan_groups names --max-memory
    monkeypatch.setattr(devices, "physical_memory", lambda: 4 * gib)
    assert devices.default_max_memory() == gib and devices.default_max_memory(int(1.5 * gib)) == int(1.5 * gib)


def test_similarity_products_force_full_float32_and_restore_the_setting():
    saved = torch.get_float32_matmul_precision()
    try:
        torch.set_float32_matmul_precision("high")  # a user who switched TF32 on
        with devices.ieee_float32_matmul():
            assert torch.backends.cuda.matmul.fp32_precision == "ieee"
        assert torch.backends.cuda.matmul.fp32_precision == "tf32"
    finally:
        torch.set_float32_matmul_precision(saved)


def test_a_group_stops_after_its_last_point(digits, resnet20):
    calls = []
    handle = resnet20.linear.register_forward_hook(lambda *_: calls.append(1))
    try:
        points = layer_points(resnet20, "paper")[:3]
        list(extract_features(resnet20, points, digits, np.arange(8), normalize="none", progress=False))
    finally:
        handle.remove()
    assert calls == []


def test_one_pass_per_group_of_points_that_fit_the_budget(digits, resnet20):
    passes = []
    handle = resnet20.conv1.register_forward_hook(lambda *_: passes.append(1))
    try:
        points = layer_points(resnet20, "paper")
        budget = 10 * 16384 * 4  # one 16x32x32 point, two 32x16x16 or four 64x8x8 points
        stream = extract_features(resnet20, points, digits, np.arange(10), normalize="none", max_memory=budget,
                                  batch_size=10, progress=False)
        assert [item.index for item in stream] == list(range(19))
    finally:
        handle.remove()
    assert len(passes) == 1 + 7 + 3 + 2  # the shape probe, then one pass per group


def test_wrong_input_shape_is_a_clear_error(resnet20):
    from sepgraph.data.dataset import ImageDataset

    grey = ImageDataset.from_arrays(np.zeros((4, 32, 32, 1), np.uint8), np.zeros(4, np.int64), ["a"], spec="grey")
    with pytest.raises(SepgraphError, match=r"cannot take inputs of shape \(1, 32, 32\)"):
        list(extract_features(resnet20, layer_points(resnet20), grey, np.arange(4), normalize="none",
                              progress=False))


def test_empty_point_list(digits, resnet20):
    with pytest.raises(SepgraphError, match="empty"):
        list(extract_features(resnet20, [], digits, np.arange(4), normalize="none"))


def test_training_mode_is_restored(digits):
    model = create_model("resnet20").train()
    list(extract_features(model, layer_points(model)[:1], digits, np.arange(4), normalize="none", progress=False))
    assert model.training


def test_cuda_request_without_cuda(digits, resnet20):
    if torch.cuda.is_available():
        pytest.skip("this machine has CUDA")
    with pytest.raises(SepgraphError, match="CUDA is not available"):
        list(extract_features(resnet20, layer_points(resnet20)[:1], digits, np.arange(4), normalize="none",
                              device="cuda"))


def test_point_shapes_restores_training_mode_and_follows_the_model_device(resnet20):
    from sepgraph.models.capture import point_shapes

    points = layer_points(resnet20, "lu2022")
    example = torch.zeros(1, 3, 32, 32)
    for mode in (True, False):
        resnet20.train(mode)
        shapes = point_shapes(resnet20, points, example)
        assert resnet20.training is mode and all(m.training is mode for m in resnet20.modules())
    resnet20.train()
    resnet20.bn1.eval()  # a frozen batch norm inside a training model keeps its own mode
    point_shapes(resnet20, points, example)
    assert resnet20.training and not resnet20.bn1.training and resnet20.layer1[0].bn1.training
    # a model elsewhere than the example (here the meta device, as a stand-in for CUDA on a CPU-only machine)
    elsewhere = create_model("resnet20").to("meta")
    assert point_shapes(elsewhere, layer_points(elsewhere, "lu2022"), example) == shapes
