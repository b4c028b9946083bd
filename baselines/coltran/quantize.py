"""ColTran's inputs and targets from the suite's tensors: gray levels, coarse images, 3-bit colour bins.

ColTran's core predicts one of 512 coarse colours per pixel: each RGB channel cut to 3 bits (x // 32)
and the three combined as bin = 64·R + 8·G + B (``coltran/utils/base_utils.py: labels_to_bins``).

Gray input (a documented deviation): ColTran reads ``tf.image.rgb_to_grayscale`` (Rec. 601 luma) of the
RGB image. Here the input is derived from the suite's L channel, the exact grayscale every method is
given: the achromatic sRGB colour with the same CIE L* (``color.gray_rgb``), as an 8-bit level 0..255.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F

from colorgan.method.color import gray_rgb

NUM_LEVELS = 256  # 8-bit values per channel
COARSE_BITS = 3
NUM_COARSE_LEVELS = 2**COARSE_BITS  # 8 values per channel in the core
NUM_BINS = NUM_COARSE_LEVELS**3  # 512 coarse colours


def gray_levels(L: torch.Tensor) -> torch.Tensor:
    """L: (B, 1, H, W) in [-1, 1] -> gray (B, H, W) long in 0..255 (sRGB level of the same L*)."""
    return torch.round(gray_rgb(L)[:, 0] * 255).long()


def area_downsample(levels: torch.Tensor, size: int) -> torch.Tensor:
    """Box-average 8-bit levels to size x size and round (tf.image.resize 'area').

    Args:
        levels: (B, C, H, W) or (B, H, W), integer or float in 0..255; H and W multiples of ``size``.
    Returns:
        The same layout at (size, size), long in 0..255.
    """
    x = levels.float()
    if x.shape[-1] == size:
        return x.round().long()
    squeeze = x.ndim == 3
    x = F.adaptive_avg_pool2d(x[:, None] if squeeze else x, size)
    return (x[:, 0] if squeeze else x).round().long()


def nearest_upsample(levels: torch.Tensor, size: int) -> torch.Tensor:
    """(B, H, W) long -> (B, size, size) long by pixel replication (tf 'area' resize for whole factors)."""
    factor = size // levels.shape[-1]
    return levels.repeat_interleave(factor, dim=-2).repeat_interleave(factor, dim=-1)


def to_coarse_bits(levels: torch.Tensor) -> torch.Tensor:
    """8-bit levels (any shape, long 0..255) -> 3-bit levels 0..7 (``convert_bits(x, 8, 3)`` = x // 32)."""
    return levels // (NUM_LEVELS // NUM_COARSE_LEVELS)


def labels_to_bins(labels: torch.Tensor) -> torch.Tensor:
    """3-bit RGB labels (B, 3, H, W) long in 0..7 -> bins (B, H, W) long in 0..511 (64·R + 8·G + B)."""
    r, g, b = labels.unbind(dim=1)
    return (r * NUM_COARSE_LEVELS + g) * NUM_COARSE_LEVELS + b


def bins_to_labels(bins: torch.Tensor) -> torch.Tensor:
    """Inverse of :func:`labels_to_bins`: bins (B, H, W) in 0..511 -> labels (B, 3, H, W) in 0..7."""
    n = NUM_COARSE_LEVELS
    return torch.stack([bins // (n * n), (bins // n) % n, bins % n], dim=1)  # (B, 3, H, W)
