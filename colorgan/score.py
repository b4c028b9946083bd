"""Score a folder of colorized images made by any tool against ground truth, with the runs' metric code.

Images are matched by their path below each folder without the extension (``a/photo.png`` with
``a/photo.jpg``). The prediction is scored as it is (its L channel is never altered); the ground
truth is brought to the prediction's size by the protocol (``testset.prepare``: 'resize' or
'center-crop'). Every prediction must have the same size (the most common one): metrics at
different resolutions are not comparable, and FID needs one size. Files that cannot be scored are
listed, one line each, and the rest are scored.
"""

from __future__ import annotations

import json
import logging
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import torch
from PIL import Image

from colorgan import runtime, testset
from colorgan.data import ImageReadError, read_image
from colorgan.feature_nets import FeatureNets
from colorgan.metrics import METRIC_PROTOCOL, Scorer, summarize, with_set_metrics

log = logging.getLogger(__name__)

SCORE_BATCH = 16  # images per metric call (memory, not numbers: every metric is per image)


@dataclass
class ScoreResult:
    per_image: pd.DataFrame  # one row per scored image: method, image, psnr, ssim, ...
    summary: pd.DataFrame  # one row: means with 95% intervals, FID (or why not)
    problems: list[str] = field(default_factory=list)  # one line per file that was not scored
    record: dict[str, Any] = field(default_factory=dict)  # provenance, as written to summary.json


def _prediction_header(path: Path) -> tuple[int, int]:
    """A prediction's (width, height) from its header, or ImageReadError.

    CMYK is refused: its RGB values depend on a colour profile, so it cannot be scored like the others.
    """
    try:
        with Image.open(path) as img:
            mode, size = img.mode, img.size
    except (OSError, ValueError, SyntaxError):
        read_image(path)  # raises ImageReadError with the reason (empty, not an image, ...)
        raise
    if mode == "CMYK":
        raise ImageReadError(path, "CMYK image: its RGB values depend on a colour profile, so it cannot be scored "
                                   "like the others; save the predictions as RGB (PNG)")
    return size


def match(pred_dir: Path, gt_dir: Path) -> tuple[dict[str, tuple[Path, Path]], list[str]]:
    """Pairs (prediction, ground truth) by image key, and one line per file that has no partner or is not an image."""
    pred_files, pred_others = testset.walk(pred_dir)
    gt_files, _ = testset.walk(gt_dir)
    problems = [f"not an image file (extension {p.suffix or 'none'}): {p}" for p in pred_others]
    preds, gts = _by_key(pred_files, pred_dir, problems), _by_key(gt_files, gt_dir, problems)
    problems += [f"missing prediction for ground truth {gts[k]}" for k in sorted(gts.keys() - preds.keys())]
    problems += [f"extra prediction with no ground truth (no {gt_dir}/{k}.*): {preds[k]}"
                 for k in sorted(preds.keys() - gts.keys())]
    return {k: (preds[k], gts[k]) for k in sorted(preds.keys() & gts.keys())}, problems


def _by_key(files: list[Path], root: Path, problems: list[str]) -> dict[str, Path]:
    keyed: dict[str, Path] = {}
    for path in files:
        key = testset.image_key(path, root)
        if key in keyed:
            problems.append(f"two files for image {key!r}: {keyed[key]} and {path}; scored the first")
            continue
        keyed[key] = path
    return keyed


