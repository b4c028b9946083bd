"""The study: every method x several seeds at one training budget, and verdicts on the paper's claims.

Each (method, seed) is an ordinary training run (``train_or_reuse``) in a folder named by its config
hash, validated during training on images set aside from the training split. The weights chosen by
one rule for every method (``StudyConfig.checkpoint``: best validation PSNR, or the last) are scored
on the test split with the shared metric code. Statistics:

- per method and metric: the mean over seeds of the per-seed test means, the seed spread (standard
  deviation over seeds) and a 95% bootstrap interval over test images of the seed-averaged values;
- against the grayscale (ab = 0) row and between methods: the paired difference on the same test
  images (seeds averaged per image) with its 95% bootstrap interval. Paired, because two unpaired
  intervals overlap long after the paired test is decisive.

A verdict is computed from such an interval: *supported* when it lies above zero in the claimed
direction, *contradicted* when it lies below, *inconclusive at this scale* otherwise.
"""

from __future__ import annotations

import json
import logging
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import torch

from colorgan import metrics, runtime
from colorgan.color import model_to_rgb, rgb_to_model
from colorgan.config import RunConfig, StudyConfig, field_default
from colorgan.data import load_split
from colorgan.evaluate import metric_code_digest
from colorgan.metrics import GRAYSCALE, Colorizer, bootstrap_ci, paired_bootstrap
from colorgan.train import StepFactory, load_trained, run_hash, train_or_reuse

log = logging.getLogger(__name__)

Methods = dict[str, tuple[type[RunConfig], StepFactory]]  # e.g. cli.METHODS

STUDY_METRICS = ("psnr", "ssim", "ciede2000", "colourfulness", "colourfulness_gap", "diversity")
# the metrics a claim 'A beats B' can be about (the colourfulness gap is signed: neither end is better)
HIGHER_IS_BETTER = {"psnr": True, "ssim": True, "ciede2000": False, "colourfulness": True, "diversity": True}
VERDICTS = ("supported", "contradicted", "inconclusive at this scale")
# ColTran returns RGB, so its luminance errors count against it alone; this row pastes the input L back, as
# ColorGAN and ChromaGAN do by construction
WITH_INPUT_L = " (+ input L)"
# the paper's Table 1 ordering: (better, worse) on PSNR and SSIM
TABLE1_CLAIMS = (("colorgan", "chromagan"), ("chromagan", "coltran"), ("colorgan", "coltran"))


# ----------------------------------------------------------------------------------------- runs


def run_configs(cfg: StudyConfig, methods: Methods) -> dict[tuple[str, int], RunConfig]:
    """Every (method, seed) as a validated config with its own hash-named run folder.

    Raises:
        ValueError: an unknown method or field, methods that would see different numbers of training
            images (unless ``allow_unequal_budget``), or runs on different data, sizes or validation images.
    """
    configs, budgets = {}, {}
    for name, overrides in cfg.methods.items():
        if name not in methods:
            raise ValueError(f"methods: {name!r} is not a method; choose from {sorted(methods)}")
        config_cls, _ = methods[name]
        params = {**cfg.base, **overrides, "progress": False}
        batch = params.get("batch_size", field_default(config_cls.__dataclass_fields__["batch_size"]))
        steps = params.pop("num_steps", 0) or cfg.num_images_seen // batch
        budgets[name] = steps * batch
        for seed in cfg.seeds:
            try:
                run = config_cls.from_params({**params, "num_steps": steps, "seed": seed})
            except ValueError as err:
                raise ValueError(f"methods[{name!r}]: {err}") from None
            configs[(name, seed)] = run.replace(run_dir=str(Path(cfg.out_dir) / "runs" / f"{name}-s{seed}-{run_hash(run)}"))
    if set(budgets.values()) != {cfg.num_images_seen} and not cfg.allow_unequal_budget:
        raise ValueError(f"num_images_seen: the methods would see {budgets} training images, not {cfg.num_images_seen} "
                         "each (it must be a multiple of every batch size); choose a common multiple, or set "
                         "allow_unequal_budget=True to accept it (Table 1 states each method's count)")
    shared = ("data", "data_root", "image_size", "num_val_images", "test_fraction", "num_sample_crops", "max_images")
    for field in shared:
        values = {c.method: getattr(c, field) for c in configs.values()}
        if len(set(values.values())) > 1:
            raise ValueError(f"{field}: the methods differ ({values}); a study compares methods on the same images "
                             "at the same size, so set it in base")
    return configs


