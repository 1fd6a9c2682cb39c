"""Cuts at a target size, against chance (SPEC 19): the target rules on hand-made curves and scores, random cuts
matched by size class, the magnitude score, batch-norm recalibration, and the options that refuse bad input."""

import math

import numpy as np
import pytest
import torch
from torch import nn

from conftest import layer_row
from sepgraph import ImageDataset, SepgraphError, create_model
from sepgraph.models.points import removable_units
from sepgraph.models.protocol import RemovableUnit
from sepgraph.pruning.candidates import candidates
from sepgraph.pruning.criterion import UnitSizes, apply_rule, target_cut
from sepgraph.pruning.options import PruningOptions
from sepgraph.pruning.random_cuts import matched_cuts, size_classes
from sepgraph.pruning.scores import magnitude_scores, unit_sizes, without_each
from sepgraph.training.recalibration import proxy_images, recalibrate_batch_norm

NAMES = ["stem", "b0", "b1", "b2", "b3", "b4"]
UNITS = [RemovableUnit(f"b{k}", NAMES[k], NAMES[k + 1], 0) for k in range(5)]
SIZES = UnitSizes(params=(10, 10, 10, 30, 40), flops=(5, 5, 5, 5, 80), params_total=200, flops_total=200)


def test_target_order_ties_overshoot_and_unscored_units():
    cut = target_cut([0.3, 0.1, 0.2, 0.0, 0.5], NAMES, UNITS, SIZES, "target-params", 20)
    assert cut.order == ["b3", "b1", "b2", "b0", "b4"]
    assert cut.units == ["b1", "b3"] and cut.removed == [2, 4]  # 30 + 10 of 200: exactly 20%, network order
    assert cut.threshold == 0.1 and [c.removed for c in cut.contributions] == [False, True, False, True, False]
    overshoot = target_cut([0.3, 0.1, 0.2, 0.0, 0.5], NAMES, UNITS, SIZES, "target-params", 21)
    assert overshoot.units == ["b1", "b2", "b3"]  # 25%: the last unit taken overshoots
    tied = target_cut([0.1, 0.1, 0.1, 0.1, 0.1], NAMES, UNITS, SIZES, "target-params", 10)
    assert tied.units == ["b0", "b1"]  # ties go in network order
    flops = target_cut([0.3, 0.1, 0.2, 0.0, 0.5], NAMES, UNITS, SIZES, "target-flops", 5)
    assert flops.units == ["b1", "b3"]  # 5 + 5 of 200 FLOPs: counted in FLOPs (in parameters b3 alone is 15%)
    unscored = target_cut([None, 0.1, None, 0.0, 0.5], NAMES, UNITS, SIZES, "target-params", 30)
    assert unscored.units == ["b1", "b3", "b4"] and unscored.order == ["b3", "b1", "b4"]


def test_a_target_no_cut_reaches_is_one_line():
    with pytest.raises(SepgraphError, match=r"target_params 99: the most a cut can reach is 50.00% \(removing all "
                                            r"5 scored units\); choose a smaller target"):
        target_cut([0.3, 0.1, 0.2, 0.0, 0.5], NAMES, UNITS, SIZES, "target-params", 99)
    with pytest.raises(SepgraphError, match="the most a cut can reach is 15.00%"):  # unscored units never go
        target_cut([None, None, None, 0.0, None], NAMES, UNITS, SIZES, "target-params", 30)


def test_a_curve_is_cut_at_a_target_by_its_contributions():
    curve = [0.0, 0.3, 0.4, 0.6, 0.6, 1.1]  # contributions 0.3, 0.1, 0.2, 0.0, 0.5
    cut = apply_rule(curve, "target-params", 20, NAMES, UNITS, SIZES)
    assert cut.units == ["b1", "b3"] and cut.rule == "target-params" and cut.parameter == 20


@pytest.mark.parametrize("value", [0, 100, 150, -5, math.nan, math.inf])
def test_bad_targets_are_refused(value):
    with pytest.raises(SepgraphError, match="target_params .*a percentage above 0 and below 100"):
        PruningOptions(target_params=[value])
    with pytest.raises(SepgraphError, match="target_flops .*share of FLOPs"):
        PruningOptions(target_flops=[value])


