"""The profiles of ``make reproduce`` and ``make ablations``: each stage's settings per profile, and the data roots.

Values are config fields; ``colorgan.reproduce.plan`` turns a profile (and PARAMS) into every stage's validated parameters.
"""

from __future__ import annotations

from typing import Any

from colorgan.experiments.ablation import ABLATION_VARIANTS

# Settings that every training stage of a profile shares. Values are config fields.
_SMOKE_DATA = {"data": "samples", "image_size": 64, "num_sample_crops": 512}
_SMOKE_TRAIN = {"batch_size": 16, "num_bootstrap": 1000, "checkpoint_every": 50, "log_every": 5}
# The baselines at CPU widths (their defaults are the papers' sizes); see results/baselines-voc-mini/.
_CHROMAGAN_CPU = {"trunk_width": 32, "head_width": 256, "global_dim": 128, "class_hidden": 1024, "decoder_width": 64,
                  "disc_width": 32, "lr_g": 1e-4, "lr_d": 1e-4}
_COLTRAN_CPU = {"coarse_size": 16, "hidden_size": 64, "ff_size": 128, "num_heads": 2, "num_encoder_layers": 2,
                "num_outer_layers": 1, "num_inner_layers": 1, "upsampler_hidden_size": 64, "upsampler_ff_size": 128,
                "upsampler_heads": 2, "num_color_upsampler_layers": 1, "num_spatial_upsampler_layers": 1,
                "spatial_batch_size": 4, "ema_decay": 0.99, "lr": 1e-3}
PROFILES: dict[str, dict[str, dict[str, Any]]] = {
    # offline, minutes on a 2-core CPU; numbers NOT comparable with the paper (every page says so)
    "smoke": {
        "data": _SMOKE_DATA,
        "train": {**_SMOKE_DATA, **_SMOKE_TRAIN},
        # bf16 autocast: 2.17x fp32 eager for the ColorGAN step at these widths, 64 px, batch 16 on this AVX512_BF16
        # CPU (results/bench/*-smoke-widths-64px); the baselines stay fp32 until their steps are benchmarked in bf16
        "train_colorgan": {"num_steps": 120, "gen_width": 32, "gen_max_width": 128, "noise_width": 128, "disc_width": 32,
                           "amp": "bf16"},
        "train_chromagan": {"num_steps": 120, **_CHROMAGAN_CPU},
        # ColTran's upsamplers learn slowly: at 120 steps and lr 1e-3 its images were noise (PSNR 11.6 dB on these
        # crops); 200 steps at lr 3e-3 gave 17.7 dB (1e-2 diverged). ema_decay 0.95: 0.99 would keep 13% of step 1.
        "train_coltran": {**_COLTRAN_CPU, "num_steps": 200, "lr": 3e-3, "ema_decay": 0.95},
    },
    # real photos at 64 px on a CPU in well under an hour
    "voc-mini": {
        "data": {"data": "folder", "image_size": 64},
        "train": {"data": "folder", "image_size": 64, "batch_size": 16, "checkpoint_every": 200, "log_every": 10},
        "train_colorgan": {"num_steps": 1500, "gen_width": 32, "gen_max_width": 128, "noise_width": 128,
                           "disc_width": 32},
        "train_chromagan": {"num_steps": 1500, "batch_size": 10, **_CHROMAGAN_CPU},
        "train_coltran": {"num_steps": 1500, **_COLTRAN_CPU},
    },
    # the paper's protocol (§3.1): VOC2012, 256 px, 300 epochs, batch 16, ImageNet VGG; GPU work
    "paper": {
        "data": {"data": "voc", "image_size": 256},
        "train": {"data": "voc", "image_size": 256, "batch_size": 16, "num_epochs": 300, "checkpoint_every": 2000,
                  "log_every": 50},
        # the WGAN the paper cites (weight clipping) and fp32: amp='auto' would pick bf16 on a GPU
        "train_colorgan": {"vgg_weights": "imagenet", "adversarial": "wgan-clip", "amp": "off"},
        # ChromaGAN with its ImageNet VGG16 (trunk + class KL teacher); ColTran at its paper sizes (64 px core)
        "train_chromagan": {"vgg_weights": "imagenet"},
        "train_coltran": {"spatial_batch_size": 4},  # 256x256 axial attention: a few images per step
        "ablations": {"base": {"data": "voc", "image_size": 256, "batch_size": 16, "num_epochs": 300,
                               "vgg_weights": "imagenet", "adversarial": "wgan-clip", "amp": "off",
                               "checkpoint_every": 2000, "log_every": 50}},
    },
    # every ablation variant x 3 seeds on voc-mini at 32 px: under an hour on a 2-core CPU
    "ablation-mini": {
        "data": {"data": "folder", "image_size": 32},
        "ablations": {"base": {"data": "folder", "image_size": 32, "batch_size": 16, "num_steps": 150,
                               "gen_width": 16, "gen_max_width": 128, "noise_width": 64, "disc_width": 16,
                               "checkpoint_every": 150, "log_every": 10, "num_bootstrap": 1000}},
    },
}
PROFILES["smoke"]["ablations"] = {"base": {**_SMOKE_DATA, **_SMOKE_TRAIN, **PROFILES["smoke"]["train_colorgan"]},
                                  "seeds": [0, 1]}
