"""Dynamics during training (SPEC 17): dynamics.csv of a 2-epoch run, resumable, and its heatmap."""

import csv

import numpy as np
import pytest

from sepgraph import SepgraphError, build_model, train
from sepgraph.analysis.dynamics import measure_dynamics, small_settings
from sepgraph.data.dataset import ImageDataset
from sepgraph.data.sources import load_dataset
from sepgraph.results.dynamics_table import COLUMNS, load_dynamics
from sepgraph.training.recipe import Recipe

RECIPE = Recipe(epochs=2, lr=0.05, batch_size=100, milestones=())


@pytest.fixture(scope="module")
def digits():
    full = load_dataset("digits:train")
    keep = np.arange(0, len(full), 4)[:300]
    return ImageDataset.from_arrays(full.read(keep), full.labels[keep], full.classes, spec="digits:train[::4]")


@pytest.fixture(scope="module")
def tracked(digits, tmp_path_factory):
    out = tmp_path_factory.mktemp("dynamics") / "run"
    train("resnet20", digits, out=out, recipe=RECIPE, normalize="none", track_every=1,
                track_data="digits:test", track_vertices=120)
    return out


def test_dynamics_of_a_two_epoch_run(tracked):
    with open(tracked / "dynamics.csv") as handle:
        rows = list(csv.DictReader(handle))
    assert tuple(rows[0]) == COLUMNS
    assert [int(r["epoch"]) for r in rows] == [e for e in (0, 1, 2) for _ in range(19)]
    assert [r["name"] for r in rows[:19]] == [r["name"] for r in rows[19:38]]
    for r in rows:
        assert 0 <= float(r["knn_acc"]) <= 1 and -0.5 <= float(r["lu_q_mean"]) <= 1 and float(r["M"]) > -1
    assert (tracked / "dynamics.png").stat().st_size > 10_000
    # the last measurement is what measure_dynamics says of the saved model
    test = load_dataset("digits:test")
    model = build_model("resnet20", 10, tracked / "model.pt").model
    again = measure_dynamics(model, test, small_settings(test, 120), "none", 2)
    assert again == [row for row in load_dynamics(tracked / "dynamics.csv") if row.epoch == 2]


def test_dynamics_resume_like_training(digits, tracked, tmp_path):
    out = tmp_path / "resumed"
    train("resnet20", digits, out=out, recipe=Recipe(epochs=1, lr=0.05, batch_size=100, milestones=()),
                normalize="none", track_every=1, track_data="digits:test", track_vertices=120)
    assert {row.epoch for row in load_dynamics(out / "dynamics.csv")} == {0, 1}
    train("resnet20", digits, out=out, recipe=RECIPE, normalize="none", resume=True, track_every=1,
                track_data="digits:test", track_vertices=120)
    assert (out / "dynamics.csv").read_bytes() == (tracked / "dynamics.csv").read_bytes()


def test_tracking_options_are_checked(digits, tmp_path):
    with pytest.raises(SepgraphError, match="every must be at least 1, got -1"):
        train("resnet20", digits, out=tmp_path / "a", recipe=RECIPE, track_every=-1)
    with pytest.raises(SepgraphError, match="vertices must be at least 21"):
        train("resnet20", digits, out=tmp_path / "b", recipe=RECIPE, track_every=1, track_vertices=1)


def test_tracking_changes_nothing_in_the_training(digits, tracked, tmp_path):
    import torch

    train("resnet20", digits, out=tmp_path / "plain", recipe=RECIPE, normalize="none")
    plain = torch.load(tmp_path / "plain" / "model.pt", weights_only=True)
    watched = torch.load(tracked / "model.pt", weights_only=True)
    assert all(torch.equal(plain[key], watched[key]) for key in plain)


def test_resuming_with_other_tracking_is_refused(digits, tmp_path):
    out = tmp_path / "run"
    once = Recipe(epochs=1, lr=0.05, batch_size=100, milestones=())
    train("resnet20", digits, out=out, recipe=once, normalize="none", track_every=1, track_data="digits:test",
                track_vertices=120)
    with pytest.raises(SepgraphError, match="tracked differently"):
        train("resnet20", digits, out=out, recipe=RECIPE, normalize="none", resume=True, track_every=1,
                    track_data="digits:test", track_vertices=100)
    with pytest.raises(SepgraphError, match="track_data needs track_every"):
        train("resnet20", digits, out=tmp_path / "x", recipe=RECIPE, track_data="digits:test")
