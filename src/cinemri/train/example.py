"""A tiny task that shows the :class:`~cinemri.train.Task` contract and smoke-tests the engine.

Learn ``y = smooth(x)`` (a 3x3 box filter) on random images with a two-layer conv net.
It needs no data and trains in seconds on a CPU; use it to check an installation or a
torchrun setup before training a real model.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import torch
from torch import Tensor, nn
from torch.nn import functional as F
from torch.utils.data import Dataset


def smooth(x: Tensor) -> Tensor:
    """3x3 box filter with zero padding. x: (..., 1, H, W) float -> same shape and dtype."""
    return F.avg_pool2d(x, kernel_size=3, stride=1, padding=1, count_include_pad=True)


class RandomImages(Dataset):
    """``length`` items ``{"x": (1, size, size), "y": smooth(x)}`` float32, fixed by ``seed``."""

    def __init__(self, length: int, size: int, seed: int) -> None:
        if length < 1 or size < 3:
            raise ValueError(f"RandomImages: length must be >= 1 and size >= 3, got {length}, {size}")
        gen = torch.Generator().manual_seed(seed)
        self.x = torch.randn(length, 1, size, size, generator=gen)  # (N, 1, H, W)
        self.y = smooth(self.x)                                      # (N, 1, H, W)

    def __len__(self) -> int:
        return self.x.shape[0]

    def __getitem__(self, index: int) -> dict[str, Tensor]:
        return {"x": self.x[index], "y": self.y[index]}


class TinyNet(nn.Module):
    """conv(1->width, 3x3) -> ReLU -> dropout -> conv(width->1, 3x3). (B, 1, H, W) -> (B, 1, H, W)."""

    def __init__(self, width: int = 8, dropout: float = 0.0) -> None:
        super().__init__()
        self.conv1 = nn.Conv2d(1, width, 3, padding=1)
        self.drop = nn.Dropout(dropout)
        self.conv2 = nn.Conv2d(width, 1, 3, padding=1)

    def forward(self, x: Tensor) -> Tensor:
        return self.conv2(self.drop(torch.relu(self.conv1(x))))


@dataclass
class SmoothingTask:
    """The example task. ``noise`` adds random Gaussian noise to inputs in ``loss`` (drawn
    from torch's global RNG, so resume must restore RNG states to be exact)."""

    train_size: int = 32
    val_size: int = 8
    image_size: int = 12
    width: int = 8
    dropout: float = 0.0
    noise: float = 0.0
    seed: int = 0
    model_name: str = "tinynet"

    def __post_init__(self) -> None:
        self.model_args: dict[str, Any] = {"width": self.width, "dropout": self.dropout}
        self.train_dataset = RandomImages(self.train_size, self.image_size, self.seed)
        self.val_dataset: Dataset | None = (RandomImages(self.val_size, self.image_size, self.seed + 1)
                                            if self.val_size else None)

    def build_model(self) -> nn.Module:
        return TinyNet(**self.model_args)

    def collate(self, samples: list[dict[str, Tensor]]) -> dict[str, Tensor]:
        return {key: torch.stack([s[key] for s in samples]) for key in samples[0]}  # (B, 1, H, W)

    def loss(self, batch: dict[str, Tensor], model: nn.Module) -> tuple[Tensor, dict[str, float]]:
        x = batch["x"]
        if self.noise:
            x = x + self.noise * torch.randn_like(x)
        pred = model(x)
        loss = F.mse_loss(pred.float(), batch["y"])
        return loss, {"mae": float(F.l1_loss(pred.float(), batch["y"]).detach())}

    def validate(self, batch: dict[str, Tensor], model: nn.Module) -> dict[str, Tensor]:
        err = (model(batch["x"]).float() - batch["y"]) ** 2  # (B, 1, H, W)
        return {"loss": err.mean(dim=(1, 2, 3))}             # (B,) per-sample MSE
