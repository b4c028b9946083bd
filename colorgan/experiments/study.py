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
(``colorgan.experiments.verdicts.two_level_interval``), and every claim is judged by ``colorgan.experiments.verdicts`` against
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

from colorgan.common import runtime
from colorgan.common.params import Params, field_default, opt, validate_fields
from colorgan.common.published import METHOD_NAMES, PAPER_TABLE1
from colorgan.evaluation.evaluate import metric_code_digest
from colorgan.experiments import verdicts
from colorgan.experiments.ablation import ABLATION_DIR, ABLATION_EVIDENCE, ABLATION_TABLE_FILE, NUM_DIVERSITY_SAMPLES
from colorgan.experiments.aggregate import study_table
from colorgan.experiments.executor import Job, train_runs
from colorgan.experiments.executor_config import ExecutorConfig
from colorgan.measures import metrics
from colorgan.measures.metrics import GRAYSCALE, Colorizer
from colorgan.method.color import model_to_rgb, rgb_to_model
from colorgan.method.config import RunConfig
from colorgan.method.data import load_split
from colorgan.training.run_store import RUN_METADATA_FILE, in_store, save_run_metadata, train_in_store
from colorgan.training.train import StepFactory, load_trained

log = logging.getLogger(__name__)

Methods = dict[str, tuple[type[RunConfig], StepFactory]]  # e.g. cli.METHODS

# ColTran returns RGB, so its luminance errors count against it alone; this row pastes the input L back, as
# ColorGAN and ChromaGAN do by construction
WITH_INPUT_L = " (+ input L)"
PER_IMAGE_FILE = "per_image_metrics.csv"  # the study's per-image evidence, in its results folder
STUDY_TABLE_FILE = "study_table.csv"  # every method and metric with its intervals

# The study's checkpoint rules: which weights of each run are scored on the test split (one rule for all methods).
STUDY_CHECKPOINTS = ("best_val", "last")


@dataclass(frozen=True)
class StudyConfig(Params):
    """The study: every method x seeds on one split, each run seeing the same number of training images.

    Method names and their fields are checked against the registered methods by ``run_configs`` (the
    config knows no methods); everything else is checked here.
    """

    methods: dict = opt({"colorgan": {}, "chromagan": {}, "coltran": {}},
                        "method -> its own config fields (widths, learning rates, batch size); not the budget")
    base: dict = opt({"num_val_images": 200, "val_every": 100},
                     "config fields every method shares (data, image size, validation images, amp, ...)")
    seeds: list = opt([0, 1, 2], "training seeds per method (3 or more for a spread worth reading)")
    num_images_seen: int = opt(16000, "training images each run sees, the same for every method "
                                      "(steps = num_images_seen / batch_size)", min=1)
    allow_unequal_budget: bool = opt(False, "accept methods whose settings make them see different numbers of "
                                            "training images (Table 1 then states each one's count)")
    checkpoint: str = opt("best_val", "the weights scored on the test split, by one rule for every method: "
                                      "best validation PSNR, or the last", choices=STUDY_CHECKPOINTS)
    num_diversity_samples: int = opt(NUM_DIVERSITY_SAMPLES, "colorizations per test image for the diversity column "
                                                             "(0 = none; the ablation's count)", min=0)
    num_fig2_images: int = opt(4, "test images in Fig. 2", min=1)
    num_bootstrap: int = opt(2000, "bootstrap resamples of test images for every interval", min=100)
    out_dir: str = opt("results/study", "where tables and figures go")
    runs_dir: str = opt("results/runs", "the run store: every run once, by config and code hash (colorgan.training.run_store)")
    device: str = opt("auto", "auto (CUDA when present), cpu, cuda or cuda:N")

    def __post_init__(self) -> None:
        validate_fields(self)
        if not self.methods or not all(isinstance(v, dict) for v in self.methods.values()):
            raise ValueError(f"methods: expected a non-empty dict of method -> dict of config fields; got {self.methods!r}")
        if not self.seeds or not all(isinstance(s, int) and not isinstance(s, bool) and s >= 0 for s in self.seeds):
            raise ValueError(f"seeds: expected a non-empty list of non-negative ints; got {self.seeds!r}")
        if len(set(self.seeds)) != len(self.seeds):
            raise ValueError(f"seeds: {self.seeds} repeats a seed; each seed is one more independent run")
        own = ("num_epochs", "seed") if self.allow_unequal_budget else ("num_steps", "num_epochs", "seed")
        budget = [f for f in own if f in self.base or any(f in v for v in self.methods.values())]
        if budget:
            raise ValueError(f"{budget[0]}: set by the study (num_images_seen and seeds), not per method or in base"
                             + ("; a method's own num_steps needs allow_unequal_budget=True" if budget[0] == "num_steps"
                                else ""))
        if self.checkpoint == "best_val" and not self.base.get("num_val_images"):
            raise ValueError("checkpoint: 'best_val' needs validation images; set base['num_val_images'] > 0 "
                             "or checkpoint='last'")


# ----------------------------------------------------------------------------------------- runs


