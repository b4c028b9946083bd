"""Datasets, deterministic splits, a decode-once uint8 cache, and seeded batch iteration.

Three sources (``cfg.data``):
    voc      PASCAL VOC2012 ``JPEGImages`` with the paper's 15,413 / 1,712 split (§3.1).
    folder   any image folder: ``train/`` + ``test/`` subfolders, or a deterministic ratio split.
    samples  the colour photos that scikit-image and matplotlib install, cut into random crops;
             held-out photos form the test set. The offline default: no download, no data folder.

Images are decoded and resized once into an on-disk cache of shape (N, 3, S, S) uint8, keyed by the
file list, file sizes/mtimes and S, so later epochs (and later runs) do no JPEG work. Batches are
drawn by index from that array; the order and flips are a pure function of (seed, step), which is
what makes resume exactly equal to an uninterrupted run.

One job, over 400 lines: the images a run trains and tests on, from a file on disk to a batch.
"""

from __future__ import annotations

import hashlib
import json
import logging
import math
import os
import queue
import threading
import warnings
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Iterator, Sequence, TypeVar

import numpy as np
import torch
from PIL import Image, ImageOps, UnidentifiedImageError

from colorgan.common.runtime import atomic_write_bytes
from colorgan.method.config import DataConfig

log = logging.getLogger(__name__)

IMAGE_EXTENSIONS = (".jpg", ".jpeg", ".png", ".bmp", ".gif", ".tif", ".tiff", ".webp")
VOC_NUM_IMAGES = 17125  # VOC2012 JPEGImages (paper §3.1)
VOC_NUM_TEST = 1712  # paper §3.1: 15,413 train / 1,712 test
T = TypeVar("T")
_END = object()  # prefetch: the wrapped iterator is exhausted
MAX_PIXELS = 100_000_000  # refuse larger declared sizes (decompression bombs) before decoding
WIDE_GRAY_MODES = ("I;16", "I;16L", "I;16B", "I;16N", "I")  # PIL modes of 16/32-bit grayscale files

# Colour photos shipped with scikit-image and matplotlib (no download). Test photos are never cropped
# for training. motorcycle_right is left out: it is the stereo twin of motorcycle_left.
SAMPLE_TRAIN = ("skimage:astronaut.png", "skimage:chelsea.png", "skimage:coffee.png",
                "skimage:motorcycle_left.png", "skimage:hubble_deep_field.jpg", "skimage:retina.jpg",
                "skimage:ihc.png", "matplotlib:Minduka_Present_Blue_Pack.png")
SAMPLE_TEST = ("skimage:rocket.jpg", "matplotlib:grace_hopper.jpg")
SAMPLE_TEST_CROPS = 16  # crops per held-out photo, plus the whole photo
SAMPLE_DATA_SEED = 1234  # crops do not change with the training seed, so seeds share one test set


class ImageReadError(Exception):
    """A file that cannot be used as an image; ``str()`` names the file and the reason."""

    def __init__(self, path: Path | str, reason: str):
        super().__init__(f"{path}: {reason}")
        self.path, self.reason = str(path), reason


@dataclass
class ImageSet:
    """Decoded images of one split. images: (N, 3, S, S) uint8 (possibly a read-only memmap)."""

    images: np.ndarray
    names: list[str]
    skipped: list[str] = field(default_factory=list)  # "path: reason" for unreadable files

    def __len__(self) -> int:
        return len(self.names)


# ----------------------------------------------------------------------------------------- reading


