"""ColTran's two parallel upsamplers (``coltran/models/upsampler.py``), as one network class.

Both predict the 8-bit value of one RGB channel at every pixel at once, from that channel's lower-detail
version and the gray image, with an unmasked axial-attention encoder:
    colour upsampler:  channel c at 3 bits (0..7)          + gray (coarse) -> 8 bits (coarse resolution)
    spatial upsampler: channel c at 8 bits, pixel-replicated + gray (full) -> 8 bits (full resolution)
The channel is identified by offsetting its values by c·levels before the embedding (one-hot(3·levels)
-> Dense in the official code). Training uses one random channel per image; at colorize time all three
channels go through the same weights and the argmax is taken.
"""

from __future__ import annotations

import torch
from torch import nn

from baselines.coltran.layers import ENCODER_PATTERN, AxialPositions, AxialStack
from baselines.coltran.quantize import NUM_LEVELS


class ParallelUpsampler(nn.Module):
    """(channel values, channel index, gray) -> 8-bit logits of that channel at every pixel."""

    def __init__(self, num_input_levels: int, size: int, dim: int, ff_size: int, heads: int, num_layers: int):
        super().__init__()
        self.num_input_levels = num_input_levels
        self.color_embedding = nn.Embedding(3 * num_input_levels, dim)
        self.gray_embedding = nn.Embedding(NUM_LEVELS, dim)
        self.input = nn.Linear(2 * dim, dim)
        self.positions = AxialPositions(size, size, dim)
        self.encoder = AxialStack(ENCODER_PATTERN, num_layers, dim, ff_size, heads)
        self.logits = nn.Linear(dim, NUM_LEVELS)

    def forward(self, values: torch.Tensor, channel: torch.Tensor, gray: torch.Tensor) -> torch.Tensor:
        """values: (B, H, W) long in 0..num_input_levels-1; channel: (B,) long in 0..2; gray: (B, H, W) long.

        Returns:
            (B, H, W, 256) logits of the channel's 8-bit value.
        """
        colour = self.color_embedding(values + self.num_input_levels * channel[:, None, None])  # (B, H, W, D)
        x = self.input(torch.cat([colour, self.gray_embedding(gray)], dim=-1)) + self.positions()
        return self.logits(self.encoder(x))

    @torch.no_grad()
    def upsample(self, values: torch.Tensor, gray: torch.Tensor) -> torch.Tensor:
        """All three channels, argmax: values (B, 3, H, W), gray (B, H, W) -> (B, 3, H, W) long in 0..255."""
        B = values.shape[0]
        channels = [self(values[:, c], torch.full((B,), c, dtype=torch.long, device=values.device), gray).argmax(-1)
                    for c in range(3)]
        return torch.stack(channels, dim=1)  # (B, 3, H, W)
