"""Ablations: what each loss term, the noise branch and the skips contribute, over several seeds.

Each variant is a set of ColorGANConfig overrides of one base config; each (variant, seed) is an
ordinary training run in a folder named by its config hash, so a changed variant re-runs alone.
Statistics:
- per variant: mean over seeds of the per-seed test-set mean, with a t-interval over seeds;
- against the full model: paired bootstrap over test images of (variant - full), both averaged over
  seeds per image, marked where the 95% interval excludes zero.
"""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
from scipy import stats

from colorgan.config import AblationConfig, ColorGANConfig
from colorgan.evaluate import evaluate_or_reuse
from colorgan.metrics import GRAYSCALE, paired_bootstrap
from colorgan.step import ColorGANStep
from colorgan.train import run_hash, train_or_reuse

log = logging.getLogger(__name__)

# metric -> True when higher is better (for the verdicts and the chart's labels)
HIGHER_IS_BETTER = {"psnr": True, "ssim": True, "ciede2000": False, "colourfulness": True, "diversity": True}
# Metrics in CIELAB units, and the just-noticeable colour difference (Sharma 2003, ΔE*ab ≈ 2.3): a
# difference can be significant over images and still be invisible, and a verdict should say so.
CIELAB_METRICS = ("ciede2000", "diversity")
JUST_NOTICEABLE_DELTA_E = 2.3


def variant_configs(cfg: AblationConfig) -> dict[tuple[str, int], ColorGANConfig]:
    """Every (variant, seed) as a validated ColorGANConfig with its own hash-named run folder."""
    configs = {}
    for name, overrides in cfg.variants.items():
        for seed in cfg.seeds:
            params = {**cfg.base, **overrides, "seed": seed, "progress": False}
            digest = run_hash(ColorGANConfig.from_params(params))  # config + code: an edit trains in a new folder
            params["run_dir"] = str(Path(cfg.out_dir) / "runs" / f"{name}-s{seed}-{digest}")
            configs[(name, seed)] = ColorGANConfig.from_params(params)
    return configs


def run_ablation(cfg: AblationConfig) -> pd.DataFrame:
    """Train (or reuse) and evaluate every (variant, seed). Returns per-image metrics with variant and seed."""
    frames = []
    for (name, seed), run_cfg in variant_configs(cfg).items():
        log.info("ablation %s, seed %d: %s", name, seed, run_cfg.run_dir)
        train_or_reuse(run_cfg, ColorGANStep)
        diversity = cfg.num_diversity_samples if run_cfg.use_noise else 0
        per_image, _ = evaluate_or_reuse(run_cfg.run_dir, ColorGANConfig, ColorGANStep, run_cfg.device,
                                         num_diversity_samples=diversity)
        rows = per_image[per_image.method != GRAYSCALE].drop(columns="method")
        if "diversity" not in rows:
            rows = rows.assign(diversity=0.0)  # no noise: every sample is identical by construction
        frames.append(rows.assign(variant=name, seed=seed, run_dir=run_cfg.run_dir))
    return pd.concat(frames, ignore_index=True)


def seed_interval(values: np.ndarray, level: float = 0.95) -> tuple[float, float, float]:
    """Mean and Student-t interval over seeds (few seeds: a bootstrap would be too narrow)."""
    values = np.asarray(values, dtype=np.float64)
    mean = float(values.mean())
    if len(values) < 2:
        return mean, float("nan"), float("nan")
    half = stats.t.ppf(0.5 + level / 2, len(values) - 1) * values.std(ddof=1) / np.sqrt(len(values))
    return mean, mean - half, mean + half


def ablation_table(per_image: pd.DataFrame, reference: str = "full", num_resamples: int = 2000,
                   seed: int = 0) -> pd.DataFrame:
    """One row per (variant, metric): mean and 95% interval over seeds, and the paired difference to
    ``reference`` on the same images with its bootstrap interval and whether it excludes zero."""
    metrics = [m for m in HIGHER_IS_BETTER if m in per_image]
    by_image = per_image.groupby(["variant", "image"])[metrics].mean()  # average seeds per image
    reference_seeds = per_image[per_image.variant == reference].groupby("seed")[metrics].mean()
    rows = []
    for variant, group in per_image.groupby("variant", sort=False):
        per_seed = group.groupby("seed")[metrics].mean()
        for metric in metrics:
            mean, low, high = seed_interval(per_seed[metric].to_numpy())
            row: dict[str, Any] = {"variant": variant, "metric": metric, "mean": mean, "low": low, "high": high,
                                   "seeds": len(per_seed)}
            if variant != reference and reference in by_image.index.get_level_values(0):
                ours, theirs = by_image.loc[variant][metric], by_image.loc[reference][metric]
                ours, theirs = ours.align(theirs, join="inner")
                diff, diff_low, diff_high = paired_bootstrap(ours.to_numpy(), theirs.to_numpy(), num_resamples, seed)
                # the same seed of both (same initial weights and batches): the image interval averages seeds
                # away, so these say whether every seed agrees on the direction
                per_seed_diff = (per_seed[metric] - reference_seeds[metric]).dropna()
                row.update({"diff_vs_full": diff, "diff_low": diff_low, "diff_high": diff_high,
                            "significant": bool(diff_low > 0 or diff_high < 0),
                            "seed_diff_min": float(per_seed_diff.min()), "seed_diff_max": float(per_seed_diff.max())})
            rows.append(row)
    return pd.DataFrame(rows)


