"""The study: every method x several seeds at one training budget, and verdicts on the paper's claims.

Each (method, seed) is an ordinary training run (``train_or_reuse``) in a folder named by its config
hash, validated during training on images set aside from the training split. The weights chosen by
one rule for every method (``StudyConfig.checkpoint``: best validation PSNR, or the last) are scored
on the test split with the shared metric code. Statistics:

- per method and metric: the mean over seeds of the per-seed test means, the seed spread (standard
  deviation over seeds) and a 95% interval over seeds and test images;
- against the grayscale (ab = 0) row and between methods: the paired difference on the same test
  images and seeds with its 95% interval. Paired, because two unpaired intervals overlap long after
  the paired test is decisive.

Every interval covers both sources of variation, training seeds and test images
(``colorgan.verdicts.two_level_interval``), and every claim is judged by ``colorgan.verdicts`` against
its declared margin (``claims.toml``).
"""

from __future__ import annotations

import json
import logging
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import torch

from colorgan import metrics, runtime, verdicts
from colorgan.color import model_to_rgb, rgb_to_model
from colorgan.config import ABLATION_DIR, ABLATION_EVIDENCE, RunConfig, StudyConfig, field_default
from colorgan.data import load_split
from colorgan.evaluate import metric_code_digest
from colorgan.metrics import GRAYSCALE, Colorizer
from colorgan.train import StepFactory, load_trained, run_hash, train_or_reuse

log = logging.getLogger(__name__)

Methods = dict[str, tuple[type[RunConfig], StepFactory]]  # e.g. cli.METHODS

STUDY_METRICS = ("psnr", "ssim", "ciede2000", "colourfulness", "colourfulness_gap", "diversity")
# ColTran returns RGB, so its luminance errors count against it alone; this row pastes the input L back, as
# ColorGAN and ChromaGAN do by construction
WITH_INPUT_L = " (+ input L)"


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
    frames, have_gray, started = [], False, time.time()
    configs = run_configs(cfg, methods)
    for (name, seed), run_cfg in configs.items():
        log.info("study: %s, seed %d -> %s", name, seed, run_cfg.run_dir)
        train_or_reuse(run_cfg, methods[name][1])
        scored = score_run(run_cfg.run_dir, methods, cfg.checkpoint, cfg.num_diversity_samples, cfg.device)
        if have_gray:
            scored = scored[scored.method != GRAYSCALE]
        have_gray = True
        frames.append(scored.assign(seed=np.where(scored.method == GRAYSCALE, -1, seed)))
    verdicts.stamp_runs([c.run_dir for c in configs.values()], cfg.out_dir, started)  # claims in force at training
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


def judge_claims(results: StudyResults | pd.DataFrame, num_resamples: int = 2000, seed: int = 0) -> pd.DataFrame:
    """Every claim of ``claims.toml`` judged by ``colorgan.verdicts`` on a study's evidence (and its ablation's).

    ``results`` is a study's results, or per-image metrics alone (its ablation claims are then 'not tested').
    An ablation whose table exists without its per-image evidence (made before the evidence was kept)
    cannot be judged: its claims say so and how to get the evidence.
    """
    if isinstance(results, pd.DataFrame):
        return verdicts.judge({"study": results}, num_resamples=num_resamples, seed=seed, absent=ABSENT_ABLATION)
    evidence = {"study": results.per_image}
    absent = ABSENT_ABLATION
    if results.ablation_per_image is not None:
        evidence["ablation"] = results.ablation_per_image
    elif results.ablation is not None:
        absent = {"ablation": (verdicts.NOT_REJUDGED, "evidence not committed; re-run `make ablations PROFILE=study`")}
    return verdicts.judge(evidence, num_resamples=num_resamples, seed=seed, absent=absent)


ABSENT_ABLATION = {"ablation": (verdicts.NOT_TESTED, "needs the study-scale ablation: make ablations PROFILE=study")}