def score_folders(pred_dir: Path | str, gt_dir: Path | str, name: str | None = None, protocol: str = "resize",
                  nets: FeatureNets | None = None, num_bootstrap: int = 1000, seed: int = 0,
                  device: torch.device = torch.device("cpu")) -> ScoreResult:
    """Score every prediction under ``pred_dir`` against its ground truth under ``gt_dir``.

    Args:
        name: the method's name in the tables (default: the prediction folder's name).
        protocol: how the ground truth is brought to the prediction's size ('resize' or 'center-crop').
    Returns:
        ScoreResult; ``problems`` lists every file left out, and the per-image rows hold the rest.
    Raises:
        ValueError: no pair could be scored at all.
    """
    testset.check_protocol(protocol)
    pred_dir, gt_dir = Path(pred_dir).expanduser(), Path(gt_dir).expanduser()
    name = name or pred_dir.resolve().name
    pairs, problems = match(pred_dir, gt_dir)
    sizes: dict[str, tuple[int, int]] = {}
    for key, (pred_path, _) in pairs.items():
        try:
            sizes[key] = _prediction_header(pred_path)
        except (ImageReadError, OSError) as err:
            problems.append(f"cannot score prediction {err}")
    if not sizes:
        raise ValueError(f"nothing to score: no prediction under {pred_dir} could be paired with a readable ground "
                         f"truth under {gt_dir}" + (f"; first problem: {problems[0]}" if problems else ""))
    size = Counter(sizes.values()).most_common(1)[0][0]
    scorer, scored = Scorer(nets), []
    batch: list[tuple[str, np.ndarray, np.ndarray]] = []  # (key, prediction (3, H, W), ground truth (3, H, W))

    def flush() -> None:
        if batch:
            pred = torch.from_numpy(np.stack([b[1] for b in batch])).float().div(255).to(device)
            gt = torch.from_numpy(np.stack([b[2] for b in batch])).float().div(255).to(device)
            scorer.add(name, [b[0] for b in batch], pred, gt)
            scored.extend(b[0] for b in batch)
            batch.clear()

    for key, pred_size in sizes.items():
        pred_path, gt_path = pairs[key]
        if pred_size != size:
            problems.append(f"different size: {pred_path} is {pred_size[0]}x{pred_size[1]}, the other predictions "
                            f"are {size[0]}x{size[1]}; resize every prediction alike")
            continue
        try:
            pred = np.asarray(read_image(pred_path).convert("RGB"), dtype=np.uint8).transpose(2, 0, 1)
        except ImageReadError as err:
            problems.append(f"cannot score prediction {err}")
            continue
        try:
            gt = testset.prepare(read_image(gt_path), size, protocol)
        except ImageReadError as err:
            problems.append(f"unreadable ground truth: {err}")
            continue
        batch.append((key, pred, gt))
        if len(batch) == SCORE_BATCH:
            flush()
    flush()
    if not scored:
        raise ValueError(f"nothing to score under {pred_dir}: {problems[0] if problems else 'no pairs'}")
    per_image = scorer.per_image()
    summary = with_set_metrics(summarize(per_image, num_bootstrap, seed), scorer.set_metrics())
    pred_files = [pairs[k][0] for k in scored]
    gt_files = [pairs[k][1] for k in scored]
    record = {
        "kind": "external outputs",
        "method": name,
        "predictions": str(pred_dir.resolve()),
        "ground_truth": str(gt_dir.resolve()),
        "num_images": len(scored),
        "image_size": list(size),
        "protocol": protocol,
        "predictions_digest": testset.file_list_digest(pred_files, pred_dir),
        "ground_truth_digest": testset.file_list_digest(gt_files, gt_dir),
        "problems": problems,
        "fid_network": scorer.nets.fid_label,
        "lpips_network": scorer.nets.lpips_label,
        "provenance": f"external outputs, folder {pred_dir}, {len(scored)} images",
    }
    for line in problems:
        log.debug("not scored: %s", line)  # cli.py prints the lines
    return ScoreResult(per_image, summary, problems, record)


def save_score(result: ScoreResult, out_dir: Path | str) -> Path:
    """Write per_image.csv, summary.csv and summary.json (with provenance) into ``out_dir``; returns it."""
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    result.per_image.to_csv(out_dir / "per_image.csv", index=False)
    result.summary.to_csv(out_dir / "summary.csv", index=False)
    record = {**result.record, "metric_protocol": METRIC_PROTOCOL,
              "summary": json.loads(result.summary.to_json(orient="records")),
              **runtime.provenance(result.record.get("seed", 0), torch.device("cpu"))}
    runtime.write_json(out_dir / "summary.json", record)
    return out_dir
