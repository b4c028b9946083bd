"""Shared building blocks and the ColorGAN networks (paper §2.1, Fig. 1).

Blocks (``ConvBlock``, ``UpBlock``, ``PatchCritic``, ``VGGFeatures``) are shared with the baselines.
ColorGAN = ``Encoder`` on L -> latent map (+ ``NoiseBranch`` G_f(z)) -> ``Decoder`` with encoder skips
-> ab, and a PatchGAN critic on (L, ab).

Shapes: the latent map has the shape of the chosen VGG19 layer's output, (B, C_vgg, H/f, W/f) (e.g.
relu4_1: C=512, f=8), because eq. 2 compares G_f(z) with VGG(y) at that layer.
"""

from __future__ import annotations

import logging
import math
from pathlib import Path

import torch
import torchvision
from torch import nn

from colorgan.common import runtime
from colorgan.method.config import VGG19_LAYERS, ColorGANConfig

log = logging.getLogger(__name__)

IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)


# ------------------------------------------------------------------------------------------ blocks


def norm_layer(kind: str, channels: int) -> nn.Module:
    """'batch' | 'instance' | 'none' normalisation for ``channels`` feature maps."""
    if kind == "batch":
        return nn.BatchNorm2d(channels)
    if kind == "instance":
        return nn.InstanceNorm2d(channels, affine=True)
    return nn.Identity()


class ConvBlock(nn.Sequential):
    """conv -> norm -> activation. (B, C_in, H, W) -> (B, C_out, H/stride, W/stride)."""

    def __init__(self, c_in: int, c_out: int, kernel: int = 3, stride: int = 1, norm: str = "batch",
                 act: str = "relu", slope: float = 0.2):
        padding = (kernel - stride + 1) // 2  # 'same' for stride 1 (k=3), exact halving for stride 2 (k=4)
        layers: list[nn.Module] = [nn.Conv2d(c_in, c_out, kernel, stride, padding, bias=norm != "batch"),
                                   norm_layer(norm, c_out)]
        if act == "relu":
            layers.append(nn.ReLU(inplace=True))
        elif act == "lrelu":
            layers.append(nn.LeakyReLU(slope, inplace=True))
        super().__init__(*layers)


class UpBlock(nn.Sequential):
    """2x upsampling: transposed conv 4x4/2 -> norm -> ReLU. (B, C_in, H, W) -> (B, C_out, 2H, 2W)."""

    def __init__(self, c_in: int, c_out: int, norm: str = "batch"):
        super().__init__(nn.ConvTranspose2d(c_in, c_out, 4, 2, 1, bias=norm != "batch"),
                         norm_layer(norm, c_out), nn.ReLU(inplace=True))


class PatchCritic(nn.Module):
    """PatchGAN (Markovian) critic (Isola et al. 2017, cited as [1]) with a linear output for WGAN.

    No normalisation: batch statistics would couple the samples, which breaks the per-sample
    gradient penalty of WGAN-GP.
    """

    def __init__(self, in_channels: int = 3, width: int = 64, num_layers: int = 3, slope: float = 0.2):
        super().__init__()
        layers: list[nn.Module] = []
        c_in = in_channels
        for i in range(num_layers):
            c_out = width * 2 ** min(i, 3)
            layers.append(ConvBlock(c_in, c_out, kernel=4, stride=2, norm="none", act="lrelu", slope=slope))
            c_in = c_out
        layers += [ConvBlock(c_in, c_in, kernel=3, norm="none", act="lrelu", slope=slope),
                   nn.Conv2d(c_in, 1, 3, 1, 1)]
        self.net = nn.Sequential(*layers)

    def forward(self, L: torch.Tensor, ab: torch.Tensor) -> torch.Tensor:
        """L: (B, 1, H, W), ab: (B, 2, H, W), both in [-1, 1] -> scores (B, 1, H/2^n, W/2^n), unbounded."""
        return self.net(torch.cat([L, ab], dim=1))  # (B, 3, H, W) in


# -------------------------------------------------------------------------------------- VGG19 loss net


class VGGFeatures(nn.Module):
    """Frozen VGG features of an RGB image, up to and including one ReLU layer.

    ``source`` says what weights it holds (e.g. 'imagenet', 'random(seed=0)'): every result records it.
    """

    def __init__(self, features: nn.Sequential, source: str):
        super().__init__()
        self.features = features.eval().requires_grad_(False)
        self.source = source
        self.register_buffer("mean", torch.tensor(IMAGENET_MEAN).view(1, 3, 1, 1), persistent=False)
        self.register_buffer("std", torch.tensor(IMAGENET_STD).view(1, 3, 1, 1), persistent=False)

    def train(self, mode: bool = True) -> "VGGFeatures":
        return super().train(False)  # always eval: the loss network never changes

    def forward(self, rgb: torch.Tensor) -> torch.Tensor:
        """rgb: (B, 3, H, W) in [0, 1] -> features (B, C, H/f, W/f), >= 0."""
        return self.features((rgb - self.mean) / self.std)


