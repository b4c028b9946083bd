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

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any, ClassVar

from colorgan.params import Params, opt, validate_fields, written
from colorgan.published import protocol_values

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


@dataclass(frozen=True)
class Table1Config(Params):
    """The evaluation notebook: Table 1 and Fig. 2 from trained runs (one run folder per method)."""

    run_dirs: list = opt(None, "run folders to compare (written by the training notebooks)")
    out_dir: str = opt("results/custom", "where table1.csv/.md, fig2.png and per-image metrics go")
    num_fig2_images: int = opt(4, "test images in Fig. 2", min=1)
    num_diversity_samples: int = opt(5, "noise samples of ColorGAN per image (diversity column and strip)", min=0)
    seed: int = opt(0, "seed of the noise z in evaluation and Fig. 2", min=0)
    device: str = opt("auto", "auto (CUDA when present), cpu, cuda or cuda:N")
    external_runs: list = opt([], "folders written by `colorgan score` (other tools' outputs): one Table 1 row each")
    test_root: str = opt("", "score the runs on this folder of photos instead of their own test split ('' = split)")
    protocol: str = opt("resize", "test_root: photos resized whole (the paper's) or centre-cropped, then resized "
                        "(ImageNet val5k)", choices=("resize", "center-crop"))

    def __post_init__(self) -> None:
        validate_fields(self)
        if not self.run_dirs or not all(isinstance(r, str) for r in self.run_dirs):
            raise ValueError(f"run_dirs: expected a non-empty list of folder paths; got {self.run_dirs!r}")
        if not all(isinstance(r, str) and r for r in self.external_runs):
            raise ValueError(f"external_runs: expected a list of folder paths (written by `colorgan score`); "
                             f"got {self.external_runs!r}")


@dataclass(frozen=True)
class ReportConfig(Params):
    """The report page: what was run and how it differs from the paper's protocol."""

    run_dirs: list = opt(None, "run folders that fed Table 1")
    profile: str = opt("custom", "name of the profile that produced the runs (smoke, voc-mini, paper, ...)")
    out_dir: str = opt("results/custom", "the profile's results folder")

    def __post_init__(self) -> None:
        validate_fields(self)
        if not self.run_dirs:
            raise ValueError(f"run_dirs: expected a non-empty list of folder paths; got {self.run_dirs!r}")


# `colorgan bench` variants: name -> the ColorGANConfig fields it changes from fp32 eager (the reference:
# no speed switch on, whatever ColorGANConfig's defaults are).
BENCH_VARIANTS: dict[str, dict[str, Any]] = {
    "fp32_eager": {},
    "channels_last": {"channels_last": True},
    "bf16": {"amp": "bf16"},
    "compile": {"compile": True},
    "fused_adam": {"fused_adam": True},
    "vgg_twice": {"share_vgg_targets": False},
    "all": {"channels_last": True, "amp": "bf16", "compile": True, "fused_adam": True},
}
BENCH_REFERENCE = "fp32_eager"
# Sizes for `colorgan bench` by device: the paper's workload on a GPU; on a 2-core CPU a small one, where
# torch.compile's first step already takes minutes. CPU timings drift with other processes and oneDNN builds
# its bf16 kernels on the first use of each shape, hence more warm-up and more timed steps there.
BENCH_DEVICE_DEFAULTS = {
    "cuda": {"image_size": 256, "batch_size": 16, "num_steps": 20, "num_warmup": 3, "max_warmup": 10},
    "cpu": {"image_size": 32, "batch_size": 8, "num_steps": 11, "num_warmup": 2, "max_warmup": 12},
}