def read_image(path: Path | str) -> Image.Image:
    """Open an image file as RGB or RGBA with EXIF orientation applied.

    Raises:
        ImageReadError: missing, empty, not an image, truncated, or a declared size over MAX_PIXELS.
    """
    path = Path(path)
    if not path.is_file():
        raise ImageReadError(path, "not a file (a folder or special file)" if path.exists() else "no such file")
    if path.stat().st_size == 0:
        raise ImageReadError(path, "empty file (0 bytes)")
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("error", Image.DecompressionBombWarning)
            with Image.open(path) as img:
                width, height = img.size
                if width * height > MAX_PIXELS:
                    raise ImageReadError(path, f"declared size {width}x{height} exceeds {MAX_PIXELS:,} pixels "
                                               "(possible decompression bomb)")
                img.seek(0)  # animated files: the first frame
                img = ImageOps.exif_transpose(img)
                if img.mode in WIDE_GRAY_MODES:
                    img = scale_to_8bit(img)
                has_alpha = img.mode in ("RGBA", "LA", "PA") or "transparency" in img.info
                img = img.convert("RGBA" if has_alpha else "RGB")
                img.load()
                return img
    except ImageReadError:
        raise
    except (Image.DecompressionBombError, Image.DecompressionBombWarning) as err:
        raise ImageReadError(path, f"refused as a possible decompression bomb ({err})") from None
    except UnidentifiedImageError:
        raise ImageReadError(path, "not an image: its content matches no format Pillow reads "
                                   "(the file name's extension is not used)") from None
    except (OSError, ValueError, SyntaxError) as err:
        raise ImageReadError(path, f"not a readable image ({type(err).__name__}: {err})") from None


