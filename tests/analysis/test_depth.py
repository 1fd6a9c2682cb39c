"""SPEC 22: the depth measures (block influence, angular distance) against a float64 oracle, on random and adversarial
rows and on a tiny model's analysis, and their runs of units."""

import math

import numpy as np
import pytest
import torch

from sepgraph import GraphSettings, RunSettings
from sepgraph.analysis.depth import DepthObserver, depth_rows
from sepgraph.analysis.features import extract_features
from sepgraph.analysis.run import analyze
from sepgraph.data.samples import SampleSets
from sepgraph.data.sources import as_dataset
from sepgraph.models import build_model
from sepgraph.models.points import UnitRun, layer_points, removable_units, unit_runs
from sepgraph.models.protocol import LayerPoint, RemovableUnit
from sepgraph.results.depth_table import load_depth

SMALL = GraphSettings(vertices=120, edges=600, hist_samples=300, lu_batch_size=50, lu_batches=2)


def oracle(x_in: np.ndarray, x_out: np.ndarray) -> tuple[float, float]:
    """Mean cosine and mean angle / pi over rows by another route, in extended precision (np.longdouble): unit rows,
    their dot product, and the angle as 2 arcsin(|u - v| / 2) (or pi minus it from |u + v|, whichever side is
    nearer), which no rounding near 0 or 1 spoils; a zero row has cosine 0 to everything (SPEC 3)."""
    cosines, angles = [], []
    for a, b in zip(x_in.astype(np.longdouble), x_out.astype(np.longdouble), strict=True):
        na, nb = np.sqrt(np.sum(a * a)), np.sqrt(np.sum(b * b))
        if na == 0 or nb == 0:
            cosines.append(0.0)
            angles.append(0.5)
            continue
        u, v = a / na, b / nb
        cosine = float(np.clip(np.sum(u * v), -1, 1))
        apart, together = np.sqrt(np.sum((u - v) ** 2)), np.sqrt(np.sum((u + v) ** 2))
        angle = 2 * np.arcsin(apart / 2) if apart <= together else np.pi - 2 * np.arcsin(together / 2)
        cosines.append(cosine)
        angles.append(float(angle / np.pi))
    return math.fsum(cosines) / len(cosines), math.fsum(angles) / len(angles)


def observer_angles(runs, points, rows_by_point, n):
    return observe(runs, points, rows_by_point, (0, n), batch=8, angles=True)


def observe(runs, points, rows_by_point, keep, batch, angles=False):
    """Feed an observer batch by batch, the points of each batch in network order, as an extraction does; its
    per-sample cosines (or angles)."""
    observer = DepthObserver(runs, points, keep)
    count = len(next(iter(rows_by_point.values())))
    for start in range(0, count, batch):
        stop = min(start + batch, count)
        sink = observer.sink(start, stop)
        for k, point in enumerate(observer.points):
            sink[k](torch.from_numpy(rows_by_point[point.name][start:stop]))
    return observer.angles if angles else observer.cosines


def adversarial_rows(rng: np.random.Generator, n: int = 37, d: int = 24) -> dict[str, np.ndarray]:
    """Three points of one shape: random rows with zero rows, duplicates (cos 1), negated rows (cos -1), ties and rows
    at 1e19 and 1e-30."""
    a = rng.standard_normal((n, d)).astype(np.float32)
    b = rng.standard_normal((n, d)).astype(np.float32)
    a[0], b[1] = 0, 0                      # zero rows on either side
    b[2] = a[2]                            # the same sample: cosine 1, distance 0
    b[3] = -a[3]                           # opposite: cosine -1, distance 1
    b[4] = a[4] * np.float32(1e19)         # extreme scales, the same direction
    a[5], b[5] = a[5] * np.float32(1e-30), b[5] * np.float32(1e-30)
    b[6:9] = b[6]                          # ties among rows
    c = np.abs(rng.standard_normal((n, d))).astype(np.float32)
    return {"p0": a, "p1": b, "p2": c}


def test_unit_runs_stop_where_the_shape_or_the_chain_changes():
    shapes = {"stem": (4, 8, 8), "a": (4, 8, 8), "b": (4, 8, 8), "down": (8, 4, 4), "c": (8, 4, 4), "d": (8, 4, 4)}
    units = [RemovableUnit("u1", "stem", "a", 10), RemovableUnit("u2", "a", "b", 10),
             RemovableUnit("u3", "c", "d", 40), RemovableUnit("u4", "d", None, 40),  # no output point
             RemovableUnit("u5", "b", "down", 5)]  # changes the shape
    assert unit_runs(units, shapes) == [
        UnitRun(("u1",), "stem", "a"), UnitRun(("u1", "u2"), "stem", "b"), UnitRun(("u2",), "a", "b"),
        UnitRun(("u3",), "c", "d")]