def images_seen(configs: dict[tuple[str, int], RunConfig]) -> dict[str, int]:
    """Training images each method's runs see (steps x batch size)."""
    return {c.method: c.num_steps * c.batch_size for c in configs.values()}


def runs_of_seed(configs: dict[tuple[str, int], RunConfig], seed: int) -> list[str]:
    """The run folders of one seed, one per method in the study's order (Fig. 2 shows one run per method)."""
    return [c.run_dir for (_, s), c in configs.items() if s == seed]


def run_study(cfg: StudyConfig, methods: Methods) -> pd.DataFrame:
    """Train (or reuse) every (method, seed), score the chosen weights on the test split.

    Returns:
        Per-image metrics: columns method, seed, image, the STUDY_METRICS, checkpoint_step, run_dir; the
        grayscale row once (seed -1), and ColTran also with the input L pasted back.
    """
    frames, have_gray = [], False
    for (name, seed), run_cfg in run_configs(cfg, methods).items():
        log.info("study: %s, seed %d -> %s", name, seed, run_cfg.run_dir)
        train_or_reuse(run_cfg, methods[name][1])
        scored = score_run(run_cfg.run_dir, methods, cfg.checkpoint, cfg.num_diversity_samples, cfg.device)
        if have_gray:
            scored = scored[scored.method != GRAYSCALE]
        have_gray = True
        frames.append(scored.assign(seed=np.where(scored.method == GRAYSCALE, -1, seed)))
    return pd.concat(frames, ignore_index=True)


def with_input_L(colorize: Colorizer) -> Colorizer:
    """A colorizer whose output keeps the input's L and only the predicted ab (rgb -> Lab -> input L + ab)."""

    def colorize_keep_L(L: torch.Tensor, generator: torch.Generator) -> torch.Tensor:
        _, ab = rgb_to_model(colorize(L, generator).clamp(0, 1))
        return model_to_rgb(L, ab)

    return colorize_keep_L


def score_run(run_dir: Path | str, methods: Methods, checkpoint: str = "best_val", num_diversity_samples: int = 0,
              device: str = "auto") -> pd.DataFrame:
    """Score one run's chosen weights on its test split (cached in ``eval/study-<checkpoint>.csv``).

    The cache is reused only when the checkpoint, its step, the diversity count and the metric code
    (``evaluate.metric_code_digest``) are
    unchanged. Returns the rows of ``metrics.evaluate`` plus checkpoint_step and run_dir.
    """
    run_dir = Path(run_dir)
    method = json.loads((run_dir / "config.json").read_text())["method"]
    config_cls, build_step = methods[method]
    torch_device = runtime.select_device(device)
    cfg, step, checkpoint_step = load_trained(run_dir, config_cls, build_step, torch_device, checkpoint=checkpoint)
    key = {"checkpoint": checkpoint, "checkpoint_step": checkpoint_step, "num_diversity_samples": num_diversity_samples,
           "metric_code": metric_code_digest()}
    cache, cache_key = run_dir / "eval" / f"study-{checkpoint}.csv", run_dir / "eval" / f"study-{checkpoint}.json"
    if cache.is_file() and cache_key.is_file() and json.loads(cache_key.read_text()) == key:
        return pd.read_csv(cache)
    _, test, _ = load_split(cfg)
    with torch.no_grad():
        frames = [metrics.evaluate(step.colorize, test, torch_device, method, seed=cfg.seed,
                                   num_diversity_samples=num_diversity_samples)]
        if method == "coltran":
            pasted = metrics.evaluate(with_input_L(step.colorize), test, torch_device, method + WITH_INPUT_L,
                                      seed=cfg.seed, num_diversity_samples=num_diversity_samples)
            frames.append(pasted[pasted.method != GRAYSCALE])
    scored = pd.concat(frames, ignore_index=True).assign(checkpoint_step=checkpoint_step, run_dir=str(run_dir))
    cache.parent.mkdir(exist_ok=True)
    scored.to_csv(cache, index=False)
    runtime.write_json(cache_key, key)
    return scored


