"""Ablations: what each loss term, the noise branch and the skips contribute, over several seeds.

Each variant is a set of ColorGANConfig overrides of one base config; each (variant, seed) is an
ordinary training run in a folder named by its config hash, so a changed variant re-runs alone.
Statistics (``colorgan.experiments.verdicts``): per variant the mean over seeds of the per-seed test-set mean with a
95% interval over seeds and test images, inside the metric's range; against the full model the paired
difference (same seeds, same images) with its interval, marked where it excludes zero. The claims are
judged by ``colorgan.experiments.verdicts.judge`` (claims.toml, source 'ablation'). Everything is written to the
ablation's own folder (``results/<profile>/ablation/``), per-image evidence included.
"""

from __future__ import annotations

import logging
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd

from colorgan.common.params import Params, opt, validate_fields
from colorgan.evaluation.evaluate import evaluate_or_reuse
from colorgan.experiments import verdicts
from colorgan.experiments.aggregate import ablation_table
from colorgan.experiments.executor import Job, train_runs
from colorgan.experiments.executor_config import ExecutorConfig
from colorgan.experiments.verdicts import HIGHER_IS_BETTER
from colorgan.measures.metrics import GRAYSCALE
from colorgan.method.config import ColorGANConfig
from colorgan.method.step import ColorGANStep
from colorgan.training.run_store import in_store, save_run_metadata, train_in_store

log = logging.getLogger(__name__)

# Noise samples per test image for diversity (mean ΔE*ab between samples), one count for the study and its
# ablation: the mean over sample pairs depends on how many samples are drawn, so their numbers compare only at one.
NUM_DIVERSITY_SAMPLES = 3
# A profile's ablation keeps its own folder, results/<profile>/ablation/ (tables, verdicts, metadata and this
# gzip CSV of per-image metrics, committed so that anyone can recompute its deltas and verdicts)
ABLATION_DIR = "ablation"
ABLATION_EVIDENCE = "ablation_per_image.csv.gz"
ABLATION_TABLE_FILE = "ablation_table.csv"  # every variant and metric with its difference to the full loss
# The ablation study's variants (issue: each a parameter override of the same config).
ABLATION_VARIANTS = {
    "full": {},
    "no_adversarial": {"lambda_g": 0.0},
    "no_perceptual": {"lambda_p": 0.0},
    "no_l1": {"lambda_l1": 0.0},
    "no_ls": {"lambda_s": 0.0},
    "no_noise": {"use_noise": False, "lambda_s": 0.0},
    "no_skips": {"use_skips": False},
    "noise_std_0.01": {"noise_std": 0.01},
    "noise_std_0.5": {"noise_std": 0.5},
}


@dataclass(frozen=True)
class AblationConfig(Params):
    """The ablation study: variants (ColorGANConfig overrides) x seeds on one base config."""

    variants: dict = opt(ABLATION_VARIANTS, "variant name -> ColorGANConfig overrides; 'full' is the reference")
    seeds: list = opt([0, 1, 2], "training seeds per variant (3 or more for intervals worth reading)")
    base: dict = opt({}, "ColorGANConfig fields shared by every variant (data, size, steps, widths, ...)")
    num_diversity_samples: int = opt(NUM_DIVERSITY_SAMPLES, "noise samples per test image for the diversity metric "
                                                             "(the study's count: diversity depends on it)", min=2)
    out_dir: str = opt("results/ablations", "where tables and charts go")
    runs_dir: str = opt("results/runs", "the run store: every run once, by config and code hash (colorgan.training.run_store)")

    def __post_init__(self) -> None:
        validate_fields(self)
        if "full" not in self.variants:
            raise ValueError(f"variants: needs a 'full' variant (the reference); got {sorted(self.variants)}")
        if not self.seeds or not all(isinstance(s, int) and s >= 0 for s in self.seeds):
            raise ValueError(f"seeds: expected a non-empty list of non-negative ints; got {self.seeds!r}")
        for name, overrides in self.variants.items():
            if not isinstance(overrides, dict):
                raise ValueError(f"variants[{name!r}]: expected a dict of ColorGANConfig fields; got {overrides!r}")
            try:
                ColorGANConfig.from_params({**self.base, **overrides})
            except ValueError as err:
                raise ValueError(f"variants[{name!r}]: {err}") from None


