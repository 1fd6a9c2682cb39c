"""Options and set-up the benchmark scripts share (run them from the repository root)."""

from __future__ import annotations

import argparse

import torch
from torch import nn

from sepgraph import ImageDataset, build_model, load_dataset

SHARED_TEST_SET = "npz:../shared/data/cifar10-jpeg/cifar10_test.npz"


def add_model_options(parser: argparse.ArgumentParser, data: str = SHARED_TEST_SET, normalize: str = "imagenet"):
    parser.add_argument("--model", default="resnet56", help="zoo name, torchvision:NAME or timm:NAME")
    parser.add_argument("--weights", help="checkpoint (default: random weights, seed 0)")
    parser.add_argument("--data", default=data, help=f"dataset spec (default: {data})")
    parser.add_argument("--normalize", default=normalize, help=f"input normalisation (default: {normalize})")


def model_and_data(args: argparse.Namespace) -> tuple[nn.Module, ImageDataset]:
    """The dataset of ``--data`` and ``--model`` with ``--weights`` (or seed-0 random weights), in eval mode."""
    dataset = load_dataset(args.data)
    return build_model(args.model, dataset.num_classes, args.weights, seed=0).model.eval(), dataset


def synchronise(device: torch.device) -> None:
    """Wait for ``device``'s queued work (CUDA), so a timer reads the work's end."""
    if device.type == "cuda":
        torch.cuda.synchronize(device)