# ----------------------------------------------------------------------------------- statistics


def seed_averaged(per_image: pd.DataFrame, metric: str) -> pd.DataFrame:
    """(image x method) table of ``metric``, each method's seeds averaged per image."""
    return per_image.groupby(["image", "method"])[metric].mean().unstack("method")


def study_table(per_image: pd.DataFrame, num_resamples: int = 2000, seed: int = 0) -> pd.DataFrame:
    """One row per (method, metric): seed mean and spread, per-image interval, paired Δ vs grayscale.

    Columns: method, metric, mean (over seeds of per-seed means), seed_sd, low/high (95% bootstrap over
    images of the seed-averaged values), delta_gray, delta_low, delta_high (paired, same images), seeds,
    images.
    """
    rows = []
    for metric in [m for m in STUDY_METRICS if m in per_image]:
        by_image = seed_averaged(per_image, metric)
        for method, group in per_image.groupby("method", sort=False):
            per_seed = group.groupby("seed")[metric].mean()
            values = by_image[method].dropna()
            mean_images, low, high = bootstrap_ci(values.to_numpy(), num_resamples, seed)
            row: dict[str, Any] = {"method": method, "metric": metric, "mean": float(per_seed.mean()),
                                   "seed_sd": float(per_seed.std(ddof=1)) if len(per_seed) > 1 else float("nan"),
                                   "low": low, "high": high, "seeds": len(per_seed), "images": len(values)}
            if method != GRAYSCALE:
                diff, diff_low, diff_high = paired_bootstrap(values.to_numpy(), by_image.loc[values.index, GRAYSCALE]
                                                             .to_numpy(), num_resamples, seed)
                row.update({"delta_gray": diff, "delta_low": diff_low, "delta_high": diff_high})
            rows.append(row)
    return pd.DataFrame(rows)


def verdict(low: float, high: float) -> str:
    """The verdict on 'A is better than B' from the interval of the improvement (A − B, sign-adjusted)."""
    if low > 0:
        return "supported"
    if high < 0:
        return "contradicted"
    return "inconclusive at this scale"


def compare(per_image: pd.DataFrame, better: str, worse: str, metric: str, num_resamples: int = 2000,
            seed: int = 0) -> dict[str, Any]:
    """Claim '``better`` beats ``worse`` on ``metric``': paired difference on the same images, and its verdict."""
    by_image = seed_averaged(per_image, metric)[[better, worse]].dropna()
    diff, low, high = paired_bootstrap(by_image[better].to_numpy(), by_image[worse].to_numpy(), num_resamples, seed)
    sign = 1 if HIGHER_IS_BETTER[metric] else -1
    improvement = sorted((sign * low, sign * high))
    share = float(((by_image[better] - by_image[worse]) * sign > 0).mean())
    return {"difference": diff, "low": low, "high": high, "images": len(by_image), "share_better": share,
            "verdict": verdict(*improvement)}


def claim_verdicts(per_image: pd.DataFrame, ablation: pd.DataFrame | None = None, num_resamples: int = 2000,
                   seed: int = 0) -> pd.DataFrame:
    """The paper's claims -> evidence -> verdict, every verdict computed from the numbers.

    ``ablation`` is ``colorgan.ablation.ablation_table`` of the study-scale ablation, when it was run; its
    claims are 'not tested' otherwise.
    """
    from colorgan.ablation import verdicts as ablation_verdicts
    from colorgan.report import METHOD_NAMES

    rows = []
    present = set(per_image.method)
    for better, worse in TABLE1_CLAIMS:
        for metric in ("psnr", "ssim"):
            claim = f"{METHOD_NAMES[better]} > {METHOD_NAMES[worse]} on {metric.upper()} (Table 1)"
            if not {better, worse} <= present:
                rows.append({"claim": claim, "evidence": "not run in this profile", "verdict": "not tested"})
                continue
            r = compare(per_image, better, worse, metric, num_resamples, seed)
            rows.append({"claim": claim, "verdict": r["verdict"], "evidence": (
                f"{metric}: {METHOD_NAMES[better]} − {METHOD_NAMES[worse]} = {r['difference']:+.3f} "
                f"[{r['low']:+.3f}, {r['high']:+.3f}], paired over {r['images']} test images (seeds averaged); "
                f"better on {r['share_better']:.0%} of images")})
    if ablation is None:
        for claim in ("The noise branch adds diversity", "Each loss term helps", "Encoder skips help"):
            rows.append({"claim": claim, "verdict": "not tested",
                         "evidence": "needs the study-scale ablation: make ablations PROFILE=study"})
    else:
        words = {"holds": "supported", "contradicted": "contradicted", "not supported at this scale":
                 "inconclusive at this scale", "not tested": "not tested"}
        for r in ablation_verdicts(ablation).itertuples():
            rows.append({"claim": r.claim, "verdict": words[r.verdict], "evidence": f"ablation: {r.evidence}"})
    return pd.DataFrame(rows, columns=["claim", "evidence", "verdict"])


