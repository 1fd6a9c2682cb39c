import pytest
import torch

from sepgraph import SepgraphError, create_model, layer_points, list_models, parameter_count
from sepgraph.models import input_size

# Published parameter counts for 10 classes: He et al. 2016 Table 6 and the common CIFAR
# implementations (resnet20 0.27M ... resnet110 1.7M; CIFAR ResNet18 11.17M; VGG-bn with a
# 512 -> 10 head, e.g. Liu et al. 2017's VGG19 20.04M); MobileNetV2 as torchvision's with 10 classes.
PUBLISHED = {
    "resnet20": 269_722, "resnet32": 464_154, "resnet44": 658_586, "resnet56": 853_018, "resnet110": 1_727_962,
    "resnet18": 11_173_962, "resnet34": 21_282_122, "resnet50": 23_520_842, "resnet101": 42_512_970,
    "vgg11_bn": 9_231_114, "vgg13_bn": 9_416_010, "vgg16_bn": 14_728_266, "vgg19_bn": 20_040_522,
    "mobilenet_v2": 2_236_682,
}

POINT_COUNTS = {  # (paper, lu2022, blocks), SPEC 1
    "resnet20": (19, 10, 10), "resnet56": (55, 28, 28), "resnet110": (109, 55, 55),
    "resnet18": (17, 9, 9), "resnet34": (33, 17, 17), "resnet50": (49, 17, 17), "resnet101": (100, 34, 34),
    "vgg11_bn": (8, 8, 8), "vgg16_bn": (13, 13, 13), "vgg19_bn": (16, 16, 16),
    "mobilenet_v2": (52, 17, 19),
}


def test_zoo_has_every_model_of_spec_11():
    assert set(list_models()) == set(PUBLISHED)
    assert list_models("vgg*") == ["vgg11_bn", "vgg13_bn", "vgg16_bn", "vgg19_bn"]


@pytest.mark.parametrize("name", sorted(PUBLISHED))
def test_parameter_count_matches_published(name):
    assert parameter_count(create_model(name, num_classes=10)) == PUBLISHED[name]


def test_mobilenet_matches_torchvision_parameter_count():
    import torchvision

    ours = parameter_count(create_model("mobilenet_v2", num_classes=10))
    assert ours == parameter_count(torchvision.models.mobilenet_v2(num_classes=10))


@pytest.mark.parametrize("name", sorted(PUBLISHED))
def test_forward_shape_and_head_size(name):
    model = create_model(name, num_classes=7).eval()
    with torch.inference_mode():
        assert model(torch.randn(2, *input_size(name))).shape == (2, 7)


@pytest.mark.parametrize("name", sorted(POINT_COUNTS))
def test_layer_point_counts(name):
    model = create_model(name)
    counts = tuple(len(layer_points(model, c)) for c in ("paper", "lu2022", "blocks"))
    assert counts == POINT_COUNTS[name]


def test_point_names_are_stable_and_readable():
    paper = layer_points(create_model("resnet56"), "paper")
    assert [p.name for p in paper[:4]] == ["stem", "layer1.0.unit1", "layer1.0.unit2", "layer1.1.unit1"]
    assert paper[2 * 9 + 2 * 3 + 1].name == "layer2.3.unit1"
    assert paper[-1].name == "layer3.8.unit2"
    lu = layer_points(create_model("resnet56"), "lu2022")
    assert (lu[0].name, lu[0].module, lu[1].name) == ("stem.conv", "conv1", "layer1.0")
    vgg = layer_points(create_model("vgg16_bn"), "lu2022")
    assert vgg[0].name == "conv1.conv" and vgg[-1].name == "conv13.conv"
    bottleneck = layer_points(create_model("resnet50"), "paper")
    assert [p.name for p in bottleneck[1:4]] == ["layer1.0.unit1", "layer1.0.unit2", "layer1.0.unit3"]
    mobile = [p.name for p in layer_points(create_model("mobilenet_v2"), "paper")]
    assert mobile[:6] == ["stem", "blocks.0.depthwise", "blocks.0.out", "blocks.1.expand", "blocks.1.depthwise",
                          "blocks.1.out"]
    assert mobile[-1] == "last_conv"


@pytest.mark.parametrize("name", sorted(PUBLISHED))
def test_point_names_unique_and_modules_exist(name):
    model = create_model(name)
    modules = dict(model.named_modules())
    for convention in ("paper", "lu2022", "blocks"):
        points = layer_points(model, convention)
        assert len({p.name for p in points}) == len(points)
        assert all(p.module in modules for p in points)


def test_torchvision_models_build_without_download():
    model = create_model("torchvision:resnet18", num_classes=10)
    assert model.fc.out_features == 10


def test_timm_models_build():
    pytest.importorskip("timm", reason="timm is an optional extra")
    model = create_model("timm:resnet18", num_classes=10)
    assert len(layer_points(model, "paper", example_input=torch.zeros(1, 3, 64, 64))) == 17


@pytest.mark.parametrize("name", ["resnet57", "torchvision:nonexistent_net", "vgg16"])
def test_unknown_model_names_the_problem(name):
    with pytest.raises(SepgraphError, match="unknown"):
        create_model(name)


def test_zero_classes_rejected():
    with pytest.raises(SepgraphError, match="num_classes"):
        create_model("resnet20", num_classes=0)


def test_registering_a_name_twice_is_an_error():
    from sepgraph.models import register_model

    def resnet20(num_classes: int = 10):
        raise AssertionError("never built")

    with pytest.raises(SepgraphError, match="'resnet20' is already registered"):
        register_model("CIFAR ResNet")(resnet20)
    assert list_models("resnet20") == ["resnet20"]


def test_build_model_is_seeded_and_leaves_the_global_generator_alone():
    from sepgraph.models import build_model

    torch.manual_seed(123)
    before = torch.random.get_rng_state()
    a, b = build_model("resnet20", seed=4), build_model("resnet20", seed=4)
    assert torch.equal(torch.random.get_rng_state(), before)
    assert a.weights_sha256 is None
    assert all(torch.equal(x, y) for x, y in zip(a.model.state_dict().values(), b.model.state_dict().values(),
                                                 strict=True))
    c = build_model("resnet20", seed=5).model
    assert not torch.equal(c.linear.weight, a.model.linear.weight)


def test_zoo_models_follow_the_protocol_and_others_do_not():
    import torchvision

    from sepgraph import ZooModel

    for name in ("resnet20", "resnet18", "vgg11_bn", "mobilenet_v2"):
        assert isinstance(create_model(name), ZooModel), name
    assert not isinstance(torchvision.models.resnet18(num_classes=10), ZooModel)
