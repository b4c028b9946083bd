"""Colorize users' own photos and folders of any size and mode, keeping their full-resolution L and their alpha
(or, for scoring, at the model's size prepared like a test set).

Every output says where it came from: the output folder gets ``colorize.json`` (run, method, checkpoint
step and digest, commit, protocol, size, seed, time) and each PNG the key facts as text chunks, so that
``colorgan score`` can name the row and check the protocol, and a stray PNG still tells what made it.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
from PIL import Image
from PIL.PngImagePlugin import PngInfo

from colorgan.common.runtime import atomic_write_bytes, write_json
from colorgan.measures.metrics import Colorizer, quantize
from colorgan.measures.testset import prepare, walk
from colorgan.method.color import AB_SCALE, model_to_rgb, rgb_to_lab, rgb_to_model, uint8_to_float
from colorgan.method.data import IMAGE_EXTENSIONS, ImageReadError, read_image, resize_square

log = logging.getLogger(__name__)

BAND_PIXELS = 1 << 20  # full-resolution pixels converted at a time (~50 MB of float temporaries)
COLORIZE_RECORD = "colorize.json"  # in the output folder: what made the images (``colorize_files``'s record)
# the record's fields that each PNG carries as a text chunk (prefixed 'colorgan:')
PNG_FIELDS = ("name", "run", "method", "checkpoint_step", "checkpoint_digest", "git_commit", "protocol",
              "image_size", "seed", "time")


@dataclass
class ColorizeOutcome:
    source: str
    output: str | None  # None when the file failed or was skipped
    error: str | None = None
    skipped: bool = False  # not an image (by extension) inside a folder: left alone, not a failure


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


def model_size_image(img: Image.Image, colorize: Colorizer, size: int, protocol: str, device: torch.device,
                     generator: torch.Generator | None = None) -> Image.Image:
    """Colorize at the model's size exactly as ``evaluate --protocol`` scores: photo prepared by ``protocol``.

    Returns: a size x size RGB image (8-bit, as the metrics quantise it); alpha is dropped.
    """
    rgb8 = torch.from_numpy(prepare(img, size, protocol))[None].to(device)  # (1, 3, S, S) uint8
    L, _ = rgb_to_model(uint8_to_float(rgb8))
    rgb = quantize(colorize(L, generator))[0].permute(1, 2, 0)  # (S, S, 3) in [0, 1]
    return Image.fromarray((rgb * 255).round().to(torch.uint8).cpu().numpy(), "RGB")


def folder_jobs(inputs: list[Path], out_dir: Path) -> tuple[list[tuple[Path, Path]], list[ColorizeOutcome]]:
    """(source, target) for every input file and every image under every input folder, and skipped files.

    A file given by name goes to ``out_dir/<stem>_color.png``. A folder is walked (sub-folders
    included); ``photos/a/b.jpg`` goes to ``out_dir/a/b.png``, so the tree is kept and the names match
    the ground truth's for ``colorgan score``. Files under a folder that are not images (by extension)
    are returned as skipped outcomes, and a folder without images as a failed one.
    """
    jobs, skipped, taken = [], [], set()
    for source in inputs:
        if source.is_dir():
            images, others = walk(source)
            skipped += [ColorizeOutcome(str(p), None, f"not an image (extension {p.suffix or 'none'})", skipped=True)
                        for p in others]
            if not images:
                skipped.append(ColorizeOutcome(str(source), None, "a folder with no images (extensions "
                                                                  f"{', '.join(IMAGE_EXTENSIONS)}) under it"))
            for path in images:
                target, copy = out_dir / path.relative_to(source).with_suffix(".png"), 1
                while target in taken:  # photo.jpg and photo.png in one folder
                    copy += 1
                    target = target.with_name(f"{path.stem}_{copy}.png")
                taken.add(target)
                jobs.append((path, target))
        else:
            target = output_path(source, out_dir, taken)
            taken.add(target)
            jobs.append((source, target))
    return jobs, skipped


def png_text(record: dict) -> PngInfo:
    """The record's key facts (``PNG_FIELDS``) as PNG tEXt chunks 'colorgan:<field>'."""
    info = PngInfo()
    for key in PNG_FIELDS:
        if key in record:
            info.add_text(f"colorgan:{key}", "" if record[key] is None else str(record[key]))
    return info


def colorize_files(paths: list[Path], out_dir: Path, colorize: Colorizer, size: int, device: torch.device,
                   seed: int = 0, protocol: str | None = None, progress: bool = False,
                   record: dict | None = None) -> list[ColorizeOutcome]:
    """Colorize each file, and every image under each folder; a file that fails gets one outcome with the
    reason and the rest go on.

    Args:
        protocol: None: full resolution, keeping each photo's own L (``colorize_image``); 'resize' or
            'center-crop': the model's size, prepared as ``evaluate`` prepares a test folder
            (``model_size_image``), so ``colorgan score`` of the outputs equals ``evaluate`` on the folder.
        record: where the outputs come from (run, method, checkpoint, commit, ...): written with protocol,
            size and seed to ``out_dir/colorize.json``, and its ``PNG_FIELDS`` into every PNG.
    Returns: one outcome per file, in order (skipped non-images included, with output None).
    """
    try:
        out_dir.mkdir(parents=True, exist_ok=True)
    except OSError as err:
        raise OSError(f"output folder {out_dir}: cannot create it ({err}); choose a writable folder") from None
    from tqdm.auto import tqdm  # imported here: only folder runs need a bar

    record = {**(record or {}), "protocol": protocol, "image_size": size, "seed": seed,
              "inputs": [str(p) for p in paths]}
    write_json(out_dir / COLORIZE_RECORD, record)
    text = png_text(record)
    jobs, skipped = folder_jobs(paths, out_dir)
    # one generator over all files, in the sorted order ``evaluate`` reads a folder: the same noise draws
    generator = torch.Generator().manual_seed(seed)
    outcomes = list(skipped)
    for path, target in tqdm(jobs, desc="colorize", unit="file", disable=not progress):
        try:
            img = read_image(path)
            result = (colorize_image(img, colorize, size, device, generator) if protocol is None
                      else model_size_image(img, colorize, size, protocol, device, generator))
            target.parent.mkdir(parents=True, exist_ok=True)
            # temp file + rename: an interrupted call never leaves a torn PNG that looks finished
            atomic_write_bytes(target, lambda f: result.save(f, format="PNG", pnginfo=text))
            outcomes.append(ColorizeOutcome(str(path), str(target)))
        except (ImageReadError, OSError, ValueError, RuntimeError, MemoryError) as err:
            # RuntimeError/MemoryError: e.g. out of (GPU) memory on one huge photo; the others go on
            reason = err.reason if isinstance(err, ImageReadError) else f"{type(err).__name__}: {err}"
            log.debug("could not colorize %s: %s", path, reason)  # cli.py prints the one line
            outcomes.append(ColorizeOutcome(str(path), None, reason))
    return outcomes