def diversity_finding(results: StudyResults) -> str:
    """What ColorGAN's noise does at this scale, and whether eq. 2 read literally explains it, from the numbers.

    Diversity is the mean CIEDE2000 between noise samples of one image (ΔE units); the study-scale ablation's
    no_ls variant tests the literal reading (Ls pulls G_f(z) towards one feature map whatever z is).
    """
    from colorgan.ablation import JUST_NOTICEABLE_DELTA_E as JND

    rows = results.table[(results.table.metric == "diversity") & (results.table.method == "colorgan")]
    if rows.empty:
        return "ColorGAN was not scored for diversity in this study (num_diversity_samples = 0)."
    r = rows.iloc[0]
    text = (f"ColorGAN's diversity (mean CIEDE2000 between noise samples of one test image) is {r['mean']:.3f} ΔE "
            f"[{r['low']:.3f}, {r['high']:.3f}], {'below' if r['high'] < JND else 'not below'} a just-noticeable "
            f"colour difference (ΔE ≈ {JND}): {'the noise barely changes the colours' if r['high'] < JND else 'the noise changes the colours visibly'}.")
    ablation = results.ablation
    if ablation is None or not {"full", "no_ls"} <= set(ablation.variant):
        return text + " Whether the literal reading of eq. 2 explains it needs the study-scale ablation (make " \
                      "ablations PROFILE=study)."
    no_ls = ablation[(ablation.variant == "no_ls") & (ablation.metric == "diversity")].iloc[0]
    text += (f" Read literally, eq. 2 trains G_f on noise alone, pulling G_f(z) towards one feature map whatever z "
             f"is; without Ls (the ablation's no_ls) diversity is {no_ls['mean']:.3f} ΔE, "
             f"{no_ls['diff_vs_full']:+.3f} [{no_ls['diff_low']:+.3f}, {no_ls['diff_high']:+.3f}] against the full "
             "model on the same images. ")
    if no_ls["diff_low"] > 0 and no_ls["mean"] >= JND:
        return text + "Dropping Ls restores visible diversity: the literal reading explains the collapse."
    if no_ls["diff_low"] > 0:
        return text + ("Dropping Ls raises diversity, but not to a visible level: the literal reading explains part "
                       "of it, and the generator still largely ignores z.")
    return text + ("Dropping Ls does not raise it: the generator ignores z with or without Ls, so the literal reading "
                   "alone does not explain the low diversity (a conditional GAN with an L1 term learning to ignore "
                   "its noise is what pix2pix reports, Isola et al. 2017).")


# ------------------------------------------------------------------------------------- outputs


