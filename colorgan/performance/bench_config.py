"""`colorgan bench`'s config: its variants, its reference and its sizes per device (no torch: the CLI builds its flags
from it at start-up)."""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any

from colorgan.common.params import Params, opt, validate_fields
from colorgan.method.config import ColorGANConfig

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
