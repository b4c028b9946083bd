"""Each metric in each convention, against the field's own code: scikit-image and torchmetrics (PSNR, SSIM),
and DDColor's and CT2's colourfulness written out here from their released evaluation code.

Every fixed image pair is chosen so that the variants *differ* on it (the separation asserts): a test that
passed with either formula would not say which one the suite computes. Tolerances: PSNR <= 1e-3 dB,
SSIM <= 1e-4 (piq works in float32: ~1e-5 from scikit-image's float64), colourfulness <= 1e-3.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import torch
from PIL import Image
from skimage.metrics import peak_signal_noise_ratio, structural_similarity

from colorgan.cli import main
from colorgan.common import formatting, published
from colorgan.report import front_page, table1
from colorgan.measures.metrics import (Scorer, colourfulness, colourfulness_abs, pooled_psnr, psnr_ssim, quantize,
                              summarize)

REPO = Path(__file__).resolve().parents[1]


# ------------------------------------------------------------------ the published formulas, written out here


def cf_released_code(bgr: np.ndarray) -> float:
    """DDColor ``basicsr/metrics/colorfulness.py::calculate_cf`` and CT2 ``segm/eval_colorfullness.py``:
    a uint8 BGR image (as cv2.imread / basicsr's tensor2img give it), |R - G| and |(R + G)/2 - B| first."""
    B, G, R = (bgr[..., c].astype(np.float64) for c in range(3))
    rg, yb = np.absolute(R - G), np.absolute(0.5 * (R + G) - B)
    return float(np.sqrt(np.std(rg) ** 2 + np.std(yb) ** 2) + 0.3 * np.sqrt(np.mean(rg) ** 2 + np.mean(yb) ** 2))


def cf_hasler_susstrunk(rgb: np.ndarray) -> float:
    """Hasler & Süsstrunk (2003), eq. for M: σ_rgyb + 0.3·μ_rgyb of the signed opponents, 0..255 RGB (H, W, 3)."""
    R, G, B = (rgb[..., c].astype(np.float64) for c in range(3))
    rg, yb = R - G, 0.5 * (R + G) - B
    return float(np.sqrt(rg.var() + yb.var()) + 0.3 * np.hypot(rg.mean(), yb.mean()))


def _halves(left: tuple[int, int, int], right: tuple[int, int, int], size: int = 24) -> np.ndarray:
    """(size, size, 3) uint8 RGB: the left half one colour, the right half another."""
    image = np.empty((size, size, 3), dtype=np.uint8)
    image[:, : size // 2], image[:, size // 2:] = left, right
    return image


def _photo_like(seed: int, size: int = 24) -> np.ndarray:
    """(size, size, 3) uint8 RGB with smooth colour regions of both opponent signs (reds, greens, blues)."""
    rng = np.random.default_rng(seed)
    coarse = rng.integers(0, 256, (4, 4, 3)).astype(np.float64)
    up = np.kron(coarse, np.ones((size // 4, size // 4, 1)))
    return np.clip(up + rng.normal(0, 12, up.shape), 0, 255).round().astype(np.uint8)


def _tensor(images: list[np.ndarray]) -> torch.Tensor:
    """uint8 (H, W, 3) list -> (B, 3, H, W) float in [0, 1]."""
    return torch.from_numpy(np.stack(images)).permute(0, 3, 1, 2).float() / 255


# ----------------------------------------------------------------------------------------- colourfulness


IMAGES = [_halves((255, 0, 0), (0, 255, 0)), _halves((200, 0, 0), (0, 200, 0)), _halves((255, 0, 0), (255, 0, 0)),
          _photo_like(0), _photo_like(1)]


def test_cf_and_cf_abs_follow_their_published_formulas_and_differ():
    rgb = _tensor(IMAGES)
    ours, ours_abs = colourfulness(rgb).double().numpy(), colourfulness_abs(rgb).double().numpy()
    hs = np.array([cf_hasler_susstrunk(im) for im in IMAGES])
    released = np.array([cf_released_code(im[..., ::-1]) for im in IMAGES])  # the released code reads BGR
    assert ours == pytest.approx(hs, abs=1e-3)
    assert ours_abs == pytest.approx(released, abs=1e-3)
    assert ours.mean() == pytest.approx(hs.mean(), abs=1e-3) and ours_abs.mean() == pytest.approx(released.mean(),
                                                                                                   abs=1e-3)
    # the images separate the conventions: either formula in place of the other fails the asserts above
    assert np.abs(hs - released).max() > 100 and abs(hs.mean() - released.mean()) > 10
    # red|green halves, worked by hand: signed rg = ±255 is all spread (255 + 0.3·127.5); |rg| is all mean
    assert hs[0] == pytest.approx(255 + 0.3 * 127.5, abs=1e-3)
    assert released[0] == pytest.approx(0.3 * np.hypot(255, 127.5), abs=1e-3)
    assert colourfulness(_tensor([np.full((8, 8, 3), 90, np.uint8)])).item() == 0  # gray: 0 in both
    assert colourfulness_abs(_tensor([np.full((8, 8, 3), 90, np.uint8)])).item() == 0


def test_delta_cf_can_change_sign_between_conventions():
    """ΔCF is a difference of colourfulness: the convention decides even its sign, so it is scored in both."""
    truth, pred = _halves((200, 0, 0), (0, 200, 0)), _halves((255, 0, 0), (255, 0, 0))
    scorer = Scorer()
    scorer.add("m", ["a"], _tensor([pred]), _tensor([truth]))
    row = scorer.per_image().iloc[0]
    assert row.colourfulness_gap == pytest.approx(cf_hasler_susstrunk(pred) - cf_hasler_susstrunk(truth), abs=1e-3)
    assert row.colourfulness_abs_gap == pytest.approx(cf_released_code(pred[..., ::-1])
                                                      - cf_released_code(truth[..., ::-1]), abs=1e-3)
    assert row.colourfulness_gap < -100 and row.colourfulness_abs_gap > 10


# -------------------------------------------------------------------------------------------------- PSNR


def _noisy_pair() -> tuple[torch.Tensor, torch.Tensor]:
    """Two 8-bit image pairs with very different errors (σ 0.01 and 0.2): per-image and pooled PSNR part."""
    gen = torch.Generator().manual_seed(3)
    target = quantize(torch.nn.functional.avg_pool2d(torch.rand(2, 3, 36, 36, generator=gen), 5, 1, 2))
    noise = torch.randn(2, 3, 36, 36, generator=gen) * torch.tensor([0.01, 0.2]).view(2, 1, 1, 1)
    return quantize(target + noise), target


def test_psnr_per_image_and_pooled_match_skimage_torchmetrics_and_the_formula():
    from torchmetrics.functional.image import peak_signal_noise_ratio as tm_psnr

    pred, target = _noisy_pair()
    psnr, _ = psnr_ssim(pred, target)
    reference = [peak_signal_noise_ratio(t.permute(1, 2, 0).double().numpy(), p.permute(1, 2, 0).double().numpy(),
                                         data_range=1.0) for p, t in zip(pred, target)]
    assert psnr.double().numpy() == pytest.approx(reference, abs=1e-3)
    # torchmetrics: dim=(1, 2, 3) gives per-image PSNR; its default (dim=None) pools the MSE over the whole batch
    per_image_tm = tm_psnr(pred.double(), target.double(), data_range=1.0, reduction="none", dim=(1, 2, 3))
    assert psnr.double().numpy() == pytest.approx(per_image_tm.numpy(), abs=1e-3)
    pooled = pooled_psnr(psnr.numpy())
    direct = 10 * np.log10(1 / ((pred.double() - target.double()) ** 2).mean().item())  # one MSE over every pixel
    assert pooled == pytest.approx(direct, abs=1e-3)
    assert pooled == pytest.approx(tm_psnr(pred.double(), target.double(), data_range=1.0).item(), abs=1e-3)
    assert psnr.double().mean().item() - pooled > 5  # the two reductions separate on these images


def test_summary_reports_the_pooled_psnr_with_its_interval():
    pred, target = _noisy_pair()
    scorer = Scorer()
    scorer.add("m", ["a", "b"], pred, target)
    row = summarize(scorer.per_image(), 200).iloc[0]
    assert row.psnr_pooled == pytest.approx(pooled_psnr(scorer.per_image().psnr), abs=1e-9)
    assert row.psnr_pooled_low <= row.psnr_pooled <= row.psnr_pooled_high
    assert row.psnr_pooled < row.psnr  # Jensen: never above the mean of per-image PSNR


# -------------------------------------------------------------------------------------------------- SSIM


def test_ssim_is_the_gaussian_interior_estimator_of_skimage_and_torchmetrics():
    from torchmetrics.functional.image import structural_similarity_index_measure as tm_ssim

    pred, target = _noisy_pair()  # smooth images: their SSIM moves with the window and the border
    _, ssim = psnr_ssim(pred, target)
    for i in range(2):
        p, t = pred[i].permute(1, 2, 0).double().numpy(), target[i].permute(1, 2, 0).double().numpy()
        gaussian = structural_similarity(t, p, data_range=1.0, channel_axis=-1, gaussian_weights=True, sigma=1.5,
                                         use_sample_covariance=False)
        assert ssim[i].item() == pytest.approx(gaussian, abs=1e-4)
        # CT2's skimage call (7x7 uniform window, sample covariance) is another estimator on these images
        uniform = structural_similarity(t, p, data_range=1.0, channel_axis=-1)
        assert abs(uniform - gaussian) > 3e-3  # 30x the tolerance above
    # torchmetrics documents a reflection-padded border: its mean covers the whole image, mirrored edges included
    full = tm_ssim(pred.double(), target.double(), data_range=1.0, reduction="none")
    assert np.abs(full.numpy() - ssim.double().numpy()).min() > 5e-3  # 50x the tolerance below
    _, ssim_map = tm_ssim(pred.double(), target.double(), data_range=1.0, reduction="none", return_full_image=True)
    interior = ssim_map[..., 5:-5, 5:-5].mean(dim=(1, 2, 3))  # the 11x11 window's valid pixels only
    assert ssim.double().numpy() == pytest.approx(interior.numpy(), abs=1e-4)


# ------------------------------------------------------------------------------ conventions and published data


def test_conventions_name_existing_variants_and_columns():
    assert [v.name for v in published.variants("ddcolor")] == ["psnr", "cf_abs", "dcf_abs"]  # FID: another network
    assert {v.name for v in published.variants("paper")} == {"psnr", "ssim", "cf", "dcf"}
    assert len(published.variants("all")) == len(published.VARIANTS)
    with pytest.raises(ValueError, match="convention: 'bogus'"):
        published.variants("bogus")
    scorer = Scorer()
    scorer.add("m", ["a", "b"], *_noisy_pair())
    summary_columns = set(summarize(scorer.per_image(), 50).columns) | {"fid"}
    assert {v.column for v in published.VARIANTS.values()} <= summary_columns


def test_published_numbers_have_a_protocol_a_convention_and_a_source():
    table = published.published_table()
    assert table[["paper", "dataset", "protocol", "convention", "source"]].map(bool).all().all()
    assert set(table.quantity) <= {v.quantity for v in published.VARIANTS.values()}
    # a convention is a variant name only where the released code shows it; the ColorGAN paper's are unstated
    colorgan = table[table.paper == published.COLORGAN_PAPER]
    assert colorgan.convention.str.startswith("unstated").all() and len(colorgan) == 6
    ddcolor_cf = table[(table.method == "DDColor") & (table.quantity == "CF")]
    assert ddcolor_cf.convention.str.startswith("cf_abs").all()
    # the one home of the paper's Table 1: table1 reads it from here
    assert table1.PAPER_TABLE1 == published.paper_table1()
    assert published.paper_table1()["colorgan"] == (24.333, 0.938)


def test_the_conventions_page_shows_the_package_table_of_published_numbers():
    page = (REPO / "docs" / "conventions.md").read_text()
    assert formatting.table_markdown(published.published_table()) in page, (
        "docs/conventions.md's published-numbers table differs from colorgan/common/published.py: paste "
        "formatting.table_markdown(published.published_table()) into it")


def test_the_study_page_pooled_psnr_is_computed_from_its_committed_per_image_psnr():
    reductions = table1.psnr_reductions(pd.read_csv(REPO / "results" / "study" / "per_image_metrics.csv"))
    pooled = dict(zip(reductions.Method, reductions[published.VARIANTS["psnr_pooled"].label]))
    sentence = (f"ColorGAN {pooled['ColorGAN']:.2f}, ChromaGAN {pooled['ChromaGAN']:.2f}, "
                f"ColTran {pooled['ColTran']:.2f}, grayscale {pooled['grayscale (ab = 0)']:.2f} dB")
    assert sentence in " ".join((REPO / "docs" / "study.md").read_text().split())
    assert (reductions["pooled − per-image (dB)"] < 0).all()  # Jensen: pooling never raises PSNR


def test_front_page_reads_the_convention_named_columns_and_the_short_ones():
    new = pd.DataFrame([{"Method": "ColorGAN", table1.TABLE1_PSNR: 21.5, "PSNR 95% CI": "[21.0, 22.0]",
                         table1.TABLE1_SSIM: 0.9, "SSIM 95% CI": "[0.89, 0.91]", table1.PAPER_PSNR: None,
                         table1.PAPER_SSIM: None},
                        {"Method": "grayscale (ab = 0)", table1.TABLE1_PSNR: 20.0, table1.TABLE1_SSIM: 0.88}])
    old = new.rename(columns={table1.TABLE1_PSNR: "PSNR (dB)", table1.TABLE1_SSIM: "SSIM"}).drop(
        columns=[table1.PAPER_PSNR, table1.PAPER_SSIM])  # the study's table1.csv, and tables without paper columns
    for table in (new, old):
        row = front_page.front_page_table(table).iloc[0]
        assert row["Δ vs grayscale"] == "+1.50" and row["PSNR, paper"] == "—"


def test_table1_sets_the_paper_beside_ours_only_in_its_protocol():
    assert published.same_protocol_as_paper("voc", 256, 1712)
    assert not published.same_protocol_as_paper("voc", 64, 1712)
    assert not published.same_protocol_as_paper("voc-mini", 256, 1712)


# --------------------------------------------------------------------------------------- colorgan score


def test_score_prints_cf_in_both_conventions_by_name(tmp_path: Path, capsys):
    pred_dir, gt_dir = tmp_path / "pred", tmp_path / "gt"
    pred_dir.mkdir(), gt_dir.mkdir()
    for i, (pred, truth) in enumerate([(IMAGES[2], IMAGES[1]), (IMAGES[4], IMAGES[3])]):
        Image.fromarray(np.ascontiguousarray(pred)).save(pred_dir / f"im{i}.png")
        Image.fromarray(np.ascontiguousarray(truth)).save(gt_dir / f"im{i}.png")
    weights = ["--inception-weights", "off", "--lpips-weights", "off"]
    assert main(["score", str(pred_dir), str(gt_dir), "-o", str(tmp_path / "out"), *weights]) == 0
    out = capsys.readouterr().out
    for variant in published.VARIANTS.values():
        assert variant.label in out or variant.name == "fid", variant.label
    summary = pd.read_csv(tmp_path / "out" / "summary.csv").iloc[0]
    assert f"{summary.colourfulness_abs:.2f}" in out and f"{summary.colourfulness:.2f}" in out
    assert main(["score", str(pred_dir), str(gt_dir), "-o", str(tmp_path / "out"), *weights,
                 "--convention", "ddcolor"]) == 0
    out = capsys.readouterr().out
    assert "CF_abs (DDColor/CT2 code)" in out and "CF (Hasler-Süsstrunk)" not in out
