import json
import math
from dataclasses import replace

import numpy as np
import pytest
import torch

from sepgraph import ImageDataset, SepgraphError, create_model, load_dataset
from sepgraph.cli import main
from sepgraph.devices import Processor
from sepgraph.training.augmentation import augment_batch
from sepgraph.training.loop import train
from sepgraph.training.recipe import Recipe

QUICK = Recipe(epochs=3, lr=0.02, batch_size=50, milestones=(2,), seed=3)


@pytest.fixture(scope="module")
def digits_train():
    """400 of the training digits: enough to learn something in two epochs, quick on two cores."""
    full = load_dataset("digits:train")
    keep = np.arange(0, len(full), len(full) // 400)[:400]
    return ImageDataset.from_arrays(full.read(keep), full.labels[keep], full.classes, description=full.description,
                                     spec="digits:train[:400]")


def fresh_model():
    torch.manual_seed(0)
    return create_model("resnet20")


def test_recipe_defaults_are_the_papers():
    recipe = Recipe()
    assert (recipe.lr, recipe.momentum, recipe.weight_decay, recipe.batch_size, recipe.epochs,
            tuple(recipe.milestones), recipe.gamma, recipe.padding) == (0.01, 0.9, 0.005, 256, 150, (50, 100), 0.1, 4)


def test_augmentation_crops_within_padding_and_flips():
    images = torch.arange(2 * 1 * 6 * 6, dtype=torch.float32).view(2, 1, 6, 6) + 1
    generator = torch.Generator().manual_seed(0)
    out = augment_batch(images, generator, padding=2)
    assert out.shape == images.shape
    for original, crop in zip(images, out, strict=True):
        values = set(crop.unique().tolist()) - {0.0}
        assert values <= set(original.unique().tolist())  # shifted copy plus black padding only
    batch = torch.rand(64, 3, 5, 5)
    flipped = augment_batch(batch, torch.Generator().manual_seed(0), padding=0)
    same = [torch.equal(a, b) for a, b in zip(batch, flipped, strict=True)]
    mirrored = [torch.equal(a.flip(2), b) for a, b in zip(batch, flipped, strict=True)]
    assert all(s or m for s, m in zip(same, mirrored, strict=True)) and 10 < sum(mirrored) < 54


def crop_one_by_one(images: torch.Tensor, generator: torch.Generator, padding: int) -> torch.Tensor:
    """The per-sample loop the batched augmentation replaced: the oracle of its batches."""
    batch, _, height, width = images.shape
    padded = torch.nn.functional.pad(images, (padding,) * 4)
    tops = torch.randint(0, 2 * padding + 1, (batch,), generator=generator)
    lefts = torch.randint(0, 2 * padding + 1, (batch,), generator=generator)
    flips = torch.rand(batch, generator=generator) < 0.5
    crops = torch.stack([padded[b, :, t:t + height, s:s + width] for b, (t, s) in
                         enumerate(zip(tops.tolist(), lefts.tolist(), strict=True))])
    return torch.where(flips.view(-1, 1, 1, 1), crops.flip(3), crops)


@pytest.mark.parametrize(("shape", "padding"), [((256, 3, 32, 32), 4), ((7, 1, 5, 9), 3), ((1, 3, 4, 4), 0)])
def test_batched_augmentation_gives_the_loops_batches_and_draws(shape, padding):
    images = torch.rand(shape)
    ours, theirs = torch.Generator().manual_seed(11), torch.Generator().manual_seed(11)
    for _ in range(3):  # the generator advances alike, so a resumed run draws the same batches
        assert torch.equal(augment_batch(images, ours, padding), crop_one_by_one(images, theirs, padding))
    assert torch.equal(ours.get_state(), theirs.get_state())


def test_training_learns_and_writes_checkpoints(tmp_path, digits_train):
    model = fresh_model()
    run = train(model, digits_train, normalize="none", recipe=QUICK, out=tmp_path, progress=False)
    assert [m["epoch"] for m in run.metrics] == [1, 2, 3]
    assert [m["lr"] for m in run.metrics] == pytest.approx([0.02, 0.02, 0.002])
    losses = [m["train_loss"] for m in run.metrics]
    assert losses[0] > losses[1] > losses[2]
    assert run.metrics[-1]["train_accuracy"] > 30  # measured 40.5%; chance is 10%
    state = torch.load(tmp_path / "model.pt", weights_only=True)
    assert set(state) == set(model.state_dict())
    assert json.loads((tmp_path / "metrics.json").read_text())["recipe"]["lr"] == 0.02
    assert sorted(p.name for p in tmp_path.iterdir()) == ["metrics.json", "model.pt", "state.pt"]


def test_resume_continues_exactly(tmp_path, digits_train):
    straight = fresh_model()
    train(straight, digits_train, normalize="none", recipe=QUICK, out=tmp_path / "straight", progress=False)
    interrupted = fresh_model()
    train(interrupted, digits_train, normalize="none", recipe=Recipe(**{**QUICK.__dict__, "epochs": 2}),
          out=tmp_path / "resumed", progress=False)
    resumed = fresh_model()
    run = train(resumed, digits_train, normalize="none", recipe=QUICK, out=tmp_path / "resumed", resume=True,
                progress=False)
    assert [m["epoch"] for m in run.metrics] == [1, 2, 3]
    for key, value in straight.state_dict().items():
        assert torch.equal(value, resumed.state_dict()[key]), key


def test_resume_refuses_a_changed_recipe_and_a_used_folder(tmp_path, digits_train):
    train(fresh_model(), digits_train, normalize="none", recipe=Recipe(**{**QUICK.__dict__, "epochs": 1}),
          out=tmp_path, progress=False)
    with pytest.raises(SepgraphError, match=r"recipe changed \(lr\)"):
        train(fresh_model(), digits_train, normalize="none", recipe=Recipe(**{**QUICK.__dict__, "lr": 0.1}),
              out=tmp_path, resume=True, progress=False)
    with pytest.raises(SepgraphError, match="pass --resume"):
        train(fresh_model(), digits_train, normalize="none", recipe=QUICK, out=tmp_path, progress=False)
    with pytest.raises(SepgraphError, match="nothing to resume"):
        train(fresh_model(), digits_train, normalize="none", recipe=QUICK, out=tmp_path / "new", resume=True,
              progress=False)


def test_head_only_training_leaves_the_body_untouched(tmp_path, digits_train):
    model = fresh_model()
    before = {k: v.clone() for k, v in model.state_dict().items()}
    train(model, digits_train, normalize="none", recipe=Recipe(epochs=1, lr=0.05, batch_size=100),
          out=tmp_path, parameters=list(model.linear.parameters()), frozen_statistics=True, progress=False)
    changed = {k for k, v in model.state_dict().items() if not torch.equal(v, before[k])}
    assert changed == {"linear.weight", "linear.bias"}
    assert all(p.requires_grad for p in model.parameters())


def test_train_command(tmp_path, capsys):
    code = main(["train", "--model", "resnet20", "--data", "digits:train", "--test-data", "digits:test",
                 "--normalize", "none", "--epochs", "1", "--batch-size", "128", "--lr", "0.05",
                 "--out", str(tmp_path)])
    assert code == 0
    out = capsys.readouterr().out
    assert "trained resnet20 for 1 epochs" in out and "test_accuracy" in out
    assert np.isfinite(json.loads((tmp_path / "metrics.json").read_text())["epochs"][0]["test_loss"])


def test_divergence_is_reported(tmp_path, digits_train):
    with pytest.raises(SepgraphError, match=r"training diverged at epoch 1, step \d+ \(loss (nan|inf)\); lower --lr"):
        train(fresh_model(), digits_train, normalize="none", recipe=Recipe(epochs=1, lr=1e12, batch_size=50),
              out=tmp_path, progress=False)


def test_bf16_without_native_bf16_ends_in_one_clear_line(tmp_path, digits_train, monkeypatch):
    from sepgraph.training import precision

    monkeypatch.setattr(precision, "processor", lambda: Processor("GenuineIntel", "Xeon", frozenset({"avx512f"})))
    with pytest.raises(SepgraphError, match=r"precision 'bf16' needs native bf16 arithmetic, which this processor "
                                            r"\(no avx512_bf16 or amx_bf16 flag\) lacks; use precision fp32"):
        train(fresh_model(), digits_train, normalize="none", recipe=replace(QUICK, precision="bf16"), out=tmp_path,
              progress=False, device="cpu")
    assert not (tmp_path / "state.pt").exists()
    with pytest.raises(SepgraphError, match="precision 'fp16' is not one of fp32, bf16"):
        replace(QUICK, precision="fp16")


def test_memory_format_is_the_recipes_and_recorded(tmp_path, digits_train):
    """Either layout trains the same recipe to close numbers (convolution rounding apart); the layout is recorded
    and a resume in the other one is refused."""
    runs = {}
    for layout in ("contiguous", "channels_last"):
        recipe = replace(QUICK, epochs=1, memory_format=layout)
        runs[layout] = train(fresh_model(), digits_train, normalize="none", recipe=recipe, out=tmp_path / layout,
                             progress=False, device="cpu")
        assert json.loads((tmp_path / layout / "metrics.json").read_text())["memory_format"] == layout
    assert runs["contiguous"].metrics[0]["train_loss"] == pytest.approx(runs["channels_last"].metrics[0]["train_loss"],
                                                                        rel=1e-2)
    with pytest.raises(SepgraphError, match=r"the recipe changed \(memory_format\)"):
        train(fresh_model(), digits_train, normalize="none", recipe=replace(QUICK, epochs=2),
              out=tmp_path / "contiguous", resume=True, progress=False, device="cpu")
    with pytest.raises(SepgraphError, match="memory format 'nhwc' is not one of channels_last, contiguous"):
        replace(QUICK, memory_format="nhwc")


def test_bf16_trains_where_native_and_is_recorded(tmp_path, digits_train, monkeypatch):
    from sepgraph.training import precision

    monkeypatch.setattr(precision, "processor", lambda: Processor("AuthenticAMD", "EPYC", frozenset({"avx512_bf16"})))
    recipe = replace(QUICK, precision="bf16", epochs=1)
    run = train(fresh_model(), digits_train, normalize="none", recipe=recipe, out=tmp_path, progress=False,
                device="cpu")
    metrics = json.loads((tmp_path / "metrics.json").read_text())
    assert metrics["recipe"]["precision"] == "bf16" and metrics["memory_format"] == "channels_last"
    assert run.metrics[0]["train_accuracy"] > 10
    with pytest.raises(SepgraphError, match=r"the recipe changed \(precision\)"):
        train(fresh_model(), digits_train, normalize="none", recipe=replace(recipe, precision="fp32", epochs=2),
              out=tmp_path, resume=True, progress=False, device="cpu")


@pytest.mark.parametrize("epochs", [1, 4, 7])
def test_schedules_follow_the_hand_computed_rates(epochs):
    """SPEC 10: ``step`` multiplies by gamma at each milestone; ``cosine`` is lr (1 + cos(pi e / E)) / 2 at epoch e."""
    for schedule, wanted in (
            ("cosine", [0.1 * (1 + math.cos(math.pi * e / epochs)) / 2 for e in range(epochs)]),
            ("step", [0.1 * 0.5 ** sum(e >= m for m in (2, 3)) for e in range(epochs)])):
        recipe = Recipe(epochs=epochs, lr=0.1, milestones=(2, 3), gamma=0.5, schedule=schedule)
        optimizer = torch.optim.SGD([torch.zeros(1, requires_grad=True)], lr=recipe.lr)
        scheduler, rates = recipe.learning_rates(optimizer), []
        for _ in range(epochs):
            rates.append(optimizer.param_groups[0]["lr"])
            optimizer.step()
            scheduler.step()
        assert rates == pytest.approx(wanted, rel=1e-12, abs=1e-15), schedule
    with pytest.raises(SepgraphError, match="schedule 'linear' is not one of step, cosine"):
        Recipe(schedule="linear")


def test_cosine_runs_record_their_rates_and_resume_only_at_the_same_epochs(tmp_path, digits_train):
    cosine = Recipe(**{**QUICK.__dict__, "epochs": 2, "schedule": "cosine"})
    run = train(fresh_model(), digits_train, normalize="none", recipe=cosine, out=tmp_path, progress=False)
    assert [m["lr"] for m in run.metrics] == pytest.approx([0.02, 0.01])
    with pytest.raises(SepgraphError, match=r"recipe changed \(epochs\)"):  # more epochs change the rates trained
        train(fresh_model(), digits_train, normalize="none", recipe=replace(cosine, epochs=3), out=tmp_path,
              resume=True, progress=False)
    assert "schedule" not in Recipe().key() and Recipe(schedule="cosine").key()["schedule"] == "cosine"
