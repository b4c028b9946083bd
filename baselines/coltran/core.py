"""ColTran core (``coltran/models/colorizer.py``, ``core.py``): coarse colours, autoregressive, conditioned on gray.

    gray (B, h, w) 0..255 --embed + positions--> grayscale encoder (unmasked axial attention) --> z (B, h, w, D)
    z --parallel head--> logits (B, h, w, 512)                               (auxiliary, every pixel independent)
    bins (B, h, w) 0..511 --embed--> outer decoder [row attn, FF, masked column attn, FF] --shift down-->
        context: row i sees rows < i
    bins --embed, shift right--> inner decoder [masked row attn, FF] (+ z + context) --> logits (B, h, w, 512)

So the logits of pixel (i, j) depend on the gray image and on the colours of pixels before (i, j) in
raster order only. The decoders are conditioned on z (attention, FF and LayerNorm), the inner decoder's
attention and FF on concat(z, context) as in the official code.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from baselines.coltran.config import ColTranConfig
from baselines.coltran.layers import COLUMN, ENCODER_PATTERN, FF, ROW, AxialPositions, AxialStack
from baselines.coltran.quantize import NUM_BINS, NUM_LEVELS


class ColTranCore(nn.Module):
    """The conditional autoregressive colouriser over ``coarse_size`` x ``coarse_size`` coarse colours."""

    def __init__(self, cfg: ColTranConfig):
        super().__init__()
        D, size = cfg.hidden_size, cfg.coarse_size
        dims = dict(dim=D, ff_size=cfg.ff_size, heads=cfg.num_heads)
        # one-hot(256) -> Dense equals an embedding lookup
        self.gray_embedding = nn.Embedding(NUM_LEVELS, D)
        self.encoder_positions = AxialPositions(size, size, D)
        self.encoder = AxialStack(ENCODER_PATTERN, cfg.num_encoder_layers, **dims)
        self.parallel_head = nn.Linear(D, NUM_BINS, bias=False)
        self.pixel_embedding = nn.Embedding(NUM_BINS, D)
        self.outer_positions = AxialPositions(size, size, D)
        self.outer = AxialStack((ROW, FF, COLUMN, FF), cfg.num_outer_layers, **dims, causal=(COLUMN,),
                                context_dim=D, z_dim=D, z_size=size)
        self.inner_positions = AxialPositions(size, size, D)
        self.inner = AxialStack((ROW, FF), cfg.num_inner_layers, **dims, causal=(ROW,), context_dim=2 * D,
                                z_dim=D, z_size=size)
        self.final_norm = nn.LayerNorm(D)
        self.logits = nn.Linear(D, NUM_BINS)

    def encode(self, gray: torch.Tensor) -> torch.Tensor:
        """gray: (B, h, w) long in 0..255 -> z (B, h, w, D)."""
        return self.encoder(self.gray_embedding(gray) + self.encoder_positions())

    def outer_context(self, bins: torch.Tensor, z: torch.Tensor) -> torch.Tensor:
        """bins: (B, h, w) long, z: (B, h, w, D) -> context (B, h, w, D); row i depends on rows < i only."""
        x = self.pixel_embedding(bins) + self.outer_positions() + z
        x = self.outer(x, context=z, z=z)
        return F.pad(x, (0, 0, 0, 0, 1, 0))[:, :-1]  # shift down one row: (B, h, w, D)

    def inner_logits(self, bins: torch.Tensor, context: torch.Tensor, z: torch.Tensor,
                     rows: slice = slice(None)) -> torch.Tensor:
        """Logits of the given rows; pixel (i, j) sees columns < j of its row and the context of rows < i.

        Args:
            bins, context: those rows: (B, r, w) long and (B, r, w, D); z: the whole encoding (B, h, w, D).
        Returns:
            (B, r, w, 512) logits.
        """
        x = F.pad(self.pixel_embedding(bins), (0, 0, 1, 0))[:, :, :-1]  # shift right one column: (B, r, w, D)
        z_rows = z[:, rows]
        x = x + self.inner_positions(rows) + z_rows + context
        x = self.inner(x, context=torch.cat([z_rows, context], dim=-1), z=z)  # (B, r, w, D)
        return self.logits(self.final_norm(x))

    def forward(self, gray: torch.Tensor, bins: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Teacher-forced pass. gray, bins: (B, h, w) long -> (autoregressive, parallel) logits, each (B, h, w, 512)."""
        z = self.encode(gray)
        return self.inner_logits(bins, self.outer_context(bins, z), z), self.parallel_head(z)

    @torch.no_grad()
    def sample(self, gray: torch.Tensor, generator: torch.Generator | None, mode: str = "sample") -> torch.Tensor:
        """Autoregressive sampling in raster order (one outer pass per row, one inner pass per pixel).

        Args:
            gray: (B, h, w) long in 0..255.
            generator: draws the categorical samples (on the CPU, so a seed gives the same colours anywhere).
            mode: 'sample' (categorical) or 'argmax'.
        Returns:
            bins: (B, h, w) long in 0..511.
        """
        z = self.encode(gray)
        B, h, w, _ = z.shape
        bins = torch.zeros(B, h, w, dtype=torch.long, device=gray.device)
        for i in range(h):
            row = slice(i, i + 1)
            context = self.outer_context(bins, z)[:, row]  # rows < i are final
            for j in range(w):
                logits = self.inner_logits(bins[:, row], context, z, row)[:, 0, j].float()  # (B, 512)
                bins[:, i, j] = pick(logits, generator, mode)
        return bins


def pick(logits: torch.Tensor, generator: torch.Generator | None, mode: str) -> torch.Tensor:
    """logits (B, K) -> (B,) long: argmax, or one categorical draw per row."""
    if mode == "argmax":
        return logits.argmax(dim=-1)
    probs = F.softmax(logits, dim=-1).cpu()
    return torch.multinomial(probs, 1, generator=generator)[:, 0].to(logits.device)