def hub_checkpoint_path(weights: torchvision.models.WeightsEnum) -> Path:
    """Where torchvision's weights API looks for ``weights`` in the torch hub cache ($TORCH_HOME)."""
    return Path(torch.hub.get_dir()) / "checkpoints" / Path(weights.url).name


def pretrained_state_dict(weights: torchvision.models.WeightsEnum) -> dict[str, torch.Tensor]:
    """Load ``weights`` from the torch hub cache without touching the network.

    Raises:
        FileNotFoundError: the file is not in the cache; the message says what to download and where.
    """
    path = hub_checkpoint_path(weights)
    if not path.is_file():
        raise FileNotFoundError(
            f"vgg_weights=imagenet needs {path.name} in the torch hub cache, and this machine cannot "
            f"download it. Fetch {weights.url} elsewhere and place it at {path} (or set TORCH_HOME), "
            "pass a local file as vgg_weights=/path/to/file.pth, or use vgg_weights=random")
    return load_state_dict_file(path)


def load_state_dict_file(path: Path | str) -> dict[str, torch.Tensor]:
    """``torch.load`` with ``weights_only=True``: tensors only, never code from a pickle."""
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"weights file {path} does not exist")
    state = runtime.load_weights_only(path, "weights file")
    if not isinstance(state, dict):
        raise ValueError(f"{path} holds a {type(state).__name__}, expected a state_dict")
    return state


def build_vgg19_features(weights: str, layer: str, seed: int) -> VGGFeatures:
    """VGG19 ``features`` up to ``layer`` (e.g. 'relu4_1').

    Args:
        weights: 'imagenet' (torch hub cache), 'random' (seeded init, offline), or a path to a
            state_dict of ``vgg19`` (keys 'features.N.weight') or of its ``features`` ('N.weight').
        layer: a key of ``config.VGG19_LAYERS``.
        seed: initialisation seed for 'random' (the global RNG is left untouched).
    """
    last = VGG19_LAYERS[layer][0]
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        features = torchvision.models.vgg19(weights=None).features[: last + 1]
    if weights == "random":
        return VGGFeatures(features, f"random(seed={seed})")
    if weights == "imagenet":
        state, source = pretrained_state_dict(torchvision.models.VGG19_Weights.IMAGENET1K_V1), "imagenet"
    else:
        state, source = load_state_dict_file(weights), f"file:{weights}"
    state = {k.removeprefix("features."): v for k, v in state.items() if not k.startswith("classifier.")}
    wanted = features.state_dict().keys()
    missing = [k for k in wanted if k not in state]
    if missing:
        raise ValueError(f"vgg_weights={weights!r}: the state_dict lacks {missing[:4]}... for VGG19 up to {layer}")
    features.load_state_dict({k: state[k] for k in wanted})
    return VGGFeatures(features, source)


# ------------------------------------------------------------------------------------------ ColorGAN


def level_widths(base: int, cap: int, depth: int) -> list[int]:
    """Channels at each encoder level 0..depth: base, 2·base, 4·base, ... capped at ``cap``."""
    return [min(base * 2**i, cap) for i in range(depth + 1)]


class Encoder(nn.Module):
    """L -> latent map shaped like the VGG layer's output, plus the skip features of every level.

    (B, 1, H, W) -> latent (B, C_vgg, H/f, W/f) and skips [(B, w_i, H/2^i, W/2^i) for i = 0..log2 f].
    """

    def __init__(self, widths: list[int], latent_channels: int, norm: str):
        super().__init__()
        self.stem = ConvBlock(1, widths[0], kernel=3, norm=norm, act="lrelu")
        self.downs = nn.ModuleList(ConvBlock(widths[i], widths[i + 1], kernel=4, stride=2, norm=norm, act="lrelu")
                                   for i in range(len(widths) - 1))
        self.to_latent = ConvBlock(widths[-1], latent_channels, kernel=3, norm=norm, act="lrelu")

    def forward(self, L: torch.Tensor) -> tuple[torch.Tensor, list[torch.Tensor]]:
        x = self.stem(L)
        skips = [x]
        for down in self.downs:
            x = down(x)
            skips.append(x)
        return self.to_latent(x), skips