def test_options_refuse_what_cannot_be_cut():
    with pytest.raises(SepgraphError, match="random_seeds must be at least 1, got 0"):
        PruningOptions(curves=("M", "random"), target_params=[30], random_seeds=0)
    with pytest.raises(SepgraphError, match="'magnitude' is a unit score with no curve, so the plateau rule"):
        PruningOptions(curves=("M", "magnitude"), rules=["plateau"], target_params=[30])
    with pytest.raises(SepgraphError, match="'magnitude' is a unit score"):
        PruningOptions(curves=("magnitude",))  # the default rule, plateau
    with pytest.raises(SepgraphError, match="proxy_only: rule peak truncates"):
        PruningOptions(rules=["peak"], proxy_only=True)
    with pytest.raises(SepgraphError, match="'random' matches removal cuts, and plateau only truncate"):
        PruningOptions(curves=("M", "random"), rules=["plateau"])
    with pytest.raises(SepgraphError, match="name one beside it"):
        PruningOptions(curves=("random",), target_params=[30])
    options = PruningOptions(curves=("M", "magnitude", "random"), target_params=[30], target_flops=[50])
    assert options.all_rules == [("target-params", 30), ("target-flops", 50)]  # a target alone: no plateau
    assert PruningOptions().all_rules == [("plateau", None)]


def resnet20_classes():
    model = create_model("resnet20")
    units = removable_units(model, "blocks")
    return model, units, unit_sizes(model, without_each(model, units, (3, 32, 32)), (3, 32, 32))


def test_resnet20_units_fall_into_three_size_classes():
    model, units, sizes = resnet20_classes()
    classes = size_classes(units, sizes)
    assert [len(members) for members in classes.values()] == [3, 2, 2]
    shares = sorted(round(100 * params / sizes.params_total, 2) for params, _ in classes)
    assert shares == [1.73, 6.88, 27.43]
    assert sizes.params == tuple(unit.parameters for unit in units)  # what the model says of itself
    assert len({flops for _, flops in classes}) == 1  # every block of a zoo ResNet costs the same FLOPs


def test_random_cuts_match_the_size_classes_are_seeded_and_enumerated_where_few():
    _, units, sizes = resnet20_classes()
    cut = ("layer1.1", "layer1.2", "layer3.2")
    drawn = matched_cuts(units, sizes, cut, 3, seed=0)
    classes = size_classes(units, sizes)
    mix = {key: sum(name in cut for name in members) for key, members in classes.items()}
    for other in drawn:
        assert {key: sum(name in other for name in members) for key, members in classes.items()} == mix
        assert list(other) == [u.name for u in units if u.name in other]  # network order
    assert len(set(drawn)) == 3 and drawn == matched_cuts(units, sizes, cut, 3, seed=0)
    assert matched_cuts(units, sizes, cut, 3, seed=1) != drawn  # 6 possible cuts: drawn, so the seed matters
    everything = matched_cuts(units, sizes, cut, 10, seed=0)  # C(3,2) x C(2,1) = 6 <= 10: each once
    assert len(everything) == len(set(everything)) == 6
    assert matched_cuts(units, sizes, cut, 6, seed=5) == everything  # no draw: the seed does not matter


def test_magnitude_is_the_mean_absolute_kernel_weight_of_the_unit():
    model, units, _ = resnet20_classes()
    scores = magnitude_scores(model, without_each(model, units, (3, 32, 32)))
    for unit, score in zip(units, scores, strict=True):
        block = model.get_submodule(unit.name)
        kernels = [p for p in block.parameters() if p.dim() >= 2]
        direct = sum(p.detach().double().abs().sum().item() for p in kernels) / sum(p.numel() for p in kernels)
        assert score == pytest.approx(direct, rel=1e-12)


class Tiny(nn.Module):
    def __init__(self):
        super().__init__()
        self.conv = nn.Conv2d(3, 4, 3, padding=1)
        self.norm = nn.BatchNorm2d(4)
        self.drop = nn.Dropout(0.5)
        self.head = nn.Linear(4, 2)

    def forward(self, x):
        return self.head(self.norm(self.drop(self.conv(x))).relu().mean((2, 3)))  # dropout on would move the stats


