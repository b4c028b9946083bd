"""Typed experiment configs: one frozen dataclass per experiment, validated before any work starts.

Every field has a default, a help text, and where it applies the allowed choices or range in its
metadata. A help text ending in "(paper: X)" marks a value the paper fixes, and the default is X. Three
defaults differ from the paper on purpose, and their help texts say so ("(paper: X; default differs:
why)"): ``data`` (the bundled samples, so every command runs without a download), ``vgg_weights``
(random, because no pretrained weights can be fetched offline) and ``adversarial`` (the gradient
penalty rather than the cited WGAN's weight clipping, which the paper gives no clip value for).
Fields without a paper value are choices where the paper is silent. The same metadata drives validation, the CLI's
flags (``cli.py``) and the notebooks' parameter check, so there is one list of options.
"""

from __future__ import annotations

import copy
import dataclasses
import difflib
import math
import typing
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, ClassVar

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


def opt(default: Any, help: str, *, choices: tuple | None = None, min: float | None = None,
        max: float | None = None) -> Any:
    """A dataclass field with its help text and allowed values (read by validation and the CLI).

    A dict or list default is copied for each instance (dataclasses forbid shared mutable defaults).
    """
    metadata = {"help": help, "choices": choices, "min": min, "max": max}
    if isinstance(default, (dict, list)):
        return field(default_factory=lambda: copy.deepcopy(default), metadata=metadata)
    return field(default=default, metadata=metadata)


def field_default(f: dataclasses.Field) -> Any:
    """A field's default value, whether given directly or by a factory."""
    return f.default_factory() if f.default_factory is not dataclasses.MISSING else f.default


class Params:
    """Shared by every config dataclass: build from a flat dict, copy with changes, dump as a dict."""

    @classmethod
    def from_params(cls, params: dict[str, Any]) -> Any:
        """Build from a flat dict (notebook parameters, JSON). Unknown keys are an error, not ignored."""
        if not isinstance(params, dict):
            raise ValueError(f"parameters for {cls.__name__} must be a dict of field values, got {type(params).__name__}")
        names = {f.name for f in dataclasses.fields(cls)}
        unknown = sorted(set(params) - names)
        if unknown:
            hints = {k: difflib.get_close_matches(k, names, n=1) for k in unknown}
            detail = "; ".join(f"{k!r} (did you mean {v[0]!r}?)" if v else repr(k) for k, v in hints.items())
            raise ValueError(f"unknown parameter(s) for {cls.__name__}: {detail}. Allowed: {sorted(names)}")
        return cls(**params)

    @classmethod
    def from_namespace(cls, namespace: dict[str, Any]) -> Any:
        """Build from a notebook's variables: the parameters cell defines one variable per field."""
        names = [f.name for f in dataclasses.fields(cls)]
        missing = [n for n in names if n not in namespace]
        if missing:
            raise ValueError(f"the notebook's parameters cell lacks {missing} for {cls.__name__}")
        return cls.from_params({n: namespace[n] for n in names})

    def to_dict(self) -> dict[str, Any]:
        return {"method": getattr(self, "method", type(self).__name__), **dataclasses.asdict(self)}

    def replace(self, **changes: Any) -> Any:
        """A copy with some fields changed (validated again)."""
        return dataclasses.replace(self, **changes)


