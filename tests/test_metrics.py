import numpy as np
import pandas as pd
import pytest
import torch
from skimage.metrics import peak_signal_noise_ratio, structural_similarity

from colorgan.measures.feature_nets import FeatureNets
from colorgan.method.data import ImageSet
from colorgan.measures.metrics import (DIVERSITY_SEED_OFFSET, GRAYSCALE, Scorer, bootstrap_ci, ciede2000, colourfulness,
                              evaluate, evaluate_sets, paired_bootstrap, pairwise_ab_distance, pooled_psnr, pooled_psnr_ci,
                              psnr_ssim, quantize, summarize, with_set_metrics)


def _smooth_pairs(size: int = 40) -> tuple[torch.Tensor, torch.Tensor]:
    """Three 8-bit pairs of smooth images (5x5 box-blurred noise) with noise σ 0.01, 0.05, 0.2.

    Smooth images make SSIM move with the window: σ 1.4 instead of 1.5 changes it by 1e-3 to 1e-2 here.
    """
    gen = torch.Generator().manual_seed(3)
    target = quantize(torch.nn.functional.avg_pool2d(torch.rand(3, 3, size, size, generator=gen), 5, 1, 2))
    noise = torch.randn(3, 3, size, size, generator=gen) * torch.tensor([0.01, 0.05, 0.2]).view(3, 1, 1, 1)
    return quantize(target + noise), target


def _skimage_ssim(pred: torch.Tensor, target: torch.Tensor, sigma: float = 1.5) -> float:
    """scikit-image's Gaussian SSIM (Wang et al.) of one (3, H, W) pair, float64."""
    return structural_similarity(target.permute(1, 2, 0).double().numpy(), pred.permute(1, 2, 0).double().numpy(),
                                 data_range=1.0, channel_axis=-1, gaussian_weights=True, sigma=sigma,
                                 use_sample_covariance=False)


# piq computes in float32 (psnr_ssim casts): 1e-5 is out of its reach (~1.1e-5 seen on these images, 1e-14
# with float64 inputs), so SSIM is held to 3e-5 and PSNR to 2e-5 relative (float32 MSE at ~45 dB)
SSIM_FLOAT32 = 3e-5
PSNR_FLOAT32_REL = 2e-5


def test_psnr_and_ssim_agree_with_skimage():
    pred, target = _smooth_pairs()
    psnr, ssim = psnr_ssim(pred, target)
    assert psnr.shape == ssim.shape == (3,)
    for i in range(3):
        p, t = pred[i].permute(1, 2, 0).double().numpy(), target[i].permute(1, 2, 0).double().numpy()
        assert psnr[i].item() == pytest.approx(peak_signal_noise_ratio(t, p, data_range=1.0), rel=PSNR_FLOAT32_REL)
        reference = _skimage_ssim(pred[i], target[i])
        assert ssim[i].item() == pytest.approx(reference, abs=SSIM_FLOAT32)
        # the images separate the window: another Gaussian width is 30x the tolerance away
        assert abs(_skimage_ssim(pred[i], target[i], sigma=1.4) - reference) > 30 * SSIM_FLOAT32


def test_psnr_and_ssim_quantise_to_8_bits_and_keep_large_images_whole():
    pred, target = _smooth_pairs()
    psnr, ssim = psnr_ssim(pred + 0.4 / 255, target - 0.4 / 255)  # both round back to the same 8-bit levels
    assert torch.equal(psnr, psnr_ssim(pred, target)[0]) and torch.equal(ssim, psnr_ssim(pred, target)[1])
    # at 400 px piq would halve the image before SSIM unless told not to; the protocol scores the full image
    big_pred, big_target = (x[:1].repeat(1, 1, 10, 10) for x in _smooth_pairs())
    _, big_ssim = psnr_ssim(big_pred, big_target)
    assert big_ssim.item() == pytest.approx(_skimage_ssim(big_pred[0], big_target[0]), abs=SSIM_FLOAT32)