def test_recalibration_is_the_cumulative_average_of_batch_statistics():
    rng = np.random.default_rng(0)
    data = ImageDataset.from_arrays(rng.integers(0, 256, (600, 8, 8, 3), dtype=np.uint8), rng.integers(0, 2, 600))
    torch.manual_seed(0)
    model = Tiny()  # in training mode: recalibration turns dropout off and gives every module its mode back
    model.norm.running_mean.fill_(5.0)
    indices = proxy_images(data, seed=3, count=500)
    assert len(set(indices.tolist())) == 500 and np.array_equal(indices, proxy_images(data, seed=3, count=500))
    means, variances = [], []
    with torch.no_grad():
        for images, _ in data.batches(indices, 128, "none"):
            out = model.conv(images)
            means.append(out.mean((0, 2, 3)))
            variances.append(out.var((0, 2, 3), unbiased=True))
    recalibrate_batch_norm(model, data, indices, normalize="none", batch_size=128, device="cpu")
    torch.testing.assert_close(model.norm.running_mean, torch.stack(means).mean(0), rtol=1e-5, atol=1e-6)
    torch.testing.assert_close(model.norm.running_var, torch.stack(variances).mean(0), rtol=1e-5, atol=1e-6)
    assert model.norm.momentum == 0.1 and int(model.norm.num_batches_tracked) == 4
    assert model.training and model.drop.training and model.norm.training  # the modes it came with


def test_candidates_at_a_target_with_magnitude_and_random():
    model, units, sizes = resnet20_classes()
    names = ["stem"] + [f"layer{s}.{b}" for s in (1, 2, 3) for b in range(3)]
    rises = [0.1, 0.0, 0.1, 0.1, 0.0, 0.1, 0.1, 0.1, 0.1]
    rows = [layer_row(k, n, M=float(np.cumsum([0] + rises)[k])) for k, n in enumerate(names)]
    options = PruningOptions(curves=("M", "magnitude", "random"), target_params=[30], random_seeds=2)
    scores = {"magnitude": magnitude_scores(model, without_each(model, units, (3, 32, 32)))}
    found = candidates("resnet20", rows, units, options, sizes, scores, 0)
    by_kind = {}
    for candidate in found:
        by_kind.setdefault(candidate.kind, []).append(candidate)
    m, magnitude = by_kind["criterion"]
    assert m.order[:2] == ("layer1.1", "layer2.1") and m.rule == "target-params" and m.parameter == 30
    assert {c.matches for c in by_kind["random"]} == {m.curve, magnitude.curve}
    for row in (m, magnitude):  # two cuts each, where the size classes allow more than two
        classes = size_classes(units, sizes).values()
        possible = math.prod(math.comb(len(members), sum(n in row.spec.targets for n in members))
                             for members in classes)
        assert sum(c.matches == row.curve for c in by_kind["random"]) == min(2, possible)
    saved = {unit.name: params for unit, params in zip(units, sizes.params, strict=True)}
    for row in (m, magnitude):
        assert sum(saved[name] for name in row.spec.targets) >= 0.3 * sizes.params_total
        for other in (c for c in by_kind["random"] if c.matches == row.curve):
            assert sum(saved[name] for name in other.spec.targets) == sum(saved[n] for n in row.spec.targets)


def test_ablation_is_the_drop_after_removing_one_unit_and_recalibrating():
    from sepgraph import load_dataset
    from sepgraph.pruning.scores import ablation_scores
    from sepgraph.training.evaluation import evaluate

    model, units, _ = resnet20_classes()
    data = load_dataset("digits:test")
    selection, train = data.subset(np.arange(0, 364, 3), "selection"), data.subset(np.arange(1, 364, 3), "train")
    without = without_each(model, units, (3, 32, 32))
    scores = ablation_scores(model, without, selection, train, normalize="none", seed=2, device="cpu")

    def direct(network):
        import copy

        network = copy.deepcopy(network)
        for module in network.modules():  # by hand: reset, cumulative average, eval elsewhere
            if isinstance(module, nn.BatchNorm2d):
                module.reset_running_stats()
                module.momentum = None
        network.eval()
        for module in network.modules():
            if isinstance(module, nn.BatchNorm2d):
                module.train()
        with torch.no_grad():
            for images, _ in train.batches(proxy_images(train, 2), 256, "none"):
                network(images)
        return evaluate(network, selection, normalize="none", device="cpu", progress=False).accuracy

    whole = direct(model)
    assert scores == pytest.approx([whole - direct(other) for other in without], abs=1e-9)
    assert len(scores) == len(units) == 7


