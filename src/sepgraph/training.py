"""The paper's training recipe (SPEC 10), resumable exactly, on CPU or CUDA.

SGD (lr 0.01, momentum 0.9, weight decay 0.005), batch 256, 150 epochs, lr x 0.1 at
epochs 50 and 100, RandomCrop(32, padding 4) and horizontal flips; every value is a
parameter. Each epoch writes, atomically, the plain ``state_dict`` (``model.pt``),
the full training state for ``resume`` (``state.pt``: model, optimizer, scheduler,
random generators; readable with ``weights_only=True``) and ``metrics.json``.
"""

from __future__ import annotations

import json
import math
import time
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn
from tqdm.auto import tqdm

from .data import ImageDataset, normalise, scale
from .devices import resolve_device
from .errors import SepgraphError
from .evaluation import evaluate
from .files import atomic_text, atomic_write


@dataclass
class Recipe:
    """SPEC 10's hyper-parameters; ``augment`` is RandomCrop(size, padding 4) plus horizontal flip."""

    epochs: int = 150
    lr: float = 0.01
    momentum: float = 0.9
    weight_decay: float = 0.005
    batch_size: int = 256
    milestones: Sequence[int] = (50, 100)
    gamma: float = 0.1
    augment: bool = True
    padding: int = 4
    seed: int = 0

    def __post_init__(self) -> None:
        problems = [f"{flag} {value}" for flag, value, fine in (
            ("--epochs", self.epochs, self.epochs >= 0), ("--lr", self.lr, math.isfinite(self.lr) and self.lr > 0),
            ("--momentum", self.momentum, 0 <= self.momentum < math.inf),
            ("--weight-decay", self.weight_decay, 0 <= self.weight_decay < math.inf),
            ("--batch-size", self.batch_size, self.batch_size >= 1),
            ("--gamma", self.gamma, 0 < self.gamma < math.inf), ("--seed", self.seed, self.seed >= 0),
            ("--milestones", list(self.milestones), all(m >= 0 for m in self.milestones)),
            ("padding", self.padding, self.padding >= 0)) if not fine]
        if problems:
            raise SepgraphError(f"training recipe: {', '.join(problems)} out of range (epochs and milestones 0 or "
                                "more, lr and gamma positive, momentum and weight decay 0 or more, batch size 1 "
                                "or more, seed 0 or more)")

    def check(self) -> None:
        """A recipe that trains: at least one epoch."""
        if self.epochs < 1:
            raise SepgraphError(f"--epochs must be at least 1 to train, got {self.epochs}")


@dataclass
class TrainingRun:
    """What a training run left behind: one metrics dict per epoch and where the files are."""

    out: Path
    metrics: list[dict] = field(default_factory=list)


def augment_batch(images: torch.Tensor, generator: torch.Generator, padding: int) -> torch.Tensor:
    """Random crop of the zero-padded image back to its size, then a random horizontal flip, per sample.

    Args:
        images: (B, C, H, W) float in [0, 1], before normalisation (padding is black, as in torchvision).
    """
    batch, _, height, width = images.shape
    padded = F.pad(images, (padding, padding, padding, padding))
    tops = torch.randint(0, 2 * padding + 1, (batch,), generator=generator)
    lefts = torch.randint(0, 2 * padding + 1, (batch,), generator=generator)
    flips = torch.rand(batch, generator=generator) < 0.5
    crops = torch.stack([padded[b, :, t:t + height, s:s + width] for b, (t, s) in
                         enumerate(zip(tops.tolist(), lefts.tolist(), strict=True))])
    return torch.where(flips.view(-1, 1, 1, 1), crops.flip(3), crops)


def train(
    model: nn.Module,
    dataset: ImageDataset,
    *,
    normalize: str,
    recipe: Recipe | None = None,
    test_dataset: ImageDataset | None = None,
    out: str | Path = "runs/train",
    resume: bool = False,
    parameters: Sequence[nn.Parameter] | None = None,
    frozen_statistics: bool = False,
    device: str = "auto",
    progress: bool = True,
    observer: Callable[[int, nn.Module], None] | None = None,
) -> TrainingRun:
    """Train ``model`` on ``dataset`` with ``recipe`` (SPEC 10), writing checkpoints to ``out`` every epoch.

    Args:
        parameters: train only these (e.g. a new head); all when None.
        frozen_statistics: keep the model in eval mode so batch-norm statistics stay as they are.
        resume: continue from ``out/state.pt`` exactly (same batches, same augmentation).
        observer: called as ``observer(epoch, model)`` when training starts (epoch 0, or the epoch it resumes
            at) and after each epoch is saved, e.g. a :class:`~sepgraph.dynamics.DynamicsTracker`.
    """
    recipe = recipe or Recipe()
    recipe.check()
    target = resolve_device(device)
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    model.to(target)
    trainable = list(parameters) if parameters is not None else [p for p in model.parameters() if p.requires_grad]
    optimizer = torch.optim.SGD(trainable, lr=recipe.lr, momentum=recipe.momentum, weight_decay=recipe.weight_decay)
    scheduler = torch.optim.lr_scheduler.MultiStepLR(optimizer, list(recipe.milestones), recipe.gamma)
    # dropout draws from torch's global generator: seeded from the recipe here (restored on resume), inside a
    # fork so the caller's generator is left as it was
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(recipe.seed)
        generator = torch.Generator().manual_seed(recipe.seed)
        run = TrainingRun(out)
        start_epoch = 0
        if resume:
            start_epoch = _restore(out, model, optimizer, scheduler, generator, recipe, run)
        elif (out / "state.pt").exists():
            raise SepgraphError(f"{str(out)!r} already holds a training run; pass --resume to continue it "
                                "or choose another --out")
        trainable_ids = {id(p) for p in trainable}
        frozen = [p for p in model.parameters() if id(p) not in trainable_ids]
        saved_flags = [p.requires_grad for p in frozen]
        for p in frozen:
            p.requires_grad_(False)
        try:
            if observer is not None:
                observer(start_epoch, model)
            for epoch in range(start_epoch, recipe.epochs):
                metrics = _epoch(model, dataset, normalize, recipe, optimizer, generator, target, epoch,
                                 frozen_statistics, progress)
                scheduler.step()
                if test_dataset is not None:
                    result = evaluate(model, test_dataset, normalize=normalize, device=device, progress=False)
                    metrics.update(test_accuracy=result.accuracy, test_loss=result.loss)
                run.metrics.append(metrics)
                _save(out, model, optimizer, scheduler, generator, recipe, run)
                if observer is not None:
                    observer(epoch + 1, model)
        finally:
            for p, flag in zip(frozen, saved_flags, strict=True):
                p.requires_grad_(flag)
        return run


