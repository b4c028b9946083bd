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
from colorgan.metrics import GRAYSCALE, evaluate, summarize
from colorgan.train import StepFactory, load_trained, step_provenance

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
        "image_size": cfg.image_size,
        "metric_protocol": "RGB quantised to 8 bit, PSNR/SSIM (piq, data_range=1, SSIM 11x11 Gaussian σ=1.5)",
        "summary": json.loads(summary.to_json(orient="records")),
        **runtime.provenance(cfg.seed, torch_device, data={k: v for k, v in data_info.items() if k != "skipped"},
                             **step_provenance(step)),
    }
    runtime.write_json(out / "summary.json", record)
    return per_image, summary


def format_summary(summary: pd.DataFrame) -> str:
    """Plain-text table: method, PSNR and SSIM as 'mean [low, high]', image count."""
    lines = [f"{'method':<22} {'PSNR (dB) [95% CI]':<26} {'SSIM [95% CI]':<26} images"]
    for row in summary.itertuples():
        lines.append(f"{row.method:<22} {row.psnr:7.3f} [{row.psnr_low:.3f}, {row.psnr_high:.3f}]   "
                     f"{row.ssim:6.4f} [{row.ssim_low:.4f}, {row.ssim_high:.4f}]  {row.num_images}")
    return "\n".join(lines)


def training_seconds(run_dir: Path | str) -> float:
    """Training wall time of a run, summed from its metrics.jsonl (sec_per_step × steps of each log line)."""
    path = Path(run_dir) / "metrics.jsonl"
    if not path.is_file():
        raise FileNotFoundError(f"{path} does not exist; is {run_dir} a trained run folder?")
    seconds, previous = 0.0, 0
    for line in path.read_text().splitlines():
        if line.strip():
            record = json.loads(line)
            seconds += record["sec_per_step"] * (record["step"] - previous)
            previous = record["step"]
    return seconds


def summaries_table(run_dirs: list[Path | str]) -> pd.DataFrame:
    """One row per evaluated run (its method's scores) plus the grayscale reference, from the runs' files.

    Reads ``eval/summary.json`` (scores, checkpoint step, provenance), ``config.json`` and ``metrics.jsonl``.
    The grayscale row is taken from the first run; all runs must share its test set (same image count).

    Returns:
        Columns: method, psnr, psnr_low, psnr_high, ssim, ssim_low, ssim_high, num_images, vgg_weights,
        class_kl, steps, train_minutes, image_size, run_dir.
    """
    rows, grayscale = [], None
    for run_dir in map(Path, run_dirs):
        summary_path = run_dir / "eval" / "summary.json"
        if not summary_path.is_file():
            raise FileNotFoundError(f"{summary_path} does not exist; run `colorgan evaluate {run_dir}` first")
        record = json.loads(summary_path.read_text())
        method = json.loads((run_dir / "config.json").read_text())["method"]
        scores = {row["method"]: row for row in record["summary"]}
        metric_columns = ("psnr", "psnr_low", "psnr_high", "ssim", "ssim_low", "ssim_high", "num_images")
        rows.append({**{k: scores[method][k] for k in ("method", *metric_columns)},
                     "vgg_weights": record.get("vgg_weights", "n/a"), "class_kl": record.get("class_kl", "n/a"),
                     "steps": record["checkpoint_step"], "train_minutes": training_seconds(run_dir) / 60,
                     "image_size": record["image_size"], "run_dir": str(run_dir)})
        gray = {k: scores[GRAYSCALE][k] for k in ("method", *metric_columns)}
        if grayscale is None:
            grayscale = {**gray, "image_size": record["image_size"], "run_dir": str(run_dir)}
        elif gray["num_images"] != grayscale["num_images"]:
            raise ValueError(f"{run_dir} was scored on {gray['num_images']} test images, {grayscale['run_dir']} on "
                             f"{grayscale['num_images']}: a table needs one test set")
    table = pd.DataFrame(rows + [grayscale])
    return table.astype({"steps": "Int64"})  # integers, with <NA> on the grayscale row


def markdown_table(table: pd.DataFrame) -> str:
    """A :func:`summaries_table` as Markdown, metrics as 'mean [low, high]' (95% bootstrap intervals)."""
    header = ["method", "PSNR (dB) [95% CI]", "SSIM [95% CI]", "test images", "vgg_weights", "class KL",
              "steps", "train min", "image size"]
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    for row in table.itertuples():
        cells = [row.method, f"{row.psnr:.3f} [{row.psnr_low:.3f}, {row.psnr_high:.3f}]",
                 f"{row.ssim:.4f} [{row.ssim_low:.4f}, {row.ssim_high:.4f}]", _cell(row.num_images),
                 _cell(row.vgg_weights), _cell(row.class_kl), _cell(row.steps, ".0f"), _cell(row.train_minutes, ".1f"),
                 _cell(row.image_size)]
        lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines)


def _cell(value: Any, fmt: str = "") -> str:
    """A table cell; missing values (the grayscale row has no steps or weights) show as a dash."""
    return "—" if pd.isna(value) else format(value, fmt)
