"""Under bf16 autocast the colour conversions of the step still run in fp32 (predicted and target alike)."""

from pathlib import Path

import torch

from colorgan.method.color import model_to_rgb
from colorgan.method.step import ColorGANStep, model_to_rgb_fp32
from tests.conftest import tiny_config

CPU = torch.device("cpu")


def test_lab_to_rgb_is_fp32_inside_autocast():
    L, ab = torch.rand(2, 1, 8, 8) * 2 - 1, torch.rand(2, 2, 8, 8) * 2 - 1
    with torch.autocast("cpu", dtype=torch.bfloat16):
        rgb = model_to_rgb_fp32(L, ab.bfloat16())
    assert rgb.dtype == torch.float32
    assert torch.equal(rgb, model_to_rgb(L, ab.bfloat16().float()))


def test_perceptual_loss_sees_both_images_in_fp32_under_bf16(tmp_path: Path):
    # fails on the code before this fix: the predicted image reached the VGG as bf16, the target as fp32
    cfg = tiny_config(tmp_path, amp="bf16", vgg_layer="relu1_2", lambda_s=0.0, image_size=16)
    step = ColorGANStep(cfg, CPU)
    seen: list[torch.Tensor] = []
    vgg = step.vgg_forward
    step.vgg_forward = lambda image: seen.append(image.detach()) or vgg(image)
    step(torch.randint(0, 256, (2, 3, 16, 16), dtype=torch.uint8, generator=torch.Generator().manual_seed(0)))
    target, predicted = seen
    assert target.dtype == predicted.dtype == torch.float32
