"""A corpus of awkward and broken image files, generated on the fly (no binaries in the repository).

Each case says what ``colorgan colorize`` must do with it: colorize it at a given size (keeping alpha
where the file has it), or refuse it with a reason that contains a given phrase.
"""

from __future__ import annotations

import io
import struct
import zlib
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from PIL import Image

EXIF_ORIENTATION = 0x0112


@dataclass(frozen=True)
class Case:
    path: Path
    size: tuple[int, int] | None = None  # (width, height) of the colorized output; None: refused
    reason: str | None = None  # phrase the refusal must contain
    alpha: bool = False  # output keeps an alpha channel


def smooth_rgb(size: tuple[int, int], seed: int = 0) -> Image.Image:
    """A smooth random colour image (JPEG-friendly) of size (width, height)."""
    rng = np.random.default_rng(seed)
    return Image.fromarray(rng.integers(0, 256, (4, 4, 3), dtype=np.uint8)).resize(size, Image.Resampling.BILINEAR)


def png_header_only(path: Path, width: int, height: int) -> None:
    """A PNG that declares width x height RGB pixels but holds only a few bytes of data.

    The size lives in the IHDR chunk, so a reader that trusts it would allocate width*height*3 bytes.
    """
    def chunk(kind: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))

    ihdr = struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0)  # 8-bit RGB, no interlace
    path.write_bytes(b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", ihdr) + chunk(b"IDAT", zlib.compress(b"\0" * 64))
                     + chunk(b"IEND", b""))


def make_corpus(folder: Path) -> dict[str, Case]:
    """Write every case into ``folder`` (created) and return them by name."""
    folder.mkdir(parents=True, exist_ok=True)
    cases: dict[str, Case] = {}

    def refused(name: str, reason: str) -> None:
        cases[name] = Case(folder / name, reason=reason)

    def colorized(name: str, size: tuple[int, int], alpha: bool = False) -> None:
        cases[name] = Case(folder / name, size=size, alpha=alpha)

    jpeg = io.BytesIO()
    smooth_rgb((64, 48)).save(jpeg, format="JPEG")
    (folder / "truncated.jpg").write_bytes(jpeg.getvalue()[: len(jpeg.getvalue()) // 2])
    refused("truncated.jpg", "not a readable image (OSError: ")

    (folder / "empty.jpg").touch()
    refused("empty.jpg", "empty file (0 bytes)")

    (folder / "notes.jpg").write_text("shopping list: milk, eggs\n")
    refused("notes.jpg", "not an image: its content matches no format")

    png_header_only(folder / "bomb.png", 100_000, 100_000)  # 10^10 pixels: over PIL's hard limit
    refused("bomb.png", "decompression bomb")
    png_header_only(folder / "bomb_moderate.png", 10_000, 10_000)  # 10^8: over PIL's warning limit
    refused("bomb_moderate.png", "decompression bomb")

    smooth_rgb((50, 40), seed=1).save(folder / "png_named.jpg", format="PNG")
    colorized("png_named.jpg", (50, 40))

    smooth_rgb((36, 28), seed=2).convert("CMYK").save(folder / "cmyk.jpg")
    colorized("cmyk.jpg", (36, 28))

    ramp = np.linspace(0, 65535, 48 * 32).reshape(32, 48).astype(np.uint16)  # dark to white, row by row
    Image.fromarray(ramp).save(folder / "gray16.png")  # PIL mode I;16
    colorized("gray16.png", (48, 32))

    smooth_rgb((30, 20), seed=3).convert("P", palette=Image.Palette.ADAPTIVE, colors=16).save(folder / "palette.gif")
    colorized("palette.gif", (30, 20))

    frames = [smooth_rgb((24, 18), seed=s).convert("P", palette=Image.Palette.ADAPTIVE) for s in (4, 5, 6)]
    frames[0].save(folder / "animated.gif", save_all=True, append_images=frames[1:], duration=80, loop=0)
    colorized("animated.gif", (24, 18))

    keyed = smooth_rgb((28, 16), seed=14).convert("P", palette=Image.Palette.ADAPTIVE, colors=8)
    keyed.save(folder / "transparent.gif", transparency=0)  # palette index 0 is see-through
    colorized("transparent.gif", (28, 16), alpha=True)

    rgba = smooth_rgb((33, 21), seed=7).convert("RGBA")
    rgba.putalpha(Image.linear_gradient("L").resize((33, 21)))  # alpha 0..255 from top to bottom
    rgba.save(folder / "alpha.png")
    colorized("alpha.png", (33, 21), alpha=True)

    Image.new("RGB", (1, 1), (200, 120, 40)).save(folder / "one_pixel.png")
    colorized("one_pixel.png", (1, 1))

    smooth_rgb((300, 3), seed=8).save(folder / "strip.png")
    colorized("strip.png", (300, 3))

    stored = smooth_rgb((40, 20), seed=9)
    exif = Image.Exif()
    exif[EXIF_ORIENTATION] = 6  # stored landscape, shown rotated 90° clockwise: portrait
    stored.save(folder / "exif_rotated.jpg", exif=exif, quality=95)
    colorized("exif_rotated.jpg", (20, 40))

    smooth_rgb((26, 22), seed=10).save(folder / "photo.webp", quality=90)
    colorized("photo.webp", (26, 22))

    smooth_rgb((27, 19), seed=11).save(folder / "Crème brûlée — Ålesund 写真.png")
    colorized("Crème brûlée — Ålesund 写真.png", (27, 19))

    smooth_rgb((45, 35), seed=12).convert("L").save(folder / "already_gray.jpg", quality=95)
    colorized("already_gray.jpg", (45, 35))
    return cases


def make_large_photo(folder: Path) -> Case:
    """A 6000x4000 JPEG (24 megapixels), the size of a typical camera photo."""
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / "large_6000x4000.jpg"
    smooth_rgb((6000, 4000), seed=13).save(path, quality=85)
    return Case(path, size=(6000, 4000))


def evil_pickle(path: Path, marker: Path) -> None:
    """A .pt/.pth file whose unpickling would run ``os.system`` and create ``marker``."""
    import os
    import pickle
    import shlex

    import torch

    class Payload:
        def __reduce__(self):
            return os.system, (f"touch {shlex.quote(str(marker))}",)

    # torch.save's zip container with the payload as its pickle: torch.load(weights_only=False) would run it
    torch.save({"state": Payload()}, path, pickle_module=pickle)