@dataclass(frozen=True)
class BenchConfig(Params):
    """`colorgan bench`: throughput, step parts, FLOPs, MFU, memory and the input pipeline, in one run.

    The model is ColorGAN with the paper's widths (change it with ``model_params``); variants run
    round-robin, one timed step each per round, so a busy machine slows all of them alike.
    """

    # 0 = the device's default from BENCH_DEVICE_DEFAULTS
    image_size: int = opt(0, "training image size in pixels (0: 256 on CUDA, the paper's; 32 on CPU)", min=0)
    batch_size: int = opt(0, "images per training step (0: 16 on CUDA, the paper's; 8 on CPU)", min=0)
    num_steps: int = opt(0, "timed steps per variant, the median counts (0: 20 on CUDA, 11 on CPU)", min=0)
    num_warmup: int = opt(0, "untimed steps per variant at least; torch.compile compiles here (0: 3 on CUDA, 2 on CPU)",
                          min=0)
    max_warmup: int = opt(0, "warm-up continues until the last settle_window step times agree within "
                          "settle_tolerance, or this many steps (0: 10 on CUDA, 12 on CPU)", min=0)
    settle_window: int = opt(3, "consecutive warm-up steps whose times must agree", min=2)
    settle_tolerance: float = opt(0.1, "relative spread (max-min)/median allowed in the settle window", min=0.0)
    max_other_load: float = opt(0.5, "1-min load average of other processes (load minus our threads) above which a "
                                "CPU measurement is flagged as taken under load", min=0.0)
    refuse_under_load: bool = opt(False, "CPU: fail instead of measuring when other processes load the machine "
                                  "(for a measurement to commit)")
    conv_reference: bool = opt(True, "also time a plain stack of four 64-channel 3x3 convolutions (batch 16, 64x64, "
                               "forward + backward, fp32 and bf16): the FLOP/s this device reaches on easy work")
    variants: str = opt("all", "comma-separated variants (" + ", ".join(BENCH_VARIANTS) + ") or 'all'; "
                        f"{BENCH_REFERENCE} is always measured")
    breakdown: bool = opt(True, "also time the generator, critic and VGG parts of the step")
    profile: bool = opt(True, "profile the fastest variant: top operators and the share of conv/matmul time")
    pipeline_size: int = opt(256, "image size of the input pipeline measurement (synthetic uint8 cache)", min=8)
    pipeline_images: int = opt(512, "images in the pipeline measurement's synthetic cache", min=1)
    pipeline_batches: int = opt(200, "batches timed in the pipeline measurement", min=1)
    model_params: str = opt("", "JSON object of ColorGANConfig fields for the model (default: the paper's)")
    device: str = opt("auto", "auto (CUDA when present), cpu, cuda or cuda:N")
    output_dir: str = opt("results/bench", "folder for <device>.json and <device>.md")
    tag: str = opt("", "suffix for the output file names, e.g. 'b64' for a second batch size")
    seed: int = opt(0, "seeds the synthetic images, the models and the noise", min=0)

    def __post_init__(self) -> None:
        validate_fields(self)
        unknown = [name for name in self.variant_names() if name not in BENCH_VARIANTS]
        if unknown:
            raise ValueError(f"variants: {unknown} unknown; choose from {list(BENCH_VARIANTS)} or 'all'")
        if self.pipeline_images < self.batch_size:
            raise ValueError(f"pipeline_images: {self.pipeline_images} is fewer than batch_size={self.batch_size}")
        self.model_config(self.image_size or 256)  # a bad model_params fails here, naming the field

    def for_device(self, device_type: str) -> "BenchConfig":
        """A copy with every 0 ('device default') replaced from BENCH_DEVICE_DEFAULTS."""
        defaults = BENCH_DEVICE_DEFAULTS["cuda" if device_type == "cuda" else "cpu"]
        return self.replace(**{k: v for k, v in defaults.items() if getattr(self, k) == 0})

    def variant_names(self) -> list[str]:
        """The variants to measure, the reference first."""
        names = list(BENCH_VARIANTS) if self.variants == "all" else [v.strip() for v in self.variants.split(",")]
        return [BENCH_REFERENCE] + [name for name in names if name and name != BENCH_REFERENCE]

    def model_config(self, image_size: int, **changes: Any) -> ColorGANConfig:
        """The benchmarked ColorGAN at ``image_size`` with a variant's ``changes``."""
        params = json.loads(self.model_params) if self.model_params else {}
        if not isinstance(params, dict):
            raise ValueError(f"model_params: expected a JSON object of ColorGANConfig fields, got {self.model_params!r}")
        base = {"vgg_weights": "random", "progress": False, "device": self.device, "seed": self.seed, "amp": "off",
                "channels_last": False, "compile": False, "fused_adam": False, "share_vgg_targets": True}
        batch = {"batch_size": self.batch_size} if self.batch_size else {}  # 0: not yet resolved (for_device)
        return ColorGANConfig.from_params({**base, **params, "image_size": image_size, **batch, **changes})


GPU_CHECK_SECTIONS = ("switches", "methods", "ddp", "bench")  # in the order they run
GPU_CHECK_FAULTS = ("hang", "raise", "die", "stub")


