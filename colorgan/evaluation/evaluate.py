"""Score a trained run on its test split or on any folder of photos: per-image CSV, per-method summary
with 95% intervals, set-level FID where Inception weights exist, provenance.

Results of the run's own split go to ``<run_dir>/eval/``; results on another folder go to
``<run_dir>/eval/<test-set-name>/`` and never mix with them. A stored evaluation is reused only when
everything that determines its numbers is unchanged (``evaluation_key``).
"""

from __future__ import annotations

import hashlib
import inspect
import json
import logging
from pathlib import Path
from typing import Any, Sequence

import pandas as pd
import torch

from colorgan.common import runtime
from colorgan.measures import feature_nets, metrics, testset
from colorgan.measures.feature_nets import FeatureNets, load_feature_nets
from colorgan.measures.metrics import METRIC_PROTOCOL, evaluate_sets, summarize, with_set_metrics
from colorgan.method import color, data
from colorgan.method.config import RunConfig
from colorgan.method.data import ImageSet, load_split
from colorgan.training.checkpoints import checkpoint_path
from colorgan.training.train import StepFactory, load_trained, step_provenance

log = logging.getLogger(__name__)

# modules whose source determines the numbers of an evaluation (metric code, colour conversion, image preparation)
METRIC_MODULES = (metrics, color, data, testset, feature_nets)


def metric_code_digest() -> str:
    """SHA-256 of the source of every module that shapes the metric values, plus the metric libraries' versions."""
    import piq
    import skimage

    digest = hashlib.sha256()
    for module in METRIC_MODULES:
        digest.update(inspect.getsource(module).encode())
    digest.update(f"piq {piq.__version__}, scikit-image {skimage.__version__}, torch {torch.__version__}".encode())
    return digest.hexdigest()


