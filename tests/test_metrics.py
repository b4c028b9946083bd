import numpy as np
import pytest
import torch
from skimage.metrics import peak_signal_noise_ratio, structural_similarity

from colorgan.data import ImageSet
from colorgan.metrics import (GRAYSCALE, bootstrap_ci, ciede2000, colourfulness, evaluate, paired_bootstrap,
                              pairwise_ab_distance, psnr_ssim, summarize)


def test_psnr_and_ssim_agree_with_skimage():
    gen = torch.Generator().manual_seed(0)
    target = torch.rand(3, 3, 48, 48, generator=gen)
    pred = (target + 0.1 * torch.randn(3, 3, 48, 48, generator=gen)).clamp(0, 1)
    psnr, ssim = psnr_ssim(pred, target)
    for i in range(3):
        p = (torch.round(pred[i] * 255) / 255).permute(1, 2, 0).numpy().astype(np.float64)
        t = (torch.round(target[i] * 255) / 255).permute(1, 2, 0).numpy().astype(np.float64)
        assert psnr[i].item() == pytest.approx(peak_signal_noise_ratio(t, p, data_range=1.0), abs=1e-3)
        ref = structural_similarity(t, p, data_range=1.0, channel_axis=-1, gaussian_weights=True, sigma=1.5,
                                    use_sample_covariance=False)
        assert ssim[i].item() == pytest.approx(ref, abs=1e-3)


def test_bootstrap_interval_of_a_known_mean():
    values = np.random.default_rng(0).normal(5.0, 1.0, size=400)
    mean, low, high = bootstrap_ci(values, 2000, seed=1)
    assert low < mean < high
    assert high - low == pytest.approx(2 * 1.96 / np.sqrt(400), rel=0.15)  # the normal-theory width
    assert bootstrap_ci(np.full(10, 3.0)) == (3.0, 3.0, 3.0)


def test_diversity_is_zero_for_identical_samples_and_positive_otherwise():
    rgb = torch.rand(2, 3, 8, 8)
    assert torch.allclose(pairwise_ab_distance(torch.stack([rgb, rgb, rgb])), torch.zeros(2))
    assert (pairwise_ab_distance(torch.stack([rgb, torch.rand(2, 3, 8, 8)])) > 0).all()


def test_evaluate_scores_the_method_and_the_grayscale_row():
    images = np.random.default_rng(0).integers(0, 255, (5, 3, 16, 16), dtype=np.uint8)
    test = ImageSet(images, [f"im{i}" for i in range(5)])
    truth = torch.from_numpy(images).float() / 255
    oracle = lambda L, gen: truth[: L.shape[0]]  # noqa: E731  (batch_size covers the whole set)
    per_image = evaluate(oracle, test, torch.device("cpu"), "oracle", batch_size=8, num_diversity_samples=2)
    assert set(per_image["method"]) == {"oracle", GRAYSCALE} and len(per_image) == 10
    oracle_rows = per_image[per_image.method == "oracle"]
    assert (oracle_rows.psnr >= 80).all() and (oracle_rows.ssim > 0.999).all()  # piq caps a perfect PSNR at 80 dB
    summary = summarize(per_image[per_image.method == GRAYSCALE], 200)
    assert summary.loc[0, "psnr_low"] <= summary.loc[0, "psnr"] <= summary.loc[0, "psnr_high"]


def test_ciede2000_agrees_with_skimage_and_is_zero_on_identity():
    from skimage.color import deltaE_ciede2000, rgb2lab

    gen = torch.Generator().manual_seed(1)
    a, b = torch.rand(2, 3, 8, 8, generator=gen), torch.rand(2, 3, 8, 8, generator=gen)
    ours = ciede2000(a, b)
    for i in range(2):
        qa = (torch.round(a[i] * 255) / 255).permute(1, 2, 0).double().numpy()
        qb = (torch.round(b[i] * 255) / 255).permute(1, 2, 0).double().numpy()
        assert ours[i].item() == pytest.approx(deltaE_ciede2000(rgb2lab(qa), rgb2lab(qb)).mean(), abs=1e-2)
    assert torch.allclose(ciede2000(a, a), torch.zeros(2), atol=1e-6)


def test_colourfulness_is_zero_for_gray_and_grows_with_saturation():
    gray = torch.full((1, 3, 8, 8), 0.5)
    assert colourfulness(gray).item() == pytest.approx(0.0, abs=1e-6)
    red_green = torch.zeros(1, 3, 8, 8)
    red_green[0, 0, :, :4] = 1.0
    red_green[0, 1, :, 4:] = 1.0
    muted = 0.5 + 0.2 * (red_green - 0.5)
    assert colourfulness(red_green).item() > colourfulness(muted).item() > 0


def test_paired_bootstrap_known_answer():
    rng = np.random.default_rng(0)
    difficulty = rng.normal(0, 5, size=300)  # large per-image spread that pairing must cancel
    a = difficulty + 1.0 + rng.normal(0, 0.1, size=300)
    b = difficulty
    mean, low, high = paired_bootstrap(a, b, seed=2)
    assert mean == pytest.approx(1.0, abs=0.03) and low < 1.0 < high and high - low < 0.05
    _, low0, high0 = paired_bootstrap(b + rng.normal(0, 0.1, size=300), b, seed=2)
    assert low0 < 0 < high0  # no effect: the interval covers zero
    with pytest.raises(ValueError, match="same images"):
        paired_bootstrap(a, b[:10])