def variant_configs(cfg: AblationConfig) -> dict[tuple[str, int], ColorGANConfig]:
    """Every (variant, seed) as a validated ColorGANConfig with its folder in the run store (``cfg.runs_dir``:
    named by config and code, so an edit trains in a new folder and a variant equal to a study run is that run)."""
    return {(name, seed): in_store(ColorGANConfig.from_params({**cfg.base, **overrides, "seed": seed, "progress": False}),
                                   cfg.runs_dir)
            for name, overrides in cfg.variants.items() for seed in cfg.seeds}


def run_ablation(cfg: AblationConfig, executor: ExecutorConfig | None = None) -> pd.DataFrame:
    """Train (or reuse) and evaluate every (variant, seed). Returns per-image metrics with variant and seed.

    ``executor`` trains the runs first, in parallel workers or as Slurm jobs (``colorgan.experiments.executor``).
    """
    frames, started = [], time.time()
    configs = variant_configs(cfg)
    if executor is not None:
        train_runs([Job(f"{name} seed {seed}", c, ColorGANStep) for (name, seed), c in configs.items()], executor)
    for (name, seed), run_cfg in configs.items():
        log.info("ablation %s, seed %d: %s", name, seed, run_cfg.run_dir)
        train_in_store(run_cfg, ColorGANStep)
        diversity = cfg.num_diversity_samples if run_cfg.use_noise else 0
        per_image, _ = evaluate_or_reuse(run_cfg.run_dir, ColorGANConfig, ColorGANStep, run_cfg.device,
                                         num_diversity_samples=diversity)
        rows = per_image[per_image.method != GRAYSCALE].drop(columns="method")
        if "diversity" not in rows:
            rows = rows.assign(diversity=0.0)  # no noise: every sample is identical by construction
        frames.append(rows.assign(variant=name, seed=seed, run_dir=run_cfg.run_dir))
    verdicts.stamp_runs([c.run_dir for c in configs.values()], cfg.out_dir, started)  # claims in force at training
    return pd.concat(frames, ignore_index=True)


def judge(per_image: pd.DataFrame, num_resamples: int = 2000, seed: int = 0) -> pd.DataFrame:
    """The ablation's claims (claims.toml, source 'ablation') judged by ``colorgan.experiments.verdicts`` on its evidence."""
    judged = verdicts.judge({"ablation": per_image}, num_resamples=num_resamples, seed=seed)
    ablation_ids = {c.id for c in verdicts.load_claims()[0] if c.source == "ablation"}
    return judged[judged.claim_id.isin(ablation_ids)].reset_index(drop=True)


def wide_table(table: pd.DataFrame) -> pd.DataFrame:
    """Readable form: one row per variant, per metric 'mean [low, high]' and 'Δ vs full' (* = CI excludes 0)."""
    out = []
    for variant, group in table.groupby("variant", sort=False):
        row = {"variant": variant, "seeds": int(group.seeds.iloc[0])}
        for r in group.itertuples():
            digits = 3 if r.metric in ("ssim",) else 2
            if r.low == r.high:  # e.g. no_noise's diversity: identical samples, 0 on every image and seed
                row[r.metric] = f"{r.mean:.{digits}f} (every image and seed equal)"
            else:
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


def save_ablation(table: pd.DataFrame, per_image: pd.DataFrame, judged: pd.DataFrame, out_dir: Path | str,
                  profile: str = "") -> list[Path]:
    """Into the ablation's own folder: ablation_table.csv (long), ablation_table.md (wide), the per-image
    evidence (gzip CSV), verdicts.csv and run_metadata.json (config, provenance and finish record of every run)."""
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    paths = write_judged(table, judged, out_dir) + [out_dir / ABLATION_EVIDENCE]
    # mtime=0: the same evidence gives the same bytes (the summary's cache key is its digest)
    per_image.to_csv(paths[-1], index=False, compression={"method": "gzip", "mtime": 0})
    paths.append(save_run_metadata(run_dirs(per_image), profile or out_dir.name, out_dir))
    return paths


