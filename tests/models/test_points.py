import pytest
import torch
from torch import nn

from sepgraph import SepgraphError, create_model, layer_points, list_models
from sepgraph.models.capture import PointCapture, point_shapes


class SharedRelu(nn.Module):
    """A torchvision-style block that calls one ReLU module twice."""

    def __init__(self):
        super().__init__()
        self.conv1 = nn.Conv2d(3, 4, 3, padding=1)
        self.conv2 = nn.Conv2d(4, 4, 3, padding=1)
        self.relu = nn.ReLU(inplace=True)
        self.head = nn.Linear(4, 2)
        self.gate = nn.Sigmoid()

    def forward(self, x):
        out = self.relu(self.conv1(x))
        out = self.relu(self.conv2(out) + out)
        return self.head(self.gate(out).mean((2, 3)))


def test_discovery_follows_execution_and_names_repeated_calls():
    model = SharedRelu()
    points = layer_points(model, "paper", example_input=torch.zeros(1, 3, 8, 8))
    assert [(p.name, p.module, p.call) for p in points] == [("relu", "relu", 0), ("relu:1", "relu", 1)]


def test_discovery_of_torchvision_resnet18_matches_the_paper_count():
    model = create_model("torchvision:resnet18")
    points = layer_points(model, "paper", example_input=torch.zeros(1, 3, 64, 64))
    assert len(points) == 17
    assert [p.name for p in points[:3]] == ["relu", "layer1.0.relu", "layer1.0.relu:1"]


def test_discovery_needs_example_input_and_paper_convention():
    model = SharedRelu()
    with pytest.raises(SepgraphError, match="example input"):
        layer_points(model, "paper")
    with pytest.raises(SepgraphError, match="zoo"):
        layer_points(model, "lu2022", example_input=torch.zeros(1, 3, 8, 8))
    with pytest.raises(SepgraphError, match="unknown layer-point convention"):
        layer_points(model, "layers")


def test_explicit_points():
    model = SharedRelu()
    points = layer_points(model, modules=["conv1", "relu:1"])
    assert [(p.module, p.call) for p in points] == [("conv1", 0), ("relu", 1)]
    shapes = point_shapes(model, points, torch.zeros(1, 3, 8, 8))
    assert shapes == [(4, 8, 8), (4, 8, 8)]


@pytest.mark.parametrize("modules, message", [
    ([], "empty"),
    (["conv9"], "unknown layer 'conv9'"),
    (["relu:x"], "call number"),
    (["conv1", "conv1"], "twice"),
])
def test_explicit_point_errors(modules, message):
    with pytest.raises(SepgraphError, match=message):
        layer_points(SharedRelu(), modules=modules)


def test_point_that_never_runs_is_reported():
    model = SharedRelu()
    points = layer_points(model, modules=["relu:2"])
    with pytest.raises(SepgraphError, match="did not run"):
        point_shapes(model, points, torch.zeros(1, 3, 8, 8))


@pytest.mark.parametrize("name", ["resnet20", "resnet18", "resnet50", "vgg11_bn", "mobilenet_v2",
                                  "torchvision:resnet18"])
def test_hooks_leave_outputs_bit_identical(name):
    torch.manual_seed(0)
    model = create_model(name).eval()
    x = torch.randn(3, 3, 32, 32) if name in list_models() else torch.randn(3, 3, 64, 64)
    with torch.inference_mode():
        before = model(x).clone()
    conventions = ("paper", "lu2022", "blocks") if name in list_models() else ("paper",)
    for convention in conventions:
        points = layer_points(model, convention, example_input=x[:1])
        capture = PointCapture(model, points, stop_early=False)
        try:
            with torch.inference_mode():
                during = model(x)
        finally:
            capture.remove()
        assert len(capture.done) == len(points)
        assert torch.equal(before, during)
    with torch.inference_mode():
        assert torch.equal(before, model(x))
