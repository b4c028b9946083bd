"""The methods' configs: the data (``DataConfig``), what every training run shares (``RunConfig``) and ColorGAN's
(``ColorGANConfig``), each a frozen dataclass validated before any work starts (the machinery: ``params.py``).
Other experiments' configs live beside the modules that run them (``ablation.AblationConfig``, ...).

Every field has a default, a help text, and where it applies the allowed choices or range in its
metadata. A help text ending in "(paper: X)" marks a value the paper fixes, and the default is X: both are
read from the paper's protocol, whose one home is ``published.PAPER_PROTOCOLS`` (``PAPER`` below). Three
defaults differ from the paper on purpose, and their help texts say so ("(paper: X; default differs:
why)"): ``data`` (the bundled samples, so every command runs without a download), ``vgg_weights``
(random, because no pretrained weights can be fetched offline) and ``adversarial`` (the gradient
penalty rather than the cited WGAN's weight clipping, which the paper gives no clip value for).
Fields without a paper value are choices where the paper is silent.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import ClassVar

from colorgan.common.params import Params, opt, validate_fields, written
from colorgan.common.published import protocol_values

# VGG19 ``features`` layer names -> (index of the ReLU in torchvision's vgg19().features,
# channels, downsampling factor). Used by the model (noise branch shape) and the losses.
VGG19_LAYERS: dict[str, tuple[int, int, int]] = {
    "relu1_1": (1, 64, 1),
    "relu1_2": (3, 64, 1),
    "relu2_1": (6, 128, 2),
    "relu2_2": (8, 128, 2),
    "relu3_1": (11, 256, 4),
    "relu3_4": (17, 256, 4),
    "relu4_1": (20, 512, 8),
    "relu4_4": (26, 512, 8),
    "relu5_1": (29, 512, 16),
}

DATA_SOURCES = ("samples", "voc", "folder")
# The ColorGAN paper's values (§2.1, eq. 1-2, §3.1), field -> value: the defaults that equal them read them
# here, and the help texts that quote them ("(paper: X)") write them from here
PAPER = protocol_values("colorgan")


@dataclass(frozen=True)
class DataConfig(Params):
    """Which images, at which size: the data overview notebook's config and every run's first fields."""

    # --- data (paper §3.1) ---
    data: str = opt("samples", "image source: bundled sample photos, a VOC2012 folder, or any image folder "
                    f"(paper: {written(PAPER['data'])}; default differs: the samples need no download, so every "
                    "command runs as typed)", choices=DATA_SOURCES)
    data_root: str = opt("", "VOCdevkit (or VOC2012) folder for data=voc; image folder for data=folder")
    test_fraction: float = opt(0.1, "data=folder without train/ and test/ subfolders: seeded test share",
                               min=0.0, max=0.9)
    num_sample_crops: int = opt(512, "data=samples: number of seeded random training crops", min=1)
    image_size: int = opt(PAPER["image_size"], "square training and evaluation size in pixels "
                          f"(paper: {written(PAPER['image_size'])})", min=8)
    max_images: int = opt(PAPER["max_images"], "use only the first N training images (0 = all); for quick runs",
                          min=0)
    flip: bool = opt(True, "random horizontal flips during training")

    def __post_init__(self) -> None:
        validate_fields(self)
        if self.data in ("voc", "folder") and not self.data_root:
            raise ValueError(f"data_root: data={self.data!r} needs data_root (a folder path); got ''")
        if self.data in ("voc", "folder") and not Path(self.data_root).expanduser().is_dir():
            raise ValueError(f"data_root: {self.data_root!r} is not an existing folder; data={self.data!r} reads "
                             "its images from there (give the folder's path, or use data='samples')")


@dataclass(frozen=True)
class RunConfig(DataConfig):
    """What every method's training run shares: data, optimisation budget, bookkeeping.

    Baselines subclass this and add their own model and loss fields.
    """

    method: ClassVar[str] = "base"

    # --- optimisation (paper §3.1) ---
    batch_size: int = opt(PAPER["batch_size"], f"images per step (paper: {written(PAPER['batch_size'])})", min=1)
    num_epochs: int = opt(PAPER["num_epochs"], f"passes over the training set (paper: {written(PAPER['num_epochs'])}); "
                          "ignored if num_steps > 0", min=1)
    num_steps: int = opt(PAPER["num_steps"], "optimiser steps; 0 = num_epochs full passes", min=0)
    max_minutes: float = opt(PAPER["max_minutes"], "stop (with a checkpoint) after this much wall time; 0 = no limit",
                             min=0.0)
    seed: int = opt(0, "seeds Python, NumPy, torch, the split, crops, flips and noise", min=0)

    # --- bookkeeping ---
    run_dir: str = opt("runs/colorgan", "folder for config, provenance, metrics log and checkpoints")
    resume: bool = opt(False, "continue from the newest checkpoint in run_dir")
    log_every: int = opt(10, "append a metrics.jsonl line every N steps", min=1)
    checkpoint_every: int = opt(500, "write a checkpoint every N steps (and always at the end)", min=1)
    keep_checkpoints: int = opt(2, "how many recent checkpoints to keep", min=1)
    device: str = opt("auto", "auto (CUDA when present), cpu, cuda or cuda:N")
    amp: str = opt("auto", "mixed precision: auto (bf16 on CUDA, off on CPU), bf16, or off",
                   choices=("auto", "bf16", "off"))
    progress: bool = opt(True, "show a tqdm progress bar")
    num_bootstrap: int = opt(1000, "bootstrap resamples for 95% intervals in evaluation", min=100)

    # --- validation during training (never the test split) ---
    num_val_images: int = opt(0, "training images set aside (same ones for every seed and method) and scored "
                                 "during training; 0 = no validation", min=0)
    val_every: int = opt(0, "score the validation images every N steps, and at the end (0 = only at the end)", min=0)

    def __post_init__(self) -> None:
        super().__post_init__()
        if self.val_every and not self.num_val_images:
            raise ValueError(f"val_every: {self.val_every} needs validation images; set num_val_images > 0 "
                             "(or val_every=0)")
        if not self.run_dir.strip():
            raise ValueError("run_dir: '' is not allowed; give the folder for this run's results")
        if not (self.device in ("auto", "cpu", "cuda") or self.device.startswith("cuda:")):
            raise ValueError(f"device: {self.device!r} is not one of auto, cpu, cuda, cuda:N")


@dataclass(frozen=True)
class ColorGANConfig(RunConfig):
    """ColorGAN (Shafiq & Lee): encoder + noise branch G_f + U-Net generator + PatchGAN critic.

    Loss (eq. 1): L = lambda_g·Lg + lambda_p·Lp + lambda_l1·L1 + lambda_s·Ls, with Ls from eq. 2.
    """

    method: ClassVar[str] = "colorgan"

    # --- model (§2.1) ---
    gen_width: int = opt(64, "channels of the first encoder level; doubled at each downsampling", min=1)
    gen_max_width: int = opt(512, "cap on encoder/decoder channels", min=1)
    norm: str = opt("batch", "normalisation in the generator", choices=("batch", "instance", "none"))
    vgg_layer: str = opt("relu4_1", "VGG19 layer for Lp and Ls; sets the latent map's shape (channels, H/f)",
                         choices=tuple(VGG19_LAYERS))
    vgg_weights: str = opt("random", "imagenet (torch hub cache), random (seeded, offline), or a .pth file path "
                           f"(paper: {written(PAPER['vgg_weights'])}, 'the pre-trained VGG network'; default differs: "
                           "nothing is downloaded, and without the hub file imagenet cannot run)")
    use_noise: bool = opt(PAPER["use_noise"], "noise branch G_f on; off means z = 0 and no G_f (ablation)")
    noise_std: float = opt(PAPER["noise_std"], "sigma of z ~ N(0, sigma^2), eq. 2 "
                           f"(paper: {written(PAPER['noise_std'])})", min=0.0)
    noise_channels: int = opt(64, "channels of the noise map z (at latent resolution)", min=1)
    noise_width: int = opt(256, "channels of G_f's hidden convolutions", min=1)
    noise_layers: int = opt(3, "convolutions in G_f", min=1)
    use_skips: bool = opt(PAPER["use_skips"], "encoder-to-generator skip connections (ablation: off)")
    disc_width: int = opt(64, "channels of the PatchGAN critic's first layer", min=1)
    disc_layers: int = opt(3, "stride-2 layers in the PatchGAN critic", min=1)

    # --- losses (eq. 1-2) ---
    lambda_g: float = opt(PAPER["lambda_g"], "weight of the adversarial term Lg "
                          f"(paper: {written(PAPER['lambda_g'])})", min=0.0)
    lambda_p: float = opt(PAPER["lambda_p"], "weight of the perceptual term Lp "
                          f"(paper: {written(PAPER['lambda_p'])})", min=0.0)
    lambda_l1: float = opt(PAPER["lambda_l1"], "weight of the L1 term on ab "
                           f"(paper: {written(PAPER['lambda_l1'])})", min=0.0)
    lambda_s: float = opt(PAPER["lambda_s"], "weight of the noise-feature term Ls, eq. 2 "
                          f"(paper: {written(PAPER['lambda_s'])})", min=0.0)
    adversarial: str = opt("wgan-gp", "Wasserstein critic regulariser: gradient penalty or weight clipping "
                           f"(paper: {written(PAPER['adversarial'])}, the cited WGAN [2]; default differs: the paper "
                           "gives no clip value or critic schedule, and the gradient penalty needs neither)",
                           choices=("wgan-gp", "wgan-clip"))
    gp_weight: float = opt(10.0, "gradient penalty weight (WGAN-GP)", min=0.0)
    clip_value: float = opt(0.01, "critic weight clip (wgan-clip)", min=0.0)
    n_critic: int = opt(1, "critic updates per generator update", min=1)
    lr_g: float = opt(PAPER["lr_g"], "Adam learning rate of encoder, G_f and generator "
                      f"(paper: {written(PAPER['lr_g'])})", min=0.0)
    lr_d: float = opt(PAPER["lr_d"], f"Adam learning rate of the critic (paper: {written(PAPER['lr_d'])})", min=0.0)
    beta1: float = opt(PAPER["beta1"], f"Adam beta1 (paper: {written(PAPER['beta1'])})", min=0.0, max=1.0)
    beta2: float = opt(PAPER["beta2"], f"Adam beta2 (paper: {written(PAPER['beta2'])})", min=0.0, max=1.0)

    # --- speed (same maths; `colorgan bench` measures each switch, results in results/bench/) ---
    channels_last: bool = opt(False, "NHWC memory format for the networks and their inputs")
    compile: bool = opt(False, "torch.compile the generator, critic and VGG (the first steps pay the compile time)")
    fused_adam: bool = opt(True, "fused Adam: one kernel updates all parameters (CPU bench: 1.2x per step)")
    share_vgg_targets: bool = opt(True, "compute the target's VGG features once per step for both Lp and Ls "
                                        "(off: once per term, the bench's reference)")

    def __post_init__(self) -> None:
        super().__post_init__()
        factor = VGG19_LAYERS[self.vgg_layer][2]
        if self.image_size % factor:
            raise ValueError(f"image_size: {self.image_size} must be divisible by {factor}, the downsampling "
                             f"of vgg_layer={self.vgg_layer!r}")
        if max(self.lambda_g, self.lambda_p, self.lambda_l1, self.lambda_s) == 0:
            raise ValueError("lambda_g, lambda_p, lambda_l1, lambda_s: all four are 0, so eq. 1 is empty; "
                             "give at least one a positive weight")
        if self.vgg_weights not in ("imagenet", "random") and not Path(self.vgg_weights).expanduser().is_file():
            raise ValueError(f"vgg_weights: {self.vgg_weights!r} is not allowed; use 'imagenet', 'random', or "
                             "the path of an existing state_dict file (.pth)")
        if not self.use_noise and self.lambda_s > 0:
            raise ValueError("lambda_s: the noise branch is off (use_noise=False), so Ls does not exist; "
                             "set lambda_s=0")
