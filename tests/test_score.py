"""Benchmarking any colorizer on any test set: protocols, `colorgan score`, folders through `colorize`,
evaluation on other folders, reuse keys, and Table 1's new columns and external rows."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import torch
from PIL import Image
from skimage.metrics import peak_signal_noise_ratio

from colorgan.cli import METHODS, main
from colorgan.common import published
from colorgan.evaluation import evaluate as evaluate_module
from colorgan.evaluation.evaluate import eval_dir, evaluate_or_reuse, evaluate_run
from colorgan.evaluation.score import score_folders
from colorgan.measures.metrics import GRAYSCALE, evaluate, quantize
from colorgan.measures.testset import center_crop_box, load_test_folder, prepare
from colorgan.method.color import gray_rgb, rgb_to_model, uint8_to_float
from colorgan.method.data import ImageSet
from colorgan.method.step import ColorGANStep
from colorgan.report import table1
from colorgan.training.train import train
from tests.bad_images import smooth_rgb
from tests.conftest import tiny_config, write_images

CPU = torch.device("cpu")


@pytest.fixture(scope="module")
def folder_run(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    """A tiny ColorGAN trained 2 steps on a folder (train/ + test/), and a second folder of other photos.

    Lp and Ls are off so that no VGG19 is built. Returns (run_dir, other photos folder).
    """
    root = tmp_path_factory.mktemp("folder_run")
    write_images(root / "data" / "train", 8, size=(40, 30), seed=1)
    write_images(root / "data" / "test", 5, size=(40, 30), seed=2)
    other = root / "other"
    write_images(other, 3, size=(50, 30), seed=3)
    write_images(other / "sub", 2, size=(30, 50), seed=4, suffix=".jpg")
    cfg = tiny_config(root, data="folder", data_root=str(root / "data"), num_steps=2, lambda_p=0.0, lambda_s=0.0)
    train(cfg, ColorGANStep, root / "cache")
    return Path(cfg.run_dir), other


@pytest.fixture(autouse=True)
def no_hub_weights(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """An empty torch hub cache: FID/LPIPS columns must say n/a, whatever this machine holds."""
    monkeypatch.setenv("TORCH_HOME", str(tmp_path / "torch-home"))


# ------------------------------------------------------------------------------------------ protocols


def test_center_crop_box_known_answers():
    assert center_crop_box(40, 20) == (10, 0, 30, 20)  # landscape: the middle square
    assert center_crop_box(20, 40) == (0, 10, 20, 30)  # portrait
    assert center_crop_box(100, 100, aspect=2.0) == (0, 25, 100, 75)  # a 2:1 prediction's view of a square photo


def test_protocols_on_an_image_whose_answer_is_known():
    """60x20 photo: red left third, green middle third, blue right third."""
    stripes = np.zeros((20, 60, 3), np.uint8)
    stripes[:, :20, 0] = stripes[:, 20:40, 1] = stripes[:, 40:, 2] = 255
    img = Image.fromarray(stripes)
    crop = prepare(img, 8, "center-crop")  # (3, 8, 8): the middle square is all green
    assert crop.shape == (3, 8, 8)
    np.testing.assert_array_equal(crop[1], 255)
    np.testing.assert_array_equal(crop[[0, 2]], 0)
    whole = prepare(img, 9, "resize").astype(int)  # (3, 9, 9): all three stripes, squeezed
    assert whole[0, :, 0].min() > 200 and whole[1, :, 4].min() > 200 and whole[2, :, 8].min() > 200
    assert whole[0, :, 8].max() < 30 and whole[2, :, 0].max() < 30


def test_load_test_folder_walks_subfolders_and_records_the_set(folder_run, tmp_path: Path):
    other = tmp_path / "other"
    shutil.copytree(folder_run[1], other)
    (other / "notes.txt").write_text("not an image")
    images, info = load_test_folder(other, 16, "center-crop")
    assert images.names == ["img_000.png", "img_001.png", "img_002.png", "sub/img_000.jpg", "sub/img_001.jpg"]
    assert images.images.shape == (5, 3, 16, 16)
    assert (info["num_files"], info["num_images"], info["protocol"]) == (5, 5, "center-crop")
    before = info["file_list_digest"]
    copy = tmp_path / "copy"
    shutil.copytree(other, copy)
    assert load_test_folder(copy, 16, "center-crop")[1]["file_list_digest"] == before  # names + contents
    smooth_rgb((50, 30), seed=9).save(copy / "img_001.png")
    assert load_test_folder(copy, 16, "center-crop")[1]["file_list_digest"] != before


# ----------------------------------------------------------------------------- one metric path, two ways in


def write_grayscale(test: ImageSet, folder: Path) -> None:
    """The grayscale (ab = 0) reference of each prepared test image, as 8-bit PNGs named like the photos."""
    for name, pixels in zip(test.names, test.images):
        L, _ = rgb_to_model(uint8_to_float(torch.from_numpy(np.ascontiguousarray(pixels))[None]))
        gray = (quantize(gray_rgb(L))[0].permute(1, 2, 0) * 255).round().to(torch.uint8).numpy()
        target = folder / Path(name).with_suffix(".png")
        target.parent.mkdir(parents=True, exist_ok=True)
        Image.fromarray(gray).save(target)


@pytest.mark.parametrize("protocol", ["resize", "center-crop"])
def test_grayscale_folder_scores_like_evaluate_and_skimage(folder_run, tmp_path: Path, protocol: str):
    run_dir, other = folder_run
    per_image, _ = evaluate_run(run_dir, *METHODS["colorgan"], device="cpu", test_root=other, protocol=protocol,
                                test_name=f"other-{protocol}")
    gray_rows = per_image[per_image.method == GRAYSCALE].set_index("image")
    test, _ = load_test_folder(other, 32, protocol)
    gray_dir = tmp_path / "gray"
    write_grayscale(test, gray_dir)
    result = score_folders(gray_dir, other, name="gray", protocol=protocol)
    assert result.problems == []
    scored = result.per_image[result.per_image.method == "gray"].set_index("image")  # the tool's rows
    for name in test.names:
        key = str(Path(name).with_suffix(""))
        assert scored.loc[key, "psnr"] == pytest.approx(gray_rows.loc[name, "psnr"], abs=1e-4)
        assert scored.loc[key, "ssim"] == pytest.approx(gray_rows.loc[name, "ssim"], abs=1e-6)
        # an independent implementation on the same files
        pred = np.asarray(Image.open(gray_dir / f"{key}.png").convert("RGB"))
        gt = prepare(Image.open(next(other.glob(f"{key}.*"))), 32, protocol).transpose(1, 2, 0)
        assert peak_signal_noise_ratio(gt, pred, data_range=255) == pytest.approx(scored.loc[key, "psnr"], abs=1e-3)


def test_colorize_folder_then_score_equals_evaluate(folder_run, tmp_path: Path, capsys):
    run_dir, other = folder_run
    per_image, _ = evaluate_run(run_dir, *METHODS["colorgan"], device="cpu", test_root=other, protocol="center-crop",
                                test_name="other-cc")
    ours = per_image[per_image.method == "colorgan"].set_index("image")
    out = tmp_path / "colorized"
    assert main(["colorize", str(other), "-o", str(out), "--run", str(run_dir), "--protocol", "center-crop",
                 "--no-progress"]) == 0
    result = score_folders(out, other, protocol="center-crop")
    tool = result.per_image[result.per_image.method != GRAYSCALE]
    assert result.problems == [] and len(tool) == len(ours) == 5
    for row in tool.itertuples():
        name = next(n for n in ours.index if str(Path(n).with_suffix("")) == row.image)
        assert row.psnr == pytest.approx(ours.loc[name, "psnr"], abs=1e-3), row.image
        assert row.ciede2000 == pytest.approx(ours.loc[name, "ciede2000"], abs=1e-3), row.image


def test_colorize_walks_folders_keeps_the_tree_and_skips_non_images(folder_run, tmp_path: Path, capsys):
    run_dir, other = folder_run
    photos = tmp_path / "photos"
    shutil.copytree(other, photos)
    (photos / "sub" / "readme.txt").write_text("hello")
    out = tmp_path / "out"
    code = main(["colorize", str(photos), "-o", str(out), "--run", str(run_dir), "--no-progress"])
    captured = capsys.readouterr()
    assert code == 0
    assert sorted(p.relative_to(out).as_posix() for p in out.rglob("*.png")) == [
        "img_000.png", "img_001.png", "img_002.png", "sub/img_000.png", "sub/img_001.png"]
    assert Image.open(out / "sub" / "img_000.png").size == (30, 50)  # full resolution without --protocol
    skipped = [line for line in captured.err.splitlines() if line.startswith("skipped:")]
    assert len(skipped) == 1 and "readme.txt" in skipped[0] and "not an image" in skipped[0]


# ---------------------------------------------------------------------------------------- bad folders


def test_score_lists_every_bad_file_scores_the_rest_and_fails(tmp_path: Path, capsys):
    gt = tmp_path / "gt"
    write_images(gt, 7, size=(40, 30), seed=5)
    pred = tmp_path / "pred"
    pred.mkdir()
    for i in range(7):
        if i == 0:
            continue  # img_000: missing prediction
        Image.open(gt / f"img_{i:03d}.png").resize((32, 32)).save(pred / f"img_{i:03d}.png")
    Image.open(gt / "img_001.png").resize((32, 32)).save(pred / "stray.png")  # extra: no ground truth
    jpeg = pred / "img_002.jpg"
    Image.open(gt / "img_002.png").resize((32, 32)).save(jpeg)
    (pred / "img_002.png").unlink()
    jpeg.write_bytes(jpeg.read_bytes()[: jpeg.stat().st_size // 2])  # truncated
    Image.open(gt / "img_003.png").resize((48, 32)).save(pred / "img_003.png")  # different size
    (pred / "img_004.png").unlink()
    Image.open(gt / "img_004.png").resize((32, 32)).convert("CMYK").save(pred / "img_004.jpg")  # CMYK
    out = tmp_path / "scored"
    code = main(["score", str(pred), str(gt), "--name", "other tool", "-o", str(out)])
    captured = capsys.readouterr()
    lines = [line for line in captured.err.splitlines() if line.startswith("skipped:")]
    assert code == 1, captured
    expected = {"img_000": "missing prediction", "stray": "extra prediction", "img_002": "cannot score prediction",
                "img_003": "different size", "img_004": "CMYK"}
    assert len(lines) == len(expected), lines
    for key, phrase in expected.items():
        assert sum(key in line and phrase in line for line in lines) == 1, (key, lines)
    scored = pd.read_csv(out / "per_image.csv").query("method == 'other tool'")
    assert sorted(scored.image) == ["img_001", "img_005", "img_006"]
    record = json.loads((out / "summary.json").read_text())
    assert record["num_images"] == 3 and record["provenance"].startswith("external outputs, folder")
    assert "skipped" in captured.err and "other 3 were scored" in captured.err


# ------------------------------------------------------------------------- evaluation on another folder


def test_evaluate_on_another_folder_keeps_its_own_results(folder_run, capsys):
    run_dir, other = folder_run
    assert main(["evaluate", str(run_dir), "--device", "cpu"]) == 0
    own = (eval_dir(run_dir) / "per_image.csv").read_bytes()
    assert main(["evaluate", str(run_dir), "--data", "folder", "--data-root", str(other), "--protocol",
                 "center-crop", "--device", "cpu"]) == 0
    out = eval_dir(run_dir, "other-center-crop")
    assert (eval_dir(run_dir) / "per_image.csv").read_bytes() == own  # the split's results untouched
    record = json.loads((out / "summary.json").read_text())
    test = record["test_set"]
    assert test["path"] == str(other.resolve()) and test["num_files"] == 5 and test["protocol"] == "center-crop"
    assert len(test["file_list_digest"]) == 64
    assert sorted(pd.read_csv(out / "per_image.csv").image.unique()) == sorted(
        load_test_folder(other, 32, "center-crop")[0].names)
    assert "n/a (no Inception weights)" in capsys.readouterr().out


def test_reuse_is_keyed_on_what_determines_the_numbers(tmp_path: Path, monkeypatch: pytest.MonkeyPatch):
    """Fails on the old key (checkpoint step + diversity count): a changed test image or metric code was reused."""
    write_images(tmp_path / "data" / "train", 8, size=(40, 30), seed=1)
    write_images(tmp_path / "data" / "test", 4, size=(40, 30), seed=2)
    cfg = tiny_config(tmp_path, data="folder", data_root=str(tmp_path / "data"), num_steps=1, lambda_p=0.0,
                      lambda_s=0.0)
    train(cfg, ColorGANStep, tmp_path / "cache")
    written = eval_dir(cfg.run_dir) / "summary.json"

    def evaluated(**options) -> bool:
        """Run evaluate_or_reuse; whether it evaluated (rewrote summary.json) rather than reused."""
        before = written.stat().st_mtime_ns if written.exists() else None
        evaluate_or_reuse(cfg.run_dir, *METHODS["colorgan"], device="cpu", cache_dir=tmp_path / "cache", **options)
        return written.stat().st_mtime_ns != before

    assert evaluated()
    first = pd.read_csv(written.parent / "per_image.csv")
    assert not evaluated()  # nothing changed: reused
    smooth_rgb((40, 30), seed=11).save(tmp_path / "data" / "test" / "img_001.png")
    assert evaluated()  # a test image changed
    assert not np.allclose(pd.read_csv(written.parent / "per_image.csv").psnr.to_numpy(), first.psnr.to_numpy())
    assert not evaluated()
    monkeypatch.setattr(evaluate_module, "metric_code_digest", lambda: "other metric code")
    assert evaluated()  # the metric code changed
    assert evaluated(num_diversity_samples=2)
    assert evaluated(batch_size=2)  # the noise is drawn per batch


def test_scored_sample_does_not_depend_on_the_diversity_count():
    """Fails on the old code: the diversity samples drew from the scored sample's generator."""
    rng = np.random.default_rng(0)
    test = ImageSet(rng.integers(0, 256, (6, 3, 16, 16), dtype=np.uint8), [f"im{i}" for i in range(6)])

    def noisy(L: torch.Tensor, generator: torch.Generator) -> torch.Tensor:
        return (gray_rgb(L) + 0.1 * torch.randn(L.shape[0], 3, *L.shape[2:], generator=generator)).clamp(0, 1)

    psnr = {k: evaluate(noisy, test, CPU, "noisy", batch_size=2, num_diversity_samples=k).query(
        "method == 'noisy'").psnr.to_numpy() for k in (0, 2, 5)}
    np.testing.assert_array_equal(psnr[0], psnr[2])
    np.testing.assert_array_equal(psnr[0], psnr[5])


