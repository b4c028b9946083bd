"""Score a folder of colorized images made by any tool against ground truth, with the runs' metric code.

Images are matched by their path below each folder without the extension (``a/photo.png`` with
``a/photo.jpg``). The prediction is scored as it is (its L channel is never altered); the ground
truth is brought to the prediction's size by the protocol (``testset.prepare``: 'resize' or
'center-crop'). Every prediction must have the same size (the most common one): metrics at
different resolutions are not comparable, and FID needs one size. Files that cannot be scored are
listed, one line each, and the rest are scored.

Beside the tool's row, every score has the grayscale reference (ab = 0: the ground truth's own L at the
prediction's size and protocol), and the tool's paired difference to it with a 95% interval: the row that
says whether the tool beats doing nothing. A folder written by ``colorgan colorize`` carries a
``colorize.json`` (which run made it, at what size and protocol); the score names its row from it and
warns when it was made at another size or protocol than it is scored at.
"""

from __future__ import annotations

import hashlib
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

from colorgan.common import runtime
from colorgan.evaluation.inference import COLORIZE_RECORD
from colorgan.measures import testset
from colorgan.measures.feature_nets import FeatureNets
from colorgan.measures.metrics import GRAYSCALE, METRIC_PROTOCOL, Scorer, paired_bootstrap, summarize, with_set_metrics
from colorgan.method.color import gray_rgb, rgb_to_model
from colorgan.method.data import ImageReadError, read_image

log = logging.getLogger(__name__)

SCORE_BATCH = 16  # images per metric call (memory, not numbers: every metric is per image)
# per-image columns whose paired difference to the grayscale reference the summary carries
DELTA_METRICS = ("psnr", "ssim", "ciede2000", "lpips")


@dataclass
class ScoreResult:
    per_image: pd.DataFrame  # one row per scored image: method, image, psnr, ssim, ...
    summary: pd.DataFrame  # one row: means with 95% intervals, FID (or why not)
    problems: list[str] = field(default_factory=list)  # one line per file that was not scored
    record: dict[str, Any] = field(default_factory=dict)  # provenance, as written to summary.json
    warnings: list[str] = field(default_factory=list)  # the outputs' colorize.json disagrees with this scoring


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
    # colorize's own record of the outputs is no stray file
    problems = [f"not an image file (extension {p.suffix or 'none'}): {p}" for p in pred_others
                if p != pred_dir / COLORIZE_RECORD]
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


def ground_truth_digest(files: dict[str, Path]) -> str:
    """SHA-256 over each scored image's key and the SHA-256 of its ground-truth file, in key order.

    ``files``: image key ('a/photo', as ``testset.image_key``) -> ground-truth file. The order does not
    depend on extensions or on which folder listed them, so a ``score`` and a run evaluated on the same
    photos (``table1.table1``'s test_root) get the same digest.
    """
    digest = hashlib.sha256()
    for key in sorted(files):
        digest.update(key.encode() + b"\0" + hashlib.sha256(Path(files[key]).read_bytes()).digest())
    return digest.hexdigest()


def scored_set(files: dict[str, Path], size: tuple[int, int], protocol: str) -> dict[str, Any]:
    """What a score was computed on: image size (width, height), protocol, image count, ground-truth digest.

    Two rows are comparable only when these agree (``table1.table1`` sets any other row apart).
    """
    return {"image_size": list(size), "protocol": protocol, "num_images": len(files),
            "ground_truth_digest": ground_truth_digest(files)}


def read_colorize_record(pred_dir: Path) -> dict[str, Any] | None:
    """The ``colorize.json`` that ``colorgan colorize`` wrote into ``pred_dir``, or None (another tool's outputs)."""
    path = Path(pred_dir) / COLORIZE_RECORD
    if not path.is_file():
        return None
    try:
        return json.loads(path.read_text())
    except ValueError as err:
        log.warning("%s is not valid JSON (%s); scoring without it", path, err)
        return None