def diversity_finding(results: StudyResults) -> str:
    """What ColorGAN's noise does at this scale, and whether eq. 2 read literally explains it, from the numbers.

    Diversity is the mean ΔE*ab (CIE76) between noise samples of one image: the samples share the input L,
    so it is their Euclidean ab distance (``metrics.pairwise_ab_distance``). The study-scale ablation's
    no_ls variant tests the literal reading (Ls pulls G_f(z) towards one feature map whatever z is).
    """
    jnd = verdicts.margin_of("diversity")
    rows = results.table[(results.table.metric == "diversity") & (results.table.method == "colorgan")]
    if rows.empty:
        return "ColorGAN was not scored for diversity in this study (num_diversity_samples = 0)."
    r = rows.iloc[0]
    text = (f"ColorGAN's diversity (mean ΔE*ab between noise samples of one test image, {DIVERSITY_NOTE}) is "
            f"{r['mean']:.3f} [{r['low']:.3f}, {r['high']:.3f}], {'below' if r['high'] < jnd else 'not below'} a "
            f"just-noticeable colour difference (ΔE*ab ≈ {jnd}): "
            f"{'the noise barely changes the colours' if r['high'] < jnd else 'the noise changes the colours visibly'}.")
    ablation = results.ablation
    if ablation is None or not {"full", "no_ls"} <= set(ablation.variant):
        return text + " Whether the literal reading of eq. 2 explains it needs the study-scale ablation (make " \
                      "ablations PROFILE=study)."
    no_ls = ablation[(ablation.variant == "no_ls") & (ablation.metric == "diversity")].iloc[0]
    text += (f" Read literally, eq. 2 trains G_f on noise alone, pulling G_f(z) towards one feature map whatever z "
             f"is; without Ls (the ablation's no_ls) diversity is {no_ls['mean']:.3f}, "
             f"{no_ls['diff_vs_full']:+.3f} [{no_ls['diff_low']:+.3f}, {no_ls['diff_high']:+.3f}] against the full "
             "model on the same images" + ("" if results.ablation_per_image is not None else
                                           " (the ablation's own table, made by the earlier image-only rule: its "
                                           "per-image evidence was not kept)") + ". ")
    if no_ls["diff_low"] > 0 and no_ls["mean"] >= jnd:
        return text + "Dropping Ls restores visible diversity: the literal reading explains the collapse."
    if no_ls["diff_low"] > 0:
        return text + ("Dropping Ls raises diversity, but not to a visible level: the literal reading explains part "
                       "of it, and the generator still largely ignores z.")
    return text + ("Dropping Ls does not raise it: the generator ignores z with or without Ls, so the literal reading "
                   "alone does not explain the low diversity (a conditional GAN with an L1 term learning to ignore "
                   "its noise is what pix2pix reports, Isola et al. 2017).")


DIVERSITY_NOTE = "their Euclidean ab distance, since the samples share the input L"


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


def save_study(table: pd.DataFrame, per_image: pd.DataFrame, judged: pd.DataFrame, budgets: dict[str, int],
               out_dir: Path | str) -> list[Path]:
    """study_table.csv (long), table1.md (wide), table1.csv (the front page's columns), per_image_metrics.csv,
    verdicts.csv and run_metadata.json."""
    from colorgan.report import save_run_metadata

    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    paths = write_tables(table, judged, budgets, out_dir)
    paths.append(out_dir / "per_image_metrics.csv")
    per_image.to_csv(paths[-1], index=False)
    runs = list(dict.fromkeys(per_image.loc[per_image.method != GRAYSCALE, "run_dir"]))
    paths.append(save_run_metadata(runs, out_dir.name, out_dir))
    return paths


def write_tables(table: pd.DataFrame, judged: pd.DataFrame, budgets: dict[str, int], out_dir: Path) -> list[Path]:
    """study_table.csv, table1.md, table1.csv and verdicts.csv: everything computed from the per-image metrics."""
    from colorgan.report import table_markdown

    paths = [out_dir / "study_table.csv", out_dir / "table1.md", out_dir / "table1.csv", out_dir / "verdicts.csv"]
    table.to_csv(paths[0], index=False)
    paths[1].write_text(table_markdown(wide_table(table, budgets)))
    table1_columns(table).to_csv(paths[2], index=False)
    judged.to_csv(paths[3], index=False)
    return paths


