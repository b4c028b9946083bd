"""voc-mini: the fixed 2,250-image subset of PASCAL VOC2012 that the voc-mini and ablation-mini profiles read.

``voc_mini_manifest.csv`` (beside this file) names every image (a VOC2012 id), its split (2,000
``train`` / 250 ``test``) and the SHA-256 of the 256x256 file. ``build`` remakes the set from a VOC2012
copy the way it was first made: the whole image (no crop, aspect ratio not kept) resized to 256x256
with Pillow's LANCZOS filter, RGB, saved as JPEG quality 92 into ``train/`` and ``test/``. Every file
is checked against its digest; the folder gets its final name only when all of them match.
"""

from __future__ import annotations

import csv
import hashlib
import io
import logging
import shutil
from dataclasses import dataclass, field
from pathlib import Path

from PIL import Image

from colorgan.method.data import find_voc_images

log = logging.getLogger(__name__)

MANIFEST = Path(__file__).with_name("voc_mini_manifest.csv")
IMAGE_SIZE = 256
JPEG_QUALITY = 92
SPLITS = ("train", "test")


@dataclass(frozen=True)
class Entry:
    """One image of the set: ``<split>/<file>`` with this SHA-256 (of the saved 256x256 JPEG)."""

    split: str
    file: str
    sha256: str


@dataclass
class Check:
    """What a build or verification found: files that match, originals not found, digests that differ."""

    matched: int = 0
    missing: list[str] = field(default_factory=list)  # 'train/2008_000008.jpg'
    mismatched: list[tuple[str, str, str]] = field(default_factory=list)  # (path, expected, got)

    @property
    def ok(self) -> bool:
        return not self.missing and not self.mismatched

    def describe(self, total: int, missing_what: str) -> str:
        """One paragraph naming the problem files (the first few of each kind)."""
        parts = [f"{self.matched} of {total} files match the manifest"]
        if self.missing:
            parts.append(f"{len(self.missing)} {missing_what} (first: {', '.join(self.missing[:5])})")
        if self.mismatched:
            shown = "; ".join(f"{p}: expected {e[:12]}..., got {g[:12]}..." for p, e, g in self.mismatched[:5])
            parts.append(f"{len(self.mismatched)} have another SHA-256 ({shown})")
        return "; ".join(parts)


def read_manifest(path: Path | None = None) -> list[Entry]:
    """The manifest's rows (default: ``MANIFEST``). Columns split, file, sha256; extra columns, as in the
    set's own MANIFEST.csv, are fine."""
    path = path or MANIFEST
    with open(path, newline="") as f:
        entries = [Entry(row["split"], row["file"], row["sha256"]) for row in csv.DictReader(f)]
    bad = [e for e in entries if e.split not in SPLITS or len(e.sha256) != 64 or "/" in e.file]
    if bad:
        raise ValueError(f"{path}: rows with an unknown split, a malformed sha256 or a path in 'file': {bad[:3]}")
    return entries


def convert(original: Path) -> bytes:
    """An original VOC photo as voc-mini stores it: RGB, whole image resized to 256x256 (LANCZOS), JPEG q92."""
    with Image.open(original) as image:
        resized = image.convert("RGB").resize((IMAGE_SIZE, IMAGE_SIZE), Image.LANCZOS)
    buffer = io.BytesIO()
    resized.save(buffer, "JPEG", quality=JPEG_QUALITY)
    return buffer.getvalue()


def build(voc_root: Path | str, out_dir: Path | str, manifest: Path | None = None) -> Path:
    """Make voc-mini in ``out_dir`` from the VOC2012 JPEGImages under ``voc_root``; returns ``out_dir``.

    An existing ``out_dir`` is verified instead of rebuilt. The files are written to
    ``<out_dir>.partial`` first and renamed to ``out_dir`` only when every digest matches.

    Raises:
        FileNotFoundError: no JPEGImages under ``voc_root``.
        ValueError: an original is missing, or a rebuilt file's SHA-256 differs; the message names them
            and where the partial folder is.
    """
    manifest = manifest or MANIFEST
    out_dir, entries = Path(out_dir), read_manifest(manifest)
    if out_dir.exists():
        log.info("%s exists: verifying it instead of rebuilding (delete it to rebuild)", out_dir)
        return verify(out_dir, manifest)
    images = find_voc_images(Path(voc_root).expanduser())
    partial = out_dir.with_name(out_dir.name + ".partial")
    if partial.exists():
        shutil.rmtree(partial)
    for split in SPLITS:
        (partial / split).mkdir(parents=True)
    check = Check()
    for entry in entries:
        original = images / entry.file
        if not original.is_file():
            check.missing.append(entry.file)
            continue
        data = convert(original)
        (partial / entry.split / entry.file).write_bytes(data)
        digest = hashlib.sha256(data).hexdigest()
        if digest == entry.sha256:
            check.matched += 1
        else:
            check.mismatched.append((f"{entry.split}/{entry.file}", entry.sha256, digest))
    if not check.ok:
        raise ValueError(
            f"voc-mini: {check.describe(len(entries), f'originals are not in {images}')}. The files are in "
            f"{partial}, which is NOT voc-mini. A missing original means another VOC copy (voc-mini's are the "
            "VOC2012 trainval JPEGImages); another SHA-256 with the original present means a different "
            "original file or another Pillow/libjpeg build (the set was made with Pillow's LANCZOS and JPEG "
            f"quality {JPEG_QUALITY}). Pass a checked copy of voc-mini as DATA=/path/to/voc-mini instead.")
    shutil.copy(manifest, partial / "MANIFEST.csv")
    partial.rename(out_dir)
    log.info("voc-mini: %d files written to %s, every SHA-256 matches", check.matched, out_dir)
    return out_dir


def verify(folder: Path | str, manifest: Path | None = None) -> Path:
    """Check that ``folder`` holds every voc-mini file with its SHA-256; returns ``folder``.

    Raises:
        ValueError: files missing or different, named in the message.
    """
    folder, entries = Path(folder), read_manifest(manifest)
    check = Check()
    for entry in entries:
        path = folder / entry.split / entry.file
        if not path.is_file():
            check.missing.append(f"{entry.split}/{entry.file}")
            continue
        digest = hashlib.sha256(path.read_bytes()).hexdigest()
        if digest == entry.sha256:
            check.matched += 1
        else:
            check.mismatched.append((f"{entry.split}/{entry.file}", entry.sha256, digest))
    if not check.ok:
        raise ValueError(f"voc-mini at {folder}: {check.describe(len(entries), 'are missing')}; delete the "
                         "folder and rebuild it, or pass another copy")
    log.info("voc-mini at %s: all %d files match the manifest", folder, check.matched)
    return folder
