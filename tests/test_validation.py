"""Validation during training: a fixed subset of the training split, never the test split."""

import json
from pathlib import Path

import numpy as np
import pytest
import torch

from colorgan.method.data import ImageSet, carve_validation, load_split
from colorgan.method.step import ColorGANStep
from colorgan.training.train import load_trained, train
from colorgan.training.validation import read_val_log
from tests.conftest import checkpoint_parameters, tiny_config


def image_set(names: list[str]) -> ImageSet:
    images = np.arange(len(names), dtype=np.uint8)[:, None, None, None] * np.ones((1, 3, 2, 2), np.uint8)
    return ImageSet(images, names)


def test_carved_images_are_fixed_disjoint_and_independent_of_order():
    names = [f"img_{i:03d}.jpg" for i in range(50)]
    train, val = carve_validation(image_set(names), 10)
    shuffled = list(reversed(names))
    train2, val2 = carve_validation(image_set(shuffled), 10)
    assert sorted(val.names) == sorted(val2.names) and len(val) == 10 and len(train) == 40
    assert not set(train.names) & set(val.names) and set(train.names) | set(val.names) == set(names)
    # the pixels travel with their names
    assert all(int(val.images[i, 0, 0, 0]) == names.index(n) for i, n in enumerate(val.names))
    with pytest.raises(ValueError, match="num_val_images: 50 leaves no training images"):
        carve_validation(image_set(names), 50)


def test_val_every_needs_validation_images(tmp_path):
    with pytest.raises(ValueError, match="val_every: 2 needs validation images"):
        tiny_config(tmp_path, val_every=2)


def test_validation_is_scored_during_training_and_never_on_the_test_split(tmp_path):
    cfg = tiny_config(tmp_path, num_sample_crops=24, num_val_images=8, val_every=2, num_steps=5, checkpoint_every=10)
    train(cfg, ColorGANStep, tmp_path / "cache")
    run_dir = Path(cfg.run_dir)
    records = read_val_log(run_dir)
    assert [r["step"] for r in records] == [2, 4, 5]  # every 2 steps and at the end
    assert [r["images_seen"] for r in records] == [8, 16, 20]
    assert all(r["num_images"] == 8 and np.isfinite(r["psnr"]) and r["gray_psnr"] > 0 for r in records)
    split = json.loads((run_dir / "split.json").read_text())
    _, test, _ = load_split(cfg.replace(num_val_images=0, val_every=0), tmp_path / "cache")
    assert len(split["val"]) == 8 and not set(split["val"]) & set(test.names)
    assert not set(split["val"]) & set(split["train"]) and split["num_train"] == 16
    # the best weights are the ones that scored the best validation PSNR
    best = max(records, key=lambda r: r["psnr"])
    _, _, step = load_trained(run_dir, type(cfg), ColorGANStep, torch.device("cpu"), checkpoint="best_val")
    assert step == best["step"]


def test_validating_does_not_change_training(tmp_path):
    often = tiny_config(tmp_path / "a", num_sample_crops=24, num_val_images=8, val_every=1, num_steps=4)
    once = tiny_config(tmp_path / "b", num_sample_crops=24, num_val_images=8, val_every=0, num_steps=4)
    for cfg in (often, once):
        train(cfg, ColorGANStep, tmp_path / "cache")
    a, b = checkpoint_parameters(Path(often.run_dir)), checkpoint_parameters(Path(once.run_dir))
    assert all(torch.equal(a[k], b[k]) for k in a)
    assert read_val_log(once.run_dir)[-1]["psnr"] == read_val_log(often.run_dir)[-1]["psnr"]


def test_resumed_validation_log_equals_uninterrupted(tmp_path):
    changes = dict(num_sample_crops=24, num_val_images=8, val_every=2, checkpoint_every=3)
    straight = tiny_config(tmp_path / "a", num_steps=6, **changes)
    train(straight, ColorGANStep, tmp_path / "cache")
    half = tiny_config(tmp_path / "b", num_steps=3, **changes)
    train(half, ColorGANStep, tmp_path / "cache")
    train(half.replace(num_steps=6, resume=True), ColorGANStep, tmp_path / "cache")
    resumed = {r["step"]: r for r in read_val_log(half.run_dir)}
    uninterrupted = {r["step"]: r for r in read_val_log(straight.run_dir)}
    assert sorted(resumed) == [2, 3, 4, 6] and sorted(uninterrupted) == [2, 4, 6]  # 3: the end of session one
    for step in (2, 4, 6):
        assert resumed[step]["psnr"] == uninterrupted[step]["psnr"]