def rejudge(out_dir: Path | str, num_resamples: int = 2000) -> list[Path]:
    """Recompute a study's tables and verdicts from its committed per-image metrics (no training, no scoring).

    ``make rejudge`` runs it on results/study: the committed study judged by today's claims and rule.
    """
    results = load_results(out_dir)
    table = study_table(results.per_image, num_resamples)
    budgets = {r["config"]["method"]: r["config"]["num_steps"] * r["config"]["batch_size"] for r in results.runs}
    return write_tables(table, judge_claims(results, num_resamples), budgets, Path(out_dir))


@dataclass
class StudyResults:
    """A study's saved numbers, read back from its results folder (and its ablation's, ``ABLATION_DIR``)."""

    out_dir: Path
    table: pd.DataFrame  # study_table.csv
    per_image: pd.DataFrame  # per_image_metrics.csv
    runs: list[dict[str, Any]]  # run_metadata.json: config, provenance, finished of every run
    ablation: pd.DataFrame | None  # ablation_table.csv of the study-scale ablation, when it was run
    ablation_per_image: pd.DataFrame | None = None  # its per-image evidence, when it was kept
    ablation_runs: list[dict[str, Any]] | None = None  # its run_metadata.json


def load_results(out_dir: Path | str) -> StudyResults:
    """Read a study's results folder; a clear error when the study has not been run there.

    The ablation is read from its own folder (``out_dir/ablation``); a study made before the ablation had
    one keeps its table at ``out_dir/ablation_table.csv`` with no per-image evidence (not re-judged).
    """
    out_dir = Path(out_dir)
    missing = [n for n in ("study_table.csv", "per_image_metrics.csv", "run_metadata.json") if not (out_dir / n).is_file()]
    if missing:
        raise FileNotFoundError(f"{out_dir} holds no study results ({', '.join(missing)} missing); run "
                                "`make reproduce PROFILE=study` first")
    ablation_dir = out_dir / ABLATION_DIR
    table_path = next((p for p in (ablation_dir / "ablation_table.csv", out_dir / "ablation_table.csv") if p.is_file()),
                      None)
    evidence = ablation_dir / ABLATION_EVIDENCE
    metadata = ablation_dir / "run_metadata.json"
    return StudyResults(out_dir, pd.read_csv(out_dir / "study_table.csv"), pd.read_csv(out_dir / "per_image_metrics.csv"),
                        json.loads((out_dir / "run_metadata.json").read_text())["runs"],
                        pd.read_csv(table_path) if table_path else None,
                        pd.read_csv(evidence) if evidence.is_file() else None,
                        json.loads(metadata.read_text())["runs"] if metadata.is_file() else None)


def deviations(results: StudyResults) -> dict[str, list[str]]:
    """claim id -> the deviations from the paper that a reader needs beside that claim's verdict.

    Each is found in the run records (configs, provenance, the scored checkpoints), not typed in.
    """
    from colorgan.config import ABLATION_VARIANTS

    configs = {(r["config"]["method"], r["config"]["seed"]): r for r in results.runs}
    claims, _ = verdicts.load_claims()
    notes: dict[str, list[str]] = {c.id: [] for c in claims}
    table1 = [c for c in claims if c.source == "study"]
    chroma = [r for (m, _), r in configs.items() if m == "chromagan"]
    if chroma and all("random" in str((r.get("provenance") or {}).get("vgg_weights", r["config"].get("vgg_weights")))
                      for r in chroma):
        for c in table1:
            if "chromagan" in (c.a, c.b):
                notes[c.id].append("ChromaGAN's class-distribution KL term is off in every run (random VGG16: "
                                   "no ImageNet teacher)")
    amps = {m: r["config"].get("amp") for (m, _), r in configs.items()}
    if len(amps) > 1 and set(amps.values()) == {"bf16"}:
        for c in table1:
            notes[c.id].append("bf16 autocast was measured faster for ColorGAN's step and then applied to all "
                               "three methods; the baselines' steps were not benchmarked in bf16")
    seen = scored_images_seen(results)
    for c in table1:
        short = {f"{m} seed {s}": n for (m, s), n in seen.items() if m in (c.a, c.b) and n < seen_budget(configs, m)}
        if short:
            notes[c.id].append("the scored weights (best on validation) had seen fewer training images than the "
                               "budget: " + ", ".join(f"{k} {v:,}" for k, v in short.items()))
    colorgan_vgg = [str((r.get("provenance") or {}).get("vgg_weights", "")) for (m, _), r in configs.items()
                    if m == "colorgan"]
    if colorgan_vgg and all(v.startswith("random") for v in colorgan_vgg):
        notes.setdefault("perceptual_ssim", []).append(
            "the perceptual term is computed on random (untrained) VGG features, not the paper's ImageNet VGG")
    if ABLATION_VARIANTS["no_noise"].get("lambda_s", 1.0) == 0.0:
        for c in claims:
            if c.b == "no_noise":
                notes[c.id].append("no_noise also drops Ls (eq. 2 has no noise branch to act on): its effect is "
                                   "the noise branch and Ls together")
    return notes


