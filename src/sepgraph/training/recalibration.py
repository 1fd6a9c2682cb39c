"""The zero-training proxy of a cut (SPEC 19): batch-norm statistics re-estimated on a few training images, every
weight left as it is."""

from __future__ import annotations

import copy

import numpy as np
import torch
from torch import nn

from ..data.protocol import LabelledImages
from ..data.sources import DataLike, as_dataset
from ..devices import evaluation_mode, resolve_device
from .evaluation import evaluate

PROXY_IMAGES = 2048
"""Unaugmented training images the statistics are re-estimated on."""
PROXY_BATCH = 256
"""Images per batch of the re-estimation (each batch's statistics count equally in the cumulative average)."""


def proxy_images(dataset: LabelledImages, seed: int, count: int = PROXY_IMAGES) -> np.ndarray:
    """(min(count, N),) indices of ``dataset`` drawn without replacement by ``seed``, in drawn order."""
    return np.random.default_rng(seed).permutation(len(dataset))[:count]


def recalibrate_batch_norm(model: nn.Module, dataset: DataLike, indices: np.ndarray, *, normalize: str,
                           batch_size: int = PROXY_BATCH, device: str = "auto") -> nn.Module:
    """Reset every batch norm's running statistics and re-estimate them as the cumulative average over batches of
    ``indices`` (momentum None), with the model otherwise in eval mode (dropout off) and no gradient; the
    momenta come back afterwards. Returns ``model``, changed in place."""
    dataset = as_dataset(dataset)
    norms = [module for module in model.modules() if isinstance(module, nn.modules.batchnorm._BatchNorm)]
    momenta = [norm.momentum for norm in norms]
    target = resolve_device(device)
    model.to(target)
    try:
        with evaluation_mode(model), torch.no_grad():
            for norm in norms:
                norm.reset_running_stats()
                norm.momentum = None
                norm.train()
            for images, _ in dataset.batches(indices, batch_size, normalize):
                model(images.to(target))
    finally:
        for norm, momentum in zip(norms, momenta, strict=True):
            norm.momentum = momentum
    return model


def recalibrated_accuracy(model: nn.Module, train_set: LabelledImages, seed: int, evaluation: LabelledImages, *,
                          normalize: str, device: str = "auto", progress: bool = False) -> float:
    """The zero-training proxy (SPEC 19): accuracy (percent) on ``evaluation`` of a copy of ``model`` whose batch
    norms were recalibrated on :data:`PROXY_IMAGES` of ``train_set`` drawn with ``seed``; ``model`` is left as it is."""
    recalibrated = recalibrate_batch_norm(copy.deepcopy(model), train_set, proxy_images(train_set, seed),
                                          normalize=normalize, device=device)
    return evaluate(recalibrated, evaluation, normalize=normalize, device=device, progress=progress).accuracy