def wide_table(table: pd.DataFrame) -> pd.DataFrame:
    """Readable form: one row per variant, per metric 'mean [low, high]' and 'Δ vs full' (* = CI excludes 0)."""
    out = []
    for variant, group in table.groupby("variant", sort=False):
        row = {"variant": variant, "seeds": int(group.seeds.iloc[0])}
        for r in group.itertuples():
            digits = 3 if r.metric in ("ssim",) else 2
            row[r.metric] = f"{r.mean:.{digits}f} [{r.low:.{digits}f}, {r.high:.{digits}f}]"
            if "diff_vs_full" in group and not pd.isna(r.diff_vs_full):
                mark = "*" if r.significant else ""
                # one more digit than the means: a significant but tiny Δ must not print as +0.00*
                row[f"Δ{r.metric}"] = f"{r.diff_vs_full:+.{digits + 1}f}{mark}"
        out.append(row)
    return pd.DataFrame(out)


def wide_tables(table: pd.DataFrame) -> tuple[pd.DataFrame, pd.DataFrame]:
    """``wide_table`` split in two that each fit a page: the means [seed intervals], and the Δ vs full."""
    wide = wide_table(table)
    deltas = [c for c in wide.columns if str(c).startswith("Δ")]
    return wide.drop(columns=deltas), wide[["variant", *deltas]].iloc[1:]  # full has no Δ to itself


# The paper's claims as (claim, variant that removes the component, metric, the component helps the metric).
# The last row tests an explanation, not a claim: read literally, eq. 2 pulls G_f(z) towards one feature map
# whatever z is, so Ls would lower diversity, and dropping it (no_ls) would raise it.
ABLATION_CLAIMS = (
    ("The noise branch adds diversity (§1, §2.1)", "no_noise", "diversity", True),
    ("The noise branch adds vividness (§2.1)", "no_noise", "colourfulness", True),
    ("The noise branch improves quality (PSNR)", "no_noise", "psnr", True),
    ("Ls (eq. 2) improves quality (PSNR)", "no_ls", "psnr", True),
    ("The L1 term improves quality (PSNR)", "no_l1", "psnr", True),
    ("The adversarial term improves visual quality (colourfulness)", "no_adversarial", "colourfulness", True),
    ("The perceptual term improves quality (SSIM)", "no_perceptual", "ssim", True),
    ("Encoder skips improve reconstruction (SSIM)", "no_skips", "ssim", True),
    ("Literal eq. 2: Ls lowers diversity (G_f never sees the image)", "no_ls", "diversity", False),
)


def verdicts(table: pd.DataFrame) -> pd.DataFrame:
    """The paper's claims checked against the computed differences (holds / not supported / contradicted).

    A claim 'X helps metric m' holds when removing X makes m significantly worse (the paired interval over
    images excludes 0) and every seed agrees on the direction, is contradicted when both say removing X
    makes m better, and is not supported at this scale otherwise ('X lowers m': the other way round).
    The seeds must agree because the image interval averages them: with two or three seeds, seed-to-seed
    variation can be larger than a difference the images call significant.
    """
    rows = []
    indexed = table.set_index(["variant", "metric"])
    for claim, variant, metric, helps in ABLATION_CLAIMS:
        if (variant, metric) not in indexed.index:
            rows.append({"claim": claim, "evidence": f"variant {variant!r} not run", "verdict": "not tested"})
            continue
        r = indexed.loc[(variant, metric)]
        # the claimed effect of removing the component, in the metric's units (> 0: as claimed)
        sign = (-1 if HIGHER_IS_BETTER[metric] else 1) * (1 if helps else -1)
        low, high = sorted((sign * r.diff_low, sign * r.diff_high))
        seeds_low, seeds_high = sorted((sign * r.seed_diff_min, sign * r.seed_diff_max))
        verdict = ("holds" if low > 0 and seeds_low > 0 else "contradicted" if high < 0 and seeds_high < 0
                   else "not supported at this scale")
        as_claimed = sign * r.diff_vs_full > 0
        evidence = (f"{metric}: {variant} − full = {r.diff_vs_full:+.3f} [{r.diff_low:+.3f}, {r.diff_high:+.3f}] "
                    + (f"({'worse' if as_claimed else 'better or equal'} without it)" if helps
                       else f"({'higher' if r.diff_vs_full > 0 else 'lower or equal'} without it)"))
        if (low > 0 or high < 0) and verdict == "not supported at this scale":
            evidence += (f"; the seeds disagree on its direction (per-seed Δ from {r.seed_diff_min:+.3f} to "
                         f"{r.seed_diff_max:+.3f})")
        if metric in CIELAB_METRICS and abs(r.diff_vs_full) < JUST_NOTICEABLE_DELTA_E:
            evidence += f"; smaller than a just-noticeable colour difference (ΔE ≈ {JUST_NOTICEABLE_DELTA_E})"
        rows.append({"claim": claim, "evidence": evidence, "verdict": verdict})
    return pd.DataFrame(rows)