def scored_images_seen(results: StudyResults) -> dict[tuple[str, int], int]:
    """(method, seed) -> training images the scored weights had seen (checkpoint step x batch size)."""
    steps = results.per_image[results.per_image.seed >= 0].groupby(["method", "seed"]).checkpoint_step.first()
    batch = {(r["config"]["method"], r["config"]["seed"]): r["config"]["batch_size"] for r in results.runs}
    return {(m, int(s)): int(step) * batch[(m, int(s))] for (m, s), step in steps.items() if (m, int(s)) in batch}


def seen_budget(configs: dict[tuple[str, int], dict[str, Any]], method: str) -> int:
    """The training images a method's runs saw in all (steps x batch size)."""
    return max(r["config"]["num_steps"] * r["config"]["batch_size"] for (m, _), r in configs.items() if m == method)


def basis_notes(results: StudyResults, judged: pd.DataFrame) -> list[str]:
    """Were claims and rule fixed before the data? One note for the study's runs, one for the ablation's."""
    declared = verdicts.load_claims()[1]["declared"]
    notes = [verdicts.basis_note(judged, verdicts.recorded_basis(results.out_dir), declared)]
    if results.ablation_per_image is not None:
        note = verdicts.basis_note(judged, verdicts.recorded_basis(results.out_dir / ABLATION_DIR), declared)
        notes.append(f"The ablation's runs: {note[0].lower()}{note[1:]}")
    return [n for n in notes if n]


def verdict_table(results: StudyResults, judged: pd.DataFrame) -> pd.DataFrame:
    """The page's verdict table: claim, verdict, effect [interval] vs margin, per-seed deltas, deviations."""
    notes = deviations(results)
    rows = []
    for r in judged.itertuples():
        measured = not pd.isna(r.effect)
        rows.append({"claim": r.claim, "verdict": r.verdict,
                     "effect (claimed direction) [Holm-adjusted interval]": (
                         f"{r.effect:+.3g} [{r.low:+.3g}, {r.high:+.3g}]" if measured else "—"),
                     "margin": f"{r.margin:g}", "per-seed a − b": r.per_seed if measured else "—",
                     "evidence": r.evidence, "deviation beside it": "; ".join(notes.get(r.claim_id, [])) or "—"})
    return pd.DataFrame(rows)


