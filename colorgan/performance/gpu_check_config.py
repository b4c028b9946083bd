"""`colorgan gpu-check`'s config: its sections, the faults tests inject, sizes and tolerances, each method's model
sizes and the parameters of the runs and benches it starts (no torch: the CLI builds its flags from it at start-up)."""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any

from colorgan.common.params import Params, opt, validate_fields
from colorgan.performance.bench_config import BENCH_VARIANTS

GPU_CHECK_SECTIONS = ("switches", "methods", "ddp", "bench")  # in the order they run
GPU_CHECK_FAULTS = ("hang", "raise", "die", "stub")
# Model fields per method. GPU form: the papers' sizes (the configs' defaults) with offline VGG weights
# (same FLOPs as ImageNet's); ColTran trains its 256x256 spatial upsampler on 4 images per step, as the
# paper profile does. Tiny form: toy widths that train a step in well under a second on a CPU.
PAPER_SIZES: dict[str, dict[str, Any]] = {"coltran": {"spatial_batch_size": 4}}
TINY_SIZES: dict[str, dict[str, Any]] = {
    "colorgan": {"gen_width": 8, "gen_max_width": 32, "noise_channels": 4, "noise_width": 16, "noise_layers": 2,
                 "disc_width": 8, "disc_layers": 2, "vgg_layer": "relu2_2"},
    "chromagan": {"trunk_width": 8, "head_width": 16, "global_dim": 16, "class_hidden": 32, "decoder_width": 8,
                  "disc_width": 8, "disc_layers": 2, "teacher_size": 32},
    "coltran": {"coarse_size": 8, "hidden_size": 16, "ff_size": 32, "num_heads": 2, "num_encoder_layers": 1,
                "num_outer_layers": 1, "num_inner_layers": 1, "upsampler_hidden_size": 16, "upsampler_ff_size": 32,
                "upsampler_heads": 2, "num_color_upsampler_layers": 1, "num_spatial_upsampler_layers": 1,
                "spatial_batch_size": 2},
}


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

    def run_params(self, model: dict[str, Any], **changes: Any) -> dict[str, Any]:
        """A training run's parameters at this check's sizes on the bundled sample photos (one log line per step,
        a checkpoint at the end), with a method's size fields ``model`` and ``changes`` on top."""
        return {"data": "samples", "image_size": self.image_size, "batch_size": self.batch_size,
                "num_sample_crops": max(self.batch_size, 16), "num_steps": self.num_steps,
                "checkpoint_every": self.num_steps, "log_every": 1, "progress": False, "device": self.device,
                "seed": self.seed, "num_bootstrap": 100, **model, **changes}


def model_params(cfg: GpuCheckConfig, method: str) -> dict[str, Any]:
    """A method's model fields in the check's form: ``TINY_SIZES`` with ``tiny``, else ``PAPER_SIZES``."""
    return dict(TINY_SIZES.get(method, {}) if cfg.tiny else PAPER_SIZES.get(method, {}))


def bench_params(cfg: GpuCheckConfig) -> dict[str, Any]:
    """The BenchConfig fields every bench of the check shares: device, seed and ColorGAN's sizes."""
    return {"device": cfg.device, "seed": cfg.seed, "model_params": json.dumps(model_params(cfg, "colorgan"))}