def write_judged(table: pd.DataFrame, judged: pd.DataFrame, out_dir: Path) -> list[Path]:
    """ablation_table.csv (long), ablation_table.md (wide) and verdicts.csv into ``out_dir``."""
    from colorgan.common.formatting import table_markdown

    paths = [out_dir / ABLATION_TABLE_FILE, out_dir / "ablation_table.md", out_dir / "verdicts.csv"]
    table.to_csv(paths[0], index=False)
    paths[1].write_text(table_markdown(wide_table(table)))
    judged.to_csv(paths[2], index=False)
    return paths


def rejudge(out_dir: Path | str, num_resamples: int = 2000) -> list[Path]:
    """Recompute an ablation's tables, charts and verdicts from its kept per-image evidence (no training).

    ``make rejudge`` runs it on results/study/ablation: the ablation judged by today's claims and rule, and
    shown by today's tables and charts. Its run_metadata.json (what trained) is left as the runs wrote it.
    """
    from colorgan.common.formatting import delta_chart

    out_dir = Path(out_dir)
    evidence = out_dir / ABLATION_EVIDENCE
    if not evidence.is_file():
        raise FileNotFoundError(f"{evidence} is missing: the ablation's per-image evidence is what it is re-judged "
                                "from; run `make ablations` for that profile first")
    per_image = pd.read_csv(evidence)
    table = ablation_table(per_image, num_resamples=num_resamples)
    paths = write_judged(table, judge(per_image, num_resamples=num_resamples), out_dir)
    paths += [out_dir / "ablation_chart.png", out_dir / "ablation_deltas.png"]
    ablation_chart(table).savefig(paths[-2], dpi=110)
    delta_chart(table, HIGHER_IS_BETTER).savefig(paths[-1], dpi=110)
    return paths


def run_dirs(per_image: pd.DataFrame) -> list[str]:
    """The run folders behind ``run_ablation``'s per-image metrics, in the order they ran."""
    return list(dict.fromkeys(per_image.run_dir))


def ablation_chart(table: pd.DataFrame) -> "plt.Figure":
    """One panel per metric: the mean over seeds per variant with its 95% interval (seeds and images) as error bars."""
    import matplotlib.pyplot as plt

    from colorgan.common.formatting import finish

    metrics = list(dict.fromkeys(table.metric))
    fig, axes = plt.subplots(1, len(metrics), figsize=(3.3 * len(metrics), 3.6), squeeze=False)
    for ax, metric in zip(axes[0], metrics):
        rows = table[table.metric == metric]
        errors = np.array([rows["mean"] - rows["low"], rows["high"] - rows["mean"]])
        colours = ["tab:gray" if v == "full" else "tab:blue" for v in rows.variant]
        ax.bar(range(len(rows)), rows["mean"], yerr=np.nan_to_num(errors), color=colours, capsize=3)
        for x, (mean, low, high) in enumerate(zip(rows["mean"], rows["low"], rows["high"])):
            if low == high:  # a zero-width interval is a constant (no_noise's diversity), not a precise estimate
                ax.annotate("all equal", (x, mean), xytext=(0, 4), textcoords="offset points", ha="center",
                            va="bottom", rotation=90, fontsize=6)
        ax.set_xticks(range(len(rows)), rows.variant, rotation=70, fontsize=7)
        arrow = "↑" if HIGHER_IS_BETTER[metric] else "↓"
        ax.set_title(f"{metric} ({arrow} better)", fontsize=9)
        ax.tick_params(axis="y", labelsize=7)
    return finish(fig)


def diversity_strips(cfg: AblationConfig, image_index: int = 0, seed: int = 0) -> "plt.Figure":
    """Per variant (first seed): several noise samples of the same test image."""
    import matplotlib.pyplot as plt
    import torch

    from colorgan.common import runtime
    from colorgan.common.formatting import finish
    from colorgan.method.color import rgb_to_model, uint8_to_float
    from colorgan.method.data import load_split
    from colorgan.training.train import load_trained

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