def wide_table(table: pd.DataFrame, budgets: dict[str, int] | None = None) -> pd.DataFrame:
    """Readable Table 1: per method, each metric as 'mean ± seed sd [image CI]' and 'Δ gray [CI]' (* = excludes 0)."""
    from colorgan.report import METHOD_NAMES, PAPER_TABLE1

    out = []
    for method, group in table.groupby("method", sort=False):
        base = method.replace(WITH_INPUT_L, "")
        row: dict[str, Any] = {"Method": METHOD_NAMES.get(base, base) + (WITH_INPUT_L if method != base else ""),
                               "seeds": int(group.seeds.iloc[0]) if method != GRAYSCALE else "—",
                               "images seen": (budgets or {}).get(base, "—")}
        for r in group.itertuples():
            digits = 4 if r.metric == "ssim" else 2
            spread = "" if pd.isna(r.seed_sd) else f" ± {r.seed_sd:.{digits}f}"
            row[r.metric] = f"{r.mean:.{digits}f}{spread} [{r.low:.{digits}f}, {r.high:.{digits}f}]"
            if method != GRAYSCALE and not pd.isna(r.delta_gray):
                mark = "*" if r.delta_low > 0 or r.delta_high < 0 else ""
                row[f"Δ{r.metric} vs gray"] = (f"{r.delta_gray:+.{digits}f} [{r.delta_low:+.{digits}f}, "
                                               f"{r.delta_high:+.{digits}f}]{mark}")
        paper = PAPER_TABLE1.get(method)
        row["paper PSNR (published)"], row["paper SSIM (published)"] = paper if paper else (None, None)
        out.append(row)
    return pd.DataFrame(out)


def table1_columns(table: pd.DataFrame) -> pd.DataFrame:
    """The study's PSNR/SSIM in the column names of ``report.table1`` (what the book's front page reads):
    per method the mean over seeds and the 95% bootstrap interval over images, and the paper's values."""
    from colorgan.report import METHOD_NAMES, PAPER_TABLE1

    wide = table.set_index(["method", "metric"])
    rows = []
    for method in dict.fromkeys(table.method):
        base = method.replace(WITH_INPUT_L, "")
        psnr, ssim = wide.loc[(method, "psnr")], wide.loc[(method, "ssim")]
        paper = PAPER_TABLE1.get(method, (None, None))
        rows.append({"Method": METHOD_NAMES.get(base, base) + (WITH_INPUT_L if base != method else ""),
                     "PSNR (dB)": round(psnr["mean"], 3), "PSNR 95% CI": f"[{psnr.low:.3f}, {psnr.high:.3f}]",
                     "SSIM": round(ssim["mean"], 4), "SSIM 95% CI": f"[{ssim.low:.4f}, {ssim.high:.4f}]",
                     "seeds": int(psnr.seeds), "test images": int(psnr.images),
                     "paper PSNR (published)": paper[0], "paper SSIM (published)": paper[1]})
    return pd.DataFrame(rows)


def save_study(table: pd.DataFrame, per_image: pd.DataFrame, verdicts: pd.DataFrame, budgets: dict[str, int],
               out_dir: Path | str) -> list[Path]:
    """study_table.csv (long), table1.md (wide), table1.csv (the front page's columns), per_image_metrics.csv,
    verdicts.csv and run_metadata.json."""
    from colorgan.report import save_run_metadata, table_markdown

    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    paths = [out_dir / "study_table.csv", out_dir / "table1.md", out_dir / "per_image_metrics.csv",
             out_dir / "verdicts.csv", out_dir / "table1.csv"]
    table.to_csv(paths[0], index=False)
    paths[1].write_text(table_markdown(wide_table(table, budgets)))
    per_image.to_csv(paths[2], index=False)
    verdicts.to_csv(paths[3], index=False)
    table1_columns(table).to_csv(paths[4], index=False)
    runs = list(dict.fromkeys(per_image.loc[per_image.method != GRAYSCALE, "run_dir"]))
    paths.append(save_run_metadata(runs, out_dir.name, out_dir))
    return paths


@dataclass
class StudyResults:
    """A study's saved numbers, read back from its results folder."""

    out_dir: Path
    table: pd.DataFrame  # study_table.csv
    per_image: pd.DataFrame  # per_image_metrics.csv
    runs: list[dict[str, Any]]  # run_metadata.json: config, provenance, finished of every run
    ablation: pd.DataFrame | None  # ablation_table.csv of the study-scale ablation, when it was run


