"""The study's and the ablation's tables (colorgan.experiments.aggregate), every cell computed again here from its
definition: seed means over every image, seed spreads, intervals over seeds and images, paired differences."""

from __future__ import annotations

import math

import numpy as np
import pandas as pd
import pytest

from colorgan.experiments import aggregate
from colorgan.experiments import verdicts as V
from colorgan.measures.metrics import GRAYSCALE

SEEDS, IMAGES = 3, 9


def study_per_image() -> pd.DataFrame:
    """Two methods x 3 seeds and the grayscale row (seed -1) on 9 images; random values, every metric different."""
    rng = np.random.default_rng(11)
    rows = []
    for method, seeds in ((GRAYSCALE, [-1]), ("colorgan", range(SEEDS)), ("chromagan", range(SEEDS))):
        for seed in seeds:
            for i in range(IMAGES):
                rows.append({"method": method, "seed": seed, "image": f"im{i}", "psnr": rng.normal(24, 2),
                             "ssim": rng.uniform(0.8, 0.95), "ciede2000": rng.uniform(5, 12),
                             "colourfulness": rng.uniform(5, 30), "colourfulness_gap": rng.normal(-10, 4),
                             "diversity": 0.0 if method == GRAYSCALE else rng.uniform(0, 2)})
    return pd.DataFrame(rows)


def seed_image_matrix(per_image: pd.DataFrame, column: str, arm: str, metric: str) -> np.ndarray:
    """(seeds, images) values of one arm, rows in seed order, columns in image order, built without pandas' pivot."""
    rows = per_image[per_image[column] == arm]
    seeds, images = sorted(set(rows.seed)), sorted(set(rows.image))
    lookup = {(s, i): v for s, i, v in zip(rows.seed, rows.image, rows[metric])}
    return np.array([[lookup[(s, i)] for i in images] for s in seeds])


def test_the_study_table_is_its_definition_on_every_cell():
    per_image = study_per_image()
    table = aggregate.study_table(per_image, num_resamples=300, seed=5)
    assert list(table.columns[:8]) == ["method", "metric", "mean", "seed_sd", "low", "high", "seeds", "images"]
    assert len(table) == 3 * len(aggregate.STUDY_METRICS)  # every method x every metric, none dropped
    gray_matrix = {m: seed_image_matrix(per_image, "method", GRAYSCALE, m) for m in aggregate.STUDY_METRICS}
    for row in table.itertuples():
        values = seed_image_matrix(per_image, "method", row.method, row.metric)
        per_seed = values.mean(axis=1)  # each seed's mean over every one of its images
        assert row.mean == pytest.approx(per_seed.mean(), rel=1e-12)
        assert row.seeds == len(per_seed) and row.images == IMAGES
        interval = V.two_level_interval(values, 0.95, 300, 5, V.METRIC_RANGES[row.metric])
        assert (row.low, row.high) == pytest.approx((interval.low, interval.high), rel=1e-12)
        if row.method == GRAYSCALE:
            assert math.isnan(row.seed_sd) and all(math.isnan(getattr(row, c)) for c in ("delta_gray", "delta_low",
                                                                                          "delta_high"))
            continue
        assert row.seed_sd == pytest.approx(np.std(per_seed, ddof=1), rel=1e-12)
        difference = values - gray_matrix[row.metric]  # the one grayscale row paired with every seed
        diff = V.two_level_interval(difference, 0.95, 300, 5, V.difference_bounds(row.metric))
        assert row.delta_gray == pytest.approx(difference.mean(), rel=1e-12)
        assert (row.delta_low, row.delta_high) == pytest.approx((diff.low, diff.high), rel=1e-12)


def test_the_study_table_keeps_only_the_metrics_it_has_and_its_defaults():
    per_image = study_per_image().drop(columns=["diversity", "ciede2000"])
    table = aggregate.study_table(per_image, num_resamples=200)
    assert list(dict.fromkeys(table.metric)) == ["psnr", "ssim", "colourfulness", "colourfulness_gap"]
    assert list(dict.fromkeys(table.method)) == [GRAYSCALE, "colorgan", "chromagan"]  # in the evidence's order
    again = aggregate.study_table(per_image, 200, 0)
    pd.testing.assert_frame_equal(table, again)
    # the default is 2000 resamples, seed 0 (the numbers the committed study shows)
    default = aggregate.study_table(per_image.head(SEEDS * IMAGES + IMAGES))
    values = seed_image_matrix(per_image, "method", "colorgan", "psnr")
    first = default[(default.method == "colorgan") & (default.metric == "psnr")].iloc[0]
    assert first.low == pytest.approx(V.two_level_interval(values, 0.95, 2000, 0, V.METRIC_RANGES["psnr"]).low)


