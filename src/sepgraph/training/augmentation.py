"""The recipe's augmentation (SPEC 10): RandomCrop(size, padding) of the zero-padded image and a horizontal flip,
drawn per batch from the run's own generator (so a resumed run draws the same)."""

from __future__ import annotations

import torch
import torch.nn.functional as F


def augment_batch(images: torch.Tensor, generator: torch.Generator, padding: int) -> torch.Tensor:
    """Random crop of the zero-padded image back to its size, then a random horizontal flip, per sample: one
    gather for the whole batch (the crops are copies, so the values are those of cropping one by one).

    Args:
        images: (B, C, H, W) float in [0, 1], before normalisation (padding is black, as in torchvision).

    Returns:
        (B, C, H, W) in channels-last memory order (what the gather gives; the training step wants it so).
    """
    batch, _, height, width = images.shape
    padded = F.pad(images, (padding, padding, padding, padding)).permute(0, 2, 3, 1)  # (B, H + 2p, W + 2p, C)
    tops = torch.randint(0, 2 * padding + 1, (batch,), generator=generator)
    lefts = torch.randint(0, 2 * padding + 1, (batch,), generator=generator)
    flips = torch.rand(batch, generator=generator) < 0.5
    across = torch.arange(width)
    rows = tops.unsqueeze(1) + torch.arange(height)  # (B, H)
    columns = lefts.unsqueeze(1) + torch.where(flips.unsqueeze(1), across.flip(0), across)  # (B, W), flipped
    crops = padded[torch.arange(batch).view(-1, 1, 1), rows.unsqueeze(2), columns.unsqueeze(1)]  # (B, H, W, C)
    return crops.permute(0, 3, 1, 2)
