"""Validation during training: a fixed subset of the training split, scored with the shared metric code.

``fit`` calls ``Validator`` every ``val_every`` steps and at the end. Each call appends one line to
``val.jsonl`` (step, images seen, PSNR, SSIM, CIEDE2000, colourfulness and its gap to the ground
truth, and the grayscale reference) and, when the validation PSNR is the best so far, writes the
weights to ``best_val.pt``. Learning curves and the "best on validation" checkpoint rule read these;
the test split is never scored during training.
"""

from __future__ import annotations

import json
import logging
from pathlib import Path
from typing import Any, Callable

import torch

from colorgan.common import runtime
from colorgan.measures.metrics import GRAYSCALE, evaluate
from colorgan.method.data import ImageSet

log = logging.getLogger(__name__)

VAL_LOG = "val.jsonl"
BEST_CHECKPOINT = "best_val.pt"
VAL_METRICS = ("psnr", "ssim", "ciede2000", "colourfulness", "colourfulness_gap")


class Validator:
    """Scores a step's ``colorize`` on the validation images; remembers the best PSNR (resume-safe)."""

    def __init__(self, images: ImageSet, run_dir: Path, device: torch.device, seed: int, batch_size: int):
        self.images, self.run_dir, self.device = images, Path(run_dir), device
        self.seed, self.batch_size = seed, batch_size
        self.best_psnr = -float("inf")

    def resume(self, start_step: int) -> None:
        """Keep ``val.jsonl`` lines up to ``start_step`` (the checkpoint resumed from) and their best PSNR."""
        path = self.run_dir / VAL_LOG
        if not path.is_file():
            return
        kept = []
        for line in path.read_text(errors="replace").splitlines():
            try:
                record = json.loads(line)
            except json.JSONDecodeError:
                continue  # a line torn by a crash
            if isinstance(record, dict) and isinstance(record.get("step"), int) and record["step"] <= start_step:
                kept.append(record)
        runtime.atomic_write_bytes(path, lambda f: f.write("".join(json.dumps(r) + "\n" for r in kept).encode()))
        self.best_psnr = max((r["psnr"] for r in kept), default=-float("inf"))

    def __call__(self, step: Any, step_number: int, images_seen: int,
                 save_best: Callable[[Path], None]) -> dict[str, float]:
        """Score ``step.colorize`` now, append to ``val.jsonl``; ``save_best(path)`` writes the weights if best.

        The noise is drawn from a generator seeded the same way at every call, and the modules are
        put in eval mode and back, so validating changes nothing in the training that follows.
        """
        modules = step.modules().values()
        modes = [m.training for m in modules]
        for m in modules:
            m.eval()
        with torch.no_grad():
            per_image = evaluate(step.colorize, self.images, self.device, "model", self.batch_size, self.seed)
        for m, mode in zip(modules, modes):
            m.train(mode)
        means = per_image.groupby("method")[list(VAL_METRICS)].mean()
        record = {"step": step_number, "images_seen": images_seen,
                  **{k: float(means.loc["model", k]) for k in VAL_METRICS},
                  **{f"gray_{k}": float(means.loc[GRAYSCALE, k]) for k in VAL_METRICS},
                  "num_images": len(self.images)}
        record["best"] = record["psnr"] > self.best_psnr
        if record["best"]:
            self.best_psnr = record["psnr"]
            save_best(self.run_dir / BEST_CHECKPOINT)
        with open(self.run_dir / VAL_LOG, "a") as f:
            f.write(json.dumps(record) + "\n")
        log.info("validation at step %d: PSNR %.3f dB (grayscale %.3f), SSIM %.4f%s", step_number, record["psnr"],
                 record["gray_psnr"], record["ssim"], " (best so far)" if record["best"] else "")
        return record


def read_val_log(run_dir: Path | str) -> list[dict[str, Any]]:
    """The ``val.jsonl`` records of a run (empty when it trained without validation)."""
    path = Path(run_dir) / VAL_LOG
    if not path.is_file():
        return []
    return [json.loads(line) for line in path.read_text().splitlines() if line.strip()]
