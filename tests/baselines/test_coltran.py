import json
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from baselines.coltran import PRESETS, ColTranConfig, ColTranStep, coltran_config
from baselines.coltran.core import ColTranCore
from baselines.coltran.quantize import (area_downsample, bins_to_labels, gray_levels, labels_to_bins,
                                        nearest_upsample, to_coarse_bits)
from baselines.coltran.step import bits_per_dim, make_targets
from baselines.coltran.upsampler import ParallelUpsampler
from colorgan.cli import METHODS, main
from colorgan.method.color import rgb_to_model
from colorgan.method.data import sample_images
from colorgan.report import table1
from tests.conftest import assert_resume_equals_uninterrupted, fixed_batch_history, write_images

CPU = torch.device("cpu")


def tiny_coltran(tmp_path: Path, **changes) -> ColTranConfig:
    params = dict(num_sample_crops=16, num_steps=4, run_dir=str(tmp_path / "run"), progress=False, log_every=1,
                  checkpoint_every=2, num_bootstrap=200)
    return coltran_config("tiny", **{**params, **changes})


def fixed_batch(size: int = 16, count: int = 2) -> torch.Tensor:
    train_set, _ = sample_images(8, size)
    return torch.from_numpy(train_set.images[:count].copy())


def test_bins_and_labels_round_trip():
    bins = torch.arange(512).view(2, 16, 16)
    labels = bins_to_labels(bins)
    assert labels.shape == (2, 3, 16, 16) and labels.min() == 0 and labels.max() == 7
    assert torch.equal(labels_to_bins(labels), bins)
    assert labels[0, :, 0, 1].tolist() == [0, 0, 1] and labels[0, :, 0, 8].tolist() == [0, 1, 0]  # 64R + 8G + B
    levels = torch.tensor([0, 31, 32, 255])
    assert to_coarse_bits(levels).tolist() == [0, 0, 1, 7]  # x // 32, as convert_bits(x, 8, 3)


def test_gray_comes_from_L_and_coarse_images_are_area_averages():
    rgb = torch.tensor([0.0, 0.5, 1.0]).view(1, 3, 1, 1).expand(3, 3, 2, 2).transpose(0, 1).contiguous()  # grays
    gray = gray_levels(rgb_to_model(rgb)[0])
    assert gray.shape == (3, 2, 2) and gray[:, 0, 0].tolist() == [0, 128, 255]
    levels = torch.tensor([[[0, 2], [4, 255]]])
    assert area_downsample(levels, 1).tolist() == [[[65]]]  # (0 + 2 + 4 + 255) / 4 = 65.25
    assert torch.equal(nearest_upsample(levels, 4)[0, :2, :2], torch.zeros(2, 2, dtype=torch.long))


def test_shapes(tmp_path: Path):
    cfg = tiny_coltran(tmp_path)
    core = ColTranCore(cfg)
    gray = torch.randint(0, 256, (2, 8, 8))
    logits, parallel = core(gray, torch.randint(0, 512, (2, 8, 8)))
    assert logits.shape == parallel.shape == (2, 8, 8, 512)
    upsampler = ParallelUpsampler(8, 8, dim=16, ff_size=16, heads=1, num_layers=1)
    assert upsampler(torch.randint(0, 8, (2, 8, 8)), torch.tensor([0, 2]), gray).shape == (2, 8, 8, 256)
    assert upsampler.upsample(torch.randint(0, 8, (2, 3, 8, 8)), gray).shape == (2, 3, 8, 8)
    step = ColTranStep(cfg, CPU)
    rgb = step.colorize(torch.rand(2, 1, 16, 16) * 2 - 1, torch.Generator().manual_seed(0))
    assert rgb.shape == (2, 3, 16, 16) and 0 <= rgb.min() and rgb.max() <= 1


@pytest.mark.parametrize("position", [(0, 0), (3, 4), (3, 7), (7, 0)])
def test_core_is_causal(tmp_path: Path, position):
    """Changing pixel (i, j)'s colour never changes the logits of (i, j) or of any pixel before it in raster order."""
    torch.manual_seed(0)
    core = ColTranCore(tiny_coltran(tmp_path, num_outer_layers=2, num_inner_layers=2)).eval()
    gray, bins = torch.randint(0, 256, (1, 8, 8)), torch.randint(0, 512, (1, 8, 8))
    changed = bins.clone()
    changed[0, position[0], position[1]] = (bins[0, position[0], position[1]] + 100) % 512
    with torch.no_grad():
        (before, parallel_before), (after, parallel_after) = core(gray, bins), core(gray, changed)
    index = position[0] * 8 + position[1]
    before, after = before.reshape(64, 512), after.reshape(64, 512)  # raster order
    assert torch.allclose(before[: index + 1], after[: index + 1], atol=1e-6)
    if index < 63:
        assert not torch.allclose(before[index + 1:], after[index + 1:], atol=1e-4)  # the test can fail
    assert torch.equal(parallel_before, parallel_after)  # the parallel head sees the gray image only