def save_ablation(table: pd.DataFrame, per_image: pd.DataFrame, out_dir: Path | str) -> list[Path]:
    """ablation_table.csv (long), ablation_table.md (wide), ablation_per_image.csv, and run_metadata.json
    (config, provenance and finish record of every run behind the numbers)."""
    from colorgan.report import save_run_metadata, table_markdown

    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    paths = [out_dir / "ablation_table.csv", out_dir / "ablation_table.md", out_dir / "ablation_per_image.csv"]
    table.to_csv(paths[0], index=False)
    paths[1].write_text(table_markdown(wide_table(table)))
    per_image.to_csv(paths[2], index=False)
    paths.append(save_run_metadata(run_dirs(per_image), out_dir.name, out_dir))
    return paths


def run_dirs(per_image: pd.DataFrame) -> list[str]:
    """The run folders behind ``run_ablation``'s per-image metrics, in the order they ran."""
    return list(dict.fromkeys(per_image.run_dir))


def ablation_chart(table: pd.DataFrame) -> "plt.Figure":
    """One panel per metric: the mean over seeds per variant with its 95% interval as error bars."""
    import matplotlib.pyplot as plt

    from colorgan.report import finish

    metrics = list(dict.fromkeys(table.metric))
    fig, axes = plt.subplots(1, len(metrics), figsize=(3.3 * len(metrics), 3.6), squeeze=False)
    for ax, metric in zip(axes[0], metrics):
        rows = table[table.metric == metric]
        errors = np.array([rows["mean"] - rows["low"], rows["high"] - rows["mean"]])
        colours = ["tab:gray" if v == "full" else "tab:blue" for v in rows.variant]
        ax.bar(range(len(rows)), rows["mean"], yerr=np.nan_to_num(errors), color=colours, capsize=3)
        ax.set_xticks(range(len(rows)), rows.variant, rotation=70, fontsize=7)
        arrow = "↑" if HIGHER_IS_BETTER[metric] else "↓"
        ax.set_title(f"{metric} ({arrow} better)", fontsize=9)
        ax.tick_params(axis="y", labelsize=7)
    return finish(fig)


def diversity_strips(cfg: AblationConfig, image_index: int = 0, seed: int = 0) -> "plt.Figure":
    """Per variant (first seed): several noise samples of the same test image."""
    import matplotlib.pyplot as plt
    import torch

    from colorgan import runtime
    from colorgan.color import rgb_to_model, uint8_to_float
    from colorgan.data import load_split
    from colorgan.report import finish
    from colorgan.train import load_trained

    configs = {name: c for (name, s), c in variant_configs(cfg).items() if s == cfg.seeds[0]}
    num_samples = cfg.num_diversity_samples
    fig, axes = plt.subplots(len(configs), num_samples, figsize=(1.5 * num_samples, 1.5 * len(configs)),
                             squeeze=False)
    test = None
    for row, (name, run_cfg) in enumerate(configs.items()):
        device = runtime.select_device(run_cfg.device)
        _, step, _ = load_trained(run_cfg.run_dir, ColorGANConfig, ColorGANStep, device)
        test = test or load_split(run_cfg)[1]
        rgb = uint8_to_float(torch.from_numpy(np.ascontiguousarray(test.images[image_index:image_index + 1])))
        L, _ = rgb_to_model(rgb.to(device))
        generator = torch.Generator().manual_seed(seed)
        for col in range(num_samples):
            sample = step.colorize(L, generator)[0].float().cpu().permute(1, 2, 0).clamp(0, 1).numpy()
            axes[row, col].imshow(sample)
            axes[row, col].set_xticks([])
            axes[row, col].set_yticks([])
        axes[row, 0].set_ylabel(name, fontsize=7, rotation=0, ha="right", va="center")
    return finish(fig)