def ablation_per_image() -> pd.DataFrame:
    rng = np.random.default_rng(12)
    rows = []
    for variant in ("full", "no_noise", "no_l1"):
        for seed in range(SEEDS):
            for i in range(IMAGES):
                rows.append({"variant": variant, "seed": seed, "image": f"im{i}", "psnr": rng.normal(24, 2),
                             "ssim": rng.uniform(0.8, 0.95), "ciede2000": rng.uniform(5, 12),
                             "colourfulness": rng.uniform(5, 30), "diversity": rng.uniform(0, 2)})
    return pd.DataFrame(rows)


def test_the_ablation_table_is_its_definition_on_every_cell():
    per_image = ablation_per_image()
    per_image.loc[per_image.variant == "no_l1", "psnr"] -= 3.0
    table = aggregate.ablation_table(per_image, num_resamples=300, seed=2)
    metrics = [m for m in V.HIGHER_IS_BETTER if m in per_image]
    assert len(table) == 3 * len(metrics)
    for row in table.itertuples():
        values = seed_image_matrix(per_image, "variant", row.variant, row.metric)
        interval = V.two_level_interval(values, 0.95, 300, 2, V.METRIC_RANGES[row.metric])
        assert row.mean == pytest.approx(values.mean(), rel=1e-12) and row.seeds == SEEDS
        assert (row.low, row.high) == pytest.approx((interval.low, interval.high), rel=1e-12)
        if row.variant == "full":
            assert math.isnan(row.diff_vs_full)
            continue
        difference = values - seed_image_matrix(per_image, "variant", "full", row.metric)
        diff = V.two_level_interval(difference, 0.95, 300, 2, V.difference_bounds(row.metric))
        assert row.diff_vs_full == pytest.approx(difference.mean(), rel=1e-12)
        assert (row.diff_low, row.diff_high) == pytest.approx((diff.low, diff.high), rel=1e-12)
        assert row.significant == (diff.low > 0 or diff.high < 0)
        assert (row.seed_diff_min, row.seed_diff_max) == pytest.approx(
            (difference.mean(axis=1).min(), difference.mean(axis=1).max()), rel=1e-12)
    rows = table.set_index(["variant", "metric"])
    assert rows.loc[("no_l1", "psnr"), "significant"] and rows.loc[("no_l1", "psnr"), "diff_high"] < 0


def test_significance_at_its_boundaries():
    """'significant' means the interval excludes 0: an interval ending at 0 (or starting there) does not."""
    per_image = ablation_per_image()
    full = per_image[per_image.variant == "full"]
    # no_x = full + an exact constant on every image and seed: a zero-width interval at the constant
    for shift, expected in ((0.5, True), (-0.5, True), (0.0, False)):
        shifted = pd.concat([full, full.assign(variant="no_x", psnr=full.psnr + shift)], ignore_index=True)
        row = aggregate.ablation_table(shifted, num_resamples=100).set_index(["variant", "metric"]).loc[("no_x", "psnr")]
        assert row.diff_low == pytest.approx(shift) and row.diff_high == pytest.approx(shift)
        assert bool(row.significant) is expected, shift


def test_the_ablation_table_without_its_reference_has_no_differences_and_another_reference_is_used():
    per_image = ablation_per_image()
    alone = aggregate.ablation_table(per_image[per_image.variant != "full"], num_resamples=100)
    assert "diff_vs_full" not in alone and len(alone) == 2 * len([m for m in V.HIGHER_IS_BETTER if m in per_image])
    other = aggregate.ablation_table(per_image, reference="no_noise", num_resamples=100).set_index(["variant", "metric"])
    assert math.isnan(other.loc[("no_noise", "psnr"), "diff_vs_full"])
    full = seed_image_matrix(per_image, "variant", "full", "psnr")
    assert other.loc[("full", "psnr"), "diff_vs_full"] == pytest.approx(
        (full - seed_image_matrix(per_image, "variant", "no_noise", "psnr")).mean())


def test_the_seed_spread_needs_two_seeds_and_two_are_enough():
    per_image = study_per_image()
    for seeds, spread_known in ((2, True), (1, False)):
        kept = per_image[per_image.seed < seeds]  # the grayscale row (seed -1) stays
        row = aggregate.study_table(kept, num_resamples=100).set_index(["method", "metric"]).loc[("colorgan", "psnr")]
        per_seed = seed_image_matrix(kept, "method", "colorgan", "psnr").mean(axis=1)
        assert row.seeds == seeds
        if spread_known:
            assert row.seed_sd == pytest.approx(np.std(per_seed, ddof=1), rel=1e-12)
        else:
            assert math.isnan(row.seed_sd)


def test_the_ablation_tables_defaults_are_2000_resamples_and_generator_seed_0():
    per_image = ablation_per_image()
    pd.testing.assert_frame_equal(aggregate.ablation_table(per_image),
                                  aggregate.ablation_table(per_image, "full", 2000, 0), check_exact=True)