@dataclass(frozen=True)
class DataConfig(Params):
    """Which images, at which size: the data overview notebook's config and every run's first fields."""

    # --- data (paper §3.1: PASCAL VOC, 15,413 train / 1,712 test, 256x256) ---
    data: str = opt("samples", "image source: bundled sample photos, a VOC2012 folder, or any image folder "
                    "(paper: voc; default differs: the samples need no download, so every command runs as typed)",
                    choices=DATA_SOURCES)
    data_root: str = opt("", "VOCdevkit (or VOC2012) folder for data=voc; image folder for data=folder")
    test_fraction: float = opt(0.1, "data=folder without train/ and test/ subfolders: seeded test share",
                               min=0.0, max=0.9)
    num_sample_crops: int = opt(512, "data=samples: number of seeded random training crops", min=1)
    image_size: int = opt(256, "square training and evaluation size in pixels (paper: 256)", min=8)
    max_images: int = opt(0, "use only the first N training images (0 = all); for quick runs", min=0)
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
    batch_size: int = opt(16, "images per step (paper: 16)", min=1)
    num_epochs: int = opt(300, "passes over the training set (paper: 300); ignored if num_steps > 0", min=1)
    num_steps: int = opt(0, "optimiser steps; 0 = num_epochs full passes", min=0)
    max_minutes: float = opt(0.0, "stop (with a checkpoint) after this much wall time; 0 = no limit", min=0.0)
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
                           "(paper: imagenet, 'the pre-trained VGG network'; default differs: nothing is "
                           "downloaded, and without the hub file imagenet cannot run)")
    use_noise: bool = opt(True, "noise branch G_f on; off means z = 0 and no G_f (ablation)")
    noise_std: float = opt(0.1, "sigma of z ~ N(0, sigma^2), eq. 2 (paper: 0.1)", min=0.0)
    noise_channels: int = opt(64, "channels of the noise map z (at latent resolution)", min=1)
    noise_width: int = opt(256, "channels of G_f's hidden convolutions", min=1)
    noise_layers: int = opt(3, "convolutions in G_f", min=1)
    use_skips: bool = opt(True, "encoder-to-generator skip connections (ablation: off)")
    disc_width: int = opt(64, "channels of the PatchGAN critic's first layer", min=1)
    disc_layers: int = opt(3, "stride-2 layers in the PatchGAN critic", min=1)

    # --- losses (eq. 1-2) ---
    lambda_g: float = opt(0.1, "weight of the adversarial term Lg (paper: 0.1)", min=0.0)
    lambda_p: float = opt(100.0, "weight of the perceptual term Lp (paper: 100)", min=0.0)
    lambda_l1: float = opt(10.0, "weight of the L1 term on ab (paper: 10)", min=0.0)
    lambda_s: float = opt(1.0, "weight of the noise-feature term Ls, eq. 2 (paper: 1)", min=0.0)
    adversarial: str = opt("wgan-gp", "Wasserstein critic regulariser: gradient penalty or weight clipping "
                           "(paper: wgan-clip, the cited WGAN [2]; default differs: the paper gives no clip value "
                           "or critic schedule, and the gradient penalty needs neither)",
                           choices=("wgan-gp", "wgan-clip"))
    gp_weight: float = opt(10.0, "gradient penalty weight (WGAN-GP)", min=0.0)
    clip_value: float = opt(0.01, "critic weight clip (wgan-clip)", min=0.0)
    n_critic: int = opt(1, "critic updates per generator update", min=1)
    lr_g: float = opt(1e-4, "Adam learning rate of encoder, G_f and generator (paper: 1e-4)", min=0.0)
    lr_d: float = opt(2e-4, "Adam learning rate of the critic (paper: 2e-4)", min=0.0)
    beta1: float = opt(0.5, "Adam beta1 (paper: 0.5)", min=0.0, max=1.0)
    beta2: float = opt(0.999, "Adam beta2 (paper: 0.999)", min=0.0, max=1.0)

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


# The ablation study's variants (issue: each a parameter override of the same config).
# Noise samples per test image for diversity (mean ΔE*ab between samples), one count for the study and its
# ablation: the mean over sample pairs depends on how many samples are drawn, so their numbers compare only at one.
NUM_DIVERSITY_SAMPLES = 3
# A profile's ablation keeps its own folder, results/<profile>/ablation/ (tables, verdicts, metadata and this
# gzip CSV of per-image metrics, committed so that anyone can recompute its deltas and verdicts)
ABLATION_DIR = "ablation"
ABLATION_EVIDENCE = "ablation_per_image.csv.gz"
ABLATION_VARIANTS = {
    "full": {},
    "no_adversarial": {"lambda_g": 0.0},
    "no_perceptual": {"lambda_p": 0.0},
    "no_l1": {"lambda_l1": 0.0},
    "no_ls": {"lambda_s": 0.0},
    "no_noise": {"use_noise": False, "lambda_s": 0.0},
    "no_skips": {"use_skips": False},
    "noise_std_0.01": {"noise_std": 0.01},
    "noise_std_0.5": {"noise_std": 0.5},
}