def summary_markdown(results: StudyResults, judged: pd.DataFrame) -> str:
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
    _, header = verdicts.load_claims()
    lines = [
        "## Scope",
        f"Does ColorGAN's Table 1 ordering (ColorGAN > ChromaGAN > ColTran on PSNR and SSIM) hold when the three "
        f"methods are re-implemented on one harness and trained alike? Here: {data.get('num_train', '?')} training "
        f"images ({config.get('num_val_images', 0)} more set aside for validation) and {data.get('num_test', '?')} test "
        f"images from {config['data']} data at {config['image_size']}×{config['image_size']}, "
        f"{len(seeds)} seed{'s' if len(seeds) != 1 else ''} per method ({', '.join(map(str, seeds))}), VGG weights "
        f"`{provenance.get('vgg_weights', config.get('vgg_weights', 'n/a'))}`.",
        "## Claims", "1. ColorGAN outperforms ChromaGAN and ColTran on PSNR and SSIM (Table 1), ChromaGAN ahead of ColTran.",
        "2. The noise branch adds diversity (§1, §2.1).", "3. Each loss term of eq. 1 helps; the encoder skips help (§2.1).",
        f"Each claim, its smallest effect that matters and the reason, and its family are declared in "
        f"`colorgan/claims.toml` (sha256 {header['sha256'][:12]}; declared {header['declared'] or 'undated'}).",
        "## Method",
        "Each method trained for the same number of training images ("
        + ", ".join(f"{METHOD_NAMES.get(m, m)} {budget[m]:,}" for m in methods)
        + f"), {len(runs)} runs in {wall / 60:.0f} min of training on `{provenance.get('device_name', '?')}`. "
        "Every run was scored on its validation images during training; the weights chosen by one rule for every "
        "method were scored on the test split. " + METHOD_TEXT,
        "## Results",
    ]
    for method in psnr.index:
        if method == GRAYSCALE:
            continue
        r = psnr.loc[method]
        base = method.replace(WITH_INPUT_L, "")
        spread = "1 seed" if r["seeds"] == 1 or pd.isna(r["seed_sd"]) else f"seed sd {r['seed_sd']:.2f}"
        line = (f"- {METHOD_NAMES.get(base, base)}{WITH_INPUT_L if base != method else ''}: PSNR "
                f"{r['mean']:.2f} dB ({spread}), {r['delta_gray']:+.2f} dB "
                f"[{r['delta_low']:+.2f}, {r['delta_high']:+.2f}] against the grayscale row")
        if method in ssim.index:
            q = ssim.loc[method]
            line += (f"; SSIM {q['mean']:.4f}, {q['delta_gray']:+.4f} [{q['delta_low']:+.4f}, "
                     f"{q['delta_high']:+.4f}]")
        lines.append(line + ".")
    counts = judged.verdict.value_counts()
    words = (*verdicts.VERDICTS, verdicts.NOT_TESTED, verdicts.NOT_REJUDGED)
    lines.append("Verdicts: " + ", ".join(f"{counts.get(v, 0)} {v}" for v in words if counts.get(v, 0) or
                                          v in verdicts.VERDICTS) + ".")
    lines += basis_notes(results, judged)
    if (judged.verdict == verdicts.NOT_REJUDGED).any():
        lines.append("The study-scale ablation's claims are not re-judged: its per-image evidence was not committed "
                     "when it ran, so its old verdicts (another rule, another vocabulary) are not shown; "
                     "`make ablations PROFILE=study` re-runs it into results/study/ablation/ (about 100 min on a "
                     "2-core CPU).")
    lines += ["## Diversity", diversity_finding(results)]
    lines += ["## Deviations from the paper", *[f"- {d}" for d in protocol_differences(config)],
              "Deviations that bear on a particular verdict are listed beside it in the table below."]
    return "\n\n".join(lines)


METHOD_TEXT = (
    "Every difference is paired on the same test images and seeds. Its 95% interval covers both sources of "
    "variation, training seeds and test images: a two-level bootstrap (resample seeds, then one shared draw of "
    "images; Davison & Hinkley 1997, §3.8; Owen 2007 for crossed seeds x images) gives the standard error, and "
    "a Student-t quantile with Satterthwaite's degrees of freedom the interval (with 2-3 seeds a percentile "
    "interval would be far too narrow). Claims are judged against their declared margin with Holm's correction "
    "within each family: *supported* (interval above 0 and the effect reaches the margin), *contradicted* (the "
    "mirror image), *no practical difference* (interval inside ± the margin), *inconclusive at this scale* "
    "(with the effect the study could detect and the seeds that would decide it).")


# ------------------------------------------------------------------------------------- README


README_BEGIN = "<!-- study results: generated by `make rejudge` from results/study/ (do not edit by hand) -->"
README_END = "<!-- end of generated study results -->"


