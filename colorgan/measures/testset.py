"""External test sets: any folder of photos, prepared for scoring by a named protocol, with a digest.

Two protocols bring a photo of any size to the S x S evaluation size:
    resize       the whole photo resized to S x S (aspect not kept): the paper's VOC protocol (§3.1).
    center-crop  the centred square of side min(W, H), then resized to S x S: the ImageNet val5k
                 protocol of ColTran / CT2 / DDColor (crop, then 256²).
Both resize with Pillow's LANCZOS filter, as the training data is prepared (``data.resize_square``).
"""

from __future__ import annotations

import hashlib
import logging
import os
from pathlib import Path

import numpy as np
from PIL import Image

from colorgan.method.data import IMAGE_EXTENSIONS, ImageReadError, ImageSet, read_image, resize_square

log = logging.getLogger(__name__)

PROTOCOLS = ("resize", "center-crop")


def check_protocol(protocol: str) -> None:
    if protocol not in PROTOCOLS:
        raise ValueError(f"protocol: {protocol!r} is not allowed; choose one of {list(PROTOCOLS)}")


def center_crop_box(width: int, height: int, aspect: float = 1.0) -> tuple[int, int, int, int]:
    """The largest centred box of ``aspect`` (width / height) in a (width, height) image: (left, top, right, bottom)."""
    crop_w, crop_h = (round(height * aspect), height) if width / height > aspect else (width, round(width / aspect))
    crop_w, crop_h = max(1, min(crop_w, width)), max(1, min(crop_h, height))
    left, top = (width - crop_w) // 2, (height - crop_h) // 2
    return left, top, left + crop_w, top + crop_h


def prepare(img: Image.Image, size: tuple[int, int] | int, protocol: str) -> np.ndarray:
    """Bring a photo to the evaluation size by ``protocol``.

    Args:
        img: PIL image of any size and mode (converted to RGB; alpha is dropped).
        size: S (square) or (width, height) of the result.
    Returns:
        (3, height, width) uint8 RGB.
    """
    check_protocol(protocol)
    width, height = (size, size) if isinstance(size, int) else size
    if protocol == "center-crop":
        img = img.crop(center_crop_box(*img.size, aspect=width / height))
    if width == height:
        return resize_square(img, width)
    rgb = img.convert("RGB").resize((width, height), Image.Resampling.LANCZOS)
    return np.asarray(rgb, dtype=np.uint8).transpose(2, 0, 1).copy()


def image_key(path: Path, root: Path) -> str:
    """How files are matched across folders: the path below ``root`` without its extension ('a/b/photo')."""
    return path.relative_to(root).with_suffix("").as_posix()


def walk(root: Path) -> tuple[list[Path], list[Path]]:
    """Every file under ``root`` (sub-folders included, sorted by relative path): (images, other files).

    Images are told by their extension (``data.IMAGE_EXTENSIONS``); hidden files and folders are skipped.
    """
    if not root.is_dir():
        raise FileNotFoundError(f"{root} is not a folder")
    images, others = [], []
    for folder, subfolders, files in os.walk(root):
        subfolders[:] = sorted(d for d in subfolders if not d.startswith("."))
        for name in sorted(files):
            if name.startswith("."):
                continue
            path = Path(folder) / name
            (images if path.suffix.lower() in IMAGE_EXTENSIONS else others).append(path)
    key = lambda p: p.relative_to(root).as_posix()  # noqa: E731 -- the order every caller shares
    return sorted(images, key=key), sorted(others, key=key)


def file_list_digest(files: list[Path], root: Path) -> str:
    """SHA-256 over each file's path below ``root`` and the SHA-256 of its bytes (names and contents)."""
    digest = hashlib.sha256()
    for path in files:
        digest.update(path.relative_to(root).as_posix().encode() + b"\0")
        digest.update(hashlib.sha256(path.read_bytes()).digest() if path.is_file() else b"missing")
    return digest.hexdigest()


def images_digest(images: ImageSet) -> str:
    """SHA-256 of the prepared pixels and names of a test set (what the metrics actually see)."""
    digest = hashlib.sha256()
    digest.update("\n".join(images.names).encode())
    digest.update(np.ascontiguousarray(images.images).tobytes())
    return digest.hexdigest()


def load_test_folder(root: Path | str, size: int, protocol: str = "resize") -> tuple[ImageSet, dict]:
    """Every image under ``root``, prepared by ``protocol`` at size x size; unreadable files are skipped.

    Returns:
        (images, info): images (N, 3, size, size) uint8 named by their path below ``root``; info records
        path, file count, file-list digest, protocol, size and skipped files (for provenance).
    """
    check_protocol(protocol)
    root = Path(root).expanduser()
    files, _ = walk(root)
    if not files:
        raise FileNotFoundError(f"no images ({', '.join(IMAGE_EXTENSIONS)}) under {root}")
    arrays, names, skipped = [], [], []
    for path in files:
        try:
            arrays.append(prepare(read_image(path), size, protocol))
            names.append(path.relative_to(root).as_posix())
        except ImageReadError as err:
            log.warning("skipped unreadable image %s", err)
            skipped.append(str(err))
    if not arrays:
        raise ValueError(f"none of the {len(files)} images under {root} could be read; first error: {skipped[0]}")
    info = {"path": str(root.resolve()), "num_files": len(files), "num_images": len(arrays),
            "file_list_digest": file_list_digest(files, root), "protocol": protocol, "image_size": size,
            "skipped": skipped}
    return ImageSet(np.stack(arrays), names, skipped), info