def test_quantize_rounds_to_the_nearest_8_bit_level_and_clamps():
    x = torch.tensor([-0.5, 0.0, 0.3 / 255, 0.6 / 255, 0.5, 1.0, 1.7])
    assert torch.equal(quantize(x), torch.tensor([0.0, 0.0, 0.0, 1 / 255, 128 / 255, 1.0, 1.0]))


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


def test_diversity_is_the_mean_euclidean_ab_distance_over_every_pair_of_samples():
    from skimage.color import rgb2lab

    gen = torch.Generator().manual_seed(4)
    samples = torch.rand(3, 2, 3, 6, 5, generator=gen, dtype=torch.float64)  # (K, B, 3, H, W)
    samples[2] = samples[0] * 0.5  # the three pairs lie at different distances: a dropped pair moves the mean
    ab = np.stack([rgb2lab(s.permute(0, 2, 3, 1).numpy())[..., 1:] for s in samples])  # (K, B, H, W, 2)
    pairs = [(0, 1), (0, 2), (1, 2)]
    expected = np.mean([np.sqrt(((ab[i] - ab[j]) ** 2).sum(-1)).mean(axis=(1, 2)) for i, j in pairs], axis=0)
    ours = pairwise_ab_distance(samples).numpy()
    assert ours.shape == (2,) and ours == pytest.approx(expected, rel=1e-6)
    # another norm or a missed pair is far outside that tolerance on these samples
    manhattan = np.mean([np.abs(ab[i] - ab[j]).sum(-1).mean(axis=(1, 2)) for i, j in pairs], axis=0)
    assert np.abs(manhattan - expected).min() > 1
    first_pairs = np.mean([np.sqrt(((ab[0] - ab[j]) ** 2).sum(-1)).mean(axis=(1, 2)) for j in (1, 2)], axis=0)
    assert np.abs(first_pairs - expected).min() > 1
    with pytest.raises(ValueError, match="at least 2 samples per image; got 1"):
        pairwise_ab_distance(samples[:1])


def test_summary_keeps_every_image_of_every_method():
    rng = np.random.default_rng(5)
    per_image = pd.DataFrame({"method": ["b"] * 7 + ["a"] * 4, "image": [f"im{i}" for i in range(7)] * 1
                              + [f"im{i}" for i in range(4)], "psnr": rng.normal(20, 3, 11),
                              "ssim": rng.uniform(0.5, 1, 11), "unlisted": rng.normal(size=11)})
    summary = summarize(per_image, num_resamples=300, seed=1)
    assert list(summary.method) == ["b", "a"] and list(summary.num_images) == [7, 4]  # methods in order of rows
    pd.testing.assert_frame_equal(summarize(per_image), summarize(per_image, 1000, 0))  # the documented defaults
    for method, group in per_image.groupby("method"):
        row = summary[summary.method == method].iloc[0]
        for column in ("psnr", "ssim"):
            assert row[column] == pytest.approx(group[column].mean(), abs=1e-12)
            _, low, high = bootstrap_ci(group[column].to_numpy(), 300, 1)
            assert (row[f"{column}_low"], row[f"{column}_high"]) == pytest.approx((low, high), abs=1e-12)
        pooled = pooled_psnr_ci(group.psnr.to_numpy(), 300, 1)
        assert (row.psnr_pooled, row.psnr_pooled_low, row.psnr_pooled_high) == pytest.approx(pooled, abs=1e-12)
    assert "unlisted" not in summary  # only the metric columns are summarised


def _percentile_bootstrap(values: np.ndarray, num_resamples: int, seed: int, level: float) -> tuple[float, float]:
    """The percentile interval of the mean, written out: resample with numpy's default_rng(seed)."""
    rng = np.random.default_rng(seed)
    means = values[rng.integers(0, values.size, size=(num_resamples, values.size))].mean(axis=1)
    return tuple(np.quantile(means, [(1 - level) / 2, (1 + level) / 2]))