@dataclass(frozen=True)
class AblationConfig(Params):
    """The ablation study: variants (ColorGANConfig overrides) x seeds on one base config."""

    variants: dict = opt(ABLATION_VARIANTS, "variant name -> ColorGANConfig overrides; 'full' is the reference")
    seeds: list = opt([0, 1, 2], "training seeds per variant (3 or more for intervals worth reading)")
    base: dict = opt({}, "ColorGANConfig fields shared by every variant (data, size, steps, widths, ...)")
    num_diversity_samples: int = opt(NUM_DIVERSITY_SAMPLES, "noise samples per test image for the diversity metric "
                                                             "(the study's count: diversity depends on it)", min=2)
    out_dir: str = opt("results/ablations", "where tables and charts go")
    runs_dir: str = opt("results/runs", "the run store: every run once, by config and code hash (colorgan.run_store)")

    def __post_init__(self) -> None:
        validate_fields(self)
        if "full" not in self.variants:
            raise ValueError(f"variants: needs a 'full' variant (the reference); got {sorted(self.variants)}")
        if not self.seeds or not all(isinstance(s, int) and s >= 0 for s in self.seeds):
            raise ValueError(f"seeds: expected a non-empty list of non-negative ints; got {self.seeds!r}")
        for name, overrides in self.variants.items():
            if not isinstance(overrides, dict):
                raise ValueError(f"variants[{name!r}]: expected a dict of ColorGANConfig fields; got {overrides!r}")
            try:
                ColorGANConfig.from_params({**self.base, **overrides})
            except ValueError as err:
                raise ValueError(f"variants[{name!r}]: {err}") from None


EXECUTORS = ("local", "slurm")


@dataclass(frozen=True)
class ExecutorConfig(Params):
    """Where a stage's independent training runs train (``colorgan.executor``): worker processes here, or Slurm jobs."""

    executor: str = opt("local", "local: worker processes on this machine; slurm: one job per run (submitit)",
                        choices=EXECUTORS)
    workers: int = opt(0, "local runs at once (0 = one per GPU, or 1 on a CPU)", min=0)
    threads_per_worker: int = opt(0, "CPU threads of each local worker (0 = this process's torch threads split between the workers)",
                                  min=0)
    partition: str = opt("", "slurm: partition ('' = the cluster's default)")
    time_min: int = opt(240, "slurm: time limit per job in minutes; a job that reaches it is requeued and resumes",
                        min=1)
    gpus_per_job: int = opt(1, "slurm: GPUs per job (one run per GPU; 0 = CPU jobs)", min=0)
    cpus_per_job: int = opt(4, "slurm: CPU cores per job (data loading and the loss network's host work)", min=1)
    account: str = opt("", "slurm: account to charge ('' = your default)")
    max_requeues: int = opt(3, "slurm: how often a preempted or timed-out job is requeued", min=0)
    jobs_dir: str = opt("results/jobs", "job logs and submitit's files (ignored by git)")


# The study's checkpoint rules: which weights of each run are scored on the test split (one rule for all methods).
STUDY_CHECKPOINTS = ("best_val", "last")


