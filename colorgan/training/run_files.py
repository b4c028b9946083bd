"""The run folder's files besides checkpoints: making the folder, ``progress.json``, ``metrics.jsonl`` and
bringing the logs back to the checkpoint a run resumes from."""

from __future__ import annotations

import json
import logging
import time
from pathlib import Path
from typing import Any

from colorgan.common import runtime
from colorgan.method.config import RunConfig
from colorgan.training.checkpoints import CheckpointDir, load_checkpoint
from colorgan.training.validation import BEST_CHECKPOINT, Validator

log = logging.getLogger(__name__)

PROGRESS_FILE = "progress.json"  # see write_progress
CODE_RECORD = "code.json"  # written by train: the content hash of the code that trains the run


def prepare_run_dir(run_dir: Path, cfg: RunConfig, checkpoints: "CheckpointDir") -> None:
    """Create the run folder; refuse to overwrite an existing run unless resuming; check it is writable."""
    try:
        run_dir.mkdir(parents=True, exist_ok=True)
        probe = run_dir / ".write_test"
        probe.write_bytes(b"ok")
        probe.unlink()
    except OSError as err:
        raise OSError(f"run_dir: cannot write to {run_dir} ({err}); choose a writable folder") from None
    if checkpoints.paths() and not cfg.resume:
        raise FileExistsError(f"run_dir: {run_dir} already holds checkpoints; pass resume=True to continue "
                              "that run, or choose another run_dir")
    checkpoints.remove_partial()


def truncate_metrics(path: Path, start_step: int) -> None:
    """Drop log lines written after the checkpoint we resume from, so the log has no duplicates."""
    if not path.exists():
        return
    lines = [line for line in path.read_text(errors="replace").splitlines() if line.strip()]
    kept = [line for line in lines if (record := parse_log_line(line)) and record["step"] <= start_step]
    if len(kept) < len(lines) and any(parse_log_line(line) is None for line in lines):
        log.warning("dropped a damaged line from %s (a run killed while writing it)", path)
    runtime.atomic_write_bytes(path, lambda f: f.write("".join(line + "\n" for line in kept).encode()))


def parse_log_line(line: str) -> dict[str, Any] | None:
    """One metrics.jsonl record, or None for a line torn by a crash mid-write."""
    try:
        record = json.loads(line)
    except json.JSONDecodeError:
        return None
    return record if isinstance(record, dict) and isinstance(record.get("step"), int) else None


def write_progress(run_dir: Path, step: int, total: int, start_step: int, terms: dict[str, float] | None = None,
                   images_per_s: float | None = None, eta_s: float | None = None) -> None:
    """``<run_dir>/progress.json``: where a running ``fit`` is, for whoever watches the run (the pipeline).

    ``start_step`` > 0 means this session resumed from that checkpoint step. Written at the start and at
    every log line, atomically, so a reader never sees half a record.
    """
    runtime.write_json(run_dir / PROGRESS_FILE, {
        "time": time.time(), "step": step, "total_steps": total, "start_step": start_step,
        "terms": terms or {}, "images_per_s": images_per_s, "eta_s": eta_s})


def resume_validation(validator: Validator, run_dir: Path, start_step: int) -> None:
    """Bring ``val.jsonl`` and ``best_val.pt`` back to ``start_step`` (a fresh run starts with neither)."""
    best = run_dir / BEST_CHECKPOINT
    if start_step == 0:
        (run_dir / "val.jsonl").unlink(missing_ok=True)
        best.unlink(missing_ok=True)
        return
    validator.resume(start_step)
    if best.is_file() and int(load_checkpoint(best)["step"]) > start_step:
        # killed between saving these best weights and the checkpoint after them: the best weights up to
        # start_step are gone, so the next validation saves its weights whatever it scores
        log.warning("%s is from after the checkpoint resumed from (step %d); it will be replaced", best, start_step)
        best.unlink()
        validator.best_psnr = -float("inf")
