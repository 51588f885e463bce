"""The one place where a complex cine becomes two real channels and back.

Networks see real tensors (B, 2, T, H, W) with channel 0 = real part and channel 1 =
imaginary part; everything around them (physics, data consistency, metrics) stays
``torch.complex64``.
"""

from __future__ import annotations

import torch
from torch import Tensor


def complex_to_channels(image: Tensor) -> Tensor:
    """Complex cine to a real two-channel network input.

    image: (B, T, H, W) complex  ->  (B, 2, T, H, W) float32 (real, imaginary)

    Raises:
        ValueError: if ``image`` is not complex or not 4-D.
    """
    if not image.is_complex() or image.ndim != 4:
        raise ValueError(
            f"image must be a complex (B, T, H, W) tensor, got {image.dtype} of shape {tuple(image.shape)}"
        )
    image = image.to(torch.complex64)
    return torch.view_as_real(image).permute(0, 4, 1, 2, 3).contiguous()  # (B, 2, T, H, W)


def channels_to_complex(channels: Tensor) -> Tensor:
    """Real two-channel network output back to a complex cine.

    channels: (B, 2, T, H, W) real (any float dtype, e.g. float16 under autocast)
    returns (B, T, H, W) complex64 (computed in float32)

    Raises:
        ValueError: if ``channels`` is complex, not 5-D, or has no 2 channels.
    """
    if channels.is_complex() or channels.ndim != 5 or channels.shape[1] != 2:
        raise ValueError(
            "channels must be a real (B, 2, T, H, W) tensor, "
            f"got {channels.dtype} of shape {tuple(channels.shape)}"
        )
    channels = channels.float()
    return torch.complex(channels[:, 0], channels[:, 1])  # (B, T, H, W)
