"""Shared fixtures: tiny configs that train in seconds, temporary image folders, voc-mini."""

from __future__ import annotations

from pathlib import Path
from typing import Callable

import numpy as np
import pytest
import torch
from PIL import Image

from colorgan.config import ColorGANConfig, RunConfig
from colorgan.train import CheckpointDir, StepFactory, train

VOC_MINI = Path(__file__).resolve().parents[1].parent / "shared" / "data" / "voc-mini"

torch.set_num_threads(2)


def tiny_config(tmp_path: Path, **changes) -> ColorGANConfig:
    """A ColorGAN small enough to train a step in well under a second on 2 CPU cores."""
    params = dict(image_size=32, batch_size=4, num_sample_crops=16, num_steps=4, gen_width=8, gen_max_width=32,
                  noise_channels=4, noise_width=16, noise_layers=2, disc_width=8, disc_layers=2,
                  run_dir=str(tmp_path / "run"), progress=False, log_every=1, checkpoint_every=2, num_bootstrap=200)
    params.update(changes)
    return ColorGANConfig(**params)


def fixed_batch_history(step: Callable[[torch.Tensor], dict[str, torch.Tensor]], batch: torch.Tensor,
                        num_steps: int) -> list[dict[str, float]]:
    """Update ``step`` ``num_steps`` times on the same batch; the logged terms of every update, as floats."""
    return [{name: float(value) for name, value in step(batch).items()} for _ in range(num_steps)]


def checkpoint_parameters(run_dir: Path) -> dict[str, torch.Tensor]:
    """Every module tensor of a run's newest checkpoint, keyed '<module>.<name>'."""
    state = CheckpointDir(run_dir / "checkpoints").load_latest()
    return {f"{m}.{k}": v for m, sd in state["modules"].items() for k, v in sd.items()}


def assert_resume_equals_uninterrupted(make_config: Callable[..., RunConfig], build_step: StepFactory,
                                       tmp_path: Path) -> dict[str, torch.Tensor]:
    """6 steps straight vs 3 steps + resume to 6: the checkpoints must agree bit for bit (any method).

    ``make_config(folder, **changes)`` gives a tiny config with run_dir under ``folder``. Returns the
    resumed run's tensors.
    """
    straight = make_config(tmp_path / "a", num_steps=6, checkpoint_every=3)
    train(straight, build_step, tmp_path / "cache")
    first_half = make_config(tmp_path / "b", num_steps=3, checkpoint_every=3)
    train(first_half, build_step, tmp_path / "cache")
    assert train(first_half.replace(num_steps=6, resume=True), build_step, tmp_path / "cache").step == 6
    a, b = checkpoint_parameters(Path(straight.run_dir)), checkpoint_parameters(Path(first_half.run_dir))
    assert a.keys() == b.keys()
    assert all(torch.equal(a[k], b[k]) for k in a), [k for k in a if not torch.equal(a[k], b[k])][:3]
    return b


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