def run_configs(cfg: StudyConfig, methods: Methods) -> dict[tuple[str, int], RunConfig]:
    """Every (method, seed) as a validated config with its folder in the run store (``cfg.runs_dir``).

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
            configs[(name, seed)] = in_store(run, cfg.runs_dir)
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


def run_study(cfg: StudyConfig, methods: Methods, executor: ExecutorConfig | None = None) -> pd.DataFrame:
    """Train (or reuse) every (method, seed), score the chosen weights on the test split.

    ``executor`` trains the runs first, in parallel workers or as Slurm jobs (``colorgan.experiments.executor``); without
    one they train here, one after another. Either way a run in the store is reused, never trained twice.

    Returns:
        Per-image metrics: columns method, seed, image, ``aggregate.STUDY_METRICS``, checkpoint_step, run_dir; the
        grayscale row once (seed -1), and ColTran also with the input L pasted back.
    """
    frames, have_gray, started = [], False, time.time()
    configs = run_configs(cfg, methods)
    if executor is not None:
        train_runs([Job(f"{name} seed {seed}", c, methods[name][1]) for (name, seed), c in configs.items()], executor)
    for (name, seed), run_cfg in configs.items():
        log.info("study: %s, seed %d -> %s", name, seed, run_cfg.run_dir)
        train_in_store(run_cfg, methods[name][1])
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


# ------------------------------------------------------------------------------------- verdicts


def judge_claims(results: StudyResults | pd.DataFrame, num_resamples: int = 2000, seed: int = 0) -> pd.DataFrame:
    """Every claim of ``claims.toml`` judged by ``colorgan.experiments.verdicts`` on a study's evidence (and its ablation's).

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


# ------------------------------------------------------------------------------------- outputs


def wide_table(table: pd.DataFrame, budgets: dict[str, int] | None = None) -> pd.DataFrame:
    """Readable Table 1: per method, each metric as 'mean ± seed sd [image CI]' and 'Δ gray [CI]' (* = excludes 0)."""
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
    """The study's PSNR/SSIM in the column names of ``table1.table1`` (what the book's front page reads):
    per method the mean over seeds and the 95% bootstrap interval over images, and the paper's values."""
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
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    paths = write_tables(table, judged, budgets, out_dir)
    paths.append(out_dir / PER_IMAGE_FILE)
    per_image.to_csv(paths[-1], index=False)
    runs = list(dict.fromkeys(per_image.loc[per_image.method != GRAYSCALE, "run_dir"]))
    paths.append(save_run_metadata(runs, out_dir.name, out_dir))
    return paths


def write_tables(table: pd.DataFrame, judged: pd.DataFrame, budgets: dict[str, int], out_dir: Path) -> list[Path]:
    """study_table.csv, table1.md, table1.csv and verdicts.csv: everything computed from the per-image metrics."""
    from colorgan.common.formatting import table_markdown

    paths = [out_dir / STUDY_TABLE_FILE, out_dir / "table1.md", out_dir / "table1.csv", out_dir / "verdicts.csv"]
    table.to_csv(paths[0], index=False)
    paths[1].write_text(table_markdown(wide_table(table, budgets)))
    table1_columns(table).to_csv(paths[2], index=False)
    judged.to_csv(paths[3], index=False)
    return paths


def rejudge(out_dir: Path | str, num_resamples: int = 2000) -> list[Path]:
    """Recompute a study's tables and verdicts from its committed per-image metrics (no training, no scoring).

    ``make rejudge`` runs it on results/study: the committed study judged by today's claims and rule. Its
    ablation (``out_dir/ablation``), when its per-image evidence is there, is re-judged and re-drawn as well.
    """
    from colorgan.experiments import ablation

    if (Path(out_dir) / ABLATION_DIR / ABLATION_EVIDENCE).is_file():
        ablation.rejudge(Path(out_dir) / ABLATION_DIR, num_resamples)
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
    missing = [n for n in (STUDY_TABLE_FILE, PER_IMAGE_FILE, RUN_METADATA_FILE) if not (out_dir / n).is_file()]
    if missing:
        raise FileNotFoundError(f"{out_dir} holds no study results ({', '.join(missing)} missing); run "
                                "`make reproduce PROFILE=study` first")
    ablation_dir = out_dir / ABLATION_DIR
    table_path = next((p for p in (ablation_dir / ABLATION_TABLE_FILE, out_dir / ABLATION_TABLE_FILE) if p.is_file()),
                      None)
    evidence = ablation_dir / ABLATION_EVIDENCE
    metadata = ablation_dir / RUN_METADATA_FILE
    return StudyResults(out_dir, pd.read_csv(out_dir / STUDY_TABLE_FILE), pd.read_csv(out_dir / PER_IMAGE_FILE),
                        json.loads((out_dir / RUN_METADATA_FILE).read_text())["runs"],
                        pd.read_csv(table_path) if table_path else None,
                        pd.read_csv(evidence) if evidence.is_file() else None,
                        json.loads(metadata.read_text())["runs"] if metadata.is_file() else None)
