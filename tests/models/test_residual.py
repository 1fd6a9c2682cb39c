"""Residual blocks of models outside the zoo (SPEC 25): found by tracing, removed as nn.Identity with every other
weight and key kept, projections and shape changes never offered (with why), truncation at a block's output only."""

import pytest
import torch
from torch import nn

from sepgraph.errors import SepgraphError
from sepgraph.models.factory import create_model
from sepgraph.models.points import removable_units
from sepgraph.models.pruned import remove, truncate
from sepgraph.models.residual import refused_blocks, residual_blocks
from sepgraph.pruning.scores import no_removable_block

SIZE = (3, 32, 32)


class Block(nn.Module):
    """A user's residual block: identity shortcut, or a strided projection."""

    def __init__(self, channels: int, out: int | None = None):
        super().__init__()
        out = out or channels
        self.body = nn.Sequential(nn.Conv2d(channels, out, 3, stride=1 if out == channels else 2, padding=1),
                                  nn.BatchNorm2d(out), nn.ReLU())
        self.project = None if out == channels else nn.Conv2d(channels, out, 1, stride=2)

    def forward(self, x):
        shortcut = x if self.project is None else self.project(x)
        return torch.relu(self.body(x) + shortcut)


class Mine(nn.Module):
    def __init__(self):
        super().__init__()
        self.stem = nn.Sequential(nn.Conv2d(3, 8, 3, padding=1), nn.ReLU())
        self.blocks = nn.Sequential(Block(8), Block(8), Block(8, 16), Block(16))
        self.pool = nn.AdaptiveAvgPool2d(1)
        self.fc = nn.Linear(16, 10)

    def forward(self, x):
        return self.fc(self.pool(self.blocks(self.stem(x))).flatten(1))


@pytest.mark.parametrize("name", ["torchvision:resnet18", "timm:resnet18"])
def test_library_resnets_lose_identity_blocks_with_every_other_weight_kept(name):
    model = create_model(name, 10).eval()
    example = torch.zeros(1, *SIZE)
    units = removable_units(model, "paper", example)
    assert [unit.name for unit in units] == ["layer1.0", "layer1.1", "layer2.1", "layer3.1", "layer4.1"]
    assert units[1].input_point == units[0].output_point and units[0].parameters == 73984
    assert set(refused_blocks(model, example)) == {"layer2.0", "layer3.0", "layer4.0"}
    assert "goes through layer2.0.downsample (64x8x8 -> 128x4x4)" in refused_blocks(model, example)["layer2.0"]
    pruned = remove(model, ["layer3.1", "layer1.1"], SIZE).eval()
    original, kept = model.state_dict(), pruned.state_dict()
    assert all(torch.equal(original[key], value) for key, value in kept.items())
    assert not any(key.startswith(("layer1.1.", "layer3.1.")) for key in kept)
    assert isinstance(pruned.get_submodule("layer1.1"), nn.Identity) and pruned(torch.randn(2, *SIZE)).shape == (2, 10)
    again = create_model(name, 10)  # the pruned model's checkpoint loads into the same surgery of a fresh model
    remove(again, ["layer1.1", "layer3.1"], SIZE).load_state_dict(kept)
    with pytest.raises(SepgraphError, match="cannot remove layer2.0: .*layer2.0 is not: its shortcut goes through"):
        remove(model, ["layer2.0"], SIZE)


def test_truncation_at_a_block_output_and_refused_inside_a_block():
    model = create_model("torchvision:resnet18", 10).eval()
    truncated = truncate(model, "layer2.1.relu:1", 10, SIZE).eval()
    assert sum(p.numel() for p in truncated.parameters()) == 684362 and truncated.fc.in_features == 128
    assert isinstance(truncated.layer3, nn.Identity) and isinstance(truncated.avgpool, nn.AdaptiveAvgPool2d)
    with pytest.raises(SepgraphError, match="cannot truncate ResNet at 'layer2.1.relu': .*choose a block's output"):
        truncate(model, "layer2.1.relu", 10, SIZE)


def test_a_users_own_residual_network():
    model = Mine().eval()
    example = torch.zeros(1, *SIZE)
    blocks = residual_blocks(model, example)
    assert [(block.name, block.removable) for block in blocks] == [
        ("blocks.0", True), ("blocks.1", True), ("blocks.2", False), ("blocks.3", True)]
    assert blocks[2].reason == "its shortcut goes through blocks.2.project (8x32x32 -> 16x16x16)"
    pruned = remove(model, ["blocks.1", "blocks.3"], SIZE)
    assert pruned(torch.randn(2, *SIZE)).shape == (2, 10) and "blocks.0.body.0.weight" in pruned.state_dict()


def test_a_model_without_residual_blocks_is_refused_in_one_line():
    message = str(no_removable_block(create_model("torchvision:vgg11", 10), SIZE))
    assert message.startswith("VGG has no removable block (no module adds its own input to its output)")
    assert "layer2.0: its shortcut goes through" in str(no_removable_block(_only_projections(), SIZE))


def _only_projections() -> nn.Module:
    model = create_model("torchvision:resnet18", 10)
    for stage in ("layer1", "layer2", "layer3", "layer4"):
        getattr(model, stage)[1] = nn.Identity()
    model.layer1[0] = nn.Identity()
    return model


def test_tracing_finds_exactly_the_zoos_own_blocks():
    """The zoo's CIFAR ResNets list their removable blocks themselves; tracing them finds the same ones (an empty
    nn.Sequential shortcut passes its input through; the zero-padding shortcut is refused)."""
    example = torch.zeros(1, *SIZE)
    for name in ("resnet20", "resnet56"):
        model = create_model(name)
        traced = [block.name for block in residual_blocks(model, example) if block.removable]
        assert traced == [unit.name for unit in model.removable_units("paper")]
    assert refused_blocks(create_model("resnet20"), example)["layer2.0"] == \
        "its shortcut goes through layer2.0.shortcut (16x32x32 -> 32x16x16)"


class IdentityShortcut(nn.Module):
    """ConvNeXt's way: the shortcut is an nn.Identity module."""

    def __init__(self):
        super().__init__()
        self.conv, self.shortcut = nn.Conv2d(8, 8, 3, padding=1), nn.Identity()

    def forward(self, x):
        return self.conv(x) + self.shortcut(x)


class Wrapped(nn.Module):
    def __init__(self):
        super().__init__()
        self.backbone = Mine()

    def forward(self, x):
        return self.backbone(x)


def test_identity_modules_wrappers_and_a_cut_that_does_not_run():
    example = torch.zeros(1, 8, 16, 16)
    assert residual_blocks(nn.Sequential(IdentityShortcut(), IdentityShortcut()), example)[1].removable
    units = removable_units(Wrapped(), "paper", torch.zeros(1, *SIZE))
    assert [unit.name for unit in units] == ["backbone.blocks.0", "backbone.blocks.1", "backbone.blocks.3"]
    assert units[0].input_point == "backbone.stem.1"  # a wrapper is no block and claims no point
    with pytest.raises(SepgraphError, match="cannot truncate ResNet at 'layer2.0.relu'"):
        truncate(create_model("torchvision:resnet18", 10), "layer2.0.relu", 10, SIZE)  # shapes no longer match
