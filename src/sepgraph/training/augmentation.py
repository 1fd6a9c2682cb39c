"""The recipe's augmentation (SPEC 10): RandomCrop(size, padding) of the zero-padded image and a horizontal flip,
drawn per batch from the run's own generator (so a resumed run draws the same)."""

from __future__ import annotations

import torch
import torch.nn.functional as F


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
