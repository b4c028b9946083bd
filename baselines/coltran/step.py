"""ColTran's training step: the core and both upsamplers, teacher-forced on the ground truth, in one step.

The paper trains the three networks separately; they share no weights and each is trained on ground-truth
inputs, so training them side by side on the same batches (each with its own RMSprop) is the same
procedure, run through the suite's one training loop.
"""

from __future__ import annotations

import logging
import math
from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import nn
from torch.optim.swa_utils import AveragedModel, get_ema_multi_avg_fn

from colorgan.common import runtime
from colorgan.method import losses
from colorgan.method.color import rgb_to_model, uint8_to_float

from baselines.coltran.config import ColTranConfig
from baselines.coltran.core import ColTranCore
from baselines.coltran.quantize import (NUM_COARSE_LEVELS, NUM_LEVELS, area_downsample, bins_to_labels,
                                        gray_levels, labels_to_bins, nearest_upsample, to_coarse_bits)
from baselines.coltran.upsampler import ParallelUpsampler

log = logging.getLogger(__name__)

NETWORKS = ("core", "color_upsampler", "spatial_upsampler")
# a Polyak average that still holds more of the first step's weights than this is flagged
STALE_AVERAGE_SHARE = 0.05


def bits_per_dim(logits: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
    """Cross-entropy in bits per dimension (ColTran's loss unit): logits (B, H, W, K), labels (B, H, W) long."""
    return F.cross_entropy(logits.flatten(0, -2).float(), labels.flatten()) / math.log(2)


@dataclass
class Targets:
    """Ground truth of one batch at both resolutions (all long)."""

    gray: torch.Tensor  # (B, S, S) in 0..255
    gray_coarse: torch.Tensor  # (B, h, h) in 0..255
    rgb: torch.Tensor  # (B, 3, S, S) in 0..255
    rgb_coarse: torch.Tensor  # (B, 3, h, h) in 0..255


def make_targets(batch: torch.Tensor, coarse_size: int) -> Targets:
    """batch: (B, 3, S, S) uint8 RGB -> gray from the suite's L channel, and area-downsampled coarse images."""
    L, _ = rgb_to_model(uint8_to_float(batch))
    gray = gray_levels(L)
    return Targets(gray, area_downsample(gray, coarse_size), batch.long(), area_downsample(batch, coarse_size))


def channel_of(images: torch.Tensor, channel: torch.Tensor) -> torch.Tensor:
    """One channel per image: images (B, 3, H, W), channel (B,) long -> (B, H, W)."""
    return images[torch.arange(images.shape[0], device=images.device), channel]


def ema_start_share(decay: float, num_steps: int) -> float:
    """Weight the first step's parameters still have in a Polyak average after ``num_steps`` updates
    (0 when unknown: an epoch budget, or averaging off)."""
    return decay ** num_steps if num_steps > 0 and decay > 0 else 0.0


class ColTranStep:
    """Plugs ColTran into ``train.fit``: three networks, three RMSprops, and their Polyak averages."""

    def __init__(self, cfg: ColTranConfig, device: torch.device):
        self.cfg, self.device = cfg, device
        upsampler = dict(dim=cfg.upsampler_hidden_size, ff_size=cfg.upsampler_ff_size, heads=cfg.upsampler_heads)
        self.networks: dict[str, nn.Module] = {
            "core": ColTranCore(cfg),
            "color_upsampler": ParallelUpsampler(NUM_COARSE_LEVELS, cfg.coarse_size,
                                                 num_layers=cfg.num_color_upsampler_layers, **upsampler),
            "spatial_upsampler": ParallelUpsampler(NUM_LEVELS, cfg.image_size,
                                                   num_layers=cfg.num_spatial_upsampler_layers, **upsampler),
        }
        for network in self.networks.values():
            network.to(device)
        # Polyak averages (sampling uses them); modules, so checkpoints hold them and resume restores them
        self.averages = {name: AveragedModel(net, multi_avg_fn=get_ema_multi_avg_fn(cfg.ema_decay))
                         for name, net in self.networks.items()} if cfg.ema_decay > 0 else {}
        # TF/Keras RMSprop defaults (rho 0.9, epsilon 1e-7), which the official code uses
        self.opts = {name: torch.optim.RMSprop(net.parameters(), lr=cfg.lr, alpha=0.9, eps=1e-7)
                     for name, net in self.networks.items()}
        self.weights = {"autoregressive": cfg.lambda_ar, "parallel": cfg.lambda_parallel}
        self.rng = torch.Generator().manual_seed(cfg.seed)
        self.amp_dtype = runtime.autocast_dtype(cfg.amp, device)
        # a short run's average can still be mostly the untrained start: say so (noise images otherwise puzzle)
        self.stale_share = ema_start_share(cfg.ema_decay, cfg.num_steps) if self.averages else 0.0
        if self.stale_share > STALE_AVERAGE_SHARE:
            log.warning("ema_decay=%s over num_steps=%d: the averaged weights used for colorizing keep %.0f%% of "
                        "the first step's (near-random) weights; short runs need a smaller ema_decay (e.g. %.2f)",
                        cfg.ema_decay, cfg.num_steps, 100 * self.stale_share,
                        math.floor(100 * STALE_AVERAGE_SHARE ** (1 / cfg.num_steps)) / 100)

    def describe(self) -> dict[str, str]:
        """Recorded in provenance.json and eval/summary.json; ``notes`` is shown beside every result (Table 1)."""
        cfg = self.cfg
        weights = f"EMA {cfg.ema_decay}" if self.averages else "raw weights (ema_decay=0)"
        if self.stale_share > STALE_AVERAGE_SHARE:
            weights += f" (still {self.stale_share:.0%} step-1 weights after {cfg.num_steps} steps)"
        return {"vgg_weights": "unused (ColTran has no VGG)",
                "notes": f"core {cfg.coarse_size}x{cfg.coarse_size} ({cfg.sampling}), upsamplers argmax, {weights}; "
                         "RGB output (input L not kept, as ColTran); gray input from the suite's L"}

    def modules(self) -> dict[str, nn.Module]:
        return {**self.networks, **{f"{name}_ema": average for name, average in self.averages.items()}}

    def optimizers(self) -> dict[str, torch.optim.Optimizer]:
        return self.opts

    def __call__(self, batch: torch.Tensor) -> dict[str, torch.Tensor]:
        """batch: (B, 3, S, S) uint8 RGB -> {'loss' (the core's), 'autoregressive', 'parallel',
        'color_upsampler', 'spatial_upsampler'}: detached scalars, NLLs in bits per dimension."""
        t = make_targets(batch, self.cfg.coarse_size)
        B = batch.shape[0]
        channel = torch.randint(0, 3, (B,), generator=self.rng).to(self.device)  # ColTran's random_channel
        coarse_bits = to_coarse_bits(t.rgb_coarse)  # (B, 3, h, h) in 0..7
        bins = labels_to_bins(coarse_bits)  # (B, h, h) in 0..511
        n = self.cfg.spatial_batch_size or B

        with runtime.autocast(self.device, self.amp_dtype):
            ar_logits, parallel_logits = self.networks["core"](t.gray_coarse, bins)
            terms = {"autoregressive": bits_per_dim(ar_logits, bins)}
            if self.weights["parallel"] > 0:
                terms["parallel"] = bits_per_dim(parallel_logits, bins)
            color_logits = self.networks["color_upsampler"](channel_of(coarse_bits, channel), channel, t.gray_coarse)
            spatial_input = nearest_upsample(channel_of(t.rgb_coarse[:n], channel[:n]), self.cfg.image_size)
            spatial_logits = self.networks["spatial_upsampler"](spatial_input, channel[:n], t.gray[:n])
        core_loss, values = losses.generator_objective(terms, self.weights)
        objectives = {"core": core_loss,
                      "color_upsampler": bits_per_dim(color_logits, channel_of(t.rgb_coarse, channel)),
                      "spatial_upsampler": bits_per_dim(spatial_logits, channel_of(t.rgb[:n], channel[:n]))}
        for name, objective in objectives.items():
            self.opts[name].zero_grad(set_to_none=True)
            objective.backward()
            self.opts[name].step()
            if name in self.averages:
                self.averages[name].update_parameters(self.networks[name])
        return {"loss": core_loss.detach(), **values,
                "color_upsampler": objectives["color_upsampler"].detach(),
                "spatial_upsampler": objectives["spatial_upsampler"].detach()}

    def network(self, name: str) -> nn.Module:
        """The weights used for colorizing: the Polyak average when there is one."""
        return self.averages[name].module if name in self.averages else self.networks[name]

    @torch.no_grad()
    def colorize(self, L: torch.Tensor, generator: torch.Generator | None = None) -> torch.Tensor:
        """L: (B, 1, S, S) in [-1, 1] -> rgb (B, 3, S, S) in [0, 1].

        Core sampled autoregressively at the coarse size (``cfg.sampling``; ``generator`` draws the colours),
        then the colour and spatial upsamplers (argmax). Like ColTran, the output is RGB: the input L is not
        pasted back.
        """
        gray = gray_levels(L)  # (B, S, S)
        gray_coarse = area_downsample(gray, self.cfg.coarse_size)
        with runtime.autocast(self.device, self.amp_dtype):
            bins = self.network("core").sample(gray_coarse, generator or self.rng, self.cfg.sampling)
            coarse = self.network("color_upsampler").upsample(bins_to_labels(bins), gray_coarse)  # (B, 3, h, h)
            rgb = self.network("spatial_upsampler").upsample(nearest_upsample(coarse, self.cfg.image_size), gray)
        return rgb.float() / 255
