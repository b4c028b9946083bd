"""ColTran's experiment config: one frozen dataclass whose defaults are the paper's configuration.

Defaults follow ``google-research/coltran/configs/{colorizer,color_upsampler,spatial_upsampler}.py``
(see ../shared/docs/baselines.md §2). ``PRESETS`` names the paper's configuration and a tiny one for
tests; ``coltran_config(preset, **changes)`` builds either.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, ClassVar

from colorgan.common.params import opt
from colorgan.method.config import RunConfig


@dataclass(frozen=True)
class ColTranConfig(RunConfig):
    """ColTran (Kumar, Weissenborn & Kalchbrenner, ICLR 2021): core + colour upsampler + spatial upsampler.

    Core loss (paper §4.1, ``run.py: loss_on_batch``): lambda_ar·NLL_autoregressive + lambda_parallel·NLL_parallel,
    both in bits per dimension. Each upsampler minimises its own NLL (bits per dimension).
    """

    method: ClassVar[str] = "coltran"

    run_dir: str = opt("runs/coltran", "folder for config, provenance, metrics log and checkpoints")

    # --- ColTran core (configs/colorizer.py) ---
    coarse_size: int = opt(64, "side of the coarse image the core colours autoregressively (paper: 64)", min=2)
    hidden_size: int = opt(512, "core width D (paper: 512)", min=1)
    ff_size: int = opt(512, "core feed-forward width (paper: 512)", min=1)
    num_heads: int = opt(4, "core attention heads (paper: 4)", min=1)
    num_encoder_layers: int = opt(4, "grayscale encoder layers (paper: 4)", min=1)
    num_outer_layers: int = opt(2, "outer decoder layers (paper: 2)", min=1)
    num_inner_layers: int = opt(2, "inner decoder layers (paper: 2)", min=1)
    lambda_ar: float = opt(0.99, "weight of the autoregressive NLL (paper: 0.99)", min=0.0)
    lambda_parallel: float = opt(0.01, "weight of the auxiliary parallel head's NLL (paper: 0.01)", min=0.0)
    sampling: str = opt("sample", "core sampling at colorize time: 'sample' (categorical, as the official "
                        "custom_colorize.py) or 'argmax'", choices=("sample", "argmax"))

    # --- colour and spatial upsamplers (configs/color_upsampler.py, spatial_upsampler.py) ---
    upsampler_hidden_size: int = opt(512, "width of both upsamplers (paper: 512)", min=1)
    upsampler_ff_size: int = opt(512, "feed-forward width of both upsamplers (paper: 512)", min=1)
    upsampler_heads: int = opt(4, "attention heads of both upsamplers (paper: 4)", min=1)
    num_color_upsampler_layers: int = opt(4, "colour upsampler layers (paper: 4)", min=1)
    num_spatial_upsampler_layers: int = opt(3, "spatial upsampler layers (paper: 3)", min=1)
    spatial_batch_size: int = opt(0, "images of each batch the spatial upsampler trains on (its full-size "
                                  "attention is the costly part; paper: 1 per core); 0 = the whole batch", min=0)

    # --- optimisation (all three networks: RMSprop 3e-4, Polyak EMA 0.999) ---
    lr: float = opt(3e-4, "RMSprop learning rate of each network (paper: 3e-4)", min=0.0)
    ema_decay: float = opt(0.999, "Polyak averaging of the weights used for sampling (paper: 0.999); 0 = off",
                           min=0.0, max=1.0)

    def __post_init__(self) -> None:
        super().__post_init__()
        if self.image_size % self.coarse_size:
            raise ValueError(f"coarse_size: {self.coarse_size} must divide image_size={self.image_size} (the "
                             "spatial upsampler enlarges by a whole factor)")
        for width, heads in (("hidden_size", "num_heads"), ("upsampler_hidden_size", "upsampler_heads")):
            if getattr(self, width) % getattr(self, heads):
                raise ValueError(f"{width}: {getattr(self, width)} must be divisible by {heads}="
                                 f"{getattr(self, heads)}")
        if self.spatial_batch_size > self.batch_size:
            raise ValueError(f"spatial_batch_size: {self.spatial_batch_size} is more than batch_size="
                             f"{self.batch_size}; it takes part of each batch (0 = all of it)")
        if self.lambda_ar == 0:
            raise ValueError("lambda_ar: 0 leaves the autoregressive core untrained; it must be positive")


PRESETS: dict[str, dict[str, Any]] = {
    # the paper's configuration: the field defaults, with the 256 px images the 64 px core feeds
    "paper": {"image_size": 256},
    # tests: mirrors coltran/test_configs (hidden 32, 1 head, one layer each) with an 8x8 core
    "tiny": {"image_size": 16, "coarse_size": 8, "hidden_size": 32, "ff_size": 32, "num_heads": 1,
             "num_encoder_layers": 1, "num_outer_layers": 1, "num_inner_layers": 1,
             "upsampler_hidden_size": 16, "upsampler_ff_size": 16, "upsampler_heads": 1,
             "num_color_upsampler_layers": 1, "num_spatial_upsampler_layers": 1, "batch_size": 2},
}


def coltran_config(preset: str = "paper", **changes: Any) -> ColTranConfig:
    """A named preset with ``changes`` applied on top (unknown fields are an error)."""
    if preset not in PRESETS:
        raise ValueError(f"preset: {preset!r} is not one of {sorted(PRESETS)}")
    return ColTranConfig.from_params({**PRESETS[preset], **changes})