def checkpoint_digest(run_dir: Path, checkpoint: str = "last") -> str | None:
    """SHA-256 of a checkpoint file's bytes (``checkpoints.checkpoint_path``; None without that checkpoint)."""
    path = checkpoint_path(run_dir, checkpoint)
    if path is None or not path.is_file():
        return None
    digest = hashlib.sha256()
    with path.open("rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            digest.update(block)
    return f"{path.name}:{digest.hexdigest()}"


def eval_dir(run_dir: Path | str, test_name: str | None = None, checkpoint: str = "last") -> Path:
    """``<run_dir>/eval`` for the run's own split, ``<run_dir>/eval/<test_name>`` for another test set; another
    checkpoint than the newest adds ``checkpoint-<best_val|STEP>`` (its numbers never overwrite the newest's)."""
    out = Path(run_dir) / "eval"
    out = out / test_name if test_name else out
    return out if checkpoint == "last" else out / f"checkpoint-{checkpoint}"


def test_set_name(test_root: Path | str, protocol: str = "resize") -> str:
    """Default name of a folder test set: the folder's name, plus the protocol when it is not 'resize'."""
    name = Path(test_root).expanduser().resolve().name or "test-set"
    return name if protocol == "resize" else f"{name}-{protocol}"


def evaluation_key(run_dir: Path, cfg: RunConfig, test: ImageSet, num_diversity_samples: int, batch_size: int,
                   nets: FeatureNets, device: torch.device, checkpoint: str = "last") -> dict[str, Any]:
    """Everything that determines an evaluation's numbers; a stored evaluation with an equal key is reused.

    The checkpoint's bytes, the seed of the noise, the prepared test pixels and names (so file
    contents, protocol and size), the diversity count, the batch size (the noise is drawn per
    batch), the metric code and libraries, the FID/LPIPS networks and the device type.
    """
    return {"checkpoint": checkpoint_digest(run_dir, checkpoint), "seed": cfg.seed, "test_images": testset.images_digest(test),
            "num_diversity_samples": num_diversity_samples, "batch_size": batch_size,
            "metric_code": metric_code_digest(), "fid_network": nets.fid_label, "lpips_network": nets.lpips_label,
            "device_type": device.type}


def evaluate_run(run_dir: Path | str, config_cls: type[RunConfig], build_step: StepFactory,
                 device: str = "auto", batch_size: int = 16, num_diversity_samples: int = 0,
                 cache_dir: Path = Path(".cache/images"), test_root: Path | str | None = None,
                 protocol: str = "resize", test_name: str | None = None, inception_weights: str = "off",
                 lpips_weights: str = "off", reuse: bool = False, checkpoint: str = "last"
                 ) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Evaluate a run's checkpoint on its own test split, or on every image under ``test_root``.

    Args:
        checkpoint: 'last' (the newest), 'best_val' (best validation PSNR: what the study scores) or a step.
        test_root: a folder of photos (sub-folders included) to score the run on instead of its split;
            each photo is brought to the run's size by ``protocol`` ('resize' or 'center-crop').
        test_name: the results folder's name under ``eval/`` (default: ``test_set_name``).
        inception_weights / lpips_weights: 'auto' (torch hub cache if present), 'off', or a file path.
        reuse: return the stored results when their ``evaluation_key`` matches.
    Writes ``per_image.csv``, ``summary.csv`` and ``summary.json`` (provenance: checkpoint step, seed,
    commit, device, test set, protocol, VGG weights, FID/LPIPS networks) into ``eval_dir``.

    Returns:
        (per_image, summary): one row per (method, image); one row per method with mean and 95% CI
        and the set's FID (or why not). The grayscale reference (ab = 0) is always a row of both.
    """
    run_dir = Path(run_dir)
    testset.check_protocol(protocol)
    if test_root is None and protocol != "resize":
        raise ValueError(f"protocol: {protocol!r} applies to a test_root folder; a run's own split is prepared "
                         "as it was trained (resize)")
    torch_device = runtime.select_device(device)
    # the run's own data paths are not needed to score it on another folder
    cfg, step, checkpoint_step = load_trained(run_dir, config_cls, build_step, torch_device,
                                              inference_only=test_root is not None, checkpoint=checkpoint)
    runtime.seed_everything(cfg.seed)
    if test_root is None:
        _, test, data_info = load_split(cfg, cache_dir)
        data_record = {k: v for k, v in data_info.items() if k != "skipped"}
        test_record = {"split": "the run's own test split", "protocol": "resize", "num_images": len(test),
                       "names_and_pixels_digest": testset.images_digest(test), **data_record}
        out = eval_dir(run_dir, checkpoint=checkpoint)
    else:
        test, test_record = testset.load_test_folder(test_root, cfg.image_size, protocol)
        data_record = test_record
        out = eval_dir(run_dir, test_name or test_set_name(test_root, protocol), checkpoint)
    nets = load_feature_nets(inception_weights, lpips_weights, torch_device)
    key = evaluation_key(run_dir, cfg, test, num_diversity_samples, batch_size, nets, torch_device, checkpoint)
    if reuse:
        stored = _stored(out, key)
        if stored is not None:
            log.info("reusing %s: it scores the same checkpoint, test images, settings and metric code", out)
            return stored
    per_image, set_metrics = evaluate_sets(step.colorize, test, torch_device, cfg.method, batch_size, cfg.seed,
                                           num_diversity_samples, nets, progress=cfg.progress)
    summary = with_set_metrics(summarize(per_image, cfg.num_bootstrap, cfg.seed), set_metrics)
    out.mkdir(parents=True, exist_ok=True)
    per_image.to_csv(out / "per_image.csv", index=False)
    summary.to_csv(out / "summary.csv", index=False)
    record: dict[str, Any] = {
        "run_dir": str(run_dir),
        "checkpoint": checkpoint,
        "checkpoint_step": checkpoint_step,
        "num_diversity_samples": num_diversity_samples,
        "image_size": cfg.image_size,
        "test_set": test_record,
        "metric_protocol": METRIC_PROTOCOL,
        "fid_network": nets.fid_label,
        "lpips_network": nets.lpips_label,
        "evaluation_key": key,
        "summary": json.loads(summary.to_json(orient="records")),
        **runtime.provenance(cfg.seed, torch_device, data=data_record, **step_provenance(step)),
    }
    runtime.write_json(out / "summary.json", record)
    return per_image, summary


def _stored(out: Path, key: dict[str, Any]) -> tuple[pd.DataFrame, pd.DataFrame] | None:
    if not ((out / "summary.json").is_file() and (out / "per_image.csv").is_file() and (out / "summary.csv").is_file()):
        return None
    try:
        record = json.loads((out / "summary.json").read_text())
    except (OSError, ValueError):
        return None
    if record.get("evaluation_key") != key:
        return None
    return pd.read_csv(out / "per_image.csv"), pd.read_csv(out / "summary.csv")


def evaluate_or_reuse(run_dir: Path | str, config_cls: type[RunConfig], build_step: StepFactory,
                      device: str = "auto", batch_size: int = 16, num_diversity_samples: int = 0,
                      cache_dir: Path = Path(".cache/images"), **options: Any) -> tuple[pd.DataFrame, pd.DataFrame]:
    """``evaluate_run``, unless its folder already holds results with the same ``evaluation_key``.

    ``options``: ``evaluate_run``'s keyword arguments (test_root, protocol, test_name, inception_weights,
    lpips_weights).
    """
    return evaluate_run(run_dir, config_cls, build_step, device, batch_size, num_diversity_samples, cache_dir,
                        reuse=True, **options)


_DIGITS = {"psnr": 3, "psnr_pooled": 3, "ssim": 4, "lpips": 4}  # the rest: 2


def format_summary(summary: pd.DataFrame, columns: Sequence[tuple[str, str]]) -> str:
    """Plain-text table, one line per metric and one column per method: each metric as 'mean [low, high]'.

    Args:
        columns: (summary column, header naming its convention) pairs to print: ``published.variants(convention)``
            as (column, label) (cli.py builds them); CIEDE2000, LPIPS (when scored), FID and the image count follow.
    """
    methods = list(summary.method)
    lines: list[tuple[str, list[str]]] = [("metric", [str(m) for m in methods])]
    rows = [(c, label) for c, label in columns if c != "fid"] + [("ciede2000", "CIEDE2000")]
    rows += [("lpips", "LPIPS (VGG)")] if "lpips" in summary else []
    for column, label in rows:
        lines.append((label, [_cell(row, column) for row in summary.to_dict("records")]))
    lines.append(("FID", [_fid_cell(row.get("fid")) for row in summary.to_dict("records")]))
    lines.append(("images", [str(n) for n in summary.num_images]))
    label_width = max(len(label) for label, _ in lines)
    widths = [max(len(cells[i]) for _, cells in lines) for i in range(len(methods))]
    text = ["  ".join([label.ljust(label_width)] + [c.ljust(w) for c, w in zip(cells, widths)]).rstrip()
            for label, cells in lines]
    notes = sorted({str(n) for n in summary.get("fid_note", []) if isinstance(n, str) and n})
    if notes:
        text.append("FID: " + "; ".join(notes))
    return "\n".join(text)


def _cell(row: dict[str, Any], column: str) -> str:
    value = row.get(column)
    if value is None or pd.isna(value):
        return "n/a (not in this summary)"
    digits = _DIGITS.get(column, 2)
    low, high = row.get(f"{column}_low"), row.get(f"{column}_high")
    interval = "" if low is None or pd.isna(low) else f" [{low:.{digits}f}, {high:.{digits}f}]"
    return f"{value:.{digits}f}{interval}"


def _fid_cell(fid: Any) -> str:
    return f"{fid:.2f}" if fid is not None and not pd.isna(fid) else "n/a"