def load_results(out_dir: Path | str) -> StudyResults:
    """Read a study's results folder; a clear error when the study has not been run there."""
    out_dir = Path(out_dir)
    missing = [n for n in ("study_table.csv", "per_image_metrics.csv", "run_metadata.json") if not (out_dir / n).is_file()]
    if missing:
        raise FileNotFoundError(f"{out_dir} holds no study results ({', '.join(missing)} missing); run "
                                "`make reproduce PROFILE=study` first")
    ablation_path = out_dir / "ablation_table.csv"
    return StudyResults(out_dir, pd.read_csv(out_dir / "study_table.csv"), pd.read_csv(out_dir / "per_image_metrics.csv"),
                        json.loads((out_dir / "run_metadata.json").read_text())["runs"],
                        pd.read_csv(ablation_path) if ablation_path.is_file() else None)


def summary_markdown(results: StudyResults, verdicts: pd.DataFrame) -> str:
    """Scope, claims, method and results of the reproducibility summary, every number from ``results``."""
    from colorgan.report import METHOD_NAMES, protocol_differences

    runs = results.runs
    config = runs[0]["config"]
    provenance = runs[0].get("provenance") or {}
    data = provenance.get("data", {})
    seeds = sorted({r["config"]["seed"] for r in runs})
    methods = list(dict.fromkeys(r["config"]["method"] for r in runs))
    budget = {r["config"]["method"]: r["config"]["num_steps"] * r["config"]["batch_size"] for r in runs}
    wall = sum((r.get("finished") or {}).get("wall_seconds", 0.0) for r in runs)
    psnr = results.table[results.table.metric == "psnr"].set_index("method")
    ssim = results.table[results.table.metric == "ssim"].set_index("method")
    lines = [
        "## Scope",
        f"Does ColorGAN's Table 1 ordering (ColorGAN > ChromaGAN > ColTran on PSNR and SSIM) hold when the three "
        f"methods are re-implemented on one harness and trained alike? Here: {data.get('num_train', '?')} training "
        f"images ({config.get('num_val_images', 0)} more set aside for validation) and {data.get('num_test', '?')} test "
        f"images from {config['data']} data at {config['image_size']}×{config['image_size']}, "
        f"{len(seeds)} seeds per method ({', '.join(map(str, seeds))}), VGG weights "
        f"`{provenance.get('vgg_weights', config.get('vgg_weights', 'n/a'))}`.",
        "## Claims", "1. ColorGAN outperforms ChromaGAN and ColTran on PSNR and SSIM (Table 1), ChromaGAN ahead of ColTran.",
        "2. The noise branch adds diversity (§1, §2.1).", "3. Each loss term of eq. 1 helps; the encoder skips help (§2.1).",
        "## Method",
        "Each method trained for the same number of training images ("
        + ", ".join(f"{METHOD_NAMES.get(m, m)} {budget[m]:,}" for m in methods)
        + f"), {len(runs)} runs in {wall / 60:.0f} min of training on `{provenance.get('device_name', '?')}`. "
        "Every run was scored on its validation images during training; the weights chosen by one rule for every "
        "method were scored on the test split. Differences are paired over the same test images, seeds averaged "
        "per image, with 95% bootstrap intervals.",
        "## Results",
    ]
    for method in psnr.index:
        if method == GRAYSCALE:
            continue
        r = psnr.loc[method]
        base = method.replace(WITH_INPUT_L, "")
        line = (f"- {METHOD_NAMES.get(base, base)}{WITH_INPUT_L if base != method else ''}: PSNR "
                f"{r['mean']:.2f} dB (seed sd {r['seed_sd']:.2f}), {r['delta_gray']:+.2f} dB "
                f"[{r['delta_low']:+.2f}, {r['delta_high']:+.2f}] against the grayscale row")
        if method in ssim.index:
            q = ssim.loc[method]
            line += (f"; SSIM {q['mean']:.4f}, {q['delta_gray']:+.4f} [{q['delta_low']:+.4f}, "
                     f"{q['delta_high']:+.4f}]")
        lines.append(line + ".")
    counts = verdicts.verdict.value_counts()
    lines.append("Verdicts: " + ", ".join(f"{counts.get(v, 0)} {v}" for v in (*VERDICTS, "not tested")) + ".")
    lines += ["## Diversity", diversity_finding(results)]
    lines += ["## Deviations from the paper", *[f"- {d}" for d in protocol_differences(config)]]
    return "\n\n".join(lines)