@dataclass(frozen=True)
class GpuCheckConfig(Params):
    """`colorgan gpu-check`: correctness of every speed switch, every method, DDP + resume, then the bench.

    The GPU form runs the paper's sizes at 256x256 in minutes; ``tiny`` is the same code at toy sizes on
    the CPU (no torch.compile, no largest-batch search), so CI keeps it working.
    """

    tiny: bool = opt(False, "toy widths at 32x32 on the CPU (CI); default: the paper's sizes at 256x256")
    device: str = opt("auto", "auto (CUDA when present), cpu, cuda or cuda:N")
    image_size: int = opt(0, "0: 256 (the paper's), 32 with tiny", min=0)
    batch_size: int = opt(0, "0: 16 (the paper's), 4 with tiny", min=0)
    num_steps: int = opt(0, "training steps per switch, per method and per DDP run (0: 20; 4 with tiny)", min=0)
    num_eval_images: int = opt(4, "test images each trained method colorizes and scores", min=1)
    switches: str = opt("bf16,channels_last,compile,fused_adam", "speed switches (bench variants) whose losses are "
                        "compared with fp32 eager on the same batches; tiny leaves out compile")
    # The switch tolerances were calibrated on the CPU (toy widths, 32x32, batch 4, 2-4 steps); the GPU check
    # runs paper widths at 256x256 for 20 steps, where bf16's rounding has more steps to grow. A GPU failure
    # reports the measured deviation beside the tolerance, so a reader can judge it.
    fp32_tolerance: float = opt(0.02, "fp32 switches: largest |loss - fp32 eager loss| over the run, divided by the "
                                "largest |fp32 eager loss|, per loss term (calibrated on CPU at 32x32, 4 steps)", min=0.0)
    bf16_tolerance: float = opt(0.15, "the same bound for switches that compute in bf16 (calibrated on CPU at 32x32, "
                                "4 steps)", min=0.0)
    ddp_tolerance: float = opt(0.05, "DDP vs one process and resumed vs uninterrupted: |w - w_ref| / |w_ref - w0| over "
                               "all weights (calibrated on CPU, gloo, 2 ranks, 32x32, 4 steps: a correct run 0.004, "
                               "broken runs 0.4 or more); on a GPU the larger of this and twice the distance "
                               "between two identical runs there", min=0.0)
    bench: bool = opt(True, "run `colorgan bench` at batch_size, then at the largest batch that fits")
    max_batch: int = opt(256, "largest batch tried (doubling from batch_size) for the second bench run", min=1)
    large_batch_variants: str = opt("bf16,channels_last,fused_adam", "bench variants at the largest batch; the "
                                    "search fits them all at once (compiling again for a new shape costs minutes)")
    time_budget_minutes: float = opt(8.0, "hard limit for the whole check: each section runs in a child process "
                                     "stopped at its share of what is left; sections that no longer fit are "
                                     "'not run'", min=0.0)
    output_dir: str = opt("results/gpu-check", "folder for <device>.json and <device>.md")
    seed: int = opt(0, "seeds the generated images, the models and the noise", min=0)
    fault: str = opt("", "tests only (fault injection): 'SECTION:ACTION,...' with ACTION hang, raise, die or stub "
                     "(a stand-in that checks nothing); empty for a real check")

    def __post_init__(self) -> None:
        validate_fields(self)
        for item in filter(None, (v.strip() for v in self.fault.split(","))):
            section, _, action = item.partition(":")
            if section not in GPU_CHECK_SECTIONS or action not in GPU_CHECK_FAULTS:
                raise ValueError(f"fault: {item!r} is not SECTION:ACTION with SECTION in {list(GPU_CHECK_SECTIONS)} "
                                 f"and ACTION in {list(GPU_CHECK_FAULTS)}; leave it empty for a real check")
        for name, value in (("switches", self.switches), ("large_batch_variants", self.large_batch_variants)):
            unknown = [v for v in value.split(",") if v.strip() and v.strip() not in BENCH_VARIANTS]
            if unknown:
                raise ValueError(f"{name}: {unknown} unknown; choose from {list(BENCH_VARIANTS)}")

    def resolved(self) -> "GpuCheckConfig":
        """A copy with every 0 replaced: the paper's sizes, or the tiny ones."""
        defaults = {"image_size": 32, "batch_size": 4, "num_steps": 4} if self.tiny else \
            {"image_size": 256, "batch_size": 16, "num_steps": 20}
        return self.replace(**{k: v for k, v in defaults.items() if getattr(self, k) == 0})
