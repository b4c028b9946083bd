"""Shared fixtures: tiny configs that train in seconds, temporary image folders, voc-mini."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Callable

import numpy as np
import pytest
import torch
from PIL import Image

from colorgan.method.config import ColorGANConfig, RunConfig
from colorgan.performance.ddp_check import relative_distance  # noqa: F401 - the tests' one measure of how far two runs ended apart
from colorgan.training.checkpoints import CheckpointDir
from colorgan.training.train import StepFactory, TrainStep, train

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




class CountingStep:
    """A method's step that counts the updates it makes; everything else is the wrapped step's own."""

    def __init__(self, step: TrainStep):
        self.step, self.updates = step, 0

    def __getattr__(self, name: str):
        return getattr(self.step, name)

    def __call__(self, batch: torch.Tensor) -> dict[str, torch.Tensor]:
        self.updates += 1
        return self.step(batch)


def counting(build_step: StepFactory, built: list[CountingStep]) -> StepFactory:
    """``build_step``, with each step it builds wrapped in a ``CountingStep`` and appended to ``built``."""
    def build(cfg: RunConfig, device: torch.device) -> CountingStep:
        built.append(CountingStep(build_step(cfg, device)))
        return built[-1]
    return build


def assert_resume_equals_uninterrupted(make_config: Callable[..., RunConfig], build_step: StepFactory,
                                       tmp_path: Path) -> dict[str, torch.Tensor]:
    """6 steps straight vs 3 steps + resume to 6: the checkpoints must agree bit for bit (any method).

    Training is deterministic, so a resume that silently retrained from step 0 would agree too. So the
    resumed run must make exactly 3 updates, and a second resume, from a copy of the step-3 checkpoint
    with one weight tensor shifted by +1, must end with that shift still in the tensor (a run that
    ignored the checkpoint would end bit-identical to the straight run).

    ``make_config(folder, **changes)`` gives a tiny config with run_dir under ``folder``. Returns the
    resumed run's tensors.
    """
    cache = tmp_path / "cache"
    straight = make_config(tmp_path / "a", num_steps=6, checkpoint_every=3)
    train(straight, build_step, cache)
    first_half = make_config(tmp_path / "b", num_steps=3, checkpoint_every=3)
    train(first_half, build_step, cache)
    state = CheckpointDir(Path(first_half.run_dir) / "checkpoints").load_latest()

    built: list[CountingStep] = []
    assert train(first_half.replace(num_steps=6, resume=True), counting(build_step, built), cache).step == 6
    assert built[-1].updates == 3, f"the resumed run made {built[-1].updates} updates, not 6 - 3"
    a, b = checkpoint_parameters(Path(straight.run_dir)), checkpoint_parameters(Path(first_half.run_dir))
    assert a.keys() == b.keys()
    assert all(torch.equal(a[k], b[k]) for k in a), [k for k in a if not torch.equal(a[k], b[k])][:3]

    perturbed = make_config(tmp_path / "c", num_steps=6, checkpoint_every=3, resume=True)
    module, name = next((m, k) for m, sd in state["modules"].items() for k, v in sd.items()
                        if k.endswith("weight") and v.is_floating_point())
    state["modules"][module][name] = state["modules"][module][name] + 1.0
    state["config"] = {**state["config"], "run_dir": perturbed.run_dir}
    CheckpointDir(Path(perturbed.run_dir) / "checkpoints").save(state["step"], state)
    assert train(perturbed, counting(build_step, built), cache).step == 6 and built[-1].updates == 3
    shift = checkpoint_parameters(Path(perturbed.run_dir))[f"{module}.{name}"] - a[f"{module}.{name}"]
    assert shift.mean().item() > 0.5, f"{module}.{name}: the +1 put into the checkpoint became {shift.mean():.3g}"
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


def voc_mini_candidates() -> list[Path]:
    """Where a voc-mini copy may be: $COLORGAN_VOC_MINI, the repository's data/voc-mini (what
    `make data-voc-mini` builds), and the shared data folder beside the repository."""
    named = [Path(os.environ["COLORGAN_VOC_MINI"])] if os.environ.get("COLORGAN_VOC_MINI") else []
    return [*named, Path(__file__).resolve().parents[1] / "data" / "voc-mini", VOC_MINI]


@pytest.fixture
def voc_mini() -> Path:
    found = next((p for p in voc_mini_candidates() if (p / "train").is_dir()), None)
    if found is None:
        pytest.skip("voc-mini not found at " + ", ".join(map(str, voc_mini_candidates()))
                    + " (build it with `make data-voc-mini DATA=/path/to/VOCdevkit`, or set COLORGAN_VOC_MINI)")
    return found
