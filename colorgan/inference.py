"""Colorize users' own photos of any size and mode, keeping their full-resolution L and their alpha."""

from __future__ import annotations

import logging
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from PIL import Image

from colorgan.color import AB_SCALE, model_to_rgb, rgb_to_lab, rgb_to_model
from colorgan.data import ImageReadError, read_image, resize_square
from colorgan.metrics import Colorizer

log = logging.getLogger(__name__)


@dataclass
class ColorizeOutcome:
    source: str
    output: str | None  # None when the file failed
    error: str | None = None


def colorize_image(img: Image.Image, colorize: Colorizer, size: int, device: torch.device,
                   generator: torch.Generator | None = None) -> Image.Image:
    """Colorize at the model's size, upsample ab, and join it with the original full-resolution L.

    Args:
        img: RGB or RGBA PIL image of any size (colour is ignored: only its L is used).
    Returns:
        An image of the same size and mode (RGBA keeps its alpha channel unchanged).
    """
    alpha = img.getchannel("A") if img.mode == "RGBA" else None
    rgb_full = torch.from_numpy(np.asarray(img.convert("RGB"), dtype=np.float32) / 255).permute(2, 0, 1)[None]
    L_full, _ = rgb_to_model(rgb_full)  # (1, 1, H, W)
    small = torch.from_numpy(resize_square(img, size)).float().div(255)[None].to(device)
    L_small, _ = rgb_to_model(small)
    ab_small = rgb_to_lab(colorize(L_small, generator))[:, 1:].cpu() / AB_SCALE  # (1, 2, s, s) in [-1, 1]
    ab_full = F.interpolate(ab_small, size=L_full.shape[-2:], mode="bilinear", align_corners=False)
    rgb = model_to_rgb(L_full, ab_full)[0].permute(1, 2, 0).numpy()
    out = Image.fromarray(np.round(rgb * 255).astype(np.uint8), "RGB")
    if alpha is not None:
        out.putalpha(alpha)
    return out


def output_path(source: Path, out_dir: Path) -> Path:
    """PNG beside the others in ``out_dir``: lossless, and it can carry alpha."""
    return out_dir / f"{source.stem}_color.png"


def colorize_files(paths: list[Path], out_dir: Path, colorize: Colorizer, size: int, device: torch.device,
                   seed: int = 0) -> list[ColorizeOutcome]:
    """Colorize each file; a file that fails gets one outcome with the reason and the rest go on."""
    out_dir.mkdir(parents=True, exist_ok=True)
    generator = torch.Generator().manual_seed(seed)
    outcomes = []
    for path in paths:
        try:
            result = colorize_image(read_image(path), colorize, size, device, generator)
            target = output_path(path, out_dir)
            result.save(target)
            outcomes.append(ColorizeOutcome(str(path), str(target)))
        except (ImageReadError, OSError, ValueError) as err:
            reason = err.reason if isinstance(err, ImageReadError) else f"{type(err).__name__}: {err}"
            log.debug("could not colorize %s: %s", path, reason)  # cli.py prints the one line
            outcomes.append(ColorizeOutcome(str(path), None, reason))
    return outcomes