def scale_to_8bit(img: Image.Image) -> Image.Image:
    """16-bit (or 32-bit integer) grayscale to 8-bit "L" by scaling 0..65535 to 0..255.

    PIL's own ``convert`` clips these modes at 255, which turns a 16-bit photo almost white.
    Mode "I" is how PIL opens 16-bit PNG/TIFF gray in some versions, so it is read as 16-bit too.
    """
    wide = np.asarray(img, dtype=np.int64).clip(0, 65535)  # (H, W)
    return Image.fromarray(((wide * 255 + 32767) // 65535).astype(np.uint8), "L")


def resize_square(img: Image.Image, size: int) -> np.ndarray:
    """Resize the whole image to size x size (aspect not kept, as the paper prepares VOC).

    Returns: (3, size, size) uint8 RGB.
    """
    rgb = img.convert("RGB").resize((size, size), Image.Resampling.LANCZOS)
    return np.asarray(rgb, dtype=np.uint8).transpose(2, 0, 1).copy()


def list_images(folder: Path) -> list[Path]:
    """Image files directly in ``folder`` (sorted by name); raises if the folder is missing or empty."""
    if not folder.is_dir():
        raise FileNotFoundError(f"image folder {folder} does not exist")
    files = sorted(p for p in folder.iterdir() if p.suffix.lower() in IMAGE_EXTENSIONS and p.is_file())
    if not files:
        raise FileNotFoundError(f"no images ({', '.join(IMAGE_EXTENSIONS)}) in {folder}")
    return files


# ------------------------------------------------------------------------------------------ splits


def hash_split(files: Sequence[Path], num_test: int) -> tuple[list[Path], list[Path]]:
    """Deterministic split by SHA-1 of the file name: the ``num_test`` lowest hashes form the test set.

    Independent of the training seed and of the file system's order, so every run and every
    machine gets the same split. Returns (train, test), each sorted by name.
    """
    # fsencode: the name's bytes on disk (UTF-8 for ordinary names, so splits are unchanged); a name
    # that is not valid UTF-8 would make str.encode() raise
    ranked = sorted(files, key=lambda p: hashlib.sha1(os.fsencode(p.name)).hexdigest())
    test = sorted(ranked[:num_test])
    train = sorted(ranked[num_test:])
    return train, test


def find_voc_images(root: Path) -> Path:
    """Locate ``JPEGImages`` under a VOCdevkit, VOC2012 or JPEGImages path, or explain what is missing."""
    for candidate in (root / "VOC2012" / "JPEGImages", root / "JPEGImages", root):
        if candidate.name == "JPEGImages" and candidate.is_dir():
            return candidate
    raise FileNotFoundError(
        f"no VOC2012 JPEGImages folder under {root}. Expected {root}/VOC2012/JPEGImages/*.jpg "
        "(extract VOCtrainval_11-May-2012.tar there, or run `make data-voc`)")


def voc_split(root: Path) -> tuple[list[Path], list[Path]]:
    """The paper's split of VOC2012 JPEGImages: 1,712 test images (10%) and the rest for training."""
    files = list_images(find_voc_images(root))
    if len(files) != VOC_NUM_IMAGES:
        log.warning("VOC2012 JPEGImages holds %d images, the paper's set has %d; splitting 10%% for test",
                    len(files), VOC_NUM_IMAGES)
    num_test = VOC_NUM_TEST if len(files) == VOC_NUM_IMAGES else int(len(files) * 0.1)
    return hash_split(files, num_test)


def folder_split(root: Path, test_fraction: float) -> tuple[list[Path], list[Path]]:
    """``root/train`` + ``root/test`` when both exist, else a hash split of ``root`` itself."""
    if (root / "train").is_dir() and (root / "test").is_dir():
        return list_images(root / "train"), list_images(root / "test")
    files = list_images(root)
    return hash_split(files, int(round(len(files) * test_fraction)))


VOC_ARCHIVE = "VOCtrainval_11-May-2012.tar"


def fetch_voc(root: Path) -> Path:
    """Download (where the network allows) and verify VOC2012 with torchvision's dataset code.

    Offline, place the archive at ``root/VOC_ARCHIVE``: torchvision checks its MD5 and extracts it.
    Returns the JPEGImages folder.
    """
    import torchvision

    root.mkdir(parents=True, exist_ok=True)
    try:
        torchvision.datasets.VOCSegmentation(str(root), year="2012", image_set="trainval", download=True)
    except Exception as err:  # URLError, HTTPError, socket errors, a checksum RuntimeError...
        raise RuntimeError(
            f"could not download or verify VOC2012 ({type(err).__name__}: {err}). Offline: fetch {VOC_ARCHIVE} "
            f"(1.9 GB, from the PASCAL VOC2012 site) elsewhere, place it at {root / VOC_ARCHIVE}, and run "
            "`make data-voc` again; torchvision checks its MD5 and extracts it") from None
    return find_voc_images(root / "VOCdevkit")


# ------------------------------------------------------------------------------------------- cache


def cached_images(files: Sequence[Path], size: int, cache_dir: Path, progress: bool = False) -> ImageSet:
    """Decode and resize ``files`` once into ``cache_dir``; later calls memory-map the result.

    The key covers each file's path, size and mtime plus ``size``, so an edited file rebuilds the
    cache. Unreadable files are skipped with one warning each and listed in ``ImageSet.skipped``.
    """
    entries = [(str(p), *_stat(p)) for p in files]
    key = hashlib.sha256(json.dumps([entries, size]).encode()).hexdigest()[:20]
    array_path, index_path = cache_dir / f"{key}.npy", cache_dir / f"{key}.json"
    if array_path.exists() and index_path.exists():
        try:
            index = json.loads(index_path.read_text())
            images = np.load(array_path, mmap_mode="r")
            if images.shape != (len(index["names"]), 3, size, size):
                raise ValueError(f"shape {images.shape} does not match its {len(index['names'])} names")
            return ImageSet(images, index["names"], index["skipped"])
        except (OSError, ValueError, KeyError, TypeError) as err:  # damaged or foreign cache: decode again
            log.warning("image cache %s is unreadable (%s); decoding the images again", array_path, err)

    def decode(path: Path) -> np.ndarray | str:
        try:
            return resize_square(read_image(path), size)
        except ImageReadError as err:
            return str(err)

    from tqdm.auto import tqdm  # imported here: only cache builds show a bar

    # PIL releases the GIL while decoding and resizing, so threads give a real speed-up.
    with ThreadPoolExecutor() as pool:
        results = list(tqdm(pool.map(decode, files), total=len(files), desc=f"decode {size}px",
                            disable=not progress, leave=False))
    arrays = [r for r in results if isinstance(r, np.ndarray)]
    names = [p.name for p, r in zip(files, results) if isinstance(r, np.ndarray)]
    skipped = [r for r in results if isinstance(r, str)]
    for line in skipped:
        log.warning("skipped unreadable image %s", line)
    if not arrays:
        raise ValueError(f"none of the {len(files)} files could be read; first error: {skipped[0]}")
    images = np.stack(arrays)
    atomic_write_bytes(array_path, lambda f: np.save(f, images))
    atomic_write_bytes(index_path, lambda f: f.write(json.dumps({"names": names, "skipped": skipped}).encode()))
    return ImageSet(images, names, skipped)


def _stat(path: Path) -> tuple[int, float]:
    try:
        st = path.stat()
        return st.st_size, st.st_mtime
    except OSError:
        return -1, 0.0


# ---------------------------------------------------------------------------------------- samples


def sample_photo(name: str) -> Image.Image:
    """Load a bundled sample photo, e.g. 'skimage:astronaut.png' or 'matplotlib:grace_hopper.jpg'."""
    package, filename = name.split(":")
    if package == "skimage":
        import skimage.data

        folder = Path(skimage.data.__file__).parent
    else:
        import matplotlib

        folder = Path(matplotlib.get_data_path()) / "sample_data"
    return read_image(folder / filename).convert("RGB")


def random_crops(img: Image.Image, num_crops: int, size: int, rng: np.random.Generator) -> list[np.ndarray]:
    """Square crops with side in [40%, 100%] of the shorter side, resized to size. Each: (3, size, size) uint8."""
    width, height = img.size
    short = min(width, height)
    crops = []
    for _ in range(num_crops):
        side = int(rng.uniform(0.4, 1.0) * short)
        left, top = int(rng.integers(0, width - side + 1)), int(rng.integers(0, height - side + 1))
        crops.append(resize_square(img.crop((left, top, left + side, top + side)), size))
    return crops


def sample_images(num_train_crops: int, size: int) -> tuple[ImageSet, ImageSet]:
    """The offline default: seeded crops of bundled photos; held-out photos (crops + whole) for test."""
    rng = np.random.default_rng(SAMPLE_DATA_SEED)
    per_photo = math.ceil(num_train_crops / len(SAMPLE_TRAIN))
    train, train_names = [], []
    for name in SAMPLE_TRAIN:
        crops = random_crops(sample_photo(name), per_photo, size, rng)
        train += crops
        train_names += [f"{name}#crop{i}" for i in range(len(crops))]
    test, test_names = [], []
    for name in SAMPLE_TEST:
        img = sample_photo(name)
        test += [resize_square(img, size), *random_crops(img, SAMPLE_TEST_CROPS, size, rng)]
        test_names += [f"{name}#whole"] + [f"{name}#crop{i}" for i in range(SAMPLE_TEST_CROPS)]
    return (ImageSet(np.stack(train[:num_train_crops]), train_names[:num_train_crops]),
            ImageSet(np.stack(test), test_names))


# -------------------------------------------------------------------------------------- top level


def load_split(cfg: DataConfig, cache_dir: Path = Path(".cache/images"),
               progress: bool = False) -> tuple[ImageSet, ImageSet, dict]:
    """Training and test images for ``cfg.data`` at ``cfg.image_size``, plus a description of the split.

    ``progress`` draws a bar while a folder is decoded for the first time (later calls read the cache).

    Returns:
        (train, test, info) where info records source, root, counts and skipped files (for provenance).
    """
    size = cfg.image_size
    if cfg.data == "samples":
        train, test = sample_images(cfg.num_sample_crops, size)
        root = "bundled sample photos (scikit-image, matplotlib)"
    else:
        root_path = Path(cfg.data_root).expanduser()
        if not root_path.exists():
            raise FileNotFoundError(f"data_root: {root_path} does not exist")
        train_files, test_files = (voc_split(root_path) if cfg.data == "voc"
                                   else folder_split(root_path, cfg.test_fraction))
        if not train_files or not test_files:
            raise ValueError(f"data_root: {root_path} gives {len(train_files)} train and {len(test_files)} "
                             "test images; both must be non-empty")
        train = cached_images(train_files, size, cache_dir, progress)
        test = cached_images(test_files, size, cache_dir, progress)
        root = str(root_path.resolve())
    if cfg.max_images:
        train = ImageSet(train.images[: cfg.max_images], train.names[: cfg.max_images], train.skipped)
    info = {
        "source": cfg.data,
        "root": root,
        "image_size": size,
        "num_train": len(train),
        "num_test": len(test),
        "skipped": train.skipped + test.skipped,
    }
    return train, test, info


def split_record(train: ImageSet, test: ImageSet, info: dict) -> dict:
    """The split as saved next to the results (``split.json``): file names per side."""
    return {**info, "train": list(train.names), "test": list(test.names)}


def steps_per_epoch(num_images: int, batch_size: int) -> int:
    """Full batches per epoch (the last partial batch is dropped, as batch statistics need a full batch)."""
    if num_images < batch_size:
        raise ValueError(f"batch_size: {batch_size} is larger than the {num_images} training images")
    return num_images // batch_size


def batches(images: np.ndarray, batch_size: int, seed: int, start_step: int = 0, flip: bool = True, *,
            rank: int = 0, world_size: int = 1, pin_memory: bool = False) -> Iterator[torch.Tensor]:
    """Endless seeded batches, starting at ``start_step``.

    Epoch e uses a permutation drawn from a generator seeded with (seed, e); flips come from the same
    generator. So batch k is the same whether the run started at 0 or resumed at k.

    With ``world_size`` > 1 every rank draws the same global batch of ``batch_size`` images and keeps
    rows [rank·b, (rank+1)·b), b = batch_size / world_size: the ranks' slices, concatenated in rank
    order, are exactly one process's batch.

    Args:
        pin_memory: build each batch in page-locked memory (CUDA only), ready for a non_blocking copy.
    Yields: (b, 3, S, S) uint8 tensors.
    """
    if batch_size % world_size:
        raise ValueError(f"batch_size: {batch_size} is not divisible by the {world_size} processes; "
                         "the global batch is split evenly across them")
    local = batch_size // world_size
    per_epoch = steps_per_epoch(len(images), batch_size)
    epoch, offset = divmod(start_step, per_epoch)
    while True:
        gen = torch.Generator().manual_seed(seed * 1_000_003 + epoch)
        order = torch.randperm(len(images), generator=gen)
        flips = (torch.rand(len(images), generator=gen) < 0.5).tolist()
        for k in range(offset, per_epoch):
            # sorted reads are sequential on a memmap; the batch's order does not matter to the loss
            idx = order[k * batch_size:(k + 1) * batch_size].sort().values[rank * local:(rank + 1) * local]
            batch = torch.empty((local, *images.shape[1:]), dtype=torch.uint8, pin_memory=pin_memory)
            rows = batch.numpy()
            for row, i in enumerate(idx.tolist()):
                # mirrored while copied: one pass per image, ~20x faster than a masked flip afterwards
                # (measured by `colorgan bench`, pipeline)
                rows[row] = images[i, :, :, ::-1] if flip and flips[i] else images[i]
            yield batch
        epoch, offset = epoch + 1, 0


def prefetch(items: Iterator[T], depth: int = 2) -> Iterator[T]:
    """Yield from ``items`` while a background thread stays up to ``depth`` items ahead.

    For the CUDA path: image copies release the GIL, so the next batches are gathered and pinned
    while the main thread launches the current step. Errors in ``items`` are raised here; closing
    this generator stops the thread.
    """
    ready: queue.Queue = queue.Queue(maxsize=depth)
    stop = threading.Event()

    def put(entry: tuple) -> bool:
        while not stop.is_set():
            try:
                ready.put(entry, timeout=0.1)
                return True
            except queue.Full:
                continue
        return False

    def produce() -> None:
        try:
            for item in items:
                if not put((item, None)):
                    return
            put((_END, None))
        except BaseException as err:  # handed to the consumer, which re-raises it
            put((None, err))

    worker = threading.Thread(target=produce, name="colorgan-prefetch", daemon=True)
    worker.start()
    try:
        while True:
            item, err = ready.get()
            if err is not None:
                raise err
            if item is _END:
                return
            yield item
    finally:
        stop.set()
        worker.join(timeout=5)


def carve_validation(train: ImageSet, num_val: int) -> tuple[ImageSet, ImageSet]:
    """Set ``num_val`` training images aside as a validation set: (train without them, validation).

    The choice is the ``num_val`` lowest SHA-1 hashes of the image names, so it does not depend on the
    seed, the method or the file order: every run of a study is validated on the same images, and
    none of them is ever trained on. The test split is never touched.
    """
    if num_val >= len(train):
        raise ValueError(f"num_val_images: {num_val} leaves no training images (the split has {len(train)}); "
                         "use fewer validation images")
    ranked = sorted(range(len(train)), key=lambda i: hashlib.sha1(os.fsencode(train.names[i])).hexdigest())
    val_index, train_index = sorted(ranked[:num_val]), sorted(ranked[num_val:])
    keep = ImageSet(train.images[train_index], [train.names[i] for i in train_index], train.skipped)
    return keep, ImageSet(train.images[val_index], [train.names[i] for i in val_index])
