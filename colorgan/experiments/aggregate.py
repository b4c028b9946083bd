"""The study's and the ablation's tables from per-image metrics: means over seeds, seed spreads, two-level
intervals and paired differences (the numbers that ``study`` and ``ablation`` save and judge).

Every interval comes from ``colorgan.experiments.verdicts`` (seeds and test images both resampled); this module
only decides which rows are compared with which and lays the results out. Pure functions of a DataFrame, kept
apart from the training and file handling so that mutation testing (``make mutation``) can cover them whole.
"""

from __future__ import annotations

from typing import Any

import pandas as pd

from colorgan.experiments import verdicts
from colorgan.experiments.verdicts import HIGHER_IS_BETTER
from colorgan.measures.metrics import GRAYSCALE

STUDY_METRICS = ("psnr", "ssim", "ciede2000", "colourfulness", "colourfulness_gap", "diversity")


def study_table(per_image: pd.DataFrame, num_resamples: int = 2000, seed: int = 0) -> pd.DataFrame:
    """One row per (method, metric): seed mean and spread, two-level interval, paired Δ vs grayscale.

    Columns: method, metric, mean (over seeds of per-seed means), seed_sd (NaN with 1 seed), low/high (95%
    interval over seeds and images, ``verdicts.two_level_interval``, inside the metric's range), delta_gray,
    delta_low, delta_high (paired on the same images, every seed against the one grayscale row), seeds, images.
    """
    rows = []
    for metric in [m for m in STUDY_METRICS if m in per_image]:
        for method, group in per_image.groupby("method", sort=False):
            per_seed = group.groupby("seed")[metric].mean()
            interval = verdicts.mean_interval(per_image, "method", method, metric, 0.95, num_resamples, seed)
            row: dict[str, Any] = {"method": method, "metric": metric, "mean": float(per_seed.mean()),
                                   "seed_sd": float(per_seed.std(ddof=1)) if len(per_seed) > 1 else float("nan"),
                                   "low": interval.low, "high": interval.high, "seeds": len(per_seed),
                                   "images": interval.num_images}
            if method != GRAYSCALE:
                diff = verdicts.difference_interval(per_image, "method", method, GRAYSCALE, metric, 0.95,
                                                    num_resamples, seed)
                row.update({"delta_gray": diff.estimate, "delta_low": diff.low, "delta_high": diff.high})
            rows.append(row)
    return pd.DataFrame(rows)


def ablation_table(per_image: pd.DataFrame, reference: str = "full", num_resamples: int = 2000,
                   seed: int = 0) -> pd.DataFrame:
    """One row per (variant, metric): mean and 95% interval over seeds and images, and the paired difference
    to ``reference`` (same seeds, same images) with its interval, whether it excludes zero, and the per-seed
    differences' range."""
    metrics = [m for m in HIGHER_IS_BETTER if m in per_image]
    rows = []
    for variant, group in per_image.groupby("variant", sort=False):
        for metric in metrics:
            interval = verdicts.mean_interval(per_image, "variant", variant, metric, 0.95, num_resamples, seed)
            row: dict[str, Any] = {"variant": variant, "metric": metric, "mean": interval.estimate,
                                   "low": interval.low, "high": interval.high, "seeds": group.seed.nunique()}
            if variant != reference and reference in set(per_image.variant):
                diff = verdicts.difference_interval(per_image, "variant", variant, reference, metric, 0.95,
                                                    num_resamples, seed)
                row.update({"diff_vs_full": diff.estimate, "diff_low": diff.low, "diff_high": diff.high,
                            "significant": bool(diff.low > 0 or diff.high < 0),
                            "seed_diff_min": min(diff.per_seed), "seed_diff_max": max(diff.per_seed)})
            rows.append(row)
    return pd.DataFrame(rows)