@dataclass(frozen=True)
class StudyConfig(Params):
    """The study: every method x seeds on one split, each run seeing the same number of training images.

    Method names and their fields are checked against the registered methods by ``colorgan.study``
    (this module knows no methods); everything else is checked here.
    """

    methods: dict = opt({"colorgan": {}, "chromagan": {}, "coltran": {}},
                        "method -> its own config fields (widths, learning rates, batch size); not the budget")
    base: dict = opt({"num_val_images": 200, "val_every": 100},
                     "config fields every method shares (data, image size, validation images, amp, ...)")
    seeds: list = opt([0, 1, 2], "training seeds per method (3 or more for a spread worth reading)")
    num_images_seen: int = opt(16000, "training images each run sees, the same for every method "
                                      "(steps = num_images_seen / batch_size)", min=1)
    allow_unequal_budget: bool = opt(False, "accept methods whose settings make them see different numbers of "
                                            "training images (Table 1 then states each one's count)")
    checkpoint: str = opt("best_val", "the weights scored on the test split, by one rule for every method: "
                                      "best validation PSNR, or the last", choices=STUDY_CHECKPOINTS)
    num_diversity_samples: int = opt(NUM_DIVERSITY_SAMPLES, "colorizations per test image for the diversity column "
                                                             "(0 = none; the ablation's count)", min=0)
    num_fig2_images: int = opt(4, "test images in Fig. 2", min=1)
    num_bootstrap: int = opt(2000, "bootstrap resamples of test images for every interval", min=100)
    out_dir: str = opt("results/study", "where tables and figures go")
    runs_dir: str = opt("results/runs", "the run store: every run once, by config and code hash (colorgan.run_store)")
    device: str = opt("auto", "auto (CUDA when present), cpu, cuda or cuda:N")

    def __post_init__(self) -> None:
        validate_fields(self)
        if not self.methods or not all(isinstance(v, dict) for v in self.methods.values()):
            raise ValueError(f"methods: expected a non-empty dict of method -> dict of config fields; got {self.methods!r}")
        if not self.seeds or not all(isinstance(s, int) and not isinstance(s, bool) and s >= 0 for s in self.seeds):
            raise ValueError(f"seeds: expected a non-empty list of non-negative ints; got {self.seeds!r}")
        if len(set(self.seeds)) != len(self.seeds):
            raise ValueError(f"seeds: {self.seeds} repeats a seed; each seed is one more independent run")
        own = ("num_epochs", "seed") if self.allow_unequal_budget else ("num_steps", "num_epochs", "seed")
        budget = [f for f in own if f in self.base or any(f in v for v in self.methods.values())]
        if budget:
            raise ValueError(f"{budget[0]}: set by the study (num_images_seen and seeds), not per method or in base"
                             + ("; a method's own num_steps needs allow_unequal_budget=True" if budget[0] == "num_steps"
                                else ""))
        if self.checkpoint == "best_val" and not self.base.get("num_val_images"):
            raise ValueError("checkpoint: 'best_val' needs validation images; set base['num_val_images'] > 0 "
                             "or checkpoint='last'")


@dataclass(frozen=True)
class SummaryConfig(Params):
    """The reproducibility summary: verdicts on the paper's claims from a study's results folder."""

    out_dir: str = opt("results/study", "the study's results folder (study_table.csv, per_image_metrics.csv)")
    ablation_digest: str = opt("", "sha256 of the study-scale ablation's per-image evidence in out_dir/ablation "
                                   "('' = not run); the pipeline sets it, so the page is rebuilt when the ablation "
                                   "changes")


def validate_fields(cfg: Any) -> None:
    """Check every field's type, choices and range. Raises ValueError naming field, value and what is allowed."""
    hints = typing.get_type_hints(type(cfg))
    for f in dataclasses.fields(cfg):
        value = getattr(cfg, f.name)
        expected = hints[f.name]
        if f.default is None and value is None:
            continue  # checked by the class itself
        ok = (isinstance(value, bool) if expected is bool
              else isinstance(value, (int, float)) and not isinstance(value, bool) if expected is float
              else isinstance(value, int) and not isinstance(value, bool) if expected is int
              else isinstance(value, expected))
        if not ok:
            raise ValueError(f"{f.name}: expected {expected.__name__}, got {value!r} ({type(value).__name__})")
        if expected is float and not math.isfinite(value):  # NaN would pass every range check below
            raise ValueError(f"{f.name}: {value!r} is not allowed; give a finite number")
        meta = f.metadata
        if meta.get("choices") and value not in meta["choices"]:
            raise ValueError(f"{f.name}: {value!r} is not allowed; choose one of {list(meta['choices'])}")
        if meta.get("min") is not None and value < meta["min"]:
            raise ValueError(f"{f.name}: {value!r} is below the minimum {meta['min']}")
        if meta.get("max") is not None and value > meta["max"]:
            raise ValueError(f"{f.name}: {value!r} is above the maximum {meta['max']}")