# The study (`make reproduce PROFILE=study`, results/study/README.md says how each value was chosen): voc-mini at
# 64 px, every method at CPU widths (same family as the paper's, scaled), batch 16, bf16 autocast (2.17x on this
# CPU: results/bench/*-smoke-widths-64px), 3 seeds, the same number of training images for every method, 160
# training images set aside for validation every 100 steps, and the best-on-validation weights of every run scored on the test split.
_STUDY_BASE = {"data": "folder", "image_size": 64, "batch_size": 16, "amp": "bf16", "num_val_images": 160,
               "val_every": 100, "checkpoint_every": 100, "log_every": 10, "num_bootstrap": 2000}
_STUDY_COLORGAN = {"gen_width": 32, "noise_width": 128, "disc_width": 32}
PROFILES["study"] = {
    "data": {"data": "folder", "image_size": 64},
    "study": {"base": _STUDY_BASE, "seeds": [0, 1, 2], "num_images_seen": 12800,
              "methods": {"colorgan": _STUDY_COLORGAN, "chromagan": _CHROMAGAN_CPU, "coltran": _COLTRAN_CPU}},
    # The paper's claims at the study's size and per-run budget (make ablations PROFILE=study): each loss term,
    # the skips and the noise branch; not the noise_std sweep, which tests no claim. Two seeds, not three: at the
    # measured 0.35 s per step, 9 variants x 3 seeds x 800 steps is 2.1 h of training alone, and the ablation
    # must fit beside the study in one session of these 2 cores; its verdicts pair the same test images.
    "ablations": {"base": {**{k: v for k, v in _STUDY_BASE.items() if k not in ("num_val_images", "val_every")},
                           **_STUDY_COLORGAN, "num_steps": 12800 // 16},
                  "variants": {name: ABLATION_VARIANTS[name] for name in
                               ("full", "no_adversarial", "no_perceptual", "no_l1", "no_ls", "no_noise", "no_skips")},
                  "seeds": [0, 1]},
}
# Relative to the repository root (where make runs); `make data-voc-mini DATA=/path/to/VOCdevkit` builds it.
DEFAULT_DATA_ROOTS = {"voc-mini": "data/voc-mini", "ablation-mini": "data/voc-mini", "study": "data/voc-mini"}
VOC_MINI_HINT = ("build it from VOC2012 with `make data-voc-mini DATA=/path/to/VOCdevkit`, or pass "
                 "DATA=/path/to/voc-mini")