def depth_row(units, distance, cosine=0.5):
    from sepgraph.results.depth_table import DepthRow

    return DepthRow(tuple(units), "in", "out", 10, cosine, distance)


def test_angular_cuts_the_fewest_units_that_reach_the_target_at_the_smallest_distance():
    from sepgraph.pruning.criterion import run_cut

    # b0-b2 one chain (10 each), b3 alone (30), b4 alone (40): SIZES
    runs = [depth_row(["b0"], 0.2), depth_row(["b0", "b1"], 0.25), depth_row(["b0", "b1", "b2"], 0.3),
            depth_row(["b1"], 0.1), depth_row(["b1", "b2"], 0.15), depth_row(["b2"], 0.3),
            depth_row(["b3"], 0.05), depth_row(["b4"], 0.5)]
    cut = run_cut(runs, NAMES, UNITS, SIZES, "target-params", 10)  # one unit reaches it: the nearest single run
    assert cut.units == ["b3"] and cut.threshold == 0.05 and cut.removed == [4]
    cut = run_cut(runs, NAMES, UNITS, SIZES, "target-params", 15)  # b3 (15%) or b4 (20%): b3 is nearer
    assert cut.units == ["b3"]
    cut = run_cut(runs, NAMES, UNITS, SIZES, "target-params", 16)  # b4 alone reaches it in one unit
    assert cut.units == ["b4"]
    cut = run_cut(runs, NAMES, UNITS, SIZES, "target-flops", 5)  # of single units only b4 saves 10 FLOPs or more,
    assert cut.units == ["b4"]  # though shorter-distance runs of two units (b1, b2) also reach it
    tie = [depth_row(["b0", "b1"], 0.2), depth_row(["b1", "b2"], 0.2)]
    assert run_cut(tie, NAMES, UNITS, SIZES, "target-params", 10).units == ["b0", "b1"]  # ties: the earliest
    assert [c.value for c in cut.contributions] == [0.2, 0.1, 0.3, 0.05, 0.5]  # each unit's distance alone
    with pytest.raises(SepgraphError) as error:
        run_cut(runs[:6], NAMES, UNITS, SIZES, "target-params", 20)
    assert str(error.value) == ("target_params 20: no run of consecutive same-shape units reaches it for criterion "
                                "'angular' (the most one saves is 15.00%); choose a smaller target, or cut by "
                                "block_influence, M or another criterion instead")


def test_block_influence_scores_units_with_a_one_unit_run_only():
    from sepgraph.pruning.criterion import block_influence_scores

    runs = [depth_row(["b0"], 0.2, cosine=0.9), depth_row(["b0", "b1"], 0.3), depth_row(["b3"], 0.1, cosine=0.25)]
    assert block_influence_scores(runs, UNITS) == [pytest.approx(0.1), None, None, 0.75, None]
    cut = target_cut(block_influence_scores(runs, UNITS), NAMES, UNITS, SIZES, "target-params", 5)
    assert cut.units == ["b0"]


def test_depth_criteria_refuse_targets_they_cannot_reach_before_any_analysis():
    from sepgraph.pruning.scores import check_reachable, same_shape_runs

    model = create_model("vgg11_bn")
    units = removable_units(model)
    runs = same_shape_runs(model, units, (3, 32, 32), "paper")
    assert all(len(run.units) == 1 for run in runs)  # pooling or a change of width between any two units
    assert len(runs) < len(units)  # a unit right after a pooling compares points of two shapes: no score
    sizes = unit_sizes(model, without_each(model, units, (3, 32, 32)), (3, 32, 32))
    single = max(sizes.params[[u.name for u in units].index(run.units[0])] for run in runs)
    check_reachable(model, units, (3, 32, 32), [("target-params", 100 * single / sizes.params_total - 1)],
                    ("angular",), "paper")
    with pytest.raises(SepgraphError, match="no run of consecutive same-shape units reaches it for criterion"):
        check_reachable(model, units, (3, 32, 32), [("target-params", 30)], ("M", "angular"), "paper")
    scored = sum(sizes.params[[u.name for u in units].index(run.units[0])] for run in runs)
    with pytest.raises(SepgraphError, match="criterion 'block_influence' scores only units whose input and output"):
        check_reachable(model, units, (3, 32, 32), [("target-params", 100 * scored / sizes.params_total + 1)],
                        ("block_influence",), "paper")