def _epoch(model, dataset, normalize, recipe, optimizer, generator, device, epoch, frozen_statistics,
           progress) -> dict:
    model.train(not frozen_statistics)
    order = torch.randperm(len(dataset), generator=generator).numpy()
    steps = math.ceil(len(order) / recipe.batch_size)
    seen = correct = 0
    loss_sum = 0.0
    start = time.perf_counter()
    lr = optimizer.param_groups[0]["lr"]
    bar = tqdm(range(steps), desc=f"epoch {epoch + 1}/{recipe.epochs}", unit="batch", disable=not progress)
    for step in bar:
        chosen = np.sort(order[step * recipe.batch_size:(step + 1) * recipe.batch_size])
        images = scale(dataset.read(chosen))
        if recipe.augment:
            images = augment_batch(images, generator, recipe.padding)
        images = normalise(images, normalize).to(device)
        labels = torch.from_numpy(dataset.labels[chosen]).to(device)
        logits = model(images)
        loss = F.cross_entropy(logits, labels)
        if not torch.isfinite(loss):
            raise SepgraphError(f"training diverged at epoch {epoch + 1}, step {step + 1} (loss {loss.item()}); "
                                "lower --lr")
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        optimizer.step()
        seen += len(chosen)
        correct += int((logits.argmax(1) == labels).sum())
        loss_sum += float(loss.detach()) * len(chosen)
        bar.set_postfix(loss=f"{loss_sum / seen:.3f}", acc=f"{100 * correct / seen:.1f}%", lr=f"{lr:g}")
    return {"epoch": epoch + 1, "lr": lr, "train_loss": loss_sum / seen, "train_accuracy": 100.0 * correct / seen,
            "seconds": time.perf_counter() - start}


def _save(out: Path, model, optimizer, scheduler, generator, recipe, run: TrainingRun) -> None:
    state = {"model": model.state_dict(), "optimizer": optimizer.state_dict(), "scheduler": scheduler.state_dict(),
             "generator": generator.get_state(), "torch_rng": torch.get_rng_state(), "epoch": len(run.metrics),
             "recipe": json.dumps(asdict(recipe))}
    for name, content in (("state.pt", state), ("model.pt", model.state_dict())):
        atomic_write(out / name, lambda handle, c=content: torch.save(c, handle))
    atomic_text(out / "metrics.json", json.dumps({"recipe": asdict(recipe), "epochs": run.metrics}, indent=1) + "\n")


def _restore(out: Path, model, optimizer, scheduler, generator, recipe, run: TrainingRun) -> int:
    path = out / "state.pt"
    if not path.is_file():
        raise SepgraphError(f"nothing to resume: {str(path)!r} does not exist")
    try:
        state = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as error:
        raise SepgraphError(f"cannot resume from {str(path)!r}: {error}") from error
    saved, current = _comparable(json.loads(state["recipe"])), _comparable(asdict(recipe))
    changed = sorted(key for key in saved.keys() | current.keys() if saved.get(key) != current.get(key))
    if changed:
        raise SepgraphError(f"cannot resume: the recipe changed ({', '.join(changed)}); only --epochs may differ")
    model.load_state_dict(state["model"])
    optimizer.load_state_dict(state["optimizer"])
    scheduler.load_state_dict(state["scheduler"])
    generator.set_state(state["generator"])
    torch.set_rng_state(state["torch_rng"])
    run.metrics.extend(json.loads((out / "metrics.json").read_text())["epochs"][: int(state["epoch"])])
    return int(state["epoch"])


def _comparable(recipe: dict) -> dict:
    """A recipe without its epoch count, sequences as lists (JSON turns tuples into lists)."""
    return {k: list(v) if isinstance(v, (list, tuple)) else v for k, v in recipe.items() if k != "epochs"}
