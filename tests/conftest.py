"""Shared fixtures: tiny configs that train in seconds, temporary image folders, voc-mini."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from colorgan.config import ColorGANConfig

VOC_MINI = Path(__file__).resolve().parents[1].parent / "shared" / "data" / "voc-mini"

torch.set_num_threads(2)


def tiny_config(tmp_path: Path, **changes) -> ColorGANConfig:
    """A ColorGAN small enough to train a step in well under a second on 2 CPU cores."""
    params = dict(image_size=32, batch_size=4, num_sample_crops=16, num_steps=4, gen_width=8, gen_max_width=32,
                  noise_channels=4, noise_width=16, noise_layers=2, disc_width=8, disc_layers=2,
                  run_dir=str(tmp_path / "run"), progress=False, log_every=1, checkpoint_every=2, num_bootstrap=200)
    params.update(changes)
    return ColorGANConfig(**params)


@pytest.fixture
def tiny_cfg(tmp_path: Path) -> ColorGANConfig:
    return tiny_config(tmp_path)


def write_images(folder: Path, count: int, size: tuple[int, int] = (40, 30), seed: int = 0,
                 suffix: str = ".png") -> list[Path]:
    """``count`` random smooth colour images (smooth, so JPEG round trips stay close)."""
    folder.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(seed)
    paths = []
    for i in range(count):
        small = rng.integers(0, 256, size=(4, 4, 3), dtype=np.uint8)
        img = Image.fromarray(small).resize(size, Image.Resampling.BILINEAR)
        path = folder / f"img_{i:03d}{suffix}"
        img.save(path)
        paths.append(path)
    return paths


@pytest.fixture
def image_folder(tmp_path: Path) -> Path:
    """A folder with train/ (12 images) and test/ (4 images)."""
    root = tmp_path / "images"
    write_images(root / "train", 12, seed=1)
    write_images(root / "test", 4, seed=2)
    return root


@pytest.fixture
def voc_mini() -> Path:
    if not (VOC_MINI / "train").is_dir():
        pytest.skip(f"voc-mini not found at {VOC_MINI} (it lives in the shared data folder beside the repo)")
    return VOC_MINI