def colorize_mismatches(record: dict[str, Any], size: tuple[int, int], protocol: str) -> list[str]:
    """One line per way the outputs were made otherwise than they are scored (size, protocol)."""
    made, lines = record.get("protocol"), []
    if made is None:
        lines.append(f"the outputs were colorized at full resolution (colorize without --protocol) but are scored "
                     f"at {size[0]}x{size[1]} with protocol {protocol!r}; for numbers comparable with `evaluate`, "
                     f"run colorize with --protocol {protocol}")
    elif made != protocol:
        lines.append(f"the outputs were colorized with --protocol {made} but are scored with --protocol {protocol}: "
                     f"the ground truth is then prepared otherwise than the model saw it; score with --protocol {made}")
    model_size = record.get("image_size")
    if made is not None and model_size is not None and [model_size, model_size] != list(size):
        lines.append(f"the outputs were colorized at {model_size}x{model_size} but are scored at {size[0]}x{size[1]}")
    return lines


def gray_deltas(per_image: pd.DataFrame, name: str, num_resamples: int, seed: int) -> dict[str, float]:
    """The tool's paired difference to the grayscale reference per metric, over the same images, with a 95%
    interval (``metrics.paired_bootstrap``): {'psnr_vs_gray': d, 'psnr_vs_gray_low': lo, 'psnr_vs_gray_high': hi, ...}.
    """
    tool = per_image[per_image.method == name].set_index("image")
    gray = per_image[per_image.method == GRAYSCALE].set_index("image").loc[tool.index]
    deltas = {}
    for column in DELTA_METRICS:
        if column in tool and tool[column].notna().all():
            mean, low, high = paired_bootstrap(tool[column].to_numpy(), gray[column].to_numpy(), num_resamples, seed)
            deltas.update({f"{column}_vs_gray": mean, f"{column}_vs_gray_low": low, f"{column}_vs_gray_high": high})
    return deltas


def score_folders(pred_dir: Path | str, gt_dir: Path | str, name: str | None = None, protocol: str = "resize",
                  nets: FeatureNets | None = None, num_bootstrap: int = 1000, seed: int = 0,
                  device: torch.device = torch.device("cpu")) -> ScoreResult:
    """Score every prediction under ``pred_dir`` against its ground truth under ``gt_dir``.

    Args:
        name: the method's name in the tables (default: the name in the folder's colorize.json, else the
            prediction folder's name).
        protocol: how the ground truth is brought to the prediction's size ('resize' or 'center-crop').
    Returns:
        ScoreResult; ``problems`` lists every file left out, and the per-image rows hold the rest: the tool's
        and the grayscale reference's (ab = 0) for the same images. The summary has both rows; the tool's
        row also carries its paired difference to gray (``<metric>_vs_gray`` with ``_low``/``_high``).
    Raises:
        ValueError: no pair could be scored at all.
    """
    testset.check_protocol(protocol)
    pred_dir, gt_dir = Path(pred_dir).expanduser(), Path(gt_dir).expanduser()
    made_by = read_colorize_record(pred_dir)
    name = name or (made_by or {}).get("name") or pred_dir.resolve().name
    if name == GRAYSCALE:
        raise ValueError(f"--name: {GRAYSCALE!r} is the grayscale reference's row in every score; choose another name")
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
            keys = [b[0] for b in batch]
            scorer.add(name, keys, pred, gt)
            # the reference at the prediction's size and protocol: the ground truth's own L, ab = 0
            scorer.add(GRAYSCALE, keys, gray_rgb(rgb_to_model(gt)[0]), gt)
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
    # rows grouped by method (the tool's images, then the grayscale reference's), as ``evaluate`` writes them
    per_image = pd.concat([per_image[per_image.method == name], per_image[per_image.method == GRAYSCALE]],
                          ignore_index=True)
    summary = with_set_metrics(summarize(per_image, num_bootstrap, seed), scorer.set_metrics())
    deltas = gray_deltas(per_image, name, num_bootstrap, seed)
    for column, value in deltas.items():
        summary[column] = [value if method == name else np.nan for method in summary.method]
    warnings = colorize_mismatches(made_by, size, protocol) if made_by else []
    for line in warnings:
        log.debug("%s: %s", pred_dir, line)  # cli.py prints the lines
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
        "scored_set": scored_set({k: pairs[k][1] for k in scored}, size, protocol),
        "vs_gray": deltas,
        "colorize": made_by,
        "warnings": warnings,
        "problems": problems,
        "fid_network": scorer.nets.fid_label,
        "lpips_network": scorer.nets.lpips_label,
        "provenance": f"external outputs, folder {pred_dir}, {len(scored)} images at {size[0]}x{size[1]}, "
                      f"protocol {protocol}",
    }
    for line in problems:
        log.debug("not scored: %s", line)  # cli.py prints the lines
    return ScoreResult(per_image, summary, problems, record, warnings)


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
