"""Pruning a model from outside the zoo through the exported verbs (SPEC 25): torchvision's resnet18 by name and a
user's own residual module, each beside its control, the report listing the blocks never offered."""

import json

import pytest
from torch import nn

import sepgraph as sg

SMALL = sg.GraphSettings(vertices=150, edges=500, lu_batch_size=50, lu_batches=2)
RECIPE = sg.Recipe(epochs=1, batch_size=64, milestones=())


def test_torchvision_resnet18_pruned_at_a_target_beside_its_control(tmp_path):
    pruned = sg.prune(tmp_path / "r18", "digits:train", model="torchvision:resnet18", data="digits:test",
                      normalize="none", settings=SMALL, recipe=RECIPE, progress=False,
                      options=sg.PruningOptions(curves=("M", "magnitude", "random"), target_params=(20,),
                                                random_seeds=1, head_epochs=0))
    control, *rows = pruned.rows
    assert control.kind == "control" and control.params_saved_pct == 0
    assert {row.curve for row in rows} >= {"M (ours)", "weight magnitude"}
    assert all(row.params_saved_pct >= 20 for row in rows)
    assert all("layer2.0" not in row.cut for row in rows)  # a projection block is never offered
    manifest = json.loads((tmp_path / "r18" / "manifest.json").read_text())
    assert [unit["name"] for unit in manifest["removable_units"]] == ["layer1.0", "layer1.1", "layer2.1",
                                                                     "layer3.1", "layer4.1"]
    assert set(manifest["refused_units"]) == {"layer2.0", "layer3.0", "layer4.0"}
    page = pruned.report.read_text()
    assert "Never offered" in page and "layer2.0.downsample" in page
    assert pruned.analysis.manifest.parameters.model == "torchvision:resnet18"


class Residual(nn.Module):
    def __init__(self, channels: int):
        super().__init__()
        self.body = nn.Sequential(nn.Conv2d(channels, channels, 3, padding=1), nn.BatchNorm2d(channels), nn.ReLU())

    def forward(self, x):
        return self.body(x) + x


class Mine(nn.Module):
    """A user's own residual network: a stem, three identity blocks, a head."""

    def __init__(self):
        super().__init__()
        self.stem = nn.Sequential(nn.Conv2d(3, 8, 3, padding=1), nn.ReLU())
        self.blocks = nn.Sequential(Residual(8), Residual(8), Residual(8))
        self.head = nn.Sequential(nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Linear(8, 10))

    def forward(self, x):
        return self.head(self.blocks(self.stem(x)))


def test_a_module_and_a_model_without_blocks(tmp_path):
    module = Mine()
    pruned = sg.prune(tmp_path / "mine", "digits:train", model=module, data="digits:test", normalize="none",
                      settings=SMALL, recipe=RECIPE, progress=False,
                      options=sg.PruningOptions(curves=("M",), target_params=(10,), head_epochs=0))
    assert pruned.rows[1].cut.startswith("remove blocks.") and pruned.rows[1].model == "Mine"
    with pytest.raises(sg.SepgraphError, match="has no removable block"):
        sg.prune(tmp_path / "plain", "digits:train", model=nn.Sequential(nn.Conv2d(3, 4, 3), nn.ReLU(),
                                                                         nn.AdaptiveAvgPool2d(1), nn.Flatten(),
                                                                         nn.Linear(4, 10)),
                 data="digits:test", normalize="none", settings=SMALL, recipe=RECIPE, progress=False,
                 options=sg.PruningOptions(curves=("M",), target_params=(10,)))
    assert not (tmp_path / "plain").exists()