def test_the_observer_matches_a_float64_oracle_on_adversarial_rows_for_any_batches_and_ranks():
    rows = adversarial_rows(np.random.default_rng(0))
    points = [LayerPoint(name, name) for name in rows]
    runs = [UnitRun(("u1",), "p0", "p1"), UnitRun(("u1", "u2"), "p0", "p2"), UnitRun(("u2",), "p1", "p2")]
    n = len(rows["p0"])
    whole = observe(runs, points, rows, (0, n), batch=8)
    for run in depth_rows(runs, whole, observer_angles(runs, points, rows, n)):
        expected_cosine, expected_angle = oracle(rows[run.input_point], rows[run.output_point])
        assert run.samples == n
        assert run.mean_cosine == pytest.approx(expected_cosine, rel=1e-12, abs=1e-14)
        assert run.angular_distance == pytest.approx(expected_angle, rel=1e-12, abs=1e-14)
        assert 0 <= run.angular_distance <= 1 and -1 <= run.mean_cosine <= 1
    assert whole[0, 0] == whole[0, 1] == whole[1, 0] == whole[1, 2] == 0.0  # a zero row has cosine 0
    assert whole[2, 0] == pytest.approx(1.0, abs=1e-15) and whole[3, 0] == pytest.approx(-1.0, abs=1e-15)
    assert whole[4, 0] == pytest.approx(1.0, abs=1e-15)
    angles = observer_angles(runs, points, rows, n)
    assert angles[0, 0] == 0.5 and angles[2, 0] == 0.0 and angles[3, 0] == 1.0
    # other batches, and ranks that keep their own rows: the same bytes once gathered
    for batch, cuts in ((5, (0, 11, 30, n)), (37, (0, 20, n)), (1, (0, n))):
        for angles in (False, True):
            parts = [observe(runs, points, rows, (lo, hi), batch, angles)
                     for lo, hi in zip(cuts, cuts[1:], strict=False)]
            assert np.concatenate(parts).tobytes() == observe(runs, points, rows, (0, n), 8, angles).tobytes()


@pytest.fixture(scope="module")
def tiny(tmp_path_factory):
    """resnet20 (random weights) on the digits at the paper's points, analysed with SMALL's graph."""
    return analyze("resnet20", "digits:all", SMALL, out=tmp_path_factory.mktemp("depth") / "run", progress=False)


def test_an_analysis_records_every_run_exactly_as_the_oracle_computes_it(tiny):
    model = build_model("resnet20", 10, None, SMALL.seed).model
    dataset = as_dataset("digits:all")
    order = SampleSets.choose(dataset.labels, dataset.num_classes, SMALL).order
    points = layer_points(model, "paper")
    features = {item.point.name: item.features for item in
                extract_features(model, points, dataset, order, normalize="cifar10", progress=False)}
    recorded = load_depth(tiny.path)
    units = removable_units(model, "paper")
    expected_runs = unit_runs(units, {name: (len(f[0]),) for name, f in features.items()})
    assert [(row.units, row.input_point, row.output_point) for row in recorded] == \
        [(run.units, run.input_point, run.output_point) for run in expected_runs]
    assert {row.units for row in recorded if len(row.units) == 1} == \
        {(unit.name,) for unit in units if unit.name not in ("layer2.0", "layer3.0")}  # resnet20's 7 identity blocks
    assert max(len(row.units) for row in recorded) == 3  # stage 1: the stem's shape carries through its 3 blocks
    for row in recorded:
        cosine, angle = oracle(features[row.input_point], features[row.output_point])
        assert row.samples == len(order)
        assert row.mean_cosine == pytest.approx(cosine, rel=1e-10)
        assert row.angular_distance == pytest.approx(angle, rel=1e-10)
        assert row.block_influence == (pytest.approx(1 - cosine, rel=1e-9) if len(row.units) == 1 else None)


def test_groups_spilling_and_a_resume_give_the_same_bytes(tiny, tmp_path):
    straight = (tiny.path / "depth.csv").read_bytes()
    grouped = analyze("resnet20", "digits:all", SMALL, out=tmp_path / "grouped", progress=False,
                      run=RunSettings(max_memory=80_000_000))  # passes of two points: the first runs deepest
    assert (grouped.path / "depth.csv").read_bytes() == straight
    spilled = analyze("resnet20", "digits:all", SMALL, out=tmp_path / "spilled", progress=False,
                      run=RunSettings(spill_dir=tmp_path))
    assert (spilled.path / "depth.csv").read_bytes() == straight
    (grouped.path / "depth.csv").unlink()  # a folder written before SPEC 22: a resume adds it, measuring nothing else
    layers = (grouped.path / "layers.csv").read_bytes()
    analyze("resnet20", "digits:all", SMALL, out=grouped.path, progress=False, resume=True)
    assert (grouped.path / "depth.csv").read_bytes() == straight
    assert (grouped.path / "layers.csv").read_bytes() == layers


def test_a_model_outside_the_zoo_without_residual_blocks_has_no_runs(tmp_path):
    """Outside the zoo the units are the residual blocks (SPEC 25); a plain chain has none, so no run to measure."""
    model = torch.nn.Sequential(torch.nn.Conv2d(3, 4, 3, padding=1), torch.nn.ReLU(), torch.nn.Flatten(),
                                torch.nn.Linear(4 * 32 * 32, 10))
    data = as_dataset("digits:all")
    settings = GraphSettings(vertices=40, edges=100, hist_samples=60, lu_batch_size=20, lu_batches=2)
    result = analyze(model, data, settings, out=tmp_path / "run", progress=False)
    assert load_depth(tmp_path / "run") == [] and result.manifest.removable_units == []
    assert result.manifest.refused_units == {}
