"""Axial-attention layers of ColTran (``coltran/models/layers.py``), conditional or not.

All tensors here are channel-last images: x (B, H, W, D). A stack is a list of residual sublayers,
each followed by a (post-)LayerNorm, as in ColTran: ``x = norm(x + sublayer(x))``.

Conditioning (paper §4.2, "conditional transformer layers"; all on by default in the official config):
    - attention: q, k and v each get a per-position affine (scale, shift) computed from the context;
    - feed-forward: its output gets a per-position affine from the context;
    - LayerNorm: its affine comes from a learnably weighted spatial mean of the grayscale encoding z.
Each affine is applied as ``(1 + scale)·x + shift`` with the projection zero-initialised, so a layer
starts out unconditional (a stability choice of ours; the paper gives no initialisation).

Simplification (allowed in the doc's "minimum faithful" list): no relative-position attention bias,
which ColTran zero-initialises; positions come from learned per-axis embeddings only.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

ROW, COLUMN, FF = "row", "column", "ff"
ENCODER_PATTERN = (ROW, FF, COLUMN, FF)  # ColTran's FactorizedAttention: unmasked row and column attention


def zero_linear(d_in: int, d_out: int) -> nn.Linear:
    """A Linear layer that outputs exactly 0 at initialisation."""
    layer = nn.Linear(d_in, d_out)
    nn.init.zeros_(layer.weight)
    nn.init.zeros_(layer.bias)
    return layer


def modulate(x: torch.Tensor, projection: nn.Linear | None, context: torch.Tensor | None) -> torch.Tensor:
    """(1 + scale)·x + shift with (scale, shift) = projection(context); x unchanged without a projection.

    x: (..., D); context: (..., C) broadcastable to x's leading dimensions; projection: C -> 2D.
    """
    if projection is None:
        return x
    scale, shift = projection(context).chunk(2, dim=-1)
    return x * (1 + scale) + shift


class AxialAttention(nn.Module):
    """Multi-head self-attention along one axis of (B, H, W, D): each row (or column) is one sequence.

    ``causal`` masks the future along that axis; the present position stays visible (ColTran's
    'future' mask, strict upper triangle).
    """

    def __init__(self, dim: int, heads: int, axis: str, causal: bool, context_dim: int | None = None):
        super().__init__()
        self.heads, self.axis, self.causal = heads, axis, causal
        self.qkv = nn.Linear(dim, 3 * dim)
        self.out = nn.Linear(dim, dim)
        self.condition = zero_linear(context_dim, 6 * dim) if context_dim else None  # (scale, shift) of q, k, v

    def forward(self, x: torch.Tensor, context: torch.Tensor | None = None) -> torch.Tensor:
        """x: (B, H, W, D); context: (B, H, W, C) or None -> (B, H, W, D)."""
        qkv = modulate(self.qkv(x), self.condition, context)  # (B, H, W, 3D)
        if self.axis == COLUMN:
            qkv = qkv.transpose(1, 2)  # (B, W, H, 3D): columns become the sequences
        B, A, N, _ = qkv.shape  # A sequences of length N per image
        q, k, v = qkv.reshape(B * A, N, 3, self.heads, -1).permute(2, 0, 3, 1, 4)  # each (B·A, heads, N, d)
        y = F.scaled_dot_product_attention(q, k, v, is_causal=self.causal)  # (B·A, heads, N, d)
        y = y.transpose(1, 2).reshape(B, A, N, -1)  # (B, A, N, D)
        if self.axis == COLUMN:
            y = y.transpose(1, 2)  # back to (B, H, W, D)
        return self.out(y)


class FeedForward(nn.Module):
    """Position-wise MLP D -> ff -> D (ReLU), its output modulated by the context if conditional."""

    def __init__(self, dim: int, ff_size: int, context_dim: int | None = None):
        super().__init__()
        self.net = nn.Sequential(nn.Linear(dim, ff_size), nn.ReLU(), nn.Linear(ff_size, dim))
        self.condition = zero_linear(context_dim, 2 * dim) if context_dim else None

    def forward(self, x: torch.Tensor, context: torch.Tensor | None = None) -> torch.Tensor:
        """x: (B, H, W, D); context: (B, H, W, C) or None -> (B, H, W, D)."""
        return modulate(self.net(x), self.condition, context)


class Norm(nn.Module):
    """LayerNorm over D; conditional LayerNorm when ``z_dim`` is given (ColTran's cond_ln_sp_ave='learnable').

    The conditional affine comes from a spatial mean of z with learned per-position weights, so it is one
    (scale, shift) per image, and it may normalise any slice (e.g. one row) of the image.
    """

    def __init__(self, dim: int, z_dim: int | None = None, z_size: int = 0):
        super().__init__()
        self.norm = nn.LayerNorm(dim, elementwise_affine=z_dim is None)
        self.spatial_weights = nn.Parameter(torch.ones(z_size, z_size, 1)) if z_dim else None
        self.condition = zero_linear(z_dim, 2 * dim) if z_dim else None

    def forward(self, x: torch.Tensor, z: torch.Tensor | None = None) -> torch.Tensor:
        """x: (B, h, W, D) (any number of rows); z: the whole encoding (B, H, W, C) or None -> (B, h, W, D)."""
        if self.condition is None:
            return self.norm(x)
        pooled = (z * self.spatial_weights).mean(dim=(1, 2))  # (B, C)
        return modulate(self.norm(x), self.condition, pooled[:, None, None])  # affine broadcast over (h, W)


class AxialStack(nn.Module):
    """``num_layers`` repetitions of ``pattern`` (e.g. row attention, FF, column attention, FF).

    Args:
        causal: the axes (ROW and/or COLUMN) whose attention is masked.
        context_dim: width of the per-position context of conditional attention/FF (None: unconditional).
        z_dim, z_size: width and side of the encoding z behind conditional LayerNorm (None: plain LN).
    """

    def __init__(self, pattern: tuple[str, ...], num_layers: int, dim: int, ff_size: int, heads: int,
                 causal: tuple[str, ...] = (), context_dim: int | None = None, z_dim: int | None = None,
                 z_size: int = 0):
        super().__init__()
        kinds = list(pattern) * num_layers
        self.layers = nn.ModuleList(
            FeedForward(dim, ff_size, context_dim) if kind == FF
            else AxialAttention(dim, heads, kind, kind in causal, context_dim) for kind in kinds)
        self.norms = nn.ModuleList(Norm(dim, z_dim, z_size) for _ in kinds)

    def forward(self, x: torch.Tensor, context: torch.Tensor | None = None,
                z: torch.Tensor | None = None) -> torch.Tensor:
        """x: (B, H, W, D); context: (B, H, W, C) or None; z: (B, H_z, W_z, C_z) or None -> (B, H, W, D)."""
        for layer, norm in zip(self.layers, self.norms):
            x = norm(x + layer(x, context), z)
        return x


class AxialPositions(nn.Module):
    """Learned per-axis position embeddings of an H x W grid: rows (H, D) + columns (W, D)."""

    def __init__(self, height: int, width: int, dim: int):
        super().__init__()
        self.rows = nn.Parameter(torch.randn(height, 1, dim) * 0.02)
        self.columns = nn.Parameter(torch.randn(1, width, dim) * 0.02)

    def forward(self, rows: slice = slice(None)) -> torch.Tensor:
        """Embeddings of the given rows: (h, W, D), broadcastable against (B, h, W, D)."""
        return self.rows[rows] + self.columns