def test_sampling_agrees_with_the_teacher_forced_pass(tmp_path: Path):
    torch.manual_seed(0)
    core = ColTranCore(tiny_coltran(tmp_path)).eval()
    gray = torch.randint(0, 256, (2, 8, 8))
    bins = core.sample(gray, None, mode="argmax")
    with torch.no_grad():
        logits, _ = core(gray, bins)
    assert torch.equal(logits.argmax(-1), bins)  # each pixel is the argmax given the pixels before it
    first = core.sample(gray, torch.Generator().manual_seed(1), mode="sample")
    assert torch.equal(first, core.sample(gray, torch.Generator().manual_seed(1), mode="sample"))


def test_coltran_learns_a_fixed_batch(tmp_path: Path):
    torch.manual_seed(0)
    history = fixed_batch_history(ColTranStep(tiny_coltran(tmp_path, lr=3e-3), CPU), fixed_batch(), 30)
    assert history[-1]["loss"] < 0.5 * history[0]["loss"], [h["loss"] for h in history]
    for name in ("color_upsampler", "spatial_upsampler"):
        assert history[-1][name] < history[0][name]


def test_loss_is_the_papers_weighting(tmp_path: Path):
    step = ColTranStep(tiny_coltran(tmp_path), CPU)
    terms = step(fixed_batch())
    assert terms["loss"].item() == pytest.approx(0.99 * terms["autoregressive"].item()
                                                 + 0.01 * terms["parallel"].item(), rel=1e-5)
    no_parallel = ColTranStep(tiny_coltran(tmp_path, lambda_parallel=0.0), CPU)(fixed_batch())
    assert "parallel" not in no_parallel
    logits = torch.zeros(1, 2, 2, 512)
    assert bits_per_dim(logits, torch.zeros(1, 2, 2, dtype=torch.long)).item() == pytest.approx(9.0)  # log2(512)


def test_targets_and_presets(tmp_path: Path):
    t = make_targets(fixed_batch(), 8)
    assert t.gray.shape == (2, 16, 16) and t.gray_coarse.shape == (2, 8, 8) and t.rgb_coarse.shape == (2, 3, 8, 8)
    paper = coltran_config("paper")
    assert (paper.coarse_size, paper.hidden_size, paper.num_heads, paper.image_size) == (64, 512, 4, 256)
    assert (paper.lambda_ar, paper.lambda_parallel, paper.lr, paper.ema_decay) == (0.99, 0.01, 3e-4, 0.999)
    assert set(PRESETS) == {"paper", "tiny"}
    with pytest.raises(ValueError, match="coarse_size: 6 must divide image_size=16"):
        tiny_coltran(tmp_path, coarse_size=6)
    with pytest.raises(ValueError, match="hidden_size: 30 must be divisible by num_heads=4"):
        tiny_coltran(tmp_path, hidden_size=30, num_heads=4)
    with pytest.raises(ValueError, match="spatial_batch_size: 3 is more than batch_size=2"):
        tiny_coltran(tmp_path, spatial_batch_size=3)


def test_resume_equals_uninterrupted(tmp_path: Path):
    tensors = assert_resume_equals_uninterrupted(tiny_coltran, ColTranStep, tmp_path)
    assert any(k.startswith("core_ema.") for k in tensors)  # the Polyak averages are checkpointed too


def test_cli_train_evaluate_colorize_and_table1(tmp_path: Path, capsys, monkeypatch):
    monkeypatch.chdir(tmp_path)  # the image cache goes under ./.cache
    run = tmp_path / "run"
    params = json.dumps({k: v for k, v in PRESETS["tiny"].items()})
    assert main(["train", "--method", "coltran", "--params", params, "--num-sample-crops", "16", "--num-steps", "2",
                 "--no-progress", "--num-bootstrap", "200", "--run-dir", str(run)]) == 0
    assert main(["evaluate", str(run)]) == 0
    assert "coltran" in capsys.readouterr().out
    table, _ = table1.table1([str(run)], METHODS)
    assert list(table.Method) == ["ColTran", "grayscale (ab = 0)"] and "RGB output" in table.notes[0]
    write_images(tmp_path / "photos", 1, size=(30, 20))
    assert main(["colorize", str(tmp_path / "photos" / "img_000.png"), "-o", str(tmp_path / "out"),
                 "--run", str(run)]) == 0
    assert np.asarray(Image.open(tmp_path / "out" / "img_000_color.png")).shape == (20, 30, 3)


def test_short_run_with_a_slow_average_is_flagged(tmp_path: Path, caplog):
    """0.99 over 120 steps keeps 30% of the first step's weights: warned at build time and noted beside results."""
    with caplog.at_level("WARNING"):
        step = ColTranStep(tiny_coltran(tmp_path, num_steps=120, ema_decay=0.99), CPU)
    assert "keep 30% of the first step's" in caplog.text
    assert "still 30% step-1 weights after 120 steps" in step.describe()["notes"]
    caplog.clear()
    with caplog.at_level("WARNING"):
        quick = ColTranStep(tiny_coltran(tmp_path, num_steps=120, ema_decay=0.95), CPU)
    assert caplog.text == "" and "step-1" not in quick.describe()["notes"]