# ------------------------------------------------------------------------------------------- Table 1


def test_table1_has_the_new_columns_and_external_rows(folder_run, tmp_path: Path):
    run_dir, _ = folder_run
    test_dir = Path(json.loads((run_dir / "config.json").read_text())["data_root"]) / "test"
    gray_dir = tmp_path / "gray"
    write_grayscale(load_test_folder(test_dir, 32, "resize")[0], gray_dir)
    assert main(["score", str(gray_dir), str(test_dir), "--name", "gray tool", "-o", str(tmp_path / "ext")]) == 0
    table, per_image = table1.table1([str(run_dir)], METHODS, device="cpu", external_runs=[str(tmp_path / "ext")])
    cf, dcf, cf_abs, dcf_abs = (published.VARIANTS[v].label for v in ("cf", "dcf", "cf_abs", "dcf_abs"))
    for column in ("CIEDE2000", cf, dcf, cf_abs, dcf_abs, published.VARIANTS["psnr_pooled"].label, "LPIPS", "FID"):
        assert column in table, column
    rows = table.set_index("Method")
    assert rows.loc["gray tool", "FID"] == "n/a (no Inception weights)"
    assert rows.loc["gray tool", "LPIPS"] == "n/a (no LPIPS weights)"
    assert rows.loc["gray tool", "notes"].startswith("external outputs, folder")
    assert "NOT the runs' test images" not in rows.loc["gray tool", "notes"]
    # the external grayscale row is the evaluation's grayscale reference, computed a second way
    assert rows.loc["gray tool", table1.TABLE1_PSNR] == pytest.approx(rows.loc[GRAYSCALE, table1.TABLE1_PSNR],
                                                                       abs=0.01)
    assert rows.loc["gray tool", cf] < 0.5 and rows.loc["gray tool", cf_abs] < 0.5  # ab = 0, up to 8-bit rounding
    assert rows.loc[GRAYSCALE, dcf] < 0 and rows.loc[GRAYSCALE, dcf_abs] < 0
    assert pd.isna(rows.loc["gray tool", table1.PAPER_PSNR])  # never a paper number on an external row
    # nor on a run scored off the paper's protocol (32 px samples, not VOC's 1,712 test images at 256 px)
    assert rows[table1.PAPER_PSNR].isna().all()
    table1.save_table1(table, per_image, tmp_path / "out")
    assert "gray tool" in (tmp_path / "out" / "table1.md").read_text()
