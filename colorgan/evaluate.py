"""Score a trained run on its test split: per-image CSV, per-method summary with 95% intervals, provenance."""

from __future__ import annotations

import json
import logging
from pathlib import Path
from typing import Any

import pandas as pd
import torch

from colorgan import runtime
from colorgan.config import RunConfig
from colorgan.data import load_split
from colorgan.metrics import evaluate, summarize
from colorgan.train import CheckpointDir, StepFactory, load_trained, step_provenance

log = logging.getLogger(__name__)


def evaluate_run(run_dir: Path | str, config_cls: type[RunConfig], build_step: StepFactory,
                 device: str = "auto", batch_size: int = 16, num_diversity_samples: int = 0,
                 cache_dir: Path = Path(".cache/images")) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Evaluate a run's newest checkpoint on the test split of its own config.

    Writes ``<run_dir>/eval/per_image.csv``, ``summary.csv`` and ``summary.json`` (with provenance:
    checkpoint step, seed, commit, device, data, VGG weights).

    Returns:
        (per_image, summary): one row per (method, image); one row per method with mean and 95% CI.
        The grayscale reference (ab = 0) is always a row of both.
    """
    run_dir = Path(run_dir)
    torch_device = runtime.select_device(device)
    cfg, step, checkpoint_step = load_trained(run_dir, config_cls, build_step, torch_device)
    runtime.seed_everything(cfg.seed)
    _, test, data_info = load_split(cfg, cache_dir)
    per_image = evaluate(step.colorize, test, torch_device, cfg.method, batch_size, cfg.seed,
                         num_diversity_samples)
    summary = summarize(per_image, cfg.num_bootstrap, cfg.seed)
    out = run_dir / "eval"
    out.mkdir(exist_ok=True)
    per_image.to_csv(out / "per_image.csv", index=False)
    summary.to_csv(out / "summary.csv", index=False)
    record: dict[str, Any] = {
        "run_dir": str(run_dir),
        "checkpoint_step": checkpoint_step,
        "num_diversity_samples": num_diversity_samples,
        "image_size": cfg.image_size,
        "metric_protocol": "RGB quantised to 8 bit, PSNR/SSIM (piq, data_range=1, SSIM 11x11 Gaussian σ=1.5)",
        "summary": json.loads(summary.to_json(orient="records")),
        **runtime.provenance(cfg.seed, torch_device, data={k: v for k, v in data_info.items() if k != "skipped"},
                             **step_provenance(step)),
    }
    runtime.write_json(out / "summary.json", record)
    return per_image, summary


def evaluate_or_reuse(run_dir: Path | str, config_cls: type[RunConfig], build_step: StepFactory,
                      device: str = "auto", batch_size: int = 16, num_diversity_samples: int = 0,
                      cache_dir: Path = Path(".cache/images")) -> tuple[pd.DataFrame, pd.DataFrame]:
    """``evaluate_run``, unless ``eval/`` already scores the newest checkpoint with the same settings."""
    out = Path(run_dir) / "eval"
    if (out / "summary.json").is_file() and (out / "per_image.csv").is_file():
        record = json.loads((out / "summary.json").read_text())
        newest = CheckpointDir(Path(run_dir) / "checkpoints").paths()
        current = bool(newest) and int(newest[-1].stem.split("_")[1]) == record["checkpoint_step"]
        if current and record.get("num_diversity_samples") == num_diversity_samples:
            return pd.read_csv(out / "per_image.csv"), pd.read_csv(out / "summary.csv")
    return evaluate_run(run_dir, config_cls, build_step, device, batch_size, num_diversity_samples, cache_dir)


def format_summary(summary: pd.DataFrame) -> str:
    """Plain-text table: method, PSNR and SSIM as 'mean [low, high]', image count."""
    lines = [f"{'method':<22} {'PSNR (dB) [95% CI]':<26} {'SSIM [95% CI]':<26} images"]
    for row in summary.itertuples():
        lines.append(f"{row.method:<22} {row.psnr:7.3f} [{row.psnr_low:.3f}, {row.psnr_high:.3f}]   "
                     f"{row.ssim:6.4f} [{row.ssim_low:.4f}, {row.ssim_high:.4f}]  {row.num_images}")
    return "\n".join(lines)