def test_bootstrap_functions_use_their_documented_defaults():
    rng = np.random.default_rng(6)
    a, b = rng.normal(1, 2, 50), rng.normal(0, 2, 50)
    mean, low, high = bootstrap_ci(a)  # 1000 resamples, seed 0, 95 %
    assert mean == a.mean() and (low, high) == pytest.approx(_percentile_bootstrap(a, 1000, 0, 0.95), abs=1e-12)
    assert bootstrap_ci(a, level=0.5)[2] - bootstrap_ci(a, level=0.5)[1] < (high - low) / 2
    diff = paired_bootstrap(a, b)  # 2000 resamples, seed 0, 95 %
    assert diff[1:] == pytest.approx(_percentile_bootstrap(a - b, 2000, 0, 0.95), abs=1e-12)
    assert paired_bootstrap(a, b, level=0.5)[2] - paired_bootstrap(a, b, level=0.5)[1] < (diff[2] - diff[1]) / 2
    psnr = rng.normal(25, 4, 50)
    mse = 10 ** (-psnr / 10)
    mse_low, mse_high = _percentile_bootstrap(mse, 1000, 0, 0.95)
    assert pooled_psnr_ci(psnr) == pytest.approx((pooled_psnr(psnr), -10 * np.log10(mse_high),
                                                  -10 * np.log10(mse_low)), abs=1e-9)
    low50, high50 = pooled_psnr_ci(psnr, level=0.5)[1:]
    assert high50 - low50 < (pooled_psnr_ci(psnr)[2] - pooled_psnr_ci(psnr)[1]) / 2
    # float32 input is promoted before any arithmetic: the same numbers as float64
    assert bootstrap_ci(a.astype(np.float32)) == bootstrap_ci(a.astype(np.float32).astype(np.float64))
    assert pooled_psnr(psnr.astype(np.float32)) == pooled_psnr(psnr.astype(np.float32).astype(np.float64))
    assert pooled_psnr_ci(psnr.astype(np.float32)) == pooled_psnr_ci(psnr.astype(np.float32).astype(np.float64))
    with pytest.raises(ValueError, match="at least one value"):
        bootstrap_ci(np.array([]))
    with pytest.raises(ValueError, match="at least one per-image PSNR"):
        pooled_psnr(np.array([]))


def test_evaluate_uses_its_documented_defaults_and_scores_diversity():
    images = np.random.default_rng(0).integers(0, 255, (20, 3, 12, 12), dtype=np.uint8)
    test = ImageSet(images, [f"im{i}" for i in range(20)])

    def noisy(L: torch.Tensor, gen: torch.Generator) -> torch.Tensor:
        # one draw per call: the batches and the seed decide every image's colours
        return (0.5 + 0.5 * torch.rand(1, 3, 1, 1, generator=gen) * (L + 1)).expand(-1, 3, -1, -1).clamp(0, 1)

    default = evaluate(noisy, test, torch.device("cpu"), "noisy")
    explicit = evaluate(noisy, test, torch.device("cpu"), "noisy", batch_size=16, seed=0, num_diversity_samples=0)
    pd.testing.assert_frame_equal(default, explicit)
    pd.testing.assert_frame_equal(evaluate_sets(noisy, test, torch.device("cpu"), "noisy")[0], explicit, check_exact=True)
    assert "diversity" not in default
    for other in ({"batch_size": 17}, {"seed": 1}):
        assert not evaluate(noisy, test, torch.device("cpu"), "noisy", **other).psnr.equals(default.psnr), other
    diverse = evaluate(noisy, test, torch.device("cpu"), "noisy", num_diversity_samples=2)
    assert (diverse[diverse.method == "noisy"].diversity > 0).all()
    assert (diverse[diverse.method == GRAYSCALE].diversity == 0).all()
    pd.testing.assert_frame_equal(diverse.drop(columns="diversity"), default)  # the scored sample is the same
    assert default.index.equals(pd.RangeIndex(40))  # the method's rows, then the grayscale rows, numbered afresh