class NoiseBranch(nn.Module):
    """G_f (eq. 2): noise map z (B, C_z, h, w) -> feature map (B, C_vgg, h, w), a few 3x3 convolutions."""

    def __init__(self, noise_channels: int, width: int, num_layers: int, out_channels: int):
        super().__init__()
        layers: list[nn.Module] = []
        c_in = noise_channels
        for _ in range(num_layers - 1):
            layers.append(ConvBlock(c_in, width, kernel=3, norm="none", act="relu"))
            c_in = width
        layers.append(nn.Conv2d(c_in, out_channels, 3, 1, 1))
        self.net = nn.Sequential(*layers)

    def forward(self, z: torch.Tensor) -> torch.Tensor:
        return self.net(z)


class Decoder(nn.Module):
    """The paper's 'generator': latent map (+ encoder skips) -> ab (B, 2, H, W) in [-1, 1] (tanh)."""

    def __init__(self, widths: list[int], latent_channels: int, norm: str, use_skips: bool):
        super().__init__()
        self.use_skips = use_skips
        grow = 2 if use_skips else 1  # a skip doubles the channels entering each level
        self.bottleneck = ConvBlock(latent_channels, widths[-1], kernel=3, norm=norm)
        self.ups = nn.ModuleList(UpBlock(widths[i] * grow, widths[i - 1], norm=norm)
                                 for i in range(len(widths) - 1, 0, -1))
        self.head = nn.Conv2d(widths[0] * grow, 2, 3, 1, 1)

    def forward(self, latent: torch.Tensor, skips: list[torch.Tensor]) -> torch.Tensor:
        x = self.bottleneck(latent)
        for up, skip in zip(self.ups, reversed(skips[1:])):
            x = up(torch.cat([x, skip], dim=1) if self.use_skips else x)
        if self.use_skips:
            x = torch.cat([x, skips[0]], dim=1)  # (B, 2·w_0, H, W)
        return torch.tanh(self.head(x))


class ColorGANGenerator(nn.Module):
    """Encoder + noise branch + decoder (paper Fig. 1)."""

    def __init__(self, cfg: ColorGANConfig):
        super().__init__()
        _, latent_channels, factor = VGG19_LAYERS[cfg.vgg_layer]
        widths = level_widths(cfg.gen_width, cfg.gen_max_width, int(math.log2(factor)))
        self.factor = factor
        self.noise_channels, self.noise_std = cfg.noise_channels, cfg.noise_std
        self.encoder = Encoder(widths, latent_channels, cfg.norm)
        self.noise_net = (NoiseBranch(cfg.noise_channels, cfg.noise_width, cfg.noise_layers, latent_channels)
                          if cfg.use_noise else None)
        self.decoder = Decoder(widths, latent_channels, cfg.norm, cfg.use_skips)

    def sample_noise(self, L: torch.Tensor, generator: torch.Generator | None = None,
                     shard: tuple[int, int] = (0, 1)) -> torch.Tensor | None:
        """z ~ N(0, noise_std²) of shape (B, C_z, H/f, W/f); None when the noise branch is off.

        ``shard`` = (rank, world_size): z is drawn for the global batch (world_size·B rows) and this
        rank's rows are returned, so data-parallel ranks see the z of one process.
        """
        if self.noise_net is None:
            return None
        B, _, H, W = L.shape
        rank, world_size = shard
        shape = (B * world_size, self.noise_channels, H // self.factor, W // self.factor)
        # drawn on the CPU generator then moved: the same seed gives the same z on every device
        z = runtime.rows_of_rank(torch.randn(shape, generator=generator), rank, world_size) * self.noise_std
        return runtime.to_device(z, L.device)

    def forward(self, L: torch.Tensor, z: torch.Tensor | None = None) -> tuple[torch.Tensor, torch.Tensor | None]:
        """L: (B, 1, H, W) in [-1, 1]; z: noise map or None.

        Returns:
            ab: (B, 2, H, W) in [-1, 1]; noise_features: G_f(z) (B, C_vgg, H/f, W/f), or None without noise.
        """
        latent, skips = self.encoder(L)
        noise_features = None
        if self.noise_net is not None and z is not None:
            noise_features = self.noise_net(z)
            latent = latent + noise_features  # §2.1: the learnable noise map is added to the latent map
        return self.decoder(latent, skips), noise_features


def build_colorgan(cfg: ColorGANConfig) -> tuple[ColorGANGenerator, PatchCritic]:
    """The generator (encoder + G_f + decoder) and the PatchGAN critic for ``cfg``."""
    return ColorGANGenerator(cfg), PatchCritic(3, cfg.disc_width, cfg.disc_layers)
