import numpy as np
import pytest
import torch

from conftest import layer_row
from sepgraph import SepgraphError, create_model, layer_points, list_models, load_weights, parameter_count
from sepgraph.models.checkpoints import save_weights
from sepgraph.models.points import removable_units
from sepgraph.models.pruned import reinitialise, remove, truncate
from sepgraph.models.size import flop_count
from sepgraph.pruning.criterion import recommend


def block_parameters(channels: int) -> int:
    """Two 3x3 convs without bias and two batch norms (weight and bias each)."""
    return 2 * channels * channels * 9 + 4 * channels


@pytest.mark.parametrize("name", list_models())
def test_every_zoo_model_truncates_at_several_points(name):
    model = create_model(name).eval()
    points = layer_points(model, "paper")
    x = torch.randn(2, 3, 32, 32)
    for position in sorted({0, len(points) // 3, len(points) // 2, len(points) - 2}):
        pruned = truncate(model, points[position].name, num_classes=7)
        assert pruned(x).shape == (2, 7)
        assert parameter_count(pruned) < parameter_count(model)
        kept = layer_points(pruned, "paper")
        assert [p.name for p in kept] == [p.name for p in points[: position + 1]]


@pytest.mark.parametrize("name", list_models())
def test_every_zoo_model_builds_without_each_removable_unit_alone(name):
    """Each unit removed alone: the model builds, runs, saves what the unit held and keeps every other weight."""
    torch.manual_seed(0)
    model = create_model(name).eval()
    units = removable_units(model)
    assert units
    original = model.state_dict()
    x = torch.randn(1, 3, 32, 32)
    for unit in units:
        pruned = remove(model, [unit.name], (3, 32, 32)).eval()
        with torch.inference_mode():
            assert pruned(x).shape == (1, 10)
        assert parameter_count(model) - parameter_count(pruned) == unit.parameters > 0
        state = pruned.state_dict()
        assert set(state) < set(original)
        assert all(torch.equal(value, original[key]) for key, value in state.items())
        assert unit.output_point not in [p.name for p in layer_points(pruned, "paper")]
    assert model.state_dict().keys() == original.keys()  # the model itself is untouched


@pytest.mark.parametrize("name", ["resnet56", "resnet50", "vgg16_bn", "mobilenet_v2"])
def test_removing_every_removable_unit_at_once_builds(name):
    model = create_model(name).eval()
    units = [unit.name for unit in removable_units(model)]
    pruned = remove(model, units, (3, 32, 32))
    assert pruned(torch.randn(2, 3, 32, 32)).shape == (2, 10)
    assert removable_units(pruned) == []


def test_units_know_their_input_and_output_points():
    resnet = create_model("resnet20")
    paper = {u.name: u for u in removable_units(resnet, "paper")}
    assert list(paper) == ["layer1.0", "layer1.1", "layer1.2", "layer2.1", "layer2.2", "layer3.1", "layer3.2"]
    assert (paper["layer1.0"].input_point, paper["layer1.0"].output_point) == ("stem", "layer1.0.unit2")
    assert (paper["layer2.1"].input_point, paper["layer2.1"].output_point) == ("layer2.0.unit2", "layer2.1.unit2")
    lu = {u.name: u for u in removable_units(resnet, "lu2022")}
    assert (lu["layer1.0"].input_point, lu["layer3.2"].input_point) == ("stem.conv", "layer3.1")
    vgg = {u.name: u for u in removable_units(create_model("vgg11_bn"), "paper")}
    assert {n: (u.input_point, u.output_point) for n, u in vgg.items()} == {
        "conv4": ("conv3", "conv4"), "conv6": ("conv5", "conv6"), "conv7": ("conv6", "conv7"),
        "conv8": ("conv7", "conv8")}
    mobile = {u.name: u for u in removable_units(create_model("mobilenet_v2"), "paper")}
    assert (mobile["blocks.2"].input_point, mobile["blocks.2"].output_point) == ("blocks.1.out", "blocks.2.out")
    # after a removal the next block's input is the last block still there
    pruned = {u.name: u for u in removable_units(remove(resnet, ["layer1.1"], (3, 32, 32)), "paper")}
    assert pruned["layer1.2"].input_point == "layer1.0.unit2"
    plain = torch.nn.Sequential(torch.nn.Conv2d(3, 3, 1), torch.nn.ReLU())
    with pytest.raises(SepgraphError, match="runs an example input; give example_input"):
        removable_units(plain)  # outside the zoo: residual blocks (SPEC 25), found by running an example
    assert removable_units(plain, "paper", torch.zeros(1, 3, 8, 8)) == []


def test_vgg_removes_only_units_that_keep_every_shape():
    model = create_model("vgg11_bn")
    assert [u.name for u in removable_units(model)] == ["conv4", "conv6", "conv7", "conv8"]
    with pytest.raises(SepgraphError, match="cannot remove conv5"):
        remove(model, ["conv5"], (3, 32, 32))  # 256 -> 512 channels: the next unit's weights could not be kept
    pruned = remove(model, ["conv7", "conv8"], (3, 32, 32))  # the last stage empties; its pooling stays
    assert [p.name for p in layer_points(pruned, "paper")] == ["conv1", "conv2", "conv3", "conv4", "conv5", "conv6"]
    assert pruned(torch.randn(1, 3, 32, 32)).shape == (1, 10)


def test_pruned_vgg_from_a_plateau_curve_builds():
    """The issue's case: a curve that plateaus over the 512-channel units."""
    model = create_model("vgg11_bn").eval()
    names = [p.name for p in layer_points(model, "paper")]
    rows = [layer_row(k, n, M=m, lu_q_mean=m)
            for k, (n, m) in enumerate(zip(names, [.1, .3, .5, .7, .71, .72, .72, .73], strict=True))]
    cuts = recommend(rows, "delta", units=removable_units(model))
    assert cuts["M"].units == ["conv6", "conv7", "conv8"]
    pruned = remove(model, cuts["M"].units, (3, 32, 32))
    assert pruned(torch.randn(1, 3, 32, 32)).shape == (1, 10)
    plateau = recommend(rows, "plateau")["M"]
    truncated = truncate(model, names[plateau.cut_index], 10)
    assert truncated(torch.randn(1, 3, 32, 32)).shape == (1, 10)


def test_truncation_keeps_the_surviving_weights_and_output():
    torch.manual_seed(0)
    model = create_model("resnet56").eval()
    pruned = truncate(model, "layer2.4.unit1", num_classes=10).eval()
    x = torch.randn(3, 3, 32, 32)
    with torch.inference_mode():
        inside = model.layer2[4].relu1(model.layer2[4].bn1(model.layer2[4].conv1(
            model.layer2[:4](model.layer1(model.relu(model.bn1(model.conv1(x))))))))
        expected = pruned.linear(inside.mean((2, 3)))
        assert torch.allclose(pruned(x), expected, atol=1e-5)
    shared = {k for k in pruned.state_dict() if not k.startswith("linear")}
    assert shared and all(torch.equal(pruned.state_dict()[k], model.state_dict()[k]) for k in shared)
    assert pruned.linear.in_features == 32


def test_removing_lu_et_al_resnet56_blocks_saves_43_percent():
    """Lu et al. keep [2, 3, 6] blocks per stage: 7 blocks of 16, 6 of 32 and 3 of 64 channels go."""
    model = create_model("resnet56")
    removed = ([f"layer1.{b}" for b in range(2, 9)] + [f"layer2.{b}" for b in range(3, 9)]
               + [f"layer3.{b}" for b in range(6, 9)])
    pruned = remove(model, removed, (3, 32, 32))
    by_hand = 7 * block_parameters(16) + 6 * block_parameters(32) + 3 * block_parameters(64)
    assert parameter_count(model) - parameter_count(pruned) == by_hand == 366_016
    assert 100 * by_hand / parameter_count(model) == pytest.approx(42.9, abs=0.05)


def test_unremovable_units_are_refused():
    model = create_model("resnet56")
    assert "layer2.0" not in [u.name for u in removable_units(model)]  # its shortcut changes shape
    with pytest.raises(SepgraphError, match="cannot remove layer2.0"):
        remove(model, ["layer2.0"], (3, 32, 32))
    with pytest.raises(SepgraphError, match="unknown layer point"):
        truncate(model, "layer9.0.unit1", 10)


def test_pruned_models_rebuild_by_name_and_load_plain_state_dicts(tmp_path):
    torch.manual_seed(0)
    model = create_model("vgg11_bn")
    pruned = remove(model, ["conv4", "conv7"], (3, 32, 32))
    save_weights(pruned, tmp_path / "pruned.pt")
    rebuilt = create_model("vgg11_bn+remove=conv4,conv7")
    load_weights(rebuilt, tmp_path / "pruned.pt")
    x = torch.randn(2, 3, 32, 32)
    with torch.inference_mode():
        assert torch.equal(rebuilt.eval()(x), pruned.eval()(x))
    truncated = create_model("mobilenet_v2+truncate=blocks.6.expand")
    assert [p.name for p in layer_points(truncated, "paper")][-1] == "blocks.6.expand"


def test_flops_and_scratch_init():
    model = create_model("resnet20")
    assert flop_count(model) == pytest.approx(2 * 40.8e6, rel=0.02)  # resnet20: ~41M multiply-adds
    pruned = truncate(model, "layer2.2.unit2", 10)
    assert flop_count(pruned) < flop_count(model)
    before = pruned.layer1[0].conv1.weight.clone()
    reinitialise(pruned)
    assert not torch.equal(before, pruned.layer1[0].conv1.weight)
    assert np.isfinite(pruned(torch.randn(1, 3, 32, 32)).detach().numpy()).all()


def test_a_pruned_model_can_be_analysed(tmp_path):
    from sepgraph import GraphSettings, analyze

    settings = GraphSettings(vertices=100, edges=300, hist_samples=150, lu_batch_size=40, lu_batches=2)
    result = analyze("resnet20+truncate=layer2.1.unit2", "digits:test", settings, normalize="none", out=tmp_path,
                     progress=False)
    assert [row.name for row in result.rows][-1] == "layer2.1.unit2" and len(result.rows) == 11


@pytest.mark.parametrize("name", list_models())
def test_unit_points_exist_under_every_convention(name):
    model = create_model(name)
    for convention in ("paper", "lu2022", "blocks"):
        names = [p.name for p in layer_points(model, convention)]
        units = removable_units(model, convention)
        assert [u.name for u in units] == [u.name for u in removable_units(model, "paper")]
        for unit in units:
            assert unit.output_point in names and names.index(unit.input_point) < names.index(unit.output_point)


def test_a_cut_short_vgg_offers_no_incomplete_unit():
    model = create_model("vgg11_bn")
    truncated = truncate(model, "conv7.conv", 10)  # lu2022 point: the conv without its BN and ReLU
    assert [u.name for u in removable_units(truncated)] == ["conv4", "conv6"]


@pytest.mark.parametrize("device", ["meta", "cuda"])
def test_pruning_a_model_on_another_device(device):
    """The pruned model stays on the model's device (meta stands in for CUDA on a machine without one)."""
    if device == "cuda" and not torch.cuda.is_available():
        pytest.skip("no CUDA device here")
    from sepgraph.models import build_model
    from sepgraph.models.pruned import PruningSpec, apply_pruning

    here = build_model("resnet20").model
    there = build_model("resnet20").model.to(device).train()
    for spec in ("truncate=layer2.1.unit2", "remove=layer1.1,layer3.2"):
        moved = apply_pruning(there, PruningSpec.of("resnet20", spec), 10, (3, 32, 32))
        assert {p.device.type for p in moved.parameters()} == {device} and there.training
        assert flop_count(moved) == flop_count(apply_pruning(here, PruningSpec.of("resnet20", spec), 10, (3, 32, 32)))
    if device == "cuda":  # the new head's weights are drawn on the CPU, so they do not depend on the device
        heads = []
        for model in (there, here):
            with torch.random.fork_rng(devices=[]):
                torch.manual_seed(0)
                spec = PruningSpec.of("resnet20", "truncate=layer2.1.unit2")
                heads.append(apply_pruning(model, spec, 10, (3, 32, 32)).linear.weight.cpu())
        torch.testing.assert_close(heads[0], heads[1], rtol=0, atol=0)


@pytest.mark.parametrize("name, base, operation, targets", [
    ("resnet56", "resnet56", None, ()),
    ("resnet56+truncate=layer3.6.unit2", "resnet56", "truncate", ("layer3.6.unit2",)),
    ("resnet56+remove=layer1.3,layer2.5", "resnet56", "remove", ("layer1.3", "layer2.5")),
])
def test_pruning_names_parse_and_format_once(name, base, operation, targets):
    from sepgraph.models.pruned import PruningSpec

    spec = PruningSpec.parse(name)
    assert (spec.base, spec.operation, spec.targets) == (base, operation, targets) and str(spec) == name
    assert spec.pruning == (name.partition("+")[2] or None)


@pytest.mark.parametrize("name", ["resnet56+", "resnet56+remove=", "resnet56+cut=layer1.0", "resnet56+truncate=a,b"])
def test_bad_pruning_names_say_how_to_write_them(name):
    from sepgraph.models.pruned import PruningSpec

    with pytest.raises(SepgraphError, match="write MODEL\\+truncate=POINT or MODEL\\+remove=UNIT,UNIT"):
        PruningSpec.parse(name)