def readme_block(results: StudyResults, judged: pd.DataFrame) -> str:
    """The README's study table and verdict bullets, every number from the results files (Markdown)."""
    from colorgan.report import METHOD_NAMES

    table = results.table.set_index(["method", "metric"])
    seeds = int(table.loc[("colorgan", "psnr"), "seeds"]) if ("colorgan", "psnr") in table.index else 0
    images = int(table.iloc[0]["images"])
    lines = ["| | PSNR (dB) | paired Δ vs gray | SSIM | paired Δ vs gray | diversity (ΔE*ab) |",
             "|---|---:|---:|---:|---:|---:|"]
    for method in dict.fromkeys(results.table.method):
        base = method.replace(WITH_INPUT_L, "")
        name = METHOD_NAMES.get(base, base) + (WITH_INPUT_L if base != method else "")
        psnr, ssim = table.loc[(method, "psnr")], table.loc[(method, "ssim")]
        spread = "" if pd.isna(psnr["seed_sd"]) else f" ± {psnr['seed_sd']:.2f}"
        diversity = table.loc[(method, "diversity"), "mean"] if (method, "diversity") in table.index else float("nan")
        if method == GRAYSCALE:
            lines.append(f"| {name} | {psnr['mean']:.2f} | — | {ssim['mean']:.4f} | — | — |")
            continue
        lines.append(f"| {name} | {psnr['mean']:.2f}{spread} | {_signed(psnr['delta_gray'], psnr['delta_low'], psnr['delta_high'], 2)} "
                     f"| {ssim['mean']:.4f} | {_signed(ssim['delta_gray'], ssim['delta_low'], ssim['delta_high'], 4)} "
                     f"| {diversity:.3f} |")
    lines += ["", f"(mean over {seeds} seed{'s' if seeds != 1 else ''} ± seed SD; Δ: paired over the {images} test "
                  "images and the seeds, 95% interval over both, `colorgan.verdicts`; diversity: mean ΔE*ab between "
                  f"noise samples, {DIVERSITY_NOTE}.)", ""]
    notes = deviations(results)
    for r in judged.itertuples():
        if pd.isna(r.effect):
            lines.append(f"- {r.claim}: **{r.verdict}** ({r.evidence}).")
            continue
        decided = f"; {r.seeds_to_decide} seeds would decide it" if r.verdict == verdicts.INCONCLUSIVE and \
            not pd.isna(r.seeds_to_decide) and not str(r.seeds_to_decide).startswith(">") else (
            "; more seeds alone would not decide it on these test images" if str(r.seeds_to_decide).startswith(">")
            else "")
        effect = r.comparison if r.direction == "higher" else f"−({r.comparison})"
        line = (f"- {r.claim}: **{r.verdict}** — {effect} = {_signed(r.effect, r.low, r.high, 3)} "
                f"(margin {r.margin:g}, {r.level:.1%} Holm-adjusted interval; {r.comparison} per seed "
                f"{r.per_seed.replace('-', '−')}){decided}.")
        if notes.get(r.claim_id):
            line += " *Beside it:* " + "; ".join(notes[r.claim_id]) + "."
        lines.append(line)
    lines += [f"- {note}" for note in basis_notes(results, judged)]
    return "\n".join([README_BEGIN, *lines, README_END])


def _signed(value: float, low: float, high: float, digits: int) -> str:
    """'+0.68 [+0.35, +1.01]' with a true minus sign."""
    return f"{value:+.{digits}f} [{low:+.{digits}f}, {high:+.{digits}f}]".replace("-", "−")


def update_readme(readme: Path | str, out_dir: Path | str) -> bool:
    """Replace the README's generated study block with one computed from ``out_dir``. Returns True if changed.

    Raises:
        ValueError: the README lacks the block's markers (add README_BEGIN and README_END where it goes).
    """
    readme = Path(readme)
    text = readme.read_text()
    if README_BEGIN not in text or README_END not in text:
        raise ValueError(f"{readme}: no generated study block; put the lines {README_BEGIN!r} and {README_END!r} "
                         "where the study's results go")
    results = load_results(out_dir)
    judged = pd.read_csv(Path(out_dir) / "verdicts.csv")
    head, rest = text.split(README_BEGIN, 1)
    new = head + readme_block(results, judged) + rest.split(README_END, 1)[1]
    readme.write_text(new)
    return new != text