def test_evaluate_sets_draws_the_scored_and_the_diversity_samples_from_their_own_seeds():
    images = np.random.default_rng(1).integers(0, 255, (6, 3, 12, 12), dtype=np.uint8)
    test = ImageSet(images, [f"im{i}" for i in range(6)])

    def noisy(L: torch.Tensor, gen: torch.Generator) -> torch.Tensor:
        return torch.rand(L.shape[0], 3, *L.shape[2:], generator=gen)

    nets = FeatureNets(inception=torch.nn.Sequential(torch.nn.AdaptiveAvgPool2d(1), torch.nn.Flatten()),
                       fid_label="substitute: mean colour")
    per_image, set_metrics = evaluate_sets(noisy, test, torch.device("cpu"), "noisy", batch_size=4, seed=3,
                                           num_diversity_samples=3, nets=nets)
    pd.testing.assert_frame_equal(per_image, evaluate_sets(noisy, test, torch.device("cpu"), "noisy", 4, 3, 3)[0])
    # written out: the scored sample from seed 3, the two extra ones from seed 3 + DIVERSITY_SEED_OFFSET, per batch
    scored_gen, extra_gen = torch.Generator().manual_seed(3), torch.Generator().manual_seed(3 + DIVERSITY_SEED_OFFSET)
    expected = []
    for start in (0, 4):
        L = torch.zeros(min(4, 6 - start), 1, 12, 12)
        samples = [noisy(L, scored_gen)] + [noisy(L, extra_gen) for _ in range(2)]
        expected.append(pairwise_ab_distance(torch.stack(samples)))
    ours = per_image[per_image.method == "noisy"].diversity.to_numpy()
    assert ours == pytest.approx(torch.cat(expected).numpy(), rel=1e-5)
    assert set(set_metrics) == {"noisy", GRAYSCALE} and set_metrics["noisy"]["fid_note"] == "substitute: mean colour"
    assert set_metrics["noisy"]["fid"] > 0
    defaults = evaluate_sets(noisy, test, torch.device("cpu"), "noisy")[0]
    pd.testing.assert_frame_equal(defaults, evaluate_sets(noisy, test, torch.device("cpu"), "noisy", batch_size=16,
                                                          seed=0, num_diversity_samples=0)[0])
    assert not evaluate_sets(noisy, test, torch.device("cpu"), "noisy", seed=1)[0].psnr.equals(defaults.psnr)


def test_set_metrics_without_inception_name_every_method():
    scorer = Scorer(FeatureNets(fid_label="n/a (no Inception weights)"))
    for method in ("a", "b"):
        scorer.add(method, ["im0"], torch.rand(1, 3, 12, 12), torch.rand(1, 3, 12, 12))
    assert scorer.set_metrics() == {m: {"fid": None, "fid_note": "n/a (no Inception weights)"} for m in ("a", "b")}


def test_with_set_metrics_adds_each_methods_fid_and_note():
    summary = pd.DataFrame({"method": ["a", "b"], "psnr": [20.0, 21.0]})
    out = with_set_metrics(summary, {"a": {"fid": 12.5, "fid_note": "FID (Inception)"}})
    assert out.fid.tolist()[0] == 12.5 and pd.isna(out.fid.tolist()[1])
    assert out.fid_note.tolist() == ["FID (Inception)", ""] and out.psnr.tolist() == [20.0, 21.0]


def test_evaluation_moves_each_batch_to_the_device_it_is_given():
    """The colorizer gets its input on the given device ('meta': shapes only, so a CPU-only machine checks it)."""
    test = ImageSet(np.zeros((3, 3, 8, 8), dtype=np.uint8), ["a", "b", "c"])
    seen = []

    class Seen(Exception):
        pass

    def colorize(L: torch.Tensor, gen: torch.Generator) -> torch.Tensor:
        seen.append((L.device.type, tuple(L.shape)))
        raise Seen  # the metrics need data, which 'meta' tensors do not have

    for score in (evaluate, evaluate_sets):
        with pytest.raises(Seen):
            score(colorize, test, torch.device("meta"), "m", batch_size=2)
    assert seen == [("meta", (2, 1, 8, 8))] * 2
