"""Colorize users' own photos of any size and mode, keeping their full-resolution L and their alpha."""

from __future__ import annotations

import logging
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
from PIL import Image

from colorgan.color import AB_SCALE, model_to_rgb, rgb_to_lab, rgb_to_model
from colorgan.data import ImageReadError, read_image, resize_square
from colorgan.metrics import Colorizer
from colorgan.runtime import atomic_write_bytes

log = logging.getLogger(__name__)

BAND_PIXELS = 1 << 20  # full-resolution pixels converted at a time (~50 MB of float temporaries)


@dataclass
class ColorizeOutcome:
    source: str
    output: str | None  # None when the file failed
    error: str | None = None


def colorize_image(img: Image.Image, colorize: Colorizer, size: int, device: torch.device,
                   generator: torch.Generator | None = None) -> Image.Image:
    """Colorize at the model's size, upsample ab, and join it with the original full-resolution L.

    The full-resolution work runs in bands of about BAND_PIXELS pixels: a float Lab copy of a whole
    24-megapixel photo (and the temporaries of the colour conversion) would take gigabytes.

    Args:
        img: RGB or RGBA PIL image of any size (colour is ignored: only its L is used).
    Returns:
        An image of the same size and mode (RGBA keeps its alpha channel unchanged).
    """
    alpha = img.getchannel("A") if img.mode == "RGBA" else None
    small = torch.from_numpy(resize_square(img, size)).float().div(255)[None].to(device)
    L_small, _ = rgb_to_model(small)
    ab_small = rgb_to_lab(colorize(L_small, generator))[:, 1:] / AB_SCALE  # (1, 2, s, s) in [-1, 1]
    rgb8 = np.asarray(img.convert("RGB"))  # (H, W, 3) uint8
    height, width = rgb8.shape[:2]
    # bilinear resizing is separable: widen ab once (small), then interpolate each band's rows
    ab_wide = ab_small.float() @ bilinear_weights(width, size).T.to(device)  # (1, 2, s, W)
    out = np.empty_like(rgb8)
    rows_per_band = max(1, BAND_PIXELS // width)
    for top in range(0, height, rows_per_band):
        rows = slice(top, min(top + rows_per_band, height))
        band = torch.tensor(rgb8[rows], device=device).permute(2, 0, 1)[None].float() / 255  # (1, 3, h, W)
        L, _ = rgb_to_model(band)
        ab = bilinear_weights(height, size, rows).to(device) @ ab_wide  # (1, 2, h, W)
        rgb = model_to_rgb(L, ab)[0].permute(1, 2, 0)  # (h, W, 3)
        out[rows] = (rgb * 255).round().to(torch.uint8).cpu().numpy()
    result = Image.fromarray(out, "RGB")
    if alpha is not None:
        result.putalpha(alpha)
    return result


def bilinear_weights(out_len: int, in_len: int, rows: slice | None = None) -> torch.Tensor:
    """Matrix of 1-D linear interpolation from ``in_len`` to ``out_len`` samples, for output ``rows``.

    Same sampling as ``F.interpolate(mode="bilinear", align_corners=False)`` (pixel centres, edges
    clamped). Returns: (len(rows), in_len) float32 whose rows sum to 1.
    """
    rows = rows or slice(0, out_len)
    dst = torch.arange(rows.start, rows.stop, dtype=torch.float64)
    src = ((dst + 0.5) * (in_len / out_len) - 0.5).clamp(min=0)
    low = src.floor().long().clamp(max=in_len - 1)
    high = (low + 1).clamp(max=in_len - 1)
    frac = src - low
    index = torch.arange(len(dst))
    weights = torch.zeros(len(dst), in_len, dtype=torch.float64)
    weights.index_put_((index, low), 1 - frac, accumulate=True)
    weights.index_put_((index, high), frac, accumulate=True)  # low == high at the far edge: weights add up
    return weights.float()


def output_path(source: Path, out_dir: Path, taken: set[Path] | None = None) -> Path:
    """PNG beside the others in ``out_dir`` (lossless, and it can carry alpha).

    Names already in ``taken`` (say photo.jpg and photo.png in one call) get ``_2``, ``_3``, ... so
    no output overwrites another from the same call.
    """
    target, copy = out_dir / f"{source.stem}_color.png", 1
    while taken is not None and target in taken:
        copy += 1
        target = out_dir / f"{source.stem}_{copy}_color.png"
    return target


def colorize_files(paths: list[Path], out_dir: Path, colorize: Colorizer, size: int, device: torch.device,
                   seed: int = 0) -> list[ColorizeOutcome]:
    """Colorize each file; a file that fails gets one outcome with the reason and the rest go on."""
    try:
        out_dir.mkdir(parents=True, exist_ok=True)
    except OSError as err:
        raise OSError(f"output folder {out_dir}: cannot create it ({err}); choose a writable folder") from None
    generator = torch.Generator().manual_seed(seed)
    outcomes, taken = [], set()
    for path in paths:
        target = output_path(path, out_dir, taken)
        taken.add(target)
        try:
            result = colorize_image(read_image(path), colorize, size, device, generator)
            # temp file + rename: an interrupted call never leaves a torn PNG that looks finished
            atomic_write_bytes(target, lambda f: result.save(f, format="PNG"))
            outcomes.append(ColorizeOutcome(str(path), str(target)))
        except (ImageReadError, OSError, ValueError, RuntimeError, MemoryError) as err:
            # RuntimeError/MemoryError: e.g. out of (GPU) memory on one huge photo; the others go on
            reason = err.reason if isinstance(err, ImageReadError) else f"{type(err).__name__}: {err}"
            log.debug("could not colorize %s: %s", path, reason)  # cli.py prints the one line
            outcomes.append(ColorizeOutcome(str(path), None, reason))
    return outcomes
